"""The search behind ``accelkit optimize``: it orchestrates, the rules live elsewhere.

* **What to try** comes from the registry (:mod:`accelkit.autotune.space`): every recipe
  the searched backends offer, the FP32 torch baseline first.
* **Builds** come from one :class:`~accelkit.passes.build.Builder` per model variant
  (the same recipe ``bench`` and ``export`` use: the file chosen here is the file
  ``bench`` makes).
* **The choice** -- the budget, ties, the rescue order, what to check next when time is
  short -- is :mod:`accelkit.autotune.choice`, pure functions with table-driven tests.

Order of work (cheap things first, so a candidate that cannot win costs little):

1. **Speed** of the baseline, then the quality reference (FP32 torch images and the noise
   floor), then the speed of every other candidate at the user's batch size, expensive
   ones last; every candidate runs under the run's one thread policy.
2. **Quality**, fastest first, only for candidates that could still be chosen: paired PSNR
   on a few images (cheap reject), then the quality verdict on N latents against the FP32
   torch reference: the test follows what the build changed (paired for precision,
   backend and pruning; distribution for trajectory changes, :func:`choice.quality_test`),
   and only ``accepted`` builds can be chosen.
3. **Rescue**: a rejected or inconclusive INT8 candidate is retried with its most sensitive layer groups
   kept in float (1, 2, 4... groups), an FP16 one with more nodes kept in fp32.
4. **Confirmation** of the chosen build against the baseline, interleaved in rounds.

**The time budget** (:class:`Clock`) is held by estimating each phase before starting it
(from what the same phase cost so far, or a probe) and not starting what does not fit;
time is kept for the quality checks of builds already timed that tie with the fastest
(:func:`~accelkit.autotune.choice.reserve_for_checks`), for the confirmation and for
writing the outputs. So a short budget measures fewer candidates, never judges the ones
it measured by another rule.

Every finished step is appended to a journal (:class:`~accelkit.autotune.journal.Journal`):
a killed search continues where it stopped. The FP32 torch model is always a valid
build (it is the reference), so the search always has an answer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.autotune import choice
from accelkit.autotune.choice import Budget, Tried
from accelkit.autotune.journal import Journal
from accelkit.autotune.space import Candidate, SearchSpace
from accelkit.errors import InputError, NonFiniteOutputError, one_line
from accelkit.quality.verdict import VerdictSettings

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: Seconds kept at the end of the budget for writing the report, plot and chosen artifact.
WRITE_RESERVE_S = 5.0
#: Share of the budget the plan leaves unused, so a phase that overruns its estimate still
#: ends inside the 5 % the budget promises.
PLAN_SLACK = 0.03
#: Factor on the estimates of the long, load-sensitive phases (the reference, quality checks).
SAFETY = 1.5
#: Guesses of a phase's cost before it has been seen once, seconds.
FIRST_GUESS_S = {
    "build:onnx-fp32": 10.0,
    "build:onnx-fp16": 10.0,
    "build:onnx-int8": 20.0,
    "expensive": 60.0,
    "sensitivity": 60.0,
}


# ------------------------------------------------------------------------ time
class Clock:
    """The time budget: a deadline, the time left, and what each phase has cost so far.

    Args:
        budget_s: The budget, seconds.
        started: ``time.monotonic()`` when the command started (default: now).
    """

    def __init__(self, budget_s: float, started: float | None = None) -> None:
        self.budget_s = float(budget_s)
        self.t0 = time.monotonic() if started is None else started
        self.costs: dict[str, list[float]] = {}
        self.spent: dict[str, float] = {}

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return time.monotonic() - self.t0

    def left(self, reserve_s: float = 0.0) -> float:
        """Seconds of the budget left to plan with (:data:`PLAN_SLACK` of it stays unplanned),
        minus ``reserve_s`` kept for later work."""
        return self.budget_s * (1 - PLAN_SLACK) - self.elapsed() - reserve_s

    def record(self, phase: str, kind: str, seconds: float) -> None:
        """One ``kind`` of work (``speed``, ``quality``, ``build:onnx-int8``...) took ``seconds``,
        accounted to ``phase`` in the outcome's time breakdown."""
        self.costs.setdefault(kind, []).append(seconds)
        self.spent[phase] = self.spent.get(phase, 0.0) + seconds

    def estimate(self, kind: str, default: float) -> float:
        """The next ``kind`` of work will cost about this (the largest seen so far, else ``default``)."""
        seen = self.costs.get(kind)
        return max(seen) if seen else default


