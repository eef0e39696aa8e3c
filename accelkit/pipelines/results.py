"""The result objects pipelines return: each renders itself as text, a dict and Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def fmt_flops(n: int | None) -> str:
    """``1.234 GFLOP`` style, ``unknown`` for None/0."""
    if not n:
        return "unknown"
    for unit, div in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= div:
            return f"{n / div:.3f} {unit}"
    return f"{n} FLOP"


def inferred_notes(spec: Any) -> list[str]:
    """Lines saying what accelkit inferred about a generator's I/O and how (empty when nothing was).

    An inferred value is printed where it is used, with the flag that overrides it.
    """
    notes = dict(getattr(spec, "inferred", ()) or ())
    lines = []
    if "output_range" in notes:
        lo, hi = spec.output_range
        lines.append(
            f"output range [{lo:g}, {hi:g}] inferred from {notes['output_range']}; override with --output-range"
        )
    if "output" in notes:
        lines.append(f"output image taken from the generator's {notes['output']}")
    if "hw_range" in notes:
        lines.append(f"height/width: {notes['hw_range']}")
    return lines


@dataclass
class Result:
    """Base of pipeline results.

    Attributes:
        warnings: One-line warnings for the user (the CLI prints them on stderr).
    """

    warnings: list[str] = field(default_factory=list, kw_only=True)

    #: Process exit code the CLI uses: 0 success, 1 a measured failure (regression, failed row).
    @property
    def exit_code(self) -> int:
        """0 for success; results of gates and benchmarks override it."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        raise NotImplementedError

    def to_text(self) -> str:
        """What the CLI prints (no trailing newline)."""
        raise NotImplementedError

    def _repr_markdown_(self) -> str:
        return "```\n" + self.to_text() + "\n```"

    def __str__(self) -> str:
        return self.to_text()
