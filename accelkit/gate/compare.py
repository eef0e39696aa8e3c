"""``accelkit compare``: a baseline ``results.json`` against a current one, for CI.

Rows are matched (:mod:`accelkit.gate.matching`); each matched pair of ``ok`` rows gets a
speed verdict from the bootstrap interval of ``current / baseline`` images/sec
(:func:`accelkit.gate.classify.classify`), qualified by what the two runs' conditions
allow (:mod:`accelkit.gate.reliability`), plus a FID-drift finding when
``max_fid_drift`` is set and a quality finding (:func:`quality_finding`: the calibrated
verdict of ``bench --fid N``) when a side carries one. The comparison exits 0 (pass), 1 (a regression, a failed row,
a gated metric missing) or 3 (the gate cannot tell: unreliable rows, rows missing,
nothing compared; ``allow_unreliable`` accepts it where something was compared). Reports
of two different generators are refused. The rule, the verdicts and the reasons for
them: ``docs/perf-regression.md``. Rendering: :mod:`accelkit.gate.render`. This module
never prints and never exits.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.benchmark.report import BenchRow, Report
from accelkit.errors import InputError
from accelkit.gate import render
from accelkit.gate.classify import (
    EXIT_PASS,
    EXIT_REGRESSION,
    EXIT_UNRELIABLE,
    FAILING,
    STRICT_UNRELIABLE,
    UNRELIABLE,
    VERDICTS,
    Call,
    Finding,
    classify,
    combine,
    under_conditions,
)
from accelkit.gate.matching import RowKey, as_report, elsewhere, match_rows
from accelkit.gate.reliability import (
    EnvMismatch,
    check_same_generator,
    env_mismatches,
    row_conditions,
)
from accelkit.gate.stats import RatioEstimate, bootstrap_ratio, check_bootstrap_settings, row_seed
from accelkit.stats import median

log = logging.getLogger(__name__)

#: What :attr:`Comparison.verdict` can be.
OVERALL = ("pass", "unreliable", "fail")
#: The command that measures both builds in one process (the remedy for run-to-run doubts).
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


# ------------------------------------------------------------------------- results
@dataclass
class RowComparison:
    """The comparison of one row key.

    Attributes:
        key: The matched row.
        verdict: One of :data:`~accelkit.gate.classify.VERDICTS`; for compared rows the
            most severe of :attr:`findings` (:func:`~accelkit.gate.classify.combine`).
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
            Differs from ``verdict`` when the runs' conditions qualified it or another
            finding (FID drift) decided.
        fid_regressed: The FID drift grew beyond ``max_fid_drift``.
        unreliable_reasons: Why the speed verdict cannot be trusted (short phrases:
            ``"load 0.2 → 1.9 (2 cores)"``, ``"no noise estimate: ..."``); empty when
            nothing is wrong.
        run_to_run: The two runs were not measured alike (environment, threads, load),
            which only measuring both builds in one run (``bench --vs``) removes.
        findings: Each metric's verdict (speed first); empty for rows not compared.
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
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        """Add a metric's finding; the row's verdict and reason become their combination."""
        self.findings.append(finding)
        self.verdict, self.reason = combine(self.findings)

    @property
    def change(self) -> float | None:
        """Relative images/sec change, ``ratio - 1`` (−0.2 is 20 % slower)."""
        return None if self.ratio is None else self.ratio - 1.0

    @property
    def compared(self) -> bool:
        """Both sides were measured (``ok``) and their speeds compared."""
        return self.ratio is not None

    def fails(self) -> bool:
        """Whether this row fails the comparison (exit 1)."""
        return self.verdict in FAILING

    def undecided(self, strict: bool) -> bool:
        """Whether this row leaves the gate unable to tell (exit 3 unless accepted)."""
        return self.verdict in UNRELIABLE or (strict and self.verdict in STRICT_UNRELIABLE)

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
            "findings": [vars(f).copy() for f in self.findings],
        }


