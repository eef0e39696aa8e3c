"""The quality verdict (accelkit.quality.verdict) on synthetic evidence with known shifts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from accelkit.errors import InputError, NonFiniteOutputError
from accelkit.quality.metrics import fid_from_features, fid_from_stats
from accelkit.quality.verdict import (
    DistributionEvidence,
    PairedEvidence,
    Verdict,
    VerdictSettings,
    compare_builds,
    distribution_test,
    judge,
    mmd2_unbiased,
    n_to_decide,
    paired_test,
    psnr_db,
    quality_gate,
    quality_regression,
    wilson_bounds,
)

PEAK = 2.0  # output range [-1, 1]
FAST = VerdictSettings(resamples=400)


def _mse_at(db: float, n: int, rng: np.random.Generator, cv: float = 0.3) -> np.ndarray:
    """Per-image MSEs whose mean is at ``db`` PSNR, spread with coefficient of variation ``cv`` (gamma)."""
    mean = PEAK**2 * 10 ** (-db / 10)
    shape = 1 / cv**2
    return rng.gamma(shape, mean / shape, n)


# ---------------------------------------------------------------------- paired
@pytest.mark.parametrize(
    ("db", "want"),
    [(45.0, "accepted"), (40.0, "accepted"), (33.0, "rejected"), (28.0, "rejected")],
)
def test_paired_decides_by_the_visibility_margin(rng, db: float, want: str) -> None:
    v = paired_test(PairedEvidence(_mse_at(db, 500, rng), PEAK), FAST)
    assert v.test == "paired" and v.decision == want, v.reason
    lo, hi = v.interval
    assert lo <= v.estimate <= hi
    # The interval is around the true mean within a few standard errors (cv 0.3, N 500: SE 1.3 %).
    true = PEAK**2 * 10 ** (-db / 10)
    assert abs(v.estimate - true) < 0.06 * true
    assert v.details["psnr_db"] == pytest.approx(db, abs=0.3)


def test_fp16_sized_differences_are_accepted_not_flagged(rng) -> None:
    """A 1e-3 pixel difference (what fp16 does) is ~66 dB: far inside the margin, whatever N."""
    for n in (20, 100, 1000):
        mse = np.full(n, 1e-6) * rng.uniform(0.5, 1.5, n)
        assert paired_test(PairedEvidence(mse, PEAK), FAST).decision == "accepted"


def test_near_the_margin_is_inconclusive_and_the_mde_says_what_n_resolves(rng) -> None:
    s = VerdictSettings(resamples=400, tail_share=0.999)  # the mean rule alone
    v = paired_test(PairedEvidence(_mse_at(35.05, 100, rng, cv=1.0), PEAK), s)
    assert v.decision == "inconclusive", v.reason
    band = v.details["mde_db"]
    assert band["reject_below"] < 35.0 < band["accept_above"]
    # The MDE shrinks as 1/sqrt(N): 4x the images, half the band.
    v4 = paired_test(PairedEvidence(_mse_at(35.05, 400, rng, cv=1.0), PEAK), s)
    assert v4.mde == pytest.approx(v.mde / 2, rel=0.25)
    assert "with 90% power" in v.reason and "N = 100" in v.reason
    # and it says which N would decide: the MDE must fall below the distance to the margin
    need = v.n_to_decide
    gap = abs(v.estimate - v.margin)
    assert need == max(101, math.ceil(100 * (v.mde / gap) ** 2))
    assert f"about N = {need} would decide it" in v.reason
    assert v.to_dict()["n_to_decide"] == need
    assert paired_test(PairedEvidence(_mse_at(50.0, 100, rng), PEAK), s).n_to_decide is None


@pytest.mark.parametrize(
    ("est", "margin", "mde", "n", "want"),
    [
        (1.0, 2.0, 2.0, 100, 400),  # twice the MDE's reach: 4x the images
        (1.0, 2.0, 0.5, 100, 101),  # already within reach: more than N all the same
        (2.0, 2.0, 1.0, 100, None),  # on the margin: no N decides it
        (math.nan, 2.0, 1.0, 100, None),
        (1.0, 2.0, 0.5, 5, 20),  # at least min_n
    ],
)
def test_n_to_decide(est, margin, mde, n, want) -> None:
    assert n_to_decide(est, margin, mde, n) == want


def test_tail_guard_rejects_a_build_that_ruins_a_few_images(rng) -> None:
    """Mean error at ~40 dB, but 3 % of images at 27 dB: averaged, it would pass; a user sees them."""
    mse = _mse_at(45.0, 500, rng, cv=0.1)
    mse[::33] = PEAK**2 * 10 ** (-27 / 10)
    v = paired_test(PairedEvidence(mse, PEAK), FAST)
    assert v.details["mean_decision"] == "accepted"
    assert v.decision == "rejected" and "16 of 500 images" in v.reason
    assert v.details["worst_image_db"] == pytest.approx(27.0, abs=0.01)


def test_identical_outputs_are_accepted_and_say_so() -> None:
    v = paired_test(PairedEvidence(np.zeros(200), PEAK), FAST)
    assert v.decision == "accepted" and v.estimate == 0 and v.interval == (0.0, 0.0)
    assert "identical to the reference on all 200 images" in v.reason
    assert "cv = 1 assumed" in v.reason  # no spread to measure: the MDE says what it assumed


def test_numerical_noise_is_subtracted_per_image(rng) -> None:
    noise = _mse_at(36.0, 300, rng)
    build = noise + _mse_at(50.0, 300, rng)
    alone = paired_test(PairedEvidence(build, PEAK), FAST)
    beyond = paired_test(
        PairedEvidence(build, PEAK, noise_mse=noise, noise_what="torch 1 thread"), FAST
    )
    assert alone.decision != "accepted"  # 36 dB of "noise" alone is near the margin
    assert beyond.decision == "accepted" and beyond.details["psnr_db"] == pytest.approx(50, abs=0.5)
    assert beyond.details["noise"]["what"] == "torch 1 thread"


def test_tiny_n_is_inconclusive_and_too_few_images_is_an_error(rng) -> None:
    v = paired_test(PairedEvidence(_mse_at(28.0, 10, rng), PEAK), FAST)
    assert v.decision == "inconclusive" and "N = 10 is below 20" in v.reason
    with pytest.raises(InputError, match="at least 2 images"):
        PairedEvidence(np.zeros(1), PEAK)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_a_failure_never_a_number(bad: float) -> None:
    mse = np.zeros(50)
    mse[3] = bad
    with pytest.raises(NonFiniteOutputError, match="NaN or Inf"):
        PairedEvidence(mse, PEAK)
    feats = np.zeros((50, 8))
    feats[2, 1] = bad
    with pytest.raises(NonFiniteOutputError, match="NaN or Inf"):
        DistributionEvidence(np.ones((50, 8)), np.ones((50, 8)), feats)


def test_feature_criterion_reports_and_decides_only_when_set(rng) -> None:
    mse = _mse_at(45.0, 300, rng)
    fd = rng.uniform(0.9, 1.1, 300) * 0.05  # 5 % of the between-image feature distance
    ev = PairedEvidence(mse, PEAK, feature_dist=fd, feature_scale=1.0)
    v = paired_test(ev, FAST)
    assert v.decision == "accepted" and v.details["feature"]["estimate"] == pytest.approx(
        0.05, rel=0.02
    )
    strict = paired_test(ev, VerdictSettings(resamples=400, feature_margin=0.01))
    assert strict.decision == "rejected" and "feature deviation" in strict.reason
    with pytest.raises(InputError, match="feature_scale"):
        PairedEvidence(mse, PEAK, feature_dist=fd)


def test_bootstrap_is_seeded_and_evidence_round_trips_through_json(rng) -> None:
    ev = PairedEvidence(_mse_at(38.0, 200, rng), PEAK, noise_mse=np.zeros(200), noise_what="x")
    a, b = paired_test(ev, FAST), paired_test(ev, FAST)
    assert a == b
    back = PairedEvidence.from_dict(json.loads(json.dumps(ev.to_dict())))
    again = paired_test(back, FAST)
    assert again.decision == a.decision and again.interval == pytest.approx(a.interval, rel=1e-4)
    assert (
        Verdict.from_dict(json.loads(json.dumps(a.to_dict(), default=str))).decision == a.decision
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"margin_db": math.nan},
        {"anchor_db": math.inf},
        {"tail_share": 1.5},
        {"level": 0.2},
        {"resamples": 10},
        {"min_n": 1},
    ],
)
def test_settings_refuse_nonsense(kwargs: dict) -> None:
    with pytest.raises(InputError, match="quality setting"):
        VerdictSettings(**kwargs)


def test_wilson_bounds_cover_the_share() -> None:
    lo, hi = wilson_bounds(0, 500, 1.645)
    assert lo == 0.0 and 0.004 < hi < 0.007
    lo, hi = wilson_bounds(50, 500, 1.645)
    assert lo < 0.1 < hi and lo > 0.07


# ---------------------------------------------------------------------- distribution
def _sets(rng: np.random.Generator, n: int, d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


def test_fid_from_features_matches_the_covariance_formula_below_and_above_dims(rng) -> None:
    for n, m in ((40, 30), (300, 200)):  # fewer and more images than the 64 dims
        x, y = rng.normal(size=(n, 64)), rng.normal(size=(m, 64)) + 0.1
        want = fid_from_stats(
            x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
        )
        assert fid_from_features(x, y) == pytest.approx(want, rel=1e-6)


def test_distribution_identical_sets_are_accepted_with_zero_delta(rng) -> None:
    a, b = _sets(rng, 100)
    v = distribution_test(
        DistributionEvidence(a, b, b.copy()),
        VerdictSettings(resamples=200, distribution_margin=1e-3),
    )
    assert v.decision == "accepted" and v.estimate == 0 and v.interval == (0.0, 0.0)
    assert v.details["fid_delta"] == pytest.approx(0.0, abs=1e-9)


def test_distribution_detects_a_mean_shift_and_not_an_independent_resample(rng) -> None:
    s = VerdictSettings(resamples=300, distribution_margin=2e-3)
    a, b = _sets(rng, 300)
    shifted = b + 0.3
    v = distribution_test(DistributionEvidence(a, b, shifted), s)
    assert v.decision == "rejected" and v.estimate > v.margin, v.reason
    assert v.details["fid_delta"] == pytest.approx(64 * 0.09, rel=0.2)  # |shift|^2 = 64 x 0.3^2
    # The same distribution on other latents (an "identical build under another seed"): not rejected.
    c = rng.normal(size=b.shape)
    null = distribution_test(DistributionEvidence(a, b, c), s)
    assert null.decision != "rejected" and null.interval[0] <= 0 <= null.interval[1]


def test_distribution_with_fewer_images_than_dims(rng) -> None:
    """N < dims: FID's covariance is singular, the test still runs (sample-space FID, unbiased KID)."""
    a, b = rng.normal(size=(40, 256)), rng.normal(size=(40, 256))
    v = distribution_test(
        DistributionEvidence(a, b, b + 0.5), VerdictSettings(resamples=200, distribution_margin=0.0)
    )
    assert v.decision == "rejected" and math.isfinite(v.details["fid_build"])


