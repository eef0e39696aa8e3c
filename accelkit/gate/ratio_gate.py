"""An in-run ratio gate: a CPU-only performance check that does not flake on a noisy machine.

Comparing absolute images/sec between two runs (:mod:`accelkit.gate.compare`) needs a
quiet, dedicated machine: on a shared CI box the whole current run can be 20 % slower
because of a neighbour, and no interval computed from one run can see that. This gate
compares two backends measured **in the same run** instead: the ratio

    ORT fp32 images/sec / torch eager fp32 images/sec   (per batch size)

cancels what slows both alike (a slower or busier machine) and still moves when
accelkit's ONNX path gets worse (a worse export, lost graph optimisations, wrong thread
settings, an extra copy per iteration in the runner).

Rule (:func:`accelkit.gate.classify.classify`, the one ``accelkit compare`` uses too):
for each batch size in the committed baseline of this machine type
(``benchmarks/baselines/cpu_ratio*.json``, see :class:`RatioBaseline`), the current
ratio's bootstrap interval (ratio of medians,
:func:`~accelkit.gate.stats.bootstrap_ratio`; both rows' repeats resampled
independently, or whole rounds when ``paired`` and the rows were measured in interleaved
rounds) is compared with the baseline ratio ``r0``:

* ``regression`` when the whole interval lies below ``r0 * (1 - tolerance)`` (also when
  measured on another machine type than the baseline's: exit 1);
* ``improved`` when the whole interval lies above ``r0 * (1 + tolerance)`` (not a failure:
  refresh the baseline to lock the gain in);
* ``within-noise`` when the point estimate is below ``r0 * (1 - tolerance)`` but the
  interval, no wider than ±``tolerance`` of ``r0``, reaches it;
* ``unreliable`` when the ratio cannot be judged against this baseline: a row has fewer
  than :data:`~accelkit.gate.stats.MIN_SAMPLES` repeats, or the interval straddles the
  floor and is wider than ±``tolerance``; or the machine's CPU model, core count or ISA
  level differs from the baseline's and the interval does not say ``regression`` (ratios
  depend on the CPU: on an AMX Xeon the unchanged build's ORT/torch ratio ran a median
  16 % and up to 69 % above the AMD EPYC baseline's; ``benchmarks/results/gate_false_alarms.md``).
  Exit 3 with ``UNRELIABLE`` and the reason, 0 with ``allow_unreliable``;
* ``pass`` otherwise;
* ``missing`` when either row is absent, skipped or failed at that batch size (fails: the
  check cannot vouch for a build it could not measure).

The tolerance lives in the baseline file and was chosen from repeated measurements of
an unchanged build (the file records them); see ``benchmarks/ci_perf_gate.py``.
This module never prints and never exits.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from accelkit.benchmark.report import BenchRow, Report, merge_stability
from accelkit.errors import InputError
from accelkit.files import write_text_atomic
from accelkit.gate import render
from accelkit.gate.classify import (
    EXIT_PASS,
    EXIT_REGRESSION,
    EXIT_UNRELIABLE,
    classify,
    under_conditions,
)
from accelkit.gate.stats import RatioEstimate, bootstrap_ratio, row_seed
from accelkit.jsonio import read_json_file
from accelkit.stats import median, quantile

log = logging.getLogger(__name__)

BASELINE_SCHEMA = 1
#: (backend, variant, precision) of the ratio's numerator and denominator.
NUMERATOR = ("ort", None, "fp32")
DENOMINATOR = ("torch", None, "fp32")
GATE_VERDICTS = ("pass", "regression", "within-noise", "improved", "unreliable", "missing")


# ----------------------------------------------------------------------- baseline
@dataclass
class RatioBaseline:
    """The committed reference ratios of one machine type.

    Attributes:
        ratios: Batch size -> baseline ratio ``ort fp32 / torch fp32`` images/sec.
        tolerance: Allowed relative drop of the ratio (0.25 = the ratio may fall to
            75 % of the baseline before the interval test applies).
        device: Device the rows were measured on (``cpu``).
        machine: CPU model and cores the baseline was measured on (informative).
        created: ISO-8601 UTC timestamp.
        measured: Free-form record of how the baseline and tolerance were chosen
            (per-run ratios of the calibration runs, their spread...).
    """

    ratios: dict[int, float]
    tolerance: float
    device: str = "cpu"
    machine: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the file's content)."""
        return {
            "schema_version": BASELINE_SCHEMA,
            "what": "images/sec ratio ort fp32 / torch fp32 (eager), same run, per batch size",
            "device": self.device,
            "tolerance": self.tolerance,
            "ratios": {str(b): r for b, r in sorted(self.ratios.items())},
            "machine": self.machine,
            "created": self.created,
            "measured": self.measured,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "ratio baseline") -> RatioBaseline:
        """Validate and build from parsed JSON.

        Raises:
            InputError: Wrong schema version or malformed fields (one line).
        """
        if not isinstance(data, dict):
            raise InputError(
                f"{where} is not a JSON object; regenerate it with benchmarks/ci_perf_gate.py --update-baseline"
            )
        if data.get("schema_version") != BASELINE_SCHEMA:
            raise InputError(
                f"{where} has schema_version {data.get('schema_version')!r}, expected {BASELINE_SCHEMA}; "
                "regenerate it with benchmarks/ci_perf_gate.py --update-baseline"
            )
        tol = data.get("tolerance")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
            raise InputError(f"{where}: tolerance {tol!r} must be a fraction in [0, 1)")
        raw = data.get("ratios")
        if not isinstance(raw, dict) or not raw:
            raise InputError(f"{where}: 'ratios' must be a non-empty object batch size -> ratio")
        ratios: dict[int, float] = {}
        for k, v in raw.items():
            try:
                b = int(k)
            except (TypeError, ValueError):
                raise InputError(f"{where}: batch size {k!r} is not an integer") from None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(
                    f"{where}: ratio for batch {k} is {v!r}; expected a positive number"
                )
            ratios[b] = float(v)
        return cls(
            ratios=ratios,
            tolerance=float(tol),
            device=str(data.get("device", "cpu")),
            machine=dict(data.get("machine") or {}),
            created=str(data.get("created", "")),
            measured=dict(data.get("measured") or {}),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RatioBaseline:
        """Read a baseline file.

        Raises:
            InputError: Missing file, invalid JSON or malformed content.
        """
        p = Path(path)
        data = read_json_file(
            p,
            "the ratio baseline ",
            "create it with benchmarks/ci_perf_gate.py --update-baseline",
            "regenerate it with --update-baseline",
        )
        return cls.from_dict(data, str(p))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically; returns its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(p, json.dumps(self.to_dict(), indent=2) + "\n")
        return p


# ----------------------------------------------------------------------- measuring
def _find(
    report: Report, which: tuple[str, str | None, str], batch: int, device: str
) -> BenchRow | None:
    backend, variant, precision = which
    for r in report.rows:
        if (
            r.backend == backend
            and (r.variant or None) == variant
            and r.precision == precision
            and r.batch_size == batch
            and r.device == device
        ):
            return r
    return None


def _batches(report: Report, device: str) -> list[int]:
    return sorted(
        {
            r.batch_size
            for r in report.rows
            if r.device == device
            and (r.backend, r.variant or None, r.precision) in (NUMERATOR, DENOMINATOR)
        }
    )


def measure_ratios(
    report: Report,
    *,
    batch_sizes: Sequence[int] | None = None,
    device: str = "cpu",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    paired: bool = False,
) -> dict[int, RatioEstimate | str]:
    """ORT fp32 / torch fp32 images/sec per batch size, with bootstrap intervals.

    Args:
        report: A report holding plain ``ort`` fp32 and ``torch`` fp32 rows.
        batch_sizes: Which batch sizes (default: every one either row type has).
        device: The rows' device.
        confidence: Two-sided coverage of the intervals.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.
        paired: The rows' samples were measured in rounds, sample *i* of both rows in
            round *i* (:func:`merge_reports` of interleaved rounds); resample rounds, not
            samples (see :func:`~accelkit.gate.stats.bootstrap_ratio`). Used only
            when both rows have as many samples.

    Returns:
        Batch size -> :class:`~accelkit.gate.stats.RatioEstimate`, or a one-line
        reason string when the ratio cannot be measured at that batch size.
    """
    out: dict[int, RatioEstimate | str] = {}
    for b in batch_sizes if batch_sizes is not None else _batches(report, device):
        num, den = _find(report, NUMERATOR, b, device), _find(report, DENOMINATOR, b, device)
        problems = []
        for name, row in (("ort fp32", num), ("torch fp32", den)):
            if row is None:
                problems.append(f"no {name} row at batch {b} on {device}")
            elif row.status != "ok":
                problems.append(f"{name} at batch {b} {row.status}: {row.reason}")
        if problems or num is None or den is None:
            out[b] = "; ".join(problems)
            continue
        out[b] = bootstrap_ratio(
            num.images_per_sec_samples or [num.images_per_sec or 0.0],
            den.images_per_sec_samples or [den.images_per_sec or 0.0],
            confidence=confidence,
            n_boot=n_boot,
            seed=row_seed(seed, ("ratio", b, device)),
            what=f"ort/torch fp32 at batch {b}",
            paired=paired,
        )
    return out


# --------------------------------------------------------------------------- gate
@dataclass
class RatioVerdict:
    """The gate's finding at one batch size.

    Attributes:
        batch_size: Images per iteration.
        verdict: One of :data:`GATE_VERDICTS`.
        reason: One line with the numbers.
        baseline_ratio: The committed ratio (None when the baseline lacks the batch).
        ratio: The measured ratio (None when not measurable).
        ci_low: Lower bound of its interval.
        ci_high: Upper bound of its interval.
        floor: ``baseline_ratio * (1 - tolerance)``: the interval must reach it.
    """

    batch_size: int
    verdict: str
    reason: str
    baseline_ratio: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    floor: float | None = None

    @property
    def fails(self) -> bool:
        """Whether this verdict fails the gate (exit 1): a regression, or a row missing or failed."""
        return self.verdict in ("regression", "missing")


@dataclass
class RatioGateResult:
    """Per-batch verdicts and the overall exit code.

    Attributes:
        verdicts: One per batch size of the baseline.
        tolerance: The tolerance used.
        confidence: Two-sided coverage of the intervals.
        notes: Other facts (machine differs from the baseline's, extra batch sizes...).
        allow_unreliable: Accept (exit 0) ``unreliable`` verdicts; by default they exit 3.
    """

    verdicts: list[RatioVerdict]
    tolerance: float
    confidence: float
    notes: list[str] = field(default_factory=list)
    allow_unreliable: bool = False

    @property
    def verdict(self) -> str:
        """``fail`` (a regression or a missing row, or no batch size to check), ``unreliable`` or ``pass``."""
        if any(v.fails for v in self.verdicts) or not self.verdicts:
            return "fail"
        return "unreliable" if any(v.verdict == "unreliable" for v in self.verdicts) else "pass"

    @property
    def exit_code(self) -> int:
        """1 fail; 3 unreliable (0 with ``allow_unreliable``); 0 pass, within noise or improved."""
        if self.verdict == "fail":
            return EXIT_REGRESSION
        if self.verdict == "unreliable" and not self.allow_unreliable:
            return EXIT_UNRELIABLE
        return EXIT_PASS

    def to_text(self) -> str:
        """A short plain-text report: one line per batch size, notes, then PASS, UNRELIABLE or FAIL."""
        return render.ratio_gate_text(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return render.ratio_gate_dict(self)


def machine_type(environment: Mapping[str, Any]) -> tuple[str | None, int | None, str | None]:
    """``(CPU model, available cores, ISA level)`` of an environment record.

    The ISA level is the first word of the ISA summary (``avx512_bf16``, ``amx``...):
    "Intel Xeon Processor" names AVX2-only and AMX machines alike, and ratios differ.
    """
    cpu = environment.get("cpu") or {}
    isa = cpu.get("isa") if isinstance(cpu, Mapping) else None
    summary = isa.get("summary") if isinstance(isa, Mapping) else None
    level = str(summary).split(" ")[0] if summary else None
    return cpu.get("model"), cpu.get("available_cores"), level


def other_machine(report: Report, baseline: RatioBaseline) -> str | None:
    """Why ``report`` was not measured on the baseline's machine type (CPU model, cores, ISA), or None."""
    if not baseline.machine:
        return None
    model, cores, isa = machine_type(report.environment)
    want_isa = baseline.machine.get("isa")
    if (
        baseline.machine.get("cpu") != model
        or baseline.machine.get("available_cores") != cores
        or (want_isa is not None and isa is not None and isa != want_isa)
    ):
        return (
            f"this machine ({model}, {cores} cores{f', {isa}' if isa else ''}) is not the baseline's "
            f"({baseline.machine.get('cpu')}, {baseline.machine.get('available_cores')} cores"
            f"{f', {want_isa}' if want_isa else ''}): ratios depend on the CPU"
        )
    return None


def ratio_gate(
    report: Report | Mapping[str, Any],
    baseline: RatioBaseline,
    *,
    tolerance: float | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    paired: bool = False,
    allow_unreliable: bool = False,
) -> RatioGateResult:
    """Check a report's in-run ORT/torch ratios against the committed baseline.

    Each batch size's ratio is decided by :func:`accelkit.gate.classify.classify` against
    the baseline ratio and the tolerance; measured on another machine type than the
    baseline's, a regression stays a regression and any other verdict is ``unreliable``
    (:func:`accelkit.gate.classify.under_conditions`).

    Args:
        report: One bench run (``results.json`` content or :class:`Report`) with plain
            ``torch`` fp32 and ``ort`` fp32 rows at the baseline's batch sizes.
        baseline: The committed reference (:meth:`RatioBaseline.load`).
        tolerance: Override the baseline's tolerance (fraction in [0, 1)).
        confidence: Two-sided coverage of the bootstrap intervals.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.
        paired: Resample rounds instead of samples (see :func:`measure_ratios`); for
            reports merged from interleaved rounds, like ``benchmarks/ci_perf_gate.py``'s.
        allow_unreliable: Accept ``unreliable`` verdicts (another machine type than the
            baseline's, too few repeats, an interval wider than the tolerance) with exit 0;
            by default they exit 3.

    Returns:
        The verdicts; ``exit_code`` 0, 1 (a regression or missing row, or no batch size
        to check) or 3 (unreliable).

    Raises:
        InputError: Malformed report or bad settings.
    """
    rep = report if isinstance(report, Report) else Report.from_dict(dict(report), "results.json")
    tol = baseline.tolerance if tolerance is None else float(tolerance)
    if not 0.0 <= tol < 1.0:
        raise InputError(f"tolerance {tolerance!r} must be a fraction in [0, 1)")
    est = measure_ratios(
        rep,
        batch_sizes=sorted(baseline.ratios),
        device=baseline.device,
        confidence=confidence,
        n_boot=n_boot,
        seed=seed,
        paired=paired,
    )
    notes: list[str] = []
    elsewhere = other_machine(rep, baseline)
    if elsewhere:
        notes.append(
            f"{elsewhere}; record a baseline on this machine type (benchmarks/ci_perf_gate.py --update-baseline --runs 5)"
        )
    verdicts: list[RatioVerdict] = []
    for b, r0 in sorted(baseline.ratios.items()):
        e = est[b]
        floor, ceil = r0 * (1.0 - tol), r0 * (1.0 + tol)
        if isinstance(e, str):
            verdicts.append(RatioVerdict(b, "missing", e, baseline_ratio=r0, floor=floor))
            continue
        nums = f"ratio {e.ratio:.3f} (CI {e.low:.3f} … {e.high:.3f}) vs baseline {r0:.3f}, {(e.ratio / r0 - 1) * 100:+.1f}%"
        call = classify(
            e,
            tolerance=tol,
            reference=r0,
            floor_label=f"{floor:.3f} (baseline −{tol * 100:g}%)",
            ceiling_label=f"{ceil:.3f}; refresh the baseline with --update-baseline",
        )
        verdict, caveat = under_conditions(call, environment=[elsewhere] if elsewhere else [])
        why = f"{nums}: {call.detail}" if call.verdict != "pass" else f"{nums}, floor {floor:.3f}"
        if caveat:
            why = f"{caveat}; {why}"
        verdicts.append(
            RatioVerdict(
                b,
                verdict,
                why,
                baseline_ratio=r0,
                ratio=e.ratio,
                ci_low=e.low,
                ci_high=e.high,
                floor=floor,
            )
        )
    extra = [b for b in _batches(rep, baseline.device) if b not in baseline.ratios]
    if extra:
        notes.append(f"batch sizes {extra} are not in the baseline and were not checked")
    result = RatioGateResult(verdicts, tol, confidence, notes, allow_unreliable=allow_unreliable)
    log.info("ratio gate: %s", result.verdict)
    return result


def baseline_from_reports(
    reports: Sequence[Report],
    *,
    tolerance: float,
    device: str = "cpu",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> RatioBaseline:
    """A new baseline: per batch size, the median over runs of each run's ratio.

    Args:
        reports: One or more calibration runs (each holding both rows per batch).
        tolerance: The tolerance to store.
        device: The rows' device.
        confidence, n_boot, seed: For the per-run intervals recorded in ``measured``.

    Raises:
        InputError: A run lacks a row, or no batch size is measurable.
    """
    if not reports:
        raise InputError("no calibration runs to make a ratio baseline from")
    per_batch: dict[int, list[float]] = {}
    for i, rep in enumerate(reports):
        for b, e in measure_ratios(
            rep, device=device, confidence=confidence, n_boot=n_boot, seed=seed
        ).items():
            if isinstance(e, str):
                raise InputError(f"calibration run {i + 1} cannot give a ratio at batch {b}: {e}")
            per_batch.setdefault(b, []).append(e.ratio)
    if not per_batch:
        raise InputError(
            "the calibration runs hold no ort fp32 and torch fp32 rows; nothing to make a baseline from"
        )
    env = reports[0].environment
    cpu = env.get("cpu") or {}
    measured = {
        "runs": len(reports),
        "per_run_ratios": {str(b): [round(x, 4) for x in v] for b, v in sorted(per_batch.items())},
        "relative_spread": {
            str(b): {
                "min": round(min(v) / median(v) - 1, 4),
                "max": round(max(v) / median(v) - 1, 4),
                "p10": round(quantile(v, 0.10) / median(v) - 1, 4),
                "p90": round(quantile(v, 0.90) / median(v) - 1, 4),
            }
            for b, v in sorted(per_batch.items())
        },
        "settings": dict(reports[0].settings),
        "versions": dict(env.get("versions") or {}),
    }
    return RatioBaseline(
        ratios={b: median(v) for b, v in sorted(per_batch.items())},
        tolerance=float(tolerance),
        device=device,
        machine={"cpu": cpu.get("model"), "available_cores": cpu.get("available_cores")},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        measured=measured,
    )


def merge_reports(reports: Sequence[Report]) -> Report:
    """One report from several rounds of the same bench: each row's repeats concatenated.

    Rows are matched by (backend, variant, precision, batch size, device); the merged
    row keeps the first round's other fields and gets the median and spread of all its
    samples. A row that is not ``ok`` in any round stays as that round's row (a failure
    is never averaged away). Interleaving rounds spreads slow drifts of a shared machine
    over every backend alike, which is what the ratio needs.

    Raises:
        InputError: No reports.
    """
    if not reports:
        raise InputError("no reports to merge")
    merged: dict[tuple[str, str | None, str, int, str], BenchRow] = {}
    broken: dict[tuple[str, str | None, str, int, str], BenchRow] = {}
    stabilities: dict[tuple[str, str | None, str, int, str], list[dict[str, Any] | None]] = {}
    for rep in reports:
        for r in rep.rows:
            k = (r.backend, r.variant, r.precision, r.batch_size, r.device)
            if r.status != "ok":
                broken.setdefault(k, r)
                continue
            stabilities.setdefault(k, []).append(r.stability)
            if k not in merged:
                merged[k] = BenchRow.from_dict(r.to_dict())
            else:
                m = merged[k]
                m.images_per_sec_samples = list(m.images_per_sec_samples) + list(
                    r.images_per_sec_samples
                )
                m.iters_per_repeat = list(m.iters_per_repeat) + list(r.iters_per_repeat)
    rows: list[BenchRow] = []
    seen: set[tuple[str, str | None, str, int, str]] = set()
    for rep in reports:
        for r in rep.rows:
            k = (r.backend, r.variant, r.precision, r.batch_size, r.device)
            if k in seen:
                continue
            seen.add(k)
            if k in broken:
                rows.append(broken[k])
                continue
            m = merged[k]
            s = m.images_per_sec_samples
            m.images_per_sec = median(s)
            p25, p75 = quantile(s, 0.25), quantile(s, 0.75)
            m.images_per_sec_spread = {
                "p25": p25,
                "p75": p75,
                "iqr": p75 - p25,
                "min": float(min(s)),
                "max": float(max(s)),
            }
            merge_stability(
                m, stabilities.get(k, [])
            )  # spread over all rounds, the worst round's contention
            rows.append(m)
    first = reports[0]
    settings = dict(first.settings)
    settings["merged_reports"] = len(reports)
    settings["batch_sizes"] = sorted({r.batch_size for r in rows})
    return Report(
        rows,
        environment=first.environment,
        artifacts=first.artifacts,
        created=first.created,
        settings=settings,
    )


__all__ = [
    "BASELINE_SCHEMA",
    "DENOMINATOR",
    "GATE_VERDICTS",
    "NUMERATOR",
    "RatioBaseline",
    "RatioGateResult",
    "RatioVerdict",
    "baseline_from_reports",
    "measure_ratios",
    "merge_reports",
    "ratio_gate",
]
