"""A stand-in ``tensorrt`` module and CUDA runtime, so the real code paths run without a GPU.

TensorRT cannot be installed here, and accelkit's TensorRT code has never run on one.
These fakes implement the parts of TensorRT's Python API that Polygraphy's loaders and
accelkit call (network creation with flags, the ONNX parser, builder configs with
memory pools, flags, profiles, timing caches and a progress monitor, serialization,
the runtime, engines and execution contexts) and record what was asked of them. An
"engine" is the ONNX model: executing it runs ONNX Runtime on the tensors found at the
bound addresses, so the runner's whole data path (upload, shapes, binding, execute,
download) is checked against a real reference.

:class:`FakeCudart` is cuda-python's runtime API over host memory (``ctypes``), so
device pointers are real addresses the fake engine can read and write.

What this cannot show: that real TensorRT accepts these calls (that is the stub
type-check's and the GPU tests' job) or how fast anything is.
"""

from __future__ import annotations

import ctypes
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VERSION = "10.13.0.35"
PLAN_MAGIC = b"FAKE-TRT-PLAN\n"


# --------------------------------------------------------------------------- enums
class EnumValue:
    def __init__(self, enum: str, name: str, value: int) -> None:
        self.enum, self.name, self.value = enum, name, value

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnumValue) and (other.enum, other.value) == (self.enum, self.value)

    def __hash__(self) -> int:
        return hash((self.enum, self.value))

    def __repr__(self) -> str:
        return f"{self.enum}.{self.name}"

    __str__ = __repr__


def make_enum(name: str, *members: str) -> type:
    vals = {m: EnumValue(name, m, i) for i, m in enumerate(members)}
    return type(name, (), {**vals, "__members__": vals})


NetworkDefinitionCreationFlag = make_enum(
    "NetworkDefinitionCreationFlag", "EXPLICIT_BATCH", "STRONGLY_TYPED"
)
BuilderFlag = make_enum("BuilderFlag", "FP16", "INT8", "TF32", "BF16", "FP8")
MemoryPoolType = make_enum("MemoryPoolType", "WORKSPACE", "TACTIC_SHARED_MEMORY")
ProfilingVerbosity = make_enum("ProfilingVerbosity", "LAYER_NAMES_ONLY", "NONE", "DETAILED")
DeviceType = make_enum("DeviceType", "GPU", "DLA")
LayerType = make_enum("LayerType", "SHAPE", "QUANTIZE", "DEQUANTIZE")
TensorIOMode = make_enum("TensorIOMode", "NONE", "INPUT", "OUTPUT")
DataType = make_enum(
    "DataType", "FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64", "INT4"
)
OnnxParserFlag = make_enum("OnnxParserFlag", "NATIVE_INSTANCENORM")

_FROM_ONNX = {
    1: "FLOAT",
    10: "HALF",
    7: "INT64",
    6: "INT32",
    3: "INT8",
    9: "BOOL",
    2: "UINT8",
    16: "BF16",
}
_TO_NUMPY = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}


# --------------------------------------------------------------------------- logging
class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)


class ILogger:
    Severity = Logger

    def __init__(self) -> None:
        pass


class IProgressMonitor:
    def __init__(self) -> None:
        pass


@dataclass
class Record:
    """What the fake TensorRT was asked to do (one per installed fake)."""

    network_flags: list[int] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    deserialized: int = 0
    executions: list[dict[str, tuple[int, ...]]] = field(default_factory=list)
    logger: Any = None


RECORD = Record()


def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
    RECORD.logger = logger
    return True


# --------------------------------------------------------------------------- network and parser
@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: EnumValue
    is_shape_tensor: bool = False


class Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.onnx_path: str | None = None
        self.name = "fake-network"

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, i: int) -> Tensor:
        return self.inputs[i]

    def get_output(self, i: int) -> Tensor:
        return self.outputs[i]

    def get_flag(self, flag: EnumValue) -> bool:
        return bool(self.flags & (1 << int(flag)))

    def __iter__(self) -> Any:
        return iter(())  # no layers: nothing has a precision set

    num_layers = 0