def test_distribution_anchor_margin_and_missing_margin(rng) -> None:
    a, b = _sets(rng, 200)
    anchor = b * 1.05 + 0.05  # the reference with a small, invisible change
    ev = DistributionEvidence(a, b, b + 0.01, anchor_b=anchor, anchor_what="test anchor")
    v = distribution_test(ev, VerdictSettings(resamples=200))
    assert v.margin == pytest.approx(
        max(0.0, mmd2_unbiased(a, anchor) - mmd2_unbiased(a, b)), rel=1e-9
    )
    assert "anchor: test anchor" in v.reason
    with pytest.raises(InputError, match="needs a margin"):
        distribution_test(DistributionEvidence(a, b, b + 0.01), VerdictSettings(resamples=200))


def test_distribution_shape_errors(rng) -> None:
    a, b = _sets(rng, 50)
    with pytest.raises(InputError, match="same latents B"):
        DistributionEvidence(a, b, b[:40])
    with pytest.raises(InputError, match="dims"):
        DistributionEvidence(a, b, rng.normal(size=(50, 32)))


# ---------------------------------------------------------------------- comparisons
def test_compare_builds_tells_8x_the_error_apart(rng) -> None:
    """The issue's case: a build with ~8x the drift of another, on the same latents."""
    small = _mse_at(40.0, 500, rng)
    big = small * 8 * rng.uniform(0.8, 1.2, 500)
    c = compare_builds(PairedEvidence(big, PEAK), PairedEvidence(small, PEAK), FAST)
    assert c.decision == "worse" and c.ratio == pytest.approx(8, rel=0.1) and c.worse
    back = compare_builds(PairedEvidence(small, PEAK), PairedEvidence(big, PEAK), FAST)
    assert back.decision == "better"
    same = compare_builds(
        PairedEvidence(small, PEAK),
        PairedEvidence(small * rng.uniform(0.99, 1.01, 500), PEAK),
        FAST,
    )
    assert same.decision == "not detectably different" and same.mde > 0
    with pytest.raises(InputError, match="same latents"):
        compare_builds(PairedEvidence(small, PEAK), PairedEvidence(small[:100], PEAK), FAST)


