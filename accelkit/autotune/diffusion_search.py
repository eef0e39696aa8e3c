"""The search space and the choice rules of ``accelkit optimize`` for a diffusion pipeline.

Pure functions over plain values (no model, no timing), so every rule has a table-driven
test; :mod:`accelkit.pipelines.optimize_diffusion` runs them on measured numbers.

**The space** (kept small on purpose, :func:`diffusion_space`): the sampler levers
``steps`` {the reference's, 25, 20, 15, 10} x ``scheduler`` {ddim, dpm++} x ``cache``
({none, deepcache:2, deepcache:3} for a UNet; {none, fbcache:0.05, fbcache:0.1} for a DiT),
times the builds this machine runs (backend x precision). The reference (torch fp32 at
the reference sampler, uncached) is always timed. Excluded, with the reason recorded:
a cache at int8 (its partial graphs export as fp32/fp16 only), and sampler settings equal
to the reference's on a build that is the reference itself.

**Speed** (:func:`probe_candidates`, :func:`fit_step_cost`, :func:`estimated`): the space
is a few hundred candidates, too many to time each on a CPU within a search's budget, and
a sampler's cost is nearly linear in its steps for a given build. So each *unit* (backend x
precision x cache) is timed at two step counts (:func:`probe_steps`, the reference
scheduler), its cost per batch fitted as ``overhead + per_step x steps``, and every other
sampler of the unit gets an *estimated* speed from it; the reference is timed itself, and
so is every candidate before its quality is checked (its ratio is reported only then).

**The choice** (:func:`quality_order`, :func:`choose`): speed first -- quality is measured
only for candidates that could win, in decreasing (estimated) speed, and the first one the
distribution-level verdict accepts (``choice.judge`` with the budget) is chosen: nothing
slower can beat it. Unstable timings still rank (they are the best guess) but their ratios
are withheld in the report.

**The ladder** (:func:`ladder`): reference -> fewer steps (the best accepted candidate that
changes only steps/scheduler) -> + cache (only the sampler levers) -> + backend/precision
(the chosen build), each rung with what it gave over the previous one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Default step counts tried besides the reference's own.
STEP_GRID = (25, 20, 15, 10)
#: Default schedulers tried.
SCHEDULERS = ("ddim", "dpm++")
#: Default caches tried per denoiser family.
UNET_CACHES = ("none", "deepcache:2:1", "deepcache:3:1")
DIT_CACHES = ("none", "fbcache:0.05", "fbcache:0.1")
#: Precisions the cached partial graphs export at (ONNX backends).
CACHED_PRECISIONS = ("fp32", "fp16")
#: A ladder rung's ratio is withheld when either side's timing is unstable.
UNSTABLE = "unstable timing"
#: A speed estimated from a unit's per-step cost, not timed (its ratio is withheld).
ESTIMATED = "estimated from the unit's per-step cost, not timed"


@dataclass(frozen=True)
class DiffusionCandidate:
    """One build of a diffusion pipeline: sampler levers plus backend and precision.

    Attributes:
        scheduler: Sampler name (``ddim``, ``dpm++``...).
        steps: Denoising steps per image.
        cache: Canonical cache string (``none``, ``deepcache:3:1``, ``fbcache:0.1``).
        backend: Runner backend of the denoiser.
        precision: Denoiser precision.
    """

    scheduler: str
    steps: int
    cache: str = "none"
    backend: str = "torch"
    precision: str = "fp32"

    @property
    def id(self) -> str:
        """``ddim-20 deepcache:3:1 ort int8`` style."""
        return f"{self.scheduler}-{self.steps} {self.cache} {self.backend} {self.precision}"

    @property
    def sampler_label(self) -> str:
        """The sampler part (``ddim-20.deepcache:3:1``): a bench row's variant (no ``/``: it names files)."""
        return f"{self.scheduler}-{self.steps}.{self.cache}"

    def trajectory(self, reference: DiffusionCandidate) -> frozenset[str]:
        """The sampler levers that differ from the reference (``steps``, ``scheduler``,
        ``cache``): a change of trajectory, judged by the distribution-level test."""
        out = set()
        if self.steps != reference.steps:
            out.add("steps")
        if self.scheduler != reference.scheduler:
            out.add("scheduler")
        if self.cache != "none":
            out.add("cache")
        return frozenset(out)

    def levers(self, reference: DiffusionCandidate) -> frozenset[str]:
        """Every lever against the reference: the trajectory ones plus ``backend``/``precision``."""
        out = set(self.trajectory(reference))
        if self.backend != reference.backend:
            out.add("backend")
        if self.precision != reference.precision:
            out.add("precision")
        return frozenset(out)

    @property
    def unit(self) -> tuple[str, str, str]:
        """``(backend, precision, cache)``: what its per-step cost depends on (not the
        scheduler or the step count)."""
        return (self.backend, self.precision, self.cache)

    def bench_command(self, generator: str, batch: int, extra: Sequence[str] = ()) -> str:
        """The ``accelkit bench`` command that re-measures this build as printed."""
        args = [
            "accelkit", "bench", generator,
            "--steps", str(self.steps), "--scheduler", self.scheduler, "--cache", self.cache,
            "--backend", self.backend, "--precision", self.precision, "--batch", str(batch),
            *extra,
        ]  # fmt: skip
        return shlex.join(args)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "scheduler": self.scheduler,
            "steps": self.steps,
            "cache": self.cache,
            "backend": self.backend,
            "precision": self.precision,
        }


