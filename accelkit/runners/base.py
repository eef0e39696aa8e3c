"""The Runner interface every backend implements, and the registry of backends.

A runner's constructor is cheap (no sessions, engines or device memory); device work
happens in :meth:`Runner.activate` and is released by :meth:`Runner.deactivate` (or by
leaving the ``with`` block). Subclasses override the ``*_impl`` methods only.

Timing contract (used by the harness): ``prepare(inputs)`` puts a batch on the
device once; ``run(prepared)`` executes and leaves the output on the device;
``synchronize()`` waits for the device; ``to_numpy(output)`` copies back.
``infer(inputs)`` chains the four and returns NCHW float32 in the spec's range.
"""

from __future__ import annotations

import abc
import importlib
from typing import Any, ClassVar

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import AccelkitError, BackendUnavailableError, InputError

#: Short backend name -> "module:Class". Modules are imported only when asked for,
#: so ``import accelkit`` never pulls in onnxruntime, tensorrt or pycuda.
RUNNERS: dict[str, str] = {
    "torch": "accelkit.runners.torch_runner:TorchRunner",
    "ort": "accelkit.runners.ort_runner:OrtRunner",
    "openvino": "accelkit.runners.openvino_runner:OpenVinoRunner",
    "trt": "accelkit.trt.runner:TrtRunner",
}


class Runner(abc.ABC):
    """One backend executing one artifact.

    Args:
        artifact: What to run (the runner says which formats it accepts).
        device: ``cpu`` or ``cuda`` (``cuda:N`` allowed).
        **options: Backend-specific options, recorded by :meth:`describe`.
    """

    #: Registry name, also used in flags and report columns.
    name: ClassVar[str] = ""
    #: Option names the runner accepts; others are an InputError (None: no check).
    OPTIONS: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, artifact: Artifact, device: str = "cpu", **options: Any) -> None:
        self.artifact = artifact
        self.spec = artifact.spec
        self.device = device
        self.options = dict(options)
        self.active = False
        if self.OPTIONS is not None:
            unknown = sorted(set(options) - set(self.OPTIONS))
            if unknown:
                raise InputError(
                    f"unknown {self.name} runner option(s) {unknown}; expected some of {list(self.OPTIONS)}"
                )

    # ----------------------------------------------------------------- availability
    @classmethod
    def availability(cls, device: str = "cpu") -> str | None:
        """None when this backend can run on ``device`` here, else the reason it cannot."""
        return None

    # ---------------------------------------------------------------- public methods
    def activate(self) -> Runner:
        """Acquire sessions, engines and device memory. Idempotent."""
        if not self.active:
            self._activate_impl()
            self.active = True
        return self

    def deactivate(self) -> None:
        """Release everything :meth:`activate` acquired. Idempotent."""
        if self.active:
            try:
                self._deactivate_impl()
            finally:
                self.active = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def prepare(self, inputs: dict[str, np.ndarray]) -> Any:
        """Check a batch against the spec and place it on the device (done once)."""
        self._require_active()
        self._check_inputs(inputs)
        return self._prepare_impl(inputs)

    def run(self, prepared: Any) -> Any:
        """Execute on a prepared batch; the output stays on the device (not synchronized)."""
        return self._run_impl(prepared)

    def synchronize(self) -> None:
        """Wait until all queued device work is done."""
        self._synchronize_impl()

    def to_numpy(self, output: Any) -> np.ndarray:
        """Device output -> NCHW float32 numpy array."""
        return np.ascontiguousarray(self._to_numpy_impl(output), dtype=np.float32)

    def infer(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run one batch end to end.

        Args:
            inputs: Input name -> numpy batch (float32 latents/images, int64 labels).

        Returns:
            NCHW float32 array in ``spec.output_range``, on the host.
        """
        out = self.run(self.prepare(inputs))
        self.synchronize()
        return self.to_numpy(out)

    def describe(self) -> dict[str, Any]:
        """What a report needs to know about this runner (device, threads, options...)."""
        return {
            "backend": self.name,
            "device": self.device,
            "precision": self.precision,
            **self._describe_impl(),
        }

    @property
    def precision(self) -> str:
        """Compute precision this runner uses."""
        return str(self.options.get("precision") or self.artifact.precision)

    # ------------------------------------------------------------------ for subclasses
    @abc.abstractmethod
    def _activate_impl(self) -> None: ...

    def _deactivate_impl(self) -> None:
        return None

    @abc.abstractmethod
    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> Any: ...

    @abc.abstractmethod
    def _run_impl(self, prepared: Any) -> Any: ...

    def _synchronize_impl(self) -> None:
        return None

    @abc.abstractmethod
    def _to_numpy_impl(self, output: Any) -> np.ndarray: ...

    def _describe_impl(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------------ helpers
    def _require_active(self) -> None:
        if not self.active:
            raise AccelkitError(
                f"{type(self).__name__} is not active; use it inside 'with runner:' or call activate()"
            )

    def _check_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        want = self.spec.input_names
        if sorted(inputs) != sorted(want):
            raise InputError(f"inputs {sorted(inputs)} do not match the generator's inputs {want}")
        batch = {v.shape[0] if v.ndim else -1 for v in inputs.values()}
        if len(batch) != 1 or -1 in batch:
            raise InputError(
                f"all inputs need the same leading batch dimension, got shapes { {k: v.shape for k, v in inputs.items()} }"
            )
        for inp in self.spec.inputs:
            got = inputs[inp.name].shape[1:]
            if self.spec.hw_range is not None and inp in self.spec.spatial_inputs and len(got) == 3:
                lo, _, hi = (
                    self.spec.hw_range
                )  # a dynamic-H/W generator takes any size in its range
                if got[0] == inp.shape[0] and lo <= got[1] <= hi and lo <= got[2] <= hi:
                    continue
                raise InputError(
                    f"input {inp.name!r} has per-sample shape {tuple(got)}, expected {inp.shape[0]} x H x W with H, W in {lo}..{hi}"
                )
            if tuple(got) != tuple(inp.shape):
                raise InputError(
                    f"input {inp.name!r} has per-sample shape {tuple(got)}, expected {inp.shape}"
                )


def backend_names() -> tuple[str, ...]:
    """Every registered backend name, in registration order (the vocabulary of ``--backend``)."""
    return tuple(RUNNERS)


def runner_class(name: str) -> type[Runner]:
    """The runner class registered under ``name`` (imports its module on demand).

    Raises:
        InputError: Unknown backend name.
    """
    target = RUNNERS.get(name)
    if target is None:
        raise InputError(f"unknown backend {name!r}; choose one of: {', '.join(RUNNERS)}")
    mod_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    return cls  # type: ignore[no-any-return]


def create_runner(name: str, artifact: Artifact, device: str = "cpu", **options: Any) -> Runner:
    """Instantiate a backend, refusing one this machine cannot run.

    Raises:
        BackendUnavailableError: With what is missing and which backends are available.
    """
    cls = runner_class(name)
    reason = cls.availability(device)
    if reason is not None:
        raise BackendUnavailableError(
            f"backend {name!r} on {device} cannot run here: {reason}; available here: {', '.join(available_backends()) or 'none'}"
        )
    return cls(artifact, device=device, **options)


def available_backends(device: str | None = None) -> list[str]:
    """Names of the backends that can run on this machine (on ``device`` if given)."""
    names = []
    for name in RUNNERS:
        try:
            cls = runner_class(name)
        except ImportError:
            continue
        devices = [device] if device else ["cpu", "cuda"]
        if any(cls.availability(d) is None for d in devices):
            names.append(name)
    return names