# ------------------------------------------------------------------------ outcome
@dataclass
class SearchOutcome:
    """The search's result: every candidate tried, the chosen one, how the time was spent.

    Attributes:
        tried: Every candidate, with what was learnt.
        chosen, baseline: The choice and the FP32 torch baseline.
        noise_floor_fid: The FID noise floor at N (None when quality was never measured).
        seconds: Phase -> seconds, and ``total``.
        complete: Nothing was left out for lack of time.
        resumed: The search continued a journal.
        notes: One-line notes (what could not run, what was skipped and why).
        confirmation: The interleaved confirmation (ratio with its interval, or withheld).
        not_offered: ``"backend precision: reason"`` for cells no searched backend runs here.
        threads: The CPU threads every candidate and the baseline ran with (None on CUDA).
        cpu_peak_gflops: This CPU's measured GEMM peak per precision (the FLOP bound of ratios).
    """

    tried: list[Tried]
    chosen: Tried
    baseline: Tried
    noise_floor_fid: float | None
    seconds: dict[str, float]
    complete: bool
    resumed: bool
    notes: list[str] = field(default_factory=list)
    confirmation: dict[str, Any] | None = None
    not_offered: list[str] = field(default_factory=list)
    threads: int | None = None
    cpu_peak_gflops: dict[str, float] = field(default_factory=dict)

    def speedup(self, t: Tried) -> tuple[float | None, str | None]:
        """``t``'s speed over the baseline's from the search's timings, or None and why it is withheld."""
        from accelkit.benchmark.stability import speedup_verdict

        if t.row is None or self.baseline.row is None:
            return None, None
        return speedup_verdict(t.row, self.baseline.row, self.cpu_peak_gflops or None)


def search_key(
    opts: Any, budget: Budget, device: str, backends: list[str], candidates: list[Candidate]
) -> dict[str, Any]:
    """Everything that changes a search's outcome (the journal key), from its options."""
    return {
        "budget": [budget.kind, budget.value],
        "backends": sorted(backends),
        "batch": opts.batch,
        "device": device,
        "fid": opts.fid.n,
        "seed": opts.seed,
        "threads": opts.threads.count,  # the policy (the count it resolves to may differ on resume)
        "fid_weights": opts.fid.weights,
        "quick_images": choice.QUICK_IMAGES,
        "min_psnr_db": opts.min_psnr_db,
        "tie_margin": opts.tie_margin,
        "int8": opts.int8.recipe(),
        "prune_ratios": list(opts.prune_ratios) if opts.allow_prune else [],
        "distill_steps": opts.distill_steps,
        "max_retries": choice.MAX_RETRIES,
        "candidates": [c.id for c in candidates],
        # the quality rule: a journal judged by another rule (the old noise floor, other
        # margins) is not resumed
        "quality_rule": {"verdict": 1, **VerdictSettings().to_dict()},
    }


def search_recipe(opts: Any) -> Any:
    """The build recipe of a search: the defaults every command uses, the search's INT8
    settings, the batch range widened to cover its batch (``export`` with the printed flags
    makes the same file)."""
    from accelkit.options import BuildRecipe

    base = BuildRecipe()
    return BuildRecipe(onnx=base.onnx.covering([opts.batch]), fp16=base.fp16, int8=opts.int8)


