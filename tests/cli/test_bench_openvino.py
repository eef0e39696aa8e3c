"""`accelkit bench --backend openvino --precision fp32,int8 --fid N`: OpenVINO rows with drift, end to end on a tiny generator."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from accelkit.cli import app
from accelkit.host import has_native_bf16

pytest.importorskip("openvino", reason="pip install 'accelkit[openvino]'")
runner = CliRunner()
FAST = ["--batch", "1,2", "--repeats", "3", "--warmup", "1", "--min-time", "0.05"]


@pytest.mark.slow
def test_bench_openvino_fp32_int8_with_drift(gen_files, tiny_weights, tmp_path) -> None:
    out = tmp_path / "res"
    precisions = "fp32,int8,bf16" if has_native_bf16() else "fp32,int8"
    res = runner.invoke(
        app,
        [
            "bench",
            str(gen_files["torchscript"]),
            "--backend",
            "torch,openvino",
            "--precision",
            precisions,
            "--out",
            str(out),
            "--fid",
            "16",
            "--fid-weights",
            str(tiny_weights),
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    ok = {
        (r["backend"], r["precision"], r["batch_size"]): r
        for r in data["rows"]
        if r["status"] == "ok"
    }
    for b in (1, 2):
        fp32, int8 = ok[("openvino", "fp32", b)], ok[("openvino", "int8", b)]
        assert fp32["runner"]["inference_precision"] == "f32"  # an fp32 row really is f32
        assert int8["runner"]["artifact_precision"] == "int8" and int8["artifact"].endswith(
            ".int8.onnx"
        )
        for r in (fp32, int8):
            assert (
                r["fid_drift"] is not None and r["noise_floor_fid"] > 0 and r["psnr_db"] is not None
            )
            assert r["stability"] is not None and r["runner"]["threads"] >= 1
        assert fp32["max_abs_err"] < 1e-4
        if has_native_bf16():
            assert ok[("openvino", "bf16", b)]["runner"]["inference_precision"] == "bf16"
    assert data["environment"]["cpu"]["isa"]["summary"]
    md = (out / "results.md").read_text()
    assert "| openvino | int8 |" in md and "ISA:" in md
