"""Export a diffusion pipeline's components to ONNX, per-component precision, verified.

(This module sits with the passes, whose exporters it drives; :mod:`accelkit.diffusion`
itself is core-level and imports no pass.)

Each component (the denoiser; for latent models the VAE decoder too) is exported alone by
the existing :class:`~accelkit.passes.export.OnnxFromTorch` pass (dynamic batch, checked
against torch on seeded inputs at two batch sizes: the per-call check) and, when asked,
converted by :class:`~accelkit.passes.fp16.Fp16`. Then the whole sampler runs a short
sample twice from the same noise, once with the torch components and once with the ONNX
ones in ONNX Runtime, and the finished images are compared (:func:`verify_sample`); the
result goes into each component's sidecar and into a pipeline manifest
(``pipeline.accelkit.json``) that lists the component files, their precisions and the
verification. INT8 components need calibration feeds from real trajectories
(:mod:`accelkit.diffusion.calibration`); they are built by the INT8 builder through its
calibration-data hook.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.diffusion.model import DiffusionModel, SamplerSettings
from accelkit.errors import InputError, NonFiniteOutputError, VerificationError
from accelkit.files import sha256_file, write_text_atomic
from accelkit.options import DEFAULT_BATCH_RANGE
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.fp16 import Fp16
from accelkit.passes.verify import paired_error
from accelkit.sampler import LatentSampler

#: Largest max-abs error (image units, range [-1, 1]) between a short sample through ONNX
#: components and the same sample through torch, by the lowest component precision.
#: fp32: per-call errors of ~1e-5 grow over the steps, still far below one uint8 level
#: (2/255 = 7.8e-3); fp16: rounding of weights and activations, a few uint8 levels.
SAMPLE_TOLERANCE = {"fp32": 1e-2, "fp16": 0.25, "int8": 2.0}
#: Steps of the whole-sample check (the model's own scheduler, guidance as configured).
VERIFY_STEPS = 4
VERIFY_SAMPLES = 2
MANIFEST = "pipeline.accelkit.json"
PRECISIONS = ("fp32", "fp16")
_ORDER = {"fp32": 0, "bf16": 1, "fp16": 1, "int8": 2}


@dataclass
class ExportedPipeline:
    """The exported components of one pipeline.

    Attributes:
        model: The pipeline they came from.
        denoiser: ONNX artifact of the denoiser.
        decoder: ONNX artifact of the VAE decoder (None for pixel models).
        verification: The whole-sample check (see :func:`verify_sample`), None if skipped.
        manifest: Path of ``pipeline.accelkit.json``.
    """

    model: DiffusionModel
    denoiser: Artifact
    decoder: Artifact | None = None
    verification: dict[str, Any] | None = None
    manifest: Path | None = None

    def precisions(self) -> dict[str, str]:
        """Per-component precision, e.g. ``{"denoiser": "fp16", "decoder": "fp32"}``."""
        out = {"denoiser": self.denoiser.precision}
        if self.decoder is not None:
            out["decoder"] = self.decoder.precision
        return out


def verify_sample(
    model: DiffusionModel,
    denoiser: Artifact,
    decoder: Artifact | None = None,
    *,
    settings: SamplerSettings | None = None,
    n: int = VERIFY_SAMPLES,
    steps: int = VERIFY_STEPS,
    tolerance: float | None = None,
    seed: int = 0,
    backend: str = "ort",
) -> dict[str, Any]:
    """Sample ``n`` images with ONNX components and with torch from the same noise; compare.

    Args:
        model: The pipeline (its torch components are the reference).
        denoiser: The ONNX denoiser to check.
        decoder: The ONNX decoder to check (None: the torch decoder is used on both sides).
        settings: Sampler settings (steps replaced by ``steps``).
        n: Images.
        steps: Denoising steps.
        tolerance: Max abs error allowed (default by the lowest precision, :data:`SAMPLE_TOLERANCE`).
        seed: LatentSampler seed of the noise and labels.
        backend: Backend running the ONNX components (``ort`` or ``openvino``).

    Returns:
        ``{"images", "steps", "sampler", "max_abs_err", "mean_abs_err", "psnr_db",
        "changed_uint8_fraction", "tolerance", "backend", "reference"}``.

    Raises:
        VerificationError: Error beyond the tolerance.
        NonFiniteOutputError: NaN/Inf in the ONNX sample.
    """
    from accelkit.diffusion.sampler import create_diffusion_runner

    base = settings or SamplerSettings()
    run_settings = SamplerSettings(base.scheduler, steps, base.guidance, base.eta)
    sampling = model.sampling(run_settings)
    feeds = LatentSampler(model.spec, seed=seed, batch_size=n).inputs(0, n)
    ref_runner = create_diffusion_runner(model, "torch", settings=run_settings)
    with ref_runner:
        ref = ref_runner.infer(feeds)
    runner = create_diffusion_runner(
        model,
        backend,
        settings=run_settings,
        denoiser=denoiser,
        decoder=decoder,
        decoder_backend=backend if decoder is not None else "torch",
    )
    with runner:
        got = runner.infer(feeds)
    if not np.isfinite(got).all():
        raise NonFiniteOutputError(
            f"the {denoiser.precision} ONNX components produced NaN/Inf in a {steps}-step sample"
        )
    worst = max(
        (a.precision for a in (denoiser, decoder) if a is not None), key=lambda p: _ORDER.get(p, 0)
    )
    tol = SAMPLE_TOLERANCE.get(worst, 1e-2) if tolerance is None else float(tolerance)
    err = paired_error(ref, got, model.spec.output_range)
    record = {
        "images": n,
        "steps": steps,
        "sampler": sampling.to_dict(),
        "seed": seed,
        **{k: float(v) for k, v in err.items()},
        "tolerance": tol,
        "backend": backend,
        "component_precisions": runner.component_precisions(),
        "reference": "torch fp32 components, same noise and labels",
    }
    if not err["max_abs_err"] <= tol:
        raise VerificationError(
            f"a {steps}-step sample through the ONNX components differs from torch by {err['max_abs_err']:.3g} "
            f"(> {tol:g}, PSNR {err['psnr_db']:.1f} dB); the export is wrong or the precision too low for this model"
        )
    return record


def _component_record(art: Artifact) -> dict[str, Any]:
    assert art.path is not None
    return {
        "file": art.path.name,
        "precision": art.precision,
        "sha256": sha256_file(art.path),
        "verification": art.meta.get("verification"),
    }


def export_component(
    art: Artifact,
    out: Path,
    stem: str,
    precision: str,
    opset: int,
    batch_range: tuple[int, int, int],
    exporter: str,
    force: bool,
    verify: bool,
    seed: int,
    say: Callable[[str], None],
) -> Artifact:
    """``out/<stem>.onnx`` from a torch component (verified per call), then ``<stem>.fp16.onnx``
    when ``precision`` is fp16; returns the last one. (Also used for cache parts.)"""
    say(f"exporting the {stem} to ONNX")
    onnx_art = OnnxFromTorch(
        out / f"{stem}.onnx",
        opset=opset,
        batch_range=batch_range,
        exporter=exporter,
        force=force,
        verify=verify,
        seed=seed,
        progress=say,
    )(art)
    if precision == "fp16":
        say(f"converting the {stem} to fp16")
        onnx_art = Fp16(out / f"{stem}.fp16.onnx", force=force, verify=verify, seed=seed)(onnx_art)
    return onnx_art


def export_components(
    model: DiffusionModel,
    out_dir: str | Path,
    *,
    denoiser_precision: str = "fp32",
    decoder_precision: str = "fp32",
    opset: int = 18,
    batch_range: tuple[int, int, int] = DEFAULT_BATCH_RANGE,
    exporter: str = "auto",
    force: bool = False,
    verify: bool = True,
    settings: SamplerSettings | None = None,
    sample_tolerance: float | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ExportedPipeline:
    """Export the denoiser (and decoder) to ONNX at the chosen per-component precisions.

    Writes ``denoiser.onnx`` (``denoiser.fp16.onnx``...), ``vae_decoder.onnx`` for latent
    models (fp16 ones beside their fp32 source), each with its sidecar, and
    ``pipeline.accelkit.json``, into ``out_dir``.

    Args:
        model: The loaded pipeline.
        out_dir: Destination folder (created).
        denoiser_precision: ``fp32`` or ``fp16``.
        decoder_precision: ``fp32`` or ``fp16`` (latent models; keeping it fp32 while the
            denoiser is reduced is the usual choice).
        opset: ONNX opset.
        batch_range: Dynamic batch bounds of the export (classifier-free guidance runs the
            denoiser at twice the image batch).
        exporter: ``auto``, ``dynamo`` or ``torchscript``.
        force: Overwrite existing files.
        verify: Run the per-call checks and the whole-sample check.
        settings: Sampler settings of the whole-sample check (steps: :data:`VERIFY_STEPS`).
        sample_tolerance: Tolerance of the whole-sample check (default by precision).
        seed: Seed of verification inputs.
        progress: Called with a short message at each step.

    Raises:
        InputError: Unknown precision.
        ExportError / VerificationError: Export or verification failed.
    """
    for what, prec in (("denoiser", denoiser_precision), ("decoder", decoder_precision)):
        if prec not in PRECISIONS:
            raise InputError(
                f"{what} precision {prec!r}: export makes {' or '.join(PRECISIONS)} components "
                "(int8 needs trajectory calibration through the INT8 builder)"
            )
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts: dict[str, Artifact] = {}
    todo = [("denoiser", model.denoiser, denoiser_precision)]
    if model.decoder is not None:
        todo.append(("vae_decoder", model.decoder, decoder_precision))
    for stem, art, prec in todo:
        parts[stem] = export_component(
            art, out, stem, prec, opset, batch_range, exporter, force, verify, seed, say
        )
    den, dec = parts["denoiser"], parts.get("vae_decoder")
    result = ExportedPipeline(model=model, denoiser=den, decoder=dec)
    if verify:
        say(f"verifying a {VERIFY_STEPS}-step sample through the ONNX components against torch")
        result.verification = verify_sample(
            model, den, dec, settings=settings, tolerance=sample_tolerance, seed=seed
        )
    for art in [a for a in (den, dec) if a is not None]:
        art.meta["diffusion"] = {
            "component": art.meta.get("component"),
            "pipeline": model.meta.get("pipeline_class"),
            "folder_sha256": model.source_sha256,
            "component_precisions": result.precisions(),
            "sample_verification": result.verification,
        }
        art.save_sidecar()
    manifest = {
        "schema_version": 1,
        "pipeline": {k: v for k, v in model.meta.items() if k != "denoiser_config"},
        "source": str(model.folder.path),
        "spec": model.spec.to_dict(),
        "defaults": model.sampling().to_dict(),
        "components": {
            "denoiser": _component_record(den),
            **({"vae_decoder": _component_record(dec)} if dec is not None else {}),
        },
        "component_precisions": result.precisions(),
        "sample_verification": result.verification,
    }
    result.manifest = out / MANIFEST
    write_text_atomic(
        result.manifest, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    )
    return result


__all__ = ["MANIFEST", "SAMPLE_TOLERANCE", "ExportedPipeline", "export_components", "verify_sample"]
