"""Detection: which registered format a path holds, from its bytes (never by loading it).

:func:`resolve_path` turns what the user typed (a path, a bundled name, None) into a
path; :func:`detect_format` asks the registered formats (:mod:`accelkit.loading.registry`)
in priority order; :func:`require_format` lets a command that needs one kind of file
(``build``: ONNX; ``optimize``: a torch generator) refuse any other before a byte of it is
unpickled, compiled or run. The builtin detectors read a file's first bytes and, for zip
archives, their member names.
"""

from __future__ import annotations

import functools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit.errors import InputError, LoadError
from accelkit.files import storage_error
from accelkit.loading.registry import FileFormat, formats

#: What each artifact kind is called in messages.
KIND_NAMES = {
    "onnx": "ONNX",
    "torch": "a torch generator",
    "trt": "a TensorRT engine",
    "diffusion": "a diffusion pipeline folder",
}
#: Longest path shown in a message (a 5,000-character path is cut, not echoed).
SHOWN_PATH = 120


def shown(path: Any) -> str:
    """A path for a one-line message: cut in the middle when very long."""
    text = str(path)
    if len(text) <= SHOWN_PATH:
        return text
    half = SHOWN_PATH // 2 - 1
    return f"{text[:half]}…{text[-half:]} ({len(text):,} characters)"


# ----------------------------------------------------------------------- sniffing
@dataclass(frozen=True)
class Sniff:
    """What the builtin detectors look at: size, first bytes, suffix and zip member names."""

    size: int
    head: bytes
    suffix: str
    names: tuple[str, ...] | None  # None: not a zip archive


@functools.lru_cache(maxsize=16)
def _sniff_cached(path: str, size: int, mtime_ns: int) -> Sniff:
    p = Path(path)
    if size == 0:
        raise LoadError(f"{shown(p)} is empty (0 bytes); re-save or re-download the model file")
    with open(p, "rb") as f:
        head = f.read(16)
    suffix = p.suffix.lower()
    names: tuple[str, ...] | None = None
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(p):
            raise LoadError(
                f"{shown(p)} looks like a torch zip archive but is truncated or corrupt ({size} bytes); re-save or re-download it"
            )
        try:
            with zipfile.ZipFile(p) as zf:
                names = tuple(zf.namelist())
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise LoadError(
                f"{shown(p)} is a corrupt zip archive ({exc}); re-save or re-download it"
            ) from None
        if bad is not None:
            raise LoadError(
                f"{shown(p)} is corrupt (member {bad} fails its checksum); re-save or re-download it"
            )
    return Sniff(size, head, suffix, names)


def sniff(path: Path) -> Sniff:
    """The file's :class:`Sniff` (cached per path, size and modification time).

    Raises:
        LoadError: Empty, or a corrupt zip archive.
        StorageError: Unreadable.
    """
    try:
        st = path.stat()
        return _sniff_cached(str(path), st.st_size, st.st_mtime_ns)
    except OSError as exc:
        raise storage_error(exc, f"cannot read {shown(path)}") from None


def _names(path: Path) -> tuple[str, ...]:
    return sniff(path).names or ()


