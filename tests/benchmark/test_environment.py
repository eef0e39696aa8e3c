"""accelkit.benchmark.environment: the environment block of a report, collected without importing a backend runner or onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from accelkit.benchmark.environment import collect_environment

ROOT = Path(__file__).resolve().parents[2]


def test_environment_block() -> None:
    env = collect_environment()
    assert env["versions"]["torch"] and env["cpu"]["model"] and env["cpu"]["available_cores"] >= 1
    assert env["cpu"]["physical_cores"] >= 1 and env["threads"]["torch_intra_op"] >= 1
    assert isinstance(env["gpus"], list)
    json.dumps(env)


@pytest.mark.slow
def test_collecting_the_environment_imports_no_runner_and_no_onnxruntime() -> None:
    code = (
        "import sys; from accelkit.benchmark.environment import collect_environment; env = collect_environment(); "
        "bad = [m for m in sys.modules if m.startswith(('onnxruntime', 'tensorrt', 'accelkit.runners.ort_runner', 'accelkit.trt.runner'))]; "
        "print(bad); sys.exit(1 if bad or not env['onnxruntime_distributions'] else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
