"""accelkit.trt.memory: device buffers for the TensorRT runner.

The cuda-python layer runs here on :class:`FakeCudart` (cuda-python's runtime API over
host memory), so pointer handling, dtype conversion, copies and freeing are checked for
real; the torch layer needs a CUDA GPU (``gpu`` test).
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

from accelkit import device
from accelkit.errors import AccelkitError, LoadError, MissingDependencyError
from accelkit.trt import memory
from accelkit.trt.memory import (
    CudaPythonMemory,
    DeviceBuffer,
    TorchMemory,
    dtype_name,
    memory_layer,
    numpy_dtype,
    torch_dtype,
)
from tests.trt.fake_tensorrt import FakeCudart
from tests.trt.helpers import fake_trt

TRT = fake_trt()
DT = TRT.DataType


def test_numpy_dtypes() -> None:
    assert numpy_dtype(TRT, DT.FLOAT) == np.float32 and numpy_dtype(TRT, DT.HALF) == np.float16
    assert numpy_dtype(TRT, DT.INT64) == np.int64 and numpy_dtype(TRT, DT.BOOL) == np.bool_
    assert (
        numpy_dtype(TRT, DT.BF16) is None and numpy_dtype(TRT, DT.FP8) is None
    )  # numpy has no such type
    assert dtype_name("DataType.HALF") == "HALF"


def test_torch_dtypes() -> None:
    torch = pytest.importorskip("torch")
    assert (
        torch_dtype(TRT, torch, DT.BF16) is torch.bfloat16
        and torch_dtype(TRT, torch, DT.HALF) is torch.float16
    )
    with pytest.raises(LoadError, match="I/O data type FP8"):
        torch_dtype(TRT, torch, DT.FP8)


def test_cuda_python_round_trip_converts_to_the_engine_type() -> None:
    rt = FakeCudart()
    mem = CudaPythonMemory(TRT, 0, cudart=rt)
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 12)
    buf = mem.upload(x, DT.HALF)  # float32 latents into a float16 engine input
    assert isinstance(buf, DeviceBuffer) and buf.shape == (2, 12) and buf.ptr in rt.buffers
    assert len(rt.buffers[buf.ptr]) == x.size * 2  # 2 bytes per element on the device
    back = mem.to_numpy(buf)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, x.astype(np.float16).astype(np.float32))
    labels = mem.upload(np.array([3, 1], dtype=np.int64), DT.INT64)
    np.testing.assert_array_equal(mem.to_numpy(labels), [3.0, 1.0])
    out = mem.empty((2, 3, 4, 4), DT.FLOAT)
    assert len(rt.buffers[out.ptr]) == 2 * 3 * 4 * 4 * 4 and mem.live_allocations == 3
    assert mem.stream_handle == 1001


def test_cuda_python_frees_dropped_buffers_and_everything_on_close() -> None:
    rt = FakeCudart()
    mem = CudaPythonMemory(TRT, 0, cudart=rt)
    a = mem.empty((4,), DT.FLOAT)
    ptr = a.ptr
    del a
    gc.collect()
    assert ptr in rt.freed and mem.live_allocations == 0  # a finalizer freed it
    keep = mem.empty((4,), DT.FLOAT)
    keep_ptr = keep.ptr
    mem.close()
    assert rt.freed[-1] == keep_ptr and rt.buffers == {} and rt.streams == 0
    frees = len(rt.freed)
    del keep
    gc.collect()
    assert len(rt.freed) == frees  # freed once, not again by the finalizer


def test_cuda_python_errors_are_accelkit_errors() -> None:
    rt = FakeCudart()
    mem = CudaPythonMemory(TRT, 0, cudart=rt)
    rt.fail_malloc = True
    with pytest.raises(
        AccelkitError, match=r"CUDA call cudaMalloc failed \(2\); check the GPU with nvidia-smi"
    ):
        mem.empty((4,), DT.FLOAT)
    with pytest.raises(MissingDependencyError, match="BF16 needs torch with CUDA"):
        mem.upload(np.zeros(2, np.float32), DT.BF16)
    with pytest.raises(AccelkitError, match="cudaSetDevice failed"):
        CudaPythonMemory(TRT, 3, cudart=FakeCudart(count=1))


def test_memory_layer_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = FakeCudart()
    monkeypatch.setattr(device, "torch_with_cuda", lambda: None)
    monkeypatch.setattr(device, "import_cudart", lambda: rt)
    layer = memory_layer(TRT, 0)
    assert isinstance(layer, CudaPythonMemory) and layer.name == "cuda-python"

    def missing() -> Any:
        raise ImportError("No module named 'cuda'")

    monkeypatch.setattr(device, "import_cudart", missing)
    with pytest.raises(
        MissingDependencyError, match=r"torch with CUDA or from cuda-python.*accelkit\[gpu\]"
    ):
        memory_layer(TRT, 0)
    sentinel = object()
    monkeypatch.setattr(device, "torch_with_cuda", lambda: sentinel)
    monkeypatch.setattr(memory, "TorchMemory", lambda trt, index: ("torch", index))
    assert memory_layer(TRT, 2) == ("torch", 2)


@pytest.mark.gpu
def test_torch_memory_on_the_gpu() -> None:
    if device.torch_with_cuda() is None:
        pytest.skip("needs an NVIDIA GPU that torch's CUDA build sees")
    import torch

    mem = TorchMemory(TRT, 0)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    buf = mem.upload(x, DT.HALF)
    assert (
        buf.handle.is_cuda
        and buf.handle.dtype == torch.float16
        and buf.ptr == buf.handle.data_ptr()
    )
    np.testing.assert_allclose(
        mem.to_numpy(buf), x.astype(np.float16).astype(np.float32), rtol=0, atol=0
    )
    bf = mem.upload(x, DT.BF16)
    assert bf.handle.dtype == torch.bfloat16
    out = mem.empty((2, 3), DT.FLOAT)
    assert out.handle.shape == (2, 3) and out.handle.device.type == "cuda"
    assert mem.stream_handle == mem.stream.cuda_stream
    mem.synchronize()
    mem.close()
