"""``EngineFromOnnx``: build a TensorRT engine (a serialized "plan") from typed ONNX.

The engine is built as a **strongly typed** network: every tensor's precision comes
from the ONNX graph itself (FP32, FP16 tensors, INT8 through explicit
QuantizeLinear/DequantizeLinear nodes). TensorRT 11 removed the FP16/INT8 builder flags
and the INT8 calibrator, and TensorRT 10 builds such graphs too, so no precision flag is
ever set here; precision is decided by the ONNX passes upstream.

One optimization profile covers the batch range ``min:opt:max`` for every input; the
per-sample shape of each input comes from ``artifact.spec``. A timing cache (per GPU and
TensorRT version) is loaded before and saved after each build, and finished plans are
kept in an engine cache keyed by (ONNX fingerprint, TensorRT version, GPU, compute
capability, profile, build options), so the same build is never done twice.

A plan only runs on the TensorRT version and the GPU model it was built for (TensorRT's
default, without version/hardware compatibility modes). The sidecar records both;
:func:`check_plan_compatible` is the check every consumer of a plan must make.

Nothing here imports ``tensorrt`` or a CUDA library at module import time; the library
never prints (TensorRT's own log goes to the ``accelkit.passes.engine.tensorrt`` logger).
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from accelkit.artifact import Artifact, read_sidecar
from accelkit.files import atomic_path, refuse_existing, sha256_file
from accelkit.errors import (
    BackendUnavailableError,
    ExportError,
    InputError,
    LoadError,
    MissingDependencyError,
    SpecError,
    require,
)
from accelkit.spec import GeneratorSpec

if TYPE_CHECKING:  # only for type-checking against tensorrt-stubs; never imported at runtime here
    import tensorrt

log = logging.getLogger(__name__)
trt_log = logging.getLogger(__name__ + ".tensorrt")

#: ``progress(stage, fraction)``: fraction in [0, 1], or None when unknown.
ProgressCallback = Callable[[str, "float | None"], None]

#: Default batch profile (same default as the ONNX export pass).
DEFAULT_BATCH_RANGE: tuple[int, int, int] = (1, 8, 64)
#: Default builder workspace limit, bytes (1 GiB).
DEFAULT_WORKSPACE: int = 1 << 30
#: Environment variable overriding the cache folder.
CACHE_ENV = "ACCELKIT_CACHE_DIR"
#: Bump when the meaning of the cache key changes.
CACHE_KEY_SCHEMA = 1

_BATCH_HELP = "use MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX (e.g. 1:8:64), or a single N for a fixed batch"


# --------------------------------------------------------------------------- parsing
def parse_batch_range(text: str) -> tuple[int, int, int]:
    """Parse a ``--batch-range`` value.

    Args:
        text: ``MIN:OPT:MAX`` (e.g. ``1:8:64``) or a single ``N`` meaning ``N:N:N``.
            Values are batch sizes (images per call).

    Returns:
        ``(min, opt, max)`` with ``1 <= min <= opt <= max``.

    Raises:
        InputError: The text is not of that form, a value is not a positive integer,
            or the values are out of order.
    """
    raw = str(text).strip()
    parts = [p.strip() for p in raw.split(":")] if raw else []
    if len(parts) not in (1, 3) or any(not re.fullmatch(r"[+-]?\d+", p) for p in parts):
        raise InputError(f"--batch-range {text!r} is not MIN:OPT:MAX or N; {_BATCH_HELP}")
    values = [int(p) for p in parts]
    if any(v < 1 for v in values):
        raise InputError(f"--batch-range {text!r}: batch sizes must be positive integers; {_BATCH_HELP}")
    lo, opt, hi = values * 3 if len(values) == 1 else values
    if not lo <= opt <= hi:
        raise InputError(f"--batch-range {text!r}: need MIN <= OPT <= MAX, got {lo}:{opt}:{hi}; {_BATCH_HELP}")
    return (lo, opt, hi)


def _as_batch_range(value: str | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(value, str):
        return parse_batch_range(value)
    vals = tuple(value)
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise InputError(f"batch range {value!r} is not three integers (MIN, OPT, MAX); {_BATCH_HELP}")
    return parse_batch_range(":".join(str(v) for v in vals))


def profile_shapes(spec: GeneratorSpec, batch_range: Sequence[int]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Optimization-profile shapes for every generator input.

    Args:
        spec: The generator's I/O spec (per-sample shapes, without batch).
        batch_range: ``(min, opt, max)`` batch sizes.

    Returns:
        Input name -> ``(min_shape, opt_shape, max_shape)``, each ``(batch, *per_sample)``.
    """
    lo, opt, hi = batch_range
    return {
        inp.name: ((lo, *inp.shape), (opt, *inp.shape), (hi, *inp.shape))
        for inp in spec.inputs
    }


