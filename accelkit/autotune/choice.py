"""The choice rules of ``accelkit optimize`` as pure functions: what the search accepts,
which build it chooses, what it checks next and what it skips when time runs short.

Nothing here measures, builds or reads a file: the functions take what the search has
learnt (:class:`Seen`: a build's speed, its drift, its status) and return decisions, so
each rule is tested on a table of cases (``tests/autotune/test_choice.py``).

The rules:

* **Budget** (:class:`Budget`, :func:`judge`): a build is accepted when its drift is
  within the user's budget (the noise floor, a max FID drift, or a min paired PSNR).
* **Ties** (:func:`best`): builds within ``tie_margin`` of the fastest accepted one are as
  fast as timing noise can tell; of those, the one with the least drift is chosen.
* **What can still win** (:func:`cannot_win`): a build slower than the fastest accepted
  one beyond the tie margin is never quality-checked.
* **Order** (:func:`quality_order`): quality checks run fastest first.
* **Rescue** (:func:`int8_rescue_sizes`): a rejected INT8 build is retried keeping its
  1, 2, 4... most sensitive layer groups in float, never all of them.
* **Time** (:func:`affordable`, :func:`next_action`): a phase starts only when its
  estimated cost fits the time left; when time is short, the quality check of a build
  that ties with the fastest accepted one comes before timing a new candidate, so a
  short budget never changes which build the rule picks among those measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from accelkit.autotune.space import Candidate
from accelkit.errors import InputError

#: Images of the quick paired-PSNR check that rejects a clearly broken build before its FID.
QUICK_IMAGES = 16
#: Most rescue retries of one rejected build.
MAX_RETRIES = 4
#: FP16 rescue: the activation headrooms tried (lower keeps more nodes in fp32).
FP16_RESCUE_HEADROOMS = (0.05, 0.005)
#: Rounds of the interleaved confirmation of the chosen build against the baseline.
CONFIRM_ROUNDS = 5
#: Share of the time budget that may be spent before an expensive candidate is tried.
EXPENSIVE_BEFORE = 0.5


@dataclass(frozen=True)
class Budget:
    """What quality the user accepts.

    Attributes:
        kind: ``floor`` (FID drift within the noise floor), ``fid`` (FID drift at most
            ``value``) or ``psnr`` (paired PSNR at least ``value`` dB).
        value: The threshold for ``fid`` / ``psnr``.
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str | float) -> Budget:
        """``floor``, a number (max FID drift) or ``psnr:DB``.

        Raises:
            InputError: Anything else, or a non-finite / negative threshold.
        """
        raw = str(text).strip().lower()
        if raw == "floor":
            return cls("floor")
        kind, num = ("psnr", raw.split(":", 1)[1]) if raw.startswith("psnr:") else ("fid", raw)
        try:
            value = float(num)
        except ValueError:
            raise InputError(
                f"--budget {text!r} is not floor, a max FID drift (e.g. 2.5) or psnr:DB (e.g. psnr:35)"
            ) from None
        if not math.isfinite(value) or value < 0 or (kind == "psnr" and value == 0):
            raise InputError(f"--budget {text!r}: the threshold must be a finite positive number")
        return cls(kind, value)

    def describe(self) -> str:
        """``FID drift within the noise floor`` style."""
        if self.kind == "floor":
            return "FID drift within the noise floor"
        if self.kind == "fid":
            return f"FID drift <= {self.value:g}"
        return f"paired PSNR >= {self.value:g} dB"

    def judge(self, drift: Any) -> tuple[bool, str]:
        """``(accepted, why)`` for a :class:`~accelkit.quality.drift.Drift`."""
        if drift.fid_drift is None or not math.isfinite(drift.fid_drift):
            return False, "FID drift could not be measured"
        if self.kind == "floor":
            ok = drift.fid_drift <= drift.noise_floor_fid
            return (
                ok,
                f"FID drift {drift.fid_drift:.3g} {'<=' if ok else '>'} noise floor {drift.noise_floor_fid:.3g}",
            )
        if self.kind == "fid":
            ok = drift.fid_drift <= (self.value or 0.0)
            return (
                ok,
                f"FID drift {drift.fid_drift:.3g} {'<=' if ok else '>'} budget {self.value:g}",
            )
        ok = drift.psnr_db >= (self.value or 0.0)
        return ok, f"PSNR {drift.psnr_db:.1f} dB {'>=' if ok else '<'} budget {self.value:g} dB"

    def fid_line(self, noise_floor: float | None) -> float | None:
        """The FID drift the Pareto plot draws as the budget line (None for a PSNR budget)."""
        if self.kind == "floor":
            return noise_floor
        return self.value if self.kind == "fid" else None


