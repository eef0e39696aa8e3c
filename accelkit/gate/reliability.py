"""Whether two runs' measurements can be compared: same generator, same environment, same load.

A cross-run comparison sees only the noise *within* each run; a machine that was slower
during one whole run shifts every repeat alike. So before a speed verdict is believed,
this module reads what the reports record about the conditions of each run:

* :func:`check_same_generator`: both reports benched one generator (source sha256 and
  I/O spec); a different generator is never compared.
* :func:`env_mismatches`: tool versions, CPU model, cores, GPU, thread settings and
  measurement settings (:class:`EnvMismatch`).
* :func:`row_conditions`: per row, the deterministic differences (environment, the row's
  thread settings) and the contention ones (other processes' busy cores measured during
  the repeats, else the 1-minute load average; an oversubscribed side).

How a verdict is qualified by them: :func:`accelkit.gate.classify.under_conditions`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accelkit.benchmark.report import BenchRow, Report
from accelkit.errors import InputError

VERSION_KEYS = ("accelkit", "torch", "onnxruntime", "onnxruntime-gpu", "tensorrt")
SETTINGS_KEYS = ("warmup", "repeats", "min_time_s")
#: Settings whose difference does not bias the median (only the interval's width).
HARMLESS_SETTINGS = ("settings.repeats",)
#: Loads (1-minute averages) "differ" when apart by more than max(LOAD_DIFF_MIN, LOAD_DIFF_PER_CORE x cores).
LOAD_DIFF_MIN = 1.0
LOAD_DIFF_PER_CORE = 0.25
#: A side was oversubscribed when its load exceeded its available cores by more than this.
BUSY_MARGIN = 0.5


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


@dataclass(frozen=True)
class Conditions:
    """Why one row's two measurements were not made alike (short phrases each).

    Attributes:
        environment: Deterministic differences (environment, the row's thread settings).
        contention: Differences in competition for the CPU, or an oversubscribed side.
    """

    environment: tuple[str, ...] = ()
    contention: tuple[str, ...] = ()


# ------------------------------------------------------------------ generator
@dataclass(frozen=True)
class GeneratorIdentity:
    """Which generator a report benched, as far as it records it.

    Attributes:
        sha256: The source file's sha256 (or its 16-character prefix, as ``bench``
            writes it in ``settings.generator_sha256``); None when not recorded.
        specs: The artifacts' I/O specs (canonical JSON, without how they were inferred);
            two reports benched one generator only if they share one of them.
    """

    sha256: str | None
    specs: frozenset[str]

    @classmethod
    def of(cls, report: Report) -> GeneratorIdentity:
        """Read it from ``settings.generator_sha256`` and the artifacts' ``source_sha256`` and ``spec``."""
        sha = report.settings.get("generator_sha256")
        sha = sha.lower() if isinstance(sha, str) and sha else None
        sources = {
            str(a["source_sha256"]).lower()
            for a in report.artifacts
            if isinstance(a, Mapping) and isinstance(a.get("source_sha256"), str)
        }
        if sha is None and len(sources) == 1:
            sha = next(iter(sources))
        specs = frozenset(
            json.dumps({k: v for k, v in a["spec"].items() if k != "inferred"}, sort_keys=True)
            for a in report.artifacts
            if isinstance(a, Mapping) and isinstance(a.get("spec"), Mapping)
        )
        return cls(sha, specs)

    @property
    def known(self) -> bool:
        """The report records the generator's sha256."""
        return self.sha256 is not None