# ------------------------------------------------------------------------ search
class Search:
    """Runs the search for one generator.

    Args:
        original: The generator (torch artifact): the FP32 reference and the model to accelerate.
        opts: The validated :class:`~accelkit.pipelines.options.OptimizeOptions`.
        budget: The parsed quality budget.
        device: The resolved device.
        threads: The run's CPU threads (one policy for every runner; None on CUDA).
        space: The candidates (baseline first) and the cells not offered here.
        workdir: Folder for the artifacts the search builds (``<out>/artifacts``).
        journal: The journal to record into (and resume from).
        clock: The time budget (started when the command started).
        progress: Called with a short status line (done / left / best so far).
    """

    def __init__(
        self,
        original: Artifact,
        opts: Any,
        *,
        budget: Budget,
        device: str,
        threads: int | None,
        space: SearchSpace,
        workdir: Path,
        journal: Journal,
        clock: Clock,
        progress: Progress | None = None,
        trust_code: bool = False,
    ) -> None:
        self.original = original
        self.trust_code = trust_code
        self.opts = opts
        self.budget = budget
        self.device = device
        self.threads = threads
        self.candidates = list(space.candidates)
        self.not_offered = list(space.not_offered)
        self.workdir = workdir
        self.journal = journal
        self.clock = clock
        self.say = progress or (lambda m: None)
        self.models: dict[str, Artifact] = {"original": original}
        self.builders: dict[str, Any] = {}
        self.tried: dict[str, Tried] = {}
        self.meter: Any = None
        self.ref_runner: Any = None
        self.extractor: Any = None
        self.quick_ref: np.ndarray | None = None
        self.noise_floor: float | None = None
        self.sensitivity: dict[str, list[tuple[str, list[str]]]] = {}
        self.flops: dict[str, int | None] = {}
        self.peaks: dict[str, float] = {}
        self.notes: list[str] = []
        self.complete = True
        self.resumed = journal.resumed
        self.no_quality: str | None = None

    # ---------------------------------------------------------------- helpers
    @property
    def margin(self) -> float:
        """The tie margin."""
        return float(self.opts.tie_margin)

    def _list(self) -> list[Tried]:
        return list(self.tried.values())

    def _journaled(self, kind: str, cand: Candidate) -> bool:
        return self.journal.find(kind, candidate=cand.id) is not None

    def _left(self) -> float:
        """Time left for search work: the budget minus the confirmation and writing reserve."""
        return self.clock.left(WRITE_RESERVE_S + self._confirm_cost())

    def _speed_cost(self, cand: Candidate) -> float:
        """Timing ``cand``: its builds not made yet, then warm-up and repeats."""
        t = self.opts.timing
        default = (t.warmup + t.repeats) * t.min_time_s + 1.0
        if cand.expensive:
            cost = self.clock.estimate("expensive", FIRST_GUESS_S["expensive"])
        else:
            cost = self.clock.estimate("speed", default)
        if cand.prune_ratio and cand.model_key not in self.models:
            cost += self.clock.estimate("prune", FIRST_GUESS_S["expensive"])
        builder = self.builders.get(cand.model_key)
        if cand.source != "torch" and (builder is None or not builder.has(cand.source, cand)):
            cost += self.clock.estimate(
                f"build:{cand.source}", FIRST_GUESS_S.get(f"build:{cand.source}", 10.0)
            )
            if cand.source != "onnx-fp32" and (
                builder is None or not builder.has("onnx-fp32", cand)
            ):
                cost += self.clock.estimate("build:onnx-fp32", FIRST_GUESS_S["build:onnx-fp32"])
        return cost

    def _quality_cost(self, t: Tried | None = None) -> float:
        """A quality check of ``t`` (default: of a build as fast as the baseline): N images from
        it and their features, or the largest check so far when that is more."""
        n = self.opts.fid.n
        base = self.tried.get(self.candidates[0].id)
        ips = (t.images_per_sec if t is not None else None) or (
            base.images_per_sec if base is not None else None
        )
        # the distribution test generates set B too (N more images and features)
        sets = (
            2
            if t is not None
            and choice.quality_test(choice.build_changes(t.candidate)) == "distribution"
            else 1
        )
        guess = SAFETY * (
            (sets * n + choice.QUICK_IMAGES) / (ips or 1.0) + sets * n * self._feature_s
        )
        return max(self.clock.estimate("quality", guess), guess)

    def _confirm_cost(self) -> float:
        """The interleaved confirmation: ``CONFIRM_ROUNDS`` of the chosen build and the baseline."""
        per = self.clock.estimate("speed", 3.0)
        return 2 * per * choice.CONFIRM_ROUNDS / max(1, self.opts.timing.repeats) * 1.5

    @property
    def _feature_s(self) -> float:
        """Seconds per image of the feature extractor (probed before the reference)."""
        return float(getattr(self, "_feature_s_probe", 0.0))

    # ---------------------------------------------------------------- artifacts
    def model(self, key: str, ratio: float | None) -> Artifact:
        """The torch model variant (the original, or pruned + distilled at ``ratio``)."""
        if key in self.models:
            return self.models[key]
        from accelkit.files import sha256_file
        from accelkit.loading import load_generator

        rec = self.journal.find("artifact", key=f"{key}/torch")
        if rec is not None and Path(rec["path"]).is_file():
            if sha256_file(rec["path"]) == rec.get("sha256"):
                art = load_generator(rec["path"])
                self.models[key] = art
                return art
        t0 = time.monotonic()
        from accelkit.passes.distill import distill
        from accelkit.passes.prune import Prune, save_pruned

        steps = self.opts.distill_steps
        self.say(f"pruning {ratio:.0%} of channels and distilling ({steps} steps)")
        pruned = Prune(float(ratio or 0), seed=self.opts.seed)(self.original)
        if steps:
            pruned, _ = distill(
                self.original,
                pruned,
                steps=steps,
                seed=self.opts.seed,
                checkpoint=self.workdir / f"{key}.distill.ckpt",
                resume=True,
            )
        dest = self.workdir / f"{self.original.name}.{key}.pt"
        saved = save_pruned(pruned, dest, force=True)
        art = load_generator(saved.path)
        self.clock.record("prune", "prune", time.monotonic() - t0)
        self.journal.record(
            "artifact", key=f"{key}/torch", path=str(dest), sha256=sha256_file(dest)
        )
        self.models[key] = art
        return art

    def builder(self, cand: Candidate) -> Any:
        """The builder of the candidate's model variant (one per variant, the search's recipe)."""
        key = cand.model_key
        if key not in self.builders:
            self.builders[key] = _SearchBuilder(
                self.model(key, cand.prune_ratio),
                self.workdir,
                search_recipe(self.opts),
                stem=f"{self.original.name}.{key}",
                # the search judges quality itself: a build is not refused for its error
                tolerance={"fp16": 1e9, "int8": 1e9},
                progress=self.say,
            )
        return self.builders[key]

    def artifact(self, cand: Candidate) -> Artifact:
        """The artifact a candidate runs, built once and shared.

        Raises:
            BuildFailed: The build failed (the one-line reason).
        """
        b = self.builder(cand)
        recipe, tag = b.variant_recipe(cand)
        t0 = time.monotonic()
        before = b.seconds
        try:
            return b.make(cand.source, recipe, tag=tag)  # type: ignore[no-any-return]
        finally:
            if b.seconds > before:
                self.clock.record("build", f"build:{cand.source}", time.monotonic() - t0)

    def _flops(self, cand: Candidate) -> int | None:
        """FLOPs per image of the candidate's model variant (counted once per variant)."""
        key = cand.model_key
        if key not in self.flops:
            from accelkit.flops import flops_per_image

            try:
                self.flops[key] = flops_per_image(self.model(key, cand.prune_ratio))
            except Exception:  # noqa: BLE001 - no count: no FLOP bound for its ratios
                self.flops[key] = None
        return self.flops[key]

    # ---------------------------------------------------------------- speed
    def speed(self, cand: Candidate) -> Tried:
        """Time one candidate at the search's batch size (from the journal when already done)."""
        from accelkit.benchmark.harness import measure_throughput
        from accelkit.benchmark.report import Report
        from accelkit.passes.build import BuildFailed
        from accelkit.runners.base import create_runner
        from accelkit.sampler import LatentSampler

        if cand.id in self.tried and self.tried[cand.id].row is not None:
            return self.tried[cand.id]
        tried = self.tried.setdefault(cand.id, Tried(cand))
        rec = self.journal.find("speed", candidate=cand.id)
        if rec is not None:
            tried.row, tried.artifact = rec.get("row"), rec.get("artifact")
            if rec.get("failed"):
                tried.status, tried.reason = "failed", rec["failed"]
            return tried
        try:
            art = self.artifact(cand)
        except BuildFailed as exc:
            tried.status, tried.reason = "failed", f"build failed: {exc}"
            self.journal.record("speed", candidate=cand.id, row=None, failed=tried.reason)
            return tried
        t0 = time.monotonic()
        self.say(f"timing {cand.id} at batch {self.opts.batch} ({self._progress_note()})")
        timing = self.opts.timing
        try:
            with create_runner(
                cand.backend, art, device=self.device, **cand.runner_options
            ) as runner:
                sampler = LatentSampler(art.spec, seed=self.opts.seed, batch_size=self.opts.batch)
                for attempt in range(2):
                    lat = measure_throughput(
                        runner,
                        sampler,
                        warmup=timing.warmup if attempt == 0 else 1,
                        repeats=timing.repeats + 2 * attempt,
                        min_time_s=timing.min_time_s * (1 + attempt),
                    )
                    rep = Report()
                    row = rep.add_result(
                        runner.describe(),
                        lat,
                        artifact=art if art.path else None,
                        variant=cand.variant,
                        flops_per_image=self._flops(cand),
                    )
                    # one more, longer try before a number that does not hold is used to rank
                    if not row.unstable:
                        break
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is a failed candidate
            tried.status, tried.reason = "failed", one_line(exc)
            self.clock.record("speed", "failed", time.monotonic() - t0)
            self.journal.record("speed", candidate=cand.id, row=None, failed=tried.reason)
            return tried
        kind = "expensive" if cand.expensive else "speed"
        self.clock.record("speed", kind, time.monotonic() - t0)
        tried.row = row.to_dict()
        tried.artifact = str(art.path) if art.path else None
        self.journal.record("speed", candidate=cand.id, row=tried.row, artifact=tried.artifact)
        return tried

    # ---------------------------------------------------------------- quality
    def _reference(self) -> bool:
        """Activate the FP32 reference, prepare the drift meter (reference images, noise floor).

        Returns:
            False when the reference does not fit in the time left (the search then cannot
            judge quality; it says so and keeps the baseline).
        """
        if self.meter is not None:
            return True
        if self.no_quality is not None:
            return False
        from accelkit.cache import Cache
        from accelkit.quality.drift import DriftMeter, reference_identity
        from accelkit.quality.features import FeatureExtractor
        from accelkit.runners.base import create_runner
        from accelkit.sampler import LatentSampler

        t0 = time.monotonic()
        n, fid = self.opts.fid.n, self.opts.fid
        self.extractor = FeatureExtractor(
            fid.weights, device=self.device, threads=self.threads, trust_code=self.trust_code
        )
        self.extractor.load()
        opts = {"precision": "fp32", **({"threads": self.threads} if self.threads else {})}
        self.ref_runner = create_runner("torch", self.original, device=self.device, **opts)
        self.ref_runner.activate()
        meter = DriftMeter(
            self.ref_runner,
            reference_identity(self.original),
            self.extractor,
            n,
            self.opts.seed,
            fid.batch,
            self.workdir,
            progress=self.say,
        )
        cached = Cache("drift").lookup(meter.cache_key(), ".npz") is not None
        self._feature_s_probe = self._probe_features()
        base_ips = (
            self.tried.get(self.candidates[0].id) or Tried(self.candidates[0])
        ).images_per_sec
        est = SAFETY * (2 * n / (base_ips or 1.0) + (0 if cached else 2 * n * self._feature_s))
        # the reference is worth its time only when one candidate can then be timed and judged too
        one = (
            self._speed_cost(self.candidates[1]) + self._quality_cost()
            if len(self.candidates) > 1
            else 0.0
        )
        if not self.journal.find("reference") and not choice.affordable(est, self._left(), one):
            self.no_quality = (
                f"the quality reference (FP32 torch images and FID features of 2 x {n} images, estimated {est:.0f} s) "
                f"and one candidate's check ({one:.0f} s) do not fit in the {self._left():.0f} s left of the time budget; "
                "no build could be judged, so the baseline is kept: raise --time-budget or lower --fid"
            )
            self.notes.append(self.no_quality)
            self.complete = False
            return False
        if cached:
            self.notes.append(
                f"the reference's FID features of 2 x {n} images came from the cache (an earlier run with the same "
                "generator, N, seed and extractor)"
            )
        if self.budget.kind != "fid" and n < meter.settings.min_n:
            self.notes.append(
                f"--fid {n} is below the {meter.settings.min_n} images the quality verdict decides on: every "
                "candidate is inconclusive and only the reference can be chosen; use --fid 100 or more"
            )
        self.say(f"reference: FP32 torch images and the noise floor on 2 x {n} latents")
        self.meter = meter
        t_prep = time.monotonic()
        self.meter.prepare()
        if not cached:  # the real feature speed, from 2n images (the probe saw one batch)
            gen_s = 2 * n / (base_ips or 1.0)
            per = max(0.0, time.monotonic() - t_prep - gen_s) / (2 * n)
            self._feature_s_probe = max(self._feature_s_probe, per)
        self.noise_floor = self.meter.noise_floor_fid
        k = min(choice.QUICK_IMAGES, n)
        self.quick_ref = self.ref_runner.infer(
            LatentSampler(self.original.spec, seed=self.opts.seed, batch_size=k).inputs(0, k)
        )
        self.clock.record("reference", "reference", time.monotonic() - t0)
        self.journal.record(
            "reference",
            noise_floor_fid=self.noise_floor,
            noise_floor_kid=self.meter.noise_floor_kid,
        )
        return True

    def _probe_features(self) -> float:
        """Seconds per image of the feature extractor: one call at the batch size the drift
        measurement uses (its first call: a runtime compiling for that shape makes it an upper
        bound, and the compiled shape is reused by the measurement)."""
        spec = self.original.spec
        k = max(1, min(self.opts.fid.batch, self.opts.fid.n))
        imgs = np.zeros((k, *spec.output_shape), dtype=np.uint8)
        try:
            t0 = time.monotonic()
            self.extractor(imgs)
            return (time.monotonic() - t0) / k
        except Exception:  # noqa: BLE001 - no probe: estimate from the first real check
            return 0.0

    def quality(self, tried: Tried) -> bool:
        """Judge one candidate against the budget (from the journal when already done); True when accepted."""
        from accelkit.quality.metrics import paired_metrics
        from accelkit.runners.base import create_runner
        from accelkit.sampler import LatentSampler

        cand = tried.candidate
        rec = self.journal.find("quality", candidate=cand.id)
        if rec is not None:
            tried.quick_psnr_db, tried.drift, tried.reason = (
                rec.get("quick_psnr_db"),
                rec.get("drift"),
                rec.get("reason", ""),
            )
            tried.status = rec.get("status") or (
                "accepted"
                if rec.get("accepted")
                else ("failed" if rec.get("failed") else "rejected")
            )
            if self.noise_floor is None and rec.get("drift"):
                self.noise_floor = rec["drift"].get("noise_floor_fid")
            return bool(rec.get("accepted"))
        if not self._reference():
            tried.reason = tried.reason or "not checked: no quality reference (see the notes)"
            return False
        base = self.candidates[0]
        if cand.id == base.id:
            d = self.meter.reference_drift()
            tried.drift, tried.quick_psnr_db = d.row_fields(), math.inf
            tried.status, tried.reason = "accepted", "the FP32 reference itself"
            self.journal.record(
                "quality",
                candidate=cand.id,
                drift=tried.drift,
                accepted=True,
                reason=tried.reason,
                quick_psnr_db=None,
            )
            return True
        t0 = time.monotonic()
        k = len(self.quick_ref) if self.quick_ref is not None else 0
        self.say(f"quality: {cand.id} ({self._progress_note()})")
        try:
            art = self.artifact(cand)
            with create_runner(
                cand.backend, art, device=self.device, **cand.runner_options
            ) as runner:
                out = runner.infer(
                    LatentSampler(art.spec, seed=self.opts.seed, batch_size=k).inputs(0, k)
                )
                quick = paired_metrics(self.quick_ref, out, self.original.spec.output_range).psnr_db
                tried.quick_psnr_db = quick
                floor_db = self.opts.min_psnr_db
                if self.budget.kind == "psnr":
                    floor_db = max(floor_db, (self.budget.value or 0) - 6.0)
                if quick < floor_db:
                    tried.status, tried.reason = (
                        "rejected",
                        f"quick check: PSNR {quick:.1f} dB < {floor_db:g} dB on {k} images",
                    )
                else:
                    # the test follows what the build changed: paired where its images should
                    # equal the reference's, distribution where it changes the trajectory
                    test = choice.quality_test(choice.build_changes(cand))
                    drift = self.meter.measure(runner, test=test)
                    tried.drift = drift.row_fields()
                    verdict = choice.judge(drift, self.budget)
                    tried.status, tried.reason = verdict.decision, verdict.reason
        except NonFiniteOutputError as exc:
            tried.status, tried.reason = "rejected", one_line(exc)
        except Exception as exc:  # noqa: BLE001 - a candidate that breaks in the check fails, the search goes on
            tried.status, tried.reason = "failed", one_line(exc)
        self.clock.record(
            "quality", "quality" if tried.drift is not None else "quick", time.monotonic() - t0
        )
        self.journal.record(
            "quality",
            candidate=cand.id,
            drift=tried.drift,
            quick_psnr_db=tried.quick_psnr_db,
            reason=tried.reason,
            accepted=tried.status == "accepted",
            failed=tried.status == "failed",
            status=tried.status,
        )
        return tried.status == "accepted"

    # ---------------------------------------------------------------- rescue
    def retries(self, tried: Tried) -> list[Candidate]:
        """Candidates that keep more of a rejected INT8/FP16 candidate in higher precision."""
        cand = tried.candidate
        if cand.parent is not None or tried.status not in ("rejected", "inconclusive"):
            return []
        if cand.source == "onnx-int8":
            groups = self._sensitive_groups(cand)
            out = []
            for n in choice.int8_rescue_sizes(len(groups)):
                chosen = groups[:n]
                patterns = [p for _, pats in chosen for p in pats]
                out.append(cand.retry(exclude_groups=[g for g, _ in chosen], exclude=patterns))
            return out
        if cand.source == "onnx-fp16":
            return [cand.retry(fp16_headroom=h) for h in choice.fp16_rescue_headrooms()]
        return []

    def _rescue_cost(self, t: Tried) -> float:
        """The first retry of a rejected build: a sensitivity report (INT8, once), a build, a
        timing and a quality check."""
        src = t.candidate.source
        build = self.clock.estimate(f"build:{src}", FIRST_GUESS_S.get(f"build:{src}", 10.0))
        cost = build + self.clock.estimate("speed", 3.0) + self._quality_cost(t)
        if t.candidate.source == "onnx-int8" and t.candidate.model_key not in self.sensitivity:
            cost += self.clock.estimate("sensitivity", FIRST_GUESS_S["sensitivity"])
        return cost

    def _sensitive_groups(self, cand: Candidate) -> list[tuple[str, list[str]]]:
        """Layer groups, most harmful first (the sensitivity report of the model's fp32 ONNX)."""
        key = cand.model_key
        if key in self.sensitivity:
            return self.sensitivity[key]
        rec = self.journal.find("sensitivity", model=key)
        if rec is not None:
            self.sensitivity[key] = [(g, list(p)) for g, p in rec["groups"]]
            return self.sensitivity[key]
        from accelkit.passes.sensitivity import sensitivity, sensitivity_calib

        t0 = time.monotonic()
        self.say(f"int8 sensitivity of {key}: one layer group at a time")
        try:
            fp32 = self.artifact(replace(cand, source="onnx-fp32", exclude=(), exclude_groups=()))
            report = sensitivity(
                fp32,
                calib_samples=sensitivity_calib(self.opts.int8.calib),
                seed=self.opts.seed,
                progress=self.say,
            )
            groups = [(g.group, g.patterns) for g in report if g.psnr_db is not None or g.note]
        except Exception as exc:  # noqa: BLE001 - no sensitivity report: no rescue, the search goes on
            self.notes.append(f"int8 sensitivity of {key} failed ({one_line(exc)}); no int8 rescue")
            groups = []
        self.clock.record("sensitivity", "sensitivity", time.monotonic() - t0)
        self.sensitivity[key] = groups
        self.journal.record("sensitivity", model=key, groups=groups)
        return groups

    def _rescue(self, t: Tried) -> None:
        """Retry a rejected build keeping more of it in higher precision, fastest retry first;
        stop at the first accepted one, or when a retry can no longer win."""
        for retry in self.retries(t):
            if not self._journaled("speed", retry) and not choice.affordable(
                self._speed_cost(retry), self._left()
            ):
                self.tried.setdefault(
                    retry.id, Tried(retry)
                ).reason = "not timed: time budget reached"
                self.complete = False
                return
            rt = self.speed(retry)
            if rt.row is None:
                continue
            why = choice.cannot_win(rt, self._list(), self.margin)
            if why:
                rt.reason = why
                return  # keeping more in float only gets slower
            if not self._journaled("quality", retry) and not choice.affordable(
                self._quality_cost(rt), self._left()
            ):
                rt.reason = "time budget reached before its quality check"
                self.complete = False
                return
            if self.quality(rt):
                return

    # ---------------------------------------------------------------- run
    def _progress_note(self) -> str:
        done = sum(1 for t in self.tried.values() if t.judged or t.row is not None)
        left = max(0, len(self.candidates) - done)
        top = choice.best(self._list(), self.margin, self.budget.kind)
        best_txt = (
            f"best so far {top.candidate.id} {top.images_per_sec:.1f} img/s"
            if top and top.images_per_sec
            else "no build accepted yet"
        )
        return f"{done} tried, {left} left, {best_txt}, {self.clock.elapsed():.0f}/{self.clock.budget_s:.0f} s"

    def run(self) -> SearchOutcome:
        """Run (or resume) the search; always returns an outcome (the FP32 baseline at worst)."""
        try:
            return self._run()
        finally:
            if self.ref_runner is not None:
                self.ref_runner.deactivate()
            if self.meter is not None:
                self.meter.close()
            if self.extractor is not None:
                self.extractor.close()

    def _time_all(self) -> None:
        """Phase 1: the speed of every candidate that fits, expensive ones last."""
        for cand in self.candidates[1:]:
            if self._journaled("speed", cand):
                self.speed(cand)
                continue
            t = self.tried.setdefault(cand.id, Tried(cand))
            if cand.expensive and not choice.can_time_expensive(
                self.clock.elapsed(), self.clock.budget_s
            ):
                t.reason = "not timed: expensive to try, and half the time budget was used"
                self.complete = False
                continue
            reserve = choice.reserve_for_checks(
                self._list(), self.margin, self._quality_cost(), and_new=True
            )
            if not choice.affordable(self._speed_cost(cand), self._left(), reserve):
                t.reason = (
                    "not timed: the time left is kept for the quality checks of the builds already timed"
                    if reserve and choice.affordable(self._speed_cost(cand), self._left())
                    else "not timed: time budget reached"
                )
                self.complete = False
                continue
            self.speed(cand)

    def _judge_all(self) -> None:
        """Phases 2-3: quality checks fastest first; rescues depth first while the time left holds
        both them and the pending checks, otherwise after those checks."""
        rescue: list[Tried] = []
        while True:
            pending = choice.undecided(self._list(), self.margin)
            if rescue:
                checks = sum(self._quality_cost(p) for p in pending)
                if not pending or choice.rescue_first(
                    self._left(), self._rescue_cost(rescue[0]), checks
                ):
                    r = rescue.pop(0)
                    if choice.cannot_win(r, self._list(), self.margin) is None:
                        self._rescue(r)
                    continue
            if not pending:
                return
            t = pending[0]
            if not self._journaled("quality", t.candidate) and not choice.affordable(
                self._quality_cost(t), self._left()
            ):
                for p in pending:
                    p.reason = "time budget reached before its quality check"
                self.complete = False
                for r in rescue:
                    r.reason += "; not retried: time budget reached"
                return
            self.quality(t)
            if t.status in ("rejected", "inconclusive") and t.candidate.source in (
                "onnx-int8",
                "onnx-fp16",
            ):
                rescue.append(t)
            if self.no_quality is not None:
                return  # no quality reference: nothing can be judged

    def _run(self) -> SearchOutcome:
        from accelkit.flops import cpu_peak_gflops

        base_cand = self.candidates[0]
        baseline = self.speed(base_cand)
        if baseline.row is None:
            raise InputError(
                f"the FP32 torch baseline could not run ({baseline.reason}); the generator must run in torch to be optimized"
            )
        if self.threads and not self.device.startswith("cuda"):
            for p in sorted({c.precision for c in self.candidates}):
                peak = cpu_peak_gflops(self.threads, p)
                if peak:
                    self.peaks[p] = round(peak, 1)
        self.quality(baseline)
        if self.no_quality is None:
            self._time_all()
            self._judge_all()
        else:
            for cand in self.candidates[1:]:
                self.tried.setdefault(
                    cand.id, Tried(cand)
                ).reason = "not timed: no quality reference fits in the time budget"
        for t in self._list():  # say why a timed build was never checked
            if not t.judged and t.row is not None and t.status != "failed" and not t.reason:
                t.reason = choice.cannot_win(t, self._list(), self.margin) or ""
        chosen = choice.best(self._list(), self.margin, self.budget.kind)
        if chosen is None:  # nothing could be judged: the reference itself is always valid
            chosen = baseline
            chosen.reason = (
                "the FP32 torch model itself (the reference): no other build could be judged"
            )
        else:
            top = choice.fastest(self._list()) or chosen
            aside = (
                choice.set_aside_by(top, choice.tied_builds(self._list(), self.margin))
                if top is not chosen
                else None
            )
            chosen.reason = choice.explain_choice(chosen, top, self.margin, aside)
        chosen.status = "chosen"
        confirmation = self.confirm(chosen, baseline) if chosen is not baseline else None
        self.journal.record("done", chosen=chosen.candidate.id, confirmation=confirmation)
        return SearchOutcome(
            tried=self._list(),
            chosen=chosen,
            baseline=baseline,
            noise_floor_fid=self.noise_floor,
            seconds={**self.clock.spent, "total": self.clock.elapsed()},
            complete=self.complete,
            resumed=self.resumed,
            notes=self.notes,
            confirmation=confirmation,
            not_offered=self.not_offered,
            threads=self.threads,
            cpu_peak_gflops=dict(self.peaks),
        )

    def confirm(self, chosen: Tried, baseline: Tried) -> dict[str, Any] | None:
        """Re-time the chosen build against the FP32 torch baseline interleaved, round by round.

        The search ranked candidates on separate measurements; the speed-up it reports
        comes from this paired run (each round times both back to back, under the same
        thread policy), so load from other processes hits both sides. Returns the ratio
        with its 95 % bootstrap interval -- withheld, with the reason, when either side's
        rounds do not hold or a side implies more FLOP/s than this CPU can compute -- or
        None when it could not be measured.
        """
        rec = self.journal.find("done", chosen=chosen.candidate.id)
        if rec is not None and rec.get("confirmation"):
            return dict(rec["confirmation"])
        if not choice.affordable(self._confirm_cost(), self.clock.left(WRITE_RESERVE_S)):
            self.notes.append(
                "the interleaved confirmation was skipped: it does not fit in the time left of the budget"
            )
            self.complete = False
            return None
        from accelkit.benchmark.stability import speedup_verdict
        from accelkit.benchmark.suite import BenchTarget
        from accelkit.gate.interleave import measure_interleaved
        from accelkit.gate.stats import bootstrap_ratio

        rounds = choice.CONFIRM_ROUNDS
        t0 = time.monotonic()
        self.say(
            f"confirming {chosen.candidate.id} against torch fp32, interleaved in {rounds} rounds"
        )
        try:
            ct = BenchTarget(
                chosen.candidate.backend,
                self.artifact(chosen.candidate),
                dict(chosen.candidate.runner_options),
                variant=chosen.candidate.variant,
            )
            bt = BenchTarget("torch", self.original, dict(baseline.candidate.runner_options))
            crep, brep = measure_interleaved(
                [(ct, bt)],
                [self.opts.batch],
                rounds=rounds,
                device=self.device,
                warmup=self.opts.timing.warmup,
                min_time_s=self.opts.timing.min_time_s,
                seed=self.opts.seed,
            )
            crow = next(r for r in crep.rows if r.status == "ok")
            brow = next(r for r in brep.rows if r.status == "ok")
            crow.flops_per_image = self._flops(chosen.candidate)
            brow.flops_per_image = self._flops(baseline.candidate)
            est = bootstrap_ratio(
                crow.images_per_sec_samples,
                brow.images_per_sec_samples,
                paired=True,
                what=chosen.candidate.id,
            )
        except Exception as exc:  # noqa: BLE001 - the choice stands; only its confirmation is missing
            self.notes.append(f"the interleaved confirmation could not run ({one_line(exc)})")
            return None
        finally:
            self.clock.record("confirm", "confirm", time.monotonic() - t0)
        spread = (est.high - est.low) / est.ratio if est.ratio else math.inf
        _, withheld = speedup_verdict(crow, brow, self.peaks or None)
        if withheld is None and spread > 0.5:
            withheld = f"the rounds disagree (95 % interval {est.low:.2f}-{est.high:.2f}x, wider than half the ratio)"
        return {
            "rounds": rounds,
            "chosen_images_per_sec": crow.images_per_sec,
            "baseline_images_per_sec": brow.images_per_sec,
            "speedup": None if withheld else est.ratio,
            "speedup_low": None if withheld else est.low,
            "speedup_high": None if withheld else est.high,
            "unstable": withheld is not None,
            "withheld": withheld,
        }


