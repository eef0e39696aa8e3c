"""The commands. Each parses its flags into typed options, calls one pipeline and prints the result."""

from __future__ import annotations

from pathlib import Path

import typer

from accelkit.cli.app import app, emit, handle_errors, progress_status
from accelkit.cli.params import (
    backend_option,
    bind,
    csv,
    fid_mode_option,
    fid_weights_option,
    force_option,
    generator_argument,
    int_csv,
    load_options,
    precision_option,
)
from accelkit.errors import InputError
from accelkit.options import (
    DEFAULT_BATCH_RANGE,
    DiffusionSettings,
    FidSettings,
    Fp16Settings,
    Int8Settings,
    OnnxSettings,
    Threads,
    Timing,
    parse_batches,
)
from accelkit.pipelines.options import (
    BuildOptions,
    CompareOptions,
    DistillLoss,
    ExportOptions,
    FidOptions,
    Importance,
    LoadOptions,
    Precision,
    PruneOptions,
    QuantizeOptions,
)
from accelkit.spec import as_batch_range


@app.command()
@handle_errors
@load_options()
@bind("diffusion", DiffusionSettings, skip=("decoder_precision", "cache"), panel="Diffusion")
def info(
    generator: str | None = generator_argument(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    *,
    load: LoadOptions,
    diffusion: DiffusionSettings,
) -> None:
    """Show a generator's format, parameters, inferred I/O spec and FLOPs per image.

    A diffusers pipeline folder (or the bundled ddpm) shows its kind, components, the
    denoiser's inputs, the scheduler and its default steps, and FLOPs per step and per image.
    """
    from accelkit.pipelines.info import info as run_info

    with progress_status(not as_json) as progress:
        result = run_info(load, progress=progress, diffusion=diffusion)
    emit(result, as_json)


@app.command()
@handle_errors
@load_options()
@bind("onnx", OnnxSettings, panel="ONNX")
@bind("fp16_settings", Fp16Settings, panel="FP16")
@bind("int8_settings", Int8Settings, skip=("op_types",), panel="INT8")
@bind("diffusion", DiffusionSettings, panel="Diffusion")
def export(
    generator: str | None = generator_argument(),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Output .onnx path (default: <stem>.onnx or <stem>.fp16.onnx next to the input; the current folder for bundled generators). "
        "A diffusion pipeline: an output folder (default ./<folder>-onnx) for denoiser[.fp16|.int8].onnx (+ vae_decoder.onnx) and pipeline.accelkit.json.",
    ),
    fp16: bool = typer.Option(
        False,
        "--fp16",
        help="Write a float16 graph (float32 inputs/outputs; overflow-prone ops kept in float32).",
    ),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="Write an INT8 graph with explicit QuantizeLinear/DequantizeLinear nodes, calibrated on the generator's own latent prior.",
    ),
    tolerance: float | None = typer.Option(
        None,
        "--tolerance",
        help="Max abs error allowed against torch, in output units (default 1e-3 fp32, 5e-2 fp16, 0.5 int8).",
    ),
    force: bool = force_option(),
    triton_repo: Path | None = typer.Option(
        None,
        "--triton-repo",
        help="Also write a Triton model repository entry for the exported file into this folder (see accelkit triton-repo).",
    ),
    *,
    load: LoadOptions,
    onnx: OnnxSettings,
    fp16_settings: Fp16Settings,
    int8_settings: Int8Settings,
    diffusion: DiffusionSettings,
) -> None:
    """Export to ONNX (dynamic batch, single file), verified against torch in ONNX Runtime.

    A diffusion pipeline exports its denoiser at the chosen precision (--int8: calibrated on
    the denoiser's inputs along real sampling trajectories) and a latent model's VAE decoder
    at --decoder-precision, each verified per call, then a short whole sample against torch.
    """
    from accelkit.pipelines.export import export_onnx

    if fp16 and int8:
        raise InputError("--fp16 and --int8 exclude each other; pick one precision per file")
    opts = ExportOptions(
        out=output,
        precision=Precision.fp16 if fp16 else Precision.int8 if int8 else Precision.fp32,
        onnx=onnx,
        fp16=fp16_settings,
        int8=int8_settings,
        tolerance=tolerance,
        force=force,
        diffusion=diffusion,
    ).validated()
    with progress_status() as progress:
        result = export_onnx(load, opts, progress)
    if triton_repo is not None:
        from accelkit.pipelines.serve import triton_repo as write_repo
        from accelkit.serving.options import TritonRepoOptions

        typer.echo(result.to_text())
        result = write_repo(result.artifact, triton_repo, TritonRepoOptions(force=force))  # type: ignore[assignment]
    emit(result)


