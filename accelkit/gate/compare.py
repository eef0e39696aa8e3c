"""``accelkit compare``: a baseline ``results.json`` against a current one, for CI.

Rows are matched by ``(backend[:variant], precision, batch_size, device)``. For every
matched pair of ``ok`` rows the throughput ratio ``current / baseline`` (ratio of the
median images/sec) is estimated with a bootstrap confidence interval from the per-repeat
samples each row stores (``images_per_sec_samples``), and the row gets one verdict:

``pass``
    The point estimate of the slowdown is within ``max_slowdown`` and the interval is
    no wider than the threshold (and FID drift, when gated, is within ``max_fid_drift``).
``regression``
    The **whole** confidence interval of the ratio lies below ``1 - max_slowdown``
    (see "The rule" below), or the FID drift grew by more than ``max_fid_drift``.
``within-noise``
    The point estimate is slower than ``1 - max_slowdown`` but the interval, no wider
    than ±``max_slowdown``, reaches above it. Not a failure; the reason says so.
``improved``
    The whole interval lies above ``1 + max_slowdown``.
``unreliable``
    The data cannot support a speed verdict (see "Reliability" below): the two runs'
    environments differ, the machine was oversubscribed, a side has too few repeats for
    a noise estimate, or the interval straddles the threshold and is wider than it.
    Exit 0 with a loud summary line, or a failure with ``strict``.
``missing-metric``
    A metric a threshold names is absent or not finite on either side (``fid_drift``
    with ``max_fid_drift``). Always fails: a gate never passes on a number it lacks.
``missing-in-current``
    The baseline has an ``ok`` row the current report lacks or only has as ``skipped``.
``new-in-current``
    The current report has an ``ok`` row with no ``ok`` baseline to compare with.
``failed``
    The current row has ``status: failed`` (NaN output, runner error, out of memory...).
    A build that broke is worse than a slow one, so it always fails the comparison.

Failing closed
--------------
Besides failing rows, the comparison as a whole fails (exit 1, the reason in
:attr:`Comparison.failures` and in the summary line) when it compared nothing: the
current report has no rows, no baseline row has an ``ok`` counterpart (every row
missing, skipped or failed), or the baseline has no ``ok`` row. With ``strict``,
environment differences fail too. The summary line's counts always explain its
status: ``FAIL`` comes with a failing count or a named reason, ``UNRELIABLE`` with
``unreliable`` rows, ``PASS`` with neither.

The rule, and why this one
--------------------------
A row regresses when the slowdown is *beyond the threshold and beyond the noise*. The
two readings the issue allows are

(a) point estimate of the slowdown > ``max_slowdown`` **and** the interval lies entirely
    below 1 (noise cannot explain *a* slowdown), or
(b) the interval's upper bound < ``1 - max_slowdown`` (noise cannot explain a slowdown
    *as small as the threshold*).

accelkit uses (b). With (a), an unchanged build whose run happened to be, say, 6 % slower
with tight repeats is flagged at a 5 % threshold although its interval may reach 0.96
(a 4 % slowdown, inside the threshold, is as compatible with the data as the 6 % one);
(b) flags only what the data say is worse than the threshold. It is a one-sided test of
"slowdown <= max_slowdown" at level ``(1 - confidence) / 2`` (2.5 % for the default
95 % two-sided interval). Its price is power: a true slowdown just above the threshold
is reported as ``within-noise`` until the repeats are tight enough, so the threshold
should sit well below the slowdown you must catch (see
``benchmarks/results/gate_false_alarms.md``, measured on real benches).

What the bootstrap does and does not cover: each side's repeats are resampled with
replacement (``n_boot`` times, seeded, so the verdicts are reproducible), the ratio of
the resampled medians is taken, and the percentile interval at ``confidence`` is
reported. This is the *within-run* noise. When both reports come from one interleaved
run (``accelkit bench --vs``, :func:`accelkit.gate.interleave.measure_interleaved`),
sample *i* of both sides was measured in the same round and whole rounds are resampled
(paired), so what a round's load did to both sides cancels.

Reliability: run-to-run variance
--------------------------------
Across two runs (the usual CI setting: a committed baseline, a new bench), a machine
that is uniformly slower during the whole current run (another job, thermal
throttling, a different instance type) shifts every repeat alike, which no interval
computed from one run can see. So a cross-run comparison checks what it can see of the
run-to-run conditions and marks a speed verdict ``unreliable`` (keeping the statistical
one in :attr:`RowComparison.speed_verdict`) when

* the environments differ (:class:`EnvMismatch`: tool versions, CPU model, cores, GPU,
  thread settings, warm-up or ``min_time_s``; a different number of repeats only
  changes the interval's width and is listed but does not count);
* a row's thread settings differ (``runner.threads`` and the like);
* competition for the CPU differs or was too high: where both rows record their
  ``stability`` block (cores other processes kept busy during the repeats, measured
  from ``/proc/stat``), those differ by more than
  ``max(LOAD_DIFF_MIN, LOAD_DIFF_PER_CORE * cores)`` or a side was ``oversubscribed``;
  otherwise the rows' 1-minute load averages differ by more than that, or one exceeds
  its available cores by more than :data:`BUSY_MARGIN` (on the 2-core machine this was
  measured on, an unchanged build ran 0.3x to 1.6x as fast from one run to the next
  under such load);
* a side has fewer than :data:`~accelkit.gate.stats.MIN_SAMPLES` repeats (no noise
  estimate), or the interval straddles ``1 - max_slowdown`` and its half-width is larger
  than ``max_slowdown`` (the repeats cannot resolve a change the size of the threshold).

The last item applies to interleaved comparisons too; the others only to cross-run
ones. ``unreliable`` neither passes silently nor fails CI on noise: the exit code is 0,
the summary line starts with ``UNRELIABLE`` and names the reasons and the remedy
(``accelkit bench CURRENT --vs BASELINE``), JUnit marks the row ``skipped``; with
``strict`` it fails. What a cross-run comparison cannot promise: equal environments
and loads do not prove equal machine speed (a neighbour on the hypervisor, a throttled
GPU); gate cross-run only on a dedicated runner, one job at a time.

FID drift
---------
Rows of ``accelkit bench --fid N`` carry ``fid_drift`` (FID between the torch fp32
reference's images and this backend's on the same latents, lower is better) and
``noise_floor_fid`` (FID between two fp32 latent sets of the same size); see
``docs/results-schema.md`` and :func:`fid_fields`. With ``max_fid_drift`` set, a row
regresses when ``current - baseline > max_fid_drift`` and the current drift is above its
noise floor (when one is recorded); a drift that is absent or not finite on either side
makes the row ``missing-metric`` (a failure). Without ``max_fid_drift`` FID is shown,
not gated.

Exit codes: :attr:`Comparison.exit_code` is 0 (pass or unreliable) or 1 (a failing row
or a comparison-level failure; with ``strict`` also a missing/new/unreliable row or an
environment difference). Bad input raises :class:`~accelkit.errors.InputError` (the CLI
exits 2). This module never prints and never exits.
"""