def diffusion_space(
    reference: DiffusionCandidate,
    builds: Sequence[tuple[str, str]],
    *,
    unet: bool,
    steps: Sequence[int] | None = None,
    schedulers: Sequence[str] | None = None,
    caches: Sequence[str] | None = None,
) -> tuple[list[DiffusionCandidate], list[tuple[str, str]]]:
    """Every candidate of the search, and those left out with the reason.

    Args:
        reference: The reference build (torch fp32 at the reference sampler, no cache).
        builds: ``(backend, precision)`` pairs this machine runs.
        unet: The denoiser is a UNet (DeepCache caches) rather than a DiT (FBCache).
        steps: Step counts besides the reference's (counts above it are dropped; default
            :data:`STEP_GRID`).
        schedulers: Schedulers tried (the reference's is always tried; default :data:`SCHEDULERS`).
        caches: Cache strings, canonical (``deepcache:3:1``); default by family.

    Returns:
        ``(candidates, excluded)``: the reference first; ``excluded`` as ``(id, reason)``.
    """
    cache_list = list(caches if caches is not None else (UNET_CACHES if unet else DIT_CACHES))
    step_grid = STEP_GRID if steps is None else steps
    step_list = [reference.steps, *(s for s in step_grid if s < reference.steps)]
    sched_list = [
        reference.scheduler,
        *(
            s
            for s in (SCHEDULERS if schedulers is None else schedulers)
            if s != reference.scheduler
        ),
    ]
    out = [reference]
    excluded: list[tuple[str, str]] = []
    seen = {reference}
    for backend, precision in builds:
        for n in dict.fromkeys(step_list):
            for sched in sched_list:
                for cache in cache_list:
                    c = DiffusionCandidate(sched, n, cache, backend, precision)
                    if c in seen:
                        continue
                    seen.add(c)
                    if cache != "none" and precision not in CACHED_PRECISIONS:
                        excluded.append(
                            (c.id, "a cache's partial graphs export as fp32/fp16 only, not int8")
                        )
                        continue
                    out.append(c)
    return out, excluded


@dataclass
class Timed:
    """A candidate's measured speed (and, once checked, its verdict).

    Attributes:
        candidate: The build.
        images_per_sec: Median finished images per second (None: it failed).
        unstable: Its repeats disagreed (the ratio is withheld, the rank kept).
        verdict: ``accepted``/``rejected``/``inconclusive`` once quality was checked.
        reason: Why it failed or what the verdict said.
        psnr_db: Paired PSNR against the reference (shown, not deciding).
        fid_drift: FID drift against the reference (the Pareto plot's axis).
        estimated: The speed is :func:`estimated` from the unit's per-step cost (timed
            itself once its quality is checked).
    """

    candidate: DiffusionCandidate
    images_per_sec: float | None
    unstable: bool = False
    verdict: str | None = None
    reason: str = ""
    psnr_db: float | None = None
    fid_drift: float | None = None
    estimated: bool = False

    @property
    def ok(self) -> bool:
        """It has a speed (timed, or estimated from its unit's per-step cost)."""
        return self.images_per_sec is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            **self.candidate.to_dict(),
            "images_per_sec": self.images_per_sec,
            "unstable": self.unstable,
            "verdict": self.verdict,
            "reason": self.reason,
            "psnr_db": self.psnr_db,
            "fid_drift": self.fid_drift,
            "estimated": self.estimated,
        }


