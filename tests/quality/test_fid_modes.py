"""FID modes (--fid-mode): our resize against clean-fid's own resizers, and the mode in every provenance.

clean-fid's resizers import without its weights (``pip install --no-deps clean-fid``;
its other dependencies pull a CUDA torch). The comparison tests skip where it is missing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from accelkit.cli import app
from accelkit.errors import InputError
from accelkit.quality.images import FID_MODES, RESIZE_MODE, check_fid_mode, resize_uint8

try:
    from cleanfid.resize import build_resizer
except ImportError:  # pragma: no cover - depends on the environment
    build_resizer = None

needs_cleanfid = pytest.mark.skipif(
    build_resizer is None, reason="clean-fid is not installed: pip install --no-deps clean-fid"
)


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    smooth = (np.linspace(0, 255, 64)[None, :, None] * np.ones((48, 1, 3))).astype(np.uint8)
    return [
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        rng.integers(0, 256, (512, 384, 3), dtype=np.uint8),
        smooth,
    ]


def _ours(img: np.ndarray, mode: str) -> np.ndarray:
    return resize_uint8(img.transpose(2, 0, 1)[None], 299, mode)[0].numpy().transpose(1, 2, 0)


@needs_cleanfid
@pytest.mark.parametrize(
    ("ours", "theirs"), [("clean", "clean"), ("legacy-pytorch", "legacy_pytorch")]
)
def test_resize_is_exactly_clean_fids(ours: str, theirs: str) -> None:
    ref = build_resizer(theirs)
    for img in _images():
        want = np.asarray(ref(img), dtype=np.float32)
        assert want.shape == (299, 299, 3)
        np.testing.assert_array_equal(_ours(img, ours), want)


def _tf1_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow 1's resize_bilinear(align_corners=False, half_pixel_centers=False), written out."""
    h, w = img.shape[:2]
    out = np.empty((size, size, img.shape[2]), dtype=np.float64)
    x = img.astype(np.float64)
    for j in range(size):
        y = j * h / size
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, h - 1), y - y0
        for i in range(size):
            xx = i * w / size
            x0 = int(np.floor(xx))
            x1, fx = min(x0 + 1, w - 1), xx - x0
            top = x[y0, x0] * (1 - fx) + x[y0, x1] * fx
            bot = x[y1, x0] * (1 - fx) + x[y1, x1] * fx
            out[j, i] = top * (1 - fy) + bot * fy
    return out


def test_legacy_tensorflow_is_tf1_bilinear() -> None:
    img = _images()[0]
    np.testing.assert_allclose(_ours(img, "legacy-tensorflow"), _tf1_bilinear(img, 299), atol=1e-3)


def test_legacy_tensorflow_matches_nvidias_grid_sample_port() -> None:
    """The resize inside NVIDIA's TorchScript FID Inception (clean-fid's legacy_tensorflow runs it inside the network)."""
    img = _images()[0]
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32))
    h, w = img.shape[:2]
    theta = torch.eye(2, 3)
    theta[0, 2] += 1 / w - 1 / 299
    theta[1, 2] += 1 / h - 1 / 299
    grid = torch.nn.functional.affine_grid(theta[None], [1, 3, 299, 299], align_corners=False)
    want = torch.nn.functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    np.testing.assert_allclose(
        _ours(img, "legacy-tensorflow"), want[0].numpy().transpose(1, 2, 0), atol=2e-3
    )


def test_modes_are_clean_fids_names() -> None:
    assert FID_MODES == ("clean", "legacy-tensorflow", "legacy-pytorch") and RESIZE_MODE == "clean"
    assert check_fid_mode("legacy_tensorflow") == "legacy-tensorflow"
    with pytest.raises(InputError, match="--fid-mode"):
        check_fid_mode("bilinear")
    img = _images()[2]
    for mode in FID_MODES:  # already at size: untouched, in every mode
        sq = np.ascontiguousarray(np.resize(img, (299, 299, 3)))
        np.testing.assert_array_equal(_ours(sq, mode), sq.astype(np.float32))


def test_fid_command_records_its_mode_and_refuses_mixing_modes(tiny_weights, tmp_path) -> None:
    from tests.fixtures.families import write_images

    a, b = write_images(tmp_path / "a", 6, seed=1), write_images(tmp_path / "b", 6, seed=2)
    runner = CliRunner()
    for mode in FID_MODES:
        res = runner.invoke(
            app,
            [
                "fid",
                str(a),
                str(b),
                "--fid-weights",
                str(tiny_weights),
                "--fid-mode",
                mode,
                "--json",
                "--kid-subsets",
                "0",
            ],
        )
        assert res.exit_code == 0, res.output
        d = json.loads(res.stdout)
        assert d["a"]["resize_mode"] == d["b"]["resize_mode"] == mode
    res = runner.invoke(
        app,
        [
            "fid",
            str(a),
            "--save-stats",
            str(tmp_path / "a.npz"),
            "--fid-weights",
            str(tiny_weights),
            "--fid-mode",
            "legacy-pytorch",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["fid", str(tmp_path / "a.npz"), str(b), "--fid-weights", str(tiny_weights)]
    )
    assert res.exit_code == 2 and "resize_mode" in res.stderr
    res = runner.invoke(app, ["fid", str(a), str(b), "--fid-mode", "nearest"])
    assert res.exit_code == 2 and "--fid-mode 'nearest' is unknown" in res.stderr