@dataclass
class Comparison:
    """Everything :func:`compare_reports` found.

    Attributes:
        rows: One entry per row key, in the baseline's order, then rows new in current.
        env_mismatches: Differences in versions, hardware, threads and measurement settings.
        notes: Other facts worth reporting (rows skipped on both sides...).
        cannot_compare: Why nothing could be compared (no row measured on both sides);
            the gate then cannot tell, whatever ``allow_unreliable`` says.
        max_slowdown: Threshold as a fraction (0.05).
        max_fid_drift: Allowed FID drift increase, None when not compared.
        confidence: Two-sided coverage of the intervals.
        n_boot: Bootstrap resamples per row.
        seed: Bootstrap seed.
        strict: New rows and any environment difference leave the gate unable to tell too.
        allow_unreliable: Accept (exit 0) a comparison that cannot tell, where it
            compared something.
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
    cannot_compare: list[str] = field(default_factory=list)
    max_slowdown: float = 0.05
    max_fid_drift: float | None = None
    confidence: float = 0.95
    n_boot: int = 2000
    seed: int = 0
    strict: bool = False
    allow_unreliable: bool = False
    interleaved: bool = False
    baseline_name: str = "baseline"
    current_name: str = "current"
    baseline_created: str | None = None
    current_created: str | None = None

    def counts(self) -> dict[str, int]:
        """Number of rows per verdict (every verdict present, zeros included)."""
        out = {v: 0 for v in VERDICTS}
        for r in self.rows:
            out[r.verdict] += 1
        return out

    @property
    def failing_rows(self) -> list[RowComparison]:
        """Rows that fail the comparison (exit 1)."""
        return [r for r in self.rows if r.fails()]

    @property
    def undecided_rows(self) -> list[RowComparison]:
        """Rows the gate cannot vouch for (unreliable, missing; with ``strict`` also new)."""
        return [r for r in self.rows if r.undecided(self.strict)]

    @property
    def problems(self) -> list[str]:
        """Comparison-level reasons the gate cannot tell: :attr:`cannot_compare`, plus environment differences under ``strict``."""
        out = list(self.cannot_compare)
        if self.strict and self.env_mismatches:
            out.append(
                f"environments differ ({'; '.join(str(m) for m in self.env_mismatches)}) and --strict is set"
            )
        return out

    @property
    def verdict(self) -> str:
        """``fail`` (a failing row), ``unreliable`` (the gate cannot tell) or ``pass``."""
        if self.failing_rows:
            return "fail"
        if self.undecided_rows or self.problems:
            return "unreliable"
        return "pass"

    @property
    def accepted(self) -> bool:
        """An ``unreliable`` comparison that ``allow_unreliable`` lets pass (it compared something)."""
        return self.verdict == "unreliable" and self.allow_unreliable and not self.cannot_compare

    @property
    def exit_code(self) -> int:
        """0 pass (or accepted), 1 fail, 3 unreliable (bad input, 2, is raised as InputError instead)."""
        if self.verdict == "fail":
            return EXIT_REGRESSION
        if self.verdict == "unreliable" and not self.accepted:
            return EXIT_UNRELIABLE
        return EXIT_PASS

    @property
    def passed(self) -> bool:
        """True when :attr:`exit_code` is 0."""
        return self.exit_code == EXIT_PASS

    def unreliable_summary(self) -> str:
        """Why the gate cannot tell: the distinct reasons joined (at most four, then ``…``)."""
        seen: dict[str, None] = {}
        for r in self.rows:
            if r.verdict == "unreliable":
                for why in r.unreliable_reasons:
                    seen.setdefault(why, None)
        missing = [r for r in self.undecided_rows if r.verdict != "unreliable"]
        if missing:
            n = len(missing)
            seen.setdefault(
                f"{n} row{'s' if n != 1 else ''} not compared ({', '.join(sorted({r.verdict for r in missing}))})",
                None,
            )
        whys = list(seen)
        return "; ".join(whys[:4]) + ("; …" if len(whys) > 4 else "")

    def remedy(self) -> str:
        """What to do about it: measure both builds in one run, measure the missing rows, or measure longer."""
        undecided = self.undecided_rows
        if any(
            f.metric == "quality" and f.verdict == "unreliable"
            for r in undecided
            for f in r.findings
        ):
            return "bench with a larger --fid N (the quality verdict could not decide; its reason says which N would)"
        if any(r.run_to_run for r in undecided if r.verdict == "unreliable"):
            return VS_HINT
        if any(r.verdict == "unreliable" for r in undecided):
            return "re-run with more --repeats (or on a quieter machine)"
        return "bench every row of the baseline again (or refresh the baseline)"

    def summary_line(self) -> str:
        """One line: PASS / UNRELIABLE / FAIL, the verdict counts, and what the status rests on."""
        return render.summary_line(self)

    def rule_text(self) -> str:
        """The decision rule with this comparison's numbers, one sentence."""
        return render.rule_text(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for tools that want the verdicts as data)."""
        return render.comparison_dict(self)

    def to_text(self) -> str:
        """A plain-text table for a terminal, then differences and the summary line."""
        return render.comparison_text(self)

    def to_markdown(self) -> str:
        """A Markdown summary for a CI job summary or a PR comment."""
        return render.comparison_markdown(self)

    def to_junit(self) -> str:
        """JUnit XML: one ``testcase`` per row plus ``coverage`` and ``environment``."""
        return render.comparison_junit(self)

    def write(
        self,
        *,
        markdown: str | os.PathLike[str] | None = None,
        junit: str | os.PathLike[str] | None = None,
    ) -> dict[str, Path]:
        """Write the Markdown summary and/or the JUnit XML, each atomically (see :func:`accelkit.gate.render.write`)."""
        return render.write(self, markdown=markdown, junit=junit)


# ------------------------------------------------------------------------ helpers
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


def _median(row: BenchRow) -> float | None:
    if row.images_per_sec_samples:
        return median(row.images_per_sec_samples)
    return _number(row.images_per_sec)


def _pct(v: float) -> str:
    return f"{v * 100:+.1f}%"


# ------------------------------------------------------------------------ findings
def _speed(
    key: RowKey,
    b: BenchRow,
    c: BenchRow,
    max_slowdown: float,
    confidence: float,
    n_boot: int,
    seed: int,
    paired: bool,
) -> tuple[RowComparison, Call, RatioEstimate]:
    """The row with its interval, and the interval's :class:`~accelkit.gate.classify.Call`."""
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
    call = classify(est, tolerance=max_slowdown)
    rc = RowComparison(
        key=key,
        verdict=call.verdict,
        reason="",
        baseline_ips=_median(b),
        current_ips=_median(c),
        ratio=est.ratio,
        ci_low=est.low,
        ci_high=est.high,
        n_baseline=est.n_denominator,
        n_current=est.n_numerator,
        speed_verdict=call.verdict,
        unreliable_reasons=list(call.unreliable),
    )
    return rc, call, est


