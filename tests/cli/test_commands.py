"""CLI: exit codes, one-line errors (no tracebacks), outputs of info/export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from accelkit.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def _one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert pattern in errors[0], errors[0]
    assert "Traceback" not in result.output + result.stderr


def test_help_lists_commands() -> None:
    res = run("--help")
    assert res.exit_code == 0
    for cmd in ("info", "export"):
        assert cmd in res.stdout


def test_info_shows_spec_and_flops(gen_files) -> None:
    res = run(
        "info", str(gen_files["cond_torchscript"]), "--input", "z:8", "--input", "label:int:5"
    )
    assert res.exit_code == 0, res.output
    assert "label: label int64[scalar] (5 classes)" in res.stdout
    assert "float32[3x8x8]" in res.stdout and "FLOPs/image" in res.stdout


def test_info_json(gen_files) -> None:
    res = run("info", str(gen_files["img2img_torchscript"]), "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["format"] == "torchscript" and d["spec"]["output_shape"] == [3, 24, 24]
    assert d["flops_per_image"] > 0 and d["parameters"] > 0


@pytest.mark.slow
def test_export_writes_verified_onnx(gen_files, in_tmp) -> None:
    res = run(
        "export",
        str(gen_files["state_dict"]),
        "--arch",
        "tests.fixtures.generators:LatentGen",
        "-o",
        "g.onnx",
        "--batch-range",
        "2:4:16",
    )
    assert res.exit_code == 0, res.output
    assert (
        "wrote g.onnx (fp32" in res.stdout
        and "verified vs torch fp32" in res.stdout
        and "at batch 2,4" in res.stdout
    )
    assert onnx.load("g.onnx").graph.node and Path("g.onnx.accelkit.json").is_file()


def test_export_default_name_next_to_input(gen_files, tmp_path) -> None:
    src = tmp_path / "mygen.pt"
    src.write_bytes(gen_files["torchscript"].read_bytes())
    res = run("export", str(src), "--fp16")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mygen.fp16.onnx").is_file() and (
        tmp_path / "mygen.fp16.onnx.accelkit.json"
    ).is_file()
    assert "kept in float32" in res.stdout
    again = run("export", str(src), "--fp16")
    _one_line_error(again, "already exists; pass --force")


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("info", "does/not/exist.pt"), "no such file"),
        (("export", "--batch-range", "8:4:2"), "--batch-range"),
        (("info", "--input", "z:abc"), "is not a shape"),
        (("info", "--output-range", "1,0"), "--output-range"),
        (("info", "--arch-kwargs", "{bad json"), "--arch-kwargs is not valid JSON"),
        (("info", "--latent-dist", "cauchy"), "--latent-dist"),
        (("export", "--exporter", "fast"), "--exporter 'fast' is unknown"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(args, pattern) -> None:
    _one_line_error(run(*args), pattern)


def test_pickle_without_trust_and_truncated_file(gen_files, tmp_path) -> None:
    _one_line_error(run("info", str(gen_files["pickled_module"])), "--trust-code")
    for flag in ("--trust-code", "--trust-pickle"):  # the old name still works
        ok = run("info", str(gen_files["pickled_module"]), flag)
        assert ok.exit_code == 0, ok.output
    cut = tmp_path / "cut.pt"
    data = gen_files["torchscript"].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    _one_line_error(run("info", str(cut)), "truncated or corrupt")


@pytest.mark.slow
def test_unsupported_op_is_one_line(tmp_path) -> None:
    import torch

    from tests.fixtures.generators import Unexportable

    p = tmp_path / "u.pt"
    torch.save(Unexportable().state_dict(), p)
    res = run(
        "export",
        str(p),
        "--arch",
        "tests.fixtures.generators:Unexportable",
        "-o",
        str(tmp_path / "u.onnx"),
    )
    _one_line_error(res, "ONNX export failed")
    assert not (tmp_path / "u.onnx").exists()


@pytest.mark.slow
def test_real_process_exit_code_and_stderr(tmp_path) -> None:
    """The installed entry point behaves the same in a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "accelkit.cli", "info", str(tmp_path / "missing.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no such file")
    assert "Traceback" not in proc.stderr


def test_version() -> None:
    res = run("--version")
    assert res.exit_code == 0 and res.stdout.startswith("accelkit ")