class _SearchBuilder:
    """The search's view of a :class:`~accelkit.passes.build.Builder`: a candidate's retry
    (INT8 groups kept in float, a lower FP16 headroom) is a variant of the build recipe."""

    def __init__(self, original: Artifact, workdir: Path, recipe: Any, **kw: Any) -> None:
        from accelkit.passes.build import Builder

        self._b = Builder(original, workdir, recipe, **kw)

    @property
    def seconds(self) -> float:
        return self._b.seconds

    def variant_recipe(self, cand: Candidate) -> tuple[Any, str | None]:
        """The candidate's build recipe and file tag (``keep2``, ``h0.05``), or the default's."""
        r = self._b.recipe
        if cand.exclude:
            tag = f"keep{len(cand.exclude_groups)}"
            return replace(r, int8=replace(r.int8, exclude=tuple(cand.exclude))), tag
        if cand.fp16_headroom is not None:
            return replace(r, fp16=replace(r.fp16, headroom=cand.fp16_headroom)), (
                f"h{cand.fp16_headroom:g}"
            )
        return None, None

    def has(self, source: str, cand: Candidate) -> bool:
        """The candidate's build of ``source`` was already made in this process."""
        recipe, tag = self.variant_recipe(cand) if source == cand.source else (None, None)
        return self._b.made(source, recipe, tag)

    def make(self, source: str, recipe: Any = None, *, tag: str | None = None) -> Artifact:
        return self._b.make(source, recipe, tag=tag)


__all__ = ["Clock", "Search", "SearchOutcome", "Tried", "search_key", "search_recipe"]