def _fid_finding(
    rc: RowComparison, b: BenchRow, c: BenchRow, max_fid_drift: float | None
) -> Finding | None:
    """The FID-drift finding (None when FID is not gated); fills the row's FID fields."""
    fb, _ = fid_fields(b)
    fc, floor = fid_fields(c)
    rc.fid_baseline, rc.fid_current = fb, fc
    if max_fid_drift is None:
        return None
    if fb is None or fc is None:
        bad = [
            f"{side} {_fid_state(row)}"
            for side, row, v in (("baseline", b, fb), ("current", c, fc))
            if v is None
        ]
        return Finding(
            "fid_drift",
            "missing-metric",
            f"--max-fid-drift {max_fid_drift:g} names fid_drift, but it is {' and '.join(bad)}; bench with --fid N on both sides",
        )
    delta = fc - fb
    if delta > max_fid_drift and (floor is None or fc > floor):
        rc.fid_regressed = True
        return Finding(
            "fid_drift",
            "regression",
            f"FID drift {fb:.3g} → {fc:.3g} (+{delta:.3g}) exceeds --max-fid-drift {max_fid_drift:g}"
            + (f" and the noise floor {floor:.3g}" if floor is not None else ""),
        )
    if delta > max_fid_drift:
        return Finding(
            "fid_drift",
            "pass",
            f"FID drift {fb:.3g} → {fc:.3g} grew but stays inside the noise floor {floor:.3g}",
        )
    return Finding(
        "fid_drift",
        "pass",
        f"FID drift {fb:.3g} → {fc:.3g} ({delta:+.3g}, limit +{max_fid_drift:g})",
    )


def quality_finding(b: BenchRow, c: BenchRow) -> Finding | None:
    """The quality gate of one matched row (``docs/quality.md``): None when neither side
    carries a calibrated quality verdict (``bench --fid N``, results schema 3).

    * the current row's verdict is ``rejected`` → ``regression`` (a user would see it);
    * its drift moved outside the baseline's window — the current interval lies entirely
      above the baseline's interval widened by the baseline's MDE (same test, statistic
      and N) → ``regression``;
    * ``inconclusive`` (this N cannot tell), or no calibrated verdict while the baseline
      has one → ``unreliable`` (exit 3 unless ``--allow-unreliable``);
    * otherwise ``pass``.

    The reason names the test, its interval and its minimum detectable effect.
    """
    from accelkit.quality.verdict import quality_gate

    calibrated = ("accepted", "rejected", "inconclusive")
    has_b, has_c = b.drift_verdict in calibrated, c.drift_verdict in calibrated
    if not has_b and not has_c:
        return None
    if not has_c:
        return Finding(
            "quality",
            "unreliable",
            f"the baseline's quality was judged ({b.drift_test} test: {b.drift_verdict}) but the current row has no "
            "calibrated verdict: bench the current build with --fid N as the baseline was",
        )
    gate = quality_gate(c)
    if gate.state == "fail":
        return Finding("quality", "regression", f"quality rejected: {gate.reason}")
    if gate.state == "unreliable":
        return Finding("quality", "unreliable", f"quality inconclusive: {gate.reason}")
    window = _quality_window(b, c)
    if window is not None:
        return Finding("quality", "regression", window)
    return Finding("quality", "pass", f"quality accepted: {gate.reason}")


