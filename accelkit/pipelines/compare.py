"""``compare``: the CI gate between a baseline and a current bench report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.pipelines.options import CompareOptions
from accelkit.pipelines.results import Result


@dataclass
class CompareResult(Result):
    """The comparison (verdict per row) and the summary files written."""

    comparison: Any
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 pass (or accepted with allow_unreliable), 1 regression, 3 the gate cannot tell."""
        return int(self.comparison.exit_code)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON."""
        return dict(self.comparison.to_dict())

    def to_text(self) -> str:
        """The verdict table and summary line."""
        return str(self.comparison.to_text()).rstrip("\n")

    def _repr_markdown_(self) -> str:
        return str(self.comparison.to_markdown())


def compare(
    baseline: str | Path | Any, current: str | Path | Any, options: CompareOptions | None = None
) -> CompareResult:
    """Compare two bench reports row by row (bootstrap interval of the speed ratio, FID drift).

    Args:
        baseline, current: ``results.json`` files (or their folders), or :class:`Report` objects.
        options: :class:`CompareOptions` (thresholds, strictness, summary files).

    Returns:
        :class:`CompareResult`; its ``exit_code`` is the gate's verdict.
    """
    from accelkit.benchmark.report import Report
    from accelkit.files import refuse_existing
    from accelkit.gate.compare import compare_files, compare_reports

    opts = (options or CompareOptions()).validated()
    for dest in (opts.markdown, opts.junit):
        if dest is not None:
            refuse_existing(dest, opts.force)
    kw: dict[str, Any] = {
        "max_slowdown": float(opts.max_slowdown),
        "max_fid_drift": opts.max_fid_drift,
        "confidence": opts.confidence,
        "strict": opts.strict,
        "allow_unreliable": opts.allow_unreliable,
    }
    if isinstance(baseline, Report) and isinstance(current, Report):
        comp = compare_reports(baseline, current, **kw)
    else:
        comp = compare_files(Path(baseline), Path(current), **kw)
    files = comp.write(markdown=opts.markdown, junit=opts.junit)
    return CompareResult(comp, files or {})