@app.command()
@handle_errors
@load_options(("input", "output_range", "dynamic_hw", "hw_range"), generator_param="onnx_file")
@bind("int8_settings", Int8Settings, panel="INT8")
def quantize(
    onnx_file: Path = typer.Argument(..., help="fp32 ONNX model (e.g. from accelkit export)."),
    int8: bool = typer.Option(
        True, "--int8/--no-int8", help="INT8 with explicit Q/DQ nodes (the only mode today)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Output path (default: <stem>.int8.onnx next to the input)."
    ),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="Max abs error allowed against the fp32 model (default 0.5)."
    ),
    report: bool = typer.Option(
        False,
        "--report",
        help="Sensitivity: quantize one layer group at a time, list groups by PSNR vs fp32 (most harmful first), write <stem>.int8-sensitivity.md.",
    ),
    auto_exclude_db: float | None = typer.Option(
        None,
        "--auto-exclude",
        metavar="PSNR_DB",
        help="Keep in float the fewest most-harmful layer groups needed to reach this PSNR vs fp32.",
    ),
    force: bool = force_option("existing output files (model and report)"),
    *,
    load: LoadOptions,
    int8_settings: Int8Settings,
) -> None:
    """Post-training INT8 quantization of an ONNX generator (Q/DQ), verified against fp32; optional sensitivity report.

    A build that fails --tolerance exits 4 (quality below tolerance) and names the command that finds the layers INT8 cannot take; --report prints its table even then, and --auto-exclude keeps the fewest of them in float.
    """
    from accelkit.pipelines.export import quantize as run_quantize

    if not int8:
        raise InputError("only --int8 quantization exists; for fp16 use accelkit export --fp16")
    opts = QuantizeOptions(
        out=output,
        int8=int8_settings,
        tolerance=tolerance,
        report=report,
        auto_exclude_db=auto_exclude_db,
        force=force,
    ).validated()
    with progress_status() as progress:
        result = run_quantize(load, opts, progress)
    emit(result)


_PRUNE = PruneOptions()  # the prune command's defaults


