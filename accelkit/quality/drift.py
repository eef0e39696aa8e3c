"""Quality drift of an accelerated build against the FP32 torch reference.

For ``accelkit bench --fid N`` (DESIGN.md, "Measuring honestly"):

* the reference is the FP32 torch generator; set A is samples ``0..N-1`` of the
  :class:`~accelkit.sampler.LatentSampler`, set B samples ``N..2N-1`` (disjoint);
* each backend generates set A; **paired** metrics compare it with the reference image
  by image (max abs error, PSNR, share of uint8 values changed), and FID/KID compare the
  two image sets through the feature extractor;
* the **noise floor** is FID/KID between the reference on A and on B (two honest samples
  of the same model differ by that much); ``legacy_verdict`` keeps the old rule
  (``within floor`` when the paired FID is at most the floor) for comparison;
* the **verdict** comes from :mod:`accelkit.quality.verdict`: the *paired test* (per-image
  errors beyond the reference's own numerical noise, against a visibility margin) decides
  for precision and backend changes; ``measure(runner, test="distribution")`` runs the
  build on set B too and lets the *distribution test* (KID(ref A, build B) - KID(ref A,
  ref B)) decide, for changes of trajectory (diffusion steps, caching). The numerical
  noise is the reference under an equivalent execution (torch fp32 at another thread
  count, or the ``noise_runner`` given), measured once in :meth:`DriftMeter.prepare`;
* NaN or Inf in any output raises :class:`~accelkit.errors.NonFiniteOutputError`.

Reference features are cached (:class:`accelkit.cache.Cache` ``drift``), keyed by
everything that shapes them: the reference model's identity (file sha256, architecture
and its arguments, device), its full spec (inputs, output range, latent distribution,
truncation), N, seed and the extractor (sha256, resize mode, input transform, size);
entries are verified on read and recomputed when corrupt.

:func:`measure_drift` is the one-call form; :class:`DriftMeter` measures many runners
against one reference without recomputing the reference.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.cache import Cache, cache_key
from accelkit.errors import InputError, NonFiniteOutputError
from accelkit.quality.features import FeatureExtractor
from accelkit.quality.images import to_uint8
from accelkit.quality.metrics import StreamingStats, fid_between_stats, kid, psnr_from_mse
from accelkit.quality.verdict import (
    DistributionEvidence,
    KernelCache,
    PairedEvidence,
    Verdict,
    VerdictSettings,
    distribution_test,
    paired_test,
)
from accelkit.runners.base import Runner
from accelkit.sampler import LatentSampler

log = logging.getLogger(__name__)


@dataclass
class Drift:
    """Quality of one backend's images against the reference on identical latents.

    Attributes:
        fid_drift: FID(reference on A, backend on A) (paired FID: deflated by the pairing;
            kept for comparison with earlier reports, it decides nothing).
        kid_drift, kid_drift_std: KID mean and std over subsets (same sets).
        psnr_db: Paired PSNR over all images (peak = output range width).
        max_abs_err: Largest paired absolute error (output units).
        changed_uint8_fraction: Share of uint8 values that differ from the reference.
        noise_floor_fid, noise_floor_kid: FID/KID(reference on A, reference on B).
        verdict: The calibrated decision: ``accepted``, ``rejected`` or ``inconclusive``
            (see :mod:`accelkit.quality.verdict`); ``reference`` for the reference itself.
        n, seed: Images per set and latent seed.
        extractor: Extractor provenance (name, sha256, resize mode, input transform).
        legacy_verdict: The old rule: ``within floor`` when ``fid_drift <= noise_floor_fid``,
            else ``drift``.
        test_verdict: The deciding test's :class:`~accelkit.quality.verdict.Verdict`.
        evidence: What the deciding test used (per-image errors or features).
        other_verdicts: Verdicts of tests that ran without deciding (e.g. the paired test
            of a build judged by the distribution test), by test name.
        paired_evidence: The per-image paired errors (kept in rows as ``drift_evidence``,
            so builds can be compared later with
            :func:`~accelkit.quality.verdict.compare_builds`).
    """

    fid_drift: float
    kid_drift: float
    kid_drift_std: float
    psnr_db: float
    max_abs_err: float
    changed_uint8_fraction: float
    noise_floor_fid: float
    noise_floor_kid: float
    verdict: str
    n: int
    seed: int
    extractor: dict[str, Any]
    legacy_verdict: str | None = None
    test_verdict: Verdict | None = None
    evidence: PairedEvidence | DistributionEvidence | None = field(default=None, repr=False)
    other_verdicts: dict[str, Verdict] = field(default_factory=dict)
    paired_evidence: PairedEvidence | None = field(default=None, repr=False)

    @property
    def drift_test(self) -> str | None:
        """The test that decided (``paired`` or ``distribution``)."""
        return self.test_verdict.test if self.test_verdict else None

    @property
    def drift_interval(self) -> list[float] | None:
        """The deciding statistic's interval (its units: ``drift_detail.statistic``)."""
        return list(self.test_verdict.interval) if self.test_verdict else None

    @property
    def min_detectable_effect(self) -> float | None:
        """The deciding test's MDE at this N (same units as the interval)."""
        return self.test_verdict.mde if self.test_verdict else None

    def row_fields(self) -> dict[str, Any]:
        """The fields a results.json row gains (JSON-able; see ``docs/results-schema.md``)."""
        v = self.test_verdict
        paired = self.paired_evidence
        detail = v.to_dict() if v else None
        if detail is not None and self.other_verdicts:
            detail["other_tests"] = {k: o.to_dict() for k, o in self.other_verdicts.items()}
        return {
            "fid_drift": self.fid_drift,
            "kid_drift": self.kid_drift,
            "kid_drift_std": self.kid_drift_std,
            "psnr_db": self.psnr_db,
            "max_abs_err": self.max_abs_err,
            "changed_uint8_fraction": self.changed_uint8_fraction,
            "noise_floor_fid": self.noise_floor_fid,
            "noise_floor_kid": self.noise_floor_kid,
            "drift_verdict": self.verdict,
            "legacy_verdict": self.legacy_verdict,
            "drift_test": self.drift_test,
            "drift_interval": self.drift_interval,
            "min_detectable_effect": self.min_detectable_effect,
            "drift_reason": v.reason if v else None,
            "drift_detail": detail,
            "drift_evidence": paired.to_dict() if paired is not None else None,
            "quality": {
                "n": self.n,
                "seed": self.seed,
                "image_format": "uint8",
                **self.extractor,
            },
        }


