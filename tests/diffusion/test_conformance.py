"""Every registered backend that can run a diffusion denoiser gives the torch sample.

The cases come from the runner registry (:func:`accelkit.runners.base.offers`), as for
one-pass generators: each backend's plain fp32 recipe for the denoiser (the artifact its
recipe names, made by the one builder), run by the sampling loop for 4 DDIM steps from
the same noise and labels as the torch pipeline. Backends unavailable here skip with
their reason.

Tolerance: :data:`accelkit.passes.diffusion_export.SAMPLE_TOLERANCE` ``fp32`` = 1e-2 max
abs error in image units ([-1, 1]): per-call differences of other kernels (~1e-6) grow
over the steps; seen here on CPU: < 1e-5. fp16 and int8 change the sample by design and
are judged by drift (bench --fid), not elementwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.options import BuildRecipe
from accelkit.passes.diffusion_export import SAMPLE_TOLERANCE
from accelkit.runners.base import Ask, backend_names, offers, runner_class
from accelkit.sampler import LatentSampler

pytest.importorskip("diffusers", reason="diffusion tests need diffusers (extra [diffusion])")

STEPS = 4


def _cases() -> list[Any]:
    out = []
    for name in backend_names():
        why = runner_class(name).availability("cpu")
        marks = [pytest.mark.skip(reason=f"{name}: {why}")] if why else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend", _cases())
def test_a_four_step_sample_equals_torch(
    backend: str, class_ddpm_folder: Path, tmp_path: Path
) -> None:
    from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
    from accelkit.pipelines.diffusion import component_builders

    model = load_pipeline(class_ddpm_folder)
    settings = SamplerSettings(scheduler="ddim", steps=STEPS)
    got = offers(backend, Ask(kind="torch", precision="fp32", device="cpu", threads=1))
    if isinstance(got, str):
        pytest.skip(f"{backend} does not run a torch denoiser in fp32 here: {got}")
    recipe = next(r for r in got if r.variant is None)
    den_b, _ = component_builders(model, tmp_path, BuildRecipe(), settings)
    den = den_b.make(recipe.source)
    feeds = LatentSampler(model.spec, seed=3, batch_size=2).inputs(0, 2)
    with create_diffusion_runner(
        model, "torch", settings=settings, options={"precision": "fp32", "threads": 1}
    ) as ref_runner:
        ref = ref_runner.infer(feeds)
    with create_diffusion_runner(
        model,
        backend,
        settings=settings,
        denoiser=None if recipe.source == "torch" else den,
        options=dict(recipe.options),
    ) as runner:
        out = runner.infer(feeds)
        assert runner.timing.steps == STEPS
    assert out.shape == ref.shape == (2, *model.spec.output_shape)
    err = float(np.abs(out - ref).max())
    assert err <= SAMPLE_TOLERANCE["fp32"], f"{backend}: max abs error {err:.3g}"
