"""The ``trt`` backend: runs a built TensorRT engine (a ``.plan``) on an NVIDIA GPU.

Building is the job of :class:`~accelkit.trt.build.EngineFromOnnx`; the runner takes its
result, a ``trt`` artifact. Given an ``onnx`` artifact it calls that pass itself (into a
temporary folder, through the engine cache) as a convenience.

Before a plan is deserialized (which can run plugin code) it must be trusted and
compatible:

* **trusted**: its sidecar exists and records the sha256 the file has
  (:func:`~accelkit.trt.platform.check_plan_trusted`); otherwise it is refused with a
  one-line :class:`~accelkit.errors.LoadError` unless ``trust_engine=True``;
* **compatible**: built with this TensorRT version for this GPU model
  (:func:`~accelkit.trt.platform.check_plan_compatible`); otherwise refused, or with
  ``rebuild=True`` rebuilt from the ONNX file its sidecar names, if that is unchanged.

Deserialization uses Polygraphy's ``EngineFromBytes``; execution is accelkit's own, so
the timing contract holds (Polygraphy's ``TrtRunner`` copies outputs to the host on
every call): inputs are copied to the device once in ``prepare``, ``run`` enqueues
``execute_async_v3`` on the runner's stream and leaves the output on the device.
Device memory comes from :mod:`accelkit.trt.memory`. Nothing heavy is imported at
module import: tensorrt, polygraphy, torch's CUDA and cuda-python load in :meth:`activate`.

Options (recorded by :meth:`TrtRunner.describe`):

* ``trust_engine``: load a plan whose sidecar is missing or does not match (default False).
* ``rebuild``: rebuild an incompatible plan from its recorded, unchanged ONNX file.
* ``batch_range``, ``workspace``, ``builder_optimization_level``, ``tf32``, ``cache``,
  ``cache_dir`` (engine cache folder), ``timing_cache``, ``progress``: for building from ONNX.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.device import gpu_identity, parse_device_index, use_device
from accelkit.errors import AccelkitError, BackendUnavailableError, InputError, LoadError, SpecError
from accelkit.files import sha256_bytes, storage_error
from accelkit.runners.base import Ask, Recipe, Runner
from accelkit.spec import as_batch_range
from accelkit.trt import platform
from accelkit.trt.memory import DeviceBuffer, DeviceMemory, dtype_name, memory_layer

if TYPE_CHECKING:
    import tensorrt

log = logging.getLogger(__name__)

_BUILD_OPTIONS = (
    "batch_range",
    "workspace",
    "builder_optimization_level",
    "tf32",
    "cache",
    "cache_dir",
    "timing_cache",
    "progress",
)
_OPTIONS = (*_BUILD_OPTIONS, "rebuild", "precision", "trust_engine")


@dataclass
class _Prepared:
    """A batch on the device: input buffers and the output buffers the engine writes.

    The output buffers belong to this batch and are overwritten by every run on it.
    """

    batch_size: int
    inputs: dict[str, DeviceBuffer] = field(default_factory=dict)
    outputs: dict[str, DeviceBuffer] = field(default_factory=dict)


class TrtRunner(Runner):
    """Runs a TensorRT engine on one NVIDIA GPU.

    Args:
        artifact: A ``trt`` artifact (plan + sidecar), or an ``onnx`` artifact that
            :meth:`activate` builds with :class:`~accelkit.trt.build.EngineFromOnnx`.
        device: ``cuda`` or ``cuda:N``.
        **options: See the module docstring.

    Raises:
        InputError: Wrong artifact format, unknown option, a precision override, not a CUDA device.
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
        self._index = parse_device_index(device)
        if "batch_range" in options:
            self.options["batch_range"] = list(as_batch_range(options["batch_range"]))
        self.trust_engine = bool(options.get("trust_engine", False))
        self.plan: Artifact | None = None
        self._trt: Any = None
        self._runtime: tensorrt.Runtime | None = None
        self._engine: tensorrt.ICudaEngine | None = None
        self._context: tensorrt.IExecutionContext | None = None
        self._mem: DeviceMemory | None = None
        self._stack: contextlib.ExitStack | None = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._dtypes: dict[str, Any] = {}
        self._batch_range: tuple[int, int, int] = (0, 0, 0)
        self._current: _Prepared | None = None
        self._gpu: dict[str, Any] = {}
        self._plan_sha256: str | None = None
        self._trusted: str | None = None

    # ----------------------------------------------------------------- availability
    @classmethod
    def availability(cls, device: str = "cpu") -> str | None:
        """None when TensorRT can run on ``device`` here, else every reason it cannot."""
        if not str(device).startswith("cuda"):
            return f"TensorRT runs only on NVIDIA GPUs (device {device!r} requested); use --device cuda"
        try:
            index = parse_device_index(str(device))
        except InputError as exc:
            return str(exc)
        reasons = []
        problem = platform.tensorrt_import_problem()
        if problem is not None:
            reasons.append(f"tensorrt is not importable: {problem}")
        problem = platform.polygraphy_import_problem()
        if problem is not None:
            reasons.append(f"polygraphy is not importable: {problem}")
        try:
            gpu_identity(index)
        except BackendUnavailableError as exc:
            reasons.append(str(exc))
        return "; ".join(reasons) or None

    @classmethod
    def recipes(cls, ask: Ask) -> list[Recipe] | str:
        """A strongly typed engine built (and cached) from the ONNX file of the precision
        asked for, over the run's batch profile; a given plan runs as it is, in its own
        precision. Expensive to try (an engine build); fp32 is measured, not searched."""
        from accelkit.vocab import ONNX_PRECISIONS, onnx_source

        if not ask.cuda:
            return f"TensorRT runs only on NVIDIA GPUs (device {ask.device!r}); use --device cuda"
        p = ask.precision
        if p not in ONNX_PRECISIONS:
            return f"{p} is not an ONNX precision; TensorRT builds from fp32, fp16 and int8 ONNX"
        opts: dict[str, Any] = {}
        if ask.trust_engine:
            opts["trust_engine"] = True
        if ask.kind == "trt":
            if p != ask.given_precision:
                return f"the TensorRT plan is {ask.given_precision}; a strongly typed engine runs the precision it was built with"
            return [Recipe(cls.name, p, "given", opts, expensive=True, flops_from_fp32=True)]
        if ask.batch_range is not None:
            opts["batch_range"] = tuple(ask.batch_range)
        if ask.cache_dir is not None:
            opts["cache_dir"] = ask.cache_dir
        return [
            Recipe(
                cls.name,
                p,
                onnx_source(p),
                opts,
                expensive=True,
                searched=p != "fp32",
                flops_from_fp32=True,
            )
        ]

    # ----------------------------------------------------------------- lifecycle
    def _activate_impl(self) -> None:
        with contextlib.ExitStack() as stack:
            plan, data = self._plan_artifact(stack)
            assert plan.path is not None
            self._load_engine(Path(plan.path), data)
            self._mem = memory_layer(self._trt, self._index)
            self.plan = plan
            self._stack = (
                stack.pop_all()
            )  # device selection, logging routing and temp folder live until deactivate
        log.info(
            "trt runner ready: %s on %s (TensorRT %s, batch %d..%d, buffers via %s)",
            self.plan.path,
            self._gpu.get("name"),
            self._trt.__version__,
            self._batch_range[0],
            self._batch_range[2],
            self._mem.name,
        )

    def _read_trusted(self, plan_path: Path) -> tuple[bytes, dict[str, Any] | None]:
        """The plan's bytes and sidecar, after the trust check on exactly those bytes.

        Reading once and checking the bytes that will be deserialized leaves no window
        for the file to be swapped between the check and the load.
        """
        if not plan_path.is_file():
            raise InputError(
                f"TensorRT plan {plan_path} does not exist; build it with `accelkit build MODEL.onnx` or check the path"
            )
        try:
            data = plan_path.read_bytes()
        except OSError as exc:
            raise storage_error(exc, f"cannot read TensorRT plan {plan_path}") from None
        sha = sha256_bytes(data)
        side = platform.check_plan_trusted(plan_path, trust=self.trust_engine, sha256=sha)
        self._trusted = (
            "sidecar sha256" if side is not None and side.get("sha256") == sha else "trust_engine"
        )
        self._plan_sha256 = sha
        return data, side

    def _plan_artifact(self, stack: contextlib.ExitStack) -> tuple[Artifact, bytes]:
        """The plan to load and its bytes: the given one after the trust and compatibility checks, or one built now.

        The trust check comes first and needs neither TensorRT nor a GPU: an untrusted
        plan is refused before anything is imported or deserialized.
        """
        art = self.artifact
        data, side = b"", None
        if art.format == "trt":
            assert art.path is not None
            data, side = self._read_trusted(Path(art.path))
        self._trt = platform.load_tensorrt("the trt backend")
        platform.load_polygraphy("the trt backend")
        stack.enter_context(platform.polygraphy_logging())
        self._gpu = gpu_identity(self._index)
        stack.enter_context(use_device(self._index))
        if art.format == "onnx":
            return self._build(art, stack)
        reason = (
            platform.check_plan_compatible(side, str(self._trt.__version__), self._gpu)
            if side is not None
            else None
        )
        if reason is None:
            return art, data
        onnx_src = self._recorded_onnx(side or {})
        if self.options.get("rebuild") and onnx_src is not None:
            log.warning(
                "TensorRT plan %s cannot run here (%s); rebuilding it from %s",
                art.path,
                reason,
                onnx_src.path,
            )
            return self._build(onnx_src, stack)
        hint = (
            "pass rebuild=True (--rebuild) to rebuild it from its ONNX file"
            if onnx_src is not None
            else "rebuild it on this machine from its ONNX file with `accelkit build MODEL.onnx`"
        )
        raise LoadError(f"TensorRT plan {art.path} cannot run here: {reason}; {hint}")

    def _build(self, onnx_art: Artifact, stack: contextlib.ExitStack) -> tuple[Artifact, bytes]:
        """Build through :class:`EngineFromOnnx` into a temporary folder removed on deactivate."""
        from accelkit.trt.build import EngineFromOnnx

        folder = Path(tempfile.mkdtemp(prefix="accelkit-trt-"))
        stack.callback(shutil.rmtree, folder, True)
        assert onnx_art.path is not None
        out = folder / (Path(onnx_art.path).stem + ".plan")
        opts = {k: self.options[k] for k in _BUILD_OPTIONS if k in self.options}
        plan = EngineFromOnnx(out=out, force=True, device=self.device, **opts)(onnx_art)
        data, _ = self._read_trusted(
            out
        )  # the sidecar the pass just wrote matches, unless the file was swapped
        self._trusted = "built now"
        return plan, data

    def _recorded_onnx(self, side: dict[str, Any]) -> Artifact | None:
        """The ONNX artifact the plan was built from, if it still exists unchanged."""
        from accelkit.trt.build import onnx_fingerprint

        meta = side.get("meta") or {}
        path, sha = meta.get("onnx_path"), meta.get("onnx_sha256")
        if not path or not sha or not Path(path).is_file():
            return None
        if onnx_fingerprint(path) != sha:
            log.warning(
                "the ONNX file %s changed since the plan was built; not rebuilding from it", path
            )
            return None
        return self.artifact.derive(format="onnx", path=Path(path))

    def _load_engine(self, plan_path: Path, data: bytes) -> None:
        """Deserialize ``data`` (the checked bytes of ``plan_path``) with Polygraphy's ``EngineFromBytes``."""
        import tensorrt
        from polygraphy.backend.trt import EngineFromBytes
        from polygraphy.exception import PolygraphyException

        platform.clear_trt_errors()
        runtime = tensorrt.Runtime(platform.trt_logger())
        try:
            engine: tensorrt.ICudaEngine = EngineFromBytes(data, runtime=runtime)()
        except PolygraphyException:
            raise LoadError(
                f"TensorRT {tensorrt.__version__} could not deserialize {plan_path} ({platform.last_trt_errors() or 'no message'}); "
                "rebuild the plan on this machine with `accelkit build MODEL.onnx`"
            ) from None
        context = engine.create_execution_context()
        if context is None:
            raise LoadError(
                f"TensorRT could not create an execution context for {plan_path} ({platform.last_trt_errors() or 'no message'}); "
                "the GPU may be out of memory: free it or rebuild with a smaller --batch-range"
            )
        inputs: list[str] = []
        outputs: list[str] = []
        dtypes: dict[str, tensorrt.DataType] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtypes[name] = engine.get_tensor_dtype(name)
            (
                inputs if engine.get_tensor_mode(name) == tensorrt.TensorIOMode.INPUT else outputs
            ).append(name)
        if sorted(inputs) != sorted(self.spec.input_names):
            raise SpecError(
                f"the engine's inputs {sorted(inputs)} do not match the generator spec's inputs {self.spec.input_names}; "
                "rebuild the plan from the matching ONNX file"
            )
        if not outputs:
            raise LoadError(f"the engine in {plan_path} has no outputs; rebuild it")
        if len(outputs) > 1:
            log.info(
                "engine has %d outputs %s; the image is taken from %r",
                len(outputs),
                outputs,
                outputs[0],
            )
        profile = engine.get_tensor_profile_shape(inputs[0], 0)
        lo, opt, hi = (platform.dims(d)[0] for d in profile)
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
            try:
                if self._mem is not None:
                    self._mem.close()
            finally:
                self._mem = None
                if self._stack is not None:
                    stack, self._stack = self._stack, None
                    stack.close()

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
            shape = platform.dims(self._context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise LoadError(
                    f"TensorRT could not infer the shape of output {name!r} ({shape}) for batch {batch}"
                )
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
                    f"TensorRT rejected input shape {buf.shape} for {name!r} ({platform.last_trt_errors() or 'outside the profile'})"
                )

    def _bind(self, prepared: _Prepared) -> None:
        ctx = self._context
        assert ctx is not None
        self._set_shapes(prepared)
        for name, buf in (*prepared.inputs.items(), *prepared.outputs.items()):
            if not ctx.set_tensor_address(name, buf.ptr):
                raise AccelkitError(
                    f"TensorRT rejected the device address of {name!r} ({platform.last_trt_errors() or 'no message'})"
                )
        self._current = prepared  # held, so the identity check in _run_impl is safe

    def _run_impl(self, prepared: _Prepared) -> DeviceBuffer:
        ctx = self._context
        assert self._mem is not None and ctx is not None
        if prepared is not self._current:  # shapes and addresses change only with the batch
            self._bind(prepared)
        if not ctx.execute_async_v3(self._mem.stream_handle):
            raise AccelkitError(
                f"TensorRT execution failed ({platform.last_trt_errors() or 'no message'})"
            )
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
            "batch_range": list(self._batch_range)
            if self._engine is not None
            else self.options.get("batch_range"),
            "plan": str(self.plan.path) if self.plan is not None else None,
            "plan_sha256": self._plan_sha256,
            "plan_trusted_by": self._trusted,
            "engine_cache_key": meta.get("engine_cache_key"),
            "engine_cache": meta.get("engine_cache"),
            "build_seconds": meta.get("build_seconds"),
            "strongly_typed": True,
            "buffers": self._mem.name if self._mem is not None else None,
            "io_dtypes": {n: dtype_name(d) for n, d in self._dtypes.items()},
        }
        for k, v in self.options.items():
            if k != "progress" and k not in info:
                info[k] = v if v is None or isinstance(v, (bool, int, float, str, list)) else str(v)
        return info


__all__ = ["TrtRunner"]
