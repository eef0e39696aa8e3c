"""``accelkit bench`` end to end: load, make the artifacts each backend needs, measure, report.

:func:`plan_targets` turns a :class:`BenchConfig` into the backend configurations
(:class:`~accelkit.bench.suite.BenchTarget`) for one generator; :func:`bench` runs them
with :func:`~accelkit.bench.suite.run_benchmark` and writes the report folder.

Defaults: every backend and precision this machine can run. What it cannot run is kept
as a ``skipped`` row with the reason, so the report says what was left out and why.
A backend the user asked for by name that cannot run here is an error instead
(:class:`~accelkit.errors.BackendUnavailableError`, exit 2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from accelkit.artifact import Artifact
from accelkit.bench.report import Report
from accelkit.bench.suite import BenchTarget, run_benchmark
from accelkit.errors import AccelkitError, BackendUnavailableError, InputError
from accelkit.runners.base import RUNNERS, runner_class

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "bf16")
DEFAULT_PRECISIONS = ("fp32", "fp16")


@dataclass
class BenchConfig:
    """Everything ``accelkit bench`` was asked for.

    Attributes:
        backends: Backend names; empty = every backend this machine can run.
        precisions: ``fp32``, ``fp16``, ``bf16`` (bf16: torch only).
        batch_sizes: Images per iteration.
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]``.
        out: Report folder (also holds the exported ONNX files under ``artifacts/``).
        warmup, repeats, min_time_s: Timing budget (see ``measure_throughput``).
        threads: CPU threads for torch and ONNX Runtime (None: physical cores).
        seed: Latent seed, identical for every backend.
        batch_range: TensorRT optimization profile ``(min, opt, max)``.
        compile: Add a ``torch.compile`` torch row.
        channels_last: Run torch in channels_last memory format.
        cuda_graphs: Capture torch runs in CUDA graphs (CUDA only).
        ort_tensorrt: Add ONNX Runtime rows on its TensorRT execution provider (CUDA).
        plot: Write the throughput PNG.
        fid: Images per set for quality drift (0: no drift measurement).
        fid_weights: Feature extractor TorchScript (None: the packaged FID Inception).
        fid_batch: Images per inference call while measuring drift.
    """

    backends: Sequence[str] = ()
    precisions: Sequence[str] = DEFAULT_PRECISIONS
    batch_sizes: Sequence[int] = (1, 8)
    device: str = "auto"
    out: Path = Path("accelkit-results")
    warmup: int = 3
    repeats: int = 5
    min_time_s: float = 0.5
    threads: int | None = None
    seed: int = 0
    batch_range: tuple[int, int, int] | None = None
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False
    ort_tensorrt: bool = False
    plot: bool = True
    fid: int = 0
    fid_weights: str | None = None
    fid_batch: int = 32

    def validate(self) -> None:
        """Raise :class:`InputError` for values that cannot work."""
        unknown = [b for b in self.backends if b not in RUNNERS]
        if unknown:
            raise InputError(f"--backend {','.join(unknown)} is unknown; choose from {', '.join(RUNNERS)}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise InputError(f"--precision {','.join(bad)} is unknown; choose from {', '.join(PRECISIONS)}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise InputError("--batch needs positive integers, e.g. --batch 1,8,32")
        if self.repeats < 3:
            raise InputError(f"--repeats {self.repeats} is too few for a median and spread; use 3 or more")
        if self.warmup < 0 or self.min_time_s <= 0:
            raise InputError("--warmup must be >= 0 and --min-time > 0")
        if self.fid < 0 or self.fid == 1:
            raise InputError(f"--fid {self.fid}: give the number of images per set (e.g. 500), or 0 for none")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; others checked as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"--device {device!r} is unknown; use auto, cpu or cuda[:N]")
    return device


def _max_batch(cfg: BenchConfig) -> tuple[int, int, int]:
    if cfg.batch_range is not None:
        return cfg.batch_range
    lo, hi = min(cfg.batch_sizes), max(cfg.batch_sizes)
    return (lo, sorted(cfg.batch_sizes)[len(cfg.batch_sizes) // 2], max(hi, 2))


def check_requested_backends(cfg: BenchConfig, device: str) -> list[str]:
    """The backends to plan. Named ones must be able to run here (else exit-2 error).

    Raises:
        BackendUnavailableError: A backend named with ``--backend`` cannot run on ``device``.
    """
    from accelkit.runners.base import available_backends

    if not cfg.backends:
        return list(RUNNERS)
    for name in cfg.backends:
        reason = runner_class(name).availability(device)  # ort on cuda checks the CUDA provider
        if reason is not None:
            avail = available_backends(device)
            raise BackendUnavailableError(
                f"--backend {name} cannot run on {device} here: {reason}; available here: {', '.join(avail) or 'none'}"
            )
    return list(cfg.backends)


def plan_targets(
    artifact: Artifact,
    cfg: BenchConfig,
    device: str,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[BenchTarget], Path | None]:
    """Make the artifacts each (backend, precision) needs and describe the targets.

    The torch fp32 row comes first (the speed-up baseline). ONNX files are exported
    once per precision into ``workdir`` and shared by ONNX Runtime and TensorRT.

    Returns:
        ``(targets, fp32_onnx_path)``; the ONNX path is used to count FLOPs.
    """
    from accelkit.passes.export import OnnxFromTorch
    from accelkit.passes.fp16 import Fp16

    say = progress or (lambda m: None)
    backends = check_requested_backends(cfg, device)
    targets: list[BenchTarget] = []
    threads = {"threads": cfg.threads} if cfg.threads else {}
    br = _max_batch(cfg)

    # ---- torch
    if "torch" in backends:
        if artifact.format != "torch":
            for p in cfg.precisions:
                targets.append(BenchTarget("torch", None, precision=p, skip_reason="the generator was given as ONNX; torch rows need the torch model"))
        else:
            for p in cfg.precisions:
                opts: dict[str, Any] = {"precision": p, **threads}
                if cfg.channels_last:
                    opts["channels_last"] = True
                if cfg.cuda_graphs:
                    opts["cuda_graphs"] = True
                reason = None
                if p == "int8":
                    reason = "int8 is an ONNX Q/DQ precision; it runs on ort and trt, not torch eager"
                elif p == "fp16" and not device.startswith("cuda"):
                    reason = "torch fp16 runs on CUDA only (CPU half kernels are missing or slow); use bf16 on CPU"
                targets.append(BenchTarget("torch", artifact if reason is None else None, opts, precision=p, skip_reason=reason))
                if cfg.compile and reason is None:
                    targets.append(BenchTarget("torch", artifact, {**opts, "compile": True}, variant="compile"))

    # ---- ONNX artifacts for ort / trt
    onnx_by_prec: dict[str, Artifact | str] = {}
    needs_onnx = [b for b in backends if b in ("ort", "trt")]
    fp32_path: Path | None = None
    if needs_onnx:
        try:
            if artifact.format == "onnx":
                fp32 = artifact
            else:
                say("exporting fp32 ONNX for ort/trt")
                fp32 = OnnxFromTorch(workdir / f"{artifact.name}.onnx", batch_range=br, force=True, progress=say)(artifact)
            onnx_by_prec["fp32"] = fp32
            fp32_path = fp32.path
        except AccelkitError as exc:
            onnx_by_prec["fp32"] = f"ONNX export failed: {exc}"
        from accelkit.passes.int8 import Int8

        converters = {
            "fp16": lambda base: Fp16(workdir / f"{artifact.name}.fp16.onnx", force=True, progress=say)(base),
            "int8": lambda base: Int8(workdir / f"{artifact.name}.int8.onnx", force=True, calib_samples=64, progress=say)(base),
        }
        for prec, convert in converters.items():
            if prec not in cfg.precisions:
                continue
            base = onnx_by_prec["fp32"]
            if isinstance(base, str):
                onnx_by_prec[prec] = base
            elif base.precision != "fp32":
                onnx_by_prec[prec] = f"the ONNX file is {base.precision}; {prec} is made from fp32"
            else:
                try:
                    say(f"converting to {prec} ONNX")
                    onnx_by_prec[prec] = convert(base)
                except AccelkitError as exc:
                    onnx_by_prec[prec] = f"{prec} conversion failed: {exc}"
    for backend in needs_onnx:
        for p in cfg.precisions:
            if p == "bf16":
                targets.append(BenchTarget(backend, None, precision=p, skip_reason=f"bf16 is a torch-only precision here; {backend} takes fp32/fp16 ONNX"))
                continue
            made = onnx_by_prec.get(p)
            if isinstance(made, str) or made is None:
                targets.append(BenchTarget(backend, None, precision=p, skip_reason=made or "no ONNX artifact"))
                continue
            if backend == "ort":
                provider = "cuda" if device.startswith("cuda") else "cpu"
                targets.append(BenchTarget("ort", made, {"provider": provider, **(threads if provider == "cpu" else {})}))
                if cfg.ort_tensorrt and device.startswith("cuda"):
                    targets.append(BenchTarget("ort", made, {"provider": "tensorrt"}, variant="tensorrt"))
            else:
                targets.append(BenchTarget("trt", made, {"batch_range": br, "cache_dir": str(workdir / "engines")}, flops_model=fp32_path))
    # A backend that cannot run here (not requested by name) is kept as skipped rows with the reason.
    return targets, fp32_path


def bench(
    artifact: Artifact,
    cfg: BenchConfig,
    progress: Callable[[str], None] | None = None,
    reference: Artifact | None = None,
) -> tuple[Report, dict[str, Path]]:
    """Run ``accelkit bench`` for one generator and write the report folder.

    ``reference`` (torch artifact) replaces the generator's own FP32 torch model as the
    quality reference of ``--fid``, e.g. the teacher of a pruned model.

    Returns:
        The report and the paths of the files written (json, md, csv, png).
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "artifacts"
    workdir.mkdir(exist_ok=True)
    targets, fp32_path = plan_targets(artifact, cfg, device, workdir, progress)
    report = Report()
    report.settings["generator"] = Path(artifact.source).name if artifact.source else "in-memory"
    report.settings["generator_sha256"] = (artifact.source_sha256 or "")[:16]
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
    )
    extra_files: dict[str, Path] = {}
    if cfg.fid:
        extra_files = measure_quality(artifact, targets, report, cfg, device, out, progress, reference=reference)
    files = report.write(out, plot=cfg.plot)
    return report, {**files, **extra_files}


