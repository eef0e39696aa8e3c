"""OpenVINO runner (CPU): runs accelkit's ONNX files (fp32, fp16, int8 Q/DQ) with OpenVINO's native API.

``openvino`` is imported lazily (``pip install 'accelkit[openvino]'``), never at module
import, so ``import accelkit`` works without it.

Precision is explicit. OpenVINO's CPU plugin silently computes in **bf16** on CPUs with
AVX-512 BF16 or AMX unless told otherwise (its ``INFERENCE_PRECISION_HINT`` defaults
to bf16 there), so a row labelled fp32 would really be bf16. This runner always sets the
hint and reads back what the compiled model uses:

* fp32 artifact, ``precision`` fp32 (default): hint ``f32``; the row is ``fp32``.
* fp32 (or fp16) artifact, ``precision="bf16"``: hint ``bf16``; the row is ``bf16``.
  Refused on a CPU without native bf16 (OpenVINO would silently run f32 there).
* fp16 artifact: OpenVINO's CPU plugin upcasts the fp16 weights; hint ``f32`` by default.
* int8 (Q/DQ) artifact: the same file ONNX Runtime and TensorRT run; OpenVINO fuses the
  Q/DQ pairs into int8 kernels (VNNI/AMX); ops left in float run at the hint (``f32``
  by default, so the row measures int8 alone; ``inference_precision="bf16"`` adds bf16
  for the float parts).
* ``inference_precision="auto"`` leaves OpenVINO's default and records what it chose.

Timing contract: each batch size gets its own compiled model, reshaped to that static
batch in :meth:`prepare` (static shapes are measured ~1.2-1.3x faster than the dynamic
batch on the bundled DCGAN; compile seconds are recorded per batch, like
``torch.compile``); ``prepare`` binds the input tensors once (copied into the request's own
tensors, so the request never reads memory Python may free); :meth:`run` starts the request and :meth:`synchronize` waits for it (the C++
request runs the graph; no Python dictionary is built per call); outputs are copied
only by :meth:`to_numpy`.

Options (recorded by :meth:`OpenVinoRunner.describe`):

* ``precision``: ``fp32`` | ``bf16`` | the artifact's precision (``fp16``, ``int8``).
* ``inference_precision``: ``f32`` | ``bf16`` | ``auto`` (default from ``precision``).
* ``threads``: ``INFERENCE_NUM_THREADS`` (default :func:`accelkit.host.default_threads`).
* ``static_shapes``: compile one model per batch size (default True) or one dynamic one.
* ``config``: extra OpenVINO properties (name -> value) passed to ``compile_model``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import (
    BackendUnavailableError,
    InputError,
    LoadError,
    MissingDependencyError,
    require,
)
from accelkit.host import default_threads, has_native_bf16
from accelkit.runners.base import Ask, Recipe, Runner
from accelkit.vocab import onnx_source

log = logging.getLogger(__name__)

#: accelkit name -> OpenVINO element type name for ``INFERENCE_PRECISION_HINT``.
HINTS = {"f32": "f32", "bf16": "bf16", "auto": None}
#: OpenVINO element type name -> accelkit precision label.
_TYPE_TO_PRECISION = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
_OPTIONS = ("precision", "inference_precision", "threads", "static_shapes", "config")
_EXTRA = "openvino"


def _ov() -> Any:
    return require("openvino", _EXTRA, "the openvino backend")


def _type_name(t: Any) -> str:
    """``<Type: 'bfloat16'>`` / ``Type.bf16`` -> ``bf16``."""
    try:
        name = str(t.get_type_name())  # 'bf16', 'f32', 'f16'
    except AttributeError:
        name = str(t)
    return {"bfloat16": "bf16", "float32": "f32", "float16": "f16"}.get(name, name)


@dataclass
class _Prepared:
    """A batch bound to an infer request of the compiled model for its batch size."""

    batch_size: int
    request: Any
    arrays: list[np.ndarray] = field(default_factory=list)


class OpenVinoRunner(Runner):
    """Runs an ``onnx`` artifact with OpenVINO on the CPU.

    Args:
        artifact: An ``onnx`` artifact with a file ``path`` (fp32, fp16 or int8 Q/DQ).
        device: ``cpu`` only.
        **options: ``precision``, ``inference_precision``, ``threads``, ``static_shapes``, ``config``.

    Raises:
        InputError: Wrong artifact format, device, unknown option or value.
        BackendUnavailableError: bf16 asked for on a CPU without native bf16.
    """

    name = "openvino"
    OPTIONS = _OPTIONS

    def __init__(self, artifact: Artifact, device: str = "cpu", **options: Any) -> None:
        super().__init__(artifact, device=device, **options)
        self._require_onnx_file()
        reason = self.refusal("fp32")  # fp32 runs wherever openvino runs: this is the device rule
        if reason is not None:
            raise InputError(f"{reason}; use --device cpu")
        prec = str(options.get("precision") or artifact.precision).lower()
        allowed = (
            {artifact.precision, "bf16"}
            if artifact.precision in ("fp32", "fp16")
            else {artifact.precision}
        )
        if prec not in allowed:
            raise InputError(
                f"the openvino backend runs a {artifact.precision} ONNX file as {' or '.join(sorted(allowed))}, got precision={prec!r}; "
                "make an fp16/int8 model with accelkit export --fp16/--int8 and run that file"
            )
        hint = options.get("inference_precision")
        if hint is None:
            hint = "bf16" if prec == "bf16" else "f32"
        hint = str(hint).lower()
        if hint not in HINTS:
            raise InputError(
                f"openvino inference_precision {hint!r} is unknown; choose one of {', '.join(HINTS)}"
            )
        if prec == "bf16" and hint != "bf16":
            raise InputError(
                f"openvino precision bf16 needs inference_precision bf16, got {hint!r}"
            )
        reason = self.refusal("bf16", native_bf16=has_native_bf16()) if hint == "bf16" else None
        if reason is not None:
            raise BackendUnavailableError(f"openvino bf16: {reason}; run fp32 or int8 here")
        config = options.get("config") or {}
        if not isinstance(config, dict):
            raise InputError(
                f"openvino config must be a dict of OpenVINO property names to values, got {type(config).__name__}"
            )
        self.options["precision"] = prec
        self.options["inference_precision"] = hint
        self.options["static_shapes"] = bool(options.get("static_shapes", True))
        self._threads_default: int | None = None
        self._core: Any = None
        self._model: Any = None
        self._compiled: dict[int, Any] = {}  # batch (0: dynamic) -> CompiledModel
        self._requests: dict[int, Any] = {}
        self._compile_seconds: dict[int, float] = {}
        self._input_types: dict[str, Any] = {}
        self._resolved_hint: str | None = None
        self._running: Any = None

    # ----------------------------------------------------------------- availability
    @classmethod
    def availability(cls, device: str = "cpu") -> str | None:
        """None when OpenVINO can run on ``device`` here (the package installed, device ``cpu``), else why not."""
        if device != "cpu":
            return f"the openvino backend runs on the CPU here, not {device}"
        try:
            ov = _ov()
        except MissingDependencyError as exc:
            return str(exc)
        try:
            devices = list(ov.Core().available_devices)
        except Exception as exc:  # noqa: BLE001 - a broken install is a reason, not a crash
            return f"openvino is installed but its runtime does not start ({type(exc).__name__}: {str(exc)[:120]}); reinstall it: pip install 'accelkit[openvino]'"
        if "CPU" not in devices:
            return f"openvino sees no CPU device (devices: {', '.join(devices) or 'none'}); reinstall it: pip install 'accelkit[openvino]'"
        return None

    @classmethod
    def recipes(cls, ask: Ask) -> list[Recipe] | str:
        """fp32/fp16/int8 run their ONNX file with an f32 hint; bf16 runs the fp32 file with a
        bf16 hint, only on a CPU with native bf16 (elsewhere OpenVINO silently computes f32).
        An fp16 file computes in f32 on the CPU: measured, never searched."""
        if ask.device != "cpu":
            return f"the openvino backend runs on the CPU here, not {ask.device!r}"
        p = ask.precision
        threads = ask.cpu_threads()
        if p == "bf16":
            if not ask.native_bf16:
                return "this CPU has no native bf16 (AVX-512 BF16 or AMX); OpenVINO would compute in f32"
            return [Recipe(cls.name, "bf16", onnx_source("fp32"), {"precision": "bf16", **threads})]
        if p == "fp32":
            return [Recipe(cls.name, "fp32", onnx_source("fp32"), {"precision": "fp32", **threads})]
        if p in ("fp16", "int8"):
            return [Recipe(cls.name, p, onnx_source(p), dict(threads), searched=p == "int8")]
        return f"openvino does not run {p}"

    @property
    def precision(self) -> str:
        """The row's compute precision: ``bf16`` under a bf16 hint on a float file, else the file's (``int8``...)."""
        prec = str(self.options.get("precision") or self.artifact.precision)
        hint = self._resolved_hint or self.options.get("inference_precision")
        if prec in ("fp32", "fp16") and hint == "auto":
            hint = "bf16" if has_native_bf16() else "f32"
        if prec in ("fp32", "fp16") and hint == "bf16":
            return "bf16"
        return prec

    def threads(self) -> int:
        """``INFERENCE_NUM_THREADS`` used (the option, else :func:`default_threads` measured once at activation)."""
        t = self.options.get("threads")
        if t is not None:
            return int(t)
        if self._threads_default is None:
            self._threads_default = default_threads()
        return self._threads_default

    # -------------------------------------------------------------------- lifecycle
    def _activate_impl(self) -> None:
        reason = self.availability(self.device)
        if reason is not None:
            raise BackendUnavailableError(f"openvino on {self.device} cannot run here: {reason}")
        ov = _ov()
        path = Path(self.artifact.path)  # type: ignore[arg-type]
        if not path.is_file():
            raise LoadError(f"ONNX file {path} does not exist; re-run accelkit export")
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with long text
            msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise LoadError(
                f"openvino cannot read {path} ({msg}); check the file with accelkit info"
            ) from None
        names = {p.get_any_name(): p for p in self._model.inputs}
        missing = sorted(set(self.spec.input_names) - set(names))
        if missing:
            self._model = None
            raise InputError(
                f"the ONNX graph's inputs {sorted(names)} lack the spec's inputs {missing}; give the graph's input names with --input"
            )
        self._input_types = {n: p.get_element_type() for n, p in names.items()}
        self._threads_default = None
        self.threads()
        if not self.options["static_shapes"]:
            self._compile(0)

    def _config(self) -> dict[str, Any]:
        import openvino.properties as props
        import openvino.properties.hint as hints

        ov = _ov()
        cfg: dict[str, Any] = {
            props.inference_num_threads: self.threads(),
            props.num_streams: 1,
            hints.performance_mode: hints.PerformanceMode.LATENCY,
        }
        hint = self.options["inference_precision"]
        if HINTS[hint] is not None:
            cfg[hints.inference_precision] = ov.Type.f32 if hint == "f32" else ov.Type.bf16
        cfg.update(self.options.get("config") or {})
        return cfg

    def _compile(self, batch: int) -> Any:
        """The compiled model for ``batch`` (0: the dynamic-batch model), compiled once."""
        if batch in self._compiled:
            return self._compiled[batch]
        model = self._model
        if batch:
            model = model.clone()
            shapes = {}
            for inp in self.spec.inputs:
                shapes[inp.name] = [batch, *inp.shape]
            try:
                model.reshape(shapes)
            except Exception as exc:  # noqa: BLE001
                msg = (
                    str(exc).strip().splitlines()[0][:200]
                    if str(exc).strip()
                    else type(exc).__name__
                )
                raise InputError(
                    f"openvino cannot reshape {self.artifact.path} to batch {batch} ({msg}); pass static_shapes=False"
                ) from None
        t0 = time.perf_counter()
        try:
            compiled = self._core.compile_model(model, "CPU", self._config())
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise LoadError(
                f"openvino cannot compile {self.artifact.path} for the CPU ({msg})"
            ) from None
        self._compile_seconds[batch] = time.perf_counter() - t0
        self._compiled[batch] = compiled
        self._requests[batch] = compiled.create_infer_request()
        self._resolved_hint = self._read_hint(compiled)
        return compiled

    @staticmethod
    def _read_hint(compiled: Any) -> str | None:
        import openvino.properties.hint as hints

        try:
            return _type_name(compiled.get_property(hints.inference_precision))
        except Exception:  # noqa: BLE001 - informative only
            return None

    def _deactivate_impl(self) -> None:
        self._requests.clear()
        self._compiled.clear()
        self._model = None
        self._core = None
        self._running = None

    # ---------------------------------------------------------------------- running
    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> _Prepared:
        ov = _ov()
        batch = int(next(iter(inputs.values())).shape[0])
        key = batch if self.options["static_shapes"] else 0
        self._compile(key)
        # static: the batch's own compiled model and request; dynamic: one request per prepared batch
        request = self._compiled[0].create_infer_request() if key == 0 else self._requests[key]
        keep = []
        for name, arr in inputs.items():
            want = self._input_types.get(name)
            dtype = np.dtype(want.to_dtype()) if want is not None else arr.dtype
            a = np.ascontiguousarray(arr, dtype=dtype)
            keep.append(a)
            request.set_tensor(
                name, ov.Tensor(a, shared_memory=False)
            )  # copied once: the request owns its inputs
        return _Prepared(batch_size=batch, request=request, arrays=keep)

    def _run_impl(self, prepared: _Prepared) -> Any:
        prepared.request.start_async()
        self._running = prepared.request
        return prepared.request

    def _synchronize_impl(self) -> None:
        if self._running is not None:
            self._running.wait()

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        output.wait()
        return np.array(output.get_output_tensor(0).data, dtype=np.float32, copy=True)

    # ----------------------------------------------------------------------- report
    def _describe_impl(self) -> dict[str, Any]:
        try:
            version = metadata.version("openvino")
        except metadata.PackageNotFoundError:
            version = None
        d: dict[str, Any] = {
            "openvino_version": version,
            "model": str(self.artifact.path),
            "ov_device": "CPU",
            "inference_precision_requested": self.options["inference_precision"],
            "inference_precision": self._resolved_hint,
            "threads": self.threads(),
            "num_streams": 1,
            "performance_mode": "LATENCY",
            "static_shapes": self.options["static_shapes"],
            "artifact_precision": self.artifact.precision,
        }
        if self.options.get("config"):
            d["config"] = {str(k): str(v) for k, v in self.options["config"].items()}
        if self._compile_seconds:
            d["compile_seconds"] = {
                str(k): round(v, 3) for k, v in sorted(self._compile_seconds.items())
            }
        return d