def judge(drift: Any, budget: Budget) -> tuple[bool, str]:
    """``(accepted, why)``: the one place the search judges a measured drift against the budget.

    Args:
        drift: A :class:`~accelkit.quality.drift.Drift` (its ``fid_drift``,
            ``noise_floor_fid`` and ``psnr_db``).
        budget: The user's budget.
    """
    return budget.judge(drift)


# ------------------------------------------------------------------------ what was learnt
@dataclass
class Tried:
    """What the search learnt about one candidate.

    Attributes:
        candidate: The candidate.
        row: Its speed row (a :class:`~accelkit.benchmark.report.BenchRow` as a dict), None when not timed.
        status: ``chosen``, ``accepted`` (valid but slower than the chosen one),
            ``rejected`` (quality outside the budget), ``failed`` (could not be built or
            run), ``not checked`` (could not beat an accepted faster build, or no time).
        reason: One line: the measurement that decided.
        quick_psnr_db: Paired PSNR on the quick set (None when not checked).
        drift: The quality row fields (FID/KID drift, PSNR, noise floor...), None when not checked.
        artifact: Path of its artifact file (None for torch runs of the original).
    """

    candidate: Candidate
    row: dict[str, Any] | None = None
    status: str = "not checked"
    reason: str = ""
    quick_psnr_db: float | None = None
    drift: dict[str, Any] | None = None
    artifact: str | None = None

    @property
    def images_per_sec(self) -> float | None:
        """Median images/sec at the search's batch size."""
        return None if self.row is None else self.row.get("images_per_sec")

    @property
    def unstable(self) -> bool:
        """Its speed row did not hold (repeats disagree, or the CPU was oversubscribed)."""
        return bool((self.row or {}).get("unstable"))

    @property
    def judged(self) -> bool:
        """Its quality was decided (accepted, rejected or chosen)."""
        return self.status in ("accepted", "rejected", "chosen")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (sidecar, report settings)."""
        return {
            "candidate": self.candidate.to_dict(),
            "images_per_sec": self.images_per_sec,
            "unstable": self.unstable,
            "status": self.status,
            "reason": self.reason,
            "quick_psnr_db": self.quick_psnr_db,
            "fid_drift": (self.drift or {}).get("fid_drift"),
            "psnr_db": (self.drift or {}).get("psnr_db"),
            "artifact": self.artifact,
        }


# ------------------------------------------------------------------------ the choice
def drift_key(t: Tried, budget_kind: str) -> float:
    """Smaller is better: FID drift, or minus the PSNR for a PSNR budget (unmeasured: worst)."""
    d = t.drift or {}
    if budget_kind == "psnr":
        v = d.get("psnr_db")
        return -v if isinstance(v, (int, float)) else math.inf
    v = d.get("fid_drift")
    return v if isinstance(v, (int, float)) and math.isfinite(v) else math.inf


def accepted(tried: Iterable[Tried]) -> list[Tried]:
    """The builds whose quality is within the budget and whose speed was measured."""
    return [t for t in tried if t.status in ("accepted", "chosen") and t.images_per_sec]


def fastest(tried: Iterable[Tried]) -> Tried | None:
    """The fastest accepted build (None when none is accepted)."""
    ok = accepted(tried)
    return max(ok, key=lambda t: t.images_per_sec or 0.0) if ok else None


def tie_bar(fastest_ips: float, margin: float) -> float:
    """The images/sec a build needs to tie with a build of ``fastest_ips`` (within ``margin``)."""
    return fastest_ips * (1 - margin)


def best(tried: Sequence[Tried], margin: float, budget_kind: str) -> Tried | None:
    """The choice: of the accepted builds as fast as the fastest within ``margin`` (timing
    noise), the one with the least drift; the faster one breaks a drift tie."""
    top = fastest(tried)
    if top is None:
        return None
    bar = tie_bar(top.images_per_sec or 0.0, margin)
    tied = [t for t in accepted(tried) if (t.images_per_sec or 0.0) >= bar]
    return min(tied, key=lambda t: (drift_key(t, budget_kind), -(t.images_per_sec or 0.0)))


def cannot_win(t: Tried, tried: Sequence[Tried], margin: float) -> str | None:
    """Why ``t`` need not be quality-checked: it is slower than the fastest accepted build
    beyond the tie margin (None: it could still be chosen)."""
    top = fastest(tried)
    if top is None or top is t:
        return None
    if (t.images_per_sec or 0.0) >= tie_bar(top.images_per_sec or 0.0, margin):
        return None
    by = f" by more than the {margin:.0%} tie margin" if margin else ""
    return f"{t.images_per_sec:.1f} img/s cannot beat the accepted {top.candidate.id} ({top.images_per_sec:.1f} img/s){by}"


def quality_order(tried: Iterable[Tried]) -> list[Tried]:
    """Timed, unfailed builds in the order their quality is checked: fastest first."""
    return sorted(
        (t for t in tried if t.row is not None and t.status != "failed"),
        key=lambda t: -(t.images_per_sec or 0.0),
    )


def undecided(tried: Sequence[Tried], margin: float) -> list[Tried]:
    """Timed builds not yet judged that could still be chosen, fastest first: the quality
    checks that can change the answer."""
    return [
        t
        for t in quality_order(tried)
        if not t.judged and t.status != "failed" and cannot_win(t, tried, margin) is None
    ]


def explain_choice(chosen: Tried, top: Tried | None, margin: float) -> str:
    """Why ``chosen`` was chosen, in one line (the fastest, or the least drift among ties)."""
    if top is not None and top is not chosen:
        return (
            f"within {margin:.0%} of the fastest accepted build {top.candidate.id} ({top.images_per_sec:.1f} img/s), "
            f"with less drift ({chosen.reason}; {top.candidate.id}: {top.reason})"
        )
    if chosen.reason.startswith("fastest"):
        return chosen.reason
    return (
        f"fastest accepted build ({chosen.reason})" if chosen.reason else "fastest accepted build"
    )


# ------------------------------------------------------------------------ rescue
def int8_rescue_sizes(groups: int, max_retries: int = MAX_RETRIES) -> list[int]:
    """How many of the most sensitive layer groups each INT8 retry keeps in float: 1, 2, 4...
    (as Polygraphy's ``debug precision`` bisects), never all of them (then nothing is int8)."""
    out: list[int] = []
    n = 1
    while n < groups and len(out) < max_retries:
        out.append(n)
        if n == groups - 1:
            break
        n = min(2 * n, groups - 1)
    return out


def fp16_rescue_headrooms(max_retries: int = MAX_RETRIES) -> list[float]:
    """The activation headrooms an FP16 retry uses (lower keeps more nodes in fp32)."""
    return list(FP16_RESCUE_HEADROOMS[:max_retries])


# ------------------------------------------------------------------------ time
def affordable(cost_s: float, left_s: float, reserve_s: float = 0.0) -> bool:
    """A phase estimated at ``cost_s`` fits in ``left_s`` while keeping ``reserve_s`` for later work."""
    return cost_s + reserve_s <= left_s


def reserve_for_checks(
    tried: Sequence[Tried], margin: float, check_s: float, *, and_new: bool = False
) -> float:
    """Seconds to keep for the quality checks of builds already timed that could decide the
    choice: the undecided builds tying with the fastest of them (at least one when any is
    undecided). Timing a new candidate must leave this much, plus (``and_new``) one check of
    the new candidate itself, which may turn out to tie too: with little time left, checking
    the builds that tie comes before finding new ones, so a short budget never changes the
    rule that picks among the builds measured."""
    extra = check_s if and_new else 0.0
    open_ = undecided(tried, margin)
    if not open_:
        return extra
    top = open_[0].images_per_sec or 0.0
    bar = tie_bar(top, margin)
    ties = [t for t in open_ if (t.images_per_sec or 0.0) >= bar]
    return check_s * max(1, len(ties)) + extra


def rescue_first(left_s: float, rescue_s: float, pending_checks_s: float) -> bool:
    """Retry a rejected build now (depth first, the usual order) only when the time left holds
    the retries *and* the pending checks of builds already timed; otherwise those checks come
    first and the retries wait for the time that remains."""
    return rescue_s + pending_checks_s <= left_s


def can_time_expensive(elapsed_s: float, budget_s: float) -> bool:
    """An expensive candidate (compilation, engine builds) is tried only while at most
    :data:`EXPENSIVE_BEFORE` of the budget is spent."""
    return elapsed_s <= EXPENSIVE_BEFORE * budget_s


__all__ = [
    "CONFIRM_ROUNDS",
    "MAX_RETRIES",
    "QUICK_IMAGES",
    "Budget",
    "Tried",
    "accepted",
    "affordable",
    "best",
    "can_time_expensive",
    "cannot_win",
    "drift_key",
    "explain_choice",
    "fastest",
    "fp16_rescue_headrooms",
    "int8_rescue_sizes",
    "judge",
    "quality_order",
    "rescue_first",
    "reserve_for_checks",
    "tie_bar",
    "undecided",
]
