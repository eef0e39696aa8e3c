"""Which row of the current report is which row of the baseline.

Rows are matched by :class:`RowKey`: ``(backend[:variant], precision, batch size,
device)`` (served rows add the server and concurrency to the backend label, so they
never match an in-process row). :func:`match_rows` pairs the two reports' rows, in the
baseline's order, then the rows only the current report has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from accelkit.benchmark.report import BenchRow, Report
from accelkit.errors import InputError


class RowKey(NamedTuple):
    """How rows are matched: backend label (``ort:tensorrt``), precision, batch size, device."""

    backend: str
    precision: str
    batch_size: int
    device: str

    def __str__(self) -> str:
        return f"{self.backend} {self.precision} batch {self.batch_size} on {self.device}"

    @classmethod
    def of(cls, row: BenchRow) -> RowKey:
        """The key of a report row."""
        return cls(row.label, row.precision, int(row.batch_size), row.device)


@dataclass(frozen=True)
class RowPair:
    """One row key and its row on each side (None where that side lacks it)."""

    key: RowKey
    baseline: BenchRow | None
    current: BenchRow | None


def as_report(obj: Report | Mapping[str, Any], where: str) -> Report:
    """A :class:`Report` from a report or its parsed ``results.json``.

    Raises:
        InputError: Anything else, or malformed content (one line).
    """
    if isinstance(obj, Report):
        return obj
    if isinstance(obj, Mapping):
        return Report.from_dict(dict(obj), where)
    raise InputError(
        f"{where} is a {type(obj).__name__}; expected an accelkit results.json (dict or Report)"
    )


def index_rows(report: Report, where: str) -> dict[RowKey, BenchRow]:
    """The report's rows by key.

    Raises:
        InputError: Two rows share a key.
    """
    out: dict[RowKey, BenchRow] = {}
    for row in report.rows:
        key = RowKey.of(row)
        if key in out:
            raise InputError(
                f"{where} has two rows for {key}; rows must be unique per (backend, precision, batch, device), re-run accelkit bench"
            )
        out[key] = row
    return out


def match_rows(
    baseline: Report, current: Report, baseline_name: str, current_name: str
) -> list[RowPair]:
    """Every row key of either report with its rows: the baseline's order, then new keys.

    Raises:
        InputError: A report has two rows with one key.
    """
    bidx, cidx = index_rows(baseline, baseline_name), index_rows(current, current_name)
    pairs = [RowPair(k, b, cidx.get(k)) for k, b in bidx.items()]
    pairs += [RowPair(k, None, c) for k, c in cidx.items() if k not in bidx]
    return pairs


def elsewhere(key: RowKey, keys: Iterable[RowKey], side: str) -> str:
    """Why ``key`` has no counterpart in ``side``'s ``keys``: measured on another device, or absent."""
    others = sorted(
        {
            k.device
            for k in keys
            if (k.backend, k.precision, k.batch_size)
            == (key.backend, key.precision, key.batch_size)
        }
    )
    if others:
        return f"the {side} measured it on {', '.join(others)}, not {key.device} (device mismatch)"
    return f"not in the {side}"


__all__ = ["RowKey", "RowPair", "as_report", "elsewhere", "index_rows", "match_rows"]
