"""``bench`` and ``bench_vs``: measure every backend, optionally with quality drift, and report.

This is the orchestration behind ``accelkit bench``: plan the targets
(:mod:`accelkit.benchmark.plan`), measure them (:func:`accelkit.benchmark.suite.run_benchmark`),
add quality drift against the FP32 torch reference (:mod:`accelkit.quality.drift`),
and write the report folder (:class:`accelkit.benchmark.report.Report`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
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
from accelkit.errors import InputError
from accelkit.files import folder_lock, storage_error
from accelkit.pipelines.options import resolve_artifact, trusts_code
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
        """The comparison's: 0 pass, 1 regression, 3 the gate cannot tell."""
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
    options.validated()
    check_out_folder(Path(options.out), options.force)
    if options.fid.n:
        from accelkit.quality.features import resolve_weights

        resolve_weights(options.fid.weights)  # missing weights: fail before any work
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
    if reference is not None and not cfg.fid.n:
        raise InputError("--reference only matters with --fid N")
    say = progress or (lambda m: None)
    say("loading the generator")
    artifact = resolve_artifact(generator)
    if cfg.fid.n:  # the extractor is code too: refused before any work, not after the speed rows
        from accelkit.quality.features import check_weights_code

        check_weights_code(cfg.fid.weights, trusts_code(generator))
    from accelkit.pipelines import diffusion as dif

    if dif.is_pipeline(artifact) or dif.is_component(artifact):
        if reference is not None:
            raise InputError(
                "--reference does not apply to a diffusion pipeline: drift is measured against its reference "
                "sampler in torch fp32"
            )
        out = Path(cfg.out)
        with folder_lock(out, "a benchmark report"):
            check_out_folder(out, cfg.force)
            return dif.bench(artifact, cfg, cfg.diffusion, device, out, progress)  # type: ignore[no-any-return]
    dif.refuse_knobs(cfg.diffusion, artifact)
    if reference is None and cfg.fid.n and artifact.format != "torch":
        reference = (
            recorded_source(  # an exported build: its own FP32 torch model, as its sidecar names it
                artifact,
                trust=trusts_code(generator),
            )
        )
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
        return _bench_locked(
            artifact,
            reference,
            cfg,
            device,
            out,
            progress,
            verdict_settings,
            trust_code=trusts_code(generator),
        )


def _bench_locked(
    artifact: Artifact,
    reference: Artifact | None,
    cfg: BenchOptions,
    device: str,
    out: Path,
    progress: Progress | None,
    verdict_settings: Any = None,
    *,
    trust_code: bool = False,
) -> BenchResult:
    from accelkit.errors import one_line

    workdir = out / "artifacts"
    try:
        workdir.mkdir(exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"cannot write in {out}") from None
    images, images_rec = bench_images(artifact, cfg)
    threads = cfg.threads.resolve(device)  # one thread policy for every row, chosen once
    targets, fp32_path = plan_targets(artifact, cfg, device, workdir, progress, threads=threads)
    report = Report()
    record_cpu_peaks(report, device, threads, {t.precision_label() for t in targets})
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
        warmup=cfg.timing.warmup,
        repeats=cfg.timing.repeats,
        min_time_s=cfg.timing.min_time_s,
        seed=cfg.seed,
        flops_model=fp32_path,
        report=report,
        progress=progress,
        images=images,
    )
    extra_files: dict[str, Path] = {}
    warnings: list[str] = []
    if cfg.fid.n:
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
                trust_code=trust_code,
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


def record_cpu_peaks(
    report: Report, device: str, threads: int | None, precisions: set[str]
) -> None:
    """Record this CPU's measured GEMM peak per precision in ``report.settings``: the bound no
    row's implied FLOP/s may exceed before its speed-up is withheld as implausible."""
    if device != "cpu" or not threads:
        return
    from accelkit.flops import cpu_peak_gflops

    peaks = {p: cpu_peak_gflops(threads, p) for p in sorted(precisions)}
    report.settings["cpu_peak_gflops"] = {p: round(v, 1) for p, v in peaks.items() if v}


