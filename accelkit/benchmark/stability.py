"""Is a measured number believable? Contention during a measurement and spread across its repeats.

A CPU benchmark on a shared machine can be wrong in two ways this module detects (in the
spirit of pyperf's checks before a number is believed):

* **Oversubscription**: other processes kept cores busy *while* the repeats ran, so the
  runner's threads and theirs competed for fewer cores than there are threads. Measured
  by :class:`ContentionProbe` from ``/proc/stat`` over the timed window, minus this
  process's own CPU time (a load average cannot tell this process's threads from a
  competitor's). Oversubscribed: ``threads + busy cores of others > cores + OVERSUB_MARGIN``.
* **Spread**: the coefficient of variation of the per-repeat images/sec samples is above
  :data:`CV_THRESHOLD`: the repeats disagree, so the median is not a stable number.

Such a row is marked ``unstable`` in ``results.json``, ``results.md`` and
``results.csv``; its images/sec is kept as measured but no speed-up is computed from it
(nor for any row whose torch fp32 baseline is unstable).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from accelkit.host import cpu_affinity, cpu_jiffies, own_cpu_seconds
from accelkit.stats import cv

#: Coefficient of variation of the repeats' images/sec above which a row is unstable.
#: Repeats on a quiet machine agree within 1-5 %; 10 % is well outside that and well
#: inside the 50-150 % seen when a 2-core machine is shared (``docs/cpu.md``).
CV_THRESHOLD = 0.10
#: Cores' worth of other work tolerated beyond ``cores - threads`` (background daemons).
OVERSUB_MARGIN = 0.5
#: A CPU row may imply at most this multiple of the measured GEMM peak before its number is
#: called implausible (the peak probe itself runs on a shared machine and can read low).
PEAK_SLACK = 1.5


@dataclass
class Contention:
    """What other processes did to the CPUs while a measurement ran.

    Attributes:
        busy_cores_others: Average cores kept busy by other processes (0..cpus).
        cpus: Logical CPUs this process may run on (affinity).
        wall_seconds: Length of the observed window.
    """

    busy_cores_others: float
    cpus: int
    wall_seconds: float


class ContentionProbe:
    """Measures other processes' CPU use between :meth:`start` and :meth:`stop` (Linux; None elsewhere)."""

    def __init__(self) -> None:
        self.cpus = cpu_affinity()
        self._j0: tuple[int, int] | None = None
        self._own0 = 0.0
        self._t0 = 0.0

    def start(self) -> ContentionProbe:
        """Start the window."""
        self._j0 = cpu_jiffies(self.cpus)
        self._own0 = own_cpu_seconds()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> Contention | None:
        """End the window; None when ``/proc/stat`` is unavailable or the window too short to count."""
        j1 = cpu_jiffies(self.cpus)
        wall = time.monotonic() - self._t0
        own = own_cpu_seconds() - self._own0
        j0 = self._j0
        if j0 is None or j1 is None or j1[1] <= j0[1] or wall < 0.05:
            return None
        share = (j1[0] - j0[0]) / (j1[1] - j0[1])
        others = max(0.0, min(float(len(self.cpus)), share * len(self.cpus) - own / wall))
        return Contention(busy_cores_others=others, cpus=len(self.cpus), wall_seconds=wall)


