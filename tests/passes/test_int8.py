"""INT8 Q/DQ quantization: calibrated on the generator's own inputs, verified, clean."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelkit.artifact import Artifact, sidecar_path
from accelkit.errors import InputError, VerificationError
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.fp16 import Fp16
from accelkit.passes.int8 import DEFAULT_INT8_OPS, Int8, SamplerDataReader, match_nodes
from accelkit.passes.verify import ort_session
from accelkit.sampler import LatentSampler
from accelkit.spec import InputSpec

Z8 = InputSpec("z", "latent", (8,))
LABEL = InputSpec("label", "label", (), "int64", 5)

# A tiny conv model (two 3x3 convs + pixel shuffle, sigmoid out in [0, 1]) keeps ~40 dB
# PSNR in symmetric int8 with minmax calibration; 30 dB leaves room for platform noise.
TINY_PSNR_DB = 30.0


@pytest.fixture(scope="module")
def fp32(gen_files, tmp_path_factory) -> dict[str, Artifact]:
    """fp32 ONNX artifacts (with their torch module) for the tiny test generators."""
    folder = tmp_path_factory.mktemp("fp32")
    out = {}
    for key, kw in (
        ("img2img_torchscript", {}),
        ("state_dict", {"arch": "tests.fixtures.generators:LatentGen"}),
        ("pt2", {"inputs": [Z8, LABEL]}),
    ):
        art = load_generator(gen_files[key], **kw)
        out[key] = OnnxFromTorch(folder / f"{key}.onnx")(art)
    return out


def _ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _dq_fed(path: Path) -> set[str]:
    """Names of non-Q/DQ nodes whose first input comes from a DequantizeLinear."""
    g = onnx.load(str(path)).graph
    dq = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {
        n.name
        for n in g.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and n.input and n.input[0] in dq
    }


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_int8_qdq_runs_and_stays_close(fp32, tmp_path, cwd) -> None:
    art = fp32["img2img_torchscript"]
    dest = tmp_path / "out" / "g.int8.onnx"
    dest.parent.mkdir()
    before = _listing(cwd)
    out = Int8(dest, calib_samples=16)(art)
    assert out.precision == "int8" and out.path == dest
    ops = _ops(dest)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] >= ops["QuantizeLinear"]
    model = onnx.load(str(dest))
    # single file, float32 I/O, symmetric int8 (zero points are int8 zeros)
    assert sorted(p.name for p in dest.parent.iterdir()) == [
        "g.int8.onnx",
        "g.int8.onnx.accelkit.json",
    ]
    assert all(
        v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        for v in list(model.graph.input) + list(model.graph.output)
    )
    inits = {t.name: t for t in model.graph.initializer}
    zps = [
        inits[n.input[2]]
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits
    ]
    assert zps and all(z.data_type == onnx.TensorProto.INT8 for z in zps)
    assert all(not np.any(onnx.numpy_helper.to_array(z)) for z in zps)
    # runs in ONNX Runtime at a batch the verifier did not use, close to fp32
    feeds = LatentSampler(art.spec, seed=7).inputs(0, 3)
    got = ort_session(dest).run(None, feeds)[0]
    want = ort_session(art.path).run(None, feeds)[0]
    assert got.dtype == np.float32 and got.shape == want.shape
    block = out.meta["int8"]
    assert block["psnr_db"] > TINY_PSNR_DB and block["warning"] is None
    assert block["quantized_nodes"] == {"Conv": 2}
    assert float(np.max(np.abs(got - want))) < 0.1
    assert out.meta["verification"]["reference"].startswith("torch fp32")
    # nothing left in the working directory, and it is still the same one
    assert Path.cwd() == cwd and _listing(cwd) == before


@pytest.mark.slow
def test_int8_sidecar_records_calibration(fp32, tmp_path, cwd) -> None:
    art = fp32["state_dict"]
    dest = tmp_path / "lat.int8.onnx"
    out = Int8(dest, calib_samples=12, calib_method="percentile", per_channel=True, seed=3)(art)
    side = json.loads(sidecar_path(dest).read_text())
    assert side["precision"] == "int8" and side["sha256"]
    block = side["meta"]["int8"]
    assert block["calibration"]["seed"] == 3 and block["calibration"]["samples"] == 12
    assert block["calibration"]["method"] == "percentile" and block["per_channel"] is True
    assert block["quantized_nodes"].get("ConvTranspose", 0) >= 1 and block[
        "quantized_node_count"
    ] == sum(block["quantized_nodes"].values())
    assert block["excluded_nodes"] == [] and block["preprocess"] == "ok"
    assert block["calibration"]["batch_size"] == 6  # 12 samples in equal batches <= 8
    assert block["psnr_db"] == pytest.approx(side["meta"]["verification"]["psnr_db"])
    assert [p["name"] for p in side["passes"]][-1] == "Int8" and side["passes"][-1]["options"][
        "calib_method"
    ] == "percentile"
    assert out.meta["int8"]["op_types"] == list(DEFAULT_INT8_OPS)
    assert _listing(cwd) == []


def test_int8_exclude_keeps_nodes_float(fp32, tmp_path, cwd) -> None:
    art = fp32["img2img_torchscript"]
    names = [n.name for n in onnx.load(str(art.path)).graph.node if n.op_type == "Conv"]
    assert len(names) == 2
    first = names[0]
    out = Int8(tmp_path / "ex.int8.onnx", calib_samples=8, exclude=[first])(art)
    assert out.meta["int8"]["excluded_nodes"] == [first]
    fed = _dq_fed(out.path)
    assert first not in fed and names[1] in fed
    assert out.meta["int8"]["quantized_nodes"] == {"Conv": 1}
    # globs work, and a pattern that matches nothing is an error, not a silent no-op
    assert match_nodes(onnx.load(str(art.path)), ["*Conv*"])["*Conv*"] == names
    with pytest.raises(InputError, match="matches no node"):
        Int8(tmp_path / "none.int8.onnx", calib_samples=8, exclude=["no_such_layer*"])(art)
    assert not (tmp_path / "none.int8.onnx").exists() and _listing(cwd) == []


def test_int8_include_quantizes_only_matching_nodes(fp32, tmp_path, cwd) -> None:
    art = fp32["img2img_torchscript"]
    names = [n.name for n in onnx.load(str(art.path)).graph.node if n.op_type == "Conv"]
    out = Int8(tmp_path / "in.int8.onnx", calib_samples=8, include=[names[1]])(art)
    fed = _dq_fed(out.path)
    assert names[1] in fed and names[0] not in fed
    assert out.meta["int8"]["included_nodes"] == [names[1]] and out.meta["int8"][
        "quantized_nodes"
    ] == {"Conv": 1}
    assert out.passes[-1]["options"]["include"] == [names[1]]
    with pytest.raises(InputError, match="--include 'nope' matches no node"):
        Int8(tmp_path / "none.int8.onnx", calib_samples=8, include=["nope"])(art)
    assert not (tmp_path / "none.int8.onnx").exists() and _listing(cwd) == []


def test_int8_exclude_by_module_path(fp32, tmp_path) -> None:
    """Dynamo exports are matched on the torch module path too (``fc`` -> the Linear)."""
    art = fp32["state_dict"]
    out = Int8(tmp_path / "m.int8.onnx", calib_samples=8, exclude=["fc"])(art)
    assert len(out.meta["int8"]["excluded_nodes"]) == 1
    assert (
        "Gemm" not in out.meta["int8"]["quantized_nodes"]
        and "MatMul" not in out.meta["int8"]["quantized_nodes"]
    )


def test_int8_label_input_and_onnx_reference(fp32, tmp_path) -> None:
    """A conditional generator (int64 label) read back from disk: reference is the fp32 ONNX."""
    art = load_generator(fp32["pt2"].path)
    assert art.module is None
    out = Int8(tmp_path / "c.int8.onnx", calib_samples=8, op_types=())(art)
    assert out.meta["verification"]["reference"].startswith("onnx fp32")
    assert out.meta["int8"]["quantized_node_count"] >= 1


def test_int8_refuses_non_fp32_and_bad_options(fp32, tmp_path) -> None:
    art = fp32["img2img_torchscript"]
    half = Fp16(tmp_path / "h.fp16.onnx")(art)
    with pytest.raises(InputError, match="already fp16"):
        Int8(tmp_path / "x.int8.onnx")(half)
    torch_art = art.derive(format="torch", path=None)
    with pytest.raises(InputError, match="needs an ONNX model"):
        Int8(tmp_path / "x.int8.onnx")(torch_art)
    with pytest.raises(InputError, match="calibration method"):
        Int8(tmp_path / "x.int8.onnx", calib_method="kl")
    with pytest.raises(InputError, match="at least one"):
        Int8(tmp_path / "x.int8.onnx", calib_samples=0)
    (tmp_path / "taken.onnx").write_bytes(b"x")
    with pytest.raises(InputError, match="already exists"):
        Int8(tmp_path / "taken.onnx")(art)
    assert (tmp_path / "taken.onnx").read_bytes() == b"x"


def test_int8_beyond_tolerance_fails_and_writes_nothing(fp32, tmp_path, cwd) -> None:
    dest = tmp_path / "t.int8.onnx"
    with pytest.raises(VerificationError, match="int8"):
        Int8(dest, calib_samples=8, tolerance=1e-6)(fp32["img2img_torchscript"])
    assert not dest.exists() and not sidecar_path(dest).exists() and _listing(cwd) == []


def test_int8_low_psnr_warns_without_failing(fp32, tmp_path) -> None:
    out = Int8(tmp_path / "w.int8.onnx", calib_samples=8, warn_psnr_db=200.0)(
        fp32["img2img_torchscript"]
    )
    assert "PSNR" in out.meta["int8"]["warning"]
    assert (
        json.loads(sidecar_path(out.path).read_text())["meta"]["int8"]["warning"]
        == out.meta["int8"]["warning"]
    )


def test_calibration_reader_is_seeded_and_disjoint(fp32) -> None:
    spec = fp32["pt2"].spec
    a = SamplerDataReader(spec, 10, seed=1, batch_size=4)
    batches = [a.get_next() for _ in range(4)]
    assert (
        [b["z"].shape[0] for b in batches[:3]] == [4, 4, 2] and batches[3] is None and len(a) == 3
    )
    a.rewind()
    np.testing.assert_array_equal(a.get_next()["z"], batches[0]["z"])
    assert batches[0]["label"].dtype == np.int64
    verify_first = LatentSampler(spec, seed=1).inputs(0, 4)
    assert not np.allclose(verify_first["z"], batches[0]["z"])


# Bundled generators: INT8 export works end to end (small calibration to stay fast).
# StyleGAN2's mapping network collapses in INT8 (~24 dB, max error beyond 0.5), so it is
# kept float, as docs/int8.md recommends.
BUNDLED = [("dcgan", {}), ("sr4x", {}), ("stylegan2", {"exclude": ["mapping.*"]})]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kw"), BUNDLED, ids=[b[0] for b in BUNDLED])
def test_int8_bundled_generators(name, kw, tmp_path, cwd) -> None:
    art = load_generator(name)
    fp = OnnxFromTorch(tmp_path / f"{name}.onnx")(art)
    out = Int8(tmp_path / f"{name}.int8.onnx", calib_samples=16, **kw)(fp)
    ops = _ops(out.path)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    feeds = LatentSampler(art.spec, seed=5).inputs(0, 2)
    got = ort_session(out.path).run(None, feeds)[0]
    assert got.shape == (2, *art.spec.output_shape) and np.isfinite(got).all()
    assert out.meta["int8"]["psnr_db"] > 30.0
    assert _listing(cwd) == [] and Path.cwd() == cwd and os.getcwd() == str(cwd)


def _entries(cache):
    """The cached calibration files (not their manifests or the lock)."""
    return sorted(p for p in cache.glob("*.json") if not p.name.endswith(".manifest.json"))


def test_tampered_calibration_ranges_are_detected_and_recalibrated(
    fp32, tmp_path, cwd, caplog
) -> None:
    """Valid JSON with ranges x3 used to be accepted silently; the content hash catches it."""
    art = fp32["img2img_torchscript"]
    cache = tmp_path / "calib-cache"
    made = Int8(tmp_path / "a.int8.onnx", calib_samples=16, calib_cache=cache)(art)
    (entry,) = _entries(cache)
    doc = json.loads(entry.read_text())
    text = json.dumps(doc)
    import re

    tampered = re.sub(r"(-?\d+\.\d+(?:[eE][-+]?\d+)?)", lambda m: repr(3 * float(m.group(1))), text)
    assert tampered != text
    entry.write_text(tampered)
    with caplog.at_level("WARNING"):
        again = Int8(tmp_path / "b.int8.onnx", calib_samples=16, calib_cache=cache)(art)
    assert again.meta["int8"]["calibration"]["cache"] == "miss" and "corrupt" in caplog.text
    assert (tmp_path / "b.int8.onnx").read_bytes() == (tmp_path / "a.int8.onnx").read_bytes()
    assert (
        made.meta["int8"]["calibration"]["cache_key"]
        == again.meta["int8"]["calibration"]["cache_key"]
    )


def test_calibration_cache_hit_reuses_ranges(fp32, tmp_path, cwd, caplog) -> None:
    art = fp32["img2img_torchscript"]
    cache = tmp_path / "calib-cache"
    first = Int8(tmp_path / "a.int8.onnx", calib_samples=16, calib_cache=cache)(art)
    assert first.meta["int8"]["calibration"]["cache"] == "miss"
    entries = _entries(cache)
    assert len(entries) == 1 and json.loads(entries[0].read_text())["CLS"] == "TensorsData"
    second = Int8(tmp_path / "b.int8.onnx", calib_samples=16, calib_cache=cache)(art)
    assert second.meta["int8"]["calibration"]["cache"] == "hit"
    assert (
        second.meta["int8"]["calibration"]["cache_key"]
        == first.meta["int8"]["calibration"]["cache_key"]
    )
    assert (tmp_path / "a.int8.onnx").read_bytes() == (tmp_path / "b.int8.onnx").read_bytes()
    # exclusions and per-channel weights do not change activation ranges: still a hit
    conv = next(n.name for n in onnx.load(str(art.path)).graph.node if n.op_type == "Conv")
    third = Int8(
        tmp_path / "c.int8.onnx",
        calib_samples=16,
        calib_cache=cache,
        exclude=[conv],
        per_channel=True,
    )(art)
    assert third.meta["int8"]["calibration"]["cache"] == "hit" and third.meta["int8"][
        "excluded_nodes"
    ] == [conv]
    # anything that changes the ranges is a new entry
    for kw in ({"calib_samples": 8}, {"calib_method": "percentile"}, {"seed": 1}):
        other = Int8(
            tmp_path / "d.int8.onnx", force=True, calib_cache=cache, **{"calib_samples": 16, **kw}
        )(art)
        assert other.meta["int8"]["calibration"]["cache"] == "miss", kw
    assert len(_entries(cache)) == 4
    assert _listing(cwd) == []


def test_calibration_cache_off_and_corrupt_entry(fp32, tmp_path, cwd, caplog) -> None:
    art = fp32["img2img_torchscript"]
    cache = tmp_path / "calib-cache"
    off = Int8(tmp_path / "off.int8.onnx", calib_samples=16, calib_cache=False)(art)
    assert off.meta["int8"]["calibration"]["cache"] == "off" and not cache.exists()
    made = Int8(tmp_path / "a.int8.onnx", calib_samples=16, calib_cache=cache)(art)
    (entry,) = _entries(cache)
    entry.write_text("{not json")
    with caplog.at_level("WARNING"):
        again = Int8(tmp_path / "b.int8.onnx", calib_samples=16, calib_cache=cache)(art)
    assert again.meta["int8"]["calibration"]["cache"] == "miss"
    assert "corrupt" in caplog.text
    assert json.loads(entry.read_text())["CLS"] == "TensorsData"  # replaced by a good entry
    assert (tmp_path / "b.int8.onnx").read_bytes() == (tmp_path / "a.int8.onnx").read_bytes()
    assert made.passes[-1]["options"]["calib_cache"] == str(cache)


def test_default_calibration_cache_follows_env(monkeypatch, tmp_path) -> None:
    from accelkit.passes.int8 import default_calib_cache_dir

    monkeypatch.setenv("ACCELKIT_CACHE_DIR", str(tmp_path))
    assert default_calib_cache_dir() == tmp_path / "calibration"
    monkeypatch.delenv("ACCELKIT_CACHE_DIR")
    assert default_calib_cache_dir() == Path("~/.cache/accelkit/calibration").expanduser()


def _input_scale(path: Path) -> float:
    """Scale of the QuantizeLinear that reads the graph's first input."""
    g = onnx.load(str(path)).graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    q = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == g.input[0].name)
    return float(inits[q.input[1]])


