"""The one cache of accelkit: a root folder, content keys, verified entries, locks.

Everything accelkit caches (FID reference features, the FID extractor's ONNX export,
INT8 calibration ranges, TensorRT engines and timing caches) lives under one root:
``$ACCELKIT_CACHE_DIR`` or ``~/.cache/accelkit``, one sub-folder per kind.

An entry is keyed by :func:`cache_key` of *everything that shapes its content* (model
bytes, spec, sample count, seed, extractor, tool versions...) and stored with a
manifest recording that key and the sha256 of the stored bytes. :meth:`Cache.lookup`
checks both on every read: an entry whose key or content does not match (a swapped
file, a truncated write, a hand-edited JSON) is deleted with a warning and reported as a
miss, so the caller recomputes it. A cache never crashes a run and never returns a
wrong file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from accelkit.files import atomic_path, sha256_bytes, sha256_file

log = logging.getLogger(__name__)

CACHE_ENV = "ACCELKIT_CACHE_DIR"
#: Bump when the manifest layout changes; older entries are then recomputed.
MANIFEST_SCHEMA = 1
MANIFEST_SUFFIX = ".manifest.json"


def cache_root() -> Path:
    """Root cache folder: ``$ACCELKIT_CACHE_DIR`` or ``~/.cache/accelkit``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "accelkit"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache entry, e.g. ``cache_dir("engines")`` (not created)."""
    return cache_root() / kind


def cache_key(doc: Mapping[str, Any]) -> str:
    """sha256 (64 hex chars) of the canonical JSON of ``doc``: the key of a cache entry.

    ``doc`` must hold everything that changes the cached content; values that are not
    JSON types are written with ``str()``.
    """
    return sha256_bytes(
        json.dumps(doc, sort_keys=True, default=str, separators=(",", ":")).encode()
    )


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], timeout_s: float = 600.0) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the body.

    Used around read-modify-write of shared cache files (a TensorRT timing cache merged by
    two concurrent builds). On systems without ``fcntl`` the body runs unlocked.

    Raises:
        TimeoutError: The lock was not acquired within ``timeout_s``.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"could not lock {lock_path} within {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class Cache:
    """One kind of verified cache entries under the cache root.

    Args:
        kind: Sub-folder name (``drift``, ``calibration``, ``extractor``, ``engines``...).
        folder: Use this folder instead of ``<cache root>/<kind>`` (a user's ``--calib-cache DIR``).
    """

    def __init__(self, kind: str, folder: str | os.PathLike[str] | None = None) -> None:
        self.kind = kind
        self._folder = Path(folder).expanduser() if folder is not None else None

    @property
    def folder(self) -> Path:
        """The folder holding this kind's entries (the cache root is read when used)."""
        return self._folder if self._folder is not None else cache_dir(self.kind)

    def path_for(self, key: str, suffix: str) -> Path:
        """Where the payload of ``key`` lives (whether or not it exists)."""
        return self.folder / f"{key[:32]}{suffix}"

    def _manifest(self, payload: Path) -> Path:
        return payload.with_name(payload.name + MANIFEST_SUFFIX)

    def _discard(self, payload: Path, why: str) -> None:
        log.warning("cache entry %s is %s; it is removed and recomputed", payload, why)
        for p in (payload, self._manifest(payload)):
            with contextlib.suppress(OSError):
                p.unlink()

    def lookup(self, key: str, suffix: str) -> Path | None:
        """The verified payload of ``key``, or None (a miss; broken entries are removed).

        Verification: the manifest exists, is valid JSON of this schema, names exactly
        ``key``, and the payload's sha256 and size equal the recorded ones.
        """
        payload = self.path_for(key, suffix)
        manifest = self._manifest(payload)
        if not payload.is_file():
            if manifest.exists():
                self._discard(payload, "missing its payload")
            return None
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._discard(payload, "unverified (no manifest)")
            return None
        except (OSError, ValueError) as exc:
            self._discard(payload, f"unreadable ({type(exc).__name__})")
            return None
        if (
            not isinstance(doc, dict)
            or doc.get("schema") != MANIFEST_SCHEMA
            or doc.get("key") != key
        ):
            self._discard(payload, "for another key or an old schema")
            return None
        try:
            size_ok = payload.stat().st_size == doc.get("bytes")
            sha_ok = size_ok and sha256_file(payload) == doc.get("sha256")
        except Exception:  # noqa: BLE001 - an unreadable entry is a miss
            sha_ok = False
        if not sha_ok:
            self._discard(payload, "corrupt (content does not match its recorded sha256)")
            return None
        return payload

    @contextlib.contextmanager
    def writing(
        self, key: str, suffix: str, doc: Mapping[str, Any] | None = None
    ) -> Iterator[Path]:
        """Yield a temporary path to write the payload of ``key`` to; commit it on success.

        The payload is renamed into place, then its manifest (key, sha256, size, ``doc``)
        is written: the manifest is the commit mark, so a half-stored entry is never
        served. A store that fails on an ``OSError`` (read-only or full cache) only logs
        a warning: the cache is an optimisation, never a reason for a run to fail.
        """
        import tempfile

        folder = self.folder
        tmpdir = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmpdir = Path(tempfile.mkdtemp(prefix=".store-", dir=folder))
        except OSError as exc:
            log.warning(
                "cache folder %s is not writable (%s); the result is not cached", folder, exc
            )
        work = tmpdir if tmpdir is not None else Path(tempfile.mkdtemp(prefix="accelkit-nocache-"))
        tmp = work / f"payload{suffix}"
        try:
            yield tmp
            if tmpdir is not None and tmp.is_file():
                self._commit(key, suffix, tmp, doc)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _commit(self, key: str, suffix: str, tmp: Path, doc: Mapping[str, Any] | None) -> None:
        payload = self.path_for(key, suffix)
        try:
            with file_lock(self.folder / ".lock"):
                manifest = {
                    "schema": MANIFEST_SCHEMA,
                    "key": key,
                    "sha256": sha256_file(tmp),
                    "bytes": tmp.stat().st_size,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "doc": dict(doc or {}),
                }
                with contextlib.suppress(OSError):
                    self._manifest(payload).unlink()  # uncommit the old entry first
                os.replace(tmp, payload)
                with atomic_path(self._manifest(payload), force=True) as mtmp:
                    mtmp.write_text(
                        json.dumps(manifest, sort_keys=True, default=str, indent=1),
                        encoding="utf-8",
                    )
        except Exception as exc:  # noqa: BLE001 - OSError, StorageError, lock timeout: not cached
            log.warning(
                "could not store cache entry %s (%s); the result is not cached", payload, exc
            )

    def store_file(
        self,
        key: str,
        suffix: str,
        src: str | os.PathLike[str],
        doc: Mapping[str, Any] | None = None,
    ) -> Path | None:
        """Copy ``src`` into the cache as the payload of ``key``; the stored path or None."""
        with self.writing(key, suffix, doc) as tmp:
            try:
                shutil.copyfile(src, tmp)
            except OSError as exc:
                log.warning("could not copy %s into the cache (%s)", src, exc)
        return self.lookup(key, suffix)

    def store_bytes(
        self, key: str, suffix: str, data: bytes, doc: Mapping[str, Any] | None = None
    ) -> Path | None:
        """Store ``data`` as the payload of ``key``; the stored path or None."""
        with self.writing(key, suffix, doc) as tmp:
            tmp.write_bytes(data)
        return self.lookup(key, suffix)
