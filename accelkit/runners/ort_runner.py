"""ONNX Runtime runner (CPU, CUDA or TensorRT execution provider).

The precision is whatever the ONNX file holds (fp32, fp16 tensors, or int8 Q/DQ
nodes); the runner adds none. ``onnxruntime`` is imported lazily, never at module
import, so ``import accelkit`` works without it.

ONNX Runtime silently falls back to the CPU provider when the requested one cannot be
created (missing CUDA/cuDNN/TensorRT libraries, wrong onnxruntime distribution). The
runner checks ``session.get_providers()`` after creating the session and raises
:class:`~accelkit.errors.BackendUnavailableError` instead of labelling a CPU run as CUDA.

Options (recorded by :meth:`OrtRunner.describe`):

* ``provider``: ``cpu`` | ``cuda`` | ``tensorrt`` (default ``cpu`` on device ``cpu``,
  ``cuda`` on a CUDA device).
* ``threads``: intra-op threads (default: physical cores this process may use).
* ``provider_options``: dict passed to the requested provider as-is (e.g. TensorRT EP
  cache settings); ``device_id`` is filled from ``cuda:N``.
"""

from __future__ import annotations

import logging
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
from accelkit.host import available_physical_cores, installed_ort_distributions
from accelkit.runners.base import Ask, Recipe, Runner
from accelkit.vocab import ONNX_PRECISIONS, onnx_source

log = logging.getLogger(__name__)

#: accelkit provider name -> ONNX Runtime execution provider.
PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_OPTIONS = ("provider", "threads", "provider_options", "precision")

#: ONNX tensor type string -> numpy dtype.
_ONNX_TO_NUMPY: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _distribution_warnings() -> list[str]:
    dists = installed_ort_distributions()
    if len(dists) > 1:
        names = ", ".join(f"{k}=={v}" for k, v in dists.items())
        return [
            f"several onnxruntime distributions are installed ({names}); they install the same "
            "'onnxruntime' module and overwrite each other, so the providers you get depend on install order; "
            "uninstall all but one (pip uninstall onnxruntime for GPU use)"
        ]
    return []


def _device_id(device: str) -> int:
    if ":" in device:
        try:
            return int(device.split(":", 1)[1])
        except ValueError:
            raise InputError(f"device {device!r} is not cpu, cuda or cuda:N") from None
    return 0


