"""TensorRT runner: executes a serialized engine (plan) on an NVIDIA GPU.

The runner takes either a ``trt`` artifact (a plan file with its sidecar) or an ``onnx``
artifact, which it builds into a plan with :class:`~accelkit.passes.engine.EngineFromOnnx`
through the engine cache. A plan is checked against its sidecar before it is loaded: the
TensorRT version and the GPU (name, compute capability) must be the ones it was built
for, and the file must still have the sha256 the sidecar recorded. A mismatching plan is
refused with the reason (or, with ``rebuild=True``, rebuilt from the ONNX file the sidecar
names when that file is unchanged); it is never run.

Execution uses TensorRT's name-based I/O API: ``set_input_shape`` and
``set_tensor_address`` per tensor, then ``execute_async_v3`` on the runner's CUDA stream.
Device memory and the stream come from torch (CUDA tensors, ``torch.cuda.Stream``) when
torch has CUDA, else from cuda-python's runtime bindings. Nothing heavy is imported at
module import: ``tensorrt``, torch's CUDA and cuda-python load in :meth:`activate`.

Options (recorded by :meth:`TrtRunner.describe`):

* ``batch_range``: ``"MIN:OPT:MAX"`` for building from ONNX (default ``1:8:64``).
* ``workspace``, ``builder_optimization_level``, ``tf32``, ``cache``, ``cache_dir``,
  ``timing_cache``, ``progress``: passed to ``EngineFromOnnx``.
* ``rebuild``: rebuild an incompatible plan from its recorded, unchanged ONNX file
  (default False: refuse it).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from accelkit.artifact import Artifact, read_sidecar, sidecar_path
from accelkit.files import sha256_file
from accelkit.errors import (
    AccelkitError,
    BackendUnavailableError,
    InputError,
    LoadError,
    MissingDependencyError,
    SpecError,
)
from accelkit.passes import engine as _eng
from accelkit.runners.base import Runner

if TYPE_CHECKING:
    import tensorrt

log = logging.getLogger(__name__)

_BUILD_OPTIONS = ("batch_range", "workspace", "builder_optimization_level", "tf32", "cache", "cache_dir", "timing_cache", "progress")
_OPTIONS = (*_BUILD_OPTIONS, "rebuild", "precision")


# --------------------------------------------------------------------------- dtypes
def _numpy_dtype(trt: Any, dt: Any) -> np.dtype[Any] | None:
    """numpy dtype of a TensorRT DataType (None for types numpy lacks: BF16, FP8, INT4...)."""
    table = {
        "FLOAT": np.float32,
        "HALF": np.float16,
        "INT8": np.int8,
        "INT32": np.int32,
        "INT64": np.int64,
        "BOOL": np.bool_,
        "UINT8": np.uint8,
    }
    for name, np_type in table.items():
        member = getattr(trt.DataType, name, None)
        if member is not None and dt == member:
            return np.dtype(np_type)
    return None


def _torch_dtype(trt: Any, torch: Any, dt: Any) -> Any:
    table = {
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "INT8": torch.int8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
        "UINT8": torch.uint8,
    }
    for name, t_type in table.items():
        member = getattr(trt.DataType, name, None)
        if member is not None and dt == member:
            return t_type
    raise LoadError(f"the engine uses I/O data type {dt}, which accelkit cannot feed; keep the model's inputs/outputs float32/float16")


def _dtype_name(dt: Any) -> str:
    return str(dt).split(".")[-1]


# --------------------------------------------------------------------------- device memory
@dataclass
class DeviceBuffer:
    """One tensor in GPU memory.

    Attributes:
        ptr: Device address (``int``) given to ``set_tensor_address``.
        shape: Shape including batch.
        trt_dtype: The engine's data type for this tensor.
        handle: What owns the memory (a torch CUDA tensor, or a cuda-python allocation).
    """

    ptr: int
    shape: tuple[int, ...]
    trt_dtype: Any
    handle: Any = None


class _TorchMemory:
    """Device buffers as torch CUDA tensors on a dedicated ``torch.cuda.Stream``."""

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
        torch = self._torch
        dtype = _torch_dtype(self._trt, torch, trt_dtype)
        host = np.ascontiguousarray(array)
        if not host.flags.writeable:  # torch.from_numpy warns on read-only arrays
            host = host.copy()
        with torch.cuda.stream(self.stream):
            t = torch.from_numpy(host).to(self._device).to(dtype).contiguous()
        return DeviceBuffer(int(t.data_ptr()), tuple(t.shape), trt_dtype, t)

    def empty(self, shape: tuple[int, ...], trt_dtype: Any) -> DeviceBuffer:
        torch = self._torch
        with torch.cuda.stream(self.stream):
            t = torch.empty(shape, dtype=_torch_dtype(self._trt, torch, trt_dtype), device=self._device)
        return DeviceBuffer(int(t.data_ptr()), tuple(t.shape), trt_dtype, t)

    def to_numpy(self, buf: DeviceBuffer) -> np.ndarray:
        with self._torch.cuda.stream(self.stream):
            host = buf.handle.float().cpu()  # copies on self.stream, waits for it
        return np.asarray(host.numpy(), dtype=np.float32)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def close(self) -> None:
        self.stream.synchronize()


class _CudaPythonMemory:
    """Device buffers from cuda-python's runtime API (``cudaMalloc``/``cudaMemcpy``)."""

    name = "cuda-python"

    def __init__(self, trt: Any, index: int) -> None:
        self._trt = trt
        self._rt = _eng._import_cudart()
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
        return int(self.stream)

    def _alloc(self, nbytes: int) -> int:
        ptr = int(self._check(self._rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))
        self._live.add(ptr)
        return ptr

    def _free(self, ptr: int) -> None:
        if ptr in self._live:
            self._live.discard(ptr)
            self._rt.cudaFree(ptr)

    def _np_dtype(self, trt_dtype: Any) -> np.dtype[Any]:
        dt = _numpy_dtype(self._trt, trt_dtype)
        if dt is None:
            raise MissingDependencyError(
                f"engine I/O type {_dtype_name(trt_dtype)} needs torch with CUDA for its buffers; install a CUDA build of torch"
            )
        return dt

    def upload(self, array: np.ndarray, trt_dtype: Any) -> DeviceBuffer:
        host = np.ascontiguousarray(np.asarray(array).astype(self._np_dtype(trt_dtype), copy=False))
        ptr = self._alloc(host.nbytes)
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpy(ptr, host.ctypes.data, host.nbytes, kind), "cudaMemcpy")
        buf = DeviceBuffer(ptr, tuple(host.shape), trt_dtype)
        weakref.finalize(buf, self._free, ptr)
        return buf

    def empty(self, shape: tuple[int, ...], trt_dtype: Any) -> DeviceBuffer:
        nbytes = int(np.prod(shape, dtype=np.int64)) * self._np_dtype(trt_dtype).itemsize
        ptr = self._alloc(nbytes)
        buf = DeviceBuffer(ptr, tuple(shape), trt_dtype)
        weakref.finalize(buf, self._free, ptr)
        return buf

    def to_numpy(self, buf: DeviceBuffer) -> np.ndarray:
        host = np.empty(buf.shape, dtype=self._np_dtype(buf.trt_dtype))
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpyAsync(host.ctypes.data, buf.ptr, host.nbytes, kind, self.stream), "cudaMemcpyAsync")
        self.synchronize()
        return host.astype(np.float32)

    def synchronize(self) -> None:
        self._check(self._rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def close(self) -> None:
        self.synchronize()
        for ptr in list(self._live):
            self._free(ptr)
        self._rt.cudaStreamDestroy(self.stream)


def _memory_layer(trt: Any, index: int) -> _TorchMemory | _CudaPythonMemory:
    try:
        import torch

        if torch.cuda.is_available():
            return _TorchMemory(trt, index)
    except ImportError:
        pass
    try:
        return _CudaPythonMemory(trt, index)
    except ImportError:
        raise MissingDependencyError(
            "the trt backend needs GPU buffers from torch with CUDA or from cuda-python, and neither is usable here; "
            "install one with: pip install 'accelkit[gpu]'"
        ) from None


@dataclass
class _Prepared:
    """A batch on the device: input buffers and the output buffers the engine writes.

    The output buffers belong to this batch and are overwritten by every run on it.
    """

    batch_size: int
    inputs: dict[str, DeviceBuffer] = field(default_factory=dict)
    outputs: dict[str, DeviceBuffer] = field(default_factory=dict)


# --------------------------------------------------------------------------- runner
class TrtRunner(Runner):
    """Runs a TensorRT engine on one NVIDIA GPU.

    Args:
        artifact: A ``trt`` artifact (plan + sidecar) or an ``onnx`` artifact (built into
            a plan through the engine cache on :meth:`activate`).
        device: ``cuda`` or ``cuda:N``.
        **options: See the module docstring.

    Raises:
        InputError: Wrong artifact format, unknown option or precision override.
    """

    name = "trt"
    OPTIONS = _OPTIONS

    def __init__(self, artifact: Artifact, device: str = "cuda", **options: Any) -> None:
        super().__init__(artifact, device=device, **options)
        if artifact.format not in ("trt", "onnx") or artifact.path is None:
            raise InputError(
                f"the trt backend runs TensorRT plans or ONNX files, got a {artifact.format!r} artifact"
                f"{' without a path' if artifact.format in ('trt', 'onnx') else ''}; export it first (accelkit export)"
            )
        prec = options.get("precision")
        if prec is not None and str(prec) != artifact.precision:
            raise InputError(
                f"a strongly typed TensorRT engine runs the precision stored in its ONNX graph ({artifact.precision}), "
                f"got precision={prec!r}; make an fp16/int8 ONNX with accelkit export --fp16/--int8 and build from that"
            )
        self.options.pop("precision", None)
        self._index = _eng._device_index(device)  # InputError for a non-CUDA device string
        if "batch_range" in options:
            self.options["batch_range"] = list(_eng._as_batch_range(options["batch_range"]))
        self.plan: Artifact | None = None
        self._trt: Any = None
        self._runtime: tensorrt.Runtime | None = None
        self._engine: tensorrt.ICudaEngine | None = None
        self._context: tensorrt.IExecutionContext | None = None
        self._mem: _TorchMemory | _CudaPythonMemory | None = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._dtypes: dict[str, Any] = {}
        self._batch_range: tuple[int, int, int] = (0, 0, 0)
        self._current: _Prepared | None = None
        self._gpu: dict[str, str] = {}
        self._plan_sha256: str | None = None

    # ----------------------------------------------------------------- availability
    @classmethod
    def availability(cls, device: str = "cpu") -> str | None:
        """None when TensorRT can run on ``device`` here, else every reason it cannot."""
        if not str(device).startswith("cuda"):
            return f"TensorRT runs only on NVIDIA GPUs (device {device!r} requested); use --device cuda"
        try:
            index = _eng._device_index(str(device))
        except InputError as exc:
            return str(exc)
        reasons = []
        problem = _eng.tensorrt_import_problem()
        if problem is not None:
            reasons.append(f"tensorrt is not importable: {problem}")
        try:
            _eng.gpu_identity(index)
        except BackendUnavailableError as exc:
            reasons.append(str(exc))
        return "; ".join(reasons) or None

    # ----------------------------------------------------------------- lifecycle
    def _activate_impl(self) -> None:
        _eng.load_tensorrt("the trt backend")
        import tensorrt as trt

        self._trt = trt
        self._gpu = _eng.gpu_identity(self._index)
        _eng._use_device(self._index)
        plan = self._plan_artifact(trt)
        self.plan = plan
        assert plan.path is not None  # ensured by _plan_artifact
        self._load_engine(Path(plan.path))
        self._mem = _memory_layer(trt, self._index)
        log.info(
            "trt runner ready: %s on %s (TensorRT %s, batch %d..%d, buffers via %s)",
            plan.path, self._gpu["name"], trt.__version__, self._batch_range[0], self._batch_range[2], self._mem.name,
        )

    def _build_options(self) -> dict[str, Any]:
        return {k: self.options[k] for k in _BUILD_OPTIONS if k in self.options}

    def _plan_artifact(self, trt: Any) -> Artifact:
        """The plan to load: the given one after its checks, or one built from ONNX."""
        art = self.artifact
        if art.format == "onnx":
            return _eng.EngineFromOnnx(device=self.device, **self._build_options())(art)
        assert art.path is not None
        plan_path = Path(art.path)
        if not plan_path.is_file():
            raise InputError(f"TensorRT plan {plan_path} does not exist; build it with accelkit (EngineFromOnnx) or check the path")
        side = read_sidecar(plan_path)
        if side is None:
            raise LoadError(
                f"TensorRT plan {plan_path} has no sidecar ({sidecar_path(plan_path).name}), so the TensorRT version and GPU "
                "it was built for are unknown and it will not be run; build it from its ONNX file with accelkit "
                "(or pass the .onnx to the trt backend)"
            )
        reason = _eng.check_plan_compatible(side, str(trt.__version__), self._gpu)
        if reason is None and side.get("sha256") and side["sha256"] != sha256_file(plan_path):
            reason = "the plan file's sha256 differs from its sidecar (changed after it was built)"
        if reason is None:
            return art
        onnx_src = self._recorded_onnx(side)
        if self.options.get("rebuild") and onnx_src is not None:
            log.warning("TensorRT plan %s cannot run here (%s); rebuilding it from %s", plan_path, reason, onnx_src.path)
            return _eng.EngineFromOnnx(device=self.device, **self._build_options())(onnx_src)
        hint = (
            "pass rebuild=True (--rebuild) to rebuild it from its ONNX file"
            if onnx_src is not None
            else "rebuild it on this machine from its ONNX file"
        )
        raise LoadError(f"TensorRT plan {plan_path} cannot run here: {reason}; {hint}")

    def _recorded_onnx(self, side: dict[str, Any]) -> Artifact | None:
        """The ONNX artifact the plan was built from, if it still exists unchanged."""
        meta = side.get("meta") or {}
        path, sha = meta.get("onnx_path"), meta.get("onnx_sha256")
        if not path or not sha or not Path(path).is_file():
            return None
        if _eng.onnx_fingerprint(path) != sha:
            log.warning("the ONNX file %s changed since the plan was built; not rebuilding from it", path)
            return None
        return self.artifact.derive(format="onnx", path=Path(path))

    def _load_engine(self, plan_path: Path) -> None:
        import tensorrt

        self._plan_sha256 = sha256_file(plan_path)
        runtime = tensorrt.Runtime(_eng._trt_logger())
        engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
        if engine is None:
            raise LoadError(
                f"TensorRT {tensorrt.__version__} could not deserialize {plan_path} ({_eng.last_trt_errors() or 'no message'}); "
                "rebuild the plan on this machine"
            )
        context = engine.create_execution_context()
        if context is None:
            raise LoadError(
                f"TensorRT could not create an execution context for {plan_path} ({_eng.last_trt_errors() or 'no message'}); "
                "the GPU may be out of memory: free it or rebuild with a smaller --batch-range"
            )
        inputs: list[str] = []
        outputs: list[str] = []
        dtypes: dict[str, tensorrt.DataType] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtypes[name] = engine.get_tensor_dtype(name)
            (inputs if engine.get_tensor_mode(name) == tensorrt.TensorIOMode.INPUT else outputs).append(name)
        if sorted(inputs) != sorted(self.spec.input_names):
            raise SpecError(
                f"the engine's inputs {sorted(inputs)} do not match the generator spec's inputs {self.spec.input_names}; "
                "rebuild the plan from the matching ONNX file"
            )
        if not outputs:
            raise LoadError(f"the engine in {plan_path} has no outputs; rebuild it")
        if len(outputs) > 1:
            log.info("engine has %d outputs %s; the image is taken from %r", len(outputs), outputs, outputs[0])
        profile = engine.get_tensor_profile_shape(inputs[0], 0)
        lo, opt, hi = (_eng._dims(d)[0] for d in profile)
        self._runtime, self._engine, self._context = runtime, engine, context
        self._inputs, self._outputs, self._dtypes = inputs, outputs, dtypes
        self._batch_range = (lo, opt, hi)

    def _deactivate_impl(self) -> None:
        try:
            if self._mem is not None:
                self._mem.synchronize()
        finally:
            self._current = None
            # release in reverse order of creation: context, engine, runtime
            self._context = None
            self._engine = None
            self._runtime = None
            if self._mem is not None:
                self._mem.close()
            self._mem = None

    # ----------------------------------------------------------------- execution
    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> _Prepared:
        assert self._mem is not None and self._context is not None
        batch = int(next(iter(inputs.values())).shape[0])
        lo, _, hi = self._batch_range
        if not lo <= batch <= hi:
            raise InputError(
                f"batch size {batch} is outside the engine's profile {lo}..{hi}; "
                f"use a batch in that range or rebuild with --batch-range covering {batch}"
            )
        prepared = _Prepared(batch_size=batch)
        for name in self._inputs:
            prepared.inputs[name] = self._mem.upload(inputs[name], self._dtypes[name])
        self._set_shapes(prepared)
        for name in self._outputs:
            shape = _eng._dims(self._context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise LoadError(f"TensorRT could not infer the shape of output {name!r} ({shape}) for batch {batch}")
            prepared.outputs[name] = self._mem.empty(shape, self._dtypes[name])
        self._bind(prepared)
        self._mem.synchronize()  # inputs are on the device before anything is timed
        return prepared

    def _set_shapes(self, prepared: _Prepared) -> None:
        ctx = self._context
        assert ctx is not None
        for name, buf in prepared.inputs.items():
            if not ctx.set_input_shape(name, buf.shape):
                raise InputError(
                    f"TensorRT rejected input shape {buf.shape} for {name!r} ({_eng.last_trt_errors() or 'outside the profile'})"
                )

    def _bind(self, prepared: _Prepared) -> None:
        ctx = self._context
        assert ctx is not None
        self._set_shapes(prepared)
        for name, buf in (*prepared.inputs.items(), *prepared.outputs.items()):
            if not ctx.set_tensor_address(name, buf.ptr):
                raise AccelkitError(f"TensorRT rejected the device address of {name!r} ({_eng.last_trt_errors() or 'no message'})")
        self._current = prepared  # held, so the identity check in _run_impl is safe

    def _run_impl(self, prepared: _Prepared) -> DeviceBuffer:
        ctx = self._context
        assert self._mem is not None and ctx is not None
        if prepared is not self._current:  # shapes and addresses change only with the batch
            self._bind(prepared)
        if not ctx.execute_async_v3(self._mem.stream_handle):
            raise AccelkitError(f"TensorRT execution failed ({_eng.last_trt_errors() or 'no message'})")
        return prepared.outputs[self._outputs[0]]

    def _synchronize_impl(self) -> None:
        if self._mem is not None:
            self._mem.synchronize()

    def _to_numpy_impl(self, output: DeviceBuffer) -> np.ndarray:
        assert self._mem is not None
        return self._mem.to_numpy(output)  # float32, whatever the engine's output type

    # ----------------------------------------------------------------- reporting
    def _describe_impl(self) -> dict[str, Any]:
        meta = self.plan.meta if self.plan is not None else {}
        info: dict[str, Any] = {
            "tensorrt": self._trt.__version__ if self._trt is not None else None,
            "gpu": self._gpu.get("name"),
            "compute_capability": self._gpu.get("compute_capability"),
            "driver": self._gpu.get("driver"),
            "batch_range": list(self._batch_range) if self._engine is not None else self.options.get("batch_range"),
            "plan": str(self.plan.path) if self.plan is not None else None,
            "plan_sha256": self._plan_sha256,
            "engine_cache_key": meta.get("engine_cache_key"),
            "engine_cache": meta.get("engine_cache"),
            "build_seconds": meta.get("build_seconds"),
            "strongly_typed": True,
            "buffers": self._mem.name if self._mem is not None else None,
            "io_dtypes": {n: _dtype_name(d) for n, d in self._dtypes.items()},
        }
        for k, v in self.options.items():
            if k != "progress" and k not in info:
                info[k] = v if v is None or isinstance(v, (bool, int, float, str, list)) else str(v)
        return info
