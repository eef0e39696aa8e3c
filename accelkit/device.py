"""CUDA devices: parse ``cuda[:N]``, identify a GPU, make one current.

One implementation for every part of accelkit that needs to know which GPU it runs on
(TensorRT plans are bound to a GPU model; reports and MFU need the GPU's name). A GPU is
asked about through torch when its CUDA build sees the GPU, else through cuda-python's
runtime bindings, else through pycuda; the CUDA driver version comes from ``libcuda``.

Nothing heavy is imported at module import: torch, cuda-python and pycuda load inside
the functions that need them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

from accelkit.errors import BackendUnavailableError, InputError, MissingDependencyError

log = logging.getLogger(__name__)

_DEVICE_HELP = "use cuda or cuda:N (N = the GPU's index, as nvidia-smi lists it)"


def is_cuda_device(device: str) -> bool:
    """True for ``cuda``, ``gpu`` and ``cuda:N`` (any N)."""
    return str(device) in ("cuda", "gpu") or str(device).startswith("cuda:")


def parse_device_index(device: str) -> int:
    """The CUDA ordinal of a device string.

    Args:
        device: ``cuda`` or ``gpu`` (index 0), or ``cuda:N``.

    Returns:
        N (0 for ``cuda``).

    Raises:
        InputError: Not a CUDA device string (``cpu``, ``cuda:x``, ``cuda:-1``...).
    """
    text = str(device).strip()
    if text in ("cuda", "gpu"):
        return 0
    m = re.fullmatch(r"cuda:(\d+)", text)
    if not m:
        raise InputError(f"device {device!r} is not a CUDA device; {_DEVICE_HELP}")
    return int(m.group(1))


# --------------------------------------------------------------------------- optional libraries
def torch_with_cuda() -> Any:
    """The ``torch`` module when it is installed and its CUDA build sees a GPU, else None."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - a broken driver surfaces as RuntimeError
        return None


def import_cudart() -> Any:
    """cuda-python's CUDA runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6).

    Raises:
        ImportError: cuda-python is not installed.
    """
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6

        return cudart
    except ImportError:
        from cuda import cudart  # older cuda-python

        return cudart


def _import_pycuda_driver() -> Any:
    import pycuda.driver as drv

    return drv


# --------------------------------------------------------------------------- identity
def gpu_identity(index: int = 0) -> dict[str, Any]:
    """Name, compute capability, memory and driver of one CUDA GPU.

    Args:
        index: CUDA device ordinal (``cuda:N``).

    Returns:
        ``{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
        "memory_bytes": int | None, "driver": "12.4" | "unknown", "index": "0",
        "source": "torch" | "cuda-python" | "pycuda"}``. ``driver`` is the CUDA
        driver API version (``cuDriverGetVersion``).

    Raises:
        BackendUnavailableError: No CUDA GPU with that index is visible to torch,
            cuda-python or pycuda (the message says what each one answered).
    """
    tried: list[str] = []
    ident = (
        _gpu_from_torch(index, tried)
        or _gpu_from_cuda_python(index, tried)
        or _gpu_from_pycuda(index, tried)
    )
    if ident is None:
        raise BackendUnavailableError(
            f"no CUDA GPU with index {index} is visible ({'; '.join(tried)}); "
            "run on a machine with an NVIDIA GPU and driver, or choose a CPU backend"
        )
    ident["driver"] = cuda_driver_version() or "unknown"
    ident["index"] = str(index)
    return ident


def _gpu_from_torch(idx: int, tried: list[str]) -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        tried.append("torch: not installed")
        return None
    if torch_with_cuda() is None:
        tried.append(f"torch {getattr(torch, '__version__', '?')}: CUDA not available")
        return None
    try:
        count = torch.cuda.device_count()
        if idx >= count:
            tried.append(f"torch: only {count} CUDA device(s)")
            return None
        props = torch.cuda.get_device_properties(idx)
    except Exception as exc:  # noqa: BLE001 - driver problems surface as RuntimeError
        tried.append(f"torch: {type(exc).__name__}: {exc}")
        return None
    memory = getattr(props, "total_memory", None)
    return {
        "name": str(props.name),
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_bytes": int(memory) if memory is not None else None,
        "source": "torch",
    }


