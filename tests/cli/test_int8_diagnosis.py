"""INT8 on a flat-output MLP GAN that every calibration method fails: the diagnosis stays reachable.

Through the real CLI in a subprocess: the plain build fails the tolerance with its own exit
code (4, quality below tolerance, not 2 "user mistake") and names the sensitivity command;
``--report`` prints its table even though the build fails; ``--auto-exclude`` keeps the
sensitive layers in float and passes; a calibration method that gives the same ranges as
one already run says so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from accelkit.errors import EXIT_QUALITY
from tests.fixtures.cli import accelkit as run_cli

pytestmark = pytest.mark.slow


def accelkit(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, cache=cwd / "cache", timeout=300)


def error_lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in res.stderr, res.stderr
    return [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]


@pytest.fixture(scope="module")
def sensitive_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fp32 ONNX of :class:`tests.fixtures.families.SensitiveFlatMLPGen` (flat 784 output)."""
    from tests.fixtures.families import write_sensitive_flat_pt2

    d = tmp_path_factory.mktemp("int8diag")
    src = write_sensitive_flat_pt2(d / "mlp.pt2")
    res = accelkit("export", src, "--output-shape", "1x28x28", cwd=d)
    assert res.returncode == 0, res.stderr
    return d / "mlp.onnx"


def test_every_calibration_method_fails_with_exit_4_and_names_the_sensitivity_command(
    sensitive_onnx: Path,
) -> None:
    d = sensitive_onnx.parent
    for method in ("minmax", "entropy", "percentile"):
        res = accelkit("quantize", sensitive_onnx, "--calib-method", method, "--force", cwd=d)
        assert res.returncode == EXIT_QUALITY == 4, (method, res.stderr)
        (err,) = error_lines(res)
        assert "> tolerance 0.5" in err, err
        assert f"accelkit quantize {sensitive_onnx} --report --auto-exclude 30" in err, err
        assert not (d / "mlp.int8.onnx").exists()
        if method == "entropy":  # minmax ran first on the same samples: the same ranges, said
            assert "entropy gave the same ranges as minmax" in err, err


def test_report_runs_when_the_build_fails_the_tolerance(sensitive_onnx: Path) -> None:
    d = sensitive_onnx.parent
    res = accelkit("quantize", sensitive_onnx, "--report", "--force", cwd=d)
    assert res.returncode == 4, res.stderr
    assert "| # | group" in res.stdout and "(all quantized)" in res.stdout, res.stdout
    assert "no int8 file written" in res.stdout and "--auto-exclude" in res.stdout
    assert (d / "mlp.int8-sensitivity.md").is_file()
    assert not (d / "mlp.int8.onnx").exists()


def test_auto_exclude_keeps_the_sensitive_layers_in_float_and_passes(sensitive_onnx: Path) -> None:
    d = sensitive_onnx.parent
    res = accelkit("quantize", sensitive_onnx, "--auto-exclude", "30", "--force", cwd=d)
    assert res.returncode == 0, res.stderr
    assert "auto-exclude: keeping" in res.stdout
    psnr = float(res.stdout.split("vs onnx fp32 (onnxruntime cpu): PSNR ")[1].split(" dB")[0])
    assert psnr >= 30.0, res.stdout
    assert (d / "mlp.int8.onnx").is_file()


def test_export_int8_failure_names_the_fp32_export_and_the_sensitivity_command(
    tmp_path: Path,
) -> None:
    from tests.fixtures.families import write_sensitive_flat_pt2

    src = write_sensitive_flat_pt2(tmp_path / "g.pt2")
    res = accelkit("export", src, "--output-shape", "1x28x28", "--int8", cwd=tmp_path)
    assert res.returncode == 4, res.stderr
    (err,) = error_lines(res)
    assert (
        f"accelkit export {src} --output-shape 1x28x28 -o {tmp_path / 'g.onnx'} && "
        f"accelkit quantize {tmp_path / 'g.onnx'} --report --auto-exclude 30"
    ) in err, err
