"""Records that travel with a file: stored specs, sidecars bound to their file, and the loading flags.

* A spec accelkit stores *inside* a file (TorchScript / ``.pt2`` extra file, ONNX and
  safetensors metadata) or in its sidecar lets the next command run with no flags.
* A sidecar is a claim, not an instruction: it is used only when its ``sha256`` is the
  file's own (:func:`bound_sidecar`; otherwise ignored with a one-line note), and an
  architecture it names is followed only when it is a bundled one.
* :class:`LoadRecord`: every flag that shaped loading (``--arch``, ``--arch-kwargs``,
  ``--input``, ``--output-range``, ``--latent-dist``, ``--truncation``, ``--output-shape``,
  ``--hw-range``, ``--trust-code``), recorded in the artifact's ``load`` pass and so in
  every sidecar derived from it; :func:`reproduce_flags` turns it back into the flags a
  printed command must carry, :func:`reference_flags` into the ``--reference`` flags that
  rebuild the FP32 reference of a build.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelkit.errors import LoadError, SpecError
from accelkit.loading.safe_read import MAX_JSON_DEPTH, json_depth
from accelkit.spec import GeneratorSpec

if TYPE_CHECKING:
    from accelkit.artifact import Artifact
    from accelkit.loading.registry import LoadRequest

log = logging.getLogger(__name__)

#: Name of the spec stored inside TorchScript and ``.pt2`` archives that accelkit writes
#: (``_extra_files`` / ``extra_files``): the next command needs no ``--input`` flags.
SPEC_EXTRA_FILE = "accelkit_spec.json"


def spec_extra_files(spec: GeneratorSpec) -> dict[str, str]:
    """``{SPEC_EXTRA_FILE: spec JSON}`` for ``torch.jit.save(..., _extra_files=...)`` / ``torch.export.save(..., extra_files=...)``."""
    return {SPEC_EXTRA_FILE: spec.to_json()}


def stored_spec_text(text: str | bytes | None, path: Path, where: str) -> dict[str, Any] | None:
    """A spec stored with a file, as a dict; None (with a logged note) when unreadable.

    Raises:
        LoadError: Nested deeper than any spec (a hostile file, not a damaged one).
    """
    if not text:
        return None
    try:
        data = json.loads(text)
    except RecursionError:
        raise LoadError(
            f"{path}: the spec stored in {where} is nested deeper than JSON parsing allows; the file is corrupt or hostile: re-save it"
        ) from None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError, ValueError):
        log.warning("%s: ignoring an unreadable spec in %s", path, where)
        return None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise LoadError(
            f"{path}: the spec stored in {where} is nested deeper than {MAX_JSON_DEPTH} levels; the file is corrupt or hostile: re-save it"
        )
    try:
        GeneratorSpec.from_dict(data)
    except (SpecError, TypeError, AttributeError):
        log.warning("%s: ignoring an unreadable spec in %s", path, where)
        return None
    return data  # type: ignore[no-any-return]


def bound_sidecar(path: Path, sha: str) -> dict[str, Any] | None:
    """The sidecar of ``path`` when it describes exactly this file (same sha256), else None.

    A sidecar whose sha256 differs (the file was replaced, or the sidecar copied from
    another file) is ignored with a one-line note: nothing in it is used.

    Raises:
        LoadError: The sidecar is not valid JSON or nested too deeply (exit 2).
    """
    from accelkit.artifact import read_sidecar, sidecar_path

    side = read_sidecar(path)
    if side is None:
        return None
    if side.get("sha256") != sha:
        log.warning(
            "%s does not describe %s (its sha256 %s is not the file's %s); ignoring it",
            sidecar_path(path).name,
            path.name,
            str(side.get("sha256"))[:12] or "missing",
            sha[:12],
        )
        return None
    return side


def matching_sidecar(path: Path, sha: str) -> dict[str, Any] | None:
    """:func:`bound_sidecar` that also holds a spec (a file accelkit wrote: a pruned model)."""
    side = bound_sidecar(path, sha)
    if side is not None and isinstance(side.get("spec"), dict):
        return side
    return None


def path_sha256(path: Path) -> str:
    """sha256 of a file; of a model folder, over its config and weight files (names and bytes), sorted."""
    import hashlib

    from accelkit.files import sha256_file

    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(
        q for q in path.rglob("*") if q.is_file() and q.suffix in (".json", ".safetensors", ".bin")
    ):
        h.update(str(f.relative_to(path)).encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def path_bytes(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(q.stat().st_size for q in path.rglob("*") if q.is_file())


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class LoadRecord:
    """The loading flags a user gave for a generator file (what shaped its spec).

    Attributes:
        arch: ``--arch``.
        arch_kwargs: ``--arch-kwargs``.
        inputs: ``--input`` texts.
        output_range: ``--output-range``.
        latent_dist: ``--latent-dist``.
        truncation: ``--truncation``.
        output_shape: ``--output-shape``.
        hw_range: ``--hw-range`` (``(0, 0, 0)``: ``--dynamic-hw``).
        trust: ``--trust-code``.
    """

    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    output_range: tuple[float, float] | None = None
    latent_dist: str | None = None
    truncation: float | None = None
    output_shape: tuple[int, ...] | None = None
    hw_range: tuple[int, int, int] | None = None
    trust: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The keys recorded in the artifact's ``load`` pass (only flags that were given)."""
        out: dict[str, Any] = {}
        if self.arch:
            out["arch"] = self.arch
            out["arch_kwargs"] = dict(self.arch_kwargs or {})
        if self.inputs:
            out["inputs"] = list(self.inputs)
        if self.output_range is not None:
            out["output_range"] = list(self.output_range)
        if self.latent_dist is not None:
            out["latent_dist"] = self.latent_dist
        if self.truncation is not None:
            out["truncation"] = self.truncation
        if self.output_shape:
            out["output_shape"] = list(self.output_shape)
        if self.hw_range is not None:
            out["hw_range"] = list(self.hw_range)
        out["trust_code"] = self.trust
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> LoadRecord:
        """Read back :meth:`to_dict` (tolerant: a malformed field is dropped, never executed)."""
        d = d if isinstance(d, Mapping) else {}

        def tup(v: Any, n: int | None, kind: type) -> Any:
            if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n):
                return None
            try:
                return tuple(kind(x) for x in v)
            except (TypeError, ValueError):
                return None

        arch = d.get("arch") if isinstance(d.get("arch"), str) else None
        kwargs = d.get("arch_kwargs")
        inputs = d.get("inputs")
        trunc = d.get("truncation")
        dist = d.get("latent_dist")
        return cls(
            arch=arch,
            arch_kwargs=dict(kwargs) if arch and isinstance(kwargs, Mapping) else {},
            inputs=tuple(str(i) for i in inputs) if isinstance(inputs, list) else (),
            output_range=tup(d.get("output_range"), 2, float),
            latent_dist=dist if dist in ("normal", "uniform") else None,
            truncation=float(trunc) if isinstance(trunc, (int, float)) else None,
            output_shape=tup(d.get("output_shape"), 3, int),
            hw_range=tup(d.get("hw_range"), 3, int),
            trust=bool(d.get("trust_code") or d.get("trust_pickle")),
        )

    def arch_flags(self, prefix: str = "--arch") -> list[str]:
        """``[--arch, X, --arch-kwargs, JSON]`` (``prefix="--reference-arch"`` for a reference)."""
        if not self.arch:
            return []
        flags = [prefix, self.arch]
        if self.arch_kwargs:
            flags += [f"{prefix}-kwargs", json.dumps(dict(self.arch_kwargs), sort_keys=True)]
        return flags

    def spec_flags(self) -> list[str]:
        """Every loading flag but the architecture, as separate argv items."""
        flags: list[str] = []
        for text in self.inputs:
            flags += ["--input", text]
        if self.output_range is not None:
            flags.append(f"--output-range={self.output_range[0]:g},{self.output_range[1]:g}")
        if self.latent_dist is not None:
            flags += ["--latent-dist", self.latent_dist]
        if self.truncation is not None:
            flags += ["--truncation", f"{self.truncation:g}"]
        if self.output_shape:
            flags += ["--output-shape", "x".join(str(d) for d in self.output_shape)]
        if self.hw_range is not None:
            flags += (
                ["--dynamic-hw"]
                if tuple(self.hw_range) == (0, 0, 0)
                else ["--hw-range", ":".join(str(d) for d in self.hw_range)]
            )
        return flags

    def flags(self) -> list[str]:
        """All the loading flags (architecture, spec, trust) as separate argv items."""
        return self.arch_flags() + self.spec_flags() + (["--trust-code"] if self.trust else [])