def bench_vs(
    candidate: Any,
    baseline: Any,
    options: BenchOptions | None = None,
    progress: Progress | None = None,
    max_slowdown: float | str = 0.05,
    allow_unreliable: bool = False,
) -> BenchVsResult:
    """Bench a candidate against a baseline build **interleaved in one process**.

    Each of ``cfg.timing.repeats`` rounds measures, per batch size and per matching
    (backend, precision) pair, the candidate and the baseline back to back (alternating
    which goes first), one repeat each; the rounds are then merged so every row holds one
    sample per round. A burst of load from another process therefore hits both sides of
    the ratio, which is what lets a ratio gate on a noisy shared machine
    (:func:`accelkit.gate.interleave.measure_interleaved`; the comparison resamples whole
    rounds). No row measured on both sides leaves the gate unable to tell (exit 3), never a pass.

    Args:
        candidate, baseline: Path, bundled name, :class:`LoadOptions` or :class:`Artifact` each.
        options: :class:`BenchOptions` (``fid`` must be 0).
        progress: Called with a short message per step.
        max_slowdown: Allowed slowdown before a row regresses: a fraction or ``"5%"``.
        allow_unreliable: Accept (exit 0, said loudly) a comparison that cannot tell,
            where it compared something; a regression still fails.

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
    if cfg.fid.n:
        raise InputError("--vs and --fid cannot be combined; run the drift measurement separately")
    say = progress or (lambda m: None)
    say("loading both builds")
    candidate = resolve_artifact(candidate)
    baseline = resolve_artifact(baseline)
    if "diffusion" in (candidate.format, baseline.format):
        raise InputError(
            "--vs does not pair diffusion pipelines yet; bench each and compare the two results.json "
            "with accelkit compare"
        )
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
        rounds=cfg.timing.repeats,
        device=device,
        warmup=cfg.timing.warmup,
        min_time_s=cfg.timing.min_time_s,
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
        allow_unreliable=allow_unreliable,
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

    n = cfg.fid.n
    want = max(max(cfg.batch_sizes), 2 * n)
    images, rec = input_images(artifact.spec, cfg.images, want, "--images")
    if n and len(images) < 2 * n:
        raise InputError(
            f"--fid {n} with --images needs {2 * n} images (N for the drift set, N more for the noise floor); "
            f"{cfg.images} holds {len(images)}: lower --fid to {len(images) // 2} or add images"
        )
    return images, rec


@dataclass
class DriftSession:
    """A prepared reference kept across :func:`measure_quality` calls.

    ``optimize`` checks many builds, one call each, against one reference: with a session
    the reference's images, features, noise floor and margin anchor are made once (by the
    first call) and reused while the measurement that made them is the same (``key``);
    another measurement replaces them. :meth:`close` drops them.

    Attributes:
        key: What the kept reference was made for (reference, N, seed, extractor, ...).
        extractor: The loaded feature extractor.
        reference: The reference runner (inactive between calls).
        meter: The prepared :class:`~accelkit.quality.drift.DriftMeter`.
    """

    key: str | None = None
    extractor: Any = None
    reference: Any = None
    meter: Any = None

    def close(self) -> None:
        """Drop the kept reference (its image file included)."""
        if self.meter is not None:
            self.meter.close()
        self.key = self.extractor = self.reference = self.meter = None


@dataclass
class DriftPlan:
    """How :func:`measure_quality` measures a generator kind whose rows are not plain
    ``create_runner`` targets (a diffusion pipeline).

    Attributes:
        reference: Makes the reference runner (inactive).
        reference_id: What identifies the reference in the feature cache.
        reference_label: The reference's name in grids and ``settings.fid``.
        is_reference: Whether a target's rows are the reference itself (their drift is the floor).
        fields: The row fields of a target's drift (default: ``drift.row_fields()``).
        label_suffix: Added to a row's label in grids (e.g. its sampler).
        test: The quality test deciding a target's verdict: ``paired`` (same trajectories:
            precision/backend changes) or ``distribution`` (steps, scheduler or a step cache
            change the trajectories; paired error is then shown, not deciding).
    """

    reference: Callable[[], Any]
    reference_id: dict[str, Any]
    reference_label: str
    is_reference: Callable[[BenchTarget], bool]
    fields: Callable[[Any, BenchTarget], dict[str, Any]] = lambda drift, t: drift.row_fields()
    label_suffix: Callable[[Any], str] = lambda row: ""
    test: Callable[[BenchTarget], str] = lambda t: "paired"


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
    trust_code: bool = False,
    plan: DriftPlan | None = None,
    session: DriftSession | None = None,
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
    them and the grids show them in an ``input`` row. A generator kind whose rows run
    another way (a diffusion pipeline: the sampling loop, against its reference sampler)
    passes a :class:`DriftPlan`. With a :class:`DriftSession` the prepared reference is
    kept for the next call with the same measurement (the caller closes the session).

    Returns:
        Paths of the PNG files written (sample grids, speed-vs-drift scatter).
    """
    from accelkit.benchmark.plot import plot_speed_vs_drift, save_diff_grid, save_grid
    from accelkit.errors import NonFiniteOutputError
    from accelkit.quality.drift import DriftMeter
    from accelkit.quality.features import FeatureExtractor
    from accelkit.runners.base import create_runner

    ref_art = reference or artifact
    if plan is None and ref_art.format != "torch":
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
    threads = cfg.threads.resolve(device)
    say = progress or (lambda m: None)
    ref_id = plan.reference_id if plan is not None else reference_identity(ref_art)
    images_id = {k: v for k, v in (images_rec or {}).items() if k != "folder"} or None
    key = json.dumps(
        [ref_id, asdict(cfg.fid), cfg.seed, device, threads, images_id, trust_code,
         None if verdict_settings is None else verdict_settings.to_dict()],
        sort_keys=True,
        default=str,
    )  # fmt: skip
    kept = session is not None and session.key == key and session.meter is not None
    if session is not None and not kept:
        session.close()
    if kept:
        assert session is not None
        extractor, ref_runner, meter = session.extractor, session.reference, session.meter
        meter.say = say
    else:
        extractor = FeatureExtractor(
            cfg.fid.weights,
            device=device,
            threads=threads,
            precision=cfg.fid.precision,
            trust_code=trust_code,
        )
        extractor.resize_mode = cfg.fid.mode
        extractor.load()
        ref_runner = (
            plan.reference()
            if plan is not None
            else create_runner(
                "torch",
                ref_art,
                device=device,
                precision="fp32",
                **({"threads": threads} if threads else {}),
            )
        )
        meter = DriftMeter(
            ref_runner,
            ref_id,
            extractor,
            cfg.fid.n,
            cfg.seed,
            cfg.fid.batch,
            out / "artifacts",
            progress=say,
            images=images,
            images_id=images_id,
            settings=verdict_settings,
        )
    files: dict[str, Path] = {}
    with ref_runner:
        try:
            if not kept:
                meter.prepare(
                    distribution=plan is not None
                    and any(plan.test(t) == "distribution" for t in targets)
                )
            if session is not None:
                session.key, session.extractor, session.reference = key, extractor, ref_runner
                session.meter = meter
            ref_imgs = meter.first_images(None, 8)
            inputs = meter.first_inputs(
                8
            )  # an image-to-image generator's grid shows its inputs first
            head = (
                [("input" + (" (--images)" if images is not None else " (seeded)"), inputs)]
                if inputs is not None
                else []
            )
            ref_label = "reference torch fp32" if reference is None else "reference (--reference)"
            grid_rows = [(plan.reference_label if plan is not None else ref_label, ref_imgs)]
            for t in targets:
                if t.artifact is None or t.skip_reason:
                    continue
                prec = (
                    t.precision_label()
                    if t.make_runner is not None
                    else (t.options.get("precision") or t.artifact.precision)
                )
                rows = [
                    r
                    for r in report.rows
                    if r.backend == t.backend
                    and r.variant == t.variant
                    and r.status == "ok"
                    and r.precision == prec
                ]
                if not rows:
                    continue
                label = f"{rows[0].label} {rows[0].precision}" + (
                    plan.label_suffix(rows[0]) if plan is not None else ""
                )
                if (
                    plan.is_reference(t)
                    if plan is not None
                    else (
                        reference is None
                        and t.backend == "torch"
                        and rows[0].precision == "fp32"
                        and t.variant is None
                        and not cfg.channels_last
                    )
                ):
                    drift, imgs = meter.reference_drift(), ref_imgs
                else:
                    say(f"quality drift: {label} on {cfg.fid.n} images")
                    try:
                        with (
                            t.make_runner()
                            if t.make_runner is not None
                            else create_runner(t.backend, t.artifact, device=device, **t.options)
                        ) as runner:
                            drift = meter.measure(
                                runner, test=plan.test(t) if plan is not None else "paired"
                            )
                            imgs = meter.first_images(runner, 8)
                    except NonFiniteOutputError as exc:
                        for r in rows:
                            r.status, r.reason = "failed", f"quality: {exc}"
                        continue
                fields = plan.fields(drift, t) if plan is not None else drift.row_fields()
                for r in rows:
                    for k, v in fields.items():
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
            if session is None:
                meter.close()
    report.settings["fid"] = {
        "n": cfg.fid.n,
        "seed": cfg.seed,
        "reference": plan.reference_label
        if plan is not None
        else Path(ref_art.source).name
        if ref_art.source
        else "in-memory",
        "fid_mode": extractor.resize_mode,
        **({"images": images_rec} if images_rec else {}),
        **meter.provenance(),
        "verdict_settings": meter.settings.to_dict(),
        "numerical_noise": meter.noise_what,
    }
    files["speed_vs_drift.png"] = plot_speed_vs_drift(report, out / "speed_vs_drift.png")
    return files


