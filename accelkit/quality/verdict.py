"""Quality verdicts with measured power: the paired test and the distribution test.

A verdict answers "would a user see that this build's images got worse than the FP32
reference's?" with a decision — ``accepted``, ``rejected`` or ``inconclusive`` — the test
that decided, an interval, and the **minimum detectable effect** (MDE) at the N used.
Everything here is pure (numpy in, dataclasses out, no I/O); :mod:`accelkit.quality.drift`
gathers the evidence and ``docs/quality.md`` explains the rule.

**Paired test** (:func:`paired_test`; decides for precision and backend changes, where the
build and the reference run the same latents and should give the same images). Per image
``i`` of set A: ``excess_i = MSE(build_i, ref_i) - MSE(noise_i, ref_i)``, the build's error
beyond the reference's own numerical noise (the reference run under another but equivalent
execution, e.g. another thread count). The rule is an *equivalence test* against a
visibility margin ``m = peak^2 * 10^(-margin_db / 10)`` (``margin_db`` = 35 dB by default):

* the mean excess error gets a percentile bootstrap interval over images (90 %, i.e. a
  one-sided 5 % test on each side): **accepted** when the whole interval is inside the
  margin, **rejected** when it lies entirely beyond it, **inconclusive** otherwise;
* a tail guard: the build is also **rejected** when the share of images whose own excess
  error is beyond the margin is detectably above ``tail_share`` (1 %; Wilson lower bound),
  so a build that ruins a few images is not averaged into an acceptance;
* per-image Inception feature distances (``||f(build_i) - f(ref_i)||^2`` beyond the noise's,
  relative to ``2 tr Cov(f(ref))``, the mean squared distance between two different
  reference images) get the same interval; they decide only when ``feature_margin`` is set.

**Distribution test** (:func:`distribution_test`; decides for changes of trajectory —
fewer diffusion steps, caching — whose images are not meant to equal the reference's):
``delta = KID(ref A, build B) - KID(ref A, ref B)``, the same kind of number on both sides
(unbiased MMD^2, cubic kernel, all N images, no subsets), where the build and the
reference generate the same latents B. Its interval is a bootstrap over images (A
resampled, B resampled jointly for build and reference, so their pairing is kept). The
margin is, by default, the *anchor*: the same delta for the reference's own images with
Gaussian pixel noise at ``anchor_db`` (40 dB) — "no more distribution change than
invisible noise makes". FID(ref A, build B) - FID(ref A, ref B) is reported
beside it (a point estimate: an FID bootstrap costs an N x N SVD per resample).

**Minimum detectable effect.** With the measured spread, ``MDE = (z_{1-alpha} + z_power) *
SE``: a build further than MDE from the margin is decided (accepted below it, rejected above
it) with probability ``power`` (90 %). For the paired test the spread at the margin is
scaled from the measured coefficient of variation of the per-image errors
(``SE = cv * m / sqrt(N)``; cv = 1 is assumed when the build shows no error to measure it
on); the MDE is also given in dB ("accepts builds above X dB, rejects builds below Y dB").

**Comparing builds.** :func:`compare_builds` says whether build X is detectably worse than
build Y on the same latents (paired: per-image error differences; distribution: KID
deltas with shared reference sets).

**Integration.** :func:`judge` (``optimize``'s budget: ``floor``, ``psnr:DB`` or an FID
number) and :func:`quality_gate` / :func:`quality_regression` (``compare``'s row-level
quality gate) read a :class:`~accelkit.quality.drift.Drift` or a ``results.json`` row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from accelkit.errors import InputError, NonFiniteOutputError

#: Decisions a verdict can take.
DECISIONS = ("accepted", "rejected", "inconclusive")
#: Tests (``drift_test`` in results rows).
TESTS = ("paired", "distribution")
#: What the gate says of a row's quality (:func:`quality_gate`).
GATE_STATES = ("pass", "fail", "unreliable", "absent")


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class VerdictSettings:
    """How a verdict is decided; every default stated here and in ``docs/quality.md``.

    Attributes:
        margin_db: Visibility margin of the paired test, in dB of PSNR of the excess error
            (peak = output range width). 35 dB = an RMS error of 1.8 % of the range (4.5
            of 255 levels).
        anchor_db: Pixel noise level (PSNR, dB) of the distribution test's anchor. 40 dB
            (an RMS error of 1 % of the range, 2.5 of 255 levels), stricter than the paired
            margin: the anchor puts the noise on *every* image, and on images with flat
            regions 35 dB of grain is visible in a grid and costs the bundled ddpm's shape
            classifier 19 points (``benchmarks/results/distribution_anchor_cpu.md``).
        tail_share: Largest share of images allowed beyond the margin before the tail
            guard rejects (0.01 = 1 in 100 images).
        feature_margin: Paired feature deviation (a share of ``2 tr Cov(f(ref))``) beyond
            which the feature criterion rejects; None: reported, not deciding.
        distribution_margin: Margin of the distribution test in KID units; None: the
            anchor (reference + pixel noise at ``anchor_db``).
        level: Two-sided coverage of every interval (0.90: a one-sided 5 % test each side).
        power: Power the MDE is stated at.
        resamples: Bootstrap resamples.
        seed: Seed of the bootstrap draws (verdicts are reproducible).
        min_n: Fewest images a test decides on; below it the verdict is inconclusive.
    """

    margin_db: float = 35.0
    anchor_db: float = 40.0
    tail_share: float = 0.01
    feature_margin: float | None = None
    distribution_margin: float | None = None
    level: float = 0.90
    power: float = 0.90
    resamples: int = 2000
    seed: int = 0
    min_n: int = 20

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> InputError:
            return InputError(f"quality setting {name}={getattr(self, name)!r}: {why}")

        for name, example in (("margin_db", 35), ("anchor_db", 40)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise bad(name, f"expected a finite number of dB such as {example}")
        if not 0.0 <= self.tail_share < 1.0:
            raise bad("tail_share", "expected a share in [0, 1), e.g. 0.01")
        for name in ("feature_margin", "distribution_margin"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise bad(name, "expected a non-negative number or None")
        if not 0.5 <= self.level < 1.0:
            raise bad("level", "expected an interval coverage in [0.5, 1), e.g. 0.9")
        if not 0.5 <= self.power < 1.0:
            raise bad("power", "expected a power in [0.5, 1), e.g. 0.9")
        if self.resamples < 100:
            raise bad("resamples", "expected at least 100 bootstrap resamples")
        if self.min_n < 2:
            raise bad("min_n", "expected at least 2")

    @property
    def alpha(self) -> float:
        """One-sided error rate of each side of the interval: ``(1 - level) / 2``."""
        return (1.0 - self.level) / 2.0

    @property
    def z_sum(self) -> float:
        """``z_{1-alpha} + z_power``: the MDE in standard errors."""
        nd = NormalDist()
        return nd.inv_cdf(1.0 - self.alpha) + nd.inv_cdf(self.power)

    def margin_mse(self, peak: float) -> float:
        """The paired margin in output units squared: ``peak^2 * 10^(-margin_db / 10)``."""
        return float(peak) ** 2 * 10.0 ** (-self.margin_db / 10.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record of the settings."""
        return {
            "margin_db": self.margin_db,
            "anchor_db": self.anchor_db,
            "tail_share": self.tail_share,
            "feature_margin": self.feature_margin,
            "distribution_margin": self.distribution_margin,
            "level": self.level,
            "power": self.power,
            "resamples": self.resamples,
            "seed": self.seed,
            "min_n": self.min_n,
        }


