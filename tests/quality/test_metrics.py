"""Tests of accelkit.quality.metrics on random features (no extractor needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from accelkit.errors import InputError, NonFiniteOutputError
from accelkit.quality.images import to_uint8
from accelkit.quality.metrics import (
    StatsProvenance,
    StreamingStats,
    check_compatible,
    fid_between,
    fid_from_stats,
    kid,
    load_stats,
    paired_metrics,
    save_stats,
    trace_sqrt_product,
)


def gaussian_features(
    rng: np.random.Generator, n: int, d: int, shift: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """N x d correlated Gaussian features."""
    mix = rng.standard_normal((d, d)) / math.sqrt(d)
    return (rng.standard_normal((n, d)) @ mix) * scale + shift


def reference_fid(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The textbook implementation (pytorch-fid), with scipy.linalg.sqrtm."""
    linalg = pytest.importorskip(
        "scipy.linalg", reason="scipy is needed for the reference FID (pip install scipy)"
    )
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def stats_of(feats: np.ndarray, batch: int) -> StreamingStats:
    s = StreamingStats(feats.shape[1])
    for i in range(0, len(feats), batch):
        s.update(feats[i : i + batch])
    return s


def prov(**changes: object) -> StatsProvenance:
    base: dict[str, object] = dict(
        extractor_sha256="a" * 64,
        extractor_name="x",
        resize_mode="torch-bilinear-antialias-f32",
        input_transform="(x-128)/128",
        input_size=32,
        dims=8,
        n=10,
        seed=0,
        source_kind="generator",
    )
    base.update(changes)
    return StatsProvenance(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------ streaming stats
def test_streaming_stats_independent_of_batch_size(rng: np.random.Generator) -> None:
    feats = gaussian_features(rng, 500, 32, shift=0.5)
    a, b = stats_of(feats, 7), stats_of(feats, 64)
    np.testing.assert_allclose(a.mean, b.mean, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.cov, b.cov, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.mean, feats.mean(axis=0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.cov, np.cov(feats, rowvar=False), rtol=0, atol=1e-10)
    assert a.n == b.n == 500


def test_streaming_stats_merge_equals_single_pass(rng: np.random.Generator) -> None:
    feats = gaussian_features(rng, 300, 16)
    left, right = stats_of(feats[:123], 10), stats_of(feats[123:], 50)
    merged = left.merge(right)
    np.testing.assert_allclose(merged.cov, np.cov(feats, rowvar=False), rtol=0, atol=1e-10)
    assert merged.n == 300


def test_streaming_stats_keep_precision_with_large_mean(rng: np.random.Generator) -> None:
    # Raw sums of x x^T would lose ~8 digits here; the centred update must not.
    feats = gaussian_features(rng, 400, 8) + 1e5
    s = stats_of(feats, 9)
    np.testing.assert_allclose(s.cov, np.cov(feats, rowvar=False), rtol=1e-7, atol=1e-9)


def test_streaming_stats_memory_does_not_grow(rng: np.random.Generator) -> None:
    s = StreamingStats(16)
    before = s._m2.nbytes + s._mean.nbytes
    for _ in range(20):
        s.update(rng.standard_normal((100, 16)))
    assert s._m2.nbytes + s._mean.nbytes == before
    assert s.n == 2000


def test_streaming_stats_rejects_bad_input() -> None:
    s = StreamingStats(4)
    with pytest.raises(InputError, match="expected N x 4"):
        s.update(np.zeros((3, 5)))
    with pytest.raises(NonFiniteOutputError):
        s.update(np.array([[0.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(InputError, match="at least 2"):
        _ = StreamingStats(4).update(np.zeros((1, 4))).cov


# ------------------------------------------------------------------ FID
def test_fid_of_identical_sets_is_zero(rng: np.random.Generator) -> None:
    feats = gaussian_features(rng, 200, 64, shift=0.3)
    s = stats_of(feats, 32)
    assert abs(fid_from_stats(s.mean, s.cov, s.mean, s.cov)) < 1e-6
    # Rank-deficient covariance (N < dims), as with small FID sets.
    small = stats_of(feats[:20], 8)
    assert abs(fid_from_stats(small.mean, small.cov, small.mean, small.cov)) < 1e-6


def test_fid_matches_closed_form_for_diagonal_gaussians() -> None:
    a = np.array([1.0, 4.0, 0.25, 2.0])
    b = np.array([9.0, 1.0, 0.25, 0.5])
    mu1, mu2 = np.zeros(4), np.array([1.0, -2.0, 0.0, 0.5])
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    got = fid_from_stats(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("d", [16, 128])
def test_fid_agrees_with_scipy_sqrtm_reference(rng: np.random.Generator, d: int) -> None:
    f1 = gaussian_features(rng, 1000, d, shift=0.0, scale=1.0)
    f2 = gaussian_features(rng, 800, d, shift=0.2, scale=1.3)
    s1, s2 = stats_of(f1, 64), stats_of(f2, 64)
    got = fid_from_stats(s1.mean, s1.cov, s2.mean, s2.cov)
    ref = reference_fid(s1.mean, s1.cov, s2.mean, s2.cov)
    assert got > 1.0
    assert got == pytest.approx(ref, rel=1e-3)


def test_trace_sqrt_product_paths_agree(rng: np.random.Generator) -> None:
    full = stats_of(gaussian_features(rng, 300, 32), 50).cov  # positive definite
    other = stats_of(gaussian_features(rng, 300, 32, scale=2.0), 50).cov
    chol = trace_sqrt_product(full, other, "cholesky")
    eig = trace_sqrt_product(full, other, "eigh")
    assert chol == pytest.approx(eig, rel=1e-10)
    singular = stats_of(gaussian_features(rng, 10, 32), 5).cov  # rank 9 < 32
    with pytest.raises(InputError, match="singular"):
        trace_sqrt_product(singular, other, "cholesky")
    assert trace_sqrt_product(singular, other) == pytest.approx(
        trace_sqrt_product(singular, other, "eigh"), rel=1e-12
    )
    # Diagonal check: tr sqrt(diag(a) diag(b)) = sum sqrt(a b).
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.0])
    assert trace_sqrt_product(np.diag(a), np.diag(b)) == pytest.approx(
        float(np.sqrt(a * b).sum()), rel=1e-12
    )


def test_fid_is_never_negative(rng: np.random.Generator) -> None:
    feats = gaussian_features(rng, 50, 32)
    s = stats_of(feats, 50)
    noisy = s.cov + 1e-12 * rng.standard_normal(s.cov.shape)
    assert fid_from_stats(s.mean, s.cov, s.mean, noisy) >= 0.0


def test_fid_rejects_mismatched_or_nonfinite_stats() -> None:
    with pytest.raises(InputError, match="do not match"):
        fid_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    bad = np.eye(3)
    bad[0, 0] = np.inf
    with pytest.raises(NonFiniteOutputError):
        fid_from_stats(np.zeros(3), bad, np.zeros(3), np.eye(3))


# ------------------------------------------------------------------ KID
def test_kid_near_zero_for_same_distribution_and_positive_when_shifted(
    rng: np.random.Generator,
) -> None:
    d = 32
    a = rng.standard_normal((600, d))
    b = rng.standard_normal((600, d))
    shifted = rng.standard_normal((600, d)) + 0.5
    same = kid(a, b, subsets=20, subset_size=200, seed=0)
    diff = kid(a, shifted, subsets=20, subset_size=200, seed=0)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert diff.mean > 10 * max(diff.std, abs(same.mean))
    assert same.subset_size == 200 and same.subsets == 20


def test_kid_full_subset_matches_direct_unbiased_mmd(rng: np.random.Generator) -> None:
    x, y = rng.standard_normal((40, 8)), rng.standard_normal((30, 8)) + 0.3
    res = kid(x, y, subsets=1, subset_size=1000, seed=3)
    assert res.subset_size == 30
    # Direct formula on the subset the implementation drew (same seed, same draws).
    g = np.random.default_rng(3)
    a, b = x[g.choice(40, 30, replace=False)], y[g.choice(30, 30, replace=False)]
    k = lambda p, q: (p @ q.T / 8 + 1) ** 3  # noqa: E731
    m = 30
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    expected = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (
        m * (m - 1)
    ) - 2 * kxy.mean()
    assert res.mean == pytest.approx(expected, rel=1e-12)
    assert res.std == 0.0


def test_kid_is_seeded(rng: np.random.Generator) -> None:
    """Same seed, same subsets, same number; another seed draws other subsets and so gives another number."""
    x, y = rng.standard_normal((100, 4)), rng.standard_normal((100, 4)) + 0.3
    a = kid(x, y, subsets=5, subset_size=20, seed=1)
    assert a == kid(x.copy(), y.copy(), subsets=5, subset_size=20, seed=1)
    b = kid(x, y, subsets=5, subset_size=20, seed=2)
    assert (a.mean, a.std) != (b.mean, b.std)
    # with every subset the whole set, the seed cannot matter: the mean is the full-set estimate
    full = [kid(x, y, subsets=3, subset_size=100, seed=s).mean for s in (1, 2)]
    assert full[0] == pytest.approx(full[1], rel=1e-12)


def test_kid_rejects_bad_input() -> None:
    with pytest.raises(InputError):
        kid(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(InputError, match="at least 2"):
        kid(np.zeros((1, 3)), np.zeros((10, 3)))
    with pytest.raises(NonFiniteOutputError):
        kid(np.full((5, 3), np.nan), np.zeros((5, 3)))


# ------------------------------------------------------------------ paired metrics
def test_paired_metrics_known_values() -> None:
    ref = np.zeros((2, 3, 4, 4), dtype=np.float32)
    out = ref + 0.1
    m = paired_metrics(ref, out, (-1.0, 1.0))
    assert m.max_abs_error == pytest.approx(0.1, rel=1e-6)
    assert m.mse == pytest.approx(0.01, rel=1e-6)
    # peak = 2 (range width): 10 log10(4 / 0.01) = 26.0206 dB
    assert m.psnr_db == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-6)
    assert m.changed_uint8_fraction == 1.0
    assert m.n_values == ref.size


def test_paired_metrics_counts_changed_uint8_values() -> None:
    ref = np.zeros((1, 3, 4, 4), dtype=np.float32)
    out = ref.copy()
    out[0, 1, 2, 3] = 0.5  # 128 -> 191: one value of 48 changes
    out[0, 0, 0, 0] = 0.001  # below half a uint8 step: not a change
    m = paired_metrics(ref, out, (-1, 1))
    assert m.changed_uint8_fraction == pytest.approx(1 / 48)
    assert m.max_abs_error == pytest.approx(0.5)


def test_paired_metrics_identical_is_infinite_psnr() -> None:
    ref = np.linspace(0, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    m = paired_metrics(ref, ref.copy(), (0, 1))
    assert m.psnr_db == math.inf and m.mse == 0.0 and m.changed_uint8_fraction == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_paired_metrics_nonfinite_raises(bad: float) -> None:
    ref = np.zeros((1, 3, 2, 2), dtype=np.float32)
    out = ref.copy()
    out[0, 0, 0, 0] = bad
    with pytest.raises(NonFiniteOutputError, match="NaN/Inf"):
        paired_metrics(ref, out)
    with pytest.raises(NonFiniteOutputError):
        paired_metrics(out, ref)


def test_paired_metrics_shape_mismatch() -> None:
    with pytest.raises(InputError, match="shapes"):
        paired_metrics(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 3)))


def test_paired_metrics_accepts_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    m = paired_metrics(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5), (0, 1))
    assert m.max_abs_error == pytest.approx(0.5)


def test_to_uint8_rounds_like_png() -> None:
    x = np.array([-1.0, -0.999, 0.0, 1.0, 1.5, -3.0])
    np.testing.assert_array_equal(to_uint8(x, (-1, 1)), [0, 0, 128, 255, 255, 0])
    np.testing.assert_array_equal(to_uint8(np.array([0.0, 0.5, 1.0]), (0, 1)), [0, 128, 255])
    with pytest.raises(NonFiniteOutputError):
        to_uint8(np.array([np.nan]))


# ------------------------------------------------------------------ provenance and files
def test_check_compatible_allows_different_n_and_seed() -> None:
    check_compatible(prov(n=10, seed=0), prov(n=5000, seed=7, source_kind="folder"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("extractor_sha256", "b" * 64),
        ("resize_mode", "pil-bicubic"),
        ("input_size", 299),
        ("dims", 2048),
    ],
)
def test_check_compatible_names_the_differing_field(field: str, value: object) -> None:
    with pytest.raises(InputError, match=field) as info:
        check_compatible(prov(), prov(**{field: value}))
    assert "\n" not in str(info.value)


def test_check_compatible_refuses_unknown_provenance() -> None:
    with pytest.raises(InputError, match="extractor_sha256 A=unknown"):
        check_compatible(prov(extractor_sha256=None), prov())


def test_stats_roundtrip(tmp_path: Path, rng: np.random.Generator) -> None:
    feats = gaussian_features(rng, 50, 8)
    s = stats_of(feats, 16)
    p = prov(n=50, image_format="png")
    dest = save_stats(tmp_path / "a.npz", s, p)
    s2, p2 = load_stats(dest)
    np.testing.assert_array_equal(s2.mean, s.mean)
    np.testing.assert_array_equal(s2.cov, s.cov)
    assert s2.n == 50 and p2 == p
    with pytest.raises(InputError, match="already exists"):
        save_stats(dest, s, p)
    save_stats(dest, s, p, force=True)
    with pytest.raises(InputError, match="n=3"):
        save_stats(tmp_path / "b.npz", s, prov(n=3))


def test_foreign_stats_file_loads_but_is_not_comparable(tmp_path: Path) -> None:
    np.savez(tmp_path / "foreign.npz", mu=np.zeros(8), sigma=np.eye(8))
    s, p = load_stats(tmp_path / "foreign.npz")
    assert s.dims == 8 and p.extractor_sha256 is None
    with pytest.raises(InputError, match="extractor_sha256"):
        check_compatible(p, prov())


def test_bad_stats_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_stats(tmp_path / "missing.npz")
    np.savez(tmp_path / "nomu.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="'mu' and 'sigma'"):
        load_stats(tmp_path / "nomu.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz"):
        load_stats(tmp_path / "junk.npz")


def test_fid_between_two_stats_files(tmp_path: Path, rng: np.random.Generator) -> None:
    f1, f2 = gaussian_features(rng, 100, 8), gaussian_features(rng, 120, 8, shift=1.0)
    s1, s2 = stats_of(f1, 10), stats_of(f2, 10)
    save_stats(tmp_path / "a.npz", s1, prov(n=100, seed=0))
    save_stats(tmp_path / "b.npz", s2, prov(n=120, seed=1))
    res = fid_between(tmp_path / "a.npz", tmp_path / "b.npz")
    assert res.fid == pytest.approx(fid_from_stats(s1.mean, s1.cov, s2.mean, s2.cov), rel=1e-12)
    assert res.a.n == 100 and res.b.n == 120 and res.fid > 1.0
    save_stats(tmp_path / "c.npz", s2, prov(n=120, resize_mode="pil-bicubic"))
    with pytest.raises(InputError, match="resize_mode"):
        fid_between(tmp_path / "a.npz", tmp_path / "c.npz")
    with pytest.raises(InputError, match="neither an image folder"):
        fid_between(tmp_path / "a.npz", tmp_path / "nothing")