def probe_steps(
    candidates: Sequence[DiffusionCandidate], reference: DiffusionCandidate
) -> list[int]:
    """The two step counts each unit is timed at: the fewest steps in the space and the
    most below the reference's (the reference's own when no other count is left): the
    counts the fastest candidates use lie between them."""
    counts = sorted({c.steps for c in candidates if c.steps <= reference.steps})
    lo = counts[0] if counts else reference.steps
    below = [n for n in counts if lo < n < reference.steps]
    hi = below[-1] if below else reference.steps
    return [lo] if hi == lo else [lo, hi]


def probe_candidates(
    candidates: Sequence[DiffusionCandidate],
    reference: DiffusionCandidate,
    steps: Sequence[int] | None = None,
) -> list[DiffusionCandidate]:
    """What the speed phase times: the reference, and each unit of ``candidates`` at the
    reference scheduler and each of ``steps`` (default :func:`probe_steps`)."""
    counts = list(steps) if steps is not None else probe_steps(candidates, reference)
    out = [reference]
    for unit in dict.fromkeys(c.unit for c in candidates):
        backend, precision, cache = unit
        for n in counts:
            c = DiffusionCandidate(reference.scheduler, n, cache, backend, precision)
            if c not in out:
                out.append(c)
    return out


@dataclass(frozen=True)
class StepCost:
    """A unit's fitted cost of one batch: ``overhead_s + per_step_s x steps`` seconds.

    Attributes:
        overhead_s: Seconds per batch that do not grow with steps (decode, set-up).
        per_step_s: Seconds per denoising step of the batch.
        unstable: A timing it was fitted from was unstable.
    """

    overhead_s: float
    per_step_s: float
    unstable: bool = False

    def seconds(self, steps: int) -> float:
        """Predicted seconds of one batch at ``steps``."""
        return self.overhead_s + self.per_step_s * steps


def fit_step_cost(points: Sequence[tuple[int, float]], unstable: bool = False) -> StepCost | None:
    """Least-squares line through ``(steps, seconds per batch)`` points, both terms kept
    non-negative (a negative overhead is refitted through the origin). None with fewer
    than two distinct step counts or a non-positive time."""
    pts = [(float(n), float(t)) for n, t in points]
    if len({n for n, _ in pts}) < 2 or any(t <= 0 for _, t in pts):
        return None
    k = len(pts)
    mx = sum(n for n, _ in pts) / k
    my = sum(t for _, t in pts) / k
    sxx = sum((n - mx) ** 2 for n, _ in pts)
    slope = sum((n - mx) * (t - my) for n, t in pts) / sxx
    overhead = my - slope * mx
    if slope < 0:
        slope, overhead = 0.0, my
    if overhead < 0:
        slope, overhead = sum(n * t for n, t in pts) / sum(n * n for n, _ in pts), 0.0
    return StepCost(overhead, slope, unstable)


def estimated(candidate: DiffusionCandidate, cost: StepCost, batch: int) -> Timed:
    """``candidate``'s speed predicted from its unit's :class:`StepCost` (images/s)."""
    return Timed(
        candidate,
        batch / cost.seconds(candidate.steps),
        unstable=cost.unstable,
        reason=ESTIMATED,
        estimated=True,
    )


def quality_order(timed: Sequence[Timed], reference: DiffusionCandidate) -> list[Timed]:
    """The candidates whose quality is worth checking, fastest first: those faster than
    the reference (a slower build cannot win; the reference itself needs no check)."""
    ref = next((t for t in timed if t.candidate == reference and t.ok), None)
    floor = ref.images_per_sec if ref is not None else None
    cands = [
        t
        for t in timed
        if t.ok
        and t.candidate != reference
        and (floor is None or (t.images_per_sec or 0.0) > floor)
    ]
    return sorted(cands, key=lambda t: -(t.images_per_sec or 0.0))