class OnnxParser:
    def __init__(self, network: Network, logger: Any) -> None:
        self.network = network
        self.flags = 0
        self.errors: list[str] = []

    def clear_flag(self, flag: EnumValue) -> None:
        self.flags &= ~(1 << int(flag))

    def parse_from_file(self, path: str) -> bool:
        import onnx

        try:
            model = onnx.load_model(path, load_external_data=False)
        except Exception as exc:
            self.errors.append(f"In node -1: could not read {path}: {exc}")
            return False

        def tensor(vi: Any) -> Tensor:
            dims = tuple(
                d.dim_value if d.HasField("dim_value") else -1
                for d in vi.type.tensor_type.shape.dim
            )
            return Tensor(
                vi.name, dims, getattr(DataType, _FROM_ONNX[vi.type.tensor_type.elem_type])
            )

        inits = {i.name for i in model.graph.initializer}
        self.network.inputs = [tensor(v) for v in model.graph.input if v.name not in inits]
        self.network.outputs = [tensor(v) for v in model.graph.output]
        self.network.onnx_path = str(Path(path).resolve())
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> str:
        return self.errors[i]


# --------------------------------------------------------------------------- builder config
class TimingCache:
    def __init__(self, entries: set[str]) -> None:
        self.entries = set(entries)

    def combine(self, other: TimingCache, ignore_mismatch: bool) -> bool:
        self.entries |= other.entries
        return True

    def serialize(self) -> bytes:
        return json.dumps(sorted(self.entries)).encode()


class OptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    def __bool__(self) -> bool:
        return bool(self.shapes)


class BuilderConfig:
    def __init__(self) -> None:
        self.flags = {BuilderFlag.TF32}  # TensorRT's default: TF32 allowed
        self.pools: dict[EnumValue, int] = {}
        self.profiles: list[OptimizationProfile] = []
        self.builder_optimization_level = 3
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self.progress_monitor: Any = None
        self.timing_cache: TimingCache | None = None
        self.DLA_core = -1
        self.default_device_type = DeviceType.GPU
        self.engine_capability = "EngineCapability.STANDARD"
        self.int8_calibrator = None

    def set_flag(self, flag: EnumValue) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: EnumValue) -> None:
        self.flags.discard(flag)

    def get_flag(self, flag: EnumValue) -> bool:
        return flag in self.flags

    def set_memory_pool_limit(self, pool: EnumValue, size: int) -> None:
        assert isinstance(pool, EnumValue) and pool.enum == "MemoryPoolType", pool
        self.pools[pool] = int(size)

    def get_memory_pool_limit(self, pool: EnumValue) -> int:
        return self.pools.get(pool, 1 << 40)

    def add_optimization_profile(self, profile: OptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def create_timing_cache(self, data: bytes) -> TimingCache:
        raw = bytes(data)
        return TimingCache(set(json.loads(raw.decode())) if raw else set())

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        assert isinstance(cache, TimingCache), cache
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> TimingCache | None:
        return self.timing_cache


class HostMemory(bytes):
    """``IHostMemory``: the plan through the buffer protocol (a bytes subclass: Python 3.11 has no ``__buffer__``)."""

    @property
    def nbytes(self) -> int:
        return len(self)


class Builder:
    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> Network:
        RECORD.network_flags.append(int(flags))
        return Network(int(flags))

    def create_builder_config(self) -> BuilderConfig:
        return BuilderConfig()

    def create_optimization_profile(self) -> OptimizationProfile:
        return OptimizationProfile()

    def build_serialized_network(self, network: Network, config: BuilderConfig) -> Any:
        if config.progress_monitor is not None:
            config.progress_monitor.phase_start("Building engine", None, 2)
            config.progress_monitor.step_complete("Building engine", 0)
            config.progress_monitor.step_complete("Building engine", 1)
            config.progress_monitor.phase_finish("Building engine")
        cache_in = sorted(config.timing_cache.entries) if config.timing_cache is not None else None
        if config.timing_cache is not None:
            config.timing_cache.entries.add(
                f"tactic-for-{Path(network.onnx_path or 'x').name}-{len(RECORD.builds)}"
            )
        prof = config.profiles[0]
        doc = {
            "onnx": network.onnx_path,
            "inputs": [[t.name, list(t.shape), t.dtype.name] for t in network.inputs],
            "outputs": [[t.name, list(t.shape), t.dtype.name] for t in network.outputs],
            "profile": {k: [list(s) for s in v] for k, v in prof.shapes.items()},
        }
        RECORD.builds.append(
            {
                "strongly_typed": network.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED),
                "tf32": config.get_flag(BuilderFlag.TF32),
                "precision_flags": sorted(str(f) for f in config.flags if f != BuilderFlag.TF32),
                "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
                "level": config.builder_optimization_level,
                "profiles": [p.shapes for p in config.profiles],
                "timing_cache_in": cache_in,
                "monitor": config.progress_monitor,
            }
        )
        return HostMemory(PLAN_MAGIC + json.dumps(doc).encode())


