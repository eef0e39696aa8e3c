"""GPU buffers and a CUDA stream for the TensorRT runner.

accelkit's timing contract keeps inputs and outputs on the device (Polygraphy's own
``TrtRunner`` copies outputs to the host on every call), so the runner owns its memory:

* :class:`TorchMemory`: torch CUDA tensors on a dedicated ``torch.cuda.Stream``, used
  when torch has CUDA (any I/O type torch knows, BF16 included);
* :class:`CudaPythonMemory`: ``cudaMalloc``/``cudaMemcpy`` through cuda-python's runtime
  bindings otherwise (I/O types numpy knows).

:func:`memory_layer` picks one. Nothing here imports torch or cuda-python at module import.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from accelkit.errors import AccelkitError, LoadError, MissingDependencyError

if TYPE_CHECKING:
    import tensorrt

#: TensorRT DataType member name -> numpy dtype (types numpy lacks, BF16/FP8/INT4, are absent).
_NUMPY = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}
_TORCH = (
    "FLOAT:float32",
    "HALF:float16",
    "BF16:bfloat16",
    "INT8:int8",
    "INT32:int32",
    "INT64:int64",
    "BOOL:bool",
    "UINT8:uint8",
)


def dtype_name(dt: Any) -> str:
    """``DataType.HALF`` -> ``"HALF"``."""
    return str(dt).split(".")[-1]


def numpy_dtype(trt: Any, dt: tensorrt.DataType) -> np.dtype[Any] | None:
    """numpy dtype of a TensorRT ``DataType`` (None for types numpy lacks: BF16, FP8, INT4...)."""
    for name, np_type in _NUMPY.items():
        member = getattr(trt.DataType, name, None)
        if member is not None and dt == member:
            return np.dtype(np_type)
    return None


def torch_dtype(trt: Any, torch: Any, dt: tensorrt.DataType) -> Any:
    """torch dtype of a TensorRT ``DataType``.

    Raises:
        LoadError: A type accelkit cannot feed (FP8, INT4...).
    """
    for pair in _TORCH:
        name, attr = pair.split(":")
        member = getattr(trt.DataType, name, None)
        if member is not None and dt == member:
            return getattr(torch, attr)
    raise LoadError(
        f"the engine uses I/O data type {dtype_name(dt)}, which accelkit cannot feed; keep the model's inputs/outputs float32/float16"
    )


@dataclass
class DeviceBuffer:
    """One tensor in GPU memory.

    Attributes:
        ptr: Device address given to ``IExecutionContext.set_tensor_address``.
        shape: Shape including batch.
        trt_dtype: The engine's data type for this tensor.
        handle: What owns the memory (a torch CUDA tensor; None for cuda-python, whose
            allocation is freed by a finalizer on this object).
    """

    ptr: int
    shape: tuple[int, ...]
    trt_dtype: Any
    handle: Any = None


class DeviceMemory(Protocol):
    """What the runner needs from a memory layer."""

    name: str

    @property
    def stream_handle(self) -> int: ...

    def upload(self, array: np.ndarray, trt_dtype: Any) -> DeviceBuffer: ...

    def empty(self, shape: tuple[int, ...], trt_dtype: Any) -> DeviceBuffer: ...

    def to_numpy(self, buf: DeviceBuffer) -> np.ndarray: ...

    def synchronize(self) -> None: ...

    def close(self) -> None: ...


class TorchMemory:
    """Device buffers as torch CUDA tensors on a dedicated ``torch.cuda.Stream``.

    Args:
        trt: The ``tensorrt`` module (for its ``DataType`` members).
        index: CUDA device ordinal.
    """

    name = "torch"

    def __init__(self, trt: Any, index: int) -> None:
        import torch

        self._trt = trt
        self._torch = torch
        self._device = torch.device("cuda", index)
        self.stream = torch.cuda.Stream(device=self._device)

    @property
    def stream_handle(self) -> int:
        """``cudaStream_t`` of the runner's stream as an integer."""
        return int(self.stream.cuda_stream)

    def upload(self, array: np.ndarray, trt_dtype: Any) -> DeviceBuffer:
        """Copy a host batch to a new device tensor of the engine's type (on the stream)."""
        torch = self._torch
        dtype = torch_dtype(self._trt, torch, trt_dtype)
        host = np.ascontiguousarray(array)
        if not host.flags.writeable:  # torch.from_numpy warns on read-only arrays
            host = host.copy()
        with torch.cuda.stream(self.stream):
            t = torch.from_numpy(host).to(self._device).to(dtype).contiguous()
        return DeviceBuffer(int(t.data_ptr()), tuple(t.shape), trt_dtype, t)

    def empty(self, shape: tuple[int, ...], trt_dtype: Any) -> DeviceBuffer:
        """A new, uninitialised device tensor of ``shape`` and the engine's type."""
        torch = self._torch
        with torch.cuda.stream(self.stream):
            t = torch.empty(
                shape, dtype=torch_dtype(self._trt, torch, trt_dtype), device=self._device
            )
        return DeviceBuffer(int(t.data_ptr()), tuple(t.shape), trt_dtype, t)

    def to_numpy(self, buf: DeviceBuffer) -> np.ndarray:
        """Device tensor -> float32 host array (waits for the stream)."""
        with self._torch.cuda.stream(self.stream):
            host = buf.handle.float().cpu()  # copies on self.stream, waits for it
        return np.asarray(host.numpy(), dtype=np.float32)

    def synchronize(self) -> None:
        """Wait for the stream."""
        self.stream.synchronize()

    def close(self) -> None:
        """Wait for the stream (tensors are freed by torch when dropped)."""
        self.stream.synchronize()