#: Precisions by how close they stay to fp32 (higher: closer). A change of trajectory
#: refused at one precision is not checked again at a precision ranked at or below it.
PRECISION_RANK = {"fp32": 2, "bf16": 1, "fp16": 1, "int8": 0}


def _sampler_key(c: DiffusionCandidate) -> tuple[str, int, str]:
    return (c.scheduler, c.steps, c.cache)


def _rank(c: DiffusionCandidate) -> int:
    return PRECISION_RANK.get(c.precision, 0)


def settled_by(t: Timed, timed: Sequence[Timed], reference: DiffusionCandidate) -> Timed | None:
    """A build that settles ``t`` without a check: the same change of trajectory (scheduler,
    steps, cache) refused (rejected or inconclusive) on any backend at equal or higher
    precision. Its images are those of ``t`` up to backend and precision error, which adds
    to the drift, not removes it; so ``t`` is set aside, never accepted (None: no such build,
    or ``t`` changes no trajectory, where the paired test judges the backend itself)."""
    if not t.candidate.trajectory(reference):
        return None
    key, rank = _sampler_key(t.candidate), _rank(t.candidate)
    return next(
        (
            r for r in timed
            if r is not t and r.verdict in ("rejected", "inconclusive")
            and _sampler_key(r.candidate) == key and _rank(r.candidate) >= rank
        ),
        None,
    )  # fmt: skip


def _full_precision_twin(t: Timed, pool: Sequence[Timed], timed: Sequence[Timed]) -> Timed | None:
    """The fastest unchecked fp32 build of ``t``'s trajectory when ``t`` is of lower precision
    and no fp32 build of that trajectory was judged: checking it first settles the trajectory
    for every precision with one check when it is refused."""
    if _rank(t.candidate) >= PRECISION_RANK["fp32"]:
        return None
    key = _sampler_key(t.candidate)

    def fp32_twin(x: Timed) -> bool:
        return _sampler_key(x.candidate) == key and x.candidate.precision == "fp32"

    if any(fp32_twin(x) and x.verdict is not None for x in timed):
        return None
    return next((x for x in pool if fp32_twin(x) and x.verdict is None), None)


def choose(
    timed: Sequence[Timed],
    reference: DiffusionCandidate,
    judge: Callable[[Timed], str],
    *,
    max_checks: int | None = None,
    time_left: Callable[[Timed], bool] = lambda t: True,
    confirm: Callable[[Timed], None] | None = None,
) -> tuple[Timed | None, list[Timed]]:
    """Speed first, then quality: check candidates in :func:`quality_order` with
    ``judge`` (sets and returns the verdict) until one is ``accepted``.

    An :func:`estimated` candidate is timed itself (``confirm``, which replaces its speed)
    before it is judged, and the order is redone: it is judged only while it is still the
    fastest candidate left (and faster than the reference), so the chosen build was timed
    faster than every build not checked, estimated or timed. A candidate judged before
    (its ``verdict`` set, e.g. by an earlier pass over a wider pool) keeps its verdict and
    is not judged again: an accepted one is chosen where it ranks.

    A change of trajectory is judged once for every backend: a candidate :func:`settled_by`
    a refused build of the same trajectory at equal or higher precision is set aside
    unchecked (its ``reason`` says by which), and before a lower-precision build of a
    trajectory no fp32 build has been judged on, the fastest fp32 build of it (faster than
    the reference) is checked first. Either way the chosen build is the fastest accepted
    one among those checked, and every faster build was checked or set aside.

    Args:
        timed: Every candidate with a speed (timed or estimated).
        reference: The reference build (chosen when nothing faster is accepted).
        judge: Measures a candidate's quality; returns its verdict.
        max_checks: At most this many quality checks (None: no limit).
        time_left: False once the time budget cannot hold checking this candidate (timing
            it first, when estimated, then its quality): the search stops there.
        confirm: Times an estimated candidate (sets ``images_per_sec``, ``unstable``,
            ``estimated=False``; ``images_per_sec`` None when it failed). None: estimated
            speeds are taken as they are.

    Returns:
        ``(chosen, checked)``: the accepted fastest build, or the reference when none
        was accepted (None when the reference was not timed either); ``checked``: the
        candidates this call judged, in order.
    """
    checked: list[Timed] = []
    done: set[int] = set()
    while True:
        pool = [t for t in quality_order(timed, reference) if id(t) not in done]
        if not pool:
            break
        first = t = pool[0]
        if t.verdict is not None:  # judged before (an earlier pass): the verdict stands
            done.add(id(t))
            if t.verdict == "accepted":
                return t, checked
            continue
        by = settled_by(t, timed, reference)
        if by is not None:
            done.add(id(t))
            t.reason = (
                f"not checked: the same sampler was {by.verdict} as {by.candidate.id} (another "
                "backend or a lower precision on that trajectory adds error, it does not remove it)"
            )
            continue
        t = _full_precision_twin(t, pool, timed) or t
        if (max_checks is not None and len(checked) >= max_checks) or not time_left(t):
            break
        if t.estimated and confirm is not None:
            confirm(t)
            t.estimated = False
            continue  # re-rank with its measured speed
        t.verdict = judge(t)
        checked.append(t)
        if t.verdict == "accepted" and t is first:
            return t, checked
        if t.verdict != "accepted":
            done.add(id(t))
        # an accepted fp32 twin stays in the pool: chosen where it ranks, after its faster
        # lower-precision build has been checked
    accepted = _fastest(checked)
    if accepted is not None:  # stopped (budget, check limit) after a twin was accepted
        return accepted, checked
    ref = next((t for t in timed if t.candidate == reference and t.ok), None)
    return ref, checked