def _gpu_from_cuda_python(idx: int, tried: list[str]) -> dict[str, Any] | None:
    try:
        cudart = import_cudart()
    except ImportError:
        tried.append("cuda-python: not installed")
        return None
    try:
        err, count = cudart.cudaGetDeviceCount()
        if err != cudart.cudaError_t.cudaSuccess:
            tried.append(f"cuda-python: cudaGetDeviceCount failed ({err})")
            return None
        if idx >= count:
            tried.append(f"cuda-python: only {count} CUDA device(s)")
            return None
        err, prop = cudart.cudaGetDeviceProperties(idx)
        if err != cudart.cudaError_t.cudaSuccess:
            tried.append(f"cuda-python: cudaGetDeviceProperties failed ({err})")
            return None
    except Exception as exc:  # noqa: BLE001
        tried.append(f"cuda-python: {type(exc).__name__}: {exc}")
        return None
    name = prop.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    memory = getattr(prop, "totalGlobalMem", None)
    return {
        "name": str(name),
        "compute_capability": f"{prop.major}.{prop.minor}",
        "memory_bytes": int(memory) if memory is not None else None,
        "source": "cuda-python",
    }


def _gpu_from_pycuda(idx: int, tried: list[str]) -> dict[str, Any] | None:
    try:
        drv = _import_pycuda_driver()
    except ImportError:
        tried.append("pycuda: not installed")
        return None
    try:
        drv.init()
        count = drv.Device.count()
        if idx >= count:
            tried.append(f"pycuda: only {count} CUDA device(s)")
            return None
        dev = drv.Device(idx)
        major, minor = dev.compute_capability()
        return {
            "name": str(dev.name()),
            "compute_capability": f"{major}.{minor}",
            "memory_bytes": int(dev.total_memory()),
            "source": "pycuda",
        }
    except Exception as exc:  # noqa: BLE001
        tried.append(f"pycuda: {type(exc).__name__}: {exc}")
        return None


def cuda_device_name(device: str) -> str | None:
    """The GPU's product name for a CUDA ``device`` string; None on CPU or without a usable GPU.

    Same contract as ``torch.cuda.get_device_name`` (e.g. ``"NVIDIA H100 80GB HBM3"``),
    asked through torch first, then cuda-python or pycuda. Never raises.

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
    """
    if not str(device).startswith("cuda"):
        return None
    try:
        index = parse_device_index(device)
    except InputError:
        return None
    torch = torch_with_cuda()
    if torch is not None:
        try:  # torch.device("cuda") means the current device, as torch reports it
            return str(torch.cuda.get_device_name(torch.device(device)))
        except Exception:  # noqa: BLE001
            return None
    try:
        return str(gpu_identity(index)["name"])
    except Exception:  # noqa: BLE001 - "no GPU" is None here, not an error
        return None


def cuda_driver_version() -> str | None:
    """CUDA driver API version from libcuda (``cuDriverGetVersion``), e.g. ``"12.4"``; None without a driver."""
    names = (
        ["nvcuda.dll"]
        if sys.platform == "win32"
        else ["libcuda.so.1", "libcuda.so", ctypes.util.find_library("cuda")]
    )
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        try:
            ok = lib.cuDriverGetVersion(ctypes.byref(version)) == 0
        except AttributeError:
            continue
        if ok and version.value > 0:
            return f"{version.value // 1000}.{(version.value % 1000) // 10}"
    return None


# --------------------------------------------------------------------------- selection
@contextlib.contextmanager
def use_device(index: int) -> Iterator[None]:
    """Make CUDA device ``index`` current in this thread for the body, then restore the previous one.

    TensorRT builds and runs on the current device. Selected through torch when its CUDA
    build sees a GPU, else through cuda-python; with neither, only device 0 (the
    default) can be used.

    Raises:
        MissingDependencyError: ``index`` is not 0 and neither torch with CUDA nor
            cuda-python is installed.
        BackendUnavailableError: CUDA refused to select the device.
    """
    torch = torch_with_cuda()
    if torch is not None:
        with torch.cuda.device(index):
            yield
        return
    try:
        cudart = import_cudart()
    except ImportError:
        cudart = None
    if cudart is None:
        if index != 0:
            raise MissingDependencyError(
                f"selecting cuda:{index} needs torch with CUDA or cuda-python; install it with: pip install 'accelkit[gpu]'"
            )
        yield
        return
    success = cudart.cudaError_t.cudaSuccess
    err, previous = cudart.cudaGetDevice()
    (set_err,) = cudart.cudaSetDevice(index)
    if set_err != success:
        raise BackendUnavailableError(
            f"cannot select CUDA device {index} ({set_err}); check --device against nvidia-smi"
        )
    try:
        yield
    finally:
        if err == success and previous != index:
            cudart.cudaSetDevice(previous)


__all__ = [
    "cuda_device_name",
    "cuda_driver_version",
    "gpu_identity",
    "import_cudart",
    "is_cuda_device",
    "parse_device_index",
    "torch_with_cuda",
    "use_device",
]
