"""``EngineFromOnnx``: build a TensorRT engine (a serialized "plan") from typed ONNX.

The build goes through Polygraphy's loaders (NVIDIA's own TensorRT tooling), chained
lazily as Polygraphy does it::

    NetworkFromOnnxPath(onnx, strongly_typed=True)       parse (external weights found beside the file)
      -> PostprocessNetwork(check inputs against the spec)
    CreateConfig(profiles=[Profile min/opt/max over the batch range], memory_pool_limits={WORKSPACE: ...},
                 builder_optimization_level, tf32, load_timing_cache, progress_monitor)
    EngineBytesFromNetwork(network, config)               -> the serialized plan
    EngineFromBytes(plan)                                 -> deserialized once, to record I/O tensors

The network is **strongly typed**: every tensor's precision comes from the ONNX graph
(FP32, FP16 tensors, INT8 through explicit QuantizeLinear/DequantizeLinear nodes).
TensorRT 11 removed the FP16/INT8 builder flags and the INT8 calibrator and always
builds strongly typed; TensorRT 10 needs ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``,
which Polygraphy sets from ``strongly_typed=True`` (its ``flags=`` argument is for
*ONNX parser* flags, not network flags). No precision flag is ever set.

What accelkit keeps for itself:

* the **engine cache** (:class:`accelkit.cache.Cache` ``"engines"``), keyed by
  :func:`engine_cache_key` (ONNX sha256 including external data, TensorRT version, GPU
  name and compute capability, profile, build options); entries are verified on read;
* the **timing cache** (one file per GPU model and TensorRT version under
  ``<cache root>/trt-timing``): read before the build, and after it merged with what is
  on disk *now* (``ITimingCache.combine``) under :func:`accelkit.cache.file_lock`, so two
  concurrent builds never lose each other's entries;
* progress through TensorRT's ``IProgressMonitor``, and the sidecar of the ``.plan``
  recording TensorRT version, GPU, profile and cache key.

Nothing here imports ``tensorrt``, ``polygraphy`` or a CUDA library at module import time;
the library never prints (Polygraphy's and TensorRT's log go to ``accelkit.trt.tensorrt``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelkit.artifact import Artifact
from accelkit.cache import Cache, cache_dir, cache_key, file_lock
from accelkit.device import gpu_identity, parse_device_index, use_device
from accelkit.errors import AccelkitError, ExportError, InputError, SpecError
from accelkit.files import sha256_file, write_bytes_atomic
from accelkit.options import DEFAULT_BATCH_RANGE
from accelkit.passes.base import Pass, PassResult
from accelkit.spec import GeneratorSpec, as_batch_range
from accelkit.trt.platform import (
    clear_trt_errors,
    dims,
    last_trt_errors,
    load_polygraphy,
    load_tensorrt,
    polygraphy_logging,
    trt_logger,
)

if TYPE_CHECKING:  # only for type-checking against tensorrt-stubs; never imported at runtime here
    import tensorrt

log = logging.getLogger(__name__)

#: ``progress(stage, fraction)``: fraction in [0, 1], or None when unknown.
ProgressCallback = Callable[[str, "float | None"], None]

#: Default builder workspace limit, bytes (1 GiB).
DEFAULT_WORKSPACE: int = 1 << 30
#: Cache kinds (sub-folders of the cache root, :func:`accelkit.cache.cache_dir`).
ENGINE_CACHE = "engines"
TIMING_CACHE = "trt-timing"
#: Bump when the meaning of the engine cache key changes.
CACHE_KEY_SCHEMA = 2


# --------------------------------------------------------------------------- shapes
def profile_shapes(
    spec: GeneratorSpec, batch_range: Sequence[int]
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Optimization-profile shapes for every generator input.

    Args:
        spec: The generator's I/O spec (per-sample shapes, without batch).
        batch_range: ``(min, opt, max)`` batch sizes.

    Returns:
        Input name -> ``(min_shape, opt_shape, max_shape)``, each ``(batch, *per_sample)``;
        with ``spec.hw_range`` (``--dynamic-hw``) the height and width of every spatial
        input span that range too (``(batch, C, min, min)`` .. ``(batch, C, max, max)``).
    """
    lo, opt, hi = batch_range
    shapes: dict[str, tuple[tuple[int, ...], ...]] = {
        inp.name: ((lo, *inp.shape), (opt, *inp.shape), (hi, *inp.shape)) for inp in spec.inputs
    }
    if spec.hw_range is not None:
        hw_lo, hw_opt, hw_hi = spec.hw_range
        for inp in spec.spatial_inputs:
            c = inp.shape[0]
            shapes[inp.name] = (
                (lo, c, hw_lo, hw_lo),
                (opt, c, hw_opt, hw_opt),
                (hi, c, hw_hi, hw_hi),
            )
    return shapes


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
        if spec.hw_range is not None and inp in spec.spatial_inputs and -1 not in shape[2:]:
            raise SpecError(
                f"ONNX input {inp.name!r} has a fixed height/width {tuple(shape[2:])} but the spec asks for sizes {spec.hw_range[0]}..{spec.hw_range[2]}; "
                "re-export it with accelkit export --dynamic-hw"
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
        onnx_sha256: :func:`onnx_fingerprint` of the model (file plus external data).
        trt_version: ``tensorrt.__version__``.
        gpu_name: GPU product name, e.g. ``NVIDIA H100 80GB HBM3``.
        compute_capability: ``"major.minor"``, e.g. ``"9.0"``.
        batch_range: ``(min, opt, max)``.
        input_shapes: Input name -> per-sample shape (without batch).
        options: Other build options that change the plan (JSON values); key order does not matter.

    Returns:
        64 hex characters (:func:`accelkit.cache.cache_key` of a canonical document).
    """
    return cache_key(
        {
            "kind": "tensorrt-engine",
            "schema": CACHE_KEY_SCHEMA,
            "onnx_sha256": str(onnx_sha256),
            "tensorrt": str(trt_version),
            "gpu": str(gpu_name),
            "compute_capability": str(compute_capability),
            "batch_range": [int(b) for b in batch_range],
            "inputs": {str(k): [int(d) for d in v] for k, v in input_shapes.items()},
            "options": dict(options or {}),
        }
    )


def onnx_fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 of an ONNX file together with the external-data files it references.

    Hashing the ``.onnx`` file alone would miss weights stored beside it
    (``model.onnx.data``), and a changed weight file would then hit a stale engine.

    Returns:
        The file's own sha256 when it has no external data, else a sha256 over the
        file's hash and each external file's name and hash.
    """
    path = Path(path)
    own = sha256_file(path)
    locations = _external_data_locations(path)
    if not locations:
        return own
    external = {
        loc: (sha256_file(path.parent / loc) if (path.parent / loc).is_file() else "missing")
        for loc in locations
    }
    return cache_key({"onnx": own, "external_data": external})


def _external_data_locations(path: Path) -> list[str]:
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a core dependency
        return []
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is reported by the parser
        log.debug("could not read %s for external data (%s)", path, exc)
        return []
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [attr.t for attr in node.attribute if attr.HasField("t")]
    locs = {
        e.value
        for t in tensors
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    return sorted(locs)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def timing_cache_path(
    trt_version: str, gpu: Mapping[str, Any], folder: str | os.PathLike[str] | None = None
) -> Path:
    """The shared timing cache file of one GPU model and TensorRT version.

    Args:
        trt_version: ``tensorrt.__version__``.
        gpu: :func:`accelkit.device.gpu_identity` (``name``, ``compute_capability``).
        folder: A build's own cache folder (``cache_dir=``), or None for the cache root's.

    Returns:
        ``<cache root>/trt-timing/<gpu>-sm<cc>-trt<version>.cache``, or
        ``<folder>/timing-<gpu>-sm<cc>-trt<version>.cache``.
    """
    name = f"{_slug(str(gpu['name']))}-sm{_slug(str(gpu['compute_capability']))}-trt{_slug(trt_version)}.cache"
    if folder is not None:
        return Path(folder).expanduser() / f"timing-{name}"
    return cache_dir(TIMING_CACHE) / name


# --------------------------------------------------------------------------- timing cache
def _lock_for(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def read_timing_cache(path: Path) -> bytes | None:
    """The timing cache file's bytes (None when missing, empty or unreadable: start a new one)."""
    try:
        with file_lock(_lock_for(path)):
            data = path.read_bytes() if path.is_file() else b""
    except (OSError, TimeoutError) as exc:
        log.warning("cannot read timing cache %s (%s); starting a new one", path, exc)
        return None
    return data or None


def merge_timing_cache(path: Path, config: tensorrt.IBuilderConfig) -> bool:
    """Merge this build's timing cache into the file at ``path`` and write it back.

    Under :func:`accelkit.cache.file_lock`: read the file as it is *now* (another build
    may have added entries since this one started), ``combine`` it into the config's
    cache, serialize, write atomically. A cache that cannot be read, merged or written
    costs a warning, never the build.

    Args:
        path: The timing cache file.
        config: The builder config the engine was built with (holds the cache).

    Returns:
        True when the file was written.
    """
    ours = config.get_timing_cache()
    if ours is None:
        log.warning("the builder has no timing cache to save")
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(_lock_for(path)):
            if path.is_file():
                data = path.read_bytes()
                if data:
                    try:
                        theirs = config.create_timing_cache(data)
                        merged = theirs is not None and ours.combine(theirs, False)
                    except Exception:  # noqa: BLE001 - a damaged file: TensorRT's error type is not documented
                        merged = False
                    if not merged:
                        log.warning(
                            "timing cache %s is damaged or from another TensorRT or GPU; it is replaced by this build's",
                            path,
                        )
            blob = memoryview(ours.serialize()).tobytes()
            write_bytes_atomic(path, blob, force=True)
    except (OSError, TimeoutError, AccelkitError) as exc:
        log.warning("could not save timing cache %s (%s)", path, exc)
        return False
    return True


# --------------------------------------------------------------------------- progress
class ProgressTracker:
    """Turns TensorRT's nested phase/step events into ``progress(stage, fraction)`` calls.

    TensorRT calls the monitor from its own threads, so this is lock-protected, and a
    callback that raises is logged and switched off (an exception must not cross into
    TensorRT's C++ callback).
    """

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._phases: dict[str, tuple[str | None, int]] = {}
        self._lock = threading.Lock()
        self._failed = False

    def emit(self, stage: str, fraction: float | None) -> None:
        """Report ``stage`` at ``fraction`` (clamped to [0, 1]; None: unknown)."""
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
        """A TensorRT phase began (``IProgressMonitor.phase_start``)."""
        with self._lock:
            self._phases[phase] = (parent or None, max(1, int(num_steps)))
            label = self._label(phase)
        self.emit(label, 0.0)

    def step_complete(self, phase: str, step: int) -> bool:
        """A step finished; always True (never cancels the build)."""
        with self._lock:
            steps = self._phases.get(phase, (None, 1))[1]
            label = self._label(phase)
        self.emit(label, (int(step) + 1) / steps)
        return True

    def phase_finish(self, phase: str) -> None:
        """A TensorRT phase ended."""
        with self._lock:
            label = self._label(phase)
            self._phases.pop(phase, None)
        self.emit(label, 1.0)


def make_progress_monitor(trt: Any, tracker: ProgressTracker) -> tensorrt.IProgressMonitor | None:
    """A ``trt.IProgressMonitor`` (TensorRT >= 10) forwarding to ``tracker``; None on older TensorRT."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Monitor(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()  # pybind11 trampoline: the base __init__ must run

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            tracker.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return tracker.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            tracker.phase_finish(phase_name)

    return _Monitor()


# --------------------------------------------------------------------------- the loader chain
class TimingCacheBytes(io.BytesIO):
    """A timing cache already read (under the lock) and handed to ``CreateConfig(load_timing_cache=...)``.

    Polygraphy accepts a path or a file-like object there; for a path it takes its own
    lock and reads the file itself, for a file-like object it reads the bytes and checks
    the object's ``mode``, which ``io.BytesIO`` lacks.
    """

    mode = "rb"


@dataclass
class EngineLoaders:
    """The Polygraphy loader chain of one build (nothing runs until ``engine_bytes()``).

    Attributes:
        network: ``NetworkFromOnnxPath`` (strongly typed when TensorRT has the flag).
        checked_network: ``PostprocessNetwork`` running :attr:`network_check` on the parsed network.
        network_check: ``check(network=...)``: inputs against the spec; reports "building engine".
        config: ``CreateConfig`` (profile, workspace, optimization level, TF32, timing cache, monitor).
        engine_bytes: ``EngineBytesFromNetwork(checked_network, config)``; calling it builds.
        built_configs: The ``IBuilderConfig`` each build used (for the timing-cache merge).
    """

    network: Any
    checked_network: Any
    network_check: Callable[..., Any]
    config: Any
    engine_bytes: Any
    built_configs: list[Any]


def engine_loaders(
    trt: Any,
    onnx_path: str | os.PathLike[str],
    spec: GeneratorSpec,
    batch_range: Sequence[int],
    *,
    workspace: int = DEFAULT_WORKSPACE,
    builder_optimization_level: int | None = None,
    tf32: bool | None = None,
    timing_cache_data: bytes | None = None,
    progress_monitor: Any = None,
    tracker: ProgressTracker | None = None,
) -> EngineLoaders:
    """Construct the Polygraphy loaders for one build (cheap: nothing is parsed or built).

    Args:
        trt: The ``tensorrt`` module (its ``MemoryPoolType``, ``NetworkDefinitionCreationFlag``
            and ``BuilderFlag`` members decide the arguments).
        onnx_path: The ONNX file (parsed from the path so external weights are found).
        spec: The generator's I/O spec (per-sample input shapes).
        batch_range: ``(min, opt, max)``: one optimization profile over it, every input.
        workspace: Builder workspace memory pool limit, bytes.
        builder_optimization_level: 0..5, or None for TensorRT's default.
        tf32: False forbids TF32; None or True keeps TensorRT's default (allowed).
            (Polygraphy's own default is TF32 *off*, so None is passed as True.)
        timing_cache_data: A serialized timing cache to start from (None: empty).
        progress_monitor: A ``trt.IProgressMonitor`` (None: none).
        tracker: Receives the "building engine" stage once the network is parsed and checked.

    Returns:
        The loaders; ``loaders.engine_bytes()`` builds and returns the serialized plan.
    """
    load_polygraphy("building a TensorRT engine")
    with polygraphy_logging():  # CreateConfig logs (to stdout by default) while it is constructed
        return _engine_loaders(
            trt,
            onnx_path,
            spec,
            batch_range,
            workspace,
            builder_optimization_level,
            tf32,
            timing_cache_data,
            progress_monitor,
            tracker,
        )


def _engine_loaders(
    trt: Any,
    onnx_path: str | os.PathLike[str],
    spec: GeneratorSpec,
    batch_range: Sequence[int],
    workspace: int,
    builder_optimization_level: int | None,
    tf32: bool | None,
    timing_cache_data: bytes | None,
    progress_monitor: Any,
    tracker: ProgressTracker | None,
) -> EngineLoaders:
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineBytesFromNetwork,
        NetworkFromOnnxPath,
        PostprocessNetwork,
        Profile,
    )

    batch = as_batch_range(tuple(batch_range))
    strongly_typed = hasattr(
        trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"
    )  # always on (flag gone) in TensorRT 11+
    has_tf32_flag = hasattr(trt.BuilderFlag, "TF32")
    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=strongly_typed)

    def network_check(network: Any) -> None:
        inputs = {
            network.get_input(i).name: dims(network.get_input(i).shape)
            for i in range(network.num_inputs)
        }
        check_network_inputs(inputs, spec, batch)
        if tracker is not None:
            tracker.emit("building engine", None)

    checked = PostprocessNetwork(
        network, network_check, name="accelkit: check inputs against the spec"
    )
    profile = Profile()
    for name, (lo, opt, hi) in profile_shapes(spec, batch).items():
        profile.add(name, min=lo, opt=opt, max=hi)
    config = CreateConfig(
        profiles=[profile],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace)},
        builder_optimization_level=builder_optimization_level,
        tf32=(tf32 is not False) and has_tf32_flag,
        load_timing_cache=TimingCacheBytes(timing_cache_data) if timing_cache_data else None,
        progress_monitor=progress_monitor,
    )
    built: list[Any] = []

    def keep_config(builder: Any, network: Any) -> Any:
        cfg = config(builder, network)
        built.append(cfg)
        return cfg

    engine_bytes = EngineBytesFromNetwork(
        checked, config=keep_config
    )  # timing cache saved by merge_timing_cache
    return EngineLoaders(network, checked, network_check, config, engine_bytes, built)


def plan_io(plan: bytes, runtime: tensorrt.Runtime | None = None) -> dict[str, dict[str, Any]]:
    """Names, modes, dtypes and shapes of a plan's I/O tensors (deserializes it with ``EngineFromBytes``).

    Deserializing right after the build also proves the plan loads on this GPU.

    Raises:
        ExportError: The plan does not deserialize.
    """
    import tensorrt as trt
    from polygraphy.backend.trt import EngineFromBytes
    from polygraphy.exception import PolygraphyException

    rt = runtime if runtime is not None else trt.Runtime(trt_logger())
    try:
        engine: trt.ICudaEngine = EngineFromBytes(plan, runtime=rt)()
    except PolygraphyException:
        raise ExportError(
            f"TensorRT built a plan it cannot deserialize ({last_trt_errors() or 'no message'})"
        ) from None
    out: dict[str, dict[str, Any]] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        out[name] = {
            "mode": "input" if mode == trt.TensorIOMode.INPUT else "output",
            "dtype": str(engine.get_tensor_dtype(name)).split(".")[-1],
            "shape": list(dims(engine.get_tensor_shape(name))),
        }
    del engine  # before the runtime that made it
    return out


# --------------------------------------------------------------------------- engine cache entries
def store_engine(cache: Cache, key: str, plan: bytes, info: Mapping[str, Any]) -> Path | None:
    """Put a built plan (and its build facts) into the engine cache; the stored plan's path or None."""
    stored = cache.store_bytes(key, ".plan", plan, doc={"what": "TensorRT plan"})
    if stored is not None:
        cache.store_bytes(
            key, ".info.json", json.dumps(dict(info), sort_keys=True, default=str).encode()
        )
    return stored


def lookup_engine(cache: Cache, key: str) -> tuple[Path, dict[str, Any]] | None:
    """A verified cached plan and its build facts (``{}`` when those are missing), or None."""
    plan = cache.lookup(key, ".plan")
    if plan is None:
        return None
    info: dict[str, Any] = {}
    info_path = cache.lookup(key, ".info.json")
    if info_path is not None:
        try:
            loaded = json.loads(info_path.read_text(encoding="utf-8"))
            info = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            info = {}
    return plan, info


# --------------------------------------------------------------------------- the pass
class EngineFromOnnx(Pass):
    """Build (or fetch from the engine cache) a TensorRT plan for an ONNX artifact.

    Args:
        batch_range: ``"MIN:OPT:MAX"``, ``"N"`` or a ``(min, opt, max)`` tuple; the
            optimization profile covers these batch sizes for every input.
        workspace: Builder workspace memory pool limit, bytes.
        out: Where to write the plan (``.plan``); its sidecar ``<plan>.accelkit.json``
            goes beside it. Default: ``<onnx stem>.plan`` next to the ONNX file.
        force: Overwrite ``out`` when it exists.
        rebuild: Ignore a cached engine and build again (the cache entry is replaced).
        cache: Use the engine cache (and the shared timing cache) at all.
        cache_dir: Folder for the engine cache and its timing cache (default: under the
            cache root ``$ACCELKIT_CACHE_DIR`` or ``~/.cache/accelkit``: engines in
            ``engines/``, timing caches in ``trt-timing/``).
        timing_cache: Timing cache file (default: one per GPU model and TensorRT version,
            see :func:`timing_cache_path`; none with ``cache=False``).
        builder_optimization_level: TensorRT builder optimization level 0..5 (None:
            TensorRT's default, 3). Higher builds longer, may run faster.
        tf32: False forbids TF32 math for FP32 convolutions/matmuls (exact FP32,
            slower on Ampere and newer). None keeps TensorRT's default (TF32 allowed).
            Recorded in the sidecar either way.
        progress: ``progress(stage, fraction)``; fraction in [0, 1] or None. Called
            from TensorRT's builder threads while building.
        device: ``cuda`` or ``cuda:N``: the GPU to build for (a plan is GPU-specific).

    Raises:
        InputError: A bad option (checked here, before any work).
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
        self.tracker = ProgressTracker(progress)
        super().__init__(
            Path(out) if out is not None else None,
            force=force,
            progress=lambda msg: self.tracker.emit(msg, None),
        )
        self.batch_range = as_batch_range(batch_range)
        if not isinstance(workspace, int) or isinstance(workspace, bool) or workspace <= 0:
            raise InputError(
                f"workspace {workspace!r} must be a positive number of bytes, e.g. {DEFAULT_WORKSPACE} (1 GiB)"
            )
        self.workspace = workspace
        level = builder_optimization_level
        if level is not None and (
            isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5
        ):
            raise InputError(
                f"builder optimization level {level!r} is out of range; use an integer 0..5 (TensorRT's default is 3)"
            )
        self.builder_optimization_level = level
        self.tf32 = tf32
        self.rebuild = rebuild
        self.cache = cache
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.timing_cache = Path(timing_cache).expanduser() if timing_cache is not None else None
        self.device = device
        self.device_index = parse_device_index(device)

    # ------------------------------------------------------------------ Pass interface
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

    def key_options(self) -> dict[str, Any]:
        """The options that change the plan (part of the engine cache key)."""
        return {
            "workspace": self.workspace,
            "builder_optimization_level": self.builder_optimization_level,
            "tf32": self.tf32,
            "strongly_typed": True,
        }

    @property
    def engine_cache(self) -> Cache:
        """The engine cache this pass reads and fills."""
        return Cache(ENGINE_CACHE, folder=self.cache_dir)

    def check(self, artifact: Artifact) -> None:
        """Refuse anything but an ONNX artifact whose file exists."""
        if artifact.format != "onnx":
            raise InputError(
                f"EngineFromOnnx needs an ONNX artifact, got a {artifact.format!r} artifact; "
                "export it first (accelkit export) and build the engine from the .onnx file"
            )
        if artifact.path is None or not Path(artifact.path).is_file():
            raise InputError(
                f"ONNX file {artifact.path} does not exist; export the model first or check the path"
            )

    def default_destination(self, artifact: Artifact) -> Path:
        """``<onnx stem>.plan`` next to the ONNX file."""
        assert artifact.path is not None  # check() ran first
        return Path(artifact.path).with_suffix(".plan")

    def _run_impl(self, artifact: Artifact, dest: Path) -> PassResult:
        """Look the plan up in the engine cache, else build it; the result is written to ``dest``.

        Raises:
            MissingDependencyError: tensorrt or polygraphy is not installed.
            BackendUnavailableError: No CUDA GPU.
            SpecError: The ONNX inputs do not match the spec.
            ExportError: TensorRT could not parse the ONNX or build the engine.
        """
        assert artifact.path is not None
        onnx_path = Path(artifact.path)
        trt = load_tensorrt("building a TensorRT engine")
        load_polygraphy("building a TensorRT engine")
        trt_version = str(trt.__version__)
        with use_device(self.device_index):
            gpu = gpu_identity(self.device_index)
            fingerprint = onnx_fingerprint(onnx_path)
            per_sample = {inp.name: list(inp.shape) for inp in artifact.spec.inputs}
            key = engine_cache_key(
                fingerprint,
                trt_version,
                gpu["name"],
                gpu["compute_capability"],
                self.batch_range,
                per_sample,
                self.key_options(),
            )
            cache = self.engine_cache
            found = lookup_engine(cache, key) if self.cache and not self.rebuild else None
            cached_path: Path | None
            if found is not None:
                cached_path, info = found
                plan = cached_path.read_bytes()
                status = "hit"
                self.tracker.emit("engine cache hit", 1.0)
                log.info("TensorRT engine cache hit: %s", cached_path)
            else:
                timing = self.timing_cache or (
                    timing_cache_path(trt_version, gpu, self.cache_dir) if self.cache else None
                )
                plan, info = self._build(trt, onnx_path, artifact.spec, timing)
                status = "miss" if self.cache else "off"
                cached_path = store_engine(cache, key, plan, info) if self.cache else None
        self.tracker.emit("engine written", 1.0)
        meta = {
            **info,
            "tensorrt": {"version": trt_version, "strongly_typed": True},
            "tensorrt_version": trt_version,
            "gpu": {k: gpu.get(k) for k in ("name", "compute_capability", "driver")},
            "batch_range": list(self.batch_range),
            "engine_cache": status,
            "engine_cache_key": key,
            "engine_cache_path": str(cached_path) if cached_path is not None else None,
            "onnx_sha256": fingerprint,
            "onnx_path": str(onnx_path.resolve()),
        }

        def write(tmp: Path) -> None:
            tmp.write_bytes(plan)

        return PassResult(
            write=write,
            format="trt",
            precision=artifact.precision,
            meta=meta,
            record={"engine_cache": status},
        )

    # ------------------------------------------------------------------ the build
    def _build(
        self, trt: Any, onnx_path: Path, spec: GeneratorSpec, timing: Path | None
    ) -> tuple[bytes, dict[str, Any]]:
        """Parse, check, configure and build through Polygraphy's loaders; merge the timing cache.

        Returns:
            ``(plan bytes, build facts for the sidecar)``.
        """
        from polygraphy.exception import PolygraphyException

        t0 = time.perf_counter()
        self.tracker.emit("parsing ONNX", None)
        monitor = make_progress_monitor(trt, self.tracker)  # must outlive the build
        with polygraphy_logging():
            timing_data = read_timing_cache(timing) if timing is not None else None
            log.info(
                "building TensorRT %s engine from %s (strongly typed, batch %d:%d:%d, workspace %d MiB)",
                trt.__version__,
                onnx_path,
                *self.batch_range,
                self.workspace >> 20,
            )
            while True:
                clear_trt_errors()
                loaders = engine_loaders(
                    trt,
                    onnx_path,
                    spec,
                    self.batch_range,
                    workspace=self.workspace,
                    builder_optimization_level=self.builder_optimization_level,
                    tf32=self.tf32,
                    timing_cache_data=timing_data,
                    progress_monitor=monitor,
                    tracker=self.tracker,
                )
                try:
                    serialized = loaders.engine_bytes()
                    break
                except PolygraphyException as exc:
                    raise ExportError(
                        f"TensorRT {trt.__version__} could not build an engine from {onnx_path.name}: "
                        f"{last_trt_errors() or ' '.join(str(exc).split())}; check that every op is supported by TensorRT's "
                        "ONNX parser (re-export with another --opset, or run it with the ort backend), or try a larger "
                        "--workspace or a smaller --batch-range"
                    ) from None
                except AccelkitError:
                    raise
                except Exception as exc:
                    if timing_data is None:
                        raise
                    # a damaged timing cache file (TensorRT may return no cache object for it): retry once without it
                    log.warning(
                        "timing cache %s is unusable (%s: %s); building without it",
                        timing,
                        type(exc).__name__,
                        exc,
                    )
                    timing_data = None
            build_s = time.perf_counter() - t0
            plan = memoryview(serialized).tobytes()
            if timing is not None and loaders.built_configs:
                merge_timing_cache(timing, loaders.built_configs[-1])
            del loaders, serialized
            io_tensors = plan_io(plan)
        del monitor
        log.info("TensorRT engine built from %s in %.1f s", onnx_path, build_s)
        info = {
            "build_seconds": round(build_s, 3),
            "input_profiles": {
                n: [list(s) for s in v] for n, v in profile_shapes(spec, self.batch_range).items()
            },
            "workspace_bytes": self.workspace,
            "builder_optimization_level": self.builder_optimization_level,
            "tf32": self.tf32,
            "timing_cache": str(timing) if timing is not None else None,
            "io_tensors": io_tensors,
            "polygraphy": _polygraphy_version(),
        }
        return plan, info


def _polygraphy_version() -> str | None:
    try:
        import polygraphy

        return str(polygraphy.__version__)
    except ImportError:  # pragma: no cover - checked before the build
        return None


__all__ = [
    "CACHE_KEY_SCHEMA",
    "DEFAULT_BATCH_RANGE",
    "DEFAULT_WORKSPACE",
    "ENGINE_CACHE",
    "TIMING_CACHE",
    "EngineFromOnnx",
    "EngineLoaders",
    "TimingCacheBytes",
    "ProgressCallback",
    "ProgressTracker",
    "check_network_inputs",
    "engine_cache_key",
    "engine_loaders",
    "lookup_engine",
    "make_progress_monitor",
    "merge_timing_cache",
    "onnx_fingerprint",
    "plan_io",
    "profile_shapes",
    "read_timing_cache",
    "store_engine",
    "timing_cache_path",
]
