"""The search behind ``accelkit optimize``: the fastest build whose quality the user accepts.

Order of work (cheap things first, so a candidate that cannot win costs little):

1. **Speed** of every candidate (:mod:`accelkit.autotune.space`) at the user's batch
   size, artifacts built lazily and shared (one fp32 ONNX, one fp16, one int8 per
   exclusion set; calibration and engine caches reused); expensive candidates
   (``torch.compile``, TensorRT builds) last and only while time remains.
2. **Quality**, fastest first, only for candidates faster than the best build accepted
   so far: paired PSNR on a few images (cheap reject), then FID/KID drift on N latents
   against the FP32 torch reference, with the noise floor (one
   :class:`~accelkit.quality.drift.DriftMeter`, the reference generated once).
3. **Rescue**: an INT8 candidate that fails is retried with the most sensitive layer
   groups kept in float (greedy from the sensitivity report: 1, 2, 4... groups, as
   Polygraphy's ``debug precision`` bisects), an FP16 one with more nodes kept in fp32
   (a lower activation headroom); each retry is timed first and checked only if it can
   still win.

Every finished step is appended to a journal (:class:`~accelkit.autotune.journal.Journal`):
a killed search continues where it stopped. The FP32 torch model is always a valid
build (it is the reference), so the search always has an answer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.autotune.choice import Budget
from accelkit.autotune.journal import Journal
from accelkit.autotune.space import Candidate, baseline_candidate
from accelkit.errors import AccelkitError, InputError, NonFiniteOutputError, one_line

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


# ------------------------------------------------------------------------ settings
@dataclass
class SearchSettings:
    """Everything the search was asked for (see :class:`accelkit.pipelines.options.OptimizeOptions`)."""

    budget: Budget
    backends: Sequence[str]
    batch: int
    device: str
    fid: int
    seed: int
    time_budget_s: float
    threads: int | None = None
    fid_weights: str | None = None
    fid_batch: int = 32
    quick_images: int = 16
    min_psnr_db: float = 20.0
    tie_margin: float = 0.05
    calib: int = 128
    repeats: int = 5
    warmup: int = 3
    min_time_s: float = 0.3
    prune_ratios: Sequence[float] = ()
    distill_steps: int = 300
    max_retries: int = 4

    def key_doc(self) -> dict[str, Any]:
        """Everything that changes the search's outcome (the journal key)."""
        return {
            "budget": [self.budget.kind, self.budget.value],
            "backends": sorted(self.backends),
            "batch": self.batch,
            "device": self.device,
            "fid": self.fid,
            "seed": self.seed,
            "threads": self.threads,
            "fid_weights": self.fid_weights,
            "quick_images": self.quick_images,
            "min_psnr_db": self.min_psnr_db,
            "tie_margin": self.tie_margin,
            "calib": self.calib,
            "prune_ratios": list(self.prune_ratios),
            "distill_steps": self.distill_steps,
            "max_retries": self.max_retries,
        }


# ------------------------------------------------------------------------ outcome
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

    def to_dict(self) -> dict[str, Any]:
        """JSON form (sidecar, report settings)."""
        return {
            "candidate": self.candidate.to_dict(),
            "images_per_sec": self.images_per_sec,
            "status": self.status,
            "reason": self.reason,
            "quick_psnr_db": self.quick_psnr_db,
            "fid_drift": (self.drift or {}).get("fid_drift"),
            "psnr_db": (self.drift or {}).get("psnr_db"),
            "artifact": self.artifact,
        }


@dataclass
class SearchOutcome:
    """The search's result: every candidate tried, the chosen one, how the time was spent."""

    tried: list[Tried]
    chosen: Tried
    baseline: Tried
    noise_floor_fid: float | None
    seconds: dict[str, float]
    complete: bool
    resumed: bool
    notes: list[str] = field(default_factory=list)
    confirmation: dict[str, Any] | None = None