def check_network_inputs(
    network_inputs: Mapping[str, Sequence[int]], spec: GeneratorSpec, batch_range: Sequence[int]
) -> None:
    """Check the parsed network's inputs against the spec and the batch range.

    Args:
        network_inputs: Input name -> shape as TensorRT parsed it from ONNX
            (``-1`` for a dynamic dimension).
        spec: The generator's I/O spec.
        batch_range: ``(min, opt, max)``.

    Raises:
        SpecError: Input names or per-sample dimensions differ from the spec.
        InputError: The ONNX batch dimension is fixed and the range asks for others.
    """
    want = spec.input_names
    if sorted(network_inputs) != sorted(want):
        raise SpecError(
            f"the ONNX model's inputs {sorted(network_inputs)} do not match the generator spec's inputs {want}; "
            "re-export the model or fix the spec with --input"
        )
    lo, _, hi = batch_range
    for inp in spec.inputs:
        shape = list(network_inputs[inp.name])
        if len(shape) != 1 + len(inp.shape):
            raise SpecError(
                f"ONNX input {inp.name!r} has rank {len(shape)}, the spec says batch + {inp.shape} (rank {1 + len(inp.shape)}); "
                "fix the spec with --input or re-export"
            )
        for got, exp in zip(shape[1:], inp.shape):
            if got not in (-1, exp):
                raise SpecError(
                    f"ONNX input {inp.name!r} has per-sample shape {tuple(shape[1:])}, the spec says {inp.shape}; "
                    "fix the spec with --input or re-export"
                )
        if shape[0] != -1 and not lo == hi == shape[0]:
            raise InputError(
                f"ONNX input {inp.name!r} has a fixed batch of {shape[0]} but the batch range is {lo}..{hi}; "
                f"re-export with a dynamic batch or use --batch-range {shape[0]}"
            )