@app.command()
@handle_errors
@load_options(
    (
        "arch",
        "arch_kwargs",
        "input",
        "output_range",
        "trust_code",
        "trust_pickle",
        "output_shape",
        "dynamic_hw",
        "hw_range",
    )
)
@bind(
    "fid_settings",
    FidSettings,
    only=("n", "weights"),
    help={
        "n": "Quality check vs the unpruned model on N seeded latents (torch fp32): the calibrated quality "
        "verdict (paired test), paired PSNR and FID drift before and after distillation. A result the verdict "
        "does not accept is not written (exit 4) unless --force. 0: not measured (said loudly)."
    },
    defaults=_PRUNE.fid,
)
@bind(
    "threads",
    Threads,
    help={"count": "CPU threads for torch during distillation and FID (default: torch's)."},
)
def prune(
    generator: str | None = generator_argument(),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Pruned generator, saved as TorchScript (default: <stem>.pruned.pt; the current folder for bundled generators).",
    ),
    ratio: float = typer.Option(
        _PRUNE.ratio,
        "--ratio",
        help="Fraction of channels to remove (per layer, or over the network with --global).",
    ),
    importance: Importance = typer.Option(
        _PRUNE.importance.value, "--importance", help="Channel importance."
    ),
    global_pruning: bool = typer.Option(
        False, "--global", help="Rank channels across layers instead of within each layer."
    ),
    keep: list[str] | None = typer.Option(
        None, "--keep", help="Module-name glob never pruned (repeatable)."
    ),
    round_to: int | None = typer.Option(
        None, "--round-to", help="Keep channel counts a multiple of this (e.g. 8)."
    ),
    distill_steps: int = typer.Option(
        _PRUNE.distill_steps,
        "--distill-steps",
        help="Data-free distillation steps after pruning (teacher: the FP32 model; latents from its prior); "
        "on by default, within --distill-time.",
    ),
    distill_time: float = typer.Option(
        60.0,
        "--distill-time",
        help="Time budget of distillation in seconds: it stops at --distill-steps or this, whichever comes first (0: no time limit).",
    ),
    no_distill: bool = typer.Option(
        False, "--no-distill", help="Skip distillation (the pruned weights as they are)."
    ),
    distill_batch: int = typer.Option(
        _PRUNE.distill_batch, "--distill-batch", help="Latents per distillation step."
    ),
    lr: float = typer.Option(_PRUNE.lr, "--lr", help="Adam learning rate for distillation."),
    loss: DistillLoss = typer.Option(_PRUNE.loss.value, "--loss", help="Distillation pixel loss."),
    feature_loss: float = typer.Option(
        _PRUNE.feature_loss,
        "--feature-loss",
        help="Weight of the distillation feature loss: intermediate outputs of the pruned layers matched to the teacher's through learned 1x1 adapters (0: pixels only).",
    ),
    feature_layer: list[str] | None = typer.Option(
        None,
        "--feature-layer",
        help="Layer-name glob whose output the feature loss matches (repeatable; default: every pruned layer).",
    ),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="Distillation checkpoint (default: <output>.distill.ckpt); an interrupted run resumes from it.",
    ),
    no_resume: bool = typer.Option(
        False, "--no-resume", help="Start distillation from scratch even if a checkpoint exists."
    ),
    seed: int = typer.Option(_PRUNE.seed, "--seed", help="Seed of latents and random importance."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Overwrite an existing output, and write a pruned model the quality verdict does not accept (with a loud warning).",
    ),
    *,
    load: LoadOptions,
    fid_settings: FidSettings,
    threads: Threads,
) -> None:
    """Structured channel pruning (torch-pruning DepGraph), data-free distillation, and a quality check.

    By default it distills (--distill-steps within --distill-time) and measures the pruned model against the unpruned one (--fid N seeded latents: the calibrated quality verdict, paired PSNR, FID drift); a result the verdict does not accept is not written and exits 4 unless --force.
    """
    from accelkit.pipelines.prune import prune_and_distill

    opts = PruneOptions(
        out=output,
        ratio=ratio,
        importance=importance,
        global_pruning=global_pruning,
        keep=tuple(keep or ()),
        round_to=round_to,
        distill_steps=0 if no_distill else distill_steps,
        distill_seconds=distill_time,
        distill_batch=distill_batch,
        lr=lr,
        loss=loss,
        feature_loss=feature_loss,
        feature_layers=tuple(feature_layer or ()),
        fid=fid_settings,
        threads=threads,
        checkpoint=checkpoint,
        resume=not no_resume,
        seed=seed,
        force=force,
    ).validated()
    with progress_status() as progress:
        result = prune_and_distill(load, opts, progress)
    emit(result)


