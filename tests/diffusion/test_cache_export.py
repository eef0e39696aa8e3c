"""The partial graphs of a cache export to ONNX, verified per call and per cached sample.

Each part passes the per-call check of every ONNX export (ONNX Runtime vs torch on seeded
inputs at two batch sizes) and a 6-step cached sample through the ONNX parts matches the
torch parts within the fp32 whole-sample tolerance (1e-2 in image units; measured ~2e-5).
``deepcache:1`` through ONNX equals the plain torch sampler within the same tolerance.
OpenVINO runs the same exported parts where it is installed.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.artifact import sidecar_path
from accelkit.diffusion import SamplerSettings, create_diffusion_runner
from accelkit.errors import VerificationError
from accelkit.passes.cache_export import export_cached, verify_cached_sample
from accelkit.passes.diffusion_export import SAMPLE_TOLERANCE
from accelkit.sampler import LatentSampler

pytestmark = pytest.mark.slow
_MADE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def exported_cache(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    def get(layout: str, cache: str) -> Any:
        key = f"{layout}:{cache}"
        if key not in _MADE:
            model = request.getfixturevalue({"ddpm": "ddpm_model", "dit": "dit_model"}[layout])
            out = tmp_path_factory.mktemp("cache_onnx") / layout
            _MADE[key] = (model, export_cached(model, cache, out))
        return _MADE[key]

    return get


@pytest.mark.parametrize(("layout", "cache"), [("ddpm", "deepcache:3"), ("dit", "fbcache:0.3")])
def test_parts_are_exported_and_verified(layout: str, cache: str, exported_cache: Any) -> None:
    _model, parts = exported_cache(layout, cache)
    for art in (parts.main, parts.second):
        assert art.format == "onnx" and art.path is not None and art.path.is_file()
        assert art.meta["verification"]["max_abs_err"] <= art.meta["verification"]["tolerance"]
        side = json.loads(sidecar_path(art.path).read_text())
        check = side["meta"]["diffusion_cache"]["sample_verification"]
        assert check["cache"] == parts.spec.canonical()
        assert check["max_abs_err"] <= SAMPLE_TOLERANCE["fp32"]
        assert check["full_fraction"] < 1.0  # the check ran cached steps


def test_exported_deepcache_1_equals_the_plain_torch_sampler(
    exported_cache: Any, tmp_path: Path
) -> None:
    model, _ = exported_cache("ddpm", "deepcache:3")
    parts = export_cached(model, "deepcache:1", tmp_path, verify=False)
    settings = SamplerSettings("ddim", 4)
    feeds = LatentSampler(model.spec, seed=5, batch_size=2).inputs(0, 2)
    plain = create_diffusion_runner(model, "torch", settings=settings)
    onnx = create_diffusion_runner(model, "ort", settings=settings, cached=parts)
    with plain, onnx:
        ref, got = plain.infer(feeds), onnx.infer(feeds)
    assert np.abs(ref - got).max() <= SAMPLE_TOLERANCE["fp32"]


def parts_of(model: Any, out: Path) -> Any:
    """A shallow part exported from a UNet with other weights (a wrong graph of the right shape)."""
    import torch

    from accelkit.diffusion.cache import cached_denoiser
    from accelkit.passes.export import OnnxFromTorch

    shallow = cached_denoiser(model, "deepcache:3").second
    module = copy.deepcopy(shallow.module)
    with torch.no_grad():
        module.unet.conv_out.bias.add_(0.5)
    return OnnxFromTorch(out / "shallow.onnx", verify=False)(shallow.derive(module=module))


def test_a_wrong_part_fails_verification(exported_cache: Any, tmp_path: Path) -> None:
    model, parts = exported_cache("ddpm", "deepcache:3")
    wrong = parts.with_parts(parts.main, parts_of(model, tmp_path))
    with pytest.raises(VerificationError, match="differs from torch"):
        verify_cached_sample(model, wrong)
    model2, fb = exported_cache("dit", "fbcache:0.3")
    with pytest.raises(VerificationError, match="differs from torch"):
        verify_cached_sample(model2, fb, tolerance=0.0)


@pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed"
)
def test_openvino_runs_the_exported_parts(exported_cache: Any) -> None:
    model, parts = exported_cache("ddpm", "deepcache:3")
    record = verify_cached_sample(model, parts, backend="openvino")
    assert record["max_abs_err"] <= SAMPLE_TOLERANCE["fp32"]
