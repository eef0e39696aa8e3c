"""File writing that never leaves a half-written artifact, and OS errors as one-line errors.

Every file accelkit writes goes through :func:`atomic_path` (a temporary file in the
destination folder, renamed onto the destination when the body succeeded), so a crash,
a full disk or Ctrl-C leaves either the old file or the new one, never a torn one.
:func:`refuse_existing` is the one check for "that file exists; pass --force".
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from accelkit.errors import InputError, StorageError


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes.

    Raises:
        StorageError: The file cannot be read (missing, permission, I/O error).
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as exc:
        raise storage_error(exc, f"cannot read {path}") from None
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def storage_error(exc: OSError, what: str) -> StorageError:
    """Turn an ``OSError`` into a one-line :class:`StorageError` that names the fix."""
    fixes = {
        errno.ENOSPC: "the disk is full; free some space or write elsewhere",
        errno.EDQUOT: "the disk quota is exceeded; free some space or write elsewhere",
        errno.EFBIG: "the file is larger than this process may write (ulimit -f); raise the limit or write elsewhere",
        errno.EACCES: "permission denied; choose a folder you can write to, or fix its permissions",
        errno.EPERM: "operation not permitted; choose a folder you can write to",
        errno.EROFS: "the file system is read-only; write elsewhere",
        errno.ENOENT: "no such file or folder; check the path",
        errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
        errno.EISDIR: "the path is a folder, not a file; give a file path",
        errno.ENAMETOOLONG: "the file name is too long; choose a shorter path",
    }
    fix = fixes.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return StorageError(f"{what}: {fix}")


def write_serialized(dest: str | os.PathLike[str], serialize: Callable[[BinaryIO], None]) -> None:
    """Serialize into memory, then write the bytes to ``dest`` with Python's file I/O.

    For the writers whose C++ side must never touch the disk: torch's zip archive writer
    (``torch.save``, ``torch.jit.save``, ``torch.export.save``) given a path aborts the
    whole process (``std::terminate``, SIGABRT, a C++ stack dump) when a write fails, on
    a full disk for one, so nothing can clean up its temporary file. Given a buffer it
    cannot fail that way; the Python write below raises an ``OSError`` (``ENOSPC``,
    ``EFBIG``) that :func:`atomic_path` / :meth:`accelkit.artifact.Artifact.save` turn into
    a one-line :class:`~accelkit.errors.StorageError`, removing the temporary file. Costs
    one copy of the file in memory (a generator: megabytes to a few hundred).

    Args:
        dest: The (temporary) file to write.
        serialize: Writes the content to a binary file object, e.g.
            ``lambda f: torch.jit.save(module, f)``.

    Raises:
        OSError: The write failed (disk full, file too large, permission).
    """
    import io
    import shutil

    buf = io.BytesIO()
    serialize(buf)
    data = buf.getbuffer()
    dest = Path(dest)
    free = shutil.disk_usage(dest.parent).free
    if len(data) > free:  # fail before writing a byte
        raise OSError(
            errno.ENOSPC, f"{len(data) / 2**20:.1f} MB to write, {free / 2**20:.1f} MB free"
        )
    with open(dest, "wb") as fh:
        fh.write(data)


#: ``errno`` values of a write that failed for want of space (a full disk, a quota, ``ulimit -f``).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_space_in(exc: BaseException) -> OSError | None:
    """The out-of-space ``OSError`` (:data:`NO_SPACE`) in ``exc``'s cause chain, or None.

    Third-party writers (the torch ONNX exporters among them) wrap the ``OSError`` of a
    full disk in their own exceptions; a caller that turns failures into "this exporter
    failed, try the next" must stop instead and say the disk is full.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in NO_SPACE:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def refuse_existing(dest: str | os.PathLike[str], force: bool = False) -> None:
    """Raise the one-line error for an existing destination unless ``force``.

    :func:`atomic_path` checks this when it writes; commands call it first as well, so a
    long run never starts only to fail at the end.

    Raises:
        InputError: ``dest`` exists and ``force`` is False.
    """
    if Path(dest).exists() and not force:
        raise InputError(
            f"{dest} already exists; pass --force to overwrite it or -o to write elsewhere"
        )