def test_compare_distribution_builds(rng) -> None:
    a, b = _sets(rng, 200)
    near, far = DistributionEvidence(a, b, b + 0.05), DistributionEvidence(a, b, b + 0.5)
    c = compare_builds(far, near, VerdictSettings(resamples=200))
    assert c.decision == "worse" and c.test == "distribution"
    with pytest.raises(InputError, match="same kind"):
        compare_builds(far, PairedEvidence(np.zeros(200), PEAK))


# ---------------------------------------------------------------------- judge and gate
def _row(decision: str, ev: PairedEvidence, v: Verdict) -> dict:
    return {
        "drift_verdict": decision,
        "drift_reason": v.reason,
        "drift_detail": v.to_dict(),
        "drift_evidence": ev.to_dict(),
        "fid_drift": 3.0,
        "quality": {"n": ev.n, "seed": 0, "extractor_sha256": "e", "resize_mode": "clean"},
    }


def test_judge_floor_psnr_and_fid_budgets(rng) -> None:
    ev = PairedEvidence(_mse_at(38.0, 300, rng, cv=0.1), PEAK)
    v = paired_test(ev, FAST)
    row = json.loads(json.dumps(_row(v.decision, ev, v), default=str))
    assert judge(row, "floor").decision == v.decision == "accepted"
    assert judge(row, "psnr:40").decision == "rejected"  # same evidence, a stricter margin
    assert judge(row, "psnr:30").decision == "accepted"
    fid = judge(row, 2.5)
    assert fid.decision == "rejected" and "no interval" in fid.reason
    assert judge(row, "fid:5").decision == "accepted"

    class Budget:  # optimize's Budget shape: kind + value
        kind, value = "psnr", 36.0

    assert judge(row, Budget()).decision == "accepted"
    with pytest.raises(InputError, match="not floor, psnr:DB"):
        judge(row, "psnr")
    with pytest.raises(InputError, match="per-image paired errors"):
        judge({"drift_detail": v.to_dict()}, "psnr:35")