# --------------------------------------------------------------------------- runtime, engine, context
class Runtime:
    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.engine_host_code_allowed = False

    def deserialize_cuda_engine(self, data: Any) -> Engine | None:
        raw = bytes(memoryview(data))
        if not raw.startswith(PLAN_MAGIC):
            return None
        RECORD.deserialized += 1
        return Engine(json.loads(raw[len(PLAN_MAGIC) :]))


class Engine:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.io = [
            (n, tuple(s), getattr(DataType, d), TensorIOMode.INPUT) for n, s, d in doc["inputs"]
        ]
        self.io += [
            (n, tuple(s), getattr(DataType, d), TensorIOMode.OUTPUT) for n, s, d in doc["outputs"]
        ]

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def _find(self, name: str) -> tuple[Any, ...]:
        return next(t for t in self.io if t[0] == name)

    def get_tensor_name(self, i: int) -> str:
        return str(self.io[i][0])

    def get_tensor_mode(self, name: str) -> EnumValue:
        return self._find(name)[3]  # type: ignore[no-any-return]

    def get_tensor_dtype(self, name: str) -> EnumValue:
        return self._find(name)[2]  # type: ignore[no-any-return]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._find(name)[1]  # type: ignore[no-any-return]

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.doc["profile"][name]]

    def create_execution_context(self) -> Context:
        return Context(self)