class CudaPythonMemory:
    """Device buffers from cuda-python's runtime API (``cudaMalloc``/``cudaMemcpy``).

    Args:
        trt: The ``tensorrt`` module (for its ``DataType`` members).
        index: CUDA device ordinal.
        cudart: The runtime bindings (default: :func:`accelkit.device.import_cudart`).

    Raises:
        ImportError: cuda-python is not installed (and no ``cudart`` was given).
        AccelkitError: A CUDA call failed.
    """

    name = "cuda-python"

    def __init__(self, trt: Any, index: int, cudart: Any = None) -> None:
        if cudart is None:
            from accelkit.device import import_cudart

            cudart = import_cudart()
        self._trt = trt
        self._rt = cudart
        self._check(self._rt.cudaSetDevice(index), "cudaSetDevice")
        self.stream = self._check(self._rt.cudaStreamCreate(), "cudaStreamCreate")
        self._live: set[int] = set()

    def _check(self, result: Any, what: str) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self._rt.cudaError_t.cudaSuccess:
            raise AccelkitError(f"CUDA call {what} failed ({err}); check the GPU with nvidia-smi")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    @property
    def stream_handle(self) -> int:
        """``cudaStream_t`` of the runner's stream as an integer."""
        return int(self.stream)

    @property
    def live_allocations(self) -> int:
        """Number of device allocations not yet freed."""
        return len(self._live)

    def _alloc(self, nbytes: int) -> int:
        ptr = int(self._check(self._rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))
        self._live.add(ptr)
        return ptr

    def _free(self, ptr: int) -> None:
        if ptr in self._live:
            self._live.discard(ptr)
            self._rt.cudaFree(ptr)

    def _np_dtype(self, trt_dtype: Any) -> np.dtype[Any]:
        dt = numpy_dtype(self._trt, trt_dtype)
        if dt is None:
            raise MissingDependencyError(
                f"engine I/O type {dtype_name(trt_dtype)} needs torch with CUDA for its buffers; install a CUDA build of torch"
            )
        return dt

    def _buffer(self, ptr: int, shape: tuple[int, ...], trt_dtype: Any) -> DeviceBuffer:
        buf = DeviceBuffer(ptr, shape, trt_dtype)
        weakref.finalize(buf, self._free, ptr)
        return buf

    def upload(self, array: np.ndarray, trt_dtype: Any) -> DeviceBuffer:
        """Copy a host batch, converted to the engine's type, into new device memory."""
        host = np.ascontiguousarray(np.asarray(array).astype(self._np_dtype(trt_dtype), copy=False))
        ptr = self._alloc(host.nbytes)
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpy(ptr, host.ctypes.data, host.nbytes, kind), "cudaMemcpy")
        return self._buffer(ptr, tuple(host.shape), trt_dtype)

    def empty(self, shape: tuple[int, ...], trt_dtype: Any) -> DeviceBuffer:
        """New, uninitialised device memory for ``shape`` elements of the engine's type."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * self._np_dtype(trt_dtype).itemsize
        return self._buffer(self._alloc(nbytes), tuple(shape), trt_dtype)

    def to_numpy(self, buf: DeviceBuffer) -> np.ndarray:
        """Device memory -> float32 host array (copied on the stream, then waited for)."""
        host = np.empty(buf.shape, dtype=self._np_dtype(buf.trt_dtype))
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(
            self._rt.cudaMemcpyAsync(host.ctypes.data, buf.ptr, host.nbytes, kind, self.stream),
            "cudaMemcpyAsync",
        )
        self.synchronize()
        return host.astype(np.float32)

    def synchronize(self) -> None:
        """Wait for the stream."""
        self._check(self._rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def close(self) -> None:
        """Wait for the stream, free every allocation, destroy the stream."""
        self.synchronize()
        for ptr in list(self._live):
            self._free(ptr)
        self._rt.cudaStreamDestroy(self.stream)


def memory_layer(trt: Any, index: int) -> TorchMemory | CudaPythonMemory:
    """Device memory for the runner: torch when it has CUDA, else cuda-python.

    Raises:
        MissingDependencyError: Neither is usable (names the ``gpu`` extra).
    """
    from accelkit.device import torch_with_cuda

    if torch_with_cuda() is not None:
        return TorchMemory(trt, index)
    try:
        return CudaPythonMemory(trt, index)
    except ImportError:
        raise MissingDependencyError(
            "the trt backend needs GPU buffers from torch with CUDA or from cuda-python, and neither is usable here; "
            "install one with: pip install 'accelkit[gpu]'"
        ) from None


__all__ = [
    "CudaPythonMemory",
    "DeviceBuffer",
    "DeviceMemory",
    "TorchMemory",
    "dtype_name",
    "memory_layer",
    "numpy_dtype",
    "torch_dtype",
]
