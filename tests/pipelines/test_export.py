"""export_onnx: the export pipeline's own rules (destination, overwrite, conversion of ONNX files)."""

from __future__ import annotations

import onnx
import pytest

from accelkit.errors import InputError, VerificationError
from accelkit.loading import load_generator
from accelkit.pipelines import export_onnx
from accelkit.pipelines.options import ExportOptions


def export(art, out, *, fp16: bool = False, force: bool = False, tolerance: float | None = None):
    opts = ExportOptions(
        out=out, precision="fp16" if fp16 else "fp32", force=force, tolerance=tolerance
    )
    return export_onnx(art, opts).artifact


def test_no_overwrite_without_force(gen_files, tmp_path) -> None:
    art = load_generator(gen_files["torchscript"])
    dest = tmp_path / "g.onnx"
    dest.write_text("keep me")
    with pytest.raises(InputError, match=r"already exists; pass --force"):
        export(art, dest)
    assert dest.read_text() == "keep me"
    export(art, dest, force=True)
    assert onnx.load(str(dest)).graph.node


def test_failed_verification_writes_nothing(gen_files, tmp_path) -> None:
    art = load_generator(gen_files["torchscript"])
    dest = tmp_path / "g.fp16.onnx"
    with pytest.raises(VerificationError, match=r"max abs error .* > tolerance 1e-09"):
        export(art, dest, fp16=True, tolerance=1e-9)
    assert list(tmp_path.iterdir()) == []


def test_fp16_of_onnx_without_torch_reference(gen_files, tmp_path) -> None:
    art = load_generator(gen_files["torchscript"])
    export(art, tmp_path / "g.onnx")
    onnx_art = load_generator(tmp_path / "g.onnx")
    out = export(onnx_art, tmp_path / "g.fp16.onnx", fp16=True)
    assert out.meta["verification"]["reference"].startswith("onnx fp32")
    with pytest.raises(InputError, match=r"already ONNX"):
        export(onnx_art, tmp_path / "again.onnx")


def test_export_needs_onnx_suffix(gen_files, tmp_path) -> None:
    art = load_generator(gen_files["torchscript"])
    with pytest.raises(InputError, match=r"must end in .onnx"):
        export(art, tmp_path / "g.pt")


def test_quantize_report_is_never_overwritten_without_force(gen_files, tmp_path) -> None:
    from accelkit.pipelines import quantize
    from accelkit.pipelines.options import Int8Options, QuantizeOptions

    fp32 = export(load_generator(gen_files["img2img_torchscript"]), tmp_path / "s.onnx")
    md = tmp_path / "s.int8-sensitivity.md"
    md.write_text("my notes")
    opts = QuantizeOptions(int8=Int8Options(calib=8), report=True)
    with pytest.raises(InputError, match="already exists"):
        quantize(fp32, opts)
    assert md.read_text() == "my notes" and not (tmp_path / "s.int8.onnx").exists()
    res = quantize(fp32, QuantizeOptions(int8=Int8Options(calib=8), report=True, force=True))
    assert md.read_text().startswith("## INT8 sensitivity") and res.report_path == md
