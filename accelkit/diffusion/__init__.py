"""Diffusion models: diffusers pipeline folders loaded without code, sampled through runners.

A diffusion pipeline is components (a denoiser; for latent models a VAE decoder) plus a
scheduler. Each component is an artifact accelerated like any one-pass generator; the
sampling loop runs in the host process over the components' runners
(:class:`~accelkit.diffusion.sampler.DiffusionRunner`), so the whole pipeline is one
generator to the harness (``noise`` [+ ``label`` | ``prompt_embeds``] -> image).

Modules: :mod:`~accelkit.diffusion.folder` (detection, allow-lists; no torch),
:mod:`~accelkit.diffusion.components` (tensor-only wrappers, safe loading),
:mod:`~accelkit.diffusion.model` (:func:`load_pipeline`, :class:`SamplerSettings`),
:mod:`~accelkit.diffusion.schedulers` (``ddpm|ddim|dpm++|euler``),
:mod:`~accelkit.diffusion.sampler` (the loop as a Runner),
:mod:`~accelkit.diffusion.calibration` (INT8 feeds from real trajectories),
:mod:`~accelkit.diffusion.describe` (what ``accelkit info`` prints),
:mod:`~accelkit.diffusion.cache` (step caching: DeepCache, First-Block-Cache, calibration).

Component export (ONNX per component, verified per call and per sample) drives the
passes, so it lives with them: :mod:`accelkit.passes.diffusion_export`. This package is
core-level: it imports core modules and ``runners/`` only.

Names are imported lazily: ``import accelkit.diffusion`` needs neither torch nor diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "is_pipeline_folder": "accelkit.diffusion.folder",
    "read_pipeline_folder": "accelkit.diffusion.folder",
    "load_pipeline": "accelkit.diffusion.model",
    "DiffusionModel": "accelkit.diffusion.model",
    "SamplerSettings": "accelkit.diffusion.model",
    "Sampling": "accelkit.diffusion.model",
    "DiffusionRunner": "accelkit.diffusion.sampler",
    "SampleTiming": "accelkit.diffusion.sampler",
    "create_diffusion_runner": "accelkit.diffusion.sampler",
    "trajectory_feeds": "accelkit.diffusion.calibration",
    "TrajectoryReader": "accelkit.diffusion.calibration",
    "describe_pipeline": "accelkit.diffusion.describe",
    "SCHEDULERS": "accelkit.diffusion.schedulers",
    "CacheSpec": "accelkit.diffusion.cache",
    "cached_denoiser": "accelkit.diffusion.cache",
    "calibrate_cache": "accelkit.diffusion.cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'accelkit.diffusion' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