def _record_arch(arch: str | None, kwargs: Any, src: Path, what: str, record: Any) -> str | None:
    """A recorded architecture, followed only when bundled; else the error names the flags to add."""
    from accelkit.loading import is_bundled_architecture, shell_join

    if not arch or is_bundled_architecture(arch):
        return arch
    flags = shell_join(["--reference", str(src), *record.arch_flags("--reference-arch")])
    raise InputError(
        f"{what} was loaded with the architecture {arch!r}, and accelkit never imports an architecture named in a "
        f"sidecar; if you trust that code, name it yourself: add {flags}"
    )


def _reference_options(src: Path, record: Any, artifact: Artifact, base: Any = None) -> Any:
    """:class:`LoadOptions` that load ``src`` as it was loaded when ``artifact`` was made from it."""
    from accelkit.pipelines.options import LatentDistribution, LoadOptions
    from accelkit.spec import input_flag

    lo = base if base is not None else LoadOptions(generator=str(src))
    return replace(
        lo,
        inputs=lo.inputs or tuple(input_flag(i) for i in artifact.spec.inputs),
        output_range=lo.output_range or artifact.spec.output_range,
        output_shape=lo.output_shape or record.output_shape,
        latent_dist=lo.latent_dist
        or (LatentDistribution(record.latent_dist) if record.latent_dist else None),
        truncation=lo.truncation if lo.truncation is not None else record.truncation,
    )