@app.command()
@handle_errors
@load_options()
@bind("timing", Timing, panel="Timing")
@bind("threads", Threads, panel="Timing")
@bind("fid_settings", FidSettings, panel="Quality")
@bind("diffusion", DiffusionSettings, panel="Diffusion")
def bench(
    generator: str | None = generator_argument(),
    backend: str | None = backend_option(
        "Default: every backend this machine can run (the others are listed as skipped, with the reason)."
    ),
    precision: str | None = precision_option(
        "Default: fp32,fp16, plus int8 for an int8 ONNX file. int8 is ONNX Q/DQ calibrated on the prior; bf16 runs in "
        "torch and as OpenVINO's bf16 hint on CPUs with native bf16."
    ),
    batch: str = typer.Option(
        "1,8", "--batch", help="Comma-separated batch sizes (images per iteration), e.g. 1,8,32."
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (CUDA if available), cpu or cuda[:N]."
    ),
    out: Path = typer.Option(
        Path("accelkit-results"),
        "--out",
        help="Report folder: results.json, results.md, results.csv, throughput.png (+ artifacts/).",
    ),
    seed: int = typer.Option(0, "--seed", help="Latent seed (identical inputs for every backend)."),
    batch_range: str | None = typer.Option(
        None, "--batch-range", help="TensorRT profile min:opt:max (default from --batch)."
    ),
    compile: bool = typer.Option(False, "--compile", help="Add a torch.compile row."),
    channels_last: bool = typer.Option(
        False, "--channels-last", help="Run torch in channels_last memory format."
    ),
    cuda_graphs: bool = typer.Option(
        False, "--cuda-graphs", help="Capture torch runs in CUDA graphs (CUDA only)."
    ),
    ort_trt: bool = typer.Option(
        False, "--ort-trt", help="Add ONNX Runtime rows on its TensorRT execution provider (CUDA)."
    ),
    images: Path | None = typer.Option(
        None,
        "--images",
        help="Image-to-image generators: a folder of real input images (sorted, recursive; center-cropped and resized to the input) for throughput inputs, drift (needs 2x --fid images) and the sample grids, instead of random smooth images.",
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="With --fid: measure drift against this generator's FP32 torch model instead (e.g. the teacher of a pruned model).",
    ),
    reference_arch: str | None = typer.Option(
        None,
        "--reference-arch",
        help="Architecture of a weight-only --reference (module:Class or a bundled name); the teacher a pruned model records is found without it.",
    ),
    reference_arch_kwargs: str | None = typer.Option(
        None, "--reference-arch-kwargs", help="JSON constructor arguments for --reference-arch."
    ),
    vs: str | None = typer.Option(
        None,
        "--vs",
        help="A baseline build (ONNX or generator file) to measure interleaved with this one, in one process: each of --repeats rounds runs both back to back; prints the comparison (exit 1 on a regression beyond noise; 3 when the gate cannot tell: no row measured on both sides, an interval wider than --max-slowdown; --allow-unreliable accepts the latter).",
    ),
    max_slowdown: str = typer.Option(
        "5%", "--max-slowdown", help="With --vs: allowed slowdown before a row regresses."
    ),
    allow_unreliable: bool = typer.Option(
        False,
        "--allow-unreliable",
        help="With --vs: accept (exit 0, said loudly) a comparison that cannot tell (exit 3) where it compared something; a regression still fails.",
    ),
    serve: bool = typer.Option(
        False,
        "--serve",
        help="Then serve the build on Triton (PyTriton) and sweep --serve-concurrency in-flight requests at batch 1: serving rows + served/in-process ratio in the same report (pip install 'accelkit[serve]').",
    ),
    serve_concurrency: str = typer.Option(
        "1,2,4,8,16", "--serve-concurrency", help="With --serve: concurrency levels."
    ),
    force: bool = force_option("a report already in --out"),
    trust_engine: bool = typer.Option(
        False,
        "--trust-engine",
        help="Load TensorRT plans whose sidecar does not vouch for them. Deserializing an engine can RUN PLUGIN CODE: only for plans you trust.",
    ),
    *,
    load: LoadOptions,
    timing: Timing,
    threads: Threads,
    fid_settings: FidSettings,
    diffusion: DiffusionSettings,
) -> None:
    """Benchmark images/sec and latency per backend and precision; write JSON/MD/CSV/PNG reports.

    A diffusion pipeline (or a denoiser ONNX accelkit exported) runs the whole sampler per
    row: images/sec counts finished images; rows add steps, scheduler, cache, ms per step,
    time shares and the speed-up over torch fp32 at the model's reference sampler.
    """
    from accelkit.pipelines.bench import BenchOptions, bench_vs, check_bench_options
    from accelkit.pipelines.bench import bench as run_bench

    opts = BenchOptions(
        backends=csv(backend, "--backend") if backend else (),
        precisions=csv(precision, "--precision") if precision else (),
        batch_sizes=parse_batches(batch, "--batch"),
        device=device,
        out=out,
        timing=timing,
        threads=threads,
        fid=fid_settings,
        seed=seed,
        batch_range=as_batch_range(batch_range) if batch_range else None,
        compile=compile,
        channels_last=channels_last,
        cuda_graphs=cuda_graphs,
        ort_tensorrt=ort_trt,
        images=images,
        force=force,
        trust_engine=trust_engine,
        diffusion=diffusion,
    )
    check_bench_options(opts)  # fail fast, before loading/exporting
    fid = fid_settings.n
    if vs is not None:
        if fid:
            raise InputError(
                "--vs and --fid cannot be combined; run the drift measurement separately"
            )
        with progress_status() as progress:
            result = bench_vs(
                load,
                load.with_generator(vs),
                opts,
                progress,
                max_slowdown=max_slowdown,
                allow_unreliable=allow_unreliable,
            )
        emit(result)
        return
    if allow_unreliable:
        raise InputError(
            "--allow-unreliable only matters with --vs BASELINE (or in accelkit compare)"
        )
    if reference is not None and not fid:
        raise InputError("--reference only matters with --fid N")
    if (reference_arch or reference_arch_kwargs) and reference is None:
        raise InputError(
            "--reference-arch/--reference-arch-kwargs describe --reference; give --reference FILE too"
        )
    ref_arch = (
        LoadOptions.from_flags(None, arch=reference_arch, arch_kwargs=reference_arch_kwargs)
        if reference_arch
        else None
    )
    ref = (
        load.with_generator(
            reference,
            keep_arch=False,
            arch=ref_arch.arch if ref_arch else None,
            arch_kwargs=ref_arch.arch_kwargs if ref_arch else None,
        )
        if reference is not None
        else None
    )
    if serve:
        from accelkit.pipelines.serve import bench_serve
        from accelkit.serving.options import LoadtestOptions

        if fid or ref is not None:
            raise InputError(
                "--serve cannot be combined with --fid/--reference; measure drift in a separate bench run"
            )
        lt = LoadtestOptions(
            concurrency=tuple(int_csv(serve_concurrency, "--serve-concurrency")),
            batch_size=1,
            out=out,
        ).validated()
        with progress_status() as progress:
            served = bench_serve(load, opts, lt, progress=progress)
        emit(served)
        return
    with progress_status() as progress:
        bench_result = run_bench(load, opts, progress, reference=ref)
    emit(bench_result)


