"""Export a step cache's two partial denoisers to ONNX, each verified against torch.

DeepCache's ``full`` and ``shallow`` UNet parts, or FBCache's ``first`` and ``rest`` DiT
parts (:mod:`accelkit.diffusion.cache`), go through the same
:class:`~accelkit.passes.export.OnnxFromTorch` pass as every export (dynamic batch,
per-call check against torch on seeded inputs at two batch sizes), optionally
:class:`~accelkit.passes.fp16.Fp16`; then a short cached sample runs through the ONNX parts
in ONNX Runtime and through the torch parts, with the same cache spec, noise and labels,
and the finished images are compared under the whole-sample tolerance of
:data:`accelkit.passes.diffusion_export.SAMPLE_TOLERANCE` (the check every diffusion export
passes). The parts' sidecars record the cache and both checks.

The whole-sample check uses :data:`VERIFY_STEPS` steps so that a cached step runs: with
DeepCache ``N`` it covers full and shallow steps when ``N`` < 6; with FBCache whatever the
threshold decides on the torch side (the ONNX side may decide differently at the margin,
which the tolerance covers or the check reports).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.diffusion.cache import CachedDenoiser, CacheSpec, cached_denoiser
from accelkit.diffusion.model import DiffusionModel, SamplerSettings
from accelkit.errors import InputError, NonFiniteOutputError, VerificationError
from accelkit.options import DEFAULT_BATCH_RANGE
from accelkit.passes.diffusion_export import SAMPLE_TOLERANCE, export_component
from accelkit.passes.verify import paired_error
from accelkit.sampler import LatentSampler

#: Steps of the whole-sample check of a cache export (covers full and cached steps).
VERIFY_STEPS = 6
VERIFY_SAMPLES = 2


def verify_cached_sample(
    model: DiffusionModel,
    exported: CachedDenoiser,
    *,
    settings: SamplerSettings | None = None,
    n: int = VERIFY_SAMPLES,
    steps: int = VERIFY_STEPS,
    tolerance: float | None = None,
    seed: int = 0,
    backend: str = "ort",
) -> dict[str, Any]:
    """Sample ``n`` images through the exported parts and through the torch parts; compare.

    Returns:
        ``{"images", "steps", "cache", "max_abs_err", "mean_abs_err", "psnr_db",
        "changed_uint8_fraction", "tolerance", "backend", "full_fraction", "reference"}``.

    Raises:
        VerificationError: Error beyond the tolerance.
        NonFiniteOutputError: NaN/Inf through the exported parts.
    """
    from accelkit.diffusion.sampler import create_diffusion_runner

    base = settings or SamplerSettings()
    run = SamplerSettings(base.scheduler, steps, base.guidance, base.eta)
    feeds = LatentSampler(model.spec, seed=seed, batch_size=n).inputs(0, n)
    ref_runner = create_diffusion_runner(model, "torch", settings=run, cache=exported.spec)
    with ref_runner:
        ref = ref_runner.infer(feeds)
    runner = create_diffusion_runner(model, backend, settings=run, cached=exported)
    with runner:
        got = runner.infer(feeds)
        stats = runner.cache.stats if runner.cache is not None else None
    if not np.isfinite(got).all():
        raise NonFiniteOutputError(
            f"the exported {exported.spec} parts produced NaN/Inf in a {steps}-step sample"
        )
    worst = max((exported.main.precision, exported.second.precision), key=_rank)
    tol = SAMPLE_TOLERANCE.get(worst, 1e-2) if tolerance is None else float(tolerance)
    err = paired_error(ref, got, model.spec.output_range)
    record = {
        "images": n,
        "steps": steps,
        "cache": exported.spec.canonical(),
        "sampler": model.sampling(run).to_dict(),
        "seed": seed,
        **{k: float(v) for k, v in err.items()},
        "tolerance": tol,
        "backend": backend,
        "full_fraction": None if stats is None else stats.full_fraction,
        "reference": f"torch fp32 parts with cache {exported.spec}, same noise and labels",
    }
    if not err["max_abs_err"] <= tol:
        raise VerificationError(
            f"a {steps}-step {exported.spec} sample through the exported parts differs from torch by "
            f"{err['max_abs_err']:.3g} (> {tol:g}, PSNR {err['psnr_db']:.1f} dB); the export is wrong "
            "or the precision too low for this model"
        )
    return record


def _rank(precision: str) -> int:
    return {"fp32": 0, "bf16": 1, "fp16": 1, "int8": 2}.get(precision, 0)


def export_cached(
    model: DiffusionModel,
    cache: CacheSpec | str,
    out_dir: str | Path,
    *,
    precision: str = "fp32",
    opset: int = 18,
    batch_range: tuple[int, int, int] = DEFAULT_BATCH_RANGE,
    exporter: str = "auto",
    force: bool = False,
    verify: bool = True,
    settings: SamplerSettings | None = None,
    sample_tolerance: float | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> CachedDenoiser:
    """Export ``cache``'s two partial denoisers of ``model`` to ONNX, verified.

    Writes ``denoiser_<part>.onnx`` (``.fp16.onnx`` for fp16) with sidecars into
    ``out_dir``; the returned :class:`CachedDenoiser` is what
    :func:`~accelkit.diffusion.sampler.create_diffusion_runner` takes as ``cached=`` for
    ``ort``/``openvino``/``trt``.

    Args:
        model: The loaded pipeline.
        cache: The cache spec (not ``none``).
        out_dir: Destination folder (created).
        precision: ``fp32`` or ``fp16`` (both parts).
        opset, batch_range, exporter, force, seed: As :class:`OnnxFromTorch`.
        verify: Run the per-call checks and the whole-sample check.
        settings: Sampler of the whole-sample check (steps: :data:`VERIFY_STEPS`).
        sample_tolerance: Tolerance of the whole-sample check (default by precision).
        progress: Called with a short message at each step.

    Raises:
        InputError: Unknown precision, ``none``, or a cache that does not apply.
        ExportError / VerificationError: Export or verification failed.
    """
    if precision not in ("fp32", "fp16"):
        raise InputError(
            f"cache part precision {precision!r}: export makes fp32 or fp16 parts "
            "(int8 needs trajectory calibration through the INT8 builder)"
        )
    say = progress or (lambda msg: None)
    torch_parts = cached_denoiser(model, cache)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for art in (torch_parts.main, torch_parts.second):
        stem = f"denoiser_{art.meta['cache_part']}"
        args = (opset, batch_range, exporter, force, verify, seed, say)
        done.append(export_component(art, out, stem, precision, *args))
    result = torch_parts.with_parts(done[0], done[1])
    check = None
    if verify:
        say(f"verifying a {VERIFY_STEPS}-step {torch_parts.spec} sample against torch")
        check = verify_cached_sample(
            model, result, settings=settings, tolerance=sample_tolerance, seed=seed
        )
    for art in done:
        art.meta["diffusion_cache"] = {**result.to_dict(), "sample_verification": check}
        art.meta["folder_sha256"] = model.source_sha256
        art.save_sidecar()
    return result


__all__ = ["VERIFY_STEPS", "export_cached", "verify_cached_sample"]
