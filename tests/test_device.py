"""accelkit.device: device strings, GPU identity (torch, cuda-python, pycuda), device selection.

The library paths are exercised with small fakes of torch's CUDA API and of cuda-python's
runtime bindings; the real GPU is asked in the ``gpu`` test (skipped without one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from accelkit import device
from accelkit.device import (
    cuda_device_name,
    gpu_identity,
    is_cuda_device,
    parse_device_index,
    use_device,
)
from accelkit.errors import BackendUnavailableError, InputError, MissingDependencyError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "index"), [("cuda", 0), ("gpu", 0), ("cuda:0", 0), ("cuda:3", 3), (" cuda:1 ", 1)]
)
def test_parse_device_index(text: str, index: int) -> None:
    assert parse_device_index(text) == index


@pytest.mark.parametrize("text", ["cpu", "cuda:", "cuda:x", "cuda:-1", "cuda0", "mps", ""])
def test_parse_device_index_refuses(text: str) -> None:
    with pytest.raises(InputError, match="is not a CUDA device; use cuda or cuda:N") as info:
        parse_device_index(text)
    assert "\n" not in str(info.value)


def test_is_cuda_device() -> None:
    assert is_cuda_device("cuda") and is_cuda_device("cuda:2") and is_cuda_device("gpu")
    assert not is_cuda_device("cpu") and not is_cuda_device("auto")


# --------------------------------------------------------------------------- fakes
class FakeTorch:
    """torch with a CUDA build seeing ``names`` (records device switches)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.current = 0
        self.switches: list[int] = []
        outer = self

        class _DeviceCtx:
            def __init__(self, index: int) -> None:
                self.index, self.prev = index, 0

            def __enter__(self) -> None:
                self.prev, outer.current = outer.current, self.index
                outer.switches.append(self.index)

            def __exit__(self, *exc: object) -> None:
                outer.current = self.prev
                outer.switches.append(self.prev)

        self.cuda = SimpleNamespace(
            is_available=lambda: True,
            device_count=lambda: len(names),
            get_device_properties=lambda i: SimpleNamespace(
                name=names[i], major=9, minor=0, total_memory=80 << 30
            ),
            get_device_name=lambda d: names[outer.current if d.index is None else d.index],
            device=_DeviceCtx,
        )
        self.__version__ = "2.99+fake"

    def device(self, text: str) -> Any:
        idx = None if text == "cuda" else int(text.split(":")[1])
        return SimpleNamespace(index=idx)


class FakeCudart:
    """cuda-python's runtime bindings for ``count`` GPUs (returns (err, value) tuples)."""

    def __init__(self, count: int = 1) -> None:
        self.cudaError_t = SimpleNamespace(cudaSuccess=0)
        self.count = count
        self.current = 0
        self.calls: list[tuple[str, int]] = []

    def cudaGetDeviceCount(self) -> tuple[int, int]:
        return 0, self.count

    def cudaGetDeviceProperties(self, idx: int) -> tuple[int, Any]:
        return 0, SimpleNamespace(
            name=b"NVIDIA L4\x00\x00garbage", major=8, minor=9, totalGlobalMem=24 << 30
        )

    def cudaGetDevice(self) -> tuple[int, int]:
        return 0, self.current

    def cudaSetDevice(self, idx: int) -> tuple[int]:
        if idx >= self.count:
            return (101,)  # cudaErrorInvalidDevice
        self.calls.append(("set", idx))
        self.current = idx
        return (0,)


def _no_torch_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "torch_with_cuda", lambda: None)