def recorded_source(artifact: Artifact, trust: bool = False) -> Any:
    """The generator an exported artifact was made from, as :class:`LoadOptions`, when it can be trusted to be it.

    An ONNX file (or engine) accelkit wrote records in its sidecar the source file, its
    sha256 and every loading flag (:class:`~accelkit.loading.LoadRecord`: inputs, output
    shape, range...). When that file still exists with the same sha256, ``bench BUILD --fid
    N`` measures drift against it without ``--reference`` or loading flags; otherwise None
    (the caller asks for ``--reference``). A sidecar is a claim: an architecture it names is
    followed only when bundled (else the error names ``--reference``/``--reference-arch``),
    and trust comes only from this command's own ``--trust-code``.

    Raises:
        InputError: The source was loaded with a user architecture (the message names the flags).
    """
    from accelkit.loading import source_record

    found = source_record(artifact)
    if found is None:
        return None
    rec = found.record
    what = f"{artifact.path or 'this build'}'s source {found.path}"
    arch = _record_arch(rec.arch, rec.arch_kwargs, found.path, what, rec)
    from accelkit.pipelines.options import LoadOptions

    base = LoadOptions(
        generator=str(found.path),
        arch=arch,
        arch_kwargs=dict(rec.arch_kwargs) if arch else {},
        trust_code=trust,
    )
    return _reference_options(found.path, rec, artifact, base)


def teacher_reference(reference: Any, artifact: Artifact) -> Any:
    """``--reference`` completed from the record of the file it names, when it is the one recorded.

    ``accelkit prune`` records how its teacher was loaded (its :class:`~accelkit.loading.LoadRecord`)
    and ``accelkit export`` how its source was; so ``bench PRUNED --fid N --reference
    TEACHER`` and ``bench BUILD --fid N --reference SRC`` need no ``--input`` /
    ``--output-shape`` flags. An architecture comes from ``--reference-arch`` or, when
    bundled, from the record; a user architecture only recorded is refused with the flag to add.
    """
    from accelkit.loading import LoadRecord, load_record
    from accelkit.loading.sidecars import path_sha256
    from accelkit.pipelines.options import LoadOptions

    if not isinstance(reference, LoadOptions) or reference.generator is None:
        return reference
    path = Path(reference.generator)
    if not path.exists():
        return reference
    sha = path_sha256(path)
    teacher = artifact.meta.get("teacher")
    if isinstance(teacher, dict) and sha == teacher.get("sha256"):
        rec = LoadRecord.from_dict(teacher)
    elif artifact.format != "torch" and sha == artifact.source_sha256:
        rec = load_record(artifact)
    else:
        return reference
    if not reference.arch:
        arch = _record_arch(rec.arch, rec.arch_kwargs, path, str(path), rec)
        if arch:
            reference = replace(reference, arch=arch, arch_kwargs=dict(rec.arch_kwargs))
    return _reference_options(path, rec, artifact, reference)


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
    trust_code: bool = False,
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
    extractor = FeatureExtractor(fid_weights, device=device, threads=threads, trust_code=trust_code)
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