@dataclass(frozen=True)
class Rung:
    """One step of the ladder.

    Attributes:
        name: ``reference``, ``fewer steps``, ``+ cache``, ``+ backend/precision``.
        timed: The build at this rung (None: no accepted build used this lever).
        ratio: Speed over the previous rung (None: withheld or not applicable).
        withheld: Why the ratio is withheld.
        via: When the rung's build was not checked itself: the accepted build whose
            verdict it takes (the same sampler at fp32 on another backend).
    """

    name: str
    timed: Timed | None
    ratio: float | None = None
    withheld: str | None = None
    via: str | None = None


def _fastest(ts: Sequence[Timed], accepted_only: bool = True) -> Timed | None:
    pool = [t for t in ts if t.ok and (t.verdict == "accepted" or not accepted_only)]
    return max(pool, key=lambda t: t.images_per_sec or 0.0, default=None)


def fastest_accepted(ts: Sequence[Timed]) -> Timed | None:
    """The fastest accepted build of ``ts`` (None: none was accepted)."""
    return _fastest(ts)


def _ratio(t: Timed, base: Timed) -> tuple[float | None, str | None]:
    """``t``'s speed over ``base``'s, or None and why it is withheld (a side estimated, or
    unstable)."""
    if t.estimated or base.estimated:
        return None, ESTIMATED
    if t.unstable or base.unstable:
        return None, UNSTABLE
    return (t.images_per_sec or 0.0) / (base.images_per_sec or 1.0), None


def ladder(
    timed: Sequence[Timed], reference: DiffusionCandidate, chosen: Timed | None
) -> list[Rung]:
    """Reference -> fewer steps -> + cache -> + backend/precision: what each lever gave.

    A rung is the fastest quality-accepted candidate using only the levers so far (the
    last rung is the chosen build); a torch fp32 build not checked itself counts as
    accepted when its sampler was accepted at fp32 on another backend (``via`` names that
    build). A rung no accepted candidate reaches keeps the previous build (ratio 1 is not
    claimed: the ratio is None with the reason). Ratios are over the previous rung,
    withheld when either side is unstable or estimated.
    """
    ref = next((t for t in timed if t.candidate == reference and t.ok), None)
    accepted_fp32 = {
        _sampler_key(t.candidate): t
        for t in timed
        if t.verdict == "accepted" and t.candidate.precision == "fp32"
    }

    def verdict_of(t: Timed) -> Timed | None:
        """The accepted build whose verdict ``t`` has: itself, or, unchecked at fp32, its
        sampler's accepted fp32 build on another backend (backend error only between them)."""
        if t.verdict == "accepted":
            return t
        if t.verdict is None and t.candidate.precision == "fp32":
            return accepted_fp32.get(_sampler_key(t.candidate))
        return None

    sampler_only = [
        t
        for t in timed
        if t.ok
        and not ({"backend", "precision"} & t.candidate.levers(reference))
        and verdict_of(t) is not None
    ]
    steps_only = [t for t in sampler_only if "cache" not in t.candidate.trajectory(reference)]
    rungs: list[Rung] = [Rung("reference", ref)]
    picks = [
        ("fewer steps", _fastest(steps_only, accepted_only=False)),
        ("+ cache", _fastest(sampler_only, accepted_only=False)),
        ("+ backend/precision", chosen),
    ]
    prev = ref
    for name, pick in picks:
        if pick is None or prev is None or pick is prev:
            rungs.append(Rung(name, pick or prev, None, "no accepted build gained from this lever"))
            continue
        by = verdict_of(pick)
        via = by.candidate.id if by is not None and by is not pick else None
        rungs.append(Rung(name, pick, *_ratio(pick, prev), via))
        prev = pick
    return rungs