# ---------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    """One test's decision, with its interval and power.

    Attributes:
        test: ``paired`` or ``distribution`` (or ``fid-budget`` from :func:`judge`).
        decision: ``accepted``, ``rejected`` or ``inconclusive``.
        statistic: What ``estimate``/``interval``/``margin``/``mde`` measure:
            ``excess_mse`` (output units squared), ``delta_kid`` (KID units) or ``fid``.
        estimate: The statistic's value (mean over images).
        interval: ``(low, high)`` bootstrap interval at ``level``; NaN when none.
        margin: The equivalence margin, same units.
        mde: Minimum detectable effect at this N with ``power``, same units.
        n: Images per set.
        level, power: Interval coverage and MDE power.
        reason: One line: which test decided and why.
        details: Everything else (dB conversions, tail, features, FID delta, settings).
    """

    test: str
    decision: str
    statistic: str
    estimate: float
    interval: tuple[float, float]
    margin: float
    mde: float
    n: int
    level: float
    power: float
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """The build's drift is inside the margin (a user would not see it)."""
        return self.decision == "accepted"

    @property
    def rejected(self) -> bool:
        """The build's drift is detectably beyond the margin."""
        return self.decision == "rejected"

    @property
    def n_to_decide(self) -> int | None:
        """Images per set that would decide an ``inconclusive`` verdict with ``power``.

        The standard error shrinks as ``1/sqrt(N)``, so the build is decided once the MDE
        falls below its distance to the margin: ``N' = N * (mde / |estimate - margin|)^2``
        (at least ``min_n`` and more than N). None when the verdict is decided, or when
        the estimate sits on the margin or is not a number (no N decides it).
        """
        if self.decision != "inconclusive":
            return None
        return n_to_decide(
            self.estimate, self.margin, self.mde, self.n, _min_n(self.details.get("settings"))
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (``results.json`` rows keep it as ``drift_detail``)."""
        return {**asdict(self), "interval": list(self.interval), "n_to_decide": self.n_to_decide}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict` (JSON nulls become NaN).

        Raises:
            InputError: A field is missing or of the wrong kind.
        """
        try:
            iv = d["interval"]
            return cls(
                test=str(d["test"]),
                decision=str(d["decision"]),
                statistic=str(d["statistic"]),
                estimate=_num(d["estimate"]),
                interval=(_num(iv[0]), _num(iv[1])),
                margin=_num(d["margin"]),
                mde=_num(d["mde"]),
                n=int(d["n"]),
                level=float(d["level"]),
                power=float(d["power"]),
                reason=str(d["reason"]),
                details=dict(d.get("details") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(
                f"quality verdict record is malformed ({type(exc).__name__}: {exc}); re-run accelkit bench --fid N"
            ) from None


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


@dataclass(frozen=True)
class BuildComparison:
    """Whether build X is detectably worse than build Y on the same latents.

    Attributes:
        test: ``paired`` or ``distribution``.
        decision: ``worse`` (X detectably worse), ``better`` (detectably better) or
            ``not detectably different``.
        statistic: ``excess_mse_difference`` (X minus Y, output units squared) or
            ``delta_kid_difference``.
        estimate, interval: The difference and its bootstrap interval.
        mde: Smallest difference detectable with ``power`` at this N.
        ratio: X's mean error over Y's (paired; NaN when Y's is 0 or for distribution).
        n: Images compared.
        reason: One line.
    """

    test: str
    decision: str
    statistic: str
    estimate: float
    interval: tuple[float, float]
    mde: float
    ratio: float
    n: int
    reason: str

    @property
    def worse(self) -> bool:
        """X is detectably worse than Y."""
        return self.decision == "worse"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {**asdict(self), "interval": list(self.interval)}


# ---------------------------------------------------------------------- evidence
def _vector(name: str, v: Any, n: int | None = None) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 1:
        raise InputError(f"{name} must be one value per image (1-D), got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise InputError(f"{name} has {a.shape[0]} values, expected one per image ({n})")
    if not np.isfinite(a).all():
        raise NonFiniteOutputError(
            f"{name} holds NaN or Inf: a build whose output is not finite fails, it gets no verdict"
        )
    return a


@dataclass(frozen=True)
class PairedEvidence:
    """Per-image errors of a build against the reference on the same latents.

    Attributes:
        mse: Per-image MSE of build vs reference (output units squared, float64, N).
        peak: Output range width (2 for ``[-1, 1]``), the PSNR peak.
        noise_mse: Per-image MSE of the reference's equivalent execution vs the reference
            (its numerical noise); None: zero.
        feature_dist: Per-image squared distance between the build's and the reference's
            Inception features; None when not measured.
        noise_feature_dist: The same for the noise run; None: zero.
        feature_scale: ``2 tr Cov(f(ref))``: the mean squared feature distance between two
            different reference images (normalises ``feature_dist``).
        noise_what: How the noise was measured (e.g. ``torch fp32, 1 thread``).

    Raises:
        InputError: Shapes or values out of place.
        NonFiniteOutputError: NaN or Inf anywhere (a failure, never a number).
    """

    mse: np.ndarray
    peak: float
    noise_mse: np.ndarray | None = None
    feature_dist: np.ndarray | None = None
    noise_feature_dist: np.ndarray | None = None
    feature_scale: float | None = None
    noise_what: str = "none"

    def __post_init__(self) -> None:
        mse = _vector("per-image MSE", self.mse)
        n = mse.shape[0]
        if n < 2:
            raise InputError(f"a paired verdict needs at least 2 images, got {n}")
        if (mse < 0).any():
            raise InputError("per-image MSE must be >= 0")
        if not (math.isfinite(self.peak) and self.peak > 0):
            raise InputError(f"peak {self.peak!r} must be a positive output range width")
        object.__setattr__(self, "mse", mse)
        for name in ("noise_mse", "feature_dist", "noise_feature_dist"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _vector(name.replace("_", " "), v, n))
        if self.feature_dist is not None and not (
            self.feature_scale is not None
            and math.isfinite(self.feature_scale)
            and self.feature_scale > 0
        ):
            raise InputError(
                "feature_dist needs a positive feature_scale (2 tr Cov of the reference features)"
            )

    @property
    def n(self) -> int:
        """Images compared."""
        return int(self.mse.shape[0])

    @property
    def excess(self) -> np.ndarray:
        """Per-image error beyond the noise: ``mse - noise_mse``."""
        return self.mse if self.noise_mse is None else self.mse - self.noise_mse

    @property
    def feature_excess(self) -> np.ndarray | None:
        """Per-image feature distance beyond the noise's, over ``feature_scale``."""
        if self.feature_dist is None or self.feature_scale is None:
            return None
        f = (
            self.feature_dist
            if self.noise_feature_dist is None
            else self.feature_dist - self.noise_feature_dist
        )
        return f / self.feature_scale

    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        """Compact JSON form (``drift_evidence`` in results rows); values to ``digits`` significant digits."""

        def vec(v: np.ndarray | None) -> list[float] | None:
            return None if v is None else [float(f"{x:.{digits}g}") for x in v]

        return {
            "kind": "paired",
            "peak": self.peak,
            "mse": vec(self.mse),
            "noise_mse": vec(self.noise_mse),
            "feature_dist": vec(self.feature_dist),
            "noise_feature_dist": vec(self.noise_feature_dist),
            "feature_scale": self.feature_scale,
            "noise_what": self.noise_what,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PairedEvidence:
        """Inverse of :meth:`to_dict`.

        Raises:
            InputError: Not a paired evidence record.
        """
        if d.get("kind") != "paired" or "mse" not in d or "peak" not in d:
            raise InputError(
                "not a paired evidence record (expected kind 'paired' with mse and peak)"
            )

        def arr(k: str) -> np.ndarray | None:
            v = d.get(k)
            return None if v is None else np.asarray(v, dtype=np.float64)

        try:
            mse = arr("mse")
            if mse is None:
                raise ValueError("mse is null")
            return cls(
                mse=mse,
                peak=float(d["peak"]),
                noise_mse=arr("noise_mse"),
                feature_dist=arr("feature_dist"),
                noise_feature_dist=arr("noise_feature_dist"),
                feature_scale=None if d.get("feature_scale") is None else float(d["feature_scale"]),
                noise_what=str(d.get("noise_what", "none")),
            )
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"paired evidence record is malformed ({type(exc).__name__}: {str(exc)[:120]}); re-run accelkit bench --fid N"
            ) from None


@dataclass(frozen=True)
class DistributionEvidence:
    """Inception features for the distribution test.

    Attributes:
        ref_a: Reference features on latent set A (N x dims).
        ref_b: Reference features on latent set B (M x dims).
        build_b: Build features on the same latents B, row ``j`` from the same latent as
            ``ref_b[j]`` (M x dims).
        anchor_b: Features of the reference's B images with Gaussian pixel noise at the
            visibility margin (M x dims): the default margin's anchor; None without it.
        anchor_what: How the anchor was made.

    Raises:
        InputError: Shapes do not match or fewer than 2 images per set.
        NonFiniteOutputError: NaN or Inf in any features.
    """

    ref_a: np.ndarray
    ref_b: np.ndarray
    build_b: np.ndarray
    anchor_b: np.ndarray | None = None
    anchor_what: str = ""

    def __post_init__(self) -> None:
        for name in ("ref_a", "ref_b", "build_b", "anchor_b"):
            v = getattr(self, name)
            if v is None:
                continue
            a = np.asarray(v, dtype=np.float64)
            if a.ndim != 2 or a.shape[0] < 2:
                raise InputError(
                    f"{name} features must be N x dims with N >= 2, got shape {a.shape}"
                )
            if not np.isfinite(a).all():
                raise NonFiniteOutputError(
                    f"{name} features hold NaN or Inf: a build whose output is not finite fails, it gets no verdict"
                )
            object.__setattr__(self, name, a)
        d = self.ref_a.shape[1]
        m = self.ref_b.shape[0]
        for name in ("ref_b", "build_b", "anchor_b"):
            a = getattr(self, name)
            if a is not None and a.shape[1] != d:
                raise InputError(
                    f"{name} features have {a.shape[1]} dims, ref_a has {d}; use one extractor"
                )
            if a is not None and name != "ref_b" and a.shape[0] != m:
                raise InputError(
                    f"{name} has {a.shape[0]} images, ref_b {m}: the build must generate the same latents B as the reference"
                )

    @property
    def n(self) -> int:
        """Images per set (the smaller of A and B)."""
        return int(min(self.ref_a.shape[0], self.ref_b.shape[0]))


# ---------------------------------------------------------------------- helpers
def psnr_db(mse: float, peak: float) -> float:
    """PSNR in dB of an MSE (``inf`` for ``mse <= 0``)."""
    return math.inf if mse <= 0 else 10.0 * math.log10(peak * peak / mse)


def _fmt_db(v: float) -> str:
    return "∞ dB" if math.isinf(v) else f"{v:.1f} dB"


def _bootstrap_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``resamples x n`` multiplicities of a bootstrap draw (each row sums to n), float64."""
    idx = rng.integers(0, n, size=(resamples, n))
    flat = (idx + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def _interval(boots: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _decide(interval: tuple[float, float], margin: float) -> str:
    lo, hi = interval
    if hi <= margin:
        return "accepted"
    if lo > margin:
        return "rejected"
    return "inconclusive"


def wilson_bounds(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``k / n`` at ``z`` standard errors."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def n_to_decide(estimate: float, margin: float, mde: float, n: int, min_n: int = 20) -> int | None:
    """Images per set at which a test whose MDE is ``mde`` at ``n`` decides ``estimate``.

    ``N' = ceil(n * (mde / |estimate - margin|)^2)``, at least ``min_n`` and ``n + 1``; None
    when a number is missing or the estimate is on the margin (no N decides it).
    """
    vals = (estimate, margin, mde)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals) or n < 1:
        return None
    gap = abs(estimate - margin)
    if gap <= 0 or mde <= 0:
        return None
    return max(min_n, n + 1, math.ceil(n * (mde / gap) ** 2))


def _min_n(settings: Any) -> int:
    if isinstance(settings, Mapping) and isinstance(settings.get("min_n"), int):
        return int(settings["min_n"])
    return VerdictSettings.min_n


def _decided_by(
    decision: str, estimate: float, margin: float, mde: float, n: int, s: VerdictSettings
) -> str:
    """``; N = X would decide it with 90 % power`` for an inconclusive verdict ('' otherwise)."""
    if decision != "inconclusive":
        return ""
    need = n_to_decide(estimate, margin, mde, n, s.min_n)
    if need is None:
        return "; its estimate sits on the margin: no N decides it"
    return f"; about N = {need} would decide it with {s.power:.0%} power"


def _tail_mde(t: float, n: int, settings: VerdictSettings) -> float:
    """Smallest true share of images beyond the margin the tail guard rejects with ``power`` (normal approximation)."""
    zs = settings.z_sum
    p = max(t, 1.0 / n)
    for _ in range(60):
        p_new = min(1.0, t + zs * math.sqrt(max(p * (1 - p), 1e-12) / n))
        if abs(p_new - p) < 1e-9:
            break
        p = p_new
    return p


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel ``(x.y / dims + 1)^3`` (KID's), float64."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _within(k: np.ndarray) -> float:
    """Mean of the off-diagonal entries of a square kernel matrix (the U-statistic's within term)."""
    n = k.shape[0]
    return float((k.sum() - np.trace(k)) / (n * (n - 1)))


def _within_boot(k: np.ndarray, c: np.ndarray) -> np.ndarray:
    """:func:`_within` for every bootstrap row of multiplicities ``c`` (R x n)."""
    n = k.shape[0]
    pairs = np.einsum("rj,rj->r", c @ k, c) - c @ np.diag(k)
    return np.asarray(pairs / (n * (n - 1)))


def _cross_boot(k: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Mean of ``k`` (N x M) under multiplicities ``ca`` (R x N) and ``cb`` (R x M)."""
    return np.asarray(np.einsum("rj,rj->r", ca @ k, cb) / (k.shape[0] * k.shape[1]))


# ---------------------------------------------------------------------- paired
def paired_test(evidence: PairedEvidence, settings: VerdictSettings | None = None) -> Verdict:
    """The paired test: is the build's per-image error beyond the noise inside the visibility margin?

    Args:
        evidence: Per-image errors (:class:`PairedEvidence`).
        settings: :class:`VerdictSettings` (default margin 35 dB, 90 % interval, 1 % tail).

    Returns:
        :class:`Verdict` with ``statistic="excess_mse"``.
    """
    s = settings or VerdictSettings()
    n = evidence.n
    x = evidence.excess
    m = s.margin_mse(evidence.peak)
    est = float(x.mean())
    rng = np.random.default_rng(s.seed)
    counts = _bootstrap_counts(n, s.resamples, rng) / n
    boots = counts @ x
    iv = _interval(boots, s.alpha)
    mean_decision = _decide(iv, m)
    identical = not np.any(evidence.mse)
    # MDE: SE at the margin from the measured coefficient of variation of the per-image excess.
    cv_measured = est > 0 and float(x.std(ddof=1)) > 0
    cv = float(x.std(ddof=1)) / est if cv_measured else 1.0
    mde = s.z_sum * cv * m / math.sqrt(n)
    accept_above = psnr_db(m - mde, evidence.peak) if m - mde > 0 else math.inf
    reject_below = psnr_db(m + mde, evidence.peak)
    # Tail guard: images whose own excess error is beyond the margin.
    k_beyond = int(np.count_nonzero(x > m))
    z1 = NormalDist().inv_cdf(1.0 - s.alpha)
    tail_lo, tail_hi = wilson_bounds(k_beyond, n, z1)
    tail_rejects = tail_lo > s.tail_share
    # Features (reported; decide only with feature_margin).
    fx = evidence.feature_excess
    feature: dict[str, Any] | None = None
    feature_decision = None
    if fx is not None:
        fiv = _interval(counts @ fx, s.alpha)
        feature = {"estimate": float(fx.mean()), "interval": list(fiv), "margin": s.feature_margin}
        if s.feature_margin is not None:
            feature_decision = _decide(fiv, s.feature_margin)
            feature["decision"] = feature_decision
    # Combine.
    parts = [mean_decision] + ([feature_decision] if feature_decision else [])
    if n < s.min_n:
        decision = "inconclusive"
    elif "rejected" in parts or tail_rejects:
        decision = "rejected"
    elif all(p == "accepted" for p in parts):
        decision = "accepted"
    else:
        decision = "inconclusive"
    est_db = psnr_db(est, evidence.peak)
    iv_db = (psnr_db(iv[1], evidence.peak), psnr_db(iv[0], evidence.peak))
    worst_db = psnr_db(float(x.max()), evidence.peak)
    accepts = (
        f"accepts builds above {_fmt_db(accept_above)}"
        if math.isfinite(accept_above)
        else "cannot be sure to accept any build with an error (the spread is too wide for this N)"
    )
    power_txt = (
        f"at N = {n} it {accepts} and rejects builds below "
        f"{_fmt_db(reject_below)} with {s.power:.0%} power"
        + ("" if cv_measured else " (no error to measure the spread on: cv = 1 assumed)")
    )
    if n < s.min_n:
        why = f"N = {n} is below {s.min_n} images: too few for a bootstrap interval, so no decision"
    elif identical:
        why = f"identical to the reference on all {n} images"
    elif tail_rejects and mean_decision != "rejected":
        why = (
            f"{k_beyond} of {n} images ({k_beyond / n:.1%}, at least {tail_lo:.1%}) have an error beyond the "
            f"{s.margin_db:g} dB margin, more than the {s.tail_share:.0%} tolerated"
        )
    elif feature_decision == "rejected" and mean_decision != "rejected":
        why = (
            f"feature deviation {fx.mean():.3g} beyond the feature margin {s.feature_margin:g}"
            if fx is not None
            else ""
        )
    else:
        where = {
            "accepted": "inside",
            "rejected": "beyond",
            "inconclusive": "straddles",
        }[mean_decision]
        why = (
            f"excess error {_fmt_db(est_db)} [{_fmt_db(iv_db[0])}, {_fmt_db(iv_db[1])}] {where} the "
            f"{s.margin_db:g} dB visibility margin"
        )
    reason = (
        f"paired test ({s.level:.0%} bootstrap interval, N = {n}): {why}; {power_txt}"
        + _decided_by(decision, est, m, mde, n, s)
    )
    details: dict[str, Any] = {
        "psnr_db": est_db,
        "interval_db": list(iv_db),
        "margin_db": s.margin_db,
        "mde_db": {"accept_above": accept_above, "reject_below": reject_below},
        "cv": cv,
        "cv_measured": cv_measured,
        "worst_image_db": worst_db,
        "tail": {
            "beyond_margin": k_beyond,
            "share": k_beyond / n,
            "interval": [tail_lo, tail_hi],
            "tolerated": s.tail_share,
            "rejects": tail_rejects,
            "mde_share": _tail_mde(s.tail_share, n, s),
        },
        "mean_decision": mean_decision,
        "noise": {
            "what": evidence.noise_what,
            "psnr_db": psnr_db(float(evidence.noise_mse.mean()), evidence.peak)
            if evidence.noise_mse is not None
            else math.inf,
        },
        "settings": s.to_dict(),
    }
    if feature is not None:
        details["feature"] = feature
    return Verdict(
        "paired", decision, "excess_mse", est, iv, m, mde, n, s.level, s.power, reason, details
    )


# ---------------------------------------------------------------------- distribution
class KernelCache:
    """Kernel matrices and bootstrap draws kept across distribution tests on the same reference sets.

    Judging many builds against one reference (a benchmark, an ``optimize`` search) computes
    the reference's kernels (A x A, A x B, B x B, the anchor's) and the bootstrap
    multiplicities once. Entries are keyed by the arrays' identity (the cache holds a
    reference to each array, so an identity is never reused while it is cached): pass the
    same array objects, not copies.
    """

    def __init__(self) -> None:
        self._store: dict[tuple[Any, ...], Any] = {}
        self._keep: list[np.ndarray] = []

    def kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """KID's cubic kernel between the rows of ``x`` and ``y`` (memoised)."""
        key = ("k", id(x), id(y))
        if key not in self._store:
            self._store[key] = _kernel(x, y)
            self._keep += [x, y]
        return np.asarray(self._store[key])

    def counts(self, n_a: int, n_b: int, s: VerdictSettings) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap multiplicities of A and B (seeded by the settings, so every build gets the same draws)."""
        key = ("c", n_a, n_b, s.seed, s.resamples)
        if key not in self._store:
            rng = np.random.default_rng(s.seed)
            self._store[key] = (
                _bootstrap_counts(n_a, s.resamples, rng),
                _bootstrap_counts(n_b, s.resamples, rng),
            )
        ca, cb = self._store[key]
        return ca, cb

    def floor_boots(self, a: np.ndarray, b: np.ndarray, s: VerdictSettings) -> np.ndarray:
        """Bootstrap draws of ``MMD^2_u(A, B)``, the reference's own sampling noise at this N."""
        key = ("f", id(a), id(b), s.seed, s.resamples)
        if key not in self._store:
            ca, cb = self.counts(a.shape[0], b.shape[0], s)
            kab = self.kernel(a, b)
            self._store[key] = (
                _within_boot(self.kernel(a, a), ca)
                + _within_boot(self.kernel(b, b), cb)
                - 2.0 * _cross_boot(kab, ca, cb)
            )
        return np.asarray(self._store[key])

    def mmd2(self, x: np.ndarray, y: np.ndarray) -> float:
        """Unbiased MMD^2 over all images, from memoised kernels."""
        return (
            _within(self.kernel(x, x))
            + _within(self.kernel(y, y))
            - 2.0 * float(self.kernel(x, y).mean())
        )


def _mmd_delta(
    a: np.ndarray, b1: np.ndarray, b2: np.ndarray, s: VerdictSettings, kc: KernelCache
) -> tuple[float, np.ndarray]:
    """``MMD^2_u(A, B1) - MMD^2_u(A, B2)`` with B1/B2 row-paired, and its bootstrap draws.

    A is resampled; B1 and B2 are resampled with the same indices (their pairing is kept).
    The A-A term cancels in the difference.
    """
    kb1, kb2 = kc.kernel(b1, b1), kc.kernel(b2, b2)
    ka1, ka2 = kc.kernel(a, b1), kc.kernel(a, b2)
    delta = _within(kb1) - _within(kb2) - 2.0 * (float(ka1.mean()) - float(ka2.mean()))
    ca, cb = kc.counts(a.shape[0], b1.shape[0], s)
    boots = _within_boot(kb1 - kb2, cb) - 2.0 * _cross_boot(ka1 - ka2, ca, cb)
    return delta, boots


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with KID's cubic kernel over all images (no subsets)."""
    return KernelCache().mmd2(x, y)


def distribution_test(
    evidence: DistributionEvidence,
    settings: VerdictSettings | None = None,
    *,
    fid: bool = True,
    kernels: KernelCache | None = None,
) -> Verdict:
    """The distribution test: did the build's image distribution move more than the margin?

    Args:
        evidence: Features of the reference on A and B and of the build on B
            (:class:`DistributionEvidence`), plus the anchor when ``settings`` gives no
            ``distribution_margin``.
        settings: :class:`VerdictSettings`.
        fid: Also report FID(ref A, build B) - FID(ref A, ref B) (two N x N SVDs; it
            decides nothing).
        kernels: A :class:`KernelCache` shared by tests against the same reference sets.

    Returns:
        :class:`Verdict` with ``statistic="delta_kid"``.

    Raises:
        InputError: Neither a ``distribution_margin`` nor an anchor to derive it from.
    """
    from accelkit.quality.metrics import fid_from_features

    s = settings or VerdictSettings()
    kc = kernels or KernelCache()
    a, b, x = evidence.ref_a, evidence.ref_b, evidence.build_b
    n = evidence.n
    delta, boots = _mmd_delta(a, x, b, s, kc)
    iv = _interval(boots, s.alpha)
    if s.distribution_margin is not None:
        margin = float(s.distribution_margin)
        margin_what = "distribution_margin setting"
    elif evidence.anchor_b is not None:
        margin = max(0.0, kc.mmd2(a, evidence.anchor_b) - kc.mmd2(a, b))
        margin_what = (
            f"anchor: {evidence.anchor_what or f'reference + pixel noise at {s.anchor_db:g} dB'}"
        )
    else:
        raise InputError(
            "the distribution test needs a margin: set VerdictSettings.distribution_margin (KID units) "
            "or give the anchor features (reference + pixel noise at the visibility margin)"
        )
    se = float(boots.std(ddof=1))
    se_floor = float(kc.floor_boots(a, b, s).std(ddof=1))
    mde = s.z_sum * max(se, se_floor)
    identical = np.array_equal(x, b)
    decision = _decide(iv, margin) if n >= s.min_n else "inconclusive"
    fids: dict[str, float] = {}
    if fid:
        fids = {"fid_build": fid_from_features(a, x), "fid_floor": fid_from_features(a, b)}
        fids["fid_delta"] = fids["fid_build"] - fids["fid_floor"]
    k3 = 1e3
    if n < s.min_n:
        why = f"N = {n} is below {s.min_n} images: too few for a bootstrap interval, so no decision"
    elif identical:
        why = f"the build's images equal the reference's on all {n} latents of B"
    else:
        where = {"accepted": "inside", "rejected": "beyond", "inconclusive": "straddles"}[decision]
        why = (
            f"KID delta x1e3 {delta * k3:.3g} [{iv[0] * k3:.3g}, {iv[1] * k3:.3g}] {where} the margin "
            f"{margin * k3:.3g} ({margin_what})"
            + (f"; FID {fids['fid_build']:.3g} vs floor {fids['fid_floor']:.3g}" if fids else "")
        )
    reason = (
        f"distribution test ({s.level:.0%} bootstrap interval, N = {n}): {why}; at N = {n} it detects a KID "
        f"change x1e3 of {mde * k3:.3g} from the margin with {s.power:.0%} power"
        + _decided_by(decision, delta, margin, mde, n, s)
    )
    details = {
        "kid_build": kc.mmd2(a, x),
        "kid_floor": kc.mmd2(a, b),
        **fids,
        "margin_from": margin_what,
        "se": se,
        "se_floor": se_floor,
        "settings": s.to_dict(),
    }
    return Verdict(
        "distribution",
        decision,
        "delta_kid",
        delta,
        iv,
        margin,
        mde,
        n,
        s.level,
        s.power,
        reason,
        details,
    )


# ---------------------------------------------------------------------- comparisons
def compare_builds(
    x: PairedEvidence | DistributionEvidence | Any,
    y: PairedEvidence | DistributionEvidence | Any,
    settings: VerdictSettings | None = None,
) -> BuildComparison:
    """Is build X detectably worse than build Y? Both measured on the same latents.

    Args:
        x, y: Both :class:`PairedEvidence` (per-image errors vs the same reference images)
            or both :class:`DistributionEvidence` (with the same ``ref_a`` and ``ref_b``);
            a :class:`~accelkit.quality.drift.Drift` or a results row with paired
            evidence is accepted too (:func:`evidence_of`).
        settings: :class:`VerdictSettings` (interval level, power, resamples, seed).

    Returns:
        :class:`BuildComparison`.

    Raises:
        InputError: Evidence of different kinds, sizes or reference sets, or none.
    """
    s = settings or VerdictSettings()
    ex, ey = evidence_of(x), evidence_of(y)
    if ex is None or ey is None:
        raise InputError(
            "comparing builds needs each one's per-image evidence (bench --fid N rows of this accelkit version)"
        )
    if isinstance(ex, PairedEvidence) and isinstance(ey, PairedEvidence):
        if ex.n != ey.n:
            raise InputError(
                f"builds were measured on {ex.n} and {ey.n} images; compare them on the same latents"
            )
        d = ex.excess - ey.excess
        n = ex.n
        boots = (_bootstrap_counts(n, s.resamples, np.random.default_rng(s.seed)) / n) @ d
        iv = _interval(boots, s.alpha)
        est = float(d.mean())
        mde = s.z_sum * float(d.std(ddof=1)) / math.sqrt(n)
        my = float(ey.mse.mean())
        ratio = float(ex.mse.mean()) / my if my > 0 else math.nan
        test, stat = "paired", "excess_mse_difference"
        ratio_txt = f" ({ratio:.2g}x Y's mean error)" if math.isfinite(ratio) else ""
        what = f"mean per-image error difference {est:.3g}{ratio_txt}"
    elif isinstance(ex, DistributionEvidence) and isinstance(ey, DistributionEvidence):
        if not (np.array_equal(ex.ref_a, ey.ref_a) and np.array_equal(ex.ref_b, ey.ref_b)):
            raise InputError(
                "the two builds were judged against different reference sets; use one DriftMeter"
            )
        est, boots = _mmd_delta(ex.ref_a, ex.build_b, ey.build_b, s, KernelCache())
        iv = _interval(boots, s.alpha)
        n = ex.n
        mde = s.z_sum * float(boots.std(ddof=1))
        ratio = math.nan
        test, stat = "distribution", "delta_kid_difference"
        what = f"KID difference x1e3 {est * 1e3:.3g}"
    else:
        raise InputError(
            "compare builds with the same kind of evidence (both paired or both distribution)"
        )
    if iv[0] > 0:
        decision = "worse"
    elif iv[1] < 0:
        decision = "better"
    else:
        decision = "not detectably different"
    reason = (
        (
            f"{test} comparison ({s.level:.0%} bootstrap interval, N = {n}): X is {decision} than Y"
            if decision != "not detectably different"
            else f"{test} comparison ({s.level:.0%} bootstrap interval, N = {n}): X and Y are not detectably different"
        )
        + f"; {what} [{iv[0]:.3g}, {iv[1]:.3g}]; detects a difference of {mde:.3g} with {s.power:.0%} power"
    )
    return BuildComparison(test, decision, stat, est, iv, mde, ratio, n, reason)


def evidence_of(obj: Any) -> PairedEvidence | DistributionEvidence | None:
    """The evidence held by a :class:`PairedEvidence`/:class:`DistributionEvidence`, a ``Drift`` or a results row.

    A ``Drift`` keeps it as ``.evidence``; a results row (dict or ``BenchRow``) as
    ``drift_evidence`` (paired only). None when there is none.
    """
    if isinstance(obj, (PairedEvidence, DistributionEvidence)):
        return obj
    ev = getattr(obj, "evidence", None)
    if isinstance(ev, (PairedEvidence, DistributionEvidence)):
        return ev
    rec = (
        obj.get("drift_evidence")
        if isinstance(obj, Mapping)
        else getattr(obj, "drift_evidence", None)
    )
    if isinstance(rec, Mapping):
        return PairedEvidence.from_dict(rec)
    return None


def verdict_of(obj: Any) -> Verdict | None:
    """The deciding :class:`Verdict` of a ``Drift`` (``.test_verdict``) or a results row (``drift_detail``)."""
    v = getattr(obj, "test_verdict", None)
    if isinstance(v, Verdict):
        return v
    rec = (
        obj.get("drift_detail") if isinstance(obj, Mapping) else getattr(obj, "drift_detail", None)
    )
    if isinstance(rec, Mapping) and "decision" in rec:
        return Verdict.from_dict(rec)
    return None


# ---------------------------------------------------------------------- optimize
def judge(drift: Any, budget: Any = "floor", settings: VerdictSettings | None = None) -> Verdict:
    """The verdict of a measured build under an ``optimize`` budget.

    Args:
        drift: A :class:`~accelkit.quality.drift.Drift` (or a results row / journal dict with
            ``drift_detail`` and ``drift_evidence``).
        budget: ``"floor"`` (no detectable drift: the calibrated rule), ``"psnr:DB"`` (the
            paired test with the margin set to DB), a number or ``"fid:X"`` (the paired FID
            point estimate at most X: the old rule's kind of number, no interval), or any
            object with ``kind`` (``floor``/``psnr``/``fid``) and ``value``.
        settings: :class:`VerdictSettings`; None: those the drift was judged with.

    Returns:
        :class:`Verdict`: ``accepted`` / ``rejected`` / ``inconclusive``; optimize chooses
        only among ``accepted`` builds.

    Raises:
        InputError: Unknown budget, or a PSNR budget without the per-image evidence.
    """
    kind, raw = _budget(budget)
    if kind not in ("floor", "psnr", "fid"):
        raise InputError(f"quality budget kind {kind!r} is not floor, psnr or fid")
    if kind != "floor" and raw is None:
        raise InputError(f"a {kind} budget needs a number (e.g. psnr:35 or 2.5)")
    value = float(raw or 0.0)
    base = verdict_of(drift)
    if kind == "floor":
        if settings is not None:
            ev = evidence_of(drift)
            if isinstance(ev, PairedEvidence):
                return paired_test(ev, settings)
            if isinstance(ev, DistributionEvidence):
                return distribution_test(ev, settings)
        if base is None:
            return _no_verdict(drift)
        return base
    if kind == "psnr":
        ev = evidence_of(drift)
        if not isinstance(ev, PairedEvidence):
            raise InputError(
                "a psnr:DB budget needs the build's per-image paired errors (a bench --fid / optimize measurement of this version)"
            )
        base_settings = settings or _settings_of(base)
        return paired_test(ev, replace(base_settings, margin_db=value))
    fid = _field(drift, "fid_drift")
    n = int(_field(drift, "n") or (base.n if base else 0) or 0)
    if fid is None or not math.isfinite(fid):
        return _without_interval(
            "fid-budget",
            "inconclusive",
            "fid",
            math.nan,
            value,
            n,
            "FID drift could not be measured",
        )
    ok = fid <= value
    return _without_interval(
        "fid-budget",
        "accepted" if ok else "rejected",
        "fid",
        float(fid),
        value,
        n,
        f"FID drift {fid:.3g} {'<=' if ok else '>'} budget {value:g} (a point estimate on the same latents: "
        "no interval, no stated power; prefer --budget floor or psnr:DB)",
    )


def _without_interval(
    test: str, decision: str, statistic: str, estimate: float, margin: float, n: int, reason: str
) -> Verdict:
    """A verdict that has no interval and no power (an FID budget, or a row without a verdict)."""
    nan = math.nan
    return Verdict(
        test, decision, statistic, estimate, (nan, nan), margin, nan, n, nan, nan, reason, {}
    )


def _no_verdict(drift: Any) -> Verdict:
    return _without_interval(
        "paired",
        "inconclusive",
        "excess_mse",
        math.nan,
        math.nan,
        int(_field(drift, "n") or 0),
        "no calibrated quality verdict was recorded (a report from before results schema 3); re-run bench --fid N",
    )


def _settings_of(v: Verdict | None) -> VerdictSettings:
    rec = (v.details.get("settings") if v is not None else None) or {}
    known = VerdictSettings.__dataclass_fields__
    return VerdictSettings(**{k: val for k, val in rec.items() if k in known})


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        if name == "n":
            q = obj.get("quality") or {}
            return obj.get("n", q.get("n") if isinstance(q, Mapping) else None)
        return obj.get(name)
    if name == "n" and not hasattr(obj, "n"):
        q = getattr(obj, "quality", None) or {}
        return q.get("n") if isinstance(q, Mapping) else None
    return getattr(obj, name, None)


def _budget(budget: Any) -> tuple[str, float | None]:
    if hasattr(budget, "kind"):
        return str(budget.kind), getattr(budget, "value", None)
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        return "fid", float(budget)
    text = str(budget).strip().lower()
    if text == "floor":
        return "floor", None
    try:
        if text.startswith("psnr:"):
            return "psnr", float(text[5:])
        if text.startswith("fid:"):
            return "fid", float(text[4:])
        return "fid", float(text)
    except ValueError:
        raise InputError(
            f"quality budget {budget!r} is not floor, psnr:DB (e.g. psnr:35) or an FID number (e.g. 2.5)"
        ) from None


# ---------------------------------------------------------------------- gate
@dataclass(frozen=True)
class QualityGate:
    """What a results row's quality says to a CI gate.

    Attributes:
        state: ``pass`` (accepted, or the reference row), ``fail`` (rejected: a user would
            see the drift), ``unreliable`` (inconclusive at this N, or a report without a
            calibrated verdict: cannot tell; exit 3 in the gate's vocabulary), ``absent``
            (no quality was measured: nothing to gate).
        reason: One line.
    """

    state: str
    reason: str


def quality_gate(row: Any) -> QualityGate:
    """The row-level quality gate of ``accelkit compare``: does this row's quality verdict fail the job?

    Args:
        row: A results row (``BenchRow`` or its dict).

    Returns:
        :class:`QualityGate`.
    """
    get = row.get if isinstance(row, Mapping) else (lambda k: getattr(row, k, None))
    decision = get("drift_verdict")
    reason = get("drift_reason") or ""
    if decision == "reference":
        return QualityGate("pass", "the FP32 reference itself")
    if decision == "accepted":
        return QualityGate("pass", reason or "quality accepted")
    if decision == "rejected":
        return QualityGate("fail", reason or "quality rejected")
    if decision == "inconclusive":
        return QualityGate(
            "unreliable",
            (reason or "quality inconclusive") + "; bench with a larger --fid N to decide",
        )
    if get("fid_drift") is not None:
        return QualityGate(
            "unreliable",
            "the row has FID numbers but no calibrated verdict (results schema < 3); re-run accelkit bench --fid N",
        )
    return QualityGate("absent", "no quality measured (bench without --fid)")


def quality_regression(
    baseline: Any, current: Any, settings: VerdictSettings | None = None
) -> BuildComparison | None:
    """Is the current row's build detectably worse than the baseline row's, image by image?

    Both rows must carry paired evidence measured on the same latents (same N, seed,
    extractor and reference); otherwise None (the gate then relies on
    :func:`quality_gate` alone).
    """
    eb, ec = evidence_of(baseline), evidence_of(current)
    if not isinstance(eb, PairedEvidence) or not isinstance(ec, PairedEvidence) or eb.n != ec.n:
        return None
    qb, qc = _field(baseline, "quality") or {}, _field(current, "quality") or {}
    for key in ("n", "seed", "extractor_sha256", "resize_mode"):
        if isinstance(qb, Mapping) and isinstance(qc, Mapping) and qb.get(key) != qc.get(key):
            return None
    return compare_builds(ec, eb, settings)


__all__ = [
    "DECISIONS",
    "GATE_STATES",
    "TESTS",
    "BuildComparison",
    "DistributionEvidence",
    "KernelCache",
    "PairedEvidence",
    "QualityGate",
    "Verdict",
    "VerdictSettings",
    "compare_builds",
    "distribution_test",
    "evidence_of",
    "judge",
    "mmd2_unbiased",
    "n_to_decide",
    "paired_test",
    "psnr_db",
    "quality_gate",
    "quality_regression",
    "verdict_of",
    "wilson_bounds",
]
