"""The registry of file formats: name -> (detector, loader), so a new family is one module plus a line.

A :class:`FileFormat` says how to recognise a file or folder (``detect``) and how to
load it (``load``). :func:`accelkit.loading.detect_format` asks each registered format in
``priority`` order; :func:`accelkit.loading.load_generator` hands the first match a
:class:`LoadRequest`. A loader returns either

* a :class:`TorchModel` (an ``nn.Module`` plus what it knows of its spec): accelkit then
  infers the rest of the spec, wraps a non-tensor output (:mod:`accelkit.loading.adapters`)
  and builds the torch :class:`~accelkit.artifact.Artifact`; or
* a finished :class:`~accelkit.artifact.Artifact` (ONNX files, or a format with its own
  kind of artifact).

``detect`` and ``load`` may be callables or ``"module:function"`` strings imported on
first use, so a format living in a higher package (``accelkit.diffusion``) registers with
one line here without ``accelkit.loading`` importing it, and an unused format costs
nothing. Detectors must be cheap and import nothing heavy: they run for every file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelkit.spec import GeneratorSpec, InputSpec


@dataclass(frozen=True)
class LoadRequest:
    """Everything a loader gets: the resolved path and the user's loading options.

    Attributes:
        path: The file or folder (resolved: a bundled name is already its file).
        format: The registered format name that claimed it.
        sha256: Of the file's bytes (a folder: of its config and weight files).
        arch: ``--arch`` (``module:Class``, ``file.py:Class`` or a bundled name), or None.
        arch_kwargs: ``--arch-kwargs``.
        inputs: ``--input`` overrides.
        output_range: ``--output-range``.
        latent_dist: ``--latent-dist``.
        truncation_psi: ``--truncation``.
        output_shape: ``--output-shape`` (C, H, W) of a flat output.
        hw_range: ``--hw-range`` / ``--dynamic-hw``.
        trust: ``--trust-code``: run code the file carries (pickles, TorchScript and
            ``torch.export`` archives outside the allow-list).
        arch_class: The class itself when a Python caller passed one as ``arch`` (then
            ``arch`` is its ``module:QualName``, for the record).
    """

    path: Path
    format: str
    sha256: str
    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: Sequence[InputSpec] = ()
    output_range: tuple[float, float] | None = None
    latent_dist: str | None = None
    truncation_psi: float | None = None
    output_shape: Sequence[int] | None = None
    hw_range: tuple[int, int, int] | None = None
    trust: bool = False
    arch_class: type | None = None


@dataclass
class TorchModel:
    """What a loader of a torch format returns; :func:`~accelkit.loading.load_generator` finishes it.

    Attributes:
        module: The generator (``nn.Module``, ``ScriptModule`` or a ``torch.export`` module).
        program: The ``ExportedProgram`` of a ``.pt2`` file, else None.
        stored_spec: A spec accelkit stored with the file (as a dict), used unless the
            user gave ``--input``/``--output-shape``.
        family: The spec a family loader knows by convention (diffusers VAE, spandrel).
        meta: Facts to record in the artifact (architecture, checkpoint key, ...).
        from_sidecar: True when ``stored_spec`` came from the file's sidecar (same sha256).
    """

    module: Any
    program: Any = None
    stored_spec: dict[str, Any] | None = None
    family: GeneratorSpec | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    from_sidecar: bool = False


Detector = Callable[[Path], bool]
Loader = Callable[[LoadRequest], Any]


@dataclass(frozen=True)
class FileFormat:
    """One registered format.

    Attributes:
        name: Short name (recorded as the artifact's ``loader`` and in its sidecar).
        detect: ``path -> bool`` (or ``"module:function"``); may raise
            :class:`~accelkit.errors.LoadError` for a file that is clearly this format but
            broken (a truncated safetensors header).
        load: ``LoadRequest -> TorchModel | Artifact`` (or ``"module:function"``).
        kind: The artifact format it yields (``torch``, ``onnx`` or ``diffusion``): commands that need
            one kind refuse the others before loading anything (:func:`~accelkit.loading.require_format`).
        folder: True for folder formats (diffusers layouts), False for single files.
        priority: Lower runs first; a more specific format goes before a general one
            (a diffusion pipeline folder before the VAE folder inside it).
        description: What the user calls it, for messages.
    """

    name: str
    detect: Detector | str
    load: Loader | str
    kind: str = "torch"
    folder: bool = False
    priority: int = 100
    description: str = ""

    def detector(self) -> Detector:
        """The detect callable (imported on first use when given as a string)."""
        return _resolve(self.detect)  # type: ignore[no-any-return]

    def loader(self) -> Loader:
        """The load callable (imported on first use when given as a string)."""
        return _resolve(self.load)  # type: ignore[no-any-return]


def _resolve(ref: Any) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


_FORMATS: dict[str, FileFormat] = {}


def register_format(fmt: FileFormat, *, replace: bool = False) -> FileFormat:
    """Add a format to the registry (``replace=True`` to override one of the same name).

    Raises:
        ValueError: The name is taken and ``replace`` is False (a programming error).
    """
    if fmt.name in _FORMATS and not replace:
        raise ValueError(f"a file format named {fmt.name!r} is already registered")
    _FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    """Remove a format (tests register temporary ones)."""
    _FORMATS.pop(name, None)


def formats(folder: bool | None = None) -> list[FileFormat]:
    """Registered formats in detection order (only folder or file formats when ``folder`` is set)."""
    _register_builtins()
    found = [f for f in _FORMATS.values() if folder is None or f.folder == folder]
    return sorted(found, key=lambda f: f.priority)


def get_format(name: str) -> FileFormat:
    """The registered format called ``name``.

    Raises:
        KeyError: No such format.
    """
    _register_builtins()
    return _FORMATS[name]


#: The formats accelkit ships. A family in another package registers with one line here
#: (strings: nothing is imported until a file is detected), or by calling
#: :func:`register_format` from a module its caller imports.
BUILTIN_FORMATS: tuple[FileFormat, ...] = (
    FileFormat(
        "diffusion",
        "accelkit.diffusion.kind:detect",
        "accelkit.diffusion.kind:load",
        kind="diffusion",
        folder=True,
        priority=45,
        description="a diffusers pipeline folder (model_index.json + unet/ or transformer/ + scheduler/)",
    ),
    FileFormat(
        "diffusers",
        "accelkit.loading.diffusers_vae:is_vae_folder",
        "accelkit.loading.diffusers_vae:load",
        folder=True,
        priority=50,
        description="a diffusers VAE folder (config.json + diffusion_pytorch_model.safetensors)",
    ),
    FileFormat(
        "pt2",
        "accelkit.loading.detect:is_pt2",
        "accelkit.loading.pt2:load",
        priority=10,
        description="a torch.export archive (.pt2)",
    ),
    FileFormat(
        "torchscript",
        "accelkit.loading.detect:is_torchscript",
        "accelkit.loading.torchscript:load",
        priority=20,
        description="a TorchScript archive",
    ),
    FileFormat(
        "torch_save",
        "accelkit.loading.detect:is_torch_zip",
        "accelkit.loading.checkpoint:load",
        priority=30,
        description="a torch.save checkpoint",
    ),
    FileFormat(
        "safetensors",
        "accelkit.loading.detect:is_safetensors",
        "accelkit.loading.safetensors_file:load",
        priority=40,
        description="a safetensors file",
    ),
    FileFormat(
        "torch_legacy",
        "accelkit.loading.detect:is_torch_legacy",
        "accelkit.loading.checkpoint:load",
        priority=60,
        description="a legacy (non-zip) torch.save checkpoint",
    ),
    FileFormat(
        "onnx",
        "accelkit.loading.detect:is_onnx",
        "accelkit.loading.onnx_file:load",
        kind="onnx",
        priority=70,
        description="an ONNX file",
    ),
)


def _register_builtins() -> None:
    for fmt in BUILTIN_FORMATS:
        _FORMATS.setdefault(fmt.name, fmt)


__all__ = [
    "BUILTIN_FORMATS",
    "FileFormat",
    "LoadRequest",
    "TorchModel",
    "formats",
    "get_format",
    "register_format",
    "unregister_format",
]
