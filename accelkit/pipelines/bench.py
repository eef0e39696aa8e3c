"""``bench`` and ``bench_vs``: measure every backend, optionally with quality drift, and report.

This is the orchestration behind ``accelkit bench``: plan the targets
(:mod:`accelkit.benchmark.plan`), measure them (:func:`accelkit.benchmark.suite.run_benchmark`),
add quality drift against the FP32 torch reference (:mod:`accelkit.quality.drift`),
and write the report folder (:class:`accelkit.benchmark.report.Report`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.benchmark.plan import (
    BenchOptions,
    check_requested_backends,
    plan_targets,
    resolve_device,
)
from accelkit.benchmark.report import Report
from accelkit.benchmark.suite import BenchTarget, run_benchmark
from accelkit.errors import AccelkitError, InputError
from accelkit.files import folder_lock, storage_error
from accelkit.pipelines.options import resolve_artifact
from accelkit.pipelines.results import Result
from accelkit.quality.drift import reference_identity

Progress = Callable[[str], None]


@dataclass
class BenchResult(Result):
    """A benchmark report and the files written for it.

    ``exit_code`` is 1 when a row failed (NaN output, runner error), else 0.
    """

    report: Report
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """1 when any row failed, else 0."""
        return 1 if any(r.status == "failed" for r in self.report.rows) else 0

    def to_dict(self) -> dict[str, Any]:
        """The report (results.json content) and the file paths."""
        return {
            "report": self.report.to_dict(),
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def to_text(self) -> str:
        """The Markdown table, what was inferred about the generator, and the files written."""
        notes = "".join(f"\n{line}" for line in self.report.settings.get("inferred", []))
        return (
            self.report.to_markdown().rstrip("\n")
            + notes
            + "\nwrote "
            + ", ".join(str(p) for p in self.files.values())
        )

    def _repr_markdown_(self) -> str:
        return self.report.to_markdown()


@dataclass
class BenchVsResult(Result):
    """Candidate and baseline measured interleaved in one process, and their comparison."""

    report: Report
    baseline_report: Report
    comparison: Any
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """The comparison's: 0 pass, 1 regression."""
        return int(self.comparison.exit_code)

    def to_dict(self) -> dict[str, Any]:
        """Both reports, the comparison and the files."""
        return {
            "report": self.report.to_dict(),
            "baseline_report": self.baseline_report.to_dict(),
            "comparison": self.comparison.to_dict(),
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def to_text(self) -> str:
        """The candidate's table, the comparison and the files written."""
        return (
            self.report.to_markdown().rstrip("\n")
            + "\n"
            + self.comparison.to_text().rstrip("\n")
            + "\nwrote "
            + ", ".join(str(p) for p in self.files.values())
        )


def check_bench_options(options: BenchOptions) -> str:
    """Validate the options and the requested backends before any loading; the device to use.

    Raises:
        InputError: Bad values.
        BackendUnavailableError: A backend named explicitly cannot run here.
        MissingDependencyError: ``fid`` is set and no FID weights are installed.
    """
    options.validate()
    check_out_folder(Path(options.out), options.force)
    if options.fid:
        from accelkit.quality.features import resolve_weights
        from accelkit.quality.images import check_fid_mode

        resolve_weights(options.fid_weights)  # missing weights: fail before any work
        check_fid_mode(options.fid_mode)
    if options.images is not None and not Path(options.images).is_dir():
        raise InputError(
            f"--images {options.images} is not a folder; give a folder of PNG/JPG images (the generator's real inputs)"
        )
    device = resolve_device(options.device)
    check_requested_backends(options, device)
    return device


def check_out_folder(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that is a file, or that holds a report, unless ``force``.

    Raises:
        InputError: One line naming the fix.
    """
    from accelkit.benchmark.report import FILES

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    if (out / FILES["json"]).exists() and not force:
        raise InputError(
            f"--out {out} already holds a report ({FILES['json']}); pass --force to replace it, or choose another --out"
        )


def bench(
    generator: Any = None,
    options: BenchOptions | None = None,
    progress: Progress | None = None,
    reference: Any = None,
    verdict_settings: Any = None,
) -> BenchResult:
    """Benchmark a generator on every backend and precision asked for; write the report folder.

    Args:
        generator: Path, bundled name, :class:`LoadOptions` or :class:`Artifact`.
        options: :class:`BenchOptions` (backends, precisions, batch sizes, timing, ``fid``...).
        progress: Called with a short message per step.
        reference: With ``options.fid``: measure drift against this generator's FP32
            torch model instead of the generator's own (e.g. a pruned model's teacher).
        verdict_settings: With ``options.fid``: how the quality verdict decides
            (:class:`~accelkit.quality.verdict.VerdictSettings`: visibility margin, tail,
            interval level...); None: the documented defaults.

    Returns:
        :class:`BenchResult` (report + files: json, md, csv, png, grids).

    Raises:
        InputError / BackendUnavailableError: before any work, for bad options.
    """
    cfg = options or BenchOptions()
    device = check_bench_options(cfg)
    if reference is not None and not cfg.fid:
        raise InputError("--reference only matters with --fid N")
    say = progress or (lambda m: None)
    say("loading the generator")
    artifact = resolve_artifact(generator)
    if reference is None and cfg.fid and artifact.format != "torch":
        reference = recorded_source(
            artifact
        )  # an exported build: its own FP32 torch model, as its sidecar names it
        if reference is not None:
            say(
                f"reference: {reference.generator} (the FP32 torch model this file was made from, per its sidecar)"
            )
        else:
            raise InputError(
                f"--fid on {artifact.path or artifact.source} needs its FP32 torch model as the reference, and its sidecar names "
                "none that still exists unchanged; pass --reference GENERATOR (with --reference-arch for weight-only files)"
            )
    reference = (
        resolve_artifact(teacher_reference(reference, artifact)) if reference is not None else None
    )
    if reference is not None and (
        reference.spec.inputs != artifact.spec.inputs
        or reference.spec.output_shape != artifact.spec.output_shape
    ):
        raise InputError(
            "--reference has different inputs or output shape than the generator; drift needs the same latents and image size"
        )
    out = Path(cfg.out)
    with folder_lock(out, "a benchmark report"):
        check_out_folder(out, cfg.force)  # again, under the lock
        return _bench_locked(artifact, reference, cfg, device, out, progress, verdict_settings)


def _bench_locked(
    artifact: Artifact,
    reference: Artifact | None,
    cfg: BenchOptions,
    device: str,
    out: Path,
    progress: Progress | None,
    verdict_settings: Any = None,
) -> BenchResult:
    from accelkit.errors import one_line

    workdir = out / "artifacts"
    try:
        workdir.mkdir(exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"cannot write in {out}") from None
    images, images_rec = bench_images(artifact, cfg)
    targets, fp32_path = plan_targets(artifact, cfg, device, workdir, progress)
    report = Report()
    report.settings["generator"] = Path(artifact.source).name if artifact.source else "in-memory"
    report.settings["generator_sha256"] = (artifact.source_sha256 or "")[:16]
    if images_rec is not None:
        report.settings["images"] = images_rec
    from accelkit.pipelines.results import inferred_notes

    if inferred_notes(artifact.spec):
        report.settings["inferred"] = inferred_notes(artifact.spec)
    report = run_benchmark(
        targets,
        cfg.batch_sizes,
        device=device,
        warmup=cfg.warmup,
        repeats=cfg.repeats,
        min_time_s=cfg.min_time_s,
        seed=cfg.seed,
        flops_model=fp32_path,
        report=report,
        progress=progress,
        images=images,
    )
    extra_files: dict[str, Path] = {}
    warnings: list[str] = []
    if cfg.fid:
        try:
            extra_files = measure_quality(
                artifact,
                targets,
                report,
                cfg,
                device,
                out,
                progress,
                reference=reference,
                images=images,
                images_rec=images_rec,
                verdict_settings=verdict_settings,
            )
        except Exception as exc:  # noqa: BLE001 - the speed rows that ran are still reported
            reason = f"quality: {one_line(exc)}"
            for r in report.rows:
                if r.status == "ok" and r.fid_drift is None:
                    r.status, r.reason = "failed", reason
            warnings.append(
                f"quality drift was not measured ({one_line(exc)}); the speed rows are in the report"
            )
    files = report.write(out, plot=cfg.plot)
    return BenchResult(report, {**files, **extra_files}, warnings=warnings)


def bench_vs(
    candidate: Any,
    baseline: Any,
    options: BenchOptions | None = None,
    progress: Progress | None = None,
    max_slowdown: float | str = 0.05,
) -> BenchVsResult:
    """Bench a candidate against a baseline build **interleaved in one process**.

    Each of ``cfg.repeats`` rounds measures, per batch size and per matching
    (backend, precision) pair, the candidate and the baseline back to back (alternating
    which goes first), one repeat each; the rounds are then merged so every row holds one
    sample per round. A burst of load from another process therefore hits both sides of
    the ratio, which is what lets a ratio gate on a noisy shared machine
    (:func:`accelkit.gate.interleave.measure_interleaved`; the comparison resamples whole
    rounds). No row measured on both sides fails the comparison (exit 1), never a pass.

    Args:
        candidate, baseline: Path, bundled name, :class:`LoadOptions` or :class:`Artifact` each.
        options: :class:`BenchOptions` (``fid`` must be 0).
        progress: Called with a short message per step.
        max_slowdown: Allowed slowdown before a row regresses: a fraction or ``"5%"``.

    Returns:
        :class:`BenchVsResult`; the candidate's report goes to ``options.out``, the
        baseline's to ``options.out/vs-baseline``, and the comparison
        (:func:`accelkit.gate.compare.compare_reports`) to ``options.out/comparison.md``.
    """
    from accelkit.gate.compare import compare_reports, parse_fraction
    from accelkit.gate.interleave import measure_interleaved

    cfg = options or BenchOptions()
    device = check_bench_options(cfg)
    max_slowdown = (
        parse_fraction(max_slowdown) if isinstance(max_slowdown, str) else float(max_slowdown)
    )
    if cfg.fid:
        raise InputError("--vs and --fid cannot be combined; run the drift measurement separately")
    say = progress or (lambda m: None)
    say("loading both builds")
    candidate = resolve_artifact(candidate)
    baseline = resolve_artifact(baseline)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "artifacts" / "vs").mkdir(parents=True, exist_ok=True)
    cand_targets, cand_flops = plan_targets(candidate, cfg, device, out / "artifacts", progress)
    base_targets, _ = plan_targets(baseline, cfg, device, out / "artifacts" / "vs", progress)

    def key(t: BenchTarget) -> tuple[str, str | None, str]:
        return (
            t.backend,
            t.variant,
            t.precision_label()
            if t.artifact is None
            else str(t.options.get("precision") or t.artifact.precision),
        )

    base_by_key = {key(t): t for t in base_targets}
    pairs = [(t, base_by_key[key(t)]) for t in cand_targets if key(t) in base_by_key]
    unmatched = [
        f"{t.backend}{':' + t.variant if t.variant else ''} {key(t)[2]}"
        for t in cand_targets
        if key(t) not in base_by_key
    ]
    cand, base = measure_interleaved(
        pairs,
        cfg.batch_sizes,
        rounds=cfg.repeats,
        device=device,
        warmup=cfg.warmup,
        min_time_s=cfg.min_time_s,
        seed=cfg.seed,
        flops_model=cand_flops,
        progress=progress,
    )
    for rep, art in ((cand, candidate), (base, baseline)):
        rep.settings.update(
            {
                "generator": Path(art.source).name if art.source else "in-memory",
                "vs": Path(baseline.source).name if art is candidate and baseline.source else None,
            }
        )
        rep.compute_speedups()
    comp = compare_reports(
        base,
        cand,
        max_slowdown=max_slowdown,
        interleaved=True,
        baseline_name=str(baseline.path or baseline.source),
        current_name=str(candidate.path or candidate.source),
    )
    if unmatched:
        comp.notes.append(
            f"not measured: the baseline build has no {', '.join(unmatched)} target to pair with"
        )
    files = cand.write(out, plot=cfg.plot)
    base.write(out / "vs-baseline", plot=False)
    files.update(comp.write(markdown=out / "comparison.md"))
    return BenchVsResult(cand, base, comp, files)


def bench_images(artifact: Artifact, cfg: BenchOptions) -> tuple[Any, dict[str, Any] | None]:
    """``bench --images DIR``: the folder's images as the generator's image input, and their record.

    Enough for the largest batch and, with ``--fid N``, for both drift sets (2N).

    Raises:
        InputError: No image input, no readable image, or too few images for ``--fid``.
    """
    if cfg.images is None:
        return None, None
    from accelkit.quality.images import input_images

    want = max(max(cfg.batch_sizes), 2 * cfg.fid)
    images, rec = input_images(artifact.spec, cfg.images, want, "--images")
    if cfg.fid and len(images) < 2 * cfg.fid:
        raise InputError(
            f"--fid {cfg.fid} with --images needs {2 * cfg.fid} images (N for the drift set, N more for the noise floor); "
            f"{cfg.images} holds {len(images)}: lower --fid to {len(images) // 2} or add images"
        )
    return images, rec


def measure_quality(
    artifact: Artifact,
    targets: Sequence[BenchTarget],
    report: Report,
    cfg: BenchOptions,
    device: str,
    out: Path,
    progress: Callable[[str], None] | None = None,
    reference: Artifact | None = None,
    images: Any = None,
    images_rec: dict[str, Any] | None = None,
    verdict_settings: Any = None,
) -> dict[str, Path]:
    """Add the quality verdict, FID/KID/paired drift and the noise floor to every measured row; write grids and the scatter.

    Every build bench makes is a precision or backend change of the reference (same
    latents, same images expected), so the paired test decides each row's verdict
    (:mod:`accelkit.quality.verdict`); the old paired-FID rule is kept as ``legacy_verdict``.
    Beside each build's sample grid, ``diff_<backend>_<precision>.png`` shows
    ``|build - reference| x k`` on the same latents.

    The reference is ``reference`` when given (its FP32 torch model; it must share the
    generator's spec), else the generator's own FP32 torch model. With ``images`` (real
    inputs of an image-to-image generator, ``bench --images``) every set is made from
    them and the grids show them in an ``input`` row.

    Returns:
        Paths of the PNG files written (sample grids, speed-vs-drift scatter).
    """
    from accelkit.benchmark.plot import plot_speed_vs_drift, save_diff_grid, save_grid
    from accelkit.errors import NonFiniteOutputError
    from accelkit.quality.drift import DriftMeter
    from accelkit.quality.features import FeatureExtractor
    from accelkit.runners.base import create_runner

    ref_art = reference or artifact
    if ref_art.format != "torch":
        raise InputError(
            "--fid needs a torch generator as the FP32 reference; pass the .pt/.pt2/TorchScript file (or --reference), not ONNX"
        )
    if reference is not None and (
        reference.spec.inputs != artifact.spec.inputs
        or reference.spec.output_shape != artifact.spec.output_shape
    ):
        raise InputError(
            "--reference has different inputs or output shape than the generator; drift needs the same latents and image size"
        )
    extractor = FeatureExtractor(
        cfg.fid_weights, device=device, threads=cfg.threads, precision=cfg.fid_precision
    )
    from accelkit.quality.images import check_fid_mode

    extractor.resize_mode = check_fid_mode(cfg.fid_mode)
    extractor.load()
    say = progress or (lambda m: None)
    ref_runner = create_runner(
        "torch",
        ref_art,
        device=device,
        precision="fp32",
        **({"threads": cfg.threads} if cfg.threads else {}),
    )
    files: dict[str, Path] = {}
    with ref_runner:
        meter = DriftMeter(
            ref_runner,
            reference_identity(ref_art),
            extractor,
            cfg.fid,
            cfg.seed,
            cfg.fid_batch,
            out / "artifacts",
            progress=say,
            images=images,
            images_id={k: v for k, v in (images_rec or {}).items() if k != "folder"} or None,
            settings=verdict_settings,
        )
        try:
            meter.prepare()
            ref_imgs = meter.first_images(None, 8)
            inputs = meter.first_inputs(
                8
            )  # an image-to-image generator's grid shows its inputs first
            head = (
                [("input" + (" (--images)" if images is not None else " (seeded)"), inputs)]
                if inputs is not None
                else []
            )
            grid_rows = [
                (
                    "reference torch fp32" if reference is None else "reference (--reference)",
                    ref_imgs,
                )
            ]
            for t in targets:
                if t.artifact is None or t.skip_reason:
                    continue
                rows = [
                    r
                    for r in report.rows
                    if r.backend == t.backend
                    and r.variant == t.variant
                    and r.status == "ok"
                    and r.precision == (t.options.get("precision") or t.artifact.precision)
                ]
                if not rows:
                    continue
                label = f"{rows[0].label} {rows[0].precision}"
                if (
                    reference is None
                    and t.backend == "torch"
                    and rows[0].precision == "fp32"
                    and t.variant is None
                    and not cfg.channels_last
                ):
                    drift, imgs = meter.reference_drift(), ref_imgs
                else:
                    say(f"quality drift: {label} on {cfg.fid} images")
                    try:
                        with create_runner(
                            t.backend, t.artifact, device=device, **t.options
                        ) as runner:
                            drift = meter.measure(runner)
                            imgs = meter.first_images(runner, 8)
                    except NonFiniteOutputError as exc:
                        for r in rows:
                            r.status, r.reason = "failed", f"quality: {exc}"
                        continue
                for r in rows:
                    for k, v in drift.row_fields().items():
                        setattr(r, k, v)
                grid_rows.append((label, imgs))
                stem = f"{rows[0].label.replace(':', '-')}_{rows[0].precision}"
                files[f"grid_{stem}.png"] = save_grid(
                    head + [grid_rows[0], (label, imgs)], out / f"grid_{stem}.png"
                )
                if drift.verdict != "reference":
                    # Paired builds: where the build differs from the reference, amplified.
                    diff_png, amp = save_diff_grid(
                        ref_imgs, imgs, out / f"diff_{stem}.png", label=label, head=head
                    )
                    files[f"diff_{stem}.png"] = diff_png
                    for r in rows:
                        r.extra = {**r.extra, "diff_amplification": amp}
            files["samples_grid.png"] = save_grid(head + grid_rows, out / "samples_grid.png")
        finally:
            meter.close()
    report.settings["fid"] = {
        "n": cfg.fid,
        "seed": cfg.seed,
        "reference": Path(ref_art.source).name if ref_art.source else "in-memory",
        "fid_mode": extractor.resize_mode,
        **({"images": images_rec} if images_rec else {}),
        **meter.provenance(),
        "verdict_settings": meter.settings.to_dict(),
        "numerical_noise": meter.noise_what,
    }
    files["speed_vs_drift.png"] = plot_speed_vs_drift(report, out / "speed_vs_drift.png")
    return files


def recorded_source(artifact: Artifact) -> Any:
    """The generator an exported artifact was made from, as :class:`LoadOptions`, when it can be trusted to be it.

    An ONNX file (or engine) accelkit wrote records in its sidecar the source file, its
    sha256 and how it was loaded (architecture and arguments, the spec). When that file
    still exists with the same sha256, ``bench BUILD --fid N`` measures drift against it
    without ``--reference``; otherwise None (the caller asks for ``--reference``).
    Nothing from the sidecar is imported: the architecture is followed only as
    :func:`accelkit.loading.load_generator` follows one the user gave, and a pickled
    module is never loaded (``trust_pickle`` stays off).
    """
    from accelkit.files import sha256_file
    from accelkit.pipelines.options import LoadOptions
    from accelkit.spec import input_flag

    if artifact.format == "torch" or not artifact.source or not artifact.source_sha256:
        return None
    src = Path(artifact.source)
    load = next((p.get("options") or {} for p in artifact.passes if p.get("name") == "load"), {})
    if load.get("format") == "onnx" or not src.is_file():
        return None
    try:
        if sha256_file(src) != artifact.source_sha256:
            return None
    except AccelkitError:
        return None
    kwargs = artifact.meta.get("arch_kwargs") or load.get("arch_kwargs") or {}
    return LoadOptions(
        generator=str(src),
        arch=artifact.meta.get("arch") or load.get("arch"),
        arch_kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
        inputs=tuple(input_flag(i) for i in artifact.spec.inputs),
        output_range=artifact.spec.output_range,
    )


def teacher_reference(reference: Any, artifact: Artifact) -> Any:
    """``--reference`` as the teacher recorded in a pruned model's sidecar, when it is that file.

    ``accelkit prune`` records how its teacher was loaded (architecture, output shape) and
    the pruned model keeps the teacher's inputs and range; so ``bench PRUNED --fid N
    --reference TEACHER`` needs no ``--arch``/``--input`` flags. A reference given with
    its own ``--reference-arch``, or another file, is loaded as given.
    """
    from accelkit.files import sha256_file
    from accelkit.pipelines.options import LoadOptions
    from accelkit.spec import input_flag

    teacher = artifact.meta.get("teacher")
    if (
        not isinstance(reference, LoadOptions)
        or reference.arch
        or not isinstance(teacher, dict)
        or reference.generator is None
    ):
        return reference
    path = Path(reference.generator)
    if not path.is_file() or sha256_file(path) != teacher.get("sha256"):
        return reference
    shape = teacher.get("output_shape")
    return replace(
        reference,
        arch=teacher.get("arch"),
        arch_kwargs=dict(teacher.get("arch_kwargs") or {}),
        inputs=tuple(input_flag(i) for i in artifact.spec.inputs)
        if not reference.inputs
        else reference.inputs,
        output_range=reference.output_range or artifact.spec.output_range,
        output_shape=tuple(shape) if shape else reference.output_shape,
    )


def drift_vs_reference(
    reference: Artifact,
    candidates: Sequence[tuple[str, Artifact]],
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 32,
    fid_weights: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Drift of torch generators against another one's FP32 torch model, on the same ``n`` latents.

    For models that are not accelerated builds of the reference (a pruned or distilled
    student and its teacher): each candidate runs in torch fp32 on set A; the noise
    floor is the reference on A vs B, as in ``bench --fid``.

    Returns:
        label -> :class:`~accelkit.quality.drift.Drift`, in the order given.

    Raises:
        InputError: A candidate has other inputs or another output shape than the reference.
    """
    from accelkit.quality.drift import DriftMeter
    from accelkit.quality.features import FeatureExtractor
    from accelkit.runners.base import create_runner

    for label, art in candidates:
        if (
            art.spec.inputs != reference.spec.inputs
            or art.spec.output_shape != reference.spec.output_shape
        ):
            raise InputError(
                f"{label} has different inputs or output shape than the reference; drift needs the same latents and image size"
            )
    say = progress or (lambda m: None)
    extractor = FeatureExtractor(fid_weights, device=device, threads=threads)
    extractor.load()
    opts: dict[str, Any] = {"precision": "fp32", **({"threads": threads} if threads else {})}
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="accelkit-drift-") as tmp,
        create_runner("torch", reference, device=device, **opts) as ref,
    ):
        meter = DriftMeter(
            ref,
            reference_identity(reference),
            extractor,
            n,
            seed,
            batch_size,
            Path(tmp),
            progress=say,
        )
        try:
            meter.prepare()
            for label, art in candidates:
                say(f"FID drift: {label} on {n} images")
                with create_runner("torch", art, device=device, **opts) as runner:
                    results[label] = meter.measure(runner)
        finally:
            meter.close()
    return results