def test_calibration_from_an_image_folder(fp32, tmp_path, cwd) -> None:
    from PIL import Image

    from accelkit.passes.int8 import load_calib_images

    art = fp32["img2img_torchscript"]
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    c, h, w = art.spec.inputs[0].shape
    # dim images (values 0..63 of 255) of assorted sizes: a narrower input range than the sampler's
    g = np.random.default_rng(0)
    for k, size in enumerate([(h, w), (2 * h, 3 * w), (h + 5, w + 1)]):
        Image.fromarray(g.integers(0, 64, (*size, 3), dtype=np.uint8)).save(
            folder / ("sub" if k == 2 else "") / f"{k}.png"
        )
    arr, rec = load_calib_images(art.spec, folder, 16)
    lo, hi = art.spec.output_range
    assert arr.shape == (3, c, h, w) and arr.dtype == np.float32
    assert lo <= arr.min() and arr.max() <= lo + (hi - lo) * 64 / 255 + 1e-6
    assert rec["files"] == 3 and len(rec["sha256"]) == 64
    reader = SamplerDataReader(art.spec, 3, batch_size=3, images=arr)
    np.testing.assert_array_equal(reader.get_next()[art.spec.inputs[0].name], arr)

    default = Int8(tmp_path / "a.int8.onnx", calib_samples=3)(art)
    folder_cal = Int8(tmp_path / "b.int8.onnx", calib_samples=3, calib_images=folder)(art)
    cal = folder_cal.meta["int8"]["calibration"]
    assert cal["images"]["files"] == 3 and cal["samples"] == 3 and cal["cache"] == "miss"
    assert cal["cache_key"] != default.meta["int8"]["calibration"]["cache_key"]
    assert _input_scale(folder_cal.path) < 0.5 * _input_scale(
        default.path
    )  # ranges came from the dim images
    assert folder_cal.passes[-1]["options"]["calib_images"] == str(folder)
    assert _listing(cwd) == []


def test_calibration_images_errors(fp32, tmp_path) -> None:
    from accelkit.passes.int8 import load_calib_images

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="image-to-image generators"):
        Int8(tmp_path / "x.onnx", calib_images=tmp_path / "empty")(fp32["state_dict"])
    with pytest.raises(InputError, match="holds no image file"):
        load_calib_images(fp32["img2img_torchscript"].spec, tmp_path / "empty", 4)
    assert not (tmp_path / "x.onnx").exists()