from __future__ import annotations

import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from accelkit.benchmark.render import fmt_num as _num
from accelkit.benchmark.report import BenchRow, Report
from accelkit.errors import InputError
from accelkit.files import write_text_atomic
from accelkit.gate.stats import MIN_SAMPLES, bootstrap_ratio, check_bootstrap_settings, row_seed
from accelkit.stats import median

log = logging.getLogger(__name__)

VERDICTS = (
    "pass",
    "regression",
    "within-noise",
    "improved",
    "unreliable",
    "missing-metric",
    "missing-in-current",
    "new-in-current",
    "failed",
)
#: Verdicts that fail the comparison whatever ``strict`` says.
FAILING = ("regression", "failed", "missing-metric")
#: Verdicts that fail it only with ``strict``.
STRICT_FAILING = ("missing-in-current", "new-in-current", "unreliable")
#: What :attr:`Comparison.verdict` can be.
OVERALL = ("pass", "unreliable", "fail")

VERSION_KEYS = ("accelkit", "torch", "onnxruntime", "onnxruntime-gpu", "tensorrt")
SETTINGS_KEYS = ("warmup", "repeats", "min_time_s")
#: Settings whose difference does not bias the median (only the interval's width).
HARMLESS_SETTINGS = ("settings.repeats",)
#: Loads (1-minute averages) "differ" when apart by more than max(LOAD_DIFF_MIN, LOAD_DIFF_PER_CORE x cores).
LOAD_DIFF_MIN = 1.0
LOAD_DIFF_PER_CORE = 0.25
#: A side was oversubscribed when its load exceeded its available cores by more than this.
BUSY_MARGIN = 0.5
#: The command that measures both builds in one process (the remedy for an unreliable verdict).
VS_HINT = "re-run both builds interleaved in one process: accelkit bench CURRENT --vs BASELINE"


# ----------------------------------------------------------------------- thresholds
_FRACTION = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(%?)\s*$")


def parse_fraction(value: str | float | int, what: str = "--max-slowdown") -> float:
    """Parse a threshold given as a percentage (``"5%"``) or a fraction (``"0.05"``).

    Args:
        value: ``"5%"``, ``"0.05"``, ``0.05``. A bare number must be below 1 (``"5"``
            is refused as ambiguous: write ``5%`` or ``0.05``).
        what: The flag's name, for the message.

    Returns:
        The fraction in ``[0, 1)``.

    Raises:
        InputError: Not a number, negative, or not below 100 %.
    """
    if isinstance(value, bool):
        raise InputError(
            f"{what} {value!r} is not a number; give a percentage like 5% or a fraction like 0.05"
        )
    if isinstance(value, (int, float)):
        frac, text = float(value), repr(value)
    else:
        m = _FRACTION.match(str(value))
        if not m:
            raise InputError(
                f"{what} {value!r} is not a number; give a percentage like 5% or a fraction like 0.05"
            )
        num, pct = float(m.group(1)), bool(m.group(2))
        text = str(value).strip()
        if not pct and num >= 1:
            raise InputError(
                f"{what} {text} is ambiguous; write {num:g}% for a percentage or a fraction below 1 like {num / 100:g}"
            )
        frac = num / 100.0 if pct else num
    if not math.isfinite(frac) or frac < 0 or frac >= 1:
        raise InputError(
            f"{what} {text} is out of range; expected 0% <= value < 100% (e.g. 5% or 0.05)"
        )
    return frac


# --------------------------------------------------------------------------- keys
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


# ------------------------------------------------------------------------- results
@dataclass
class RowComparison:
    """The comparison of one row key.

    Attributes:
        key: The matched row.
        verdict: One of :data:`VERDICTS`.
        reason: One line explaining the verdict, with the numbers.
        baseline_ips: Baseline median images/sec (None when missing or not ok).
        current_ips: Current median images/sec (None when missing or not ok).
        ratio: ``current / baseline`` of the median images/sec.
        ci_low: Lower bound of the ratio's bootstrap interval.
        ci_high: Upper bound of the ratio's bootstrap interval.
        n_baseline: Baseline repeats (images/sec samples).
        n_current: Current repeats.
        fid_baseline: Baseline FID drift (lower is better), if recorded.
        fid_current: Current FID drift, if recorded.
        speed_verdict: What the interval alone says (``pass``, ``regression``,
            ``within-noise``, ``improved``, ``unreliable``), None when not compared.
            Differs from ``verdict`` when the row was marked ``unreliable`` for its
            environment or decided by FID.
        fid_regressed: The FID drift grew beyond ``max_fid_drift``.
        unreliable_reasons: Why the speed verdict cannot be trusted (short phrases:
            ``"load 0.2 → 1.9 (2 cores)"``, ``"no noise estimate: ..."``); empty when
            nothing is wrong.
        run_to_run: Some of those reasons are run-to-run ones (environment, threads,
            load), which only measuring both builds in one run (``bench --vs``) removes.
    """

    key: RowKey
    verdict: str
    reason: str
    baseline_ips: float | None = None
    current_ips: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_baseline: int = 0
    n_current: int = 0
    fid_baseline: float | None = None
    fid_current: float | None = None
    speed_verdict: str | None = None
    fid_regressed: bool = False
    unreliable_reasons: list[str] = field(default_factory=list)
    run_to_run: bool = False

    @property
    def change(self) -> float | None:
        """Relative images/sec change, ``ratio - 1`` (−0.2 is 20 % slower)."""
        return None if self.ratio is None else self.ratio - 1.0

    @property
    def compared(self) -> bool:
        """Both sides were measured (``ok``) and their speeds compared."""
        return self.ratio is not None

    def fails(self, strict: bool) -> bool:
        """Whether this row makes the comparison fail."""
        if self.verdict in FAILING:
            return True
        return strict and self.verdict in STRICT_FAILING

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "backend": self.key.backend,
            "precision": self.key.precision,
            "batch_size": self.key.batch_size,
            "device": self.key.device,
            "verdict": self.verdict,
            "reason": self.reason,
            "baseline_images_per_sec": self.baseline_ips,
            "current_images_per_sec": self.current_ips,
            "ratio": self.ratio,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_baseline": self.n_baseline,
            "n_current": self.n_current,
            "fid_drift_baseline": self.fid_baseline,
            "fid_drift_current": self.fid_current,
            "speed_verdict": self.speed_verdict,
            "fid_regressed": self.fid_regressed,
            "unreliable_reasons": list(self.unreliable_reasons),
            "run_to_run": self.run_to_run,
        }