_FID = FidOptions()  # the fid command's defaults


@app.command()
@handle_errors
def fid(
    source_a: Path = typer.Argument(
        ..., help="Image folder (PNG/JPG, recursive) or .npz statistics."
    ),
    source_b: Path | None = typer.Argument(
        None, help="Second folder or .npz; omit with --save-stats to only compute statistics."
    ),
    save_stats: Path | None = typer.Option(
        None, "--save-stats", help="Write A's statistics (with provenance) to this .npz."
    ),
    fid_weights: Path | None = fid_weights_option(),
    batch_size: int = typer.Option(
        _FID.fid.batch, "--batch-size", help="Images per extractor call."
    ),
    kid_subsets: int = typer.Option(
        _FID.kid_subsets,
        "--kid-subsets",
        help="KID subsets (folders only; needs features, not .npz).",
    ),
    device: str = typer.Option(_FID.device, "--device", help="cpu or cuda[:N] for the extractor."),
    fid_mode: str = fid_mode_option(),
    force: bool = force_option("an existing --save-stats file"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    trust_code: bool = typer.Option(
        False,
        "--trust-code",
        help="Load --fid-weights even when its TorchScript uses ops outside accelkit's allow-list of pure tensor ops. This RUNS CODE from the file: only for files you trust.",
    ),
) -> None:
    """FID (and KID for folders) between two image folders or .npz statistics; or save statistics."""
    from accelkit.pipelines.fid import fid as run_fid

    opts = FidOptions(
        save_stats=save_stats,
        fid=FidSettings(
            weights=str(fid_weights) if fid_weights else None, batch=batch_size, mode=fid_mode
        ),
        kid_subsets=kid_subsets,
        device=device,
        force=force,
        trust_code=trust_code,
    ).validated()
    with progress_status(not as_json) as progress:
        result = run_fid(source_a, source_b, opts, progress)
    emit(result, as_json)


@app.command()
@handle_errors
@load_options(("input", "output_range", "dynamic_hw", "hw_range"), generator_param="onnx_file")
def build(
    onnx_file: Path = typer.Argument(
        ..., help="ONNX model to build (fp32, fp16 or int8 Q/DQ: precision comes from the graph)."
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Engine path (default: <onnx stem>.plan next to the ONNX file).",
    ),
    batch_range: str = typer.Option(
        ":".join(map(str, DEFAULT_BATCH_RANGE)),
        "--batch-range",
        help="Optimization profile min:opt:max batch sizes.",
    ),
    workspace_mb: int = typer.Option(1024, "--workspace", help="Builder workspace limit in MiB."),
    opt_level: int | None = typer.Option(
        None, "--opt-level", help="Builder optimization level 0..5 (TensorRT default 3)."
    ),
    no_tf32: bool = typer.Option(
        False, "--no-tf32", help="Forbid TF32 for fp32 layers (exact fp32 math)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use or fill the engine cache."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Build even if a matching cached engine exists."
    ),
    device: str = typer.Option("cuda", "--device", help="cuda or cuda:N."),
    force: bool = force_option("an existing engine file"),
    *,
    load: LoadOptions,
) -> None:
    """Build a TensorRT engine (strongly typed, batch profile, timing + engine caches) from ONNX."""
    from accelkit.pipelines.build import build_engine

    opts = BuildOptions(
        out=output,
        batch_range=batch_range,
        workspace_mb=workspace_mb,
        opt_level=opt_level,
        tf32=False if no_tf32 else None,
        cache=not no_cache,
        rebuild=rebuild,
        device=device,
        force=force,
    ).validated()
    with progress_status() as progress:
        result = build_engine(load, opts, progress)
    emit(result)


@app.command()
@handle_errors
@bind("opts", CompareOptions)
def compare(
    baseline: Path = typer.Argument(..., help="Baseline results.json (or its folder)."),
    current: Path = typer.Argument(..., help="Current results.json (or its folder)."),
    *,
    opts: CompareOptions,
) -> None:
    """Compare two bench results: exit 0 pass, 1 regression, 2 bad input (reports of different generators included), 3 the gate cannot tell.

    Across two runs the interval cannot see a machine that was busier for one of them: rows whose loads differ, or measured on an oversubscribed machine, are unreliable (exit 3); across other versions, hardware or thread settings a slower build is still a regression (exit 1) and any other verdict unreliable. Rows missing from the current report, too few repeats and nothing compared exit 3 too. --allow-unreliable accepts exit 3 as 0 where something was compared. On a shared machine, gate with `accelkit bench CURRENT --vs BASELINE` instead.
    """
    from accelkit.pipelines.compare import compare as run_compare

    emit(run_compare(baseline, current, opts))
