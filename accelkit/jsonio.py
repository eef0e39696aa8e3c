"""JSON read from files and flags with a nesting bound: a hostile 100,000-deep document is a
one-line error, never a ``RecursionError`` (core: :mod:`accelkit.artifact` reads sidecars
with it, :mod:`accelkit.loading` configs and stored specs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from accelkit.errors import AccelkitError, InputError, LoadError

#: Deepest JSON nesting accepted anywhere (sidecars ~6, torch.export programs ~20).
MAX_JSON_DEPTH = 200


def json_depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion limit)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        cur, d = stack.pop()
        if isinstance(cur, dict):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in cur.values())
        elif isinstance(cur, list):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in cur)
    return depth


def parse_json(
    text: str | bytes,
    what: str,
    fix: str,
    *,
    error: type[AccelkitError] = LoadError,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """``json.loads`` that fails with one line instead of a traceback.

    Args:
        text: The JSON text.
        what: What it is, for the message (``"sidecar gen.onnx.accelkit.json"``, ``"--arch-kwargs"``).
        fix: How to fix it (end of the message).
        error: The exception class raised (``InputError`` for flags, ``LoadError`` for files).
        max_depth: Deepest nesting accepted.

    Raises:
        AccelkitError: Not JSON, not UTF-8, or nested deeper than ``max_depth``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON ({exc.msg} at column {exc.colno}); {fix}") from None
    except RecursionError:
        raise error(
            f"{what} is nested deeper than JSON parsing allows (over {max_depth} levels); {fix}"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{what} is not valid JSON ({type(exc).__name__}); {fix}") from None
    if json_depth(data) > max_depth:
        raise error(f"{what} is nested deeper than {max_depth} levels; {fix}")
    return data


def read_json_object(path: Path, what: str, fix: str) -> dict[str, Any]:
    """A file holding one JSON object (a sidecar, a ``config.json``), read with :func:`parse_json`.

    Raises:
        LoadError: Unreadable, not JSON, too deep, or not an object (one line ending in ``fix``).
    """
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"{what} is not readable ({exc}); {fix}") from None
    data = parse_json(text, what, fix)
    if not isinstance(data, dict):
        raise LoadError(f"{what} is not a JSON object; {fix}")
    return data


def read_json_file(path: Path, what: str, unreadable_fix: str, invalid_fix: str) -> Any:
    """A JSON file the user names (a ``results.json``, a baseline), or a one-line
    :class:`~accelkit.errors.InputError` saying what is wrong and how to fix it.

    Args:
        path: The file.
        what: How the unreadable-file message names it (``"the ratio baseline "``, or ``""``).
        unreadable_fix: The end of the message when the file cannot be read.
        invalid_fix: The end of the message when it is not JSON (or nested absurdly deep).

    Raises:
        InputError: ``cannot read {what}{path} (...); {unreadable_fix}`` or
            ``{path} is not valid JSON (line N: ...); {invalid_fix}``.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputError(f"cannot read {what}{path} ({why}); {unreadable_fix}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); {invalid_fix}"
        ) from None
    except RecursionError:
        raise InputError(
            f"{path} is not valid JSON (nested deeper than JSON parsing allows); {invalid_fix}"
        ) from None
