"""The choice rules of ``accelkit optimize`` as pure functions: what the search accepts,
which build it chooses, what it checks next and what it skips when time runs short.

Nothing here measures, builds or reads a file: the functions take what the search has
learnt (:class:`Seen`: a build's speed, its drift, its status) and return decisions, so
each rule is tested on a table of cases (``tests/autotune/test_choice.py``).

The rules:

* **Budget** (:class:`Budget`, :func:`judge`): a build is accepted when the calibrated
  quality verdict (:mod:`accelkit.quality.verdict`) accepts it under the user's budget:
  ``floor`` = no detectable drift (the verdict's visibility margin; ``inconclusive`` is not
  accepted, and the verdict says what N would decide), ``psnr:DB`` = the paired test with
  its margin at DB, an FID number = the paired FID point estimate at most that.
* **Which test** (:func:`build_changes`, :func:`quality_test`): the paired test decides for
  builds meant to give the reference's images (precision, backend, runtime options,
  pruning); the distribution test for builds that change the sampling trajectory
  (:data:`TRAJECTORY_CHANGES`: diffusion steps, scheduler, caching).
* **Ties** (:func:`best`, :func:`detectably_worse`): builds within ``tie_margin`` of the
  fastest accepted one are as fast as timing noise can tell; of those, a build detectably
  worse than another tied build (per-image comparison on the same latents) is set aside,
  and of the rest the one with the least drift is chosen.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from accelkit.autotune.space import Candidate
from accelkit.errors import InputError
from accelkit.quality import verdict as qv
from accelkit.quality.verdict import BuildComparison, Verdict

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
#: What a build may change that changes the sampling trajectory (its images are not meant
#: to equal the reference's): the distribution test decides for such builds. A candidate
#: names them as runner options (``steps``, ``scheduler``, ``cache``) or in a
#: ``trajectory`` attribute.
TRAJECTORY_CHANGES = frozenset({"steps", "scheduler", "cache"})


@dataclass(frozen=True)
class Budget:
    """What quality the user accepts.

    Attributes:
        kind: ``floor`` (no detectable drift: the calibrated verdict accepts the build),
            ``fid`` (paired FID drift at most ``value``) or ``psnr`` (the paired test with
            its visibility margin at ``value`` dB).
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
        """``no detectable drift (...)`` style."""
        if self.kind == "floor":
            s = qv.VerdictSettings()
            return (
                f"no detectable drift (the quality verdict's {s.margin_db:g} dB visibility margin; "
                f"for a change of trajectory, KID within {s.anchor_db:g} dB pixel noise's; docs/quality.md)"
            )
        if self.kind == "fid":
            return f"FID drift <= {self.value:g}"
        return f"paired error within a {self.value:g} dB PSNR margin"

    def judge(self, drift: Any) -> Verdict:
        """The verdict of a :class:`~accelkit.quality.drift.Drift` (or its row fields) under this budget."""
        return qv.judge(drift, self)

    def fid_line(self, noise_floor: float | None) -> float | None:
        """The FID drift the Pareto plot draws as the budget line (None: the budget is not an FID)."""
        return self.value if self.kind == "fid" else None


def judge(drift: Any, budget: Budget) -> Verdict:
    """The one place the search judges a measured build against the budget.

    Args:
        drift: A :class:`~accelkit.quality.drift.Drift` or its ``row_fields()`` (the
            deciding test's verdict and the per-image evidence).
        budget: The user's budget.

    Returns:
        The :class:`~accelkit.quality.verdict.Verdict`: only ``accepted`` builds can be
        chosen; ``inconclusive`` ones are not, and their reason says what N would decide.
    """
    return budget.judge(drift)


def build_changes(candidate: Any) -> frozenset[str]:
    """What a candidate changes against the FP32 torch reference.

    ``backend`` (another runtime or an exported file), ``precision``, ``prune``, ``runtime``
    (a recipe variant such as ``compile``), ``exclusions`` (INT8/FP16 parts kept in float)
    and any of :data:`TRAJECTORY_CHANGES` named by its runner options or its
    ``trajectory`` attribute.
    """
    out: set[str] = set()
    if (
        getattr(candidate, "backend", "torch") != "torch"
        or getattr(candidate, "source", "torch") != "torch"
    ):
        out.add("backend")
    if getattr(candidate, "precision", "fp32") != "fp32":
        out.add("precision")
    if getattr(candidate, "prune_ratio", None):
        out.add("prune")
    if getattr(candidate, "recipe_variant", None):
        out.add("runtime")
    if (
        getattr(candidate, "exclude_groups", ())
        or getattr(candidate, "fp16_headroom", None) is not None
    ):
        out.add("exclusions")
    opts = getattr(candidate, "runner_options", None) or {}
    out |= {k for k in opts if k in TRAJECTORY_CHANGES}
    out |= {str(k) for k in (getattr(candidate, "trajectory", None) or ())}
    return frozenset(out)


def quality_test(changes: Iterable[str]) -> str:
    """The test that decides a build with these changes (:func:`build_changes`).

    ``distribution`` when any change alters the sampling trajectory
    (:data:`TRAJECTORY_CHANGES`: the build's images are not meant to equal the
    reference's), else ``paired`` (far more powerful where the images should match).
    """
    return "distribution" if set(changes) & TRAJECTORY_CHANGES else "paired"