def _no_cuda_python(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Any:
        raise ImportError("No module named 'cuda'")

    monkeypatch.setattr(device, "import_cudart", missing)


def _no_pycuda(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Any:
        raise ImportError("No module named 'pycuda'")

    monkeypatch.setattr(device, "_import_pycuda_driver", missing)


# --------------------------------------------------------------------------- identity
def test_identity_through_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTorch(["NVIDIA H100 80GB HBM3", "NVIDIA H200"])
    monkeypatch.setattr(device, "torch_with_cuda", lambda: fake)
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setattr(device, "cuda_driver_version", lambda: "12.8")
    ident = gpu_identity(1)
    assert ident == {
        "name": "NVIDIA H200",
        "compute_capability": "9.0",
        "memory_bytes": 80 << 30,
        "source": "torch",
        "driver": "12.8",
        "index": "1",
    }


def test_identity_falls_back_to_cuda_python(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_torch_cuda(monkeypatch)
    monkeypatch.setattr(device, "import_cudart", lambda: FakeCudart())
    ident = gpu_identity(0)
    assert (
        ident["name"] == "NVIDIA L4"
        and ident["compute_capability"] == "8.9"
        and ident["source"] == "cuda-python"
    )
    assert ident["memory_bytes"] == 24 << 30


def test_identity_without_any_gpu_says_what_each_library_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_torch_cuda(monkeypatch)
    monkeypatch.setattr(device, "import_cudart", lambda: FakeCudart(count=1))
    _no_pycuda(monkeypatch)
    with pytest.raises(BackendUnavailableError) as info:
        gpu_identity(2)
    msg = str(info.value)
    assert "no CUDA GPU with index 2" in msg and "torch" in msg
    assert (
        "cuda-python: only 1 CUDA device(s)" in msg
        and "pycuda: not installed" in msg
        and "\n" not in msg
    )


def test_identity_here_raises_or_describes() -> None:
    try:
        ident = gpu_identity()
    except BackendUnavailableError as exc:
        assert "no CUDA GPU" in str(exc) and "torch" in str(exc)
        return
    assert set(ident) >= {"name", "compute_capability", "driver", "memory_bytes"}
    major, minor = ident["compute_capability"].split(".")
    assert major.isdigit() and minor.isdigit()


def test_cuda_device_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cuda_device_name("cpu") is None
    fake = FakeTorch(["NVIDIA A100-SXM4-80GB", "NVIDIA H200"])
    monkeypatch.setattr(device, "torch_with_cuda", lambda: fake)
    assert cuda_device_name("cuda:1") == "NVIDIA H200"
    assert cuda_device_name("cuda") == "NVIDIA A100-SXM4-80GB"  # the current device, as torch says
    assert cuda_device_name("cuda:x") is None  # never raises
    _no_torch_cuda(monkeypatch)
    monkeypatch.setattr(device, "import_cudart", lambda: FakeCudart())
    assert cuda_device_name("cuda:0") == "NVIDIA L4"  # without torch CUDA: cuda-python
    assert cuda_device_name("cuda:5") is None


def test_cuda_device_name_here_matches_torch() -> None:
    import torch

    assert cuda_device_name("cpu") is None
    for dev in ("cuda", "cuda:0"):
        if torch.cuda.is_available():
            want: str | None = torch.cuda.get_device_name(torch.device(dev))
        else:
            try:
                want = gpu_identity(0)["name"]  # another CUDA library may see a GPU torch cannot
            except BackendUnavailableError:
                want = None
        assert cuda_device_name(dev) == want


# --------------------------------------------------------------------------- selection
def test_use_device_through_torch_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTorch(["a", "b"])
    monkeypatch.setattr(device, "torch_with_cuda", lambda: fake)
    with use_device(1):
        assert fake.current == 1
    assert fake.current == 0 and fake.switches == [1, 0]


def test_use_device_through_cuda_python_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_torch_cuda(monkeypatch)
    rt = FakeCudart(count=2)
    monkeypatch.setattr(device, "import_cudart", lambda: rt)
    with use_device(1):
        assert rt.current == 1
    assert rt.current == 0 and rt.calls == [("set", 1), ("set", 0)]
    with pytest.raises(BackendUnavailableError, match="cannot select CUDA device 3"):
        with use_device(3):
            pass


def test_use_device_without_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_torch_cuda(monkeypatch)
    _no_cuda_python(monkeypatch)
    with use_device(0):  # the default device needs no selection
        pass
    with pytest.raises(
        MissingDependencyError,
        match=r"cuda:1 needs torch with CUDA or cuda-python.*accelkit\[gpu\]",
    ):
        with use_device(1):
            pass


def test_import_is_light() -> None:
    code = "import sys, accelkit.device; print(','.join(m for m in ('torch', 'cuda', 'pycuda', 'tensorrt') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.gpu
def test_real_gpu_identity_and_selection() -> None:
    if device.torch_with_cuda() is None:
        pytest.skip("needs an NVIDIA GPU that torch's CUDA build sees")
    import torch

    ident = gpu_identity(0)
    assert ident["source"] == "torch" and ident["name"] == torch.cuda.get_device_name(0)
    assert ident["memory_bytes"] and ident["memory_bytes"] > 1 << 30
    assert ident["driver"] != "unknown"  # libcuda answered cuDriverGetVersion
    assert cuda_device_name("cuda:0") == ident["name"]
    before = torch.cuda.current_device()
    with use_device(torch.cuda.device_count() - 1):
        assert torch.cuda.current_device() == torch.cuda.device_count() - 1
    assert torch.cuda.current_device() == before
