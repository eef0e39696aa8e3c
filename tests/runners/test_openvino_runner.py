"""OpenVinoRunner specifics: explicit precision hints, the shared int8 Q/DQ file, options, and the missing extra.

The shared contract (shapes, range, agreement with torch fp32, lifecycle) is checked for
every runner by ``test_conformance.py``; this file covers what is OpenVINO's own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.artifact import Artifact
from accelkit.errors import BackendUnavailableError, InputError
from accelkit.runners import openvino_runner
from accelkit.runners.base import RUNNERS, available_backends
from accelkit.sampler import LatentSampler
from tests.fixtures import generators as tg

ROOT = Path(__file__).resolve().parents[2]


def _no_openvino(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``import openvino`` fails."""
    script = "import sys\nsys.modules['openvino'] = None\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_registered_under_its_name() -> None:
    assert RUNNERS["openvino"] == "accelkit.runners.openvino_runner:OpenVinoRunner"


def test_without_the_extra_availability_names_it() -> None:
    proc = _no_openvino(
        "from accelkit.runners.openvino_runner import OpenVinoRunner\n"
        "from accelkit.runners.base import available_backends\n"
        "print(OpenVinoRunner.availability('cpu'))\nprint('openvino' in available_backends('cpu'))\n"
    )
    assert proc.returncode == 0, proc.stderr
    reason, listed = proc.stdout.strip().splitlines()
    assert "pip install 'accelkit[openvino]'" in reason and listed == "False"


@pytest.mark.slow
def test_without_the_extra_bench_backend_openvino_is_a_one_line_error() -> None:
    proc = _no_openvino(
        "sys.argv = ['accelkit', 'bench', '--backend', 'openvino', '--precision', 'fp32']\nfrom accelkit.cli import main\nmain()\n"
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if ln.strip()]
    assert (
        len(lines) == 1
        and lines[0].startswith("error:")
        and "pip install 'accelkit[openvino]'" in lines[0]
    ), lines


ov = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from accelkit.passes.int8 import Int8

    folder = tmp_path_factory.mktemp("openvino")
    fp32, module = tg.onnx_artifact("uncond", folder)
    int8 = Int8(folder / "uncond.int8.onnx", force=True, calib_samples=16, calib_cache=False)(fp32)
    return {"fp32": fp32, "int8": int8, "module": module}


def _feeds(art: Artifact, batch: int = 4) -> dict[str, np.ndarray]:
    return LatentSampler(art.spec, seed=3, batch_size=batch).inputs(0, batch)


def test_fp32_row_is_really_f32_even_where_openvino_would_pick_bf16(arts: dict[str, Any]) -> None:
    with openvino_runner.OpenVinoRunner(arts["fp32"]) as r:
        r.infer(_feeds(arts["fp32"]))
        info = r.describe()
    assert info["precision"] == "fp32" and info["inference_precision_requested"] == "f32"
    assert info["inference_precision"] == "f32"  # read back from the compiled model


def test_auto_hint_records_what_openvino_chose(arts: dict[str, Any]) -> None:
    with openvino_runner.OpenVinoRunner(arts["fp32"], inference_precision="auto") as r:
        r.infer(_feeds(arts["fp32"]))
        info = r.describe()
    chosen = info["inference_precision"]
    assert chosen in ("f32", "bf16", "f16")
    assert info["precision"] == {"f32": "fp32", "bf16": "bf16", "f16": "fp32"}[chosen]


def test_int8_qdq_file_runs_close_to_fp32(arts: dict[str, Any]) -> None:
    """The same Q/DQ file ONNX Runtime runs: OpenVINO's int8 output stays near the fp32 model's."""
    feeds = _feeds(arts["fp32"], 8)
    with openvino_runner.OpenVinoRunner(arts["fp32"]) as r:
        ref = r.infer(feeds)
    with openvino_runner.OpenVinoRunner(arts["int8"]) as r:
        got = r.infer(feeds)
        assert r.precision == "int8" and r.describe()["artifact_precision"] == "int8"
    mse = float(np.mean((got - ref) ** 2))
    psnr = 10 * np.log10(4.0 / max(mse, 1e-12))  # output range [-1, 1]: peak 2
    assert np.isfinite(got).all() and psnr > 25, psnr


def test_dynamic_batch_model_matches_static(arts: dict[str, Any]) -> None:
    feeds = _feeds(arts["fp32"], 3)
    with openvino_runner.OpenVinoRunner(arts["fp32"]) as r:
        static = r.infer(feeds)
        assert set(r.describe()["compile_seconds"]) == {"3"}
    with openvino_runner.OpenVinoRunner(arts["fp32"], static_shapes=False) as r:
        dynamic = r.infer(feeds)
    np.testing.assert_allclose(dynamic, static, atol=1e-5, rtol=0)


def test_threads_option_and_default(arts: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with openvino_runner.OpenVinoRunner(arts["fp32"], threads=1) as r:
        assert r.describe()["threads"] == 1
    monkeypatch.setattr(openvino_runner, "default_threads", lambda: 1)
    with openvino_runner.OpenVinoRunner(arts["fp32"]) as r:
        assert r.describe()["threads"] == 1


def test_bf16_refused_without_native_bf16(
    arts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openvino_runner, "has_native_bf16", lambda flags=None: False)
    with pytest.raises(BackendUnavailableError, match="native bf16"):
        openvino_runner.OpenVinoRunner(arts["fp32"], precision="bf16")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "fp16"}, "runs a fp32 ONNX file as"),
        ({"inference_precision": "f64"}, "inference_precision"),
        ({"threads": 0}, "positive integer"),
        ({"device": "cuda"}, "CPU"),
        ({"streams": 2}, "unknown openvino runner option"),
    ],
)
def test_bad_options(arts: dict[str, Any], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        openvino_runner.OpenVinoRunner(arts["fp32"], **kwargs)


def test_int8_file_cannot_be_labelled_fp32(arts: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="int8"):
        openvino_runner.OpenVinoRunner(arts["int8"], precision="fp32")


def test_torch_artifact_refused() -> None:
    with pytest.raises(InputError, match="runs ONNX files"):
        openvino_runner.OpenVinoRunner(tg.torch_artifact("uncond"))


def test_listed_as_available_with_the_extra() -> None:
    assert "openvino" in available_backends("cpu")