def bench_vs(
    candidate: Artifact,
    baseline: Artifact,
    cfg: BenchConfig,
    progress: Callable[[str], None] | None = None,
    max_slowdown: float = 0.05,
) -> tuple[Report, Report, Any, dict[str, Path]]:
    """Bench a candidate against a baseline build **interleaved in one process**.

    Each of ``cfg.repeats`` rounds measures, per batch size and per matching
    (backend, precision) pair, the candidate and the baseline back to back (alternating
    which goes first), one repeat each; the rounds are then merged so every row holds one
    sample per round. A burst of load from another process therefore hits both sides of
    the ratio, which is what lets a ratio gate on a noisy shared machine.

    Returns:
        ``(candidate_report, baseline_report, comparison, files)``; the candidate's report
        goes to ``cfg.out``, the baseline's to ``cfg.out/vs-baseline``, and the comparison
        (:func:`accelkit.bench.compare.compare_reports`) to ``cfg.out/comparison.md``.
    """
    from accelkit.bench.compare import compare_reports
    from accelkit.bench.ratio_gate import merge_reports
    from accelkit.bench.report import collect_environment

    cfg.validate()
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "artifacts" / "vs").mkdir(parents=True, exist_ok=True)
    cand_targets, cand_flops = plan_targets(candidate, cfg, device, out / "artifacts", progress)
    base_targets, _ = plan_targets(baseline, cfg, device, out / "artifacts" / "vs", progress)

    def key(t: BenchTarget) -> tuple[str, str | None, str]:
        return (t.backend, t.variant, t.precision_label() if t.artifact is None else str(t.options.get("precision") or t.artifact.precision))

    base_by_key = {key(t): t for t in base_targets}
    pairs = [(t, base_by_key[key(t)]) for t in cand_targets if key(t) in base_by_key]
    env = collect_environment()
    parts: dict[str, list[Report]] = {"candidate": [], "baseline": []}
    for rnd in range(cfg.repeats):
        for j, b in enumerate(cfg.batch_sizes):
            for ct, bt in pairs:
                order = [("candidate", ct), ("baseline", bt)]
                for side, t in order if (rnd + j) % 2 == 0 else order[::-1]:
                    if progress:
                        progress(f"round {rnd + 1}/{cfg.repeats}: {side} {t.backend} batch {b}")
                    rep = Report(environment=env)
                    parts[side].append(
                        run_benchmark([t], [b], device=device, warmup=cfg.warmup, repeats=1, min_time_s=cfg.min_time_s,
                                      seed=cfg.seed, flops_model=cand_flops, report=rep)
                    )  # fmt: skip
    cand = merge_reports(parts["candidate"])
    base = merge_reports(parts["baseline"])
    for rep, art in ((cand, candidate), (base, baseline)):
        rep.settings.update({"generator": Path(art.source).name if art.source else "in-memory", "interleaved_rounds": cfg.repeats,
                             "vs": Path(baseline.source).name if art is candidate and baseline.source else None})  # fmt: skip
        rep.compute_speedups()
    comp = compare_reports(base, cand, max_slowdown=max_slowdown, baseline_name=str(baseline.path or baseline.source), current_name=str(candidate.path or candidate.source))
    files = cand.write(out, plot=cfg.plot)
    base.write(out / "vs-baseline", plot=False)
    files.update(comp.write(markdown=out / "comparison.md"))
    return cand, base, comp, files