def test_judge_without_a_calibrated_verdict_is_inconclusive() -> None:
    v = judge({"fid_drift": 1.0, "drift_verdict": None, "quality": {"n": 500}}, "floor")
    assert v.decision == "inconclusive" and "schema 3" in v.reason


def test_quality_gate_states(rng) -> None:
    ev = PairedEvidence(_mse_at(45.0, 100, rng), PEAK)
    v = paired_test(ev, FAST)
    assert quality_gate(_row("accepted", ev, v)).state == "pass"
    assert quality_gate(_row("rejected", ev, v)).state == "fail"
    inc = quality_gate(_row("inconclusive", ev, v))
    assert inc.state == "unreliable" and "larger --fid N" in inc.reason
    assert quality_gate({"drift_verdict": "reference"}).state == "pass"
    assert quality_gate({"fid_drift": 2.0, "drift_verdict": None}).state == "unreliable"
    assert quality_gate({"fid_drift": None}).state == "absent"


def test_quality_regression_between_reports(rng) -> None:
    base_ev = PairedEvidence(_mse_at(42.0, 300, rng), PEAK)
    worse_ev = PairedEvidence(base_ev.mse * 3, PEAK)
    vb, vw = paired_test(base_ev, FAST), paired_test(worse_ev, FAST)
    reg = quality_regression(_row("accepted", base_ev, vb), _row("accepted", worse_ev, vw), FAST)
    assert reg is not None and reg.decision == "worse"
    other = _row("accepted", worse_ev, vw)
    other["quality"] = {
        **other["quality"],
        "seed": 1,
    }  # other latents: not comparable image by image
    assert quality_regression(_row("accepted", base_ev, vb), other) is None


def test_psnr_db_helper() -> None:
    assert psnr_db(0.0, 2.0) == math.inf and psnr_db(4e-4, 2.0) == pytest.approx(40.0)


def test_kid_bootstrap_shortcut_equals_resampling_the_images(rng) -> None:
    """The bootstrap works on multiplicities; it must equal MMD^2 of the explicitly resampled sets."""
    from accelkit.quality import verdict as v

    a, b1 = rng.normal(size=(7, 5)), rng.normal(size=(6, 5))
    b2 = b1 + 0.3 * rng.normal(size=(6, 5))
    ia, ib = rng.integers(0, 7, 7), rng.integers(0, 6, 6)
    ca = np.bincount(ia, minlength=7)[None].astype(float)
    cb = np.bincount(ib, minlength=6)[None].astype(float)
    direct = mmd2_unbiased(a[ia], b1[ib]) - mmd2_unbiased(a[ia], b2[ib])
    k = v._kernel
    fast = v._within_boot(k(b1, b1) - k(b2, b2), cb) - 2 * v._cross_boot(
        k(a, b1) - k(a, b2), ca, cb
    )
    assert fast[0] == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize(
    "rec",
    [
        {"kind": "paired", "peak": 2.0, "mse": None},
        {"kind": "paired", "peak": "wide", "mse": [0.1, 0.2]},
        {"kind": "paired", "peak": 2.0, "mse": ["a", "b"]},
        {"kind": "distribution", "peak": 2.0, "mse": [0.1]},
    ],
)
def test_a_malformed_evidence_record_is_one_input_error(rec: dict) -> None:
    with pytest.raises(InputError, match="evidence record"):
        PairedEvidence.from_dict(rec)
    with pytest.raises(InputError, match="malformed"):
        Verdict.from_dict({"test": "paired"})
