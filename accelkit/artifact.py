"""Artifacts: a model file (or an in-memory torch module) plus its JSON sidecar.

The sidecar ``<file>.accelkit.json`` (``gen.fp16.onnx.accelkit.json``: one per artifact
file) records how the artifact was made: format,
precision, generator spec, the chain of passes with their options, verification
numbers, tool versions and the sha256 of the source file, so any number in a report
can be traced back to its build.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from accelkit.errors import InputError
from accelkit.files import (
    publish,
    refuse_existing,
    sha256_file,
    storage_error,
    temp_beside,
    write_text_atomic,
)
from accelkit.spec import GeneratorSpec

ArtifactFormat = Literal["torch", "onnx", "trt", "diffusion"]
SIDECAR_SUFFIX = ".accelkit.json"
SIDECAR_SCHEMA = 1


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``gen.fp16.onnx`` -> ``gen.fp16.onnx.accelkit.json``: one sidecar per artifact file.

    (``gen.pt``, ``gen.onnx`` and ``gen.plan`` each get their own record.)
    """
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def legacy_sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The name accelkit 0.1 used, shared by every suffix: ``gen.fp16.onnx`` -> ``gen.fp16.accelkit.json``."""
    p = Path(path)
    return (
        p.with_name(p.stem + SIDECAR_SUFFIX) if p.suffix else p.with_name(p.name + SIDECAR_SUFFIX)
    )


def tool_versions() -> dict[str, str | None]:
    """Versions of the packages that shape a build (None where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "accelkit"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


@dataclass
class Artifact:
    """A model at one step of the pipeline.

    Attributes:
        format: ``torch`` (in-memory module), ``onnx``, ``trt`` (serialized engine) or
            ``diffusion`` (a pipeline folder; ``module`` is its
            :class:`~accelkit.diffusion.model.DiffusionModel`).
        spec: The generator's I/O spec.
        path: File backing the artifact (None for a torch module built in memory).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        module: The ``torch.nn.Module`` for torch artifacts; for ONNX artifacts made in
            this process, the torch model they came from (the verification reference).
        program: The ``torch.export.ExportedProgram`` a ``.pt2`` file held (not serialized).
        source: Path of the user's original file.
        source_sha256: sha256 of that file.
        passes: Passes applied so far, each ``{"name": ..., "options": {...}, ...}``.
        meta: Anything else worth recording (loader details, verification, GPU).
    """

    format: ArtifactFormat
    spec: GeneratorSpec
    path: Path | None = None
    precision: str = "fp32"
    module: Any = None
    program: Any = None
    source: str | None = None
    source_sha256: str | None = None
    passes: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """File stem of the source (``gen`` for ``gen.pt``) or ``generator``."""
        if self.source:
            return Path(self.source).name.split(".")[0]
        return "generator"

    def derive(self, **changes: Any) -> Artifact:
        """A new artifact that keeps this one's provenance, with ``changes`` applied."""
        base: dict[str, Any] = dict(
            format=self.format,
            spec=self.spec,
            path=self.path,
            precision=self.precision,
            module=self.module,
            program=self.program,
            source=self.source,
            source_sha256=self.source_sha256,
            passes=[dict(p) for p in self.passes],
            meta=dict(self.meta),
        )
        base.update(changes)
        return Artifact(**base)

    def sidecar(self, sha256: str | None = None) -> dict[str, Any]:
        """The sidecar content as a dict (``sha256``: of the file, computed when not given)."""
        if sha256 is None and self.path is not None and self.path.is_file():
            sha256 = sha256_file(self.path)
        return {
            "schema_version": SIDECAR_SCHEMA,
            "format": self.format,
            "precision": self.precision,
            "file": self.path.name if self.path else None,
            "sha256": sha256,
            "spec": self.spec.to_dict(),
            "source": self.source,
            "source_sha256": self.source_sha256,
            "passes": self.passes,
            "meta": self.meta,
            "versions": tool_versions(),
        }

    def save_sidecar(self) -> Path:
        """Write ``<artifact>.accelkit.json`` next to the file (atomically)."""
        if self.path is None:
            raise InputError("an in-memory artifact has no file to describe; export it first")
        dest = sidecar_path(self.path)
        write_text_atomic(dest, self.sidecar_text())
        return dest

    def sidecar_text(self, sha256: str | None = None) -> str:
        """The sidecar as strict JSON text."""
        return (
            json.dumps(
                _json_safe(self.sidecar(sha256)),
                indent=2,
                sort_keys=True,
                default=str,
                allow_nan=False,
            )
            + "\n"
        )

    def save(self, write: Callable[[Path], None], force: bool = False) -> Artifact:
        """Write the artifact's file and its sidecar as a unit; returns ``self``.

        ``write(tmp)`` writes the file to a temporary path in the destination folder.
        Both files are complete on disk before either is renamed into place; the file is
        renamed first and removed again if the sidecar cannot follow, so an artifact and
        its record land together or not at all (also on Ctrl-C or a full disk).

        Raises:
            InputError: The file exists and ``force`` is False, or its folder is missing.
            StorageError: The folder is not writable or the disk is full.
        """
        if self.path is None:
            raise InputError("an in-memory artifact has no file to write; give it a path")
        dest, side = self.path, sidecar_path(self.path)
        refuse_existing(dest, force)
        with temp_beside(dest) as tmp_file, temp_beside(side) as tmp_side:
            try:
                write(tmp_file)
                tmp_side.write_text(self.sidecar_text(sha256_file(tmp_file)), encoding="utf-8")
            except OSError as exc:
                raise storage_error(exc, f"cannot write {dest}") from None
            publish(tmp_file, dest)
            try:
                publish(tmp_side, side)
            except BaseException:
                dest.unlink(missing_ok=True)
                raise
        return self


def _json_safe(obj: Any) -> Any:
    """Non-finite floats (an infinite PSNR of identical outputs) become null: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of ``path`` as a dict, or None when there is none.

    Raises:
        LoadError: The sidecar exists but is not valid JSON (or is nested absurdly deep).
    """
    side = sidecar_path(path)
    legacy = False
    if not side.is_file():
        side, legacy = legacy_sidecar_path(path), True
        if not side.is_file():
            return None
    from accelkit.jsonio import read_json_object

    data = read_json_object(side, f"sidecar {side}", "delete it or re-run accelkit export")
    if legacy and data.get("file") not in (None, Path(path).name):
        return None  # an old shared-name sidecar that describes another file (gen.onnx's, read for gen.pt)
    return data
