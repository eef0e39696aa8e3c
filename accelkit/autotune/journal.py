"""The search journal: one JSON line per finished step, so a killed search resumes where it stopped.

The first line is a header with the key of everything that shapes the search (generator
sha256, budget, backends, batch, N, seed, extractor...). A journal with another key is
never mixed into this search. Every later line is one event (``speed``, ``quality``,
``artifact``, ``sensitivity``, ``reference``, ``done``), appended and flushed at once; a
torn last line (the process was killed while writing it) is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelkit.errors import InputError
from accelkit.files import storage_error

JOURNAL_SCHEMA = 1


class Journal:
    """An append-only JSON-lines file of search events.

    Args:
        path: The journal file (``<out>/journal.jsonl``).
        key: Key of the search configuration.
        config: The configuration itself (recorded in the header for humans).
        resume: Reuse a journal with the same key; with False an existing journal is an
            error unless ``force`` (then it is started afresh).
        force: Start afresh even when a journal exists.

    Raises:
        InputError: A journal of another search (or one not to resume) exists without ``force``.
    """

    def __init__(
        self,
        path: Path,
        key: str,
        config: dict[str, Any],
        *,
        resume: bool = True,
        force: bool = False,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.events: list[dict[str, Any]] = []
        self._resumed = False
        existing = self._read() if self.path.exists() else None
        if existing is not None and not force:
            header, events = existing
            if header.get("key") != key:
                raise InputError(
                    f"{self.path.parent} holds a search with other options (journal {self.path.name}); pass --force to start "
                    "over or choose another --out"
                )
            if not resume:
                raise InputError(
                    f"{self.path.parent} holds a search journal; resume it (default) or pass --force to start over"
                )
            self.events = events
            self._resumed = bool(events)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as fh:
                fh.write(
                    json.dumps(
                        {"type": "header", "schema": JOURNAL_SCHEMA, "key": key, "config": config},
                        default=str,
                    )
                    + "\n"
                )
        except OSError as exc:
            raise storage_error(exc, f"cannot write the search journal {self.path}") from None

    @property
    def resumed(self) -> bool:
        """True when this search continued an earlier one (the journal held events when opened)."""
        return self._resumed

    def _read(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise storage_error(exc, f"cannot read the search journal {self.path}") from None
        parsed = []
        for ln in lines:
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError:
                break  # a torn last line: the search was killed while writing it
            if isinstance(obj, dict):
                parsed.append(obj)
        if (
            not parsed
            or parsed[0].get("type") != "header"
            or parsed[0].get("schema") != JOURNAL_SCHEMA
        ):
            return ({}, [])
        return parsed[0], parsed[1:]

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event and flush it to disk (fsync) before returning."""
        event = {"type": kind, **fields}
        line = json.dumps(event, default=str, allow_nan=True)
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise storage_error(exc, f"cannot write the search journal {self.path}") from None
        self.events.append(event)
        return event

    def find(self, kind: str, **match: Any) -> dict[str, Any] | None:
        """The last recorded event of ``kind`` whose fields equal ``match``."""
        for ev in reversed(self.events):
            if ev.get("type") == kind and all(ev.get(k) == v for k, v in match.items()):
                return ev
        return None

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every event of ``kind``, in order."""
        return (ev for ev in self.events if ev.get("type") == kind)