def _generate(runner: Runner, sampler: LatentSampler, start: int, n: int) -> Iterator[np.ndarray]:
    done = 0
    while done < n:
        take = min(sampler.batch_size, n - done)
        yield runner.infer(sampler.inputs(start + done, take))
        done += take


class DriftMeter:
    """Measures :class:`Drift` for any number of runners against one reference.

    Args:
        reference: An active FP32 torch runner of the generator.
        reference_id: What identifies the reference model for the feature cache: its
            file sha256 as a string, or a mapping (sha256, architecture, arguments...);
            the runner's spec, device and the extractor are added to the key here.
        extractor: The feature extractor (FID Inception or a user's file).
        n: Images per set (the noise floor uses 2n reference images).
        seed: Latent seed.
        batch_size: Images per inference call.
        workdir: Folder for the reference outputs memmap (removed by :meth:`close`).
        kid_subsets, kid_subset_size: KID settings.
        progress: Called with a short message per step.
        images: Real inputs for the image input of an image-to-image generator
            (``bench --images``): float32 ``M x C x H x W`` in the spec's range, ``M >= 2n``
            (set A takes the first n, the noise floor's set B the next n).
        images_id: What identifies ``images`` in the feature cache (folder sha256, preprocessing).
        settings: How verdicts are decided (:class:`~accelkit.quality.verdict.VerdictSettings`).
        noise_runner: An active runner of the reference under another but equivalent
            execution, whose per-image difference from the reference is its numerical
            noise. None: the reference's torch model at another thread count when the
            reference is a torch runner (else no noise is measured); False: none.
    """

    def __init__(
        self,
        reference: Runner,
        reference_id: str | Mapping[str, Any],
        extractor: FeatureExtractor,
        n: int,
        seed: int,
        batch_size: int,
        workdir: Path,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        progress: Callable[[str], None] | None = None,
        images: np.ndarray | None = None,
        images_id: Mapping[str, Any] | None = None,
        settings: VerdictSettings | None = None,
        noise_runner: Runner | None | bool = None,
    ) -> None:
        if n < 2:
            raise InputError(
                f"--fid {n}: FID needs at least 2 images per set (hundreds for a meaningful number)"
            )
        if images is not None and len(images) < 2 * n:
            raise InputError(
                f"--fid {n} with --images needs {2 * n} images (n for the drift set, n more for the noise floor); the folder gives "
                f"{len(images)}: lower --fid to {len(images) // 2} or add images"
            )
        self.reference = reference
        self.extractor = extractor
        self.n = n
        self.seed = seed
        self.sampler = LatentSampler(
            reference.spec, seed=seed, batch_size=batch_size, images=images
        )
        self.images_id = dict(images_id) if images_id else None
        self.reference_id = (
            {"sha256": reference_id} if isinstance(reference_id, str) else dict(reference_id)
        )
        self.workdir = workdir
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.say = progress or (lambda m: None)
        self.range = reference.spec.output_range
        self._ref_path = workdir / f"reference_outputs_{seed}_{n}.npy"
        self._ref: np.ndarray | None = None
        self._feats_a: np.ndarray | None = None
        self._stats_a: StreamingStats | None = None
        self.noise_floor_fid = math.nan
        self.noise_floor_kid = math.nan
        self.settings = settings or VerdictSettings()
        self.noise_runner = noise_runner
        self.noise_what = "not measured"
        self._noise_mse: np.ndarray | None = None
        self._noise_fdist: np.ndarray | None = None
        self._feature_scale: float | None = None
        self._feats_b: np.ndarray | None = None
        self._anchor: dict[float, np.ndarray] = {}
        self._kernels = KernelCache()  # the reference's kernels, shared by every distribution test

    # ------------------------------------------------------------------ reference
    def cache_key(self) -> str:
        """Key of the reference features: everything that changes them."""
        ex = self.extractor
        return cache_key(
            {
                "what": "drift reference features",
                "reference": self.reference_id,
                "spec": self.reference.spec.to_dict() | {"inferred": None},
                "device": self.reference.device,
                "n": self.n,
                "seed": self.seed,
                "extractor": self.provenance(),
                "extractor_device": ex.device,
                **({"images": self.images_id} if self.images_id else {}),
            }
        )

    def prepare(self, distribution: bool = False) -> None:
        """Generate the reference images (set A, kept for paired metrics) and the noise floor.

        Args:
            distribution: A distribution test will follow: when set B's images are made
                here (features not cached), the margin's anchor features are computed from
                the same images (saving the N reference images :meth:`anchor_features`
                would make again).
        """
        shape = (self.n, *self.reference.spec.output_shape)
        self._ref = np.lib.format.open_memmap(
            self._ref_path, mode="w+", dtype=np.float32, shape=shape
        )
        self.say(f"reference: generating {self.n} FP32 torch images")
        pos = 0
        for out in _generate(self.reference, self.sampler, 0, self.n):
            if not np.isfinite(out).all():
                raise NonFiniteOutputError(
                    f"the reference produced NaN/Inf in images {pos}..{pos + len(out) - 1}; drift needs a finite reference"
                )
            self._ref[pos : pos + len(out)] = out
            pos += len(out)
        key = self.cache_key()
        cache = Cache("drift")
        feats = self._cached_features(cache, key)
        if feats is None:
            self.say(f"reference: FID features of 2 x {self.n} images")
            feats_a = self._features(self._batches_of(self._ref))
            db = float(self.settings.anchor_db)
            anchor = (
                distribution
                and self.settings.distribution_margin is None
                and self._cached_anchor(db) is None
            )
            fb, fanchor, rng = [], [], self._anchor_noise()
            for out in _generate(self.reference, self.sampler, self.n, self.n):
                fb.append(self.extractor(to_uint8(out, self.range)))
                if anchor:
                    fanchor.append(self._anchor_batch(out, db, rng))
            feats_b = np.concatenate(fb)
            if anchor:
                self._store_anchor(db, np.concatenate(fanchor))
            with cache.writing(key, ".npz", {"n": self.n, "seed": self.seed}) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(
                        fh, feats_a=feats_a.astype(np.float32), feats_b=feats_b.astype(np.float32)
                    )
        else:
            feats_a, feats_b = feats
        self._feats_a = feats_a
        self._feats_b = feats_b
        self._stats_a = StreamingStats(feats_a.shape[1]).update(feats_a)
        stats_b = StreamingStats(feats_b.shape[1]).update(feats_b)
        self.noise_floor_fid = fid_between_stats(self._stats_a, stats_b)
        self.noise_floor_kid = kid(
            feats_a, feats_b, self.kid_subsets, self.kid_subset_size, self.seed
        ).mean
        self._feature_scale = 2.0 * float(np.var(feats_a, axis=0, ddof=1).sum())
        self._measure_noise()

    # ------------------------------------------------------------------- noise
    def _default_noise_runner(self) -> Runner | None:
        """The reference's torch model at another thread count (1 if it runs on more, else 2)."""
        ref = self.reference
        if getattr(ref, "name", None) != "torch" or not str(ref.device).startswith("cpu"):
            return None
        from accelkit.runners.base import create_runner

        threads = ref.options.get("threads")
        if threads is None:
            import torch

            threads = torch.get_num_threads()
        other = 1 if int(threads) > 1 else 2
        opts = {k: v for k, v in ref.options.items() if k != "threads"}
        return create_runner("torch", ref.artifact, device=ref.device, **{**opts, "threads": other})

    def _measure_noise(self) -> None:
        """Per-image MSE and feature distance of the equivalent execution against the reference (set A)."""
        assert self._ref is not None and self._feats_a is not None
        own = False
        runner: Runner | None
        if self.noise_runner is False:
            runner = None
        elif self.noise_runner is None or self.noise_runner is True:
            runner, own = self._default_noise_runner(), True
        else:
            runner = self.noise_runner  # type: ignore[assignment]
        if runner is None:
            self.noise_what = "not measured"
            self._noise_mse = self._noise_fdist = None
            return
        if own:
            runner.activate()
        try:
            threads = runner.options.get("threads")
            self.noise_what = f"{runner.name} {runner.precision}" + (
                f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
            )
            self.say(f"numerical noise: the reference as {self.noise_what} on {self.n} images")
            mse = np.zeros(self.n)
            fdist = np.zeros(self.n)
            pos = 0
            for out in _generate(runner, self.sampler, 0, self.n):
                ref = np.asarray(self._ref[pos : pos + len(out)])
                if not np.isfinite(out).all():
                    raise NonFiniteOutputError(
                        f"the reference's noise run ({self.noise_what}) produced NaN/Inf; drift needs a finite reference"
                    )
                diff = (out.astype(np.float64) - ref).reshape(len(out), -1)
                mse[pos : pos + len(out)] = (diff * diff).mean(1)
                u8, ref_u8 = to_uint8(out, self.range), to_uint8(ref, self.range)
                changed = np.nonzero((u8 != ref_u8).reshape(len(out), -1).any(1))[0]
                if len(changed):
                    f = self.extractor(u8[changed])
                    fdist[pos + changed] = ((f - self._feats_a[pos + changed]) ** 2).sum(1)
                pos += len(out)
        finally:
            if own:
                runner.deactivate()
        self._noise_mse, self._noise_fdist = mse, fdist

    def _cached_features(self, cache: Cache, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        entry = cache.lookup(key, ".npz")
        if entry is None:
            return None
        try:
            with np.load(entry, allow_pickle=False) as z:
                feats_a, feats_b = z["feats_a"].astype(np.float64), z["feats_b"].astype(np.float64)
            want = (self.n, self.extractor.dims) if self.extractor.dims else None
            if (
                feats_a.shape != feats_b.shape
                or feats_a.ndim != 2
                or (want and feats_a.shape != want)
                or not (np.isfinite(feats_a).all() and np.isfinite(feats_b).all())
            ):
                raise ValueError(f"arrays of shape {feats_a.shape}/{feats_b.shape}")
        except Exception as exc:  # noqa: BLE001 - a broken cache entry is recomputed, never a crash
            log.warning("drift reference features %s are unusable (%s); recomputing", entry, exc)
            entry.unlink(missing_ok=True)
            return None
        log.info("reference features from cache %s", entry)
        return feats_a, feats_b

    def _batches_of(self, arr: np.ndarray) -> Iterator[np.ndarray]:
        step = self.sampler.batch_size
        for i in range(0, len(arr), step):
            yield np.asarray(arr[i : i + step])

    def _features(self, batches: Iterator[np.ndarray]) -> np.ndarray:
        feats = [self.extractor(to_uint8(b, self.range)) for b in batches]
        return np.concatenate(feats)

    # ------------------------------------------------------------------- measure
    def reference_drift(self) -> Drift:
        """The reference compared with itself: zero by construction (its verdict says what N can detect)."""
        if self._ref is None:
            self.prepare()
        evidence = self._paired_evidence(
            np.zeros(self.n), np.zeros(self.n) if self._feats_a is not None else None
        )
        return Drift(
            0.0,
            0.0,
            0.0,
            math.inf,
            0.0,
            0.0,
            self.noise_floor_fid,
            self.noise_floor_kid,
            "reference",
            self.n,
            self.seed,
            self.provenance(),
            legacy_verdict="reference",
            test_verdict=paired_test(evidence, self.settings),
            evidence=evidence,
            paired_evidence=evidence,
        )

    def _paired_evidence(self, mse: np.ndarray, fdist: np.ndarray | None) -> PairedEvidence:
        lo, hi = self.range
        return PairedEvidence(
            mse=mse,
            peak=hi - lo,
            noise_mse=self._noise_mse,
            feature_dist=fdist,
            noise_feature_dist=self._noise_fdist if fdist is not None else None,
            feature_scale=self._feature_scale if fdist is not None else None,
            noise_what=self.noise_what,
        )

    def measure(self, runner: Runner, test: str = "paired") -> Drift:
        """Drift of an active runner on set A, and its verdict.

        Args:
            runner: The build to judge (active).
            test: ``paired`` (precision and backend changes: the build should give the
                reference's images) or ``distribution`` (changes of trajectory: fewer
                diffusion steps, caching; the build also generates set B, costing N more
                images and features, and the first call computes the margin's anchor).

        Raises:
            NonFiniteOutputError: NaN/Inf in its outputs.
            InputError: Unknown ``test``.
        """
        if test not in ("paired", "distribution"):
            raise InputError(f"quality test {test!r} is not 'paired' or 'distribution'")
        if self._ref is None or self._feats_a is None or self._stats_a is None:
            self.prepare()
        assert self._ref is not None and self._feats_a is not None and self._stats_a is not None
        max_abs = 0.0
        changed = 0
        count = 0
        feats = []
        mse = np.zeros(self.n)
        pos = 0
        for out in _generate(runner, self.sampler, 0, self.n):
            ref = np.asarray(self._ref[pos : pos + len(out)])
            if not np.isfinite(out).all():
                raise NonFiniteOutputError(
                    f"{runner.name} {runner.precision} produced NaN/Inf in drift images {pos}..{pos + len(out) - 1}"
                )
            diff = out.astype(np.float64) - ref
            max_abs = max(max_abs, float(np.abs(diff).max()))
            mse[pos : pos + len(out)] = (diff * diff).reshape(len(out), -1).mean(1)
            u8 = to_uint8(out, self.range)
            changed += int(np.count_nonzero(u8 != to_uint8(ref, self.range)))
            count += out.size
            feats.append(self.extractor(u8))
            pos += len(out)
        lo, hi = self.range
        psnr = psnr_from_mse(float(mse.mean()), hi - lo)
        f = np.concatenate(feats)
        fid = fid_between_stats(self._stats_a, StreamingStats(f.shape[1]).update(f))
        k = kid(self._feats_a, f, self.kid_subsets, self.kid_subset_size, self.seed)
        paired = self._paired_evidence(mse, ((f - self._feats_a) ** 2).sum(1))
        paired_verdict = paired_test(paired, self.settings)
        deciding: Verdict = paired_verdict
        evidence: PairedEvidence | DistributionEvidence = paired
        others: dict[str, Verdict] = {}
        if test == "distribution":
            dist = self.distribution_evidence(runner)
            deciding, evidence = distribution_test(dist, self.settings, kernels=self._kernels), dist
            others = {"paired": paired_verdict}
        return Drift(
            fid,
            k.mean,
            k.std,
            psnr,
            max_abs,
            changed / count,
            self.noise_floor_fid,
            self.noise_floor_kid,
            deciding.decision,
            self.n,
            self.seed,
            self.provenance(),
            legacy_verdict="within floor" if fid <= self.noise_floor_fid else "drift",
            test_verdict=deciding,
            evidence=evidence,
            other_verdicts=others,
            paired_evidence=paired,
        )

    # -------------------------------------------------------------- distribution
    def distribution_evidence(self, runner: Runner) -> DistributionEvidence:
        """The build's features on set B (its own run) beside the reference's on A and B, and the anchor.

        Raises:
            NonFiniteOutputError: NaN/Inf in the build's outputs.
        """
        if self._feats_a is None or self._feats_b is None:
            self.prepare()
        assert self._feats_a is not None and self._feats_b is not None
        self.say(
            f"distribution test: {runner.name} {runner.precision} on the {self.n} latents of set B"
        )
        feats = []
        for out in _generate(runner, self.sampler, self.n, self.n):
            if not np.isfinite(out).all():
                raise NonFiniteOutputError(
                    f"{runner.name} {runner.precision} produced NaN/Inf on the distribution test's set B"
                )
            feats.append(self.extractor(to_uint8(out, self.range)))
        anchor = None if self.settings.distribution_margin is not None else self.anchor_features()
        return DistributionEvidence(
            self._feats_a,
            self._feats_b,
            np.concatenate(feats),
            anchor,
            f"reference + Gaussian pixel noise at {self.settings.anchor_db:g} dB PSNR",
        )

    def anchor_features(self) -> np.ndarray:
        """Features of the reference's set-B images with Gaussian pixel noise at ``anchor_db`` (cached).

        The noise has standard deviation ``peak * 10^(-anchor_db / 20)`` (PSNR = anchor_db),
        is seeded by the meter's seed, and images are clipped to the output range and
        quantized like any other. The features are cached beside the reference's.
        """
        db = float(self.settings.anchor_db)
        feats = self._cached_anchor(db)
        if feats is not None:
            return feats
        self.say(
            f"distribution test: anchor features (reference + pixel noise at {db:g} dB) on {self.n} images"
        )
        rng = self._anchor_noise()
        batches = [
            self._anchor_batch(out, db, rng)
            for out in _generate(self.reference, self.sampler, self.n, self.n)
        ]
        return self._store_anchor(db, np.concatenate(batches))

    def _anchor_key(self, db: float) -> str:
        return cache_key(
            {"what": "drift anchor features", "reference_key": self.cache_key(), "anchor_db": db}
        )

    def _cached_anchor(self, db: float) -> np.ndarray | None:
        """The anchor features at ``db`` from memory or the cache (None: not there)."""
        if db in self._anchor:
            return self._anchor[db]
        entry = Cache("drift").lookup(self._anchor_key(db), ".npz")
        if entry is None:
            return None
        try:
            with np.load(entry, allow_pickle=False) as z:
                feats = z["feats"].astype(np.float64)
            if feats.shape[0] != self.n or not np.isfinite(feats).all():
                raise ValueError(f"array of shape {feats.shape}")
        except Exception as exc:  # noqa: BLE001 - a broken cache entry is recomputed, never a crash
            log.warning("drift anchor features %s are unusable (%s); recomputing", entry, exc)
            entry.unlink(missing_ok=True)
            return None
        self._anchor[db] = feats
        return feats

    def _anchor_noise(self) -> np.random.Generator:
        """The anchor's pixel-noise stream (seeded by the meter's seed; one per pass over set B)."""
        return np.random.default_rng([self.seed, 35])

    def _anchor_batch(self, out: np.ndarray, db: float, rng: np.random.Generator) -> np.ndarray:
        """Features of one batch of set-B reference images plus the anchor's pixel noise
        (batches in set-B order, drawing from one :meth:`_anchor_noise` stream)."""
        lo, hi = self.range
        sigma = (hi - lo) * 10.0 ** (-db / 20.0)
        noisy = np.clip(out + rng.normal(0.0, sigma, out.shape), lo, hi)
        return self.extractor(to_uint8(noisy.astype(np.float32), self.range))

    def _store_anchor(self, db: float, feats: np.ndarray) -> np.ndarray:
        with Cache("drift").writing(
            self._anchor_key(db), ".npz", {"n": self.n, "seed": self.seed, "anchor_db": db}
        ) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, feats=feats.astype(np.float32))
        self._anchor[db] = feats
        return feats

    def first_images(self, runner: Runner | None, count: int) -> np.ndarray:
        """The first ``count`` images of set A (reference when runner is None), uint8 NHWC."""
        if runner is None:
            assert self._ref is not None
            imgs = np.asarray(self._ref[:count])
        else:
            imgs = runner.infer(self.sampler.inputs(0, min(count, self.n)))
        u8 = to_uint8(imgs, self.range)
        return np.ascontiguousarray(np.asarray(u8).transpose(0, 2, 3, 1))

    def first_inputs(self, count: int) -> np.ndarray | None:
        """The image input of the first ``count`` samples of set A, uint8 NHWC (None without an image input)."""
        image = next((i for i in self.reference.spec.inputs if i.kind == "image"), None)
        if image is None:
            return None
        arr = self.sampler.inputs(0, min(count, self.n))[image.name]
        u8 = to_uint8(arr, self.range)
        if u8.shape[1] == 1:
            u8 = np.repeat(u8, 3, axis=1)
        return np.ascontiguousarray(u8.transpose(0, 2, 3, 1))

    def provenance(self) -> dict[str, Any]:
        """The extractor's provenance as recorded with every FID (name, sha256, resize, transform, size, runtime, precision).

        Part of the reference-feature cache key: features from another runtime or
        precision are computed again, never mixed.
        """
        ex = self.extractor
        return {
            "extractor_name": ex.name,
            "extractor_sha256": ex.sha256,
            "resize_mode": ex.resize_mode,
            "input_transform": ex.input_transform,
            "input_size": ex.input_size,
            "feature_runtime": ex.backend,
            "feature_precision": getattr(ex, "precision", "fp32"),
        }

    def close(self) -> None:
        """Drop the reference memmap file."""
        self._ref = None
        self._ref_path.unlink(missing_ok=True)


