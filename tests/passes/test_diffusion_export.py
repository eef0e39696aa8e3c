"""Component export: ONNX per component, verified per call and over a whole short sample;
the sampler over ONNX Runtime and OpenVINO equals torch on a 4-step sample.

Tolerance of the backend comparison: 1e-4 in image units ([-1, 1]) for fp32 components
(measured here: 1e-6 .. 2e-5; float32 kernels differ in summation order, and the error
passes through every step), i.e. far below one uint8 level (7.8e-3).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from accelkit.diffusion import SamplerSettings, create_diffusion_runner
from accelkit.errors import InputError
from accelkit.passes.diffusion_export import MANIFEST, export_components
from accelkit.runners.base import available_backends
from accelkit.sampler import LatentSampler

pytest.importorskip("diffusers", reason="diffusion tests need diffusers (extra [diffusion])")


pytestmark = pytest.mark.slow
FP32_ATOL = 1e-4


@pytest.mark.parametrize("layout", ["ddpm", "dit", "sd"])
def test_export_writes_verified_components_and_manifest(
    exported: dict[str, Any], layout: str
) -> None:
    ex = exported[layout]
    den = ex.denoiser
    assert den.format == "onnx" and den.precision == "fp32" and den.path.name == "denoiser.onnx"
    ver = den.meta["verification"]  # OnnxFromTorch: ONNX Runtime vs torch at two batch sizes
    assert ver["max_abs_err"] <= 1e-3 and len(ver["batch_sizes"]) == 2
    sample = ex.verification
    assert sample["steps"] == 4 and sample["max_abs_err"] <= sample["tolerance"] == 1e-2
    side = json.loads(den.path.with_name(den.path.name + ".accelkit.json").read_text())
    assert side["meta"]["diffusion"]["sample_verification"]["max_abs_err"] == sample["max_abs_err"]
    assert side["spec"]["inputs"][1]["name"] == "timestep"
    manifest = json.loads((den.path.parent / MANIFEST).read_text())
    assert manifest["components"]["denoiser"]["file"] == "denoiser.onnx"
    assert manifest["component_precisions"] == ex.precisions()
    if layout == "ddpm":
        assert ex.decoder is None and set(manifest["components"]) == {"denoiser"}
    else:
        assert ex.decoder.path.name == "vae_decoder.onnx"
        assert ex.precisions() == {"denoiser": "fp32", "decoder": "fp32"}


@pytest.mark.parametrize("layout", ["ddpm", "dit", "sd"])
def test_sampler_on_every_onnx_backend_equals_torch(exported: dict[str, Any], layout: str) -> None:
    ex = exported[layout]
    model = ex.model
    settings = SamplerSettings(steps=4)
    feeds = LatentSampler(model.spec, seed=9, batch_size=3).inputs(0, 3)
    ref_runner = create_diffusion_runner(model, "torch", settings=settings)
    with ref_runner:
        ref = ref_runner.infer(feeds)
    backends = [b for b in ("ort", "openvino") if b in available_backends("cpu")]
    assert "ort" in backends
    for backend in backends:
        runner = create_diffusion_runner(
            model, backend, settings=settings, denoiser=ex.denoiser, decoder=ex.decoder
        )
        with runner:
            got = runner.infer(feeds)
        d = runner.describe()
        assert d["backend"] == backend and d["step_io"]["denoiser"] == "host"
        assert set(d["component_precisions"].values()) == {"fp32"}
        assert np.abs(got - ref).max() <= FP32_ATOL, (backend, float(np.abs(got - ref).max()))


def test_fp16_denoiser_with_fp32_decoder(dit_model: Any, tmp_path: Any) -> None:
    ex = export_components(dit_model, tmp_path, denoiser_precision="fp16")
    assert ex.precisions() == {"denoiser": "fp16", "decoder": "fp32"}
    assert ex.denoiser.path.name == "denoiser.fp16.onnx"
    assert ex.verification["component_precisions"] == {"denoiser": "fp16", "decoder": "fp32"}
    assert ex.verification["tolerance"] == 0.25  # by the lowest component precision
    assert [p["name"] for p in ex.denoiser.passes][-2:] == ["OnnxFromTorch", "Fp16"]
    manifest = json.loads((tmp_path / "pipeline.accelkit.json").read_text())
    assert manifest["components"]["denoiser"]["precision"] == "fp16"
    assert manifest["components"]["vae_decoder"]["precision"] == "fp32"


def test_export_refuses_int8_without_trajectory_calibration(ddpm_model: Any, tmp_path: Any) -> None:
    with pytest.raises(InputError, match="int8 needs trajectory calibration"):
        export_components(ddpm_model, tmp_path, denoiser_precision="int8")
    assert not any(tmp_path.iterdir())