def request_record(req: LoadRequest) -> LoadRecord:
    """The :class:`LoadRecord` of a load request (the flags the user gave)."""
    from accelkit.spec import input_flag

    return LoadRecord(
        arch=req.arch or None,
        arch_kwargs=dict(req.arch_kwargs or {}) if req.arch else {},
        inputs=tuple(input_flag(i) for i in req.inputs),
        output_range=tuple(req.output_range) if req.output_range is not None else None,  # type: ignore[arg-type]
        latent_dist=req.latent_dist,
        truncation=req.truncation_psi,
        output_shape=tuple(int(d) for d in req.output_shape) if req.output_shape else None,
        hw_range=tuple(req.hw_range) if req.hw_range is not None else None,  # type: ignore[arg-type]
        trust=req.trust,
    )


def load_pass_options(req: LoadRequest) -> dict[str, Any]:
    """The options of the ``load`` pass an artifact records: the file, its format and the flags."""
    return {"path": str(req.path), "format": req.format, **request_record(req).to_dict()}


def load_pass(artifact: Artifact) -> dict[str, Any]:
    """The options of the artifact's ``load`` pass (empty when it has none)."""
    for p in artifact.passes:
        if isinstance(p, Mapping) and p.get("name") == "load":
            opts = p.get("options")
            return dict(opts) if isinstance(opts, Mapping) else {}
    return {}