@contextlib.contextmanager
def temp_beside(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path in ``dest``'s folder (same file system, so a later
    ``os.replace`` onto ``dest`` is atomic); whatever is left at that path is removed on exit.

    Raises:
        InputError: ``dest``'s folder does not exist.
        StorageError: The folder is not writable.
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        raise InputError(
            f"output folder {dest.parent} does not exist; create it or choose another -o path"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise storage_error(exc, f"cannot write in {dest.parent}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def publish(tmp: Path, dest: Path) -> None:
    """Give a finished temporary file normal permissions and rename it onto ``dest``.

    Raises:
        StorageError: The rename failed.
    """
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; artifacts get normal file permissions
        os.replace(tmp, dest)
    except OSError as exc:
        raise storage_error(exc, f"cannot write {dest}") from None


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``dest``'s folder; rename it onto ``dest`` on success.

    Nothing is left behind when the body raises (including ``KeyboardInterrupt``), so a
    failed step never leaves a half-written file.

    Raises:
        InputError: ``dest`` exists and ``force`` is False, or its folder is missing.
        StorageError: The folder is not writable, the disk is full, ...
    """
    dest = Path(dest)
    refuse_existing(dest, force)
    with temp_beside(dest) as tmp:
        try:
            yield tmp
        except OSError as exc:
            raise storage_error(exc, f"cannot write {dest}") from None
        publish(tmp, dest)


def write_text_atomic(dest: str | os.PathLike[str], text: str, force: bool = True) -> None:
    """Write a UTF-8 text file through a temp file and a rename (overwrites unless ``force=False``)."""
    with atomic_path(dest, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes, force: bool = True) -> None:
    """Write a binary file through a temp file and a rename (overwrites unless ``force=False``)."""
    with atomic_path(dest, force=force) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold ``<folder>/.accelkit.lock`` for the body; a second holder fails at once.

    Two ``accelkit bench --out D`` runs at the same time would each write half a report
    into ``D``; the second one is refused instead, with a one-line error. When the body
    fails in a folder this call created (a full disk, Ctrl-C), the lock file and the
    folders left empty are removed again: a failed run leaves nothing behind.

    Raises:
        InputError: Another accelkit process holds the lock.
        StorageError: The folder cannot be created or written.
    """
    folder = Path(folder)
    created = not folder.exists()
    lock = folder / ".accelkit.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a+b")
    except OSError as exc:
        if created:
            _remove_empty(folder)
        raise storage_error(exc, f"cannot write in {folder}") from None
    ok = False
    try:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another accelkit process is writing {what} in {folder}; wait for it or choose another --out"
            ) from None
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            pass
        yield
        ok = True
    finally:
        fh.close()
        if created and not ok:
            with contextlib.suppress(OSError):
                lock.unlink()
            _remove_empty(folder)


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` and the folders under it that hold nothing (bottom up); never a file."""
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def publish_group(
    folder: Path, staged: dict[str, Path], last: str | None = None
) -> dict[str, Path]:
    """Move a set of finished temporary files into ``folder`` as one report.

    The old files of the set are removed first (``last`` first of all) and the new ones
    moved in with ``last`` at the end, so a reader that sees ``last`` sees a complete
    set, and a crash in between leaves no mix of old and new files, only a set without
    its ``last`` file.

    Args:
        folder: Destination folder (same file system as the staged files).
        staged: Final file name -> finished temporary file.
        last: The name that marks the set complete (e.g. ``results.json``).

    Returns:
        Final name -> destination path.
    """
    names = [n for n in staged if n != last] + ([last] if last in staged else [])
    try:
        for name in ([last] if last else []) + names:
            (folder / name).unlink(missing_ok=True)
        for name in names:
            publish(staged[name], folder / name)
    except OSError as exc:
        raise storage_error(exc, f"cannot write the report in {folder}") from None
    return {name: folder / name for name in names}
