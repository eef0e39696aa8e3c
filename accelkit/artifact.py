"""Artifacts: a model file (or an in-memory torch module) plus its JSON sidecar.

The sidecar ``<name>.accelkit.json`` records how the artifact was made: format,
precision, generator spec, the chain of passes with their options, verification
numbers, tool versions and the sha256 of the source file, so any number in a report
can be traced back to its build.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from accelkit.errors import InputError, LoadError
from accelkit.files import sha256_file, write_text_atomic
from accelkit.spec import GeneratorSpec

ArtifactFormat = Literal["torch", "onnx", "trt"]
SIDECAR_SUFFIX = ".accelkit.json"
SIDECAR_SCHEMA = 1


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``gen.fp16.onnx`` -> ``gen.fp16.accelkit.json``."""
    p = Path(path)
    return p.with_name(p.stem + SIDECAR_SUFFIX) if p.suffix else p.with_name(p.name + SIDECAR_SUFFIX)


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
        format: ``torch`` (in-memory module), ``onnx`` or ``trt`` (serialized engine).
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

    def sidecar(self) -> dict[str, Any]:
        """The sidecar content as a dict."""
        return {
            "schema_version": SIDECAR_SCHEMA,
            "format": self.format,
            "precision": self.precision,
            "file": self.path.name if self.path else None,
            "sha256": sha256_file(self.path) if self.path and self.path.is_file() else None,
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
        text = json.dumps(_json_safe(self.sidecar()), indent=2, sort_keys=True, default=str, allow_nan=False)
        write_text_atomic(dest, text + "\n")
        return dest


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
        LoadError: The sidecar exists but is not valid JSON.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LoadError(f"sidecar {side} is not valid JSON ({exc}); delete it or re-run accelkit export") from None
    if not isinstance(data, dict):
        raise LoadError(f"sidecar {side} is not a JSON object; delete it or re-run accelkit export")
    return data