# ------------------------------------------------------------------------ search
class Search:
    """Runs the search for one generator.

    Args:
        original: The generator (torch artifact): the FP32 reference and the model to accelerate.
        settings: :class:`SearchSettings`.
        workdir: Folder for the artifacts the search builds (``<out>/artifacts``).
        journal: The journal to record into (and resume from).
        candidates: The candidates, baseline first (see :func:`~accelkit.autotune.space.enumerate_candidates`).
        progress: Called with a short status line (done / left / best so far).
    """

    def __init__(
        self,
        original: Artifact,
        settings: SearchSettings,
        workdir: Path,
        journal: Journal,
        candidates: Sequence[Candidate],
        progress: Progress | None = None,
    ) -> None:
        self.original = original
        self.s = settings
        self.workdir = workdir
        self.journal = journal
        self.candidates = list(candidates)
        self.say = progress or (lambda m: None)
        self.t0 = time.monotonic()
        self.seconds: dict[str, float] = {}
        self.models: dict[str, Artifact] = {"original": original}
        self.artifacts: dict[str, Artifact | str] = {}
        self.tried: dict[str, Tried] = {}
        self.meter: Any = None
        self.ref_runner: Any = None
        self.extractor: Any = None
        self.quick_ref: np.ndarray | None = None
        self.noise_floor: float | None = None
        self.sensitivity: dict[str, list[tuple[str, list[str]]]] = {}
        self.notes: list[str] = []
        self.complete = True
        self.quality_cost_s: float | None = None
        self.resumed = journal.resumed

    # ---------------------------------------------------------------- time
    def elapsed(self) -> float:
        """Seconds since the search started (this process)."""
        return time.monotonic() - self.t0

    def left(self) -> float:
        """Seconds left of the time budget."""
        return self.s.time_budget_s - self.elapsed()

    def _timed(self, phase: str, t0: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.monotonic() - t0

    # ---------------------------------------------------------------- artifacts
    def model(self, key: str, ratio: float | None) -> Artifact:
        """The torch model variant (the original, or pruned + distilled at ``ratio``)."""
        if key in self.models:
            return self.models[key]
        from accelkit.loading import load_generator

        rec = self.journal.find("artifact", key=f"{key}/torch")
        if rec is not None and Path(rec["path"]).is_file():
            from accelkit.files import sha256_file

            if sha256_file(rec["path"]) == rec.get("sha256"):
                art = load_generator(rec["path"])
                self.models[key] = art
                return art
        t0 = time.monotonic()
        from accelkit.passes.distill import distill
        from accelkit.passes.prune import Prune, save_pruned

        self.say(f"pruning {ratio:.0%} of channels and distilling ({self.s.distill_steps} steps)")
        pruned = Prune(float(ratio or 0), seed=self.s.seed)(self.original)
        if self.s.distill_steps:
            pruned, _ = distill(
                self.original,
                pruned,
                steps=self.s.distill_steps,
                seed=self.s.seed,
                checkpoint=self.workdir / f"{key}.distill.ckpt",
                resume=True,
            )
        dest = self.workdir / f"{self.original.name}.{key}.pt"
        saved = save_pruned(pruned, dest, force=True)
        art = load_generator(saved.path)
        self._timed("prune", t0)
        from accelkit.files import sha256_file

        self.journal.record(
            "artifact", key=f"{key}/torch", path=str(dest), sha256=sha256_file(dest)
        )
        self.models[key] = art
        return art

    def artifact(self, cand: Candidate) -> Artifact:
        """The artifact a candidate runs, built once and shared; raises the build's error."""
        key = cand.artifact_key()
        made = self.artifacts.get(key)
        if isinstance(made, Artifact):
            return made
        if isinstance(made, str):
            raise _BuildFailed(made)
        try:
            art = self._build(cand, key)
        except AccelkitError as exc:
            self.artifacts[key] = one_line(exc)
            raise _BuildFailed(one_line(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a build that breaks fails its candidate, not the search
            self.artifacts[key] = one_line(exc)
            raise _BuildFailed(one_line(exc)) from None
        self.artifacts[key] = art
        return art

    def _build(self, cand: Candidate, key: str) -> Artifact:
        from accelkit.files import sha256_file
        from accelkit.loading import load_generator

        model = self.model(cand.model_key, cand.prune_ratio)
        if cand.source == "torch":
            return model
        rec = self.journal.find("artifact", key=key)
        if (
            rec is not None
            and Path(rec["path"]).is_file()
            and sha256_file(rec["path"]) == rec.get("sha256")
        ):
            art = load_generator(rec["path"])
            return art.derive(
                module=model.module
            )  # keep the torch model as the verification reference
        t0 = time.monotonic()
        stem = f"{self.original.name}.{cand.model_key}"
        br = (1, max(1, self.s.batch), max(2, self.s.batch))
        fp32_key = f"{cand.model_key}/onnx-fp32"
        if cand.source == "onnx-fp32":
            from accelkit.passes.export import OnnxFromTorch

            self.say(f"exporting {cand.model_key} to fp32 ONNX")
            art = OnnxFromTorch(
                self.workdir / f"{stem}.onnx", batch_range=br, force=True, seed=self.s.seed
            )(model)
        else:
            fp32 = self.artifact(
                Candidate("fp32", cand.backend, "fp32", "onnx-fp32", prune_ratio=cand.prune_ratio)
            )
            if cand.source == "onnx-fp16":
                from accelkit.passes.fp16 import Fp16

                h = cand.fp16_headroom if cand.fp16_headroom is not None else 0.5
                name = f"{stem}.fp16{'' if cand.fp16_headroom is None else f'.h{h:g}'}.onnx"
                self.say(f"converting to fp16 ONNX (headroom {h:g})")
                art = Fp16(
                    self.workdir / name, force=True, headroom=h, tolerance=1e9, batch_range=br
                )(fp32)
            elif cand.source == "onnx-int8":
                from accelkit.passes.int8 import Int8

                name = f"{stem}.int8{f'.keep{len(cand.exclude_groups)}' if cand.exclude_groups else ''}.onnx"
                self.say(
                    f"quantizing to int8 ONNX ({len(cand.exclude_groups)} groups kept in float)"
                )
                art = Int8(
                    self.workdir / name,
                    force=True,
                    calib_samples=self.s.calib,
                    exclude=cand.exclude,
                    tolerance=1e9,
                    batch_range=br,
                )(fp32)  # (calibration seed 0, as `accelkit export --int8`)
            else:  # pragma: no cover - the space has no other source
                raise InputError(f"unknown candidate source {cand.source!r}")
        assert art.path is not None
        self._timed("build", t0)
        self.journal.record(
            "artifact", key=key, path=str(art.path), sha256=sha256_file(art.path), fp32=fp32_key
        )
        return art

    # ---------------------------------------------------------------- speed
    def speed(self, cand: Candidate) -> Tried:
        """Time one candidate at the search's batch size (from the journal when already done)."""
        from accelkit.benchmark.harness import measure_throughput
        from accelkit.benchmark.report import Report
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
        except _BuildFailed as exc:
            tried.status, tried.reason = "failed", f"build failed: {exc}"
            self.journal.record("speed", candidate=cand.id, row=None, failed=tried.reason)
            return tried
        t0 = time.monotonic()
        self.say(f"timing {cand.id} at batch {self.s.batch} ({self._progress_note()})")
        rep = Report()
        try:
            with create_runner(
                cand.backend, art, device=self.s.device, **cand.runner_options
            ) as runner:
                sampler = LatentSampler(art.spec, seed=self.s.seed, batch_size=self.s.batch)
                lat = measure_throughput(
                    runner,
                    sampler,
                    warmup=self.s.warmup,
                    repeats=self.s.repeats,
                    min_time_s=self.s.min_time_s,
                )
                row = rep.add_result(
                    runner.describe(), lat, artifact=art if art.path else None, variant=cand.variant
                )
                if (
                    row.unstable
                ):  # one more, longer try before a number that does not hold is used to rank
                    lat = measure_throughput(
                        runner,
                        sampler,
                        warmup=1,
                        repeats=self.s.repeats + 2,
                        min_time_s=2 * self.s.min_time_s,
                    )
                    rep = Report()
                    row = rep.add_result(
                        runner.describe(),
                        lat,
                        artifact=art if art.path else None,
                        variant=cand.variant,
                    )
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is a failed candidate
            tried.status, tried.reason = "failed", one_line(exc)
            self._timed("speed", t0)
            self.journal.record("speed", candidate=cand.id, row=None, failed=tried.reason)
            return tried
        self._timed("speed", t0)
        tried.row = row.to_dict()
        tried.artifact = str(art.path) if art.path else None
        self.journal.record("speed", candidate=cand.id, row=tried.row, artifact=tried.artifact)
        return tried

    # ---------------------------------------------------------------- quality
    def _reference(self) -> None:
        """Activate the FP32 reference, prepare the drift meter (reference images, noise floor)."""
        if self.meter is not None:
            return
        from accelkit.quality.drift import DriftMeter, reference_identity
        from accelkit.quality.features import FeatureExtractor
        from accelkit.runners.base import create_runner
        from accelkit.sampler import LatentSampler

        t0 = time.monotonic()
        self.say(f"reference: FP32 torch images and the noise floor on 2 x {self.s.fid} latents")
        self.extractor = FeatureExtractor(
            self.s.fid_weights, device=self.s.device, threads=self.s.threads
        )
        self.extractor.load()
        opts = {
            "precision": "fp32",
            **(
                {"threads": self.s.threads}
                if self.s.threads and not self.s.device.startswith("cuda")
                else {}
            ),
        }
        self.ref_runner = create_runner("torch", self.original, device=self.s.device, **opts)
        self.ref_runner.activate()
        self.meter = DriftMeter(
            self.ref_runner,
            reference_identity(self.original),
            self.extractor,
            self.s.fid,
            self.s.seed,
            self.s.fid_batch,
            self.workdir,
            progress=self.say,
        )
        self.meter.prepare()
        self.noise_floor = self.meter.noise_floor_fid
        k = min(self.s.quick_images, self.s.fid)
        self.quick_ref = self.ref_runner.infer(
            LatentSampler(self.original.spec, seed=self.s.seed, batch_size=k).inputs(0, k)
        )
        self._timed("reference", t0)
        self.journal.record(
            "reference",
            noise_floor_fid=self.noise_floor,
            noise_floor_kid=self.meter.noise_floor_kid,
        )

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
            tried.status = (
                "accepted"
                if rec.get("accepted")
                else ("failed" if rec.get("failed") else "rejected")
            )
            if self.noise_floor is None and rec.get("drift"):
                self.noise_floor = rec["drift"].get("noise_floor_fid")
            return bool(rec.get("accepted"))
        if (
            cand.id == baseline_candidate().id
            and cand.prune_ratio is None
            and not cand.runner_options.get("channels_last")
        ):
            self._reference()
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
        self._reference()
        t0 = time.monotonic()
        art = self.artifact(cand)
        k = len(self.quick_ref) if self.quick_ref is not None else 0
        self.say(f"quality: {cand.id} ({self._progress_note()})")
        try:
            with create_runner(
                cand.backend, art, device=self.s.device, **cand.runner_options
            ) as runner:
                out = runner.infer(
                    LatentSampler(art.spec, seed=self.s.seed, batch_size=k).inputs(0, k)
                )
                quick = paired_metrics(self.quick_ref, out, self.original.spec.output_range).psnr_db
                tried.quick_psnr_db = quick
                floor_db = self.s.min_psnr_db
                if self.s.budget.kind == "psnr":
                    floor_db = max(floor_db, (self.s.budget.value or 0) - 6.0)
                if quick < floor_db:
                    tried.status, tried.reason = (
                        "rejected",
                        f"quick check: PSNR {quick:.1f} dB < {floor_db:g} dB on {k} images",
                    )
                else:
                    drift = self.meter.measure(runner)
                    tried.drift = drift.row_fields()
                    ok, why = self.s.budget.judge(drift)
                    tried.status, tried.reason = ("accepted" if ok else "rejected"), why
        except NonFiniteOutputError as exc:
            tried.status, tried.reason = "rejected", one_line(exc)
        except Exception as exc:  # noqa: BLE001 - a candidate that breaks in the check fails, the search goes on
            tried.status, tried.reason = "failed", one_line(exc)
        cost = time.monotonic() - t0
        self._timed("quality", t0)
        if tried.drift is not None:
            self.quality_cost_s = (
                cost if self.quality_cost_s is None else max(self.quality_cost_s, cost)
            )
        self.journal.record(
            "quality",
            candidate=cand.id,
            drift=tried.drift,
            quick_psnr_db=tried.quick_psnr_db,
            reason=tried.reason,
            accepted=tried.status == "accepted",
            failed=tried.status == "failed",
        )
        return tried.status == "accepted"

    # ---------------------------------------------------------------- rescue
    def retries(self, tried: Tried) -> list[Candidate]:
        """Candidates that keep more of a failed INT8/FP16 candidate in higher precision."""
        cand = tried.candidate
        if cand.parent is not None or tried.status != "rejected":
            return []
        if cand.source == "onnx-int8":
            groups = self._sensitive_groups(cand)
            out: list[Candidate] = []
            n = 1
            # Keep 1, 2, 4... of the most harmful groups in float, never all of them (then nothing is int8).
            while n < len(groups) and len(out) < self.s.max_retries:
                chosen = groups[:n]
                patterns = [p for _, pats in chosen for p in pats]
                out.append(cand.retry(exclude_groups=[g for g, _ in chosen], exclude=patterns))
                if n == len(groups) - 1:
                    break
                n = min(2 * n, len(groups) - 1)
            return out
        if cand.source == "onnx-fp16":
            return [cand.retry(fp16_headroom=h) for h in (0.05, 0.005)][: self.s.max_retries]
        return []

    def _sensitive_groups(self, cand: Candidate) -> list[tuple[str, list[str]]]:
        """Layer groups, most harmful first (the sensitivity report of the model's fp32 ONNX)."""
        key = cand.model_key
        if key in self.sensitivity:
            return self.sensitivity[key]
        rec = self.journal.find("sensitivity", model=key)
        if rec is not None:
            self.sensitivity[key] = [(g, list(p)) for g, p in rec["groups"]]
            return self.sensitivity[key]
        from accelkit.passes.sensitivity import sensitivity

        t0 = time.monotonic()
        self.say(f"int8 sensitivity of {key}: one layer group at a time")
        try:
            fp32 = self.artifact(
                Candidate("fp32", "ort", "fp32", "onnx-fp32", prune_ratio=cand.prune_ratio)
            )
            report = sensitivity(
                fp32, calib_samples=min(self.s.calib, 64), seed=self.s.seed, progress=self.say
            )
            groups = [(g.group, g.patterns) for g in report if g.psnr_db is not None or g.note]
        except Exception as exc:  # noqa: BLE001 - no sensitivity report: no rescue, the search goes on
            self.notes.append(f"int8 sensitivity of {key} failed ({one_line(exc)}); no int8 rescue")
            groups = []
        self._timed("sensitivity", t0)
        self.sensitivity[key] = groups
        self.journal.record("sensitivity", model=key, groups=groups)
        return groups

    # ---------------------------------------------------------------- run
    def _progress_note(self) -> str:
        done = sum(1 for t in self.tried.values() if t.status != "not checked" or t.row is not None)
        best = self._best()
        best_txt = (
            f"best so far {best.candidate.id} {best.images_per_sec:.1f} img/s"
            if best and best.images_per_sec
            else "no build accepted yet"
        )
        return f"{done} tried, {len(self.candidates) - done if len(self.candidates) > done else 0} left, {best_txt}, {self.elapsed():.0f}/{self.s.time_budget_s:.0f} s"

    def _fastest(self) -> Tried | None:
        ok = [
            t
            for t in self.tried.values()
            if t.status in ("accepted", "chosen") and t.images_per_sec
        ]
        return max(ok, key=lambda t: t.images_per_sec or 0.0) if ok else None

    def _drift_key(self, t: Tried) -> float:
        """Smaller is better: FID drift, or minus the PSNR for a PSNR budget (unmeasured: worst)."""
        d = t.drift or {}
        if self.s.budget.kind == "psnr":
            v = d.get("psnr_db")
            return -v if isinstance(v, (int, float)) else math.inf
        v = d.get("fid_drift")
        return v if isinstance(v, (int, float)) and math.isfinite(v) else math.inf

    def _tie_bar(self, fastest: Tried) -> float:
        """The images/sec a build needs to tie with ``fastest`` (within the tie margin)."""
        return (fastest.images_per_sec or 0.0) * (1 - self.s.tie_margin)

    def _best(self) -> Tried | None:
        """The choice so far: of the accepted builds as fast as the fastest within the tie margin
        (timing noise), the one with the least drift; the fastest breaks a drift tie."""
        fastest = self._fastest()
        if fastest is None:
            return None
        bar = self._tie_bar(fastest)
        tied = [
            t
            for t in self.tried.values()
            if t.status in ("accepted", "chosen") and (t.images_per_sec or 0.0) >= bar
        ]
        return min(tied, key=lambda t: (self._drift_key(t), -(t.images_per_sec or 0.0)))

    def _cannot_win(self, t: Tried) -> str | None:
        """Why ``t`` need not be quality-checked: slower than the fastest accepted build beyond the tie margin."""
        fastest = self._fastest()
        if fastest is None or fastest is t:
            return None
        if (t.images_per_sec or 0.0) > self._tie_bar(fastest):
            return None
        margin = (
            f" by more than the {self.s.tie_margin:.0%} tie margin" if self.s.tie_margin else ""
        )
        return f"{t.images_per_sec:.1f} img/s cannot beat the accepted {fastest.candidate.id} ({fastest.images_per_sec:.1f} img/s){margin}"

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

    def _run(self) -> SearchOutcome:
        base_cand = self.candidates[0]
        baseline = self.speed(base_cand)
        if baseline.row is None:
            raise InputError(
                f"the FP32 torch baseline could not run ({baseline.reason}); the generator must run in torch to be optimized"
            )
        self.quality(baseline)
        # 1. speed of every candidate, expensive ones only while time remains
        for cand in self.candidates[1:]:
            if (
                cand.expensive
                and self.left() < 0.5 * self.s.time_budget_s
                and self.journal.find("speed", candidate=cand.id) is None
            ):
                t = self.tried.setdefault(cand.id, Tried(cand))
                t.reason = "not timed: expensive to try, and half the time budget was used"
                self.complete = False
                continue
            if self.left() <= 0 and self.journal.find("speed", candidate=cand.id) is None:
                self.tried.setdefault(
                    cand.id, Tried(cand)
                ).reason = "not timed: time budget reached"
                self.complete = False
                continue
            self.speed(cand)
        # 2. quality, fastest first, only where a win is still possible
        queue = sorted(
            (t for t in self.tried.values() if t.row is not None and t.status != "failed"),
            key=lambda t: -(t.images_per_sec or 0),
        )
        for t in queue:
            self._judge(t)
        chosen = self._best() or baseline
        fastest = self._fastest() or chosen
        chosen.status = "chosen"
        if fastest is not chosen:
            if not chosen.reason.startswith("within"):
                chosen.reason = (
                    f"within {self.s.tie_margin:.0%} of the fastest accepted build {fastest.candidate.id} ({fastest.images_per_sec:.1f} img/s), "
                    f"with less drift ({chosen.reason}; {fastest.candidate.id}: {fastest.reason})"
                )
        elif chosen.reason and not chosen.reason.startswith("fastest"):
            chosen.reason = f"fastest accepted build ({chosen.reason})"
        confirmation = self.confirm(chosen, baseline) if chosen is not baseline else None
        self.journal.record("done", chosen=chosen.candidate.id, confirmation=confirmation)
        return SearchOutcome(
            tried=list(self.tried.values()),
            chosen=chosen,
            baseline=baseline,
            noise_floor_fid=self.noise_floor,
            seconds={**self.seconds, "total": self.elapsed()},
            complete=self.complete,
            resumed=self.resumed,
            notes=self.notes,
            confirmation=confirmation,
        )

    def confirm(self, chosen: Tried, baseline: Tried, rounds: int = 5) -> dict[str, Any] | None:
        """Re-time the chosen build against the FP32 torch baseline interleaved, round by round.

        The search ranked candidates on separate measurements; the speed-up it reports
        comes from this paired run (each round times both back to back), so load from
        other processes hits both sides. Returns the ratio with its 95 % bootstrap
        interval, or None when it could not be measured.
        """
        rec = self.journal.find("done", chosen=chosen.candidate.id)
        if rec is not None and rec.get("confirmation"):
            return dict(rec["confirmation"])
        from accelkit.benchmark.suite import BenchTarget
        from accelkit.gate.interleave import measure_interleaved
        from accelkit.gate.stats import bootstrap_ratio

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
                [self.s.batch],
                rounds=rounds,
                device=self.s.device,
                warmup=self.s.warmup,
                min_time_s=self.s.min_time_s,
                seed=self.s.seed,
            )
            crow = next(r for r in crep.rows if r.status == "ok")
            brow = next(r for r in brep.rows if r.status == "ok")
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
            self._timed("confirm", t0)
        spread = (est.high - est.low) / est.ratio if est.ratio else math.inf
        return {
            "rounds": rounds,
            "chosen_images_per_sec": crow.images_per_sec,
            "baseline_images_per_sec": brow.images_per_sec,
            "speedup": est.ratio,
            "speedup_low": est.low,
            "speedup_high": est.high,
            "unstable": bool(crow.unstable or brow.unstable or spread > 0.5),
        }

    def _judge(self, t: Tried) -> None:
        if t.status in ("accepted", "rejected", "chosen"):
            return
        why = self._cannot_win(t)
        if why:
            t.reason = why
            return
        if (
            self.journal.find("quality", candidate=t.candidate.id) is None
            and self.quality_cost_s is not None
            and self.left() < self.quality_cost_s
        ):
            t.reason = "time budget reached before its quality check"
            self.complete = False
            return
        if self.quality(t):
            return
        for retry in self.retries(t):
            if self.left() <= 0 and self.journal.find("speed", candidate=retry.id) is None:
                self.tried.setdefault(
                    retry.id, Tried(retry)
                ).reason = "not timed: time budget reached"
                self.complete = False
                return
            rt = self.speed(retry)
            if rt.row is None:
                continue
            why = self._cannot_win(rt)
            if why:
                rt.reason = why
                return  # keeping more in float only gets slower
            self._judge(rt)
            if rt.status == "accepted":
                return


class _BuildFailed(Exception):
    """An artifact a candidate needs could not be built (message: why)."""