def reference_identity(art: Any) -> dict[str, Any]:
    """What identifies a reference model in the drift feature cache: file sha256, architecture, arguments."""
    return {
        "sha256": art.source_sha256 or "unknown",
        "arch": art.meta.get("arch"),
        "arch_kwargs": art.meta.get("arch_kwargs"),
        "format": art.format,
        "precision": art.precision,
    }


def measure_drift(
    runner: Runner,
    reference: Runner,
    sampler: LatentSampler,
    n: int,
    *,
    extractor: FeatureExtractor | None = None,
    reference_id: str | Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    settings: VerdictSettings | None = None,
    test: str = "paired",
) -> Drift:
    """Quality drift of ``runner`` against ``reference`` on the same ``n`` latents.

    Both runners must be active (``with runner, reference:``). ``sampler`` gives the seed
    and the batch size; set A is its samples ``0..n-1``, the noise floor uses the
    reference on ``n..2n-1`` as well. For many runners against one reference, use
    :class:`DriftMeter` so the reference is generated once.

    Args:
        runner: The build to judge (any backend).
        reference: The FP32 torch reference.
        sampler: Seeded inputs (its ``spec`` must match both runners').
        n: Images per set (hundreds for a meaningful FID).
        extractor: Feature extractor (default: the FID Inception-v3, see :class:`FeatureExtractor`).
        reference_id: Identity of the reference model for the feature cache (default:
            the sha256 of the reference's source file).
        progress: Called with a short message per step.
        settings: How the verdict decides (:class:`~accelkit.quality.verdict.VerdictSettings`).
        test: ``paired`` (default) or ``distribution`` (see :meth:`DriftMeter.measure`).

    Returns:
        :class:`Drift` with paired metrics, FID/KID drift, the noise floor and the verdict.

    Raises:
        NonFiniteOutputError: NaN/Inf in any output.
        InputError: ``n < 2``.
    """
    own_extractor = extractor is None
    ex = extractor or FeatureExtractor()
    ident = (
        reference_id
        if reference_id is not None
        else (reference.artifact.source_sha256 or "unknown")
    )
    try:
        with tempfile.TemporaryDirectory(prefix="accelkit-drift-") as tmp:
            meter = DriftMeter(
                reference,
                ident,
                ex,
                n,
                sampler.seed,
                sampler.batch_size,
                Path(tmp),
                progress=progress,
                settings=settings,
            )
            try:
                meter.prepare()
                return meter.measure(runner, test=test)
            finally:
                meter.close()
    finally:
        if own_extractor:
            ex.close()
