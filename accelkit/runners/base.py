"""The Runner interface every backend implements, and the registry of backends.

A runner's constructor is cheap (no sessions, engines or device memory); device work
happens in :meth:`Runner.activate` and is released by :meth:`Runner.deactivate` (or by
leaving the ``with`` block). Subclasses override the ``*_impl`` methods only.

**What a backend can run** is answered by the backend's own class, once, for every
planner: :meth:`Runner.recipes` takes an :class:`Ask` (the artifact kind the user gave,
a precision, a device, the run's thread count...) and returns either the
:class:`Recipe` s it would run (which derived artifact it needs -- ``torch``,
``onnx-fp32``, ``onnx-int8``... made by :mod:`accelkit.passes.build` --, its runner
options, and the variants it offers: ``compile``, ``channels_last``, ORT's ``tensorrt``
provider...) or a one-line reason it cannot. ``bench``'s plan, ``optimize``'s search
space and the conformance test all ask the registry; none lists backends by name.
A new backend is one runner module plus :func:`register_backend`.

Timing contract (used by the harness): ``prepare(inputs)`` puts a batch on the
device once; ``run(prepared)`` executes and leaves the output on the device;
``synchronize()`` waits for the device; ``to_numpy(output)`` copies back.
``infer(inputs)`` chains the four and returns NCHW float32 in the spec's range.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import AccelkitError, BackendUnavailableError, InputError

#: Short backend name -> "module:Class" (or the class itself). Modules are imported only
#: when asked for, so ``import accelkit`` never pulls in onnxruntime, tensorrt or pycuda.
#: Extend it with :func:`register_backend`.
RUNNERS: dict[str, Any] = {
    "torch": "accelkit.runners.torch_runner:TorchRunner",
    "ort": "accelkit.runners.ort_runner:OrtRunner",
    "openvino": "accelkit.runners.openvino_runner:OpenVinoRunner",
    "trt": "accelkit.trt.runner:TrtRunner",
}


@dataclass(frozen=True)
class Ask:
    """The question every planner asks every backend: can you run this, and how?

    Attributes:
        kind: What the user gave (``Artifact.format``): ``torch``, ``onnx`` or ``trt``.
        precision: The precision of the row or candidate (:data:`accelkit.vocab.PRECISIONS`).
        device: ``cpu`` or ``cuda[:N]``.
        given_precision: The precision of the given file (an int8 ONNX, an fp16 plan...).
        threads: The run's CPU thread count (one policy for every CPU runner), None on CUDA.
        native_bf16: The CPU computes bf16 in hardware (AVX-512 BF16 / AMX).
        scripted: The torch model is TorchScript (``torch.compile`` cannot compile it).
        wants: Optional toggles the user asked for (``channels_last``, ``cuda_graphs``)
            and optional variants to list (``compile``, ``tensorrt``); planners that
            search every variant leave it empty.
        batch_range: ``(min, opt, max)`` batch profile for backends that build for one.
        cache_dir: Folder for the backend's own build cache (TensorRT engines).
        trust_engine: Load plans whose sidecar does not vouch for them.
    """

    kind: str
    precision: str
    device: str = "cpu"
    given_precision: str = "fp32"
    threads: int | None = None
    native_bf16: bool = False
    scripted: bool = False
    wants: frozenset[str] = frozenset()
    batch_range: tuple[int, int, int] | None = None
    cache_dir: str | None = None
    trust_engine: bool = False

    @property
    def cuda(self) -> bool:
        """The device is a CUDA device."""
        return self.device.startswith("cuda")

    def cpu_threads(self) -> dict[str, Any]:
        """``{"threads": n}`` for a CPU runner when the run fixed a count, else ``{}``."""
        return {"threads": self.threads} if self.threads and not self.cuda else {}


@dataclass(frozen=True)
class Recipe:
    """How a backend runs one (kind, precision, device) cell: what to build, how to run it.

    Attributes:
        backend: The registered backend name.
        precision: The row's compute precision.
        source: The artifact the runner takes, made by :class:`accelkit.passes.build.Builder`:
            ``torch`` (the generator itself), ``onnx-fp32`` / ``onnx-fp16`` / ``onnx-int8``,
            or ``given`` (the file as the user gave it, e.g. a TensorRT plan).
        options: Runner options (:func:`create_runner` keyword arguments).
        variant: None for the cell's plain recipe; else the variant's name (``compile``,
            ``channels_last``, ``tensorrt``...), shown in report rows and candidate ids.
        expensive: Costly to try at all (compilation, engine builds): a search tries it last.
        searched: ``optimize`` considers it (False: measurable, but it cannot win here,
            e.g. an fp16 file on a CPU that computes it in f32).
        refused: Why this variant cannot run this artifact (a listed variant that the
            user asked for gets a skipped row with this reason; the search drops it).
        flops_from_fp32: Count FLOPs on the fp32 ONNX (its own file is not ONNX).
    """

    backend: str
    precision: str
    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    variant: str | None = None
    expensive: bool = False
    searched: bool = True
    refused: str | None = None
    flops_from_fp32: bool = False

    @property
    def label(self) -> str:
        """``backend-precision[+variant]``: the candidate id and what a progress line says."""
        return f"{self.backend}-{self.precision}" + (f"+{self.variant}" if self.variant else "")


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
        threads = options.get("threads")
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise InputError(f"{self.name} threads must be a positive integer, got {threads!r}")

    def refusal(self, precision: str, **ask: Any) -> str | None:
        """Why this backend cannot run its artifact at ``precision`` on its device, as
        :meth:`recipes` declares it (the one rule the planners ask too); None when it can.

        Args:
            precision: The compute precision asked for.
            **ask: Further :class:`Ask` fields (``native_bf16``...).
        """
        got = type(self).recipes(
            Ask(
                kind=self.artifact.format,
                precision=precision,
                device=self.device,
                given_precision=self.artifact.precision,
                **ask,
            )
        )
        return got if isinstance(got, str) else None

    def _require_onnx_file(self) -> None:
        """Refuse an artifact that is not an ONNX file on disk (the ONNX backends' input)."""
        a = self.artifact
        if a.format != "onnx" or a.path is None:
            raise InputError(
                f"the {self.name} backend runs ONNX files, got a {a.format!r} artifact"
                f"{' without a path' if a.format == 'onnx' else ''}; export it first (accelkit export) or use --backend torch"
            )

    # ----------------------------------------------------------------- availability
    @classmethod
    def availability(cls, device: str = "cpu") -> str | None:
        """None when this backend can run on ``device`` here, else the reason it cannot."""
        return None

    @classmethod
    def recipe_availability(cls, recipe: Recipe, device: str) -> str | None:
        """None when ``recipe`` can run on ``device`` on this machine, else why (default:
        :meth:`availability`; a backend whose variants need more, e.g. a provider, overrides it)."""
        return cls.availability(device)

    @classmethod
    def recipes(cls, ask: Ask) -> list[Recipe] | str:
        """What this backend runs for ``ask``: its recipes (the plain one first, then its
        variants), or one line saying why it cannot.

        A declaration, not a probe of this machine: whether the backend's libraries and
        device are here is :meth:`availability`'s answer, which planners ask first.
        """
        return f"the {cls.name or cls.__name__} backend declares no recipes"

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


def register_backend(name: str, target: str | type[Runner]) -> None:
    """Register a backend: ``name`` (as flags, reports and candidate ids spell it) -> its
    runner class, or ``"module:Class"`` imported on first use.

    Raises:
        InputError: An empty name, or one with characters flags cannot carry.
    """
    if not name or not name.replace("_", "").isalnum():
        raise InputError(f"backend name {name!r}: use letters, digits and '_'")
    RUNNERS[name] = target


def unregister_backend(name: str) -> None:
    """Remove a registered backend (tests and plug-ins that registered one)."""
    RUNNERS.pop(name, None)


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
    if isinstance(target, type):
        return target
    mod_name, cls_name = str(target).split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    return cls  # type: ignore[no-any-return]


def offers(name: str, ask: Ask) -> list[Recipe] | str:
    """What backend ``name`` offers for ``ask`` on this machine: its recipes, or why not.

    Asks the machine first (:meth:`Runner.availability`), then the backend's declaration
    (:meth:`Runner.recipes`); a runner module that does not import is a reason too.
    """
    try:
        cls = runner_class(name)
    except ImportError as exc:
        return f"the {name} backend's module does not import here ({exc})"
    reason = cls.availability(ask.device)
    if reason is not None:
        return reason
    return cls.recipes(ask)


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
    for name in list(RUNNERS):
        try:
            cls = runner_class(name)
        except ImportError:
            continue
        devices = [device] if device else ["cpu", "cuda"]
        if any(cls.availability(d) is None for d in devices):
            names.append(name)
    return names