def detectably_worse(x: Tried, y: Tried) -> BuildComparison | None:
    """Is build ``x`` detectably worse than build ``y``? None when they cannot be compared.

    Both decided by the paired test with per-image evidence on the same latents:
    :func:`~accelkit.quality.verdict.compare_builds` (a bootstrap over the per-image error
    differences). Both decided by the distribution test: ``x`` is worse when its
    interval lies entirely above ``y``'s (a conservative check without the features).
    Builds judged by different tests are not compared.
    """
    dx, dy = x.drift or {}, y.drift or {}
    tx, ty = dx.get("drift_test"), dy.get("drift_test")
    if tx is None or tx != ty:
        return None
    if tx == "paired":
        ex, ey = dx.get("drift_evidence"), dy.get("drift_evidence")
        if not (isinstance(ex, dict) and isinstance(ey, dict)):
            return None
        if len(ex.get("mse") or ()) != len(ey.get("mse") or ()):
            return None
        return qv.compare_builds(dx, dy, qv.VerdictSettings(resamples=1000))
    vx, vy = x.verdict, y.verdict
    if vx is None or vy is None or vx.n != vy.n:
        return None
    lo_x, hi_y = vx.interval[0], vy.interval[1]
    if not (math.isfinite(lo_x) and math.isfinite(hi_y)):
        return None
    worse = lo_x > hi_y
    decision = "worse" if worse else "not detectably different"
    return BuildComparison(
        "distribution",
        decision,
        "delta_kid_difference",
        vx.estimate - vy.estimate,
        (lo_x - hi_y, vx.interval[1] - vy.interval[0]),
        math.nan,
        math.nan,
        vx.n,
        f"distribution comparison (N = {vx.n}): X's KID delta interval "
        + ("lies above" if worse else "overlaps")
        + " Y's (non-overlapping 90 % intervals: a conservative check)",
    )


# ------------------------------------------------------------------------ what was learnt
@dataclass
class Tried:
    """What the search learnt about one candidate.

    Attributes:
        candidate: The candidate.
        row: Its speed row (a :class:`~accelkit.benchmark.report.BenchRow` as a dict), None when not timed.
        status: ``chosen``, ``accepted`` (valid but slower than the chosen one),
            ``rejected`` (quality outside the budget), ``inconclusive`` (the N used
            cannot tell: not accepted; its reason says what N would decide), ``failed``
            (could not be built or run), ``not checked`` (could not beat an accepted
            faster build, or no time).
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
        """Its quality was checked (accepted, rejected, inconclusive or chosen)."""
        return self.status in ("accepted", "rejected", "inconclusive", "chosen")

    @property
    def verdict(self) -> Verdict | None:
        """The deciding quality verdict recorded in its drift (None when not checked)."""
        try:
            return qv.verdict_of(self.drift) if self.drift else None
        except InputError:
            return None

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
            "drift_test": (self.drift or {}).get("drift_test"),
            "drift_interval": (self.drift or {}).get("drift_interval"),
            "min_detectable_effect": (self.drift or {}).get("min_detectable_effect"),
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


def best(
    tried: Sequence[Tried],
    margin: float,
    budget_kind: str,
    worse: Callable[[Tried, Tried], BuildComparison | None] | None = None,
) -> Tried | None:
    """The choice: of the accepted builds as fast as the fastest within ``margin`` (timing
    noise), those not detectably worse than another of them (``worse``, default
    :func:`detectably_worse`); of those, the one with the least drift; the faster one
    breaks a drift tie."""
    tied = tied_builds(tried, margin)
    if not tied:
        return None
    pool = [t for t in tied if not set_aside_by(t, tied, worse)] or tied
    return min(pool, key=lambda t: (drift_key(t, budget_kind), -(t.images_per_sec or 0.0)))


def tied_builds(tried: Sequence[Tried], margin: float) -> list[Tried]:
    """The accepted builds within ``margin`` of the fastest accepted one."""
    top = fastest(tried)
    if top is None:
        return []
    bar = tie_bar(top.images_per_sec or 0.0, margin)
    return [t for t in accepted(tried) if (t.images_per_sec or 0.0) >= bar]


def set_aside_by(
    t: Tried,
    tied: Sequence[Tried],
    worse: Callable[[Tried, Tried], BuildComparison | None] | None = None,
) -> str | None:
    """Why ``t`` loses the speed tie: ``t`` is detectably worse than another tied build
    (None: it is not)."""
    cmp = worse or detectably_worse
    for o in tied:
        if o is t:
            continue
        c = cmp(t, o)
        if c is not None and c.worse:
            return f"detectably worse than {o.candidate.id} ({c.reason})"
    return None


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


def explain_choice(
    chosen: Tried, top: Tried | None, margin: float, aside: str | None = None
) -> str:
    """Why ``chosen`` was chosen, in one line (the fastest, or the best quality among ties).

    ``aside``: why the fastest accepted build ``top`` lost the tie (:func:`set_aside_by`).
    """
    if top is not None and top is not chosen:
        head = f"within {margin:.0%} of the fastest accepted build {top.candidate.id} ({top.images_per_sec:.1f} img/s), "
        if aside:
            return head + f"which is {aside}; {chosen.reason}"
        return head + f"with less drift ({chosen.reason}; {top.candidate.id}: {top.reason})"
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
    "TRAJECTORY_CHANGES",
    "best",
    "build_changes",
    "detectably_worse",
    "can_time_expensive",
    "cannot_win",
    "drift_key",
    "explain_choice",
    "fastest",
    "fp16_rescue_headrooms",
    "int8_rescue_sizes",
    "judge",
    "quality_order",
    "quality_test",
    "rescue_first",
    "reserve_for_checks",
    "set_aside_by",
    "tie_bar",
    "tied_builds",
    "undecided",
]