def test_export_int8_and_quantize(gen_files, in_tmp) -> None:
    res = run(
        "export", str(gen_files["torchscript"]), "--int8", "--calib", "16", "-o", "g.int8.onnx"
    )
    assert res.exit_code == 0, res.output
    model = onnx.load("g.int8.onnx")
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert (
        "quantized: ConvTranspose 2" in res.stdout
        and "calibration: 16 samples, minmax, seed 0" in res.stdout
    )
    assert run("export", str(gen_files["torchscript"]), "-o", "g.onnx").exit_code == 0
    _one_line_error(
        run("quantize", "g.onnx", "--calib", "16"), "g.int8.onnx already exists"
    )  # default: next to g.onnx
    Path("g.int8.onnx").unlink()
    q = run(
        "quantize",
        "g.onnx",
        "--calib",
        "16",
        "--per-channel",
        "--calib-method",
        "percentile",
        "--no-calib-cache",
    )
    assert q.exit_code == 0, q.output
    assert "wrote " in q.stdout and Path("g.int8.onnx").is_file() and "PSNR" in q.stdout
    side = json.loads(Path("g.int8.onnx.accelkit.json").read_text())
    assert (
        side["meta"]["int8"]["per_channel"] is True
        and side["meta"]["int8"]["calibration"]["method"] == "percentile"
    )
    assert side["meta"]["int8"]["calibration"]["cache"] == "off"
    again = run(
        "quantize", "g.onnx", "--calib", "16", "--calib-method", "percentile", "--force"
    )  # fills the cache
    assert (
        again.exit_code == 0
        and run(
            "quantize", "g.onnx", "--calib", "16", "--calib-method", "percentile", "--force"
        ).exit_code
        == 0
    )
    assert (
        json.loads(Path("g.int8.onnx.accelkit.json").read_text())["meta"]["int8"]["calibration"][
            "cache"
        ]
        == "hit"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("export", "--int8", "--fp16"), "exclude each other"),
        (("quantize", "nothing.onnx"), "no such file"),
        (("export", "--int8", "--calib-method", "mean"), "--calib-method 'mean' is unknown"),
        (("export", "--int8", "--calib", "0"), "--calib 0"),
        (
            ("export", "--int8", "--calib-images", "."),
            "--calib-images is for image-to-image generators",
        ),
        (("quantize", "x.onnx", "--include", "a*", "--report"), "--include cannot be combined"),
    ],
)
def test_int8_user_errors(args, pattern, in_tmp) -> None:
    _one_line_error(run(*args), pattern)


def test_quantize_with_calibration_images(gen_files, in_tmp) -> None:
    from PIL import Image

    Path("calib").mkdir()
    for k in range(2):
        Image.new("RGB", (40, 24), (40 * k, 90, 200)).save(f"calib/{k}.png")
    assert run("export", str(gen_files["img2img_torchscript"]), "-o", "s.onnx").exit_code == 0
    res = run("quantize", "s.onnx", "--calib", "8", "--calib-images", "calib")
    assert res.exit_code == 0, res.output
    assert "calibration: 2 samples from calib, minmax" in res.stdout
    side = json.loads(Path("s.int8.onnx.accelkit.json").read_text())["meta"]["int8"]["calibration"]
    assert side["images"]["files"] == 2 and side["images"]["folder"] == "calib"
    _one_line_error(
        run("quantize", "s.onnx", "--calib-images", "missing", "--force"),
        "image folder missing does not exist",
    )


def test_quantize_report_and_auto_exclude(gen_files, in_tmp) -> None:
    assert run("export", str(gen_files["img2img_torchscript"]), "-o", "s.onnx").exit_code == 0
    _one_line_error(
        run("quantize", "s.onnx", "--calib", "8", "--auto-exclude", "200"),
        "needs every layer group in float",
    )
    res = run("quantize", "s.onnx", "--calib", "8", "--report", "--auto-exclude", "45")
    assert res.exit_code == 0, res.output
    assert "| # | group" in res.stdout and "(all quantized)" in res.stdout
    assert Path("s.int8-sensitivity.md").read_text().startswith("## INT8 sensitivity")
    assert "auto-exclude: keeping" in res.stdout and Path("s.int8.onnx").is_file()
    _one_line_error(run("quantize", "s.onnx", "--auto-exclude", "-3", "--force"), "PSNR")


@pytest.mark.slow
def test_prune_with_distillation_writes_a_loadable_smaller_generator(in_tmp) -> None:
    pytest.importorskip(
        "torch_pruning", reason="torch-pruning is in the dev extra; install accelkit[prune]"
    )
    res = run(
        "prune",
        "sr4x",
        "--ratio",
        "0.5",
        "--distill-steps",
        "4",
        "--distill-batch",
        "2",
        "-o",
        "sr.pruned.pt",
    )
    assert res.exit_code == 0, res.output
    assert "parameters 158,979 -> " in res.stdout and "PSNR vs teacher" in res.stdout
    info_res = run("info", "sr.pruned.pt", "--json")
    d = json.loads(info_res.stdout)
    assert d["format"] == "torchscript" and d["parameters"] < 0.7 * 158_979
    assert d["spec"]["output_shape"] == [3, 128, 128]
    _one_line_error(
        run("prune", "stylegan2", "--ratio", "1", "-o", "sg.pt"), "pruning ratio must be in [0, 1)"
    )
    _one_line_error(run("prune", "--feature-loss", "1", "-o", "sg.pt"), "add --distill-steps N")
    _one_line_error(
        run("prune", "--distill-steps", "2", "--feature-layer", "net.*", "-o", "sg.pt"),
        "needs a --feature-loss weight",
    )
    _one_line_error(
        run(
            "prune",
            "--distill-steps",
            "2",
            "--feature-loss",
            "1",
            "--feature-layer",
            "nope*",
            "-o",
            "sg.pt",
        ),
        "'nope*' matches no layer",
    )
    _one_line_error(run("prune", "--fid", "1", "-o", "sg.pt"), "--fid 1")
    assert not Path("sg.pt").exists()
    _one_line_error(run("prune", "--loss", "l3"), "--loss 'l3'")


def test_progress_lines_in_logs_are_never_wrapped(capsys) -> None:
    """Non-terminal output (CI logs): one line per step however long, not wrapped mid-phrase at 80 columns."""
    from accelkit.cli.app import progress_status

    msg = "timing openvino-int8+keep2 at batch 32 (7 tried, 5 left, best so far ort-int8 1234.5 img/s, 61/300 s)"
    with progress_status() as say:
        say(msg)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err