# --------------------------------------------------------------------------- cache keys
def engine_cache_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    batch_range: Sequence[int],
    input_shapes: Mapping[str, Sequence[int]],
    options: Mapping[str, Any] | None = None,
) -> str:
    """Stable key of one engine build.

    Args:
        onnx_sha256: Fingerprint of the ONNX model (file plus external data).
        trt_version: ``tensorrt.__version__``.
        gpu_name: GPU product name, e.g. ``NVIDIA H100 80GB HBM3``.
        compute_capability: ``"major.minor"``, e.g. ``"9.0"``.
        batch_range: ``(min, opt, max)``.
        input_shapes: Input name -> per-sample shape (without batch).
        options: Other build options that change the plan (JSON-serializable values);
            key order does not matter.

    Returns:
        64 hex characters (sha256 of a canonical JSON document).
    """
    doc = {
        "schema": CACHE_KEY_SCHEMA,
        "onnx_sha256": str(onnx_sha256),
        "tensorrt": str(trt_version),
        "gpu": str(gpu_name),
        "compute_capability": str(compute_capability),
        "batch_range": [int(b) for b in batch_range],
        "inputs": {str(k): [int(d) for d in v] for k, v in input_shapes.items()},
        "options": dict(options or {}),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def onnx_fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 of an ONNX file together with the external-data files it references.

    Hashing the ``.onnx`` file alone would miss weights stored beside it
    (``model.onnx.data``), and a changed weight file would then hit a stale engine.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The file's own sha256 when it has no external data, else a sha256 over the
        file's hash and each external file's name and hash.
    """
    path = Path(path)
    own = sha256_file(path)
    locations = _external_data_locations(path)
    if not locations:
        return own
    h = hashlib.sha256(own.encode())
    for loc in locations:
        ext = path.parent / loc
        h.update(loc.encode())
        h.update((sha256_file(ext) if ext.is_file() else "missing").encode())
    return h.hexdigest()


def _external_data_locations(path: Path) -> list[str]:
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a core dependency
        return []
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # corrupt file: the parser will report it properly
        log.debug("could not read %s for external data (%s)", path, exc)
        return []
    locs: set[str] = set()
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for entry in t.external_data:
                if entry.key == "location":
                    locs.add(entry.value)
    return sorted(locs)


def default_cache_dir() -> Path:
    """Engine/timing cache folder: ``$ACCELKIT_CACHE_DIR`` or ``~/.cache/accelkit/engines``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/accelkit/engines").expanduser()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


# --------------------------------------------------------------------------- compatibility
def plan_build_info(sidecar: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """TensorRT version and GPU recorded in a plan's sidecar (None where absent)."""
    meta = sidecar.get("meta") or {}
    trt_info = meta.get("tensorrt") or {}
    version = trt_info.get("version") if isinstance(trt_info, Mapping) else None
    if not version:
        version = (sidecar.get("versions") or {}).get("tensorrt")
    gpu = meta.get("gpu")
    return (str(version) if version else None), (dict(gpu) if isinstance(gpu, Mapping) else None)


def check_plan_compatible(sidecar: Mapping[str, Any], trt_version: str, gpu: Mapping[str, Any]) -> str | None:
    """Why a plan cannot run here, or None when it can.

    TensorRT plans are, by default, bound to the exact TensorRT version that built them
    and are not portable across GPU models; a mismatching plan may fail to deserialize
    or run with wrong tactics. It must be rebuilt or refused, never run.

    Args:
        sidecar: The plan's sidecar (``read_sidecar(plan)``).
        trt_version: The installed ``tensorrt.__version__``.
        gpu: This machine's :func:`gpu_identity` (``name``, ``compute_capability``).

    Returns:
        A one-line reason naming what differs, or None.
    """
    if sidecar.get("format") not in (None, "trt"):
        return f"the sidecar describes a {sidecar.get('format')!r} artifact, not a TensorRT plan"
    built_version, built_gpu = plan_build_info(sidecar)
    if built_version is None:
        return "the sidecar does not record which TensorRT version built the plan"
    if built_version != str(trt_version):
        return f"the plan was built with TensorRT {built_version} but TensorRT {trt_version} is installed"
    if built_gpu is None:
        return "the sidecar does not record the GPU the plan was built for"
    b_cc, h_cc = str(built_gpu.get("compute_capability")), str(gpu.get("compute_capability"))
    if b_cc != h_cc:
        return (
            f"the plan was built for {built_gpu.get('name')} (compute capability {b_cc}) "
            f"but this GPU is {gpu.get('name')} (compute capability {h_cc})"
        )
    if str(built_gpu.get("name")) != str(gpu.get("name")):
        return f"the plan was built on a {built_gpu.get('name')} but this GPU is a {gpu.get('name')}"
    return None


# --------------------------------------------------------------------------- optional imports
def tensorrt_import_problem() -> str | None:
    """None when the real ``tensorrt`` module imports, else why it does not.

    ``tensorrt-stubs`` installs a ``tensorrt/`` folder holding only ``.pyi`` files, which
    Python imports as an empty namespace package; that is reported as missing too.
    """
    try:
        load_tensorrt("TensorRT")
    except MissingDependencyError as exc:
        return str(exc)
    return None


def load_tensorrt(feature: str) -> Any:
    """Import the real ``tensorrt`` module.

    Args:
        feature: What the user tried to do (for the message).

    Raises:
        MissingDependencyError: Not importable, or only type stubs are installed.
    """
    mod = require("tensorrt", "gpu", feature)
    if not hasattr(mod, "Builder") or not hasattr(mod, "__version__"):
        where = list(getattr(mod, "__path__", []) or [])
        raise MissingDependencyError(
            f"{feature} needs the Python package 'tensorrt', but the importable 'tensorrt' "
            f"{'at ' + str(where[0]) + ' ' if where else ''}has no TensorRT in it (only type stubs?); "
            "install it with: pip install 'accelkit[gpu]' (TensorRT wheels download from pypi.nvidia.com)"
        )
    return mod


_TRT_LOGGER: list[tensorrt.ILogger] = []
_TRT_LOCK = threading.Lock()


def _trt_logger() -> tensorrt.ILogger:
    """One process-wide TensorRT logger that forwards to Python ``logging``.

    TensorRT wants the same logger for every builder/runtime in a process; its own
    ``trt.Logger`` writes to stderr, which the library must not do.
    """
    import tensorrt as trt

    with _TRT_LOCK:
        if _TRT_LOGGER:
            return _TRT_LOGGER[0]
        sev = trt.ILogger.Severity
        levels = {
            sev.INTERNAL_ERROR: logging.CRITICAL,
            sev.ERROR: logging.ERROR,
            sev.WARNING: logging.WARNING,
            sev.INFO: logging.DEBUG,  # TensorRT's INFO is build chatter
            sev.VERBOSE: logging.DEBUG - 5,
        }

        class _LoggingTrtLogger(trt.ILogger):
            """Forwards TensorRT messages to ``logging``; keeps the last errors for messages."""

            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: collections.deque[str] = collections.deque(maxlen=8)

            def log(self, severity: tensorrt.ILogger.Severity, msg: str) -> None:
                level = levels.get(severity, logging.INFO)
                if level >= logging.ERROR:
                    self.errors.append(msg.strip())
                if trt_log.isEnabledFor(level):
                    trt_log.log(level, "%s", msg)

        logger = _LoggingTrtLogger()
        _TRT_LOGGER.append(logger)
        return logger


def last_trt_errors() -> str:
    """The most recent TensorRT error messages, joined on one line (empty if none)."""
    if not _TRT_LOGGER:
        return ""
    errors = getattr(_TRT_LOGGER[0], "errors", ())
    return " | ".join(e.replace("\n", " ") for e in list(errors)[-3:])


def _clear_trt_errors() -> None:
    if _TRT_LOGGER and hasattr(_TRT_LOGGER[0], "errors"):
        _TRT_LOGGER[0].errors.clear()


# --------------------------------------------------------------------------- GPU identity
def gpu_identity(device_index: int = 0) -> dict[str, str]:
    """Name, compute capability and driver of one CUDA GPU.

    Queried through torch when its CUDA build sees the GPU, else through cuda-python's
    runtime bindings, else through pycuda. The driver version is the CUDA driver API
    version (``cuDriverGetVersion``, e.g. ``"12.4"``), read from ``libcuda``.

    Args:
        device_index: CUDA device ordinal (``cuda:N``).

    Returns:
        ``{"name", "compute_capability" ("9.0"), "driver", "index", "source"}``.

    Raises:
        BackendUnavailableError: No CUDA GPU is visible to any of those libraries.
    """
    tried: list[str] = []
    ident = _gpu_from_torch(device_index, tried) or _gpu_from_cuda_python(device_index, tried) or _gpu_from_pycuda(device_index, tried)
    if ident is None:
        raise BackendUnavailableError(
            f"no CUDA GPU with index {device_index} is visible ({'; '.join(tried)}); "
            "run on a machine with an NVIDIA GPU and driver, or choose a CPU backend"
        )
    ident["driver"] = _cuda_driver_version() or "unknown"
    ident["index"] = str(device_index)
    return ident


def _gpu_from_torch(idx: int, tried: list[str]) -> dict[str, str] | None:
    try:
        import torch
    except ImportError:
        tried.append("torch: not installed")
        return None
    try:
        if not torch.cuda.is_available():
            tried.append(f"torch {torch.__version__}: CUDA not available")
            return None
        count = torch.cuda.device_count()
        if idx >= count:
            tried.append(f"torch: only {count} CUDA device(s)")
            return None
        props = torch.cuda.get_device_properties(idx)
    except Exception as exc:  # driver problems surface as RuntimeError
        tried.append(f"torch: {type(exc).__name__}: {exc}")
        return None
    return {"name": str(props.name), "compute_capability": f"{props.major}.{props.minor}", "source": "torch"}


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6

        return cudart
    except ImportError:
        from cuda import cudart  # older cuda-python

        return cudart


def _gpu_from_cuda_python(idx: int, tried: list[str]) -> dict[str, str] | None:
    try:
        cudart = _import_cudart()
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
    except Exception as exc:
        tried.append(f"cuda-python: {type(exc).__name__}: {exc}")
        return None
    name = prop.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    return {"name": str(name), "compute_capability": f"{prop.major}.{prop.minor}", "source": "cuda-python"}


def _gpu_from_pycuda(idx: int, tried: list[str]) -> dict[str, str] | None:
    try:
        import pycuda.driver as drv
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
        return {"name": str(dev.name()), "compute_capability": f"{major}.{minor}", "source": "pycuda"}
    except Exception as exc:
        tried.append(f"pycuda: {type(exc).__name__}: {exc}")
        return None


def _cuda_driver_version() -> str | None:
    """CUDA driver API version from libcuda (``cuDriverGetVersion``), e.g. ``"12.4"``."""
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so", ctypes.util.find_library("cuda")]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value > 0:
            return f"{version.value // 1000}.{(version.value % 1000) // 10}"
    return None


def _use_device(index: int) -> None:
    """Make CUDA device ``index`` current for TensorRT (which builds/runs on the current device)."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(index)
            return
    except ImportError:
        pass
    try:
        cudart = _import_cudart()
    except ImportError:
        if index != 0:
            raise MissingDependencyError(
                f"selecting cuda:{index} needs torch with CUDA or cuda-python; install it with: pip install 'accelkit[gpu]'"
            ) from None
        return
    (err,) = cudart.cudaSetDevice(index)
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendUnavailableError(f"cannot select CUDA device {index} ({err}); check --device")


def _device_index(device: str) -> int:
    if device in ("cuda", "gpu"):
        return 0
    m = re.fullmatch(r"cuda:(\d+)", device)
    if not m:
        raise InputError(f"device {device!r} is not a CUDA device; use cuda or cuda:N")
    return int(m.group(1))


# --------------------------------------------------------------------------- progress
class _ProgressTracker:
    """Turns TensorRT's nested phase/step events into ``progress(stage, fraction)`` calls.

    TensorRT calls the monitor from its own threads, so this is lock-protected, and a
    callback that raises is logged and ignored (an exception must not cross into
    TensorRT's C++ callback).
    """

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._phases: dict[str, tuple[str | None, int]] = {}
        self._lock = threading.Lock()
        self._failed = False

    def emit(self, stage: str, fraction: float | None) -> None:
        if self._callback is None or self._failed:
            return
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        try:
            self._callback(stage, fraction)
        except Exception:
            self._failed = True
            log.exception("the progress callback raised; progress reporting is off for this build")

    def _label(self, phase: str) -> str:
        names = [phase]
        parent = self._phases.get(phase, (None, 0))[0]
        while parent is not None and parent not in names and len(names) < 8:
            names.append(parent)
            parent = self._phases.get(parent, (None, 0))[0]
        return " > ".join(reversed(names))

    def phase_start(self, phase: str, parent: str | None, num_steps: int) -> None:
        with self._lock:
            self._phases[phase] = (parent or None, max(1, int(num_steps)))
            label = self._label(phase)
        self.emit(label, 0.0)

    def step_complete(self, phase: str, step: int) -> bool:
        with self._lock:
            steps = self._phases.get(phase, (None, 1))[1]
            label = self._label(phase)
        self.emit(label, (int(step) + 1) / steps)
        return True  # never cancel the build

    def phase_finish(self, phase: str) -> None:
        with self._lock:
            label = self._label(phase)
            self._phases.pop(phase, None)
        self.emit(label, 1.0)


def _make_progress_monitor(tracker: _ProgressTracker) -> tensorrt.IProgressMonitor:
    """A ``trt.IProgressMonitor`` (TensorRT >= 10) forwarding to ``tracker``."""
    import tensorrt as trt

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            tracker.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return tracker.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            tracker.phase_finish(phase_name)

    return _Monitor()


def _dims(d: tensorrt.Dims) -> tuple[int, ...]:
    return tuple(int(d[i]) for i in range(len(d)))


# --------------------------------------------------------------------------- the pass
class EngineFromOnnx:
    """Build (or fetch from the engine cache) a TensorRT plan for an ONNX artifact.

    Args:
        batch_range: ``"MIN:OPT:MAX"``, ``"N"`` or a ``(min, opt, max)`` tuple; the
            optimization profile covers these batch sizes for every input.
        workspace: Builder workspace memory pool limit, bytes.
        out: Where to write the plan (``.plan``); its sidecar goes beside it. Default:
            the plan stays in the engine cache (or, with ``cache=False``, goes next to
            the ONNX file as ``<stem>.plan``).
        force: Overwrite ``out`` when it exists.
        rebuild: Ignore a cached engine and build again (the cache entry is replaced).
        cache: Use the engine cache at all.
        cache_dir: Cache folder (default ``$ACCELKIT_CACHE_DIR`` or ``~/.cache/accelkit/engines``).
        timing_cache: Timing cache file (default: one per GPU and TensorRT version in
            ``cache_dir``); None with ``cache=False`` disables it.
        builder_optimization_level: TensorRT builder optimization level 0..5 (None:
            TensorRT's default, 3). Higher builds longer, may run faster.
        tf32: False forbids TF32 math for FP32 convolutions/matmuls (clears
            ``BuilderFlag.TF32``; exact FP32, slower on Ampere and newer). None keeps
            TensorRT's default (TF32 allowed). Recorded in the sidecar either way.
        progress: ``progress(stage, fraction)`` callback; fraction in [0, 1] or None.
            Called from TensorRT's builder threads while building.
        device: ``cuda`` or ``cuda:N``: the GPU to build for (a plan is GPU-specific).
    """

    name = "EngineFromOnnx"

    def __init__(
        self,
        batch_range: str | Sequence[int] = DEFAULT_BATCH_RANGE,
        workspace: int = DEFAULT_WORKSPACE,
        out: str | os.PathLike[str] | None = None,
        force: bool = False,
        rebuild: bool = False,
        cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        timing_cache: str | os.PathLike[str] | None = None,
        builder_optimization_level: int | None = None,
        tf32: bool | None = None,
        progress: ProgressCallback | None = None,
        device: str = "cuda",
    ) -> None:
        self.batch_range = _as_batch_range(batch_range)
        if not isinstance(workspace, int) or isinstance(workspace, bool) or workspace <= 0:
            raise InputError(f"workspace {workspace!r} must be a positive number of bytes, e.g. {DEFAULT_WORKSPACE} (1 GiB)")
        self.workspace = workspace
        level = builder_optimization_level
        if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5):
            raise InputError(f"builder optimization level {level!r} is out of range; use an integer 0..5 (TensorRT's default is 3)")
        self.builder_optimization_level = level
        self.tf32 = tf32
        self.out = Path(out) if out is not None else None
        self.force = force
        self.rebuild = rebuild
        self.cache = cache
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.timing_cache = Path(timing_cache).expanduser() if timing_cache is not None else None
        self.device_index = _device_index(device)
        self.tracker = _ProgressTracker(progress)

    def options(self) -> dict[str, Any]:
        """Options as recorded in the sidecar's pass chain."""
        return {
            "batch_range": list(self.batch_range),
            "workspace": self.workspace,
            "builder_optimization_level": self.builder_optimization_level,
            "tf32": self.tf32,
            "strongly_typed": True,
            "cache": self.cache,
        }

    def _key_options(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "builder_optimization_level": self.builder_optimization_level,
            "tf32": self.tf32,
            "strongly_typed": True,
        }

    # ------------------------------------------------------------------ entry point
    def __call__(self, artifact: Artifact) -> Artifact:
        """Build or fetch the plan for ``artifact``.

        Args:
            artifact: An ``onnx`` artifact with a file on disk; its spec gives the
                per-sample input shapes.

        Returns:
            A ``trt`` artifact whose ``path`` is the plan and whose ``meta`` records
            TensorRT version, GPU, batch range, cache key and build seconds.

        Raises:
            InputError: Not an ONNX artifact, file missing, ``out`` exists without force.
            MissingDependencyError: tensorrt is not installed.
            BackendUnavailableError: No CUDA GPU.
            SpecError: The ONNX inputs do not match the spec.
            ExportError: TensorRT could not parse the ONNX or build the engine.
        """
        if artifact.format != "onnx":
            raise InputError(
                f"EngineFromOnnx needs an ONNX artifact, got a {artifact.format!r} artifact; "
                "export it first (accelkit export) and build the engine from the .onnx file"
            )
        if artifact.path is None or not Path(artifact.path).is_file():
            raise InputError(f"ONNX file {artifact.path} does not exist; export the model first or check the path")
        onnx_path = Path(artifact.path)
        plain_dest = self.out or onnx_path.with_suffix(".plan")  # where a build without the cache goes
        for dest in (self.out, None if self.cache else plain_dest):
            if dest is not None:
                refuse_existing(dest, self.force)
        trt = load_tensorrt("building a TensorRT engine")
        gpu = gpu_identity(self.device_index)
        _use_device(self.device_index)
        trt_version = str(trt.__version__)
        fingerprint = onnx_fingerprint(onnx_path)
        per_sample = {inp.name: list(inp.shape) for inp in artifact.spec.inputs}
        key = engine_cache_key(
            fingerprint, trt_version, gpu["name"], gpu["compute_capability"], self.batch_range, per_sample, self._key_options()
        )
        cached_plan = self.cache_dir / f"{key}.plan"

        info: dict[str, Any] | None = None
        if self.cache and not self.rebuild:
            info = self._cache_lookup(cached_plan, trt_version, gpu)
        if info is None:
            built = cached_plan if self.cache else plain_dest
            if self.cache:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            info = _build_plan(
                onnx_path=onnx_path,
                dest=built,
                spec=artifact.spec,
                batch_range=self.batch_range,
                workspace=self.workspace,
                builder_optimization_level=self.builder_optimization_level,
                tf32=self.tf32,
                timing_cache=self._timing_cache_path(trt_version, gpu),
                tracker=self.tracker,
                force=True if self.cache else self.force,
            )
            info["engine_cache"] = "miss" if self.cache else "off"
        else:
            built = cached_plan
            info["engine_cache"] = "hit"
            self.tracker.emit("engine cache hit", 1.0)
            log.info("TensorRT engine cache hit: %s", cached_plan)

        result = artifact.derive(format="trt", path=built)
        result.meta.update(
            {
                **info,
                "tensorrt": {"version": trt_version, "strongly_typed": True},
                "gpu": {k: gpu[k] for k in ("name", "compute_capability", "driver")},
                "batch_range": list(self.batch_range),
                "engine_cache_key": key,
                "onnx_sha256": fingerprint,
                "onnx_path": str(onnx_path.resolve()),
            }
        )
        result.passes.append({"name": self.name, "options": self.options(), "engine_cache": info["engine_cache"]})
        if info["engine_cache"] != "hit" or self.out is None:
            _save_sidecar(result)  # the cache entry's (or the plain build's) sidecar
        if self.out is not None and self.out.resolve() != built.resolve():
            with atomic_path(self.out, force=self.force) as tmp:
                shutil.copyfile(built, tmp)
            result = result.derive(path=self.out)
            _save_sidecar(result)
        return result

    # ------------------------------------------------------------------ cache
    def _cache_lookup(self, plan: Path, trt_version: str, gpu: Mapping[str, Any]) -> dict[str, Any] | None:
        """Metadata of a valid cached plan, or None (missing, stale or damaged)."""
        if not plan.is_file():
            return None
        try:
            side = read_sidecar(plan)
        except LoadError as exc:
            log.warning("ignoring cached engine %s: %s", plan, exc)
            return None
        if side is None:
            log.warning("ignoring cached engine %s: it has no sidecar", plan)
            return None
        reason = check_plan_compatible(side, trt_version, gpu)
        if reason is None and side.get("sha256") and side["sha256"] != sha256_file(plan):
            reason = "the plan file does not match the sha256 in its sidecar (damaged or replaced)"
        if reason is not None:
            log.warning("ignoring cached engine %s: %s; rebuilding", plan, reason)
            return None
        meta = dict(side.get("meta") or {})
        keep = ("build_seconds", "input_profiles", "workspace_bytes", "timing_cache", "io_tensors", "builder_optimization_level", "tf32")
        return {k: meta[k] for k in keep if k in meta}

    def _timing_cache_path(self, trt_version: str, gpu: Mapping[str, Any]) -> Path | None:
        if self.timing_cache is not None:
            return self.timing_cache
        if not self.cache:
            return None
        return self.cache_dir / f"timing-{_slug(str(gpu['name']))}-sm{_slug(str(gpu['compute_capability']))}-trt{_slug(trt_version)}.cache"


def _build_plan(
    *,
    onnx_path: Path,
    dest: Path,
    spec: GeneratorSpec,
    batch_range: tuple[int, int, int],
    workspace: int,
    builder_optimization_level: int | None,
    tf32: bool | None,
    timing_cache: Path | None,
    tracker: _ProgressTracker,
    force: bool,
) -> dict[str, Any]:
    """Parse ONNX into a strongly typed network, build and write the plan atomically.

    Returns:
        Build metadata for the sidecar (seconds, profiles, timing cache, I/O tensors).
    """
    import tensorrt as trt

    t0 = time.perf_counter()
    logger = _trt_logger()
    _clear_trt_errors()
    init_plugins = getattr(trt, "init_libnvinfer_plugins", None)
    if init_plugins is not None:
        init_plugins(logger, "")

    builder = trt.Builder(logger)
    # STRONGLY_TYPED: required on TensorRT 10 for precision-from-graph; on 11 it is
    # deprecated and ignored (strong typing is always on), so a missing flag is fine.
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flags = (1 << int(strongly)) if strongly is not None else 0
    network = builder.create_network(flags)
    if network is None:
        raise ExportError(f"TensorRT could not create a network ({last_trt_errors() or 'no message'})")

    tracker.emit("parsing ONNX", None)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file (not parse(bytes)) so external weights next to the file are found
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip().replace("\n", " ") for i in range(parser.num_errors)]
        shown = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        raise ExportError(
            f"TensorRT {trt.__version__} could not parse {onnx_path.name}: {shown or last_trt_errors() or 'no message'}; "
            "check that every op is supported by TensorRT's ONNX parser (re-export with another --opset, or run it with the ort backend)"
        )

    net_inputs = {network.get_input(i).name: _dims(network.get_input(i).shape) for i in range(network.num_inputs)}
    check_network_inputs(net_inputs, spec, batch_range)
    shapes = profile_shapes(spec, batch_range)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if builder_optimization_level is not None:
        config.builder_optimization_level = builder_optimization_level
    if tf32 is False:
        tf32_flag = getattr(trt.BuilderFlag, "TF32", None)
        if tf32_flag is not None:
            config.clear_flag(tf32_flag)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, trt.Dims(list(lo)), trt.Dims(list(opt)), trt.Dims(list(hi)))
    if config.add_optimization_profile(profile) < 0:
        raise ExportError(f"TensorRT rejected the optimization profile {shapes} ({last_trt_errors() or 'no message'})")

    monitor = None
    if hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"):
        monitor = _make_progress_monitor(tracker)
        config.progress_monitor = monitor

    cache_obj = None
    if timing_cache is not None:
        data = b""
        if timing_cache.is_file():
            try:
                data = timing_cache.read_bytes()
            except OSError as exc:
                log.warning("cannot read timing cache %s (%s); starting a new one", timing_cache, exc)
        cache_obj = config.create_timing_cache(data)
        if not config.set_timing_cache(cache_obj, ignore_mismatch=False):
            log.warning("timing cache %s was made on another device or TensorRT; starting a new one", timing_cache)
            cache_obj = config.create_timing_cache(b"")
            config.set_timing_cache(cache_obj, ignore_mismatch=False)

    tracker.emit("building engine", None)
    log.info(
        "building TensorRT %s engine from %s (strongly typed, batch %d:%d:%d, workspace %d MiB)",
        trt.__version__, onnx_path, *batch_range, workspace >> 20,
    )
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(
            f"TensorRT {trt.__version__} failed to build an engine from {onnx_path.name}: "
            f"{last_trt_errors() or 'see the accelkit.passes.engine.tensorrt log'}; "
            "try a larger --workspace, a smaller --batch-range, or check the ONNX precision"
        )
    build_s = time.perf_counter() - t0

    if cache_obj is not None and timing_cache is not None:
        try:
            serialized = config.get_timing_cache().serialize()
            timing_cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(timing_cache, force=True) as tmp:
                tmp.write_bytes(memoryview(serialized).tobytes())
        except (OSError, InputError) as exc:
            log.warning("could not save timing cache %s (%s)", timing_cache, exc)

    with atomic_path(dest, force=force) as tmp:
        with open(tmp, "wb") as f:
            f.write(memoryview(plan))
    del config, monitor  # the monitor must outlive every TensorRT object using it

    io_tensors = _plan_io(plan)
    tracker.emit("engine written", 1.0)
    log.info("TensorRT engine written to %s in %.1f s", dest, build_s)
    return {
        "build_seconds": round(build_s, 3),
        "input_profiles": {n: [list(s) for s in v] for n, v in shapes.items()},
        "workspace_bytes": workspace,
        "builder_optimization_level": builder_optimization_level,
        "tf32": tf32,
        "timing_cache": str(timing_cache) if timing_cache is not None else None,
        "io_tensors": io_tensors,
    }


def _plan_io(plan: Any) -> dict[str, dict[str, Any]]:
    """I/O tensor names, modes and dtypes of a freshly built plan (for the sidecar).

    Deserializing also proves the plan loads on this GPU before it is recorded.
    """
    import tensorrt

    runtime = tensorrt.Runtime(_trt_logger())
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ExportError(f"TensorRT built a plan it cannot deserialize ({last_trt_errors() or 'no message'})")
    out: dict[str, dict[str, Any]] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        out[name] = {
            "mode": "input" if mode == tensorrt.TensorIOMode.INPUT else "output",
            "dtype": str(engine.get_tensor_dtype(name)).split(".")[-1],
            "shape": list(_dims(engine.get_tensor_shape(name))),
        }
    return out


def _save_sidecar(art: Artifact) -> None:
    """Write the sidecar without in-memory objects (torch reference modules)."""
    saved = art.meta.pop("reference", None)
    try:
        art.save_sidecar()
    finally:
        if saved is not None:
            art.meta["reference"] = saved


def build_engine(
    artifact: Artifact,
    out: str | os.PathLike[str] | None = None,
    *,
    batch_range: str | Sequence[int] = DEFAULT_BATCH_RANGE,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> Artifact:
    """Convenience wrapper: ``EngineFromOnnx(batch_range, out=out, ...)(artifact)``."""
    return EngineFromOnnx(batch_range=batch_range, out=out, progress=progress, **options)(artifact)
