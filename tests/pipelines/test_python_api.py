"""The public API: light import, lazy names, and the docs/python-api.md example run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_accelkit_loads_no_heavy_module() -> None:
    script = (
        "import sys, accelkit, accelkit.pipelines, accelkit.pipelines.options\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'polygraphy', 'openvino') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(accelkit.bench) and callable(accelkit.export_onnx) and accelkit.__version__\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_every_public_name_resolves() -> None:
    import accelkit

    for name in accelkit.__all__:
        if name in (
            "EngineFromOnnx",
        ):  # resolves to accelkit.trt.build, which imports without TensorRT too
            pass
        assert getattr(accelkit, name) is not None, name
    with pytest.raises(AttributeError):
        accelkit.no_such_name  # noqa: B018


def test_bench_is_the_pipeline_even_after_importing_the_benchmark_package() -> None:
    import accelkit
    import accelkit.benchmark.report  # noqa: F401
    from accelkit import bench

    assert callable(bench) and bench.__module__ == "accelkit.pipelines.bench"


def test_python_m_accelkit_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "accelkit", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "export" in proc.stdout and "bench" in proc.stdout


@pytest.mark.slow
def test_docs_example_runs_as_written(tmp_path, monkeypatch, tiny_weights) -> None:
    """The 5-line pipeline of docs/python-api.md: load -> fp16 ONNX -> bench two backends -> drift -> report."""
    text = (ROOT / "docs" / "python-api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "ACCELKIT_FID_WEIGHTS", str(tiny_weights)
    )  # the tiny extractor stands in for Inception
    printed: list[str] = []
    exec(
        compile(code, "python-api.md", "exec"),
        {"print": lambda *a: printed.append(" ".join(map(str, a)))},
    )
    out = printed[0]
    assert "| torch | fp32 | 1 |" in out and "| ort | fp32 | 8 |" in out
    m = re.search(
        r"fp16 FID drift ([-\d.e]+) \(noise floor ([-\d.e]+)\): (accepted|rejected|inconclusive)",
        out,
    )
    assert m is not None, out
    assert float(m.group(1)) >= 0 and float(m.group(2)) > 0
    assert (tmp_path / "dcgan.fp16.onnx").is_file() and (
        tmp_path / "results" / "results.json"
    ).is_file()