class Context:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: Any) -> bool:
        lo, _, hi = self.engine.doc["profile"][name]
        shape = tuple(shape)
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n, shape, _, mode = self.engine._find(name)
        if mode == TensorIOMode.INPUT:
            return self.shapes.get(name, shape)
        batch = next(iter(self.shapes.values()))[0] if self.shapes else -1
        return (batch, *shape[1:])

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream: int) -> bool:
        """Run the ONNX model on the bound host addresses (ONNX Runtime), write the outputs back."""
        import onnxruntime as ort

        feeds = {}
        for name, _, dt, mode in self.engine.io:
            if mode == TensorIOMode.INPUT:
                np_t = np.dtype(_TO_NUMPY[dt.name])
                shape = self.shapes[name]
                n = int(np.prod(shape)) * np_t.itemsize
                feeds[name] = (
                    np.frombuffer(ctypes.string_at(self.addresses[name], n), dtype=np_t)
                    .reshape(shape)
                    .copy()
                )
        sess = ort.InferenceSession(self.engine.doc["onnx"], providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
        for (name, _, dt, _mode), out in zip(
            [t for t in self.engine.io if t[3] == TensorIOMode.OUTPUT], outs
        ):
            arr = np.ascontiguousarray(out.astype(_TO_NUMPY[dt.name]))
            ctypes.memmove(self.addresses[name], arr.ctypes.data, arr.nbytes)
        RECORD.executions.append({k: tuple(v) for k, v in self.shapes.items()})
        return True


# --------------------------------------------------------------------------- CUDA runtime over host memory
class FakeCudart:
    """cuda-python's runtime API (``(err, value)`` tuples) over ``ctypes`` host buffers."""

    def __init__(self, count: int = 1) -> None:
        self.cudaError_t = types.SimpleNamespace(cudaSuccess=0, cudaErrorMemoryAllocation=2)
        self.cudaMemcpyKind = types.SimpleNamespace(
            cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2
        )
        self.count = count
        self.current = 0
        self.buffers: dict[int, Any] = {}
        self.freed: list[int] = []
        self.streams = 0
        self.fail_malloc = False

    def cudaGetDeviceCount(self) -> tuple[int, int]:
        return 0, self.count

    def cudaGetDeviceProperties(self, idx: int) -> tuple[int, Any]:
        return 0, types.SimpleNamespace(
            name=b"Fake GPU 80GB\x00", major=9, minor=0, totalGlobalMem=80 << 30
        )

    def cudaGetDevice(self) -> tuple[int, int]:
        return 0, self.current

    def cudaSetDevice(self, idx: int) -> tuple[int]:
        if idx >= self.count:
            return (101,)
        self.current = idx
        return (0,)

    def cudaStreamCreate(self) -> tuple[int, int]:
        self.streams += 1
        return 0, 1000 + self.streams

    def cudaStreamSynchronize(self, stream: int) -> tuple[int]:
        return (0,)

    def cudaStreamDestroy(self, stream: int) -> tuple[int]:
        self.streams -= 1
        return (0,)

    def cudaMalloc(self, nbytes: int) -> tuple[int, int]:
        if self.fail_malloc:
            return 2, 0
        buf = ctypes.create_string_buffer(int(nbytes))
        ptr = ctypes.addressof(buf)
        self.buffers[ptr] = buf
        return 0, ptr

    def cudaFree(self, ptr: int) -> tuple[int]:
        self.buffers.pop(int(ptr))
        self.freed.append(int(ptr))
        return (0,)

    def cudaMemcpy(self, dst: int, src: int, nbytes: int, kind: int) -> tuple[int]:
        ctypes.memmove(int(dst), int(src), int(nbytes))
        return (0,)

    def cudaMemcpyAsync(
        self, dst: int, src: int, nbytes: int, kind: int, stream: int
    ) -> tuple[int]:
        return self.cudaMemcpy(dst, src, nbytes, kind)


# --------------------------------------------------------------------------- installing it
def module() -> types.ModuleType:
    """A fresh fake ``tensorrt`` module."""
    global RECORD
    RECORD = Record()
    mod = types.ModuleType("tensorrt")
    mod.__file__ = __file__
    mod.__version__ = VERSION  # type: ignore[attr-defined]
    this = sys.modules[__name__]
    for name in (
        "Builder",
        "Runtime",
        "OnnxParser",
        "ILogger",
        "Logger",
        "IProgressMonitor",
        "init_libnvinfer_plugins",
        "NetworkDefinitionCreationFlag",
        "BuilderFlag",
        "MemoryPoolType",
        "ProfilingVerbosity",
        "DeviceType",
        "LayerType",
        "TensorIOMode",
        "DataType",
        "OnnxParserFlag",
    ):
        setattr(mod, name, getattr(this, name))
    mod.RECORD = RECORD  # type: ignore[attr-defined]
    return mod


def install(monkeypatch: Any) -> types.ModuleType:
    """Make ``import tensorrt`` (accelkit's) and Polygraphy's lazy ``trt`` the fake, for one test."""
    import polygraphy.backend.trt  # noqa: F401 - load the modules whose lazy `trt` is replaced
    import polygraphy.backend.trt.util as trt_util

    fake = module()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    for name, mod in list(sys.modules.items()):
        if (
            name.startswith("polygraphy")
            and type(getattr(mod, "trt", None)).__name__ == "LazyModule"
        ):
            monkeypatch.setattr(mod, "trt", fake)
    monkeypatch.setattr(
        trt_util, "TRT_LOGGER", None
    )  # Polygraphy's logger is made from trt.ILogger once
    return fake