def is_pt2(path: Path) -> bool:
    """A ``torch.export`` archive (``archive_format`` member, or a 2.x-era ``serialized_exported_program.json``)."""
    s = sniff(path)
    if s.names is None:
        return False
    if any(n.endswith(("/archive_format", "serialized_exported_program.json")) for n in s.names):
        return True
    return s.suffix == ".pt2" and not (is_torchscript(path) or is_torch_zip(path))


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (``constants.pkl`` and ``code/`` sources)."""
    names = _names(path)
    return any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)


def is_torch_zip(path: Path) -> bool:
    """A zip ``torch.save`` file (``data.pkl`` without TorchScript code)."""
    names = _names(path)
    return any(n.endswith("data.pkl") for n in names) and not is_torchscript(path)


def is_safetensors(path: Path) -> bool:
    """A safetensors file (8-byte little-endian header length, then a JSON object).

    Raises:
        LoadError: The header says more bytes than the file has (truncated).
    """
    s = sniff(path)
    if s.names is not None or len(s.head) < 9:
        return False
    (hlen,) = struct.unpack("<Q", s.head[:8])
    if 1 < hlen < min(s.size, 100_000_000) and s.head[8:9] == b"{":
        if 8 + hlen > s.size:
            raise LoadError(
                f"{shown(path)} is a truncated safetensors file (header says {hlen} bytes, file has {s.size}); re-save it"
            )
        return True
    return False


def is_torch_legacy(path: Path) -> bool:
    """A legacy (pre-zip) ``torch.save`` pickle (first byte 0x80, not named .onnx)."""
    s = sniff(path)
    return s.names is None and s.head[:1] == b"\x80" and s.suffix not in (".onnx", ".safetensors")


def is_onnx(path: Path) -> bool:
    """An ONNX protobuf (named ``.onnx``, or starting with the ``ir_version`` field tag)."""
    s = sniff(path)
    return (
        s.names is None
        and s.suffix != ".safetensors"
        and (s.suffix == ".onnx" or s.head[:1] == b"\x08")
    )


# ----------------------------------------------------------------------- detection
def _matching(path: Path) -> FileFormat | None:
    folder = path.is_dir()
    for fmt in formats(folder=folder):
        if fmt.detector()(path):
            return fmt
    return None


def detect_format(path: Path) -> str:
    """Guess a file's format from its bytes (and its suffix where bytes are ambiguous).

    Returns:
        The registered format's name: ``onnx``, ``safetensors``, ``torchscript``, ``pt2``,
        ``torch_save``, ``torch_legacy``, ``diffusers`` (a VAE folder), or one a family
        registered (:func:`~accelkit.loading.registry.register_format`).

    Raises:
        LoadError: The file is empty, truncated or not a model format accelkit knows.
    """
    fmt = _matching(path)
    if fmt is not None:
        return fmt.name
    if path.is_dir():
        raise InputError(_folder_hint(path))
    s = sniff(path)
    if s.names is not None:
        raise LoadError(
            f"{shown(path)} is a zip archive but not a TorchScript, torch.export or torch.save file; export your generator with torch.save/torch.jit.save/torch.export.save"
        )
    if s.suffix == ".safetensors":
        raise LoadError(
            f"{shown(path)} has a .safetensors name but no valid safetensors header; re-save it with safetensors.torch.save_file"
        )
    raise LoadError(
        f"{shown(path)} is not a model file accelkit can read (expected TorchScript, .pt2, ONNX, a torch.save checkpoint or safetensors)"
    )


def format_kind(name: str) -> str:
    """The artifact kind (``torch``, ``onnx``...) a registered format yields."""
    from accelkit.loading.registry import get_format

    return get_format(name).kind


def _folder_hint(path: Path) -> str:
    kinds = "; ".join(f.description for f in formats(folder=True) if f.description)
    return (
        f"{shown(path)} is a folder; give the generator file inside it (e.g. {shown(path / 'gen.pt')})"
        + (f", or one of: {kinds}" if kinds else "")
    )


def resolve_path(path: str | Path | None) -> Path:
    """What the user named -> an existing path: a file, a folder a format claims, or a bundled generator.

    Raises:
        InputError: No such file or bundled name, a folder no format claims, or a path the
            OS refuses (too long, bad characters): one line, the path cut to fit.
        StorageError: A dangling or looping symbolic link.
    """
    from accelkit.models import BUNDLED as FILES
    from accelkit.models import (
        BUNDLED_PIPELINES,
        DEFAULT_GENERATOR,
        bundled_path,
        bundled_pipeline_path,
    )

    BUNDLED = {**FILES, **BUNDLED_PIPELINES}

    if path is None:
        return bundled_path(DEFAULT_GENERATOR)
    try:
        p = Path(path).expanduser()
        exists = p.exists()
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, an embedded NUL byte...
        why = getattr(exc, "strerror", None) or str(exc)
        raise InputError(
            f"cannot use the path {shown(path)}: {why}; give the path of a generator file or a bundled name ({', '.join(BUNDLED)})"
        ) from None
    if exists:
        if p.is_dir() and _matching(p) is None:
            raise InputError(_folder_hint(p))
        return p
    if str(path) in BUNDLED_PIPELINES:
        return bundled_pipeline_path(str(path))
    if str(path) in BUNDLED:
        return bundled_path(str(path))
    if p.is_symlink():  # a dangling or looping link: say what the OS says
        try:
            p.stat()
        except OSError as exc:
            raise storage_error(exc, f"cannot read {shown(p)}") from None
    raise InputError(
        f"no such file: {shown(p)}; give the path of a generator file or a bundled name ({', '.join(BUNDLED)})"
    )


def require_format(source: Any, kinds: tuple[str, ...], fix: str) -> str | None:
    """Refuse, before loading anything, a generator that is not of one of ``kinds``.

    Commands that need one kind of file (``build``, ``quantize`` and ``triton-repo``:
    ONNX; ``optimize``: a torch generator) call this first, so a file of another format
    is never unpickled, compiled or run just to learn it is the wrong one.

    Args:
        source: A path, a bundled name, None (the bundled DCGAN), an object with a
            ``generator`` attribute (``LoadOptions``), or an in-memory artifact (its
            ``format`` is checked).
        kinds: Allowed artifact kinds (``torch``, ``onnx``).
        fix: What to do instead (the end of the message); ``{source}`` is replaced by the path.

    Returns:
        The detected format name (None for an in-memory artifact).

    Raises:
        InputError: The file is of another kind.
    """
    fmt_attr = getattr(source, "format", None)
    if fmt_attr is not None and hasattr(source, "spec"):  # an Artifact
        if fmt_attr not in kinds:
            where = getattr(source, "path", None) or getattr(source, "source", None) or "it"
            raise InputError(f"{shown(where)} is a {fmt_attr} artifact; {fix.format(source=where)}")
        return None
    gen = getattr(source, "generator", source)
    p = resolve_path(None if gen is None else str(gen))
    name = detect_format(p)
    kind = format_kind(name)
    if kind not in kinds:
        from accelkit.loading.registry import get_format

        what = get_format(name).description or name
        wanted = " or ".join(KIND_NAMES.get(k, k) for k in kinds)
        raise InputError(f"{shown(p)} is {what}, not {wanted}; {fix.format(source=p)}")
    return name


__all__ = [
    "Sniff",
    "detect_format",
    "format_kind",
    "is_onnx",
    "is_pt2",
    "is_safetensors",
    "is_torch_legacy",
    "is_torch_zip",
    "is_torchscript",
    "require_format",
    "resolve_path",
    "shown",
    "sniff",
]