def measure_quality(
    artifact: Artifact,
    targets: Sequence[BenchTarget],
    report: Report,
    cfg: BenchConfig,
    device: str,
    out: Path,
    progress: Callable[[str], None] | None = None,
    reference: Artifact | None = None,
) -> dict[str, Path]:
    """Add FID/KID/paired drift and the noise floor to every measured row; write grids and the scatter.

    The reference is ``reference`` when given (its FP32 torch model; it must share the
    generator's spec), else the generator's own FP32 torch model.

    Returns:
        Paths of the PNG files written (sample grids, speed-vs-drift scatter).
    """
    from accelkit.errors import NonFiniteOutputError
    from accelkit.quality.drift import DriftMeter, save_grid
    from accelkit.quality.features import FeatureExtractor
    from accelkit.runners.base import create_runner

    ref_art = reference or artifact
    if ref_art.format != "torch":
        raise InputError("--fid needs a torch generator as the FP32 reference; pass the .pt/.pt2/TorchScript file (or --reference), not ONNX")
    if reference is not None and (reference.spec.inputs != artifact.spec.inputs or reference.spec.output_shape != artifact.spec.output_shape):
        raise InputError("--reference has different inputs or output shape than the generator; drift needs the same latents and image size")
    extractor = FeatureExtractor(cfg.fid_weights, device=device, threads=cfg.threads)
    extractor.load()
    say = progress or (lambda m: None)
    ref_runner = create_runner("torch", ref_art, device=device, precision="fp32", **({"threads": cfg.threads} if cfg.threads else {}))
    files: dict[str, Path] = {}
    with ref_runner:
        meter = DriftMeter(ref_runner, ref_art.source_sha256 or "unknown", extractor, cfg.fid, cfg.seed, cfg.fid_batch, out / "artifacts", progress=say)
        try:
            meter.prepare()
            ref_imgs = meter.first_images(None, 8)
            grid_rows = [("reference torch fp32" if reference is None else "reference (--reference)", ref_imgs)]
            for t in targets:
                if t.artifact is None or t.skip_reason:
                    continue
                rows = [r for r in report.rows if r.backend == t.backend and r.variant == t.variant and r.status == "ok"
                        and r.precision == (t.options.get("precision") or t.artifact.precision)]
                if not rows:
                    continue
                label = f"{rows[0].label} {rows[0].precision}"
                if reference is None and t.backend == "torch" and rows[0].precision == "fp32" and t.variant is None and not cfg.channels_last:
                    drift, imgs = meter.reference_drift(), ref_imgs
                else:
                    say(f"quality drift: {label} on {cfg.fid} images")
                    try:
                        with create_runner(t.backend, t.artifact, device=device, **t.options) as runner:
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
                name = f"grid_{rows[0].label.replace(':', '-')}_{rows[0].precision}.png"
                files[name] = save_grid([grid_rows[0], (label, imgs)], out / name)
            files["samples_grid.png"] = save_grid(grid_rows, out / "samples_grid.png")
        finally:
            meter.close()
    report.settings["fid"] = {"n": cfg.fid, "seed": cfg.seed, "reference": Path(ref_art.source).name if ref_art.source else "in-memory", **meter._provenance()}
    files["speed_vs_drift.png"] = plot_speed_vs_drift(report, out / "speed_vs_drift.png")
    return files