def check_same_generator(
    base: Report, cur: Report, baseline_name: str, current_name: str
) -> str | None:
    """Refuse reports of two different generators; say when a report does not record which.

    Returns:
        None when both record the same generator; a short phrase when one side does not
        record its generator (the comparison cannot vouch that it is the same one).

    Raises:
        InputError: The reports' generator sha256 or I/O specs differ (one line).
    """
    b, c = GeneratorIdentity.of(base), GeneratorIdentity.of(cur)
    if b.known and c.known:
        assert b.sha256 is not None and c.sha256 is not None
        n = min(len(b.sha256), len(c.sha256))
        if b.sha256[:n] != c.sha256[:n]:
            raise InputError(
                f"{baseline_name} and {current_name} benched different generators (sha256 {b.sha256[:16]} vs "
                f"{c.sha256[:16]}); a speed ratio between two generators says nothing about the build: compare "
                "reports of one generator, refresh the baseline, or measure both with accelkit bench NEW --vs OLD"
            )
    if b.specs and c.specs and not b.specs & c.specs:
        raise InputError(
            f"{baseline_name} and {current_name} benched generators with different I/O specs (inputs, output "
            "shape or range); compare reports of one generator, or refresh the baseline"
        )
    missing = [name for name, ident in ((baseline_name, b), (current_name, c)) if not ident.known]
    if missing:
        return (
            f"{' and '.join(missing)} does not record which generator it benched "
            "(settings.generator_sha256 or artifacts' source_sha256)"
        )
    return None


# ---------------------------------------------------------------- environment
def env_mismatches(base: Report, cur: Report) -> list[EnvMismatch]:
    """Differences in versions, hardware, thread settings and measurement settings."""
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


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


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


def _thread_settings(row: BenchRow) -> dict[str, Any]:
    runner = row.runner if isinstance(row.runner, Mapping) else {}
    return {k: v for k, v in runner.items() if "thread" in str(k)}


def row_conditions(
    b: BenchRow, c: BenchRow, base: Report, cur: Report, environment: list[str]
) -> Conditions:
    """Why two runs' measurements of one row cannot be compared as if the machine were the same.

    Competition for the CPU is read from the rows' ``stability`` block (other processes'
    busy cores measured during the repeats) where both rows have it, else from the
    1-minute load averages (which also count the bench's own threads).

    Args:
        b, c: The row in the baseline and in the current report.
        base, cur: The reports (cores, load averages).
        environment: The reports' environment differences that affect speed (phrases).
    """
    env = list(environment)
    bt, ct = _thread_settings(b), _thread_settings(c)
    for k in sorted(set(bt) | set(ct)):
        if bt.get(k) != ct.get(k):
            env.append(f"runner {k} {bt.get(k, '—')} → {ct.get(k, '—')}")
    busy: list[str] = []
    kb, kc = _cores(base), _cores(cur)
    (ob, overb, cpb), (oc, overc, cpc) = _contention(b), _contention(c)
    cores = kc or kb or cpc or cpb
    allowed = max(LOAD_DIFF_MIN, LOAD_DIFF_PER_CORE * cores) if cores else LOAD_DIFF_MIN
    on = f" ({cores} cores)" if cores else ""
    if ob is not None and oc is not None:
        if abs(ob - oc) > allowed:
            busy.append(f"other processes' busy cores {ob:.1f} → {oc:.1f}{on}")
    else:
        lb, lc = _load(b, base), _load(c, cur)
        if lb is not None and lc is not None and abs(lb - lc) > allowed:
            busy.append(f"load {lb:.1f} → {lc:.1f}{on}")
    for side, row, rep, over, others, cpus, ncores in (
        ("baseline", b, base, overb, ob, cpb, kb),
        ("current", c, cur, overc, oc, cpc, kc),
    ):
        if over is not None:
            if over:
                busy.append(
                    f"{side} oversubscribed while measured (others kept {others or 0:.1f} of {cpus or ncores or '?'} cores busy)"
                )
            continue
        load = _load(row, rep)
        if load is not None and ncores and load > ncores + BUSY_MARGIN:
            busy.append(f"{side} machine oversubscribed (load {load:.1f} on {ncores} cores)")
    return Conditions(tuple(env), tuple(busy))


__all__ = [
    "BUSY_MARGIN",
    "HARMLESS_SETTINGS",
    "LOAD_DIFF_MIN",
    "LOAD_DIFF_PER_CORE",
    "SETTINGS_KEYS",
    "VERSION_KEYS",
    "Conditions",
    "EnvMismatch",
    "GeneratorIdentity",
    "check_same_generator",
    "env_mismatches",
    "row_conditions",
]