@dataclass(frozen=True)
class EnvMismatch:
    """A difference between the two runs' environments or settings.

    Attributes:
        field: What differs (``torch``, ``tensorrt``, ``gpu``, ``cpu``, ``cpu_cores``,
            ``threads.torch_intra_op``, ``settings.repeats``...).
        baseline: The baseline's value (``None`` shown as ``—``).
        current: The current run's value.
    """

    field: str
    baseline: str | None
    current: str | None

    def __str__(self) -> str:
        return f"{self.field}: {self.baseline or '—'} → {self.current or '—'}"

    @property
    def affects_speed(self) -> bool:
        """Whether this difference can change the measured speed (all but the number of repeats)."""
        return self.field not in HARMLESS_SETTINGS


@dataclass
class Comparison:
    """Everything :func:`compare_reports` found.

    Attributes:
        rows: One entry per row key, in the baseline's order, then rows new in current.
        env_mismatches: Differences in versions, hardware, threads and measurement settings.
        notes: Other facts worth reporting (rows skipped on both sides...).
        failures: Comparison-level reasons to fail whatever the rows say (nothing was
            compared); one line each.
        max_slowdown: Threshold as a fraction (0.05).
        max_fid_drift: Allowed FID drift increase, None when not compared.
        confidence: Two-sided coverage of the intervals.
        n_boot: Bootstrap resamples per row.
        seed: Bootstrap seed.
        strict: Whether missing/new/unreliable rows and environment differences fail.
        interleaved: Both reports come from one interleaved run (paired intervals; no
            run-to-run checks).
        baseline_name: How the baseline is named in output (its path).
        current_name: How the current report is named in output.
        baseline_created: The baseline's ``created`` timestamp.
        current_created: The current report's ``created`` timestamp.
    """

    rows: list[RowComparison]
    env_mismatches: list[EnvMismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    max_slowdown: float = 0.05
    max_fid_drift: float | None = None
    confidence: float = 0.95
    n_boot: int = 2000
    seed: int = 0
    strict: bool = False
    interleaved: bool = False
    baseline_name: str = "baseline"
    current_name: str = "current"
    baseline_created: str | None = None
    current_created: str | None = None

    # ---------------------------------------------------------------- summary
    def counts(self) -> dict[str, int]:
        """Number of rows per verdict (every verdict present, zeros included)."""
        out = {v: 0 for v in VERDICTS}
        for r in self.rows:
            out[r.verdict] += 1
        return out

    @property
    def failing_rows(self) -> list[RowComparison]:
        """Rows that make the comparison fail (given ``strict``)."""
        return [r for r in self.rows if r.fails(self.strict)]

    @property
    def problems(self) -> list[str]:
        """Comparison-level reasons it fails: :attr:`failures`, plus environment differences under ``strict``."""
        out = list(self.failures)
        if self.strict and self.env_mismatches:
            out.append(
                f"environments differ ({'; '.join(str(m) for m in self.env_mismatches)}) and --strict is set"
            )
        return out

    @property
    def verdict(self) -> str:
        """``fail`` (exit 1), ``unreliable`` (exit 0, no trustworthy speed verdict for some row) or ``pass``."""
        if self.failing_rows or self.problems:
            return "fail"
        if any(r.verdict == "unreliable" for r in self.rows):
            return "unreliable"
        return "pass"

    @property
    def passed(self) -> bool:
        """True when :attr:`exit_code` is 0 (``pass`` or, without ``strict``, ``unreliable``)."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """0 unless :attr:`verdict` is ``fail`` (2, bad input, is raised as InputError instead)."""
        return 1 if self.verdict == "fail" else 0

    def unreliable_summary(self) -> str:
        """Why rows are unreliable, the distinct reasons joined (at most four, then ``…``)."""
        seen: dict[str, None] = {}
        for r in self.rows:
            if r.verdict == "unreliable":
                for why in r.unreliable_reasons:
                    seen.setdefault(why, None)
        whys = list(seen)
        return "; ".join(whys[:4]) + ("; …" if len(whys) > 4 else "")

    def remedy(self) -> str:
        """What to do about unreliable rows: measure both builds in one run, or measure longer."""
        if any(r.run_to_run for r in self.rows if r.verdict == "unreliable"):
            return VS_HINT
        return "re-run with more --repeats (or on a quieter machine)"

    def summary_line(self) -> str:
        """One line: PASS/UNRELIABLE/FAIL, the verdict counts, and what the status rests on."""
        c = self.counts()
        parts = [f"{n} {v}" for v, n in c.items() if n]
        counts = ", ".join(parts) or "no rows"
        verdict = self.verdict
        if verdict == "fail":
            failing = len(self.failing_rows)
            why = (
                [
                    f"{failing} failing row{'s' if failing != 1 else ''}"
                    + (
                        " (--strict)"
                        if self.strict
                        and any(r.verdict in STRICT_FAILING for r in self.failing_rows)
                        else ""
                    )
                ]
                if failing
                else []
            )
            why += self.problems
            return f"FAIL: {counts} — {'; '.join(why)}"
        extra = ""
        if self.env_mismatches:
            n = len(self.env_mismatches)
            extra = f"; {n} environment difference{'s' if n != 1 else ''}"
        if verdict == "unreliable":
            return (
                f"UNRELIABLE (exit 0; --strict fails it): {counts}{extra} — no trustworthy speed verdict: "
                f"{self.unreliable_summary()}; {self.remedy()}"
            )
        return f"PASS: {counts}{extra}"

    def rule_text(self) -> str:
        """The decision rule with this comparison's numbers, one sentence."""
        pct = _pct_abs(self.max_slowdown)
        conf = f"{self.confidence * 100:g}%"
        text = (
            f"A row regresses when the whole {conf} bootstrap interval of current/baseline images/sec "
            f"(ratio of medians over the stored repeats, {self.n_boot} resamples) lies below {1 - self.max_slowdown:.3g} "
            f"(slower than the {pct} threshold beyond the measured noise); a slower point estimate whose interval "
            f"reaches the threshold is within-noise, or unreliable when the interval is wider than ±{pct}; a failed row always fails"
        )
        if not self.interleaved:
            text += (
                "; across two runs a speed verdict is unreliable when the environments, thread settings or loads differ, "
                "or a machine was oversubscribed (the interval cannot see run-to-run changes)"
            )
        if self.max_fid_drift is not None:
            text += f"; the FID drift may grow by at most {self.max_fid_drift:g}"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for tools that want the verdicts as data)."""
        return {
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "summary": self.summary_line(),
            "counts": self.counts(),
            "failures": self.problems,
            "interleaved": self.interleaved,
            "settings": {
                "max_slowdown": self.max_slowdown,
                "max_fid_drift": self.max_fid_drift,
                "confidence": self.confidence,
                "n_boot": self.n_boot,
                "seed": self.seed,
                "strict": self.strict,
            },
            "baseline": {"name": self.baseline_name, "created": self.baseline_created},
            "current": {"name": self.current_name, "created": self.current_created},
            "rows": [r.to_dict() for r in self.rows],
            "environment_mismatches": [
                {"field": m.field, "baseline": m.baseline, "current": m.current}
                for m in self.env_mismatches
            ],
            "notes": list(self.notes),
        }

    # ---------------------------------------------------------------- output
    def _cells(self, r: RowComparison) -> list[str]:
        conf = "—"
        if r.ci_low is not None and r.ci_high is not None:
            conf = f"{_pct(r.ci_low - 1)} … {_pct(r.ci_high - 1)}"
        fid = "—"
        if r.fid_baseline is not None or r.fid_current is not None:
            fid = f"{_num(r.fid_baseline)} → {_num(r.fid_current)}"
        return [
            f"{r.key.backend} {r.key.precision}",
            str(r.key.batch_size),
            r.key.device,
            _num(r.baseline_ips),
            _num(r.current_ips),
            _pct(r.change) if r.change is not None else "—",
            conf,
            fid,
            r.verdict,
        ]

    def _headers(self) -> list[str]:
        return [
            "row",
            "batch",
            "device",
            "baseline img/s",
            "current img/s",
            "change",
            f"{self.confidence * 100:g}% CI of change",
            "FID drift",
            "verdict",
        ]

    def to_text(self) -> str:
        """A plain-text table for a terminal (no colour codes), then differences and the summary."""
        headers = self._headers()
        body = [self._cells(r) for r in self.rows]
        widths = [
            max(len(h), *(len(row[i]) for row in body)) if body else len(h)
            for i, h in enumerate(headers)
        ]
        right = {1, 3, 4, 5}

        def fmt(cells: list[str]) -> str:
            return "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        lines = [
            f"baseline: {self.baseline_name}"
            + (f" ({self.baseline_created})" if self.baseline_created else "")
        ]
        lines.append(
            f"current:  {self.current_name}"
            + (f" ({self.current_created})" if self.current_created else "")
        )
        lines.append("")
        lines.append(fmt(headers))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(fmt(c) for c in body)
        if not body:
            lines.append("(no rows to compare)")
        lines.append("")
        for r in self.rows:
            if r.verdict != "pass":
                lines.append(f"{r.verdict}: {r.key}: {r.reason}")
        if self.env_mismatches:
            lines.append(
                "environment differences"
                + (
                    " (fail with --strict):"
                    if self.strict
                    else " (speed verdicts across them are unreliable; --strict fails them):"
                )
            )
            lines.extend(f"  {m}" for m in self.env_mismatches)
        lines.extend(f"failure: {f}" for f in self.problems)
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(self.rule_text())
        lines.append(self.summary_line())
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        """A Markdown summary for a CI job summary or a PR comment."""
        icon = {
            "pass": "✅",
            "regression": "❌",
            "within-noise": "〰️",
            "improved": "🚀",
            "unreliable": "⚠️",
            "missing-metric": "❓",
            "missing-in-current": "❔",
            "new-in-current": "🆕",
            "failed": "💥",
        }
        head = {
            "pass": "✅ no performance regression",
            "unreliable": "⚠️ unreliable: no trustworthy speed verdict",
            "fail": "❌ performance regression" if not self.problems else "❌ gate failed",
        }[self.verdict]
        lines = [f"## accelkit compare: {head}", ""]
        lines.append(f"**{self.summary_line()}**")
        lines.append("")
        lines.append(
            f"Baseline `{_md(self.baseline_name)}`"
            + (f" ({self.baseline_created})" if self.baseline_created else "")
            + f" vs current `{_md(self.current_name)}`"
            + (f" ({self.current_created})" if self.current_created else "")
            + "."
        )
        lines.append("")
        headers = self._headers()
        lines.append("| " + " | ".join(headers) + " |")
        lines.append(
            "|"
            + "|".join(["---", "---:", "---", "---:", "---:", "---:", "---", "---", "---"])
            + "|"
        )
        for r in self.rows:
            cells = self._cells(r)
            cells[-1] = f"{icon.get(r.verdict, '')} {r.verdict}".strip()
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        if not self.rows:
            lines.append("| (no rows) |  |  |  |  |  |  |  |  |")
        if self.problems:
            lines += ["", "### Failures", ""]
            lines += [f"- {_md(f)}" for f in self.problems]
        details = [r for r in self.rows if r.verdict != "pass"]
        if details:
            lines += ["", "### Details", ""]
            lines += [f"- **{_md(str(r.key))}** — {r.verdict}: {_md(r.reason)}" for r in details]
        if self.env_mismatches:
            lines += [
                "",
                "### Environment differences"
                + (
                    " (failing: `--strict`)"
                    if self.strict
                    else " (speed verdicts across them are unreliable; `--strict` fails them)"
                ),
                "",
            ]
            lines += ["| what | baseline | current |", "|---|---|---|"]
            lines += [
                f"| {_md(m.field)} | {_md(m.baseline or '—')} | {_md(m.current or '—')} |"
                for m in self.env_mismatches
            ]
        if self.notes:
            lines += ["", "### Notes", ""]
            lines += [f"- {_md(n)}" for n in self.notes]
        lines += ["", f"<sub>{_md(self.rule_text())}</sub>", ""]
        return "\n".join(lines)

    def to_junit(self) -> str:
        """JUnit XML: one ``testcase`` per row plus one for the environment.

        Failing rows (regression, failed, missing-metric) are ``failure`` elements;
        missing, new and unreliable rows are ``skipped`` with the reason (``failure`` with
        ``strict``); environment differences are a ``failure`` of the ``environment``
        test case with ``strict``, else its output; comparison-level failures (nothing
        compared) are a ``failure`` of the ``coverage`` test case.
        """
        suite = ET.Element("testsuite", name="accelkit.compare")
        props = ET.SubElement(suite, "properties")
        for k, v in (
            ("baseline", self.baseline_name),
            ("current", self.current_name),
            ("max_slowdown", f"{self.max_slowdown:g}"),
            ("max_fid_drift", "" if self.max_fid_drift is None else f"{self.max_fid_drift:g}"),
            ("confidence", f"{self.confidence:g}"),
            ("strict", str(self.strict).lower()),
        ):
            ET.SubElement(props, "property", name=k, value=v)
        n_fail = n_skip = 0
        for r in self.rows:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"accelkit.perf.{r.key.backend}.{r.key.precision}",
                name=f"batch {r.key.batch_size} on {r.key.device}",
                time="0",
            )
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"{k}: {v}" for k, v in r.to_dict().items() if v is not None)
            if r.fails(self.strict):
                n_fail += 1
                failure = ET.Element("failure", message=f"{r.verdict}: {r.reason}", type=r.verdict)
                failure.text = r.reason
                case.insert(0, failure)
            elif r.verdict in STRICT_FAILING:
                n_skip += 1
                case.insert(0, ET.Element("skipped", message=f"{r.verdict}: {r.reason}"))
        cov_case = ET.SubElement(
            suite, "testcase", classname="accelkit.perf", name="coverage", time="0"
        )
        if self.failures:
            n_fail += 1
            fail = ET.SubElement(
                cov_case, "failure", message="; ".join(self.failures), type="coverage"
            )
            fail.text = "\n".join(self.failures)
        else:
            n_cmp = sum(1 for r in self.rows if r.compared)
            ET.SubElement(
                cov_case, "system-out"
            ).text = f"{n_cmp} of {len(self.rows)} rows compared on both sides"
        env_case = ET.SubElement(
            suite, "testcase", classname="accelkit.perf", name="environment", time="0"
        )
        if self.env_mismatches:
            text = "; ".join(str(m) for m in self.env_mismatches)
            if self.strict:
                n_fail += 1
                fail = ET.SubElement(
                    env_case, "failure", message=f"environment differs: {text}", type="environment"
                )
                fail.text = "\n".join(str(m) for m in self.env_mismatches)
            else:
                ET.SubElement(
                    env_case, "system-out"
                ).text = f"environment differs (speed verdicts unreliable; not failing without --strict): {text}"
        n_tests = len(self.rows) + 2
        suite.set("tests", str(n_tests))
        suite.set("failures", str(n_fail))
        suite.set("errors", "0")
        suite.set("skipped", str(n_skip))
        suite.set("time", "0")
        root = ET.Element(
            "testsuites",
            name="accelkit compare",
            tests=str(n_tests),
            failures=str(n_fail),
            errors="0",
            skipped=str(n_skip),
            time="0",
        )
        root.append(suite)
        ET.indent(root)
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            + ET.tostring(root, encoding="unicode")
            + "\n"
        )

    def write(
        self,
        *,
        markdown: str | os.PathLike[str] | None = None,
        junit: str | os.PathLike[str] | None = None,
    ) -> dict[str, Path]:
        """Write the Markdown summary and/or the JUnit XML, each atomically (temp file + rename).

        Args:
            markdown: Destination of :meth:`to_markdown` (``--markdown FILE``), or None.
            junit: Destination of :meth:`to_junit` (``--junit FILE``), or None.

        Returns:
            ``{"markdown": path, "junit": path}`` for what was written.

        Raises:
            InputError: A destination cannot be written (one line).
        """
        written: dict[str, Path] = {}
        for kind, dest, text in (
            ("markdown", markdown, self.to_markdown),
            ("junit", junit, self.to_junit),
        ):
            if dest is None:
                continue
            p = Path(dest)
            try:
                if p.parent != Path(""):
                    p.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(p, text())
            except OSError as exc:
                raise InputError(
                    f"cannot write --{kind} {p} ({exc.strerror or exc}); choose a writable path"
                ) from None
            written[kind] = p
        return written


# ------------------------------------------------------------------------ helpers
def _pct(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v * 100:+.1f}%"


def _pct_abs(v: float) -> str:
    return f"{v * 100:g}%"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _as_report(obj: Report | Mapping[str, Any], where: str) -> Report:
    if isinstance(obj, Report):
        return obj
    if isinstance(obj, Mapping):
        return Report.from_dict(dict(obj), where)
    raise InputError(
        f"{where} is a {type(obj).__name__}; expected an accelkit results.json (dict or Report)"
    )


def _index(report: Report, where: str) -> dict[RowKey, BenchRow]:
    out: dict[RowKey, BenchRow] = {}
    for row in report.rows:
        key = RowKey.of(row)
        if key in out:
            raise InputError(
                f"{where} has two rows for {key}; rows must be unique per (backend, precision, batch, device), re-run accelkit bench"
            )
        out[key] = row
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def fid_fields(row: BenchRow) -> tuple[float | None, float | None]:
    """``(fid_drift, noise_floor_fid)`` of a row (``bench --fid N``; see ``docs/results-schema.md``).

    Reads the row fields ``fid_drift`` and ``noise_floor_fid``; for files from other
    writers also ``fid_drift``/``fid_noise_floor`` kept in ``extra`` or under a
    ``quality`` object.
    """
    extra = row.extra or {}
    raw_q = getattr(row, "quality", None) or extra.get("quality")
    q: Mapping[str, Any] = raw_q if isinstance(raw_q, Mapping) else {}
    drift = _number(getattr(row, "fid_drift", None))
    for cand in (extra.get("fid_drift"), q.get("fid_drift")):
        if drift is None:
            drift = _number(cand)
    floor = _number(getattr(row, "noise_floor_fid", None))
    for cand in (
        extra.get("noise_floor_fid"),
        extra.get("fid_noise_floor"),
        q.get("noise_floor_fid"),
        q.get("fid_noise_floor"),
    ):
        if floor is None:
            floor = _number(cand)
    return drift, floor


def _median(row: BenchRow) -> float | None:
    if row.images_per_sec_samples:
        return median(row.images_per_sec_samples)
    return _number(row.images_per_sec)


def _env_mismatches(base: Report, cur: Report) -> list[EnvMismatch]:
    out: list[EnvMismatch] = []
    be, ce = base.environment or {}, cur.environment or {}
    bv, cv = be.get("versions") or {}, ce.get("versions") or {}
    for k in VERSION_KEYS:
        a, b = bv.get(k), cv.get(k)
        if a != b:
            out.append(EnvMismatch(k, None if a is None else str(a), None if b is None else str(b)))

    def gpus(env: Mapping[str, Any]) -> str | None:
        names = [str(g.get("name", "?")) for g in env.get("gpus") or [] if isinstance(g, Mapping)]
        return ", ".join(names) or None

    def cpu(env: Mapping[str, Any], k: str) -> str | None:
        c = env.get("cpu") or {}
        v = c.get(k) if isinstance(c, Mapping) else None
        return None if v is None else str(v)

    for name, a, b in (
        ("gpu", gpus(be), gpus(ce)),
        ("cpu", cpu(be, "model"), cpu(ce, "model")),
        ("cpu_cores", cpu(be, "available_cores"), cpu(ce, "available_cores")),
    ):
        if a != b:
            out.append(EnvMismatch(name, a, b))
    bt, ct = be.get("threads") or {}, ce.get("threads") or {}
    if isinstance(bt, Mapping) and isinstance(ct, Mapping):
        for k in sorted(set(bt) | set(ct)):
            a, b = bt.get(k), ct.get(k)
            if a != b:
                out.append(
                    EnvMismatch(
                        f"threads.{k}", None if a is None else str(a), None if b is None else str(b)
                    )
                )
    for k in SETTINGS_KEYS:
        a, b = base.settings.get(k), cur.settings.get(k)
        if a is not None and b is not None and a != b:
            out.append(EnvMismatch(f"settings.{k}", str(a), str(b)))
    return out


def _cores(report: Report) -> int | None:
    cpu = (report.environment or {}).get("cpu") or {}
    if not isinstance(cpu, Mapping):
        return None
    for k in ("available_cores", "logical_cores"):
        v = cpu.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _load(row: BenchRow, report: Report) -> float | None:
    """The row's 1-minute load average when it was measured, else the report's when it was created."""
    v = _number(row.load_average_1m)
    if v is not None:
        return v
    cpu = (report.environment or {}).get("cpu") or {}
    la = cpu.get("load_average") if isinstance(cpu, Mapping) else None
    return _number(la[0]) if isinstance(la, (list, tuple)) and la else None


def _contention(row: BenchRow) -> tuple[float | None, bool | None, int | None]:
    """``(busy cores of other processes, oversubscribed, cpus)`` measured during the row (``stability``), where recorded."""
    st = getattr(row, "stability", None)
    if not isinstance(st, Mapping):
        st = (row.extra or {}).get("stability")
    if not isinstance(st, Mapping):
        return None, None, None
    over = st.get("oversubscribed")
    cpus = st.get("cpus")
    return (
        _number(st.get("busy_cores_others")),
        over if isinstance(over, bool) else None,
        cpus if isinstance(cpus, int) else None,
    )


def _run_to_run_reasons(
    b: BenchRow, c: BenchRow, base: Report, cur: Report, env_reasons: list[str]
) -> list[str]:
    """Why two runs' measurements of one row cannot be compared as if the machine were the same (short phrases).

    Competition for the CPU is read from the rows' ``stability`` block (other processes'
    busy cores measured during the repeats) where both rows have it, else from the
    1-minute load averages (which also count the bench's own threads).
    """
    out = list(env_reasons)
    bt = (
        {k: v for k, v in b.runner.items() if "thread" in str(k)}
        if isinstance(b.runner, Mapping)
        else {}
    )
    ct = (
        {k: v for k, v in c.runner.items() if "thread" in str(k)}
        if isinstance(c.runner, Mapping)
        else {}
    )
    for k in sorted(set(bt) | set(ct)):
        if bt.get(k) != ct.get(k):
            out.append(f"runner {k} {bt.get(k, '—')} → {ct.get(k, '—')}")
    kb, kc = _cores(base), _cores(cur)
    (ob, overb, cpb), (oc, overc, cpc) = _contention(b), _contention(c)
    cores = kc or kb or cpc or cpb
    allowed = max(LOAD_DIFF_MIN, LOAD_DIFF_PER_CORE * cores) if cores else LOAD_DIFF_MIN
    if ob is not None and oc is not None:
        if abs(ob - oc) > allowed:
            out.append(
                f"other processes' busy cores {ob:.1f} → {oc:.1f}"
                + (f" ({cores} cores)" if cores else "")
            )
    else:
        lb, lc = _load(b, base), _load(c, cur)
        if lb is not None and lc is not None and abs(lb - lc) > allowed:
            out.append(f"load {lb:.1f} → {lc:.1f}" + (f" ({cores} cores)" if cores else ""))
    for side, row, rep, over, others, cpus, ncores in (
        ("baseline", b, base, overb, ob, cpb, kb),
        ("current", c, cur, overc, oc, cpc, kc),
    ):
        if over is not None:
            if over:
                out.append(
                    f"{side} oversubscribed while measured (others kept {others or 0:.1f} of {cpus or ncores or '?'} cores busy)"
                )
            continue
        load = _load(row, rep)
        if load is not None and ncores and load > ncores + BUSY_MARGIN:
            out.append(f"{side} machine oversubscribed (load {load:.1f} on {ncores} cores)")
    return out


# ------------------------------------------------------------------------ compare
def _speed(
    key: RowKey,
    b: BenchRow,
    c: BenchRow,
    max_slowdown: float,
    confidence: float,
    n_boot: int,
    seed: int,
    paired: bool,
) -> RowComparison:
    """The interval's verdict for one row (no environment checks)."""
    bs = b.images_per_sec_samples or [b.images_per_sec or 0.0]
    cs = c.images_per_sec_samples or [c.images_per_sec or 0.0]
    est = bootstrap_ratio(
        cs,
        bs,
        confidence=confidence,
        n_boot=n_boot,
        seed=row_seed(seed, key),
        what=str(key),
        paired=paired and len(bs) == len(cs),
    )
    lo_thr, hi_thr = 1.0 - max_slowdown, 1.0 + max_slowdown
    conf = f"{confidence * 100:g}%"
    thr = _pct_abs(max_slowdown)
    span = f"{_pct(est.ratio - 1)} (CI {_pct(est.low - 1)} … {_pct(est.high - 1)}, {est.n_denominator} vs {est.n_numerator} repeats)"
    half = (est.high - est.low) / 2.0
    unreliable: list[str] = []
    if not est.noise_known:
        verdict = "unreliable"
        unreliable.append(
            f"no noise estimate ({est.n_denominator} baseline and {est.n_numerator} current repeats, need >= {MIN_SAMPLES} each)"
        )
        why = f"images/sec {span}: {unreliable[0]}"
    elif est.high < lo_thr:
        verdict, why = (
            "regression",
            f"images/sec {span}: the whole {conf} interval is slower than the -{thr} threshold",
        )
    elif est.low > hi_thr:
        verdict, why = (
            "improved",
            f"images/sec {span}: the whole {conf} interval is faster than +{thr}",
        )
    elif est.low < lo_thr and half > max_slowdown:
        verdict = "unreliable"
        unreliable.append(f"{conf} interval ±{half * 100:.0f}% wider than the ±{thr} threshold")
        why = f"images/sec {span}: the {unreliable[0]}"
    elif est.ratio < lo_thr:
        verdict = "within-noise"
        why = f"images/sec {span} is beyond -{thr}, but the {conf} interval reaches {_pct(est.high - 1)}: not separable from noise"
    else:
        verdict = "pass"
        why = (
            f"images/sec {span} within ±{thr}"
            if est.ratio <= hi_thr
            else f"images/sec {span}: faster, not beyond noise"
        )
    return RowComparison(
        key=key,
        verdict=verdict,
        reason=why,
        baseline_ips=_median(b),
        current_ips=_median(c),
        ratio=est.ratio,
        ci_low=est.low,
        ci_high=est.high,
        n_baseline=est.n_denominator,
        n_current=est.n_numerator,
        speed_verdict=verdict,
        unreliable_reasons=unreliable,
    )


def _mark_unreliable(rc: RowComparison, reasons: list[str]) -> None:
    """Make a compared row ``unreliable`` for run-to-run reasons, keeping the interval's verdict in the reason."""
    if not reasons:
        return
    rc.unreliable_reasons = list(dict.fromkeys([*rc.unreliable_reasons, *reasons]))
    rc.run_to_run = True
    rc.reason = f"{'; '.join(reasons)}: the interval's verdict ({rc.speed_verdict}) may be the machine, not the build; {rc.reason}"
    rc.verdict = "unreliable"


def _fid_state(row: BenchRow) -> str:
    """How a row's FID drift is recorded: ``"ok"``, ``"absent"`` or ``"not finite (nan)"``."""
    raw: Any = getattr(row, "fid_drift", None)
    extra = row.extra or {}
    q = (
        row.quality
        if isinstance(row.quality, Mapping)
        else (extra.get("quality") if isinstance(extra.get("quality"), Mapping) else {})
    )
    for cand in (raw, extra.get("fid_drift"), q.get("fid_drift") if q else None):
        if cand is None:
            continue
        if isinstance(cand, bool) or not isinstance(cand, (int, float)):
            return f"not a number ({cand!r})"
        return "ok" if math.isfinite(cand) else f"not finite ({cand})"
    return "absent"


def _apply_fid(rc: RowComparison, b: BenchRow, c: BenchRow, max_fid_drift: float | None) -> None:
    fb, _ = fid_fields(b)
    fc, floor = fid_fields(c)
    rc.fid_baseline, rc.fid_current = fb, fc
    if max_fid_drift is None:
        return
    if fb is None or fc is None:
        bad = [
            f"{side} {_fid_state(row)}"
            for side, row, v in (("baseline", b, fb), ("current", c, fc))
            if v is None
        ]
        msg = f"--max-fid-drift {max_fid_drift:g} names fid_drift, but it is {' and '.join(bad)}; bench with --fid N on both sides"
        if rc.verdict == "regression":
            rc.reason += f"; {msg}"
        else:
            rc.reason = f"{msg}; speed: {rc.verdict}: {rc.reason}"
            rc.verdict = "missing-metric"
        return
    delta = fc - fb
    if delta > max_fid_drift and (floor is None or fc > floor):
        rc.fid_regressed = True
        msg = (
            f"FID drift {fb:.3g} → {fc:.3g} (+{delta:.3g}) exceeds --max-fid-drift {max_fid_drift:g}"
            + (f" and the noise floor {floor:.3g}" if floor is not None else "")
        )
        if rc.verdict == "regression":
            rc.reason += f"; {msg}"
        else:
            rc.reason = f"{msg}; speed: {rc.verdict}: {rc.reason}"
            rc.verdict = "regression"
    elif delta > max_fid_drift:
        rc.reason += (
            f"; FID drift {fb:.3g} → {fc:.3g} grew but stays inside the noise floor {floor:.3g}"
        )
    else:
        rc.reason += f"; FID drift {fb:.3g} → {fc:.3g} ({delta:+.3g}, limit +{max_fid_drift:g})"


def _missing_reason(key: RowKey, cur_keys: Iterable[RowKey]) -> str:
    others = sorted(
        {
            k.device
            for k in cur_keys
            if (k.backend, k.precision, k.batch_size)
            == (key.backend, key.precision, key.batch_size)
        }
    )
    if others:
        return f"the current report measured it on {', '.join(others)}, not {key.device} (device mismatch)"
    return "not in the current report"


def _coverage_failures(base: Report, cur: Report, rows: list[RowComparison]) -> list[str]:
    """Why the comparison compared nothing (empty when at least one row was compared on both sides)."""
    if any(r.compared for r in rows):
        return []
    n_base_ok = sum(1 for r in base.rows if r.status == "ok")
    n_cur_ok = sum(1 for r in cur.rows if r.status == "ok")
    if not cur.rows:
        return ["nothing compared: the current report has no rows (nothing was measured)"]
    if n_cur_ok == 0:
        first = next((f"{RowKey.of(r)}: {r.reason}" for r in cur.rows if r.reason), "")
        return [
            f"nothing compared: the current report measured nothing (its {len(cur.rows)} rows are skipped or failed"
            + (f"; {first})" if first else ")")
        ]
    if n_base_ok == 0:
        return [
            f"nothing compared: the baseline has no ok row ({len(base.rows)} rows, none measured); refresh the baseline"
        ]
    if sum(1 for r in rows if r.verdict == "missing-in-current") == n_base_ok:
        return [
            f"nothing compared: the current report measured none of the baseline's {n_base_ok} rows "
            f"(it measured {n_cur_ok} other row{'s' if n_cur_ok != 1 else ''}: device, backend or precision mismatch?)"
        ]
    return [
        f"nothing compared: no row was measured (ok) on both sides ({n_base_ok} ok in the baseline, {n_cur_ok} in the current report)"
    ]


def compare_reports(
    baseline: Report | Mapping[str, Any],
    current: Report | Mapping[str, Any],
    *,
    max_slowdown: float = 0.05,
    max_fid_drift: float | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    strict: bool = False,
    interleaved: bool | None = None,
    baseline_name: str = "baseline",
    current_name: str = "current",
) -> Comparison:
    """Compare a current benchmark report with a baseline; see the module docstring for the rule.

    Args:
        baseline: The reference ``results.json`` content (dict) or :class:`Report`.
        current: The report under test.
        max_slowdown: Allowed slowdown as a fraction in [0, 1) (0.05 = 5 %; see
            :func:`parse_fraction` for ``"5%"``).
        max_fid_drift: Allowed increase of a row's FID drift (FID units, >= 0); None
            compares no FID.
        confidence: Two-sided coverage of the bootstrap intervals, in (0, 1).
        n_boot: Bootstrap resamples per row (>= 100).
        seed: Bootstrap seed (per row it is combined with the row key).
        strict: Missing, new and unreliable rows and environment differences fail
            the comparison too.
        interleaved: Both reports were measured in one interleaved run (``bench --vs``):
            intervals resample whole rounds (paired) and no run-to-run check applies.
            None: detect it (both reports carry the same ``settings.interleaved_run``).
        baseline_name: Label of the baseline in the outputs (e.g. its path).
        current_name: Label of the current report in the outputs.

    Returns:
        The :class:`Comparison`; its :attr:`~Comparison.exit_code` is 0 or 1 and
        :attr:`~Comparison.verdict` ``pass``, ``unreliable`` or ``fail``.

    Raises:
        InputError: Malformed reports (unknown schema version, bad rows, duplicate
            keys, samples that are not positive) or bad thresholds; one line each.
    """
    if (
        isinstance(max_slowdown, bool)
        or not isinstance(max_slowdown, (int, float))
        or not 0.0 <= float(max_slowdown) < 1.0
    ):
        raise InputError(
            f"--max-slowdown {max_slowdown!r} is out of range; expected a fraction in [0, 1) such as 0.05 (5%)"
        )
    if max_fid_drift is not None and (
        isinstance(max_fid_drift, bool)
        or not isinstance(max_fid_drift, (int, float))
        or not math.isfinite(max_fid_drift)
        or max_fid_drift < 0
    ):
        raise InputError(
            f"--max-fid-drift {max_fid_drift!r} is invalid; expected a non-negative number of FID units such as 0.5"
        )
    check_bootstrap_settings(confidence, n_boot)
    base = _as_report(baseline, baseline_name)
    cur = _as_report(current, current_name)
    bidx, cidx = _index(base, baseline_name), _index(cur, current_name)
    if interleaved is None:
        run_id = base.settings.get("interleaved_run")
        interleaved = bool(run_id) and run_id == cur.settings.get("interleaved_run")
    mismatches = _env_mismatches(base, cur)
    env_reasons = (
        []
        if interleaved
        else [f"environments differ ({str(m)})" for m in mismatches if m.affects_speed]
    )
    rows: list[RowComparison] = []
    notes: list[str] = []
    for key, b in bidx.items():
        c = cidx.get(key)
        if c is None:
            if b.status == "ok":
                rows.append(
                    RowComparison(
                        key,
                        "missing-in-current",
                        _missing_reason(key, cidx),
                        baseline_ips=_median(b),
                        n_baseline=len(b.images_per_sec_samples),
                    )
                )
            else:
                notes.append(
                    f"{key}: {b.status} in the baseline ({b.reason}) and absent from the current report"
                )
            continue
        if c.status == "failed":
            prev = f"; it was {b.status} in the baseline" + (
                f" at {_num(_median(b))} images/s" if b.status == "ok" else ""
            )
            rows.append(
                RowComparison(
                    key,
                    "failed",
                    f"failed in the current run: {c.reason}{prev}",
                    baseline_ips=_median(b) if b.status == "ok" else None,
                    n_baseline=len(b.images_per_sec_samples),
                )
            )
            continue
        if c.status == "skipped":
            if b.status == "ok":
                rows.append(
                    RowComparison(
                        key,
                        "missing-in-current",
                        f"skipped in the current run: {c.reason}",
                        baseline_ips=_median(b),
                        n_baseline=len(b.images_per_sec_samples),
                    )
                )
            else:
                notes.append(
                    f"{key}: {b.status} in the baseline, skipped in the current run ({c.reason}); not compared"
                )
            continue
        if b.status != "ok":
            rows.append(
                RowComparison(
                    key,
                    "new-in-current",
                    f"{b.status} in the baseline ({b.reason}); nothing to compare with",
                    current_ips=_median(c),
                    n_current=len(c.images_per_sec_samples),
                )
            )
            continue
        rc = _speed(
            key, b, c, float(max_slowdown), float(confidence), n_boot, seed, paired=interleaved
        )
        if not interleaved:
            _mark_unreliable(rc, _run_to_run_reasons(b, c, base, cur, env_reasons))
        _apply_fid(rc, b, c, None if max_fid_drift is None else float(max_fid_drift))
        rows.append(rc)
    for key, c in cidx.items():
        if key in bidx:
            continue
        if c.status == "failed":
            rows.append(
                RowComparison(
                    key, "failed", f"failed in the current run: {c.reason}; not in the baseline"
                )
            )
        elif c.status == "ok":
            others = sorted(
                {
                    k.device
                    for k in bidx
                    if (k.backend, k.precision, k.batch_size)
                    == (key.backend, key.precision, key.batch_size)
                }
            )
            why = (
                f"the baseline measured it on {', '.join(others)}, not {key.device} (device mismatch)"
                if others
                else "not in the baseline"
            )
            rows.append(
                RowComparison(
                    key,
                    "new-in-current",
                    why,
                    current_ips=_median(c),
                    n_current=len(c.images_per_sec_samples),
                )
            )
        else:
            notes.append(
                f"{key}: skipped in the current run ({c.reason}) and absent from the baseline"
            )
    comp = Comparison(
        rows=rows,
        env_mismatches=mismatches,
        notes=notes,
        failures=_coverage_failures(base, cur, rows),
        max_slowdown=float(max_slowdown),
        max_fid_drift=None if max_fid_drift is None else float(max_fid_drift),
        confidence=float(confidence),
        n_boot=n_boot,
        seed=seed,
        strict=strict,
        interleaved=bool(interleaved),
        baseline_name=baseline_name,
        current_name=current_name,
        baseline_created=base.created,
        current_created=cur.created,
    )
    log.info("compare %s vs %s: %s", baseline_name, current_name, comp.summary_line())
    return comp


def compare_files(
    baseline: str | os.PathLike[str],
    current: str | os.PathLike[str],
    **kwargs: Any,
) -> Comparison:
    """:func:`compare_reports` on two ``results.json`` files (or folders holding one).

    Args:
        baseline: Path of the baseline ``results.json`` or its folder.
        current: Path of the current ``results.json`` or its folder.
        **kwargs: Passed to :func:`compare_reports` (``max_slowdown``, ``strict``...).

    Raises:
        InputError: Missing or unreadable file, invalid JSON, unknown schema version,
            malformed content (one line, naming the file).
    """
    base = Report.load(baseline)
    cur = Report.load(current)
    kwargs.setdefault("baseline_name", str(Path(baseline)))
    kwargs.setdefault("current_name", str(Path(current)))
    return compare_reports(base, cur, **kwargs)


__all__ = [
    "FAILING",
    "STRICT_FAILING",
    "VERDICTS",
    "Comparison",
    "EnvMismatch",
    "RowComparison",
    "RowKey",
    "compare_files",
    "compare_reports",
    "fid_fields",
    "parse_fraction",
]