def _quality_window(b: BenchRow, c: BenchRow) -> str | None:
    """Why the current drift left the baseline's window (None: it did not, or no window)."""
    from accelkit.quality.verdict import verdict_of

    try:
        vb, vc = verdict_of(b), verdict_of(c)
    except InputError:
        return None
    if vb is None or vc is None:
        return None
    if (vb.test, vb.statistic, vb.n) != (vc.test, vc.statistic, vc.n):
        return None
    top = vb.interval[1] + (vb.mde if math.isfinite(vb.mde) else 0.0)
    low = vc.interval[0]
    if not (math.isfinite(top) and math.isfinite(low)) or low <= top:
        return None
    return (
        f"quality moved outside the baseline's window ({vc.test} test, N = {vc.n}, {vc.statistic}): "
        f"current interval [{vc.interval[0]:.3g}, {vc.interval[1]:.3g}] lies above the baseline's "
        f"[{vb.interval[0]:.3g}, {vb.interval[1]:.3g}] + its MDE {vb.mde:.3g} (the build is still within the "
        f"margin {vc.margin:.3g}, but detectably and materially worse than the baseline)"
    )


def _cannot_compare(base: Report, cur: Report, rows: list[RowComparison]) -> list[str]:
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


def _check_thresholds(max_slowdown: Any, max_fid_drift: Any) -> None:
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