def load_record(artifact: Artifact) -> LoadRecord:
    """The loading flags recorded with an artifact (through every pass and sidecar since)."""
    return LoadRecord.from_dict(load_pass(artifact))


def reproduce_flags(artifact: Artifact) -> list[str]:
    """The loading flags a printed command must carry to load ``artifact``'s source as it was loaded.

    Example: an MLP GAN exported with ``--arch mlp.py:G --output-shape 1x28x28`` gives
    ``["--arch", "mlp.py:G", "--output-shape", "1x28x28"]``. Empty for a file that needed
    no flags. Join them with :func:`shell_join` for a printed command.
    """
    return load_record(artifact).flags()


@dataclass(frozen=True)
class SourceRecord:
    """The generator file an artifact was made from, when it still exists unchanged.

    Attributes:
        path: The file.
        sha256: Its sha256 (the one the artifact records).
        record: How it was loaded.
    """

    path: Path
    sha256: str
    record: LoadRecord


def source_record(artifact: Artifact) -> SourceRecord | None:
    """The source an exported artifact records, when the file is still there with the same sha256.

    Nothing is imported or loaded here: this only says which file and which flags.
    """
    from accelkit.errors import AccelkitError

    if artifact.format == "torch" or not artifact.source or not artifact.source_sha256:
        return None
    src = Path(artifact.source)
    rec = load_pass(artifact)
    if rec.get("format") == "onnx" or not src.exists():
        return None
    try:
        if path_sha256(src) != artifact.source_sha256:
            return None
    except (AccelkitError, OSError):
        return None
    return SourceRecord(src, artifact.source_sha256, LoadRecord.from_dict(rec))


def reference_flags(artifact: Artifact) -> list[str]:
    """Extra flags ``bench BUILD --fid N`` needs to rebuild ``artifact``'s FP32 reference.

    Empty when the build's sidecar is enough (the spec flags travel in it; a bundled
    architecture is followed). A user architecture is never taken from a sidecar, so
    then the user names it: ``--reference SRC --reference-arch module:Class``.
    """
    from accelkit.loading.architectures import is_bundled_architecture

    rec = load_record(artifact)
    if not rec.arch or is_bundled_architecture(rec.arch) or not artifact.source:
        return []
    return ["--reference", str(artifact.source), *rec.arch_flags("--reference-arch")]


def shell_join(argv: Sequence[str]) -> str:
    """argv items as one shell-quoted string (empty for none)."""
    return " ".join(shlex.quote(a) for a in argv)


__all__ = [
    "SPEC_EXTRA_FILE",
    "LoadRecord",
    "SourceRecord",
    "bound_sidecar",
    "load_pass",
    "load_pass_options",
    "path_bytes",
    "path_sha256",
    "load_record",
    "matching_sidecar",
    "reference_flags",
    "reproduce_flags",
    "request_record",
    "shell_join",
    "source_record",
    "spec_extra_files",
    "stored_spec_text",
]