def plot_speed_vs_drift(report: Report, dest: Path) -> Path:
    """Scatter of images/sec (largest batch) against FID drift, with the noise floor as a line."""
    from PIL import Image, ImageDraw

    from accelkit.files import atomic_path

    pts: dict[str, tuple[float, float]] = {}
    for r in report.rows:
        if r.status == "ok" and r.fid_drift is not None and r.images_per_sec:
            key = f"{r.label} {r.precision}"
            if key not in pts or r.batch_size > pts[key][2]:  # type: ignore[misc]
                pts[key] = (r.fid_drift, r.images_per_sec, r.batch_size)  # type: ignore[assignment]
    floor = next((r.noise_floor_fid for r in report.rows if r.noise_floor_fid is not None), None)
    w, h, m = 720, 440, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    xs = [p[0] for p in pts.values()] + ([floor] if floor else [])
    ys = [p[1] for p in pts.values()]
    xmax = max(xs + [1e-6]) * 1.15
    ymax = max(ys + [1e-6]) * 1.15
    d.line([(m, h - m), (w - 20, h - m)], fill="black")
    d.line([(m, h - m), (m, 20)], fill="black")
    d.text((w // 2 - 60, h - m + 25), "FID drift vs FP32 torch (lower is better)", fill="black")
    d.text((5, 5), "images/sec (largest batch)", fill="black")
    for k in range(5):
        fx, fy = xmax * k / 4, ymax * k / 4
        px, py = m + (w - 20 - m) * k / 4, h - m - (h - m - 20) * k / 4
        d.text((px - 10, h - m + 5), f"{fx:.3g}", fill="gray")
        d.text((5, py - 6), f"{fy:.3g}", fill="gray")
    def to_px(x: float, y: float) -> tuple[float, float]:
        return m + (w - 20 - m) * x / xmax, h - m - (h - m - 20) * y / ymax
    if floor:
        fx, _ = to_px(floor, 0)
        d.line([(fx, h - m), (fx, 20)], fill=(200, 60, 60))
        d.text((fx + 4, 24), f"noise floor {floor:.3g}", fill=(200, 60, 60))
    for label, (x, y, _b) in pts.items():  # type: ignore[misc]
        px, py = to_px(x, y)
        d.ellipse([px - 5, py - 5, px + 5, py + 5], fill=(40, 90, 200))
        d.text((px + 7, py - 7), label, fill="black")
    with atomic_path(dest, force=True) as tmp:
        img.save(tmp, format="PNG")
    return dest

