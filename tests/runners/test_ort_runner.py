"""OrtRunner specifics: provider fallback detection, availability, threads, IO binding wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.artifact import Artifact
from accelkit.errors import BackendUnavailableError, InputError
from accelkit.runners import ort_runner
from accelkit.runners.ort_runner import OrtRunner, available_physical_cores
from accelkit.sampler import LatentSampler
from tests.fixtures import generators as tg

ort = pytest.importorskip("onnxruntime")
_RealSession = (
    ort.InferenceSession
)  # the fakes below wrap it; the test patches the module attribute


@pytest.fixture(scope="module")
def onnx_art(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Any]:
    return tg.onnx_artifact("uncond", tmp_path_factory.mktemp("ort"))


class _FakeSession:
    """Stands in for InferenceSession: reports the providers it was 'given' by the test."""

    providers_after_creation: list[str] = ["CPUExecutionProvider"]

    def __init__(self, path: str, sess_options: Any = None, providers: Any = None) -> None:
        self.requested = providers
        self._real = _RealSession(path, providers=["CPUExecutionProvider"])
        self.bindings: list[_FakeBinding] = []
        self.run_calls = 0

    def get_providers(self) -> list[str]:
        return list(self.providers_after_creation)

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def get_outputs(self) -> Any:
        return self._real.get_outputs()

    def run(self, names: Any, feeds: Any) -> Any:
        self.run_calls += 1
        return self._real.run(names, feeds)

    def io_binding(self) -> _FakeBinding:
        b = _FakeBinding()
        self.bindings.append(b)
        return b

    def run_with_iobinding(self, binding: _FakeBinding) -> None:
        feeds = {k: v.array for k, v in binding.inputs.items()}
        name, out = next(iter(binding.outputs.items()))
        result = self._real.run([name], feeds)[0]
        assert out.shape == result.shape  # the pre-allocated output has the batch's shape
        out.array = result
        binding.runs += 1


class _FakeOrtValue:
    def __init__(self, array: np.ndarray | None, device: str, shape: tuple[int, ...]) -> None:
        self.array = array
        self.device = device
        self.shape = shape

    @classmethod
    def ortvalue_from_numpy(
        cls, arr: np.ndarray, device: str = "cpu", device_id: int = 0
    ) -> _FakeOrtValue:
        return cls(np.array(arr), device, arr.shape)

    @classmethod
    def ortvalue_from_shape_and_type(
        cls, shape: Any, dtype: Any, device: str = "cpu", device_id: int = 0
    ) -> _FakeOrtValue:
        return cls(None, device, tuple(shape))


class _FakeBinding:
    def __init__(self) -> None:
        self.inputs: dict[str, _FakeOrtValue] = {}
        self.outputs: dict[str, _FakeOrtValue] = {}
        self.runs = 0
        self.syncs = 0

    def synchronize_outputs(self) -> None:
        self.syncs += 1

    def bind_ortvalue_input(self, name: str, val: _FakeOrtValue) -> None:
        self.inputs[name] = val

    def bind_ortvalue_output(self, name: str, val: _FakeOrtValue) -> None:
        self.outputs[name] = val

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [v.array for v in self.outputs.values()]  # type: ignore[misc]


@pytest.fixture()
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> type[_FakeSession]:
    """Pretend onnxruntime offers CUDA; sessions are _FakeSession."""
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(ort, "InferenceSession", _FakeSession)
    monkeypatch.setattr(ort, "OrtValue", _FakeOrtValue)
    monkeypatch.setattr(_FakeSession, "providers_after_creation", ["CPUExecutionProvider"])
    return _FakeSession


def test_silent_cpu_fallback_is_detected(
    onnx_art: tuple[Artifact, Any], fake_cuda: type[_FakeSession]
) -> None:
    art, _ = onnx_art
    runner = OrtRunner(art, device="cuda")
    assert runner.provider == "cuda"
    with pytest.raises(BackendUnavailableError) as exc:
        runner.activate()
    msg = str(exc.value)
    assert (
        "fell back to CPUExecutionProvider" in msg and "CUDAExecutionProvider was requested" in msg
    )
    assert "\n" not in msg
    assert runner.active is False


def test_tensorrt_provider_fallback_to_cuda_is_detected(
    onnx_art: tuple[Artifact, Any], fake_cuda: type[_FakeSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(
        _FakeSession, "providers_after_creation", ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    runner = OrtRunner(onnx_art[0], device="cuda", provider="tensorrt")
    with pytest.raises(BackendUnavailableError, match="TensorrtExecutionProvider was requested"):
        runner.activate()


def test_cuda_uses_io_binding_with_device_values(
    onnx_art: tuple[Artifact, Any], fake_cuda: type[_FakeSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _FakeSession, "providers_after_creation", ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    art, module = onnx_art
    feeds = LatentSampler(art.spec, seed=2, batch_size=3).inputs(0, 3)
    runner = OrtRunner(art, device="cuda:0")
    with runner:
        session = runner._session
        assert (
            session.requested[0][0] == "CUDAExecutionProvider"
            and session.requested[0][1]["device_id"] == 0
        )
        prepared = runner.prepare(feeds)
        binding = session.bindings[-1]
        assert {k: v.device for k, v in binding.inputs.items()} == {"z": "cuda"}
        assert [v.device for v in binding.outputs.values()] == ["cuda"]
        assert list(binding.outputs.values())[0].shape == (3, 3, 16, 16)
        out = runner.run(prepared)
        runner.run(prepared)
        assert binding.runs == 2 and session.run_calls == 0  # never session.run on CUDA
        runner.synchronize()
        assert binding.syncs == 1
        arr = runner.to_numpy(out)
        assert runner.describe()["io_binding"] is True
    import torch

    ref = module(torch.from_numpy(feeds["z"])).detach().numpy()
    np.testing.assert_allclose(arr, ref, atol=1e-5, rtol=0)


def test_availability_reports_missing_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    reason = OrtRunner.availability("cuda")
    assert reason is not None and "CUDAExecutionProvider" in reason and "accelkit[gpu]" in reason
    reason = OrtRunner.availability("cuda", "tensorrt")
    assert reason is not None and "TensorrtExecutionProvider" in reason
    assert OrtRunner.availability("cpu") is None


def test_availability_when_onnxruntime_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    reason = OrtRunner.availability("cpu")
    assert reason is not None and "onnxruntime" in reason and "accelkit[cpu]" in reason
    reason = OrtRunner.availability("cuda")
    assert reason is not None and "accelkit[gpu]" in reason


def test_threads_and_optimization_level_are_set_and_recorded(
    onnx_art: tuple[Artifact, Any],
) -> None:
    with OrtRunner(onnx_art[0], threads=1) as runner:
        info = runner.describe()
    assert info["intra_op_num_threads"] == 1 and info["inter_op_num_threads"] == 1
    assert info["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert info["providers"] == ["CPUExecutionProvider"]
    assert info["provider"] == "cpu" and info["io_binding"] is False
    json.dumps(info)
    with OrtRunner(onnx_art[0]) as runner:
        assert runner.describe()["intra_op_num_threads"] == available_physical_cores()


def test_physical_cores_within_affinity() -> None:
    import os

    n = available_physical_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_two_onnxruntime_distributions_warn_in_describe(
    onnx_art: tuple[Artifact, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        ort_runner,
        "installed_ort_distributions",
        lambda: {"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.0"},
    )
    runner = OrtRunner(onnx_art[0])
    warnings = runner.describe()["warnings"]
    assert len(warnings) == 1 and "onnxruntime-gpu" in warnings[0] and "same" in warnings[0]


def test_cpu_prepares_feeds_once_and_runs_session(onnx_art: tuple[Artifact, Any]) -> None:
    art, _ = onnx_art
    feeds = LatentSampler(art.spec, seed=0, batch_size=2).inputs(0, 2)
    with OrtRunner(art) as runner:
        prepared = runner.prepare(feeds)
        assert prepared.feeds["z"].dtype == np.float32 and prepared.feeds["z"].flags.c_contiguous
        a = runner.to_numpy(runner.run(prepared))
        b = runner.to_numpy(runner.run(prepared))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"provider": "rocm"}, "unknown ort provider"),
        ({"provider": "cuda"}, "needs a CUDA device"),
        ({"precision": "fp16"}, "precision stored in the ONNX file"),
        ({"threads": -1}, "positive integer"),
        ({"intra": 2}, "unknown ort runner option"),
    ],
)
def test_bad_options(onnx_art: tuple[Artifact, Any], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        OrtRunner(onnx_art[0], **kwargs)


def test_torch_artifact_is_refused() -> None:
    with pytest.raises(InputError, match="ONNX files"):
        OrtRunner(tg.torch_artifact("uncond"))


def test_missing_file_is_a_load_error(onnx_art: tuple[Artifact, Any], tmp_path: Path) -> None:
    from accelkit.errors import LoadError

    art = onnx_art[0].derive(path=tmp_path / "gone.onnx")
    with pytest.raises(LoadError, match="does not exist"):
        OrtRunner(art).activate()


def test_importing_runners_and_bench_does_not_import_onnxruntime() -> None:
    code = (
        "import sys, accelkit.runners.ort_runner, accelkit.runners.torch_runner, accelkit.benchmark, accelkit.benchmark.report; "
        "bad = [m for m in ('onnxruntime', 'tensorrt', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