def _default_provider(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


@dataclass
class _Prepared:
    """A batch ready to run: numpy feeds (CPU) or an IO binding with device OrtValues."""

    batch_size: int
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    binding: Any = None
    keep_alive: list[Any] = field(default_factory=list)


class OrtRunner(Runner):
    """Runs an ``onnx`` artifact with ONNX Runtime.

    Args:
        artifact: An ``onnx`` artifact with a file ``path``; its graph takes the spec's
            inputs (float32/float16 latents and images, int64 labels) and returns an
            NCHW image batch.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        **options: ``provider`` (``cpu``|``cuda``|``tensorrt``), ``threads`` (int >= 1),
            ``provider_options`` (dict for the requested provider).

    Raises:
        InputError: Wrong artifact format, unknown option, provider/device mismatch.
    """

    name = "ort"
    OPTIONS = _OPTIONS

    def __init__(self, artifact: Artifact, device: str = "cpu", **options: Any) -> None:
        super().__init__(artifact, device=device, **options)
        self._require_onnx_file()
        prec = options.get("precision")
        if prec is not None and str(prec) != artifact.precision:
            raise InputError(
                f"the ort backend runs the precision stored in the ONNX file ({artifact.precision}), got precision={prec!r}; "
                "make an fp16/int8 model with accelkit export --fp16/--int8 and run that file"
            )
        self.options.pop("precision", None)
        provider = str(options.get("provider") or _default_provider(device)).lower()
        if provider not in PROVIDERS:
            raise InputError(
                f"unknown ort provider {provider!r}; choose one of {', '.join(PROVIDERS)}"
            )
        if provider == "cpu" and device.startswith("cuda"):
            raise InputError(
                f"ort provider cpu does not run on device {device}; use --device cpu or provider cuda/tensorrt"
            )
        if provider != "cpu" and not device.startswith("cuda"):
            raise InputError(
                f"ort provider {provider} needs a CUDA device, got device {device}; use --device cuda or provider cpu"
            )
        self.options["provider"] = provider
        self.provider = provider
        self._device_id = _device_id(device)
        self._session: Any = None
        self._ort: Any = None
        self._out_name: str = ""
        self._out_dtype: Any = np.float32
        self._in_dtypes: dict[str, Any] = {}
        self._session_info: dict[str, Any] = {}
        self._warnings: list[str] = []
        self._last_binding: Any = None

    # ----------------------------------------------------------------- availability
    @classmethod
    def availability(cls, device: str = "cpu", provider: str | None = None) -> str | None:
        """None when ONNX Runtime can run ``provider`` on ``device`` here, else why not.

        Args:
            device: ``cpu`` or ``cuda[:N]``.
            provider: ``cpu``, ``cuda`` or ``tensorrt``; default from ``device``.
        """
        provider = (provider or _default_provider(device)).lower()
        extra = "cpu" if provider == "cpu" else "gpu"
        try:
            ort = require("onnxruntime", extra, "the ort backend")
        except MissingDependencyError as exc:
            return str(exc)
        if provider not in PROVIDERS:
            return f"unknown ort provider {provider!r}; choose one of {', '.join(PROVIDERS)}"
        if provider != "cpu" and not device.startswith("cuda"):
            return f"ort provider {provider} needs a CUDA device, not {device}"
        want = PROVIDERS[provider]
        have = list(ort.get_available_providers())  # type: ignore[attr-defined]
        if want not in have:
            hint = (
                "install onnxruntime-gpu instead of onnxruntime: pip install 'accelkit[gpu]'"
                if provider != "cpu"
                else "reinstall onnxruntime"
            )
            return f"onnxruntime {getattr(ort, '__version__', '?')} has no {want} (available: {', '.join(have)}); {hint}"
        return None

    @classmethod
    def recipe_availability(cls, recipe: Recipe, device: str) -> str | None:
        """:meth:`availability` for the recipe's execution provider."""
        return cls.availability(device, recipe.options.get("provider"))

    @classmethod
    def recipes(cls, ask: Ask) -> list[Recipe] | str:
        """The ONNX file of the precision asked for, on the CPU or CUDA provider; on CUDA the
        ``tensorrt`` variant (ORT's TensorRT execution provider; expensive: it builds engines)."""
        if ask.precision not in ONNX_PRECISIONS:
            return (
                f"{ask.precision} is not an ONNX precision; ort runs fp32, fp16 and int8 ONNX files"
            )
        src = onnx_source(ask.precision)
        provider = _default_provider(ask.device)
        plain = Recipe(cls.name, ask.precision, src, {"provider": provider, **ask.cpu_threads()})
        trt_ep = Recipe(
            cls.name,
            ask.precision,
            src,
            {"provider": "tensorrt"},
            variant="tensorrt",
            expensive=True,
            searched=False,
            refused=None if ask.cuda else "ORT's TensorRT execution provider needs a CUDA device",
        )
        return [plain, trt_ep]

    # -------------------------------------------------------------------- lifecycle
    def _threads(self) -> int:
        t = self.options.get("threads")
        return int(t) if t is not None else available_physical_cores()

    def _activate_impl(self) -> None:
        reason = self.availability(self.device, self.provider)
        if reason is not None:
            raise BackendUnavailableError(
                f"ort provider {self.provider} on {self.device} cannot run here: {reason}"
            )
        ort: Any = require(
            "onnxruntime", "cpu" if self.provider == "cpu" else "gpu", "the ort backend"
        )
        self._ort = ort
        self._warnings = _distribution_warnings()
        for w in self._warnings:
            log.warning(w)

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = self._threads()
        so.inter_op_num_threads = 1  # sequential execution: no inter-op parallelism
        so.log_severity_level = 3  # errors only; provider fallback is detected below

        want = PROVIDERS[self.provider]
        user_opts = dict(self.options.get("provider_options") or {})
        providers: list[Any]
        if self.provider == "cpu":
            providers = [(want, user_opts)] if user_opts else [want]
        elif self.provider == "cuda":
            providers = [
                (want, {"device_id": self._device_id, **user_opts}),
                "CPUExecutionProvider",
            ]
        else:
            providers = [
                (want, {"device_id": self._device_id, **user_opts}),
                ("CUDAExecutionProvider", {"device_id": self._device_id}),
                "CPUExecutionProvider",
            ]
        path = Path(self.artifact.path)  # type: ignore[arg-type]
        if not path.is_file():
            raise LoadError(f"ONNX file {path} does not exist; re-run accelkit export")
        try:
            session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise LoadError(
                f"onnxruntime cannot load {path} with {want} ({msg}); check the file with accelkit info"
            ) from None
        got = list(session.get_providers())
        if want not in got:
            raise BackendUnavailableError(
                f"onnxruntime fell back to {', '.join(got)} although {want} was requested (its libraries failed to load: "
                "CUDA/cuDNN/TensorRT missing or mismatched for this onnxruntime build); fix the GPU install or run with --device cpu"
            )
        self._session = session
        outs = session.get_outputs()
        self._out_name = outs[0].name
        self._out_dtype = _ONNX_TO_NUMPY.get(outs[0].type, np.float32)
        self._in_dtypes = {i.name: _ONNX_TO_NUMPY.get(i.type) for i in session.get_inputs()}
        missing = sorted(set(self.spec.input_names) - set(self._in_dtypes))
        if missing:
            self._session = None
            raise InputError(
                f"the ONNX graph's inputs {sorted(self._in_dtypes)} lack the spec's inputs {missing}; "
                "give the graph's input names with --input"
            )
        self._session_info = {
            "providers": got,
            "intra_op_num_threads": int(so.intra_op_num_threads),
            "inter_op_num_threads": int(so.inter_op_num_threads),
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "graph_inputs": {i.name: i.type for i in session.get_inputs()},
            "graph_output": {outs[0].name: outs[0].type},
        }

    def _deactivate_impl(self) -> None:
        self._session = None
        self._last_binding = None

    # ---------------------------------------------------------------------- running
    def _feed(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {}
        for name, arr in inputs.items():
            dtype = self._in_dtypes.get(name) or arr.dtype
            feeds[name] = np.ascontiguousarray(arr, dtype=dtype)
        return feeds

    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> _Prepared:
        feeds = self._feed(inputs)
        batch = int(next(iter(inputs.values())).shape[0])
        if self.provider == "cpu":
            return _Prepared(batch_size=batch, feeds=feeds)
        ort = self._ort
        binding = self._session.io_binding()
        keep: list[Any] = []
        for name, arr in feeds.items():
            val = ort.OrtValue.ortvalue_from_numpy(arr, "cuda", self._device_id)
            binding.bind_ortvalue_input(name, val)
            keep.append(val)
        if self.spec.output_shape:
            out = ort.OrtValue.ortvalue_from_shape_and_type(
                (batch, *self.spec.output_shape), self._out_dtype, "cuda", self._device_id
            )
            binding.bind_ortvalue_output(self._out_name, out)
            keep.append(out)
        else:
            binding.bind_output(self._out_name, "cuda", self._device_id)
        return _Prepared(batch_size=batch, binding=binding, keep_alive=keep)

    def _run_impl(self, prepared: _Prepared) -> Any:
        if prepared.binding is not None:
            self._session.run_with_iobinding(prepared.binding)
            self._last_binding = prepared.binding
            return prepared.binding
        return self._session.run([self._out_name], prepared.feeds)[0]

    def _synchronize_impl(self) -> None:
        # CPU runs are synchronous. On CUDA, ONNX Runtime synchronizes its stream at the
        # end of a run by default; waiting on the bound outputs as well makes the timing
        # correct even when that default is turned off.
        if self._last_binding is not None:
            self._last_binding.synchronize_outputs()

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        if isinstance(output, np.ndarray):
            return output.astype(np.float32, copy=False)
        return np.asarray(output.copy_outputs_to_cpu()[0], dtype=np.float32)

    # ----------------------------------------------------------------------- report
    def _describe_impl(self) -> dict[str, Any]:
        try:
            version = metadata.version("onnxruntime")
        except metadata.PackageNotFoundError:
            version = None
        d: dict[str, Any] = {
            "provider": self.provider,
            "onnxruntime_version": version
            if version is not None
            else installed_ort_distributions().get("onnxruntime-gpu"),
            "onnxruntime_distributions": installed_ort_distributions(),
            "model": str(self.artifact.path),
            "io_binding": self.provider != "cpu",
            "intra_op_num_threads": self._threads(),
            "inter_op_num_threads": 1,
            "graph_optimization_level": "ORT_ENABLE_ALL",
        }
        d.update(self._session_info)
        warnings = self._warnings or _distribution_warnings()
        if warnings:
            d["warnings"] = warnings
        return d
