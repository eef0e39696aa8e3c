"""bench BUILD --fid N on an exported build finds its FP32 torch model through the sidecar (no --reference)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from accelkit.cli import app

runner = CliRunner()
FAST = ["--batch", "1", "--repeats", "3", "--warmup", "1", "--min-time", "0.05", "--fid", "8"]


@pytest.mark.slow
def test_exported_build_is_judged_against_its_recorded_source(
    gen_files, tiny_weights, tmp_path
) -> None:
    src = tmp_path / "g.ts.pt"
    shutil.copyfile(gen_files["torchscript"], src)
    assert (
        runner.invoke(
            app,
            ["export", str(src), "--int8", "--calib", "16", "-o", str(tmp_path / "g.int8.onnx")],
        ).exit_code
        == 0
    )
    res = runner.invoke(
        app,
        [
            "bench",
            str(tmp_path / "g.int8.onnx"),
            "--backend",
            "ort",
            "--precision",
            "int8",
            *FAST,
            "--fid-weights",
            str(tiny_weights),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    (row,) = [r for r in data["rows"] if r["status"] == "ok"]
    assert (
        row["precision"] == "int8"
        and row["fid_drift"] is not None
        and row["noise_floor_fid"] is not None
    )
    assert data["settings"]["fid"]["reference"] == "g.ts.pt"
    # the source changed since the export: it is no longer the build's reference, so bench asks for one
    src.write_bytes(src.read_bytes() + b"\0")
    res = runner.invoke(
        app,
        [
            "bench",
            str(tmp_path / "g.int8.onnx"),
            "--backend",
            "ort",
            "--precision",
            "int8",
            *FAST,
            "--fid-weights",
            str(tiny_weights),
            "--out",
            str(tmp_path / "r2"),
        ],
    )
    assert res.exit_code == 2 and "--reference" in res.stderr


def test_a_build_is_benched_at_its_own_precision_without_flags(
    gen_files, tiny_weights, tmp_path
) -> None:
    """`bench BUILD.int8.onnx --fid N` (the command optimize's "Done when" names): no --precision, no
    --reference; fp32/fp16 cannot be made from an int8 file (skipped, with the reason), int8 is measured."""
    src = tmp_path / "g.ts.pt"
    shutil.copyfile(gen_files["torchscript"], src)
    assert (
        runner.invoke(
            app,
            ["export", str(src), "--int8", "--calib", "16", "-o", str(tmp_path / "g.int8.onnx")],
        ).exit_code
        == 0
    )
    res = runner.invoke(
        app,
        [
            "bench",
            str(tmp_path / "g.int8.onnx"),
            "--backend",
            "ort",
            *FAST,
            "--fid-weights",
            str(tiny_weights),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    status = {
        (r["backend"], r["precision"]): (r["status"], r.get("reason") or "") for r in data["rows"]
    }
    assert status[("ort", "int8")][0] == "ok" and status[("ort", "fp32")][0] == "skipped"
    assert "the ONNX file is int8" in status[("ort", "fp32")][1]
    (ok,) = [r for r in data["rows"] if r["status"] == "ok"]
    assert ok["precision"] == "int8" and ok["fid_drift"] is not None


def test_default_precisions_follow_the_file() -> None:
    from types import SimpleNamespace

    from accelkit.benchmark.plan import DEFAULT_PRECISIONS, default_precisions

    assert (
        default_precisions(SimpleNamespace(format="torch", precision="fp32")) == DEFAULT_PRECISIONS
    )
    assert (
        default_precisions(SimpleNamespace(format="onnx", precision="fp32")) == DEFAULT_PRECISIONS
    )
    assert (
        default_precisions(SimpleNamespace(format="onnx", precision="fp16")) == DEFAULT_PRECISIONS
    )
    assert default_precisions(SimpleNamespace(format="onnx", precision="int8")) == (
        *DEFAULT_PRECISIONS,
        "int8",
    )