# ------------------------------------------------------------------------ compare
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
    allow_unreliable: bool = False,
    interleaved: bool | None = None,
    baseline_name: str = "baseline",
    current_name: str = "current",
) -> Comparison:
    """Compare a current benchmark report with a baseline; see ``docs/perf-regression.md``.

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
        strict: New rows and any environment difference (the number of repeats
            included) also leave the gate unable to tell.
        allow_unreliable: Accept (exit 0, said loudly) a comparison that cannot tell,
            where it compared something; a regression still fails.
        interleaved: Both reports were measured in one interleaved run (``bench --vs``):
            intervals resample whole rounds (paired) and no run-to-run check applies
            (the two builds may be different generators). None: detect it (both reports
            carry the same ``settings.interleaved_run``).
        baseline_name: Label of the baseline in the outputs (e.g. its path).
        current_name: Label of the current report in the outputs.

    Returns:
        The :class:`Comparison`; its :attr:`~Comparison.exit_code` is 0, 1 or 3 and
        :attr:`~Comparison.verdict` ``pass``, ``fail`` or ``unreliable``.

    Raises:
        InputError: Reports of different generators; malformed reports (unknown schema
            version, bad rows, duplicate keys, samples that are not positive); bad
            thresholds; ``strict`` with ``allow_unreliable``. One line each.
    """
    _check_thresholds(max_slowdown, max_fid_drift)
    if strict and allow_unreliable:
        raise InputError(
            "--strict and --allow-unreliable contradict each other (one makes more comparisons unreliable, "
            "the other accepts them); pass one of them"
        )
    check_bootstrap_settings(confidence, n_boot)
    base = as_report(baseline, baseline_name)
    cur = as_report(current, current_name)
    pairs = match_rows(base, cur, baseline_name, current_name)
    if interleaved is None:
        run_id = base.settings.get("interleaved_run")
        interleaved = bool(run_id) and run_id == cur.settings.get("interleaved_run")
    mismatches = env_mismatches(base, cur)
    environment: list[str] = []
    doubts: list[str] = []
    if not interleaved:
        unknown = check_same_generator(base, cur, baseline_name, current_name)
        doubts = [unknown] if unknown else []
        environment = [f"environments differ ({m})" for m in mismatches if m.affects_speed]
    base_keys = [p.key for p in pairs if p.baseline is not None]
    cur_keys = [p.key for p in pairs if p.current is not None]
    rows: list[RowComparison] = []
    notes: list[str] = []
    for pair in pairs:
        key, b, c = pair.key, pair.baseline, pair.current
        if c is None:
            assert b is not None
            if b.status == "ok":
                rows.append(
                    RowComparison(
                        key,
                        "missing-in-current",
                        elsewhere(key, cur_keys, "current report"),
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
            prev = (
                "; not in the baseline"
                if b is None
                else f"; it was {b.status} in the baseline"
                + (f" at {render.fmt_num(_median(b))} images/s" if b.status == "ok" else "")
            )
            rows.append(
                RowComparison(
                    key,
                    "failed",
                    f"failed in the current run: {c.reason}{prev}",
                    baseline_ips=_median(b) if b is not None and b.status == "ok" else None,
                    n_baseline=len(b.images_per_sec_samples) if b is not None else 0,
                )
            )
            continue
        if c.status == "skipped":
            if b is not None and b.status == "ok":
                rows.append(
                    RowComparison(
                        key,
                        "missing-in-current",
                        f"skipped in the current run: {c.reason}",
                        baseline_ips=_median(b),
                        n_baseline=len(b.images_per_sec_samples),
                    )
                )
            elif b is not None:
                notes.append(
                    f"{key}: {b.status} in the baseline, skipped in the current run ({c.reason}); not compared"
                )
            else:
                notes.append(
                    f"{key}: skipped in the current run ({c.reason}) and absent from the baseline"
                )
            continue
        if b is None or b.status != "ok":
            rows.append(
                RowComparison(
                    key,
                    "new-in-current",
                    elsewhere(key, base_keys, "baseline")
                    if b is None
                    else f"{b.status} in the baseline ({b.reason}); nothing to compare with",
                    current_ips=_median(c),
                    n_current=len(c.images_per_sec_samples),
                )
            )
            continue
        rc, call, est = _speed(
            key, b, c, float(max_slowdown), float(confidence), n_boot, seed, paired=interleaved
        )
        span = (
            f"{_pct(est.ratio - 1)} (CI {_pct(est.low - 1)} … {_pct(est.high - 1)}, "
            f"{est.n_denominator} vs {est.n_numerator} repeats)"
        )
        reason = f"images/sec {span}: {call.detail}"
        verdict = call.verdict
        if not interleaved:
            cond = row_conditions(b, c, base, cur, environment)
            verdict, caveat = under_conditions(
                call, environment=cond.environment, doubts=[*doubts, *cond.contention]
            )
            if caveat:
                rc.run_to_run = True
                reason = f"{caveat}; {reason}"
                if verdict == "unreliable":
                    rc.unreliable_reasons = list(
                        dict.fromkeys(
                            [*rc.unreliable_reasons, *doubts, *cond.contention, *cond.environment]
                        )
                    )
        rc.add(Finding("speed", verdict, reason))
        fid = _fid_finding(rc, b, c, None if max_fid_drift is None else float(max_fid_drift))
        if fid is not None:
            rc.add(fid)
        quality = quality_finding(b, c)
        if quality is not None:
            if quality.verdict == "unreliable":
                rc.unreliable_reasons = list(
                    dict.fromkeys([*rc.unreliable_reasons, "quality verdict inconclusive"])
                )
            rc.add(quality)
        rows.append(rc)
    comp = Comparison(
        rows=rows,
        env_mismatches=mismatches,
        notes=notes,
        cannot_compare=_cannot_compare(base, cur, rows),
        max_slowdown=float(max_slowdown),
        max_fid_drift=None if max_fid_drift is None else float(max_fid_drift),
        confidence=float(confidence),
        n_boot=n_boot,
        seed=seed,
        strict=strict,
        allow_unreliable=allow_unreliable,
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
            malformed content, different generators (one line, naming the file).
    """
    base = Report.load(baseline)
    cur = Report.load(current)
    kwargs.setdefault("baseline_name", str(Path(baseline)))
    kwargs.setdefault("current_name", str(Path(current)))
    return compare_reports(base, cur, **kwargs)


__all__ = [
    "FAILING",
    "OVERALL",
    "STRICT_UNRELIABLE",
    "UNRELIABLE",
    "VERDICTS",
    "Comparison",
    "EnvMismatch",
    "RowComparison",
    "RowKey",
    "compare_files",
    "compare_reports",
    "fid_fields",
    "parse_fraction",
    "quality_finding",
]
