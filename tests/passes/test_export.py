"""ONNX export and fp16 conversion: verified against torch, dynamic batch, safe writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from accelkit.artifact import Artifact, sidecar_path
from accelkit.errors import ExportError, InputError, NonFiniteOutputError, VerificationError
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.fp16 import Fp16
from accelkit.passes.verify import ort_session, torch_forward
from accelkit.pipelines import export_onnx
from accelkit.pipelines.options import ExportOptions
from accelkit.sampler import LatentSampler
from accelkit.spec import GeneratorSpec, InputSpec
from tests.fixtures.generators import LatentGen, Unexportable, make


def export(art, out, *, fp16: bool = False, force: bool = False, tolerance: float | None = None):
    """The export pipeline (fp32, or fp16 through a temporary fp32 export) as the passes tests use it."""
    opts = ExportOptions(
        out=out, precision="fp16" if fp16 else "fp32", force=force, tolerance=tolerance
    )
    return export_onnx(art, opts).artifact


LABEL = InputSpec("label", "label", (), "int64", 5)
Z8 = InputSpec("z", "latent", (8,))


def _artifact(module: nn.Module) -> Artifact:
    from accelkit.loading import infer_torch_spec

    return Artifact(
        format="torch",
        spec=infer_torch_spec(module),
        module=module,
        source="mem.pt",
        source_sha256="0" * 64,
    )


def _check_against_torch(onnx_path: Path, art: Artifact, batch: int, atol: float) -> None:
    """Run at a batch size the verifier did not use; compare with torch."""
    feeds = LatentSampler(art.spec, seed=99).inputs(0, batch)
    got = ort_session(onnx_path).run(None, feeds)[0]
    want = torch_forward(art, feeds)
    assert got.dtype == np.float32 and got.shape == want.shape == (batch, *art.spec.output_shape)
    np.testing.assert_allclose(got, want, atol=atol)


def _assert_single_file_dynamic(path: Path) -> onnx.ModelProto:
    model = onnx.load(str(path))
    for vi in list(model.graph.input) + list(model.graph.output):
        assert vi.type.tensor_type.shape.dim[0].dim_param, f"{vi.name} has a fixed batch"
    assert [
        p.name for p in path.parent.iterdir() if p.suffix == ".data" or p.name.startswith(".")
    ] == []
    return model


# Tolerances: fp32 ONNX Runtime vs torch on CPU agree to float rounding (1e-4 is
# generous); fp16 keeps ~3 significant digits, so outputs in [-1, 1] move by < 2e-2.
CASES = [
    ("torchscript", None, "torchscript"),
    ("pt2", [Z8, LABEL], "dynamo"),
    ("img2img_torchscript", None, "torchscript"),
    ("state_dict", "tests.fixtures.generators:LatentGen", "dynamo"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("key", "extra", "exporter"), CASES)
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_export_formats_fp32_fp16(gen_files, tmp_path, key, extra, exporter, fp16) -> None:
    kw = {"arch": extra} if isinstance(extra, str) else {"inputs": extra or ()}
    art = load_generator(gen_files[key], **kw)
    dest = tmp_path / ("g.fp16.onnx" if fp16 else "g.onnx")
    out = export(art, dest, fp16=fp16)
    assert out.path == dest and out.precision == ("fp16" if fp16 else "fp32")
    model = _assert_single_file_dynamic(dest)
    ver = out.meta["verification"]
    assert ver["batch_sizes"] == [1, 8] and ver["max_abs_err"] <= ver["tolerance"]
    assert ver["reference"].startswith("torch fp32")
    exp = next(p for p in out.passes if p["name"] == "OnnxFromTorch")
    assert exp["exporter"] == exporter
    side = json.loads(sidecar_path(dest).read_text())
    assert side["precision"] == out.precision and side["source_sha256"] == art.source_sha256
    assert GeneratorSpec.from_dict(side["spec"]) == art.spec and side["versions"]["onnx"]
    assert [p["name"] for p in side["passes"]][:2] == ["load", "OnnxFromTorch"]
    if fp16:
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
        assert (
            model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        )  # float32 I/O kept
        assert "kept_fp32" in side["meta"]["fp16"]
    _check_against_torch(dest, art, batch=5, atol=2e-2 if fp16 else 1e-4)
    # the ONNX file carries its spec: loading it back needs no flags
    back = load_generator(dest)
    assert back.spec.inputs == art.spec.inputs and back.precision == out.precision


def test_forced_torchscript_exporter_on_eager_module(tmp_path) -> None:
    art = _artifact(make(LatentGen))
    out = OnnxFromTorch(tmp_path / "g.onnx", exporter="torchscript")(art)
    assert out.passes[-1]["exporter"] == "torchscript"
    _check_against_torch(out.path, art, 3, 1e-4)


def test_dynamo_exporter_refuses_scriptmodule(gen_files, tmp_path) -> None:
    art = load_generator(gen_files["torchscript"])
    with pytest.raises(InputError, match=r"dynamo exporter cannot take a TorchScript"):
        OnnxFromTorch(tmp_path / "g.onnx", exporter="dynamo")(art)


def test_unsupported_op_is_one_line_export_error(tmp_path) -> None:
    art = _artifact(make(Unexportable))
    with pytest.raises(ExportError) as info:
        OnnxFromTorch(tmp_path / "u.onnx")(art)
    msg = str(info.value)
    assert "\n" not in msg and "dynamo exporter" in msg and "torchscript exporter" in msg
    assert list(tmp_path.iterdir()) == []


class _Overflow(nn.Module):
    """An intermediate activation of ~1e6 (beyond fp16's 65504), scaled back down."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 4
        self.output_range = (
            -3.0,
            3.0,
        )  # a bare Linear: no range to infer (probing would refuse to guess)
        self.fc = nn.Linear(4, 3 * 4 * 4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z) * 1e6
        h = h * 1e-6
        return h.view(-1, 3, 4, 4)


@pytest.mark.slow
def test_fp16_keeps_overflowing_nodes_in_fp32(tmp_path) -> None:
    art = _artifact(_Overflow().eval())
    fp32 = OnnxFromTorch(tmp_path / "o.onnx")(art)
    # Without calibration the converter overflows (inf) or clamps the 1e6 constant to
    # 65504: either way the fp16 model is wrong and must be refused, never written.
    with pytest.raises((NonFiniteOutputError, VerificationError)):
        Fp16(tmp_path / "naive.fp16.onnx", calibrate=False)(fp32)
    assert not (tmp_path / "naive.fp16.onnx").exists()
    out = Fp16(tmp_path / "o.fp16.onnx")(fp32)
    kept = out.meta["fp16"]["kept_fp32"]
    assert any("activation peak" in k["reason"] for k in kept)
    _check_against_torch(out.path, art, 4, 2e-2)


def test_spec_mismatch_with_fixed_batch_program(tmp_path) -> None:
    """A .pt2 exported with a fixed batch still exports; verification uses that batch."""
    m = make(LatentGen)
    ep = torch.export.export(m, (torch.randn(3, 16),))
    p = tmp_path / "fixed.pt2"
    torch.export.save(ep, str(p))
    art = load_generator(p)
    assert art.meta["static_batch"] == 3
    out = OnnxFromTorch(tmp_path / "fixed.onnx")(art)
    assert out.meta["verification"]["batch_sizes"] == [3]
    assert out.passes[-1]["static_batch"] == 3


def test_spec_is_a_frozen_dataclass() -> None:
    spec = GeneratorSpec(inputs=(Z8,))
    with pytest.raises(AttributeError):
        spec.output_range = (0, 1)  # type: ignore[misc]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dcgan", "stylegan2", "sr4x"])
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_bundled_generators_export_and_match_torch(tmp_path, name, fp16) -> None:
    """Every bundled generator exports at fp32 and fp16; ORT matches torch at two batch sizes
    (verification: 1 and 8) and at a third one here (3). Tolerances as above."""
    art = load_generator(name)
    out = export(art, tmp_path / f"{name}.onnx", fp16=fp16)
    ver = out.meta["verification"]
    assert ver["batch_sizes"] == [1, 8] and ver["max_abs_err"] <= ver["tolerance"]
    _assert_single_file_dynamic(out.path)
    _check_against_torch(out.path, art, batch=3, atol=5e-2 if fp16 else 1e-4)
    if name == "stylegan2":
        assert art.spec.num_classes and [i.kind for i in art.spec.inputs] == ["latent", "label"]
    if name == "sr4x":
        assert art.spec.inputs[0].kind == "image" and art.spec.output_range == (0.0, 1.0)


def test_ctrl_c_inside_the_exporter_stops_instead_of_falling_back(monkeypatch, tmp_path) -> None:
    """An exporter that wraps KeyboardInterrupt in its own exception must not make the pass try TorchScript."""
    art = _artifact(make(LatentGen))
    tried: list[str] = []

    def interrupted(self, exp, *a, **k):  # type: ignore[no-untyped-def]
        tried.append(exp)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ki:
            raise RuntimeError("torch.onnx: export failed") from ki

    monkeypatch.setattr(OnnxFromTorch, "_run_exporter", interrupted)
    with pytest.raises(KeyboardInterrupt):
        OnnxFromTorch(tmp_path / "g.onnx")(art)
    assert tried == ["dynamo"] and list(tmp_path.iterdir()) == []