#: The levers :func:`held_back` reports on, and the candidate fields each one moves.
LEVER_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("steps/scheduler", ("steps", "scheduler")),
    ("cache", ("cache",)),
    ("backend/precision", ("backend", "precision")),
)


@dataclass(frozen=True)
class Shortfall:
    """What one lever could have added beyond the chosen build, and why it did not.

    Attributes:
        lever: ``steps/scheduler``, ``cache`` or ``backend/precision``.
        timed: The fastest candidate faster than the chosen one that moves only this
            lever away from the chosen build's settings, and was not accepted.
        gain: Its speed over the chosen build (None: withheld, see ``withheld``).
        withheld: Why ``gain`` is withheld (an unstable or estimated speed).
        why: Its verdict and reason, or why it was not checked.
    """

    lever: str
    timed: Timed
    gain: float | None
    withheld: str | None
    why: str


def _moved(c: DiffusionCandidate, base: DiffusionCandidate) -> frozenset[str]:
    return frozenset(
        f for f in ("steps", "scheduler", "cache", "backend", "precision")
        if getattr(c, f) != getattr(base, f)
    )  # fmt: skip


def held_back(timed: Sequence[Timed], chosen: Timed | None) -> list[Shortfall]:
    """Which lever fell short, and by how much: per lever, the fastest candidate faster
    than the chosen build that moves that lever alone (every other field as the chosen
    build's) and was not accepted, its speed over the chosen build, and why (rejected,
    inconclusive with the N that would decide, set aside, or not checked). A lever with no
    such candidate is absent: no faster build in the searched space moves only it.
    """
    if chosen is None or not chosen.ok:
        return []
    base = float(chosen.images_per_sec or 0.0)
    faster = [
        t for t in timed
        if t.ok and t is not chosen and t.verdict != "accepted"
        and float(t.images_per_sec or 0.0) > base
    ]  # fmt: skip
    out = []
    for lever, fields in LEVER_GROUPS:
        alone = [
            t for t in faster
            if (m := _moved(t.candidate, chosen.candidate)) and m <= set(fields)
        ]  # fmt: skip
        pick = _fastest(alone, accepted_only=False)
        if pick is None:
            continue
        gain, withheld = _ratio(pick, chosen)
        why = (
            f"{pick.verdict}: {pick.reason}"
            if pick.verdict
            else pick.reason
            if pick.reason.startswith("not checked")
            else "not checked (checks go fastest first; the budget or the check limit ran out first)"
        )
        out.append(Shortfall(lever, pick, gain, withheld, why))
    return out


__all__ = [
    "CACHED_PRECISIONS",
    "DIT_CACHES",
    "ESTIMATED",
    "SCHEDULERS",
    "STEP_GRID",
    "UNET_CACHES",
    "DiffusionCandidate",
    "LEVER_GROUPS",
    "PRECISION_RANK",
    "Rung",
    "Shortfall",
    "StepCost",
    "Timed",
    "choose",
    "diffusion_space",
    "estimated",
    "fastest_accepted",
    "fit_step_cost",
    "held_back",
    "ladder",
    "probe_candidates",
    "probe_steps",
    "quality_order",
    "settled_by",
]