def runner_threads(info: dict[str, Any]) -> int | None:
    """CPU threads a runner used, from its ``describe()`` (torch ``threads``, ORT ``intra_op_num_threads``, OpenVINO ``threads``)."""
    for key in ("threads", "intra_op_num_threads", "inference_num_threads"):
        v = info.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def assess(
    samples: Sequence[float],
    *,
    threads: int | None = None,
    contention: dict[str, Any] | None = None,
    cv_threshold: float = CV_THRESHOLD,
) -> dict[str, Any]:
    """Judge one measurement.

    Args:
        samples: Per-repeat images/sec.
        threads: CPU threads the runner used (None: not a CPU runner, no oversubscription check).
        contention: :class:`Contention` as a dict (None: not measured).
        cv_threshold: Largest coefficient of variation accepted.

    Returns:
        JSON-ready dict: ``unstable`` (bool), ``reasons`` (list of one-line strings),
        ``cv``, ``cv_threshold``, ``threads``, ``busy_cores_others``, ``cpus``,
        ``oversubscribed`` (bool or None when unknown).
    """
    reasons: list[str] = []
    spread = cv(samples) if samples else 0.0
    if len(samples) >= 2 and spread > cv_threshold:
        reasons.append(
            f"repeats disagree: coefficient of variation {spread:.2f} > {cv_threshold:.2f}"
        )
    over: bool | None = None
    busy = cpus = None
    if contention is not None:
        busy, cpus = contention.get("busy_cores_others"), contention.get("cpus")
    if threads is not None and isinstance(busy, (int, float)) and isinstance(cpus, int):
        over = threads + busy > cpus + OVERSUB_MARGIN
        if over:
            reasons.append(
                f"oversubscribed: {threads} thread(s) + {busy:.1f} cores busy with other processes > {cpus} cores"
            )
    return {
        "unstable": bool(reasons),
        "reasons": reasons,
        "cv": spread,
        "cv_threshold": cv_threshold,
        "threads": threads,
        "busy_cores_others": busy,
        "cpus": cpus,
        "oversubscribed": over,
    }


def _field(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def speedup_verdict(
    row: Any, base: Any, peak_gflops: Mapping[str, float] | None = None
) -> tuple[float | None, str | None]:
    """The speed-up of ``row`` over ``base`` (images/sec over images/sec), or None and why it
    is withheld.

    A ratio is printed only when both sides are trustworthy: both measured, neither
    unstable, both run under the same thread policy, and (on a CPU, when ``peak_gflops``
    is known) neither implying more FLOP/s than :data:`PEAK_SLACK` times this CPU's measured
    peak at its precision (:func:`accelkit.flops.cpu_peak_gflops`): a 434x "speed-up" of a
    baseline that collapsed on an oversubscribed CPU is withheld, not printed.

    Args:
        row, base: Report rows (:class:`~accelkit.benchmark.report.BenchRow` or their dicts).
        peak_gflops: Precision -> this CPU's measured peak, GFLOP/s (None: no FLOP bound).

    Returns:
        ``(ratio, None)`` or ``(None, reason)``; ``(None, None)`` when a side was not measured.
    """
    a, b = _field(row, "images_per_sec"), _field(base, "images_per_sec")
    if not a or not b:
        return None, None
    for side, r in (("the build", row), ("the torch fp32 baseline", base)):
        if _field(r, "unstable"):
            why = _field(r, "unstable_reason") or "its repeats disagree"
            return None, f"{side} is unstable ({why})"
    ta = runner_threads(_field(row, "runner") or {})
    tb = runner_threads(_field(base, "runner") or {})
    if ta is not None and tb is not None and ta != tb:
        return None, f"not the same thread policy (the build ran {ta} thread(s), the baseline {tb})"
    if peak_gflops:
        for side, r in (("the build", row), ("the torch fp32 baseline", base)):
            flops = _field(r, "flops_per_image")
            prec = str(_field(r, "precision") or "fp32")
            peak = peak_gflops.get(prec)
            if str(_field(r, "device") or "cpu") != "cpu" or not flops or not peak:
                continue
            implied = float(_field(r, "images_per_sec")) * float(flops) / 1e9
            if implied > PEAK_SLACK * peak:
                return None, (
                    f"implausible: {side} implies {implied:.0f} GFLOP/s, above {PEAK_SLACK:g}x this CPU's "
                    f"measured {prec} peak ({peak:.0f} GFLOP/s)"
                )
    return float(a) / float(b), None


__all__ = [
    "CV_THRESHOLD",
    "OVERSUB_MARGIN",
    "PEAK_SLACK",
    "speedup_verdict",
    "Contention",
    "ContentionProbe",
    "assess",
    "runner_threads",
]
