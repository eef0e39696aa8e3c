"""`import accelkit` and `accelkit --help` must work with the core dependencies alone."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = [
    "onnxruntime",
    "tensorrt",
    "pycuda",
    "cuda",
    "scipy",
    "matplotlib",
    "openvino",
    "pytriton",
    "tritonclient",
]

SCRIPT = f"""
import sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None  # importing any of them now raises ImportError
import accelkit, accelkit.cli, accelkit.runners, accelkit.loading, accelkit.spec
from accelkit.runners import base
import accelkit.trt.runner, accelkit.runners.ort_runner, accelkit.trt.build, accelkit.device
import accelkit.serving.server, accelkit.serving.loadgen, accelkit.serving.repository, accelkit.pipelines.serve, accelkit.cli.serve
import accelkit.runners.openvino_runner, accelkit.benchmark.stability, accelkit.host
loaded = [m for m in {OPTIONAL!r} if sys.modules.get(m) is not None]
assert not loaded, loaded
sys.argv = ["accelkit", "--help"]
from accelkit.cli import main
main()
"""


def test_import_and_help_without_optional_packages() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "export" in proc.stdout


def test_missing_onnxruntime_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from accelkit.errors import MissingDependencyError\n"
        "from accelkit.passes.verify import ort_session\n"
        "try:\n    ort_session(b'')\nexcept MissingDependencyError as e:\n    print(e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'accelkit[cpu]'" in proc.stdout
