"""Quality metrics: streaming feature statistics, FID, KID and paired image errors.

* :class:`StreamingStats` keeps the count, mean and centred sum of outer products of
  features in float64 (Chan et al.'s pairwise update), so memory is ``O(dims^2)``
  whatever the number of images, and the result does not depend on the batch size.
* :func:`fid_from_stats` computes the Fréchet distance from the eigenvalues of a
  symmetric matrix similar to ``S1 S2`` (``L^T S2 L`` with ``S1 = L L^T``, or
  ``sqrt(S1) S2 sqrt(S1)`` when ``S1`` is singular); no ``scipy.linalg.sqrtm``.
* :func:`kid` is the unbiased MMD^2 with the cubic polynomial kernel over random subsets.
* :func:`paired_metrics` compares two outputs for the same latents.
* Stats files (``.npz``) carry a :class:`StatsProvenance`; :func:`check_compatible`
  refuses to compare stats made by different extractors or resize modes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.errors import InputError
from accelkit.files import atomic_path
from accelkit.quality.images import check_finite, iter_folder_batches, list_images, to_uint8

log = logging.getLogger(__name__)

#: Version of the ``.npz`` stats layout written by :func:`save_stats`.
STATS_SCHEMA = 1


# ---------------------------------------------------------------------- streaming
class StreamingStats:
    """Running mean and covariance of feature vectors, in float64.

    Memory is ``dims + dims^2`` floats whatever N. Batches are merged with the pairwise
    update of Chan, Golub and LeVeque (mean and centred sum of outer products), which is
    as cheap as raw sums and does not lose precision when the mean is large.

    Args:
        dims: Feature dimension.
    """

    def __init__(self, dims: int) -> None:
        if dims < 1:
            raise InputError(f"feature dimension {dims} is not positive")
        self.dims = int(dims)
        self.n = 0
        self._mean = np.zeros(dims, dtype=np.float64)
        self._m2 = np.zeros((dims, dims), dtype=np.float64)

    def update(self, feats: np.ndarray) -> StreamingStats:
        """Add a batch of features (N x dims, any float dtype; computed in float64).

        Raises:
            InputError: Wrong shape.
            NonFiniteOutputError: NaN or Inf in ``feats``.
        """
        x = np.asarray(feats, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dims:
            raise InputError(
                f"features of shape {x.shape} do not fit stats of dimension {self.dims}; expected N x {self.dims}"
            )
        if x.shape[0] == 0:
            return self
        check_finite(x, "FID features")
        nb = x.shape[0]
        mb = x.mean(axis=0)
        xc = x - mb
        m2b = xc.T @ xc
        return self._merge(nb, mb, m2b)

    def _merge(self, nb: int, mb: np.ndarray, m2b: np.ndarray) -> StreamingStats:
        na = self.n
        n = na + nb
        delta = mb - self._mean
        self._mean = self._mean + delta * (nb / n)
        self._m2 = self._m2 + m2b + np.outer(delta, delta) * (na * nb / n)
        self.n = n
        return self

    def merge(self, other: StreamingStats) -> StreamingStats:
        """Add another accumulator's samples to this one (in place; returns self)."""
        if other.dims != self.dims:
            raise InputError(
                f"cannot merge stats of dimension {other.dims} into dimension {self.dims}"
            )
        if other.n:
            self._merge(other.n, other._mean, other._m2)
        return self

    @property
    def mean(self) -> np.ndarray:
        """Mean feature (float64, dims)."""
        if self.n < 1:
            raise InputError("no features were added; expected at least 1 image")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (float64, dims x dims, divided by N - 1)."""
        if self.n < 2:
            raise InputError(f"covariance needs at least 2 images, got {self.n}")
        return self._m2 / (self.n - 1)

    @classmethod
    def from_moments(cls, mean: np.ndarray, cov: np.ndarray, n: int) -> StreamingStats:
        """Rebuild an accumulator from a saved mean, unbiased covariance and count."""
        mean = np.asarray(mean, dtype=np.float64)
        s = cls(mean.shape[0])
        s.n = int(n)
        s._mean = mean.copy()
        s._m2 = np.asarray(cov, dtype=np.float64) * max(int(n) - 1, 0)
        return s


# ---------------------------------------------------------------------- FID
def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray, method: str = "auto") -> float:
    """``tr sqrt(S1 S2)`` for symmetric PSD ``S1``, ``S2`` (float64).

    ``S1 S2`` is similar to a symmetric PSD matrix ``M``, so the trace is the sum of
    the square roots of ``M``'s eigenvalues (``eigvalsh``; values that rounding made
    slightly negative are clipped to 0):

    * ``cholesky``: ``S1 = L L^T`` and ``M = L^T S2 L`` (cheap; needs ``S1`` positive
      definite, i.e. more images than feature dims);
    * ``eigh``: ``M = sqrt(S1) S2 sqrt(S1)`` with ``sqrt(S1)`` from an eigendecomposition
      (works for singular ``S1``, about twice the cost);
    * ``auto``: ``cholesky``, falling back to ``eigh`` when ``S1`` is singular.
    """
    if method not in ("auto", "cholesky", "eigh"):
        raise InputError(f"unknown method {method!r}; expected 'auto', 'cholesky' or 'eigh'")
    m: np.ndarray | None = None
    if method in ("auto", "cholesky"):
        try:
            low = np.linalg.cholesky(s1)
            m = low.T @ s2 @ low
        except np.linalg.LinAlgError:
            if method == "cholesky":
                raise InputError(
                    "covariance is singular; cholesky needs more images than feature dims"
                ) from None
    if m is None:
        r1 = _sqrt_psd(s1)
        m = r1 @ s2 @ r1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def fid_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between two Gaussians.

    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)``, with the trace term from
    the eigenvalues of a symmetric matrix similar to ``S1 S2`` (see
    :func:`trace_sqrt_product`), in float64. Eigenvalues that rounding made slightly
    negative are clipped to 0; the result is clipped to >= 0.

    Args:
        mu1, mu2: Mean vectors (dims).
        sigma1, sigma2: Covariance matrices (dims x dims), symmetric PSD.

    Returns:
        FID (float, >= 0).

    Raises:
        InputError: Shapes differ.
        NonFiniteOutputError: NaN or Inf in the inputs.
    """
    m1, m2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(
            f"FID stats do not match: mu {m1.shape} / {m2.shape}, sigma {s1.shape} / {s2.shape}; "
            "expected both from the same extractor"
        )
    for name, a in (("mu1", m1), ("sigma1", s1), ("mu2", m2), ("sigma2", s2)):
        check_finite(a, f"FID statistic {name}")
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    tr_covmean = trace_sqrt_product(s1, s2)
    diff = m1 - m2
    fid = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(fid, 0.0)


def fid_between_stats(a: StreamingStats, b: StreamingStats) -> float:
    """FID between two accumulators (see :func:`fid_from_stats`)."""
    return fid_from_stats(a.mean, a.cov, b.mean, b.cov)


def fid_from_features(x: np.ndarray, y: np.ndarray) -> float:
    """FID between two feature sets (N x dims and M x dims), exact, in float64.

    With fewer images than dims (``min(N, M) < dims``, e.g. N = 500 Inception features)
    it works in sample space: with centred features ``Xc``, ``Yc``, the non-zero
    eigenvalues of ``S_x S_y`` are the squared singular values of ``K = Xc Yc^T`` divided by
    ``(N-1)(M-1)``, so ``tr sqrt(S_x S_y)`` is the sum of the singular values of an N x M
    matrix, taken as the square roots of the eigenvalues of ``K K^T`` (``eigvalsh``; no
    dims x dims decomposition). Otherwise it is :func:`fid_from_stats`.

    Raises:
        InputError: Shapes do not match or fewer than 2 images in a set.
        NonFiniteOutputError: NaN or Inf in the features.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise InputError(
            f"FID features of shapes {a.shape} and {b.shape}: expected N x dims for both, N >= 2"
        )
    check_finite(a, "FID features")
    check_finite(b, "FID features")
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    if min(n, m) >= d:
        return fid_from_stats(
            a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
        )
    ac, bc = a - a.mean(0), b - b.mean(0)
    diff = a.mean(0) - b.mean(0)
    tr_a = float((ac * ac).sum()) / (n - 1)
    tr_b = float((bc * bc).sum()) / (m - 1)
    k = ac @ bc.T if n <= m else bc @ ac.T  # the smaller side first: its Gram is min(N, M)^2
    # Singular values of K from the eigenvalues of K K^T (symmetric: about twice as fast as an SVD).
    w = np.linalg.eigvalsh(k @ k.T)
    tr_sqrt = float(np.sqrt(np.clip(w, 0.0, None)).sum()) / math.sqrt((n - 1) * (m - 1))
    return max(float(diff @ diff) + tr_a + tr_b - 2.0 * tr_sqrt, 0.0)


# ---------------------------------------------------------------------- KID
@dataclass(frozen=True)
class KidResult:
    """Kernel Inception Distance over random subsets.

    Attributes:
        mean: Mean unbiased MMD^2 over subsets (can be slightly negative by chance).
        std: Standard deviation over subsets.
        subsets: Number of subsets.
        subset_size: Samples drawn from each set per subset (without replacement).
        seed: Seed of the subset draws.
    """

    mean: float
    std: float
    subsets: int
    subset_size: int
    seed: int


def kid(
    feats1: np.ndarray,
    feats2: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KidResult:
    """Unbiased MMD^2 with the kernel ``k(x, y) = (x.y / dims + 1)^3``.

    As in Bińkowski et al. (2018) and torch-fidelity: for each subset, ``m`` rows are
    drawn without replacement from each set (``m = min(subset_size, N1, N2)``) and

    ``MMD^2 = [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m(m-1)) - 2 mean k(x_i,y_j)``.

    Args:
        feats1, feats2: Features, N1 x dims and N2 x dims.
        subsets: Number of random subsets.
        subset_size: Largest subset size.
        seed: Seed of the subset draws.

    Returns:
        :class:`KidResult` (mean and std over subsets).

    Raises:
        InputError: Shapes do not match, fewer than 2 samples, or bad subset options.
        NonFiniteOutputError: NaN or Inf in the features.
    """
    x = np.asarray(feats1, dtype=np.float64)
    y = np.asarray(feats2, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InputError(
            f"KID features of shapes {x.shape} and {y.shape} do not match; expected N x dims for both"
        )
    if subsets < 1 or subset_size < 2:
        raise InputError(
            f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}"
        )
    check_finite(x, "KID features")
    check_finite(y, "KID features")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise InputError(f"KID needs at least 2 images per set, got {x.shape[0]} and {y.shape[0]}")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets, dtype=np.float64)
    for i in range(subsets):
        a = x[rng.choice(x.shape[0], m, replace=False)]
        b = y[rng.choice(y.shape[0], m, replace=False)]
        kxx = (a @ a.T / d + 1.0) ** 3
        kyy = (b @ b.T / d + 1.0) ** 3
        kxy = (a @ b.T / d + 1.0) ** 3
        sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        vals[i] = sxx + syy - 2.0 * kxy.mean()
    return KidResult(float(vals.mean()), float(vals.std()), int(subsets), int(m), int(seed))


# ---------------------------------------------------------------------- paired
def psnr_from_mse(mse: float, peak: float) -> float:
    """PSNR in dB: ``10 log10(peak^2 / mse)``; ``inf`` for identical outputs (``mse == 0``).

    Args:
        mse: Mean squared error, in output units squared.
        peak: Peak signal, the width of the output range (2 for [-1, 1]).
    """
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


@dataclass(frozen=True)
class PairedMetrics:
    """Errors between two outputs for identical inputs.

    Attributes:
        max_abs_error: Largest ``|out - ref|``, in the output's units.
        mse: Mean squared error, in the output's units squared.
        psnr_db: ``10 log10(peak^2 / mse)`` with ``peak = hi - lo``; ``inf`` when equal.
        changed_uint8_fraction: Fraction of uint8 values (each channel of each pixel
            counts once) that differ after quantizing both like a PNG.
        n_values: Number of values compared.
    """

    max_abs_error: float
    mse: float
    psnr_db: float
    changed_uint8_fraction: float
    n_values: int


def paired_metrics(
    ref: Any, out: Any, value_range: tuple[float, float] = (-1.0, 1.0)
) -> PairedMetrics:
    """Compare an output to its reference (same latents, same shape).

    Args:
        ref: Reference images (float numpy array or torch tensor), e.g. FP32 torch.
        out: Images to judge, same shape.
        value_range: ``(lo, hi)`` of the generator's output; PSNR peak is ``hi - lo``.

    Returns:
        :class:`PairedMetrics`.

    Raises:
        NonFiniteOutputError: NaN or Inf in either input.
        InputError: Shapes differ, empty input or empty value range.
    """
    r = _to_numpy(ref)
    o = _to_numpy(out)
    if r.shape != o.shape:
        raise InputError(
            f"paired metrics got shapes {r.shape} (reference) and {o.shape} (output); expected equal shapes"
        )
    if r.size == 0:
        raise InputError("paired metrics got empty arrays; expected at least one image")
    check_finite(r, "reference output")
    check_finite(o, "output")
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise InputError(f"value range ({lo}, {hi}) is empty; expected lo < hi")
    diff = o.astype(np.float64) - r.astype(np.float64)
    mse = float(np.mean(diff * diff))
    psnr = psnr_from_mse(mse, hi - lo)
    changed = float(np.count_nonzero(to_uint8(r, (lo, hi)) != to_uint8(o, (lo, hi)))) / r.size
    return PairedMetrics(float(np.abs(diff).max()), mse, psnr, changed, int(r.size))


def _to_numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------------- provenance
@dataclass(frozen=True)
class StatsProvenance:
    """Where a set of FID statistics came from.

    Attributes:
        extractor_sha256: sha256 of the feature extractor's weights (must match).
        extractor_name: Its name (informative).
        resize_mode: Resize before the extractor (must match).
        input_transform: uint8 -> extractor input mapping (must match).
        input_size: Extractor input size in pixels (must match).
        dims: Feature dimension (must match).
        n: Number of images.
        seed: Latent seed for generated images; None for folders.
        source_kind: ``folder``, ``generator`` or ``array``.
        image_format: How pixels were stored before extraction, e.g. ``png``,
            ``jpg+png``, ``uint8 from float [-1, 1]``.
        source: Folder path or generator name (informative).
        extra: Anything else (backend, accelkit version, ...).
    """

    extractor_sha256: str | None
    extractor_name: str | None
    resize_mode: str | None
    input_transform: str | None
    input_size: int | None
    dims: int | None
    n: int
    seed: int | None = None
    source_kind: str | None = None
    image_format: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatsProvenance:
        """Inverse of :meth:`to_dict`; unknown keys go to ``extra``."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        extra = dict(known.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in names})
        known.setdefault("n", 0)
        for key in (
            "extractor_sha256",
            "extractor_name",
            "resize_mode",
            "input_transform",
            "input_size",
            "dims",
        ):
            known.setdefault(key, None)
        return cls(**known, extra=extra)

    @classmethod
    def for_extractor(cls, extractor: Any, n: int, **kwargs: Any) -> StatsProvenance:
        """Provenance for stats computed with ``extractor`` (a :class:`FeatureExtractor`)."""
        extra = {"backend": extractor.backend, "accelkit": _accelkit_version()}
        extra.update(kwargs.pop("extra", {}) or {})
        return cls(
            extractor_sha256=extractor.sha256,
            extractor_name=extractor.name,
            resize_mode=extractor.resize_mode,
            input_transform=extractor.input_transform,
            input_size=extractor.input_size,
            dims=extractor.dims,
            n=int(n),
            extra=extra,
            **kwargs,
        )


#: Fields that must be equal for two stats to be compared.
MUST_MATCH = ("extractor_sha256", "resize_mode", "input_transform", "input_size", "dims")


def check_compatible(
    a: StatsProvenance, b: StatsProvenance, label_a: str = "A", label_b: str = "B"
) -> None:
    """Refuse to compare stats made differently.

    Extractor sha256, resize mode, input transform, input size and dims must match
    (and be known); N, seed, source and image format may differ.

    Raises:
        InputError: Naming every differing field with both values.
    """
    diffs = []
    for name in MUST_MATCH:
        va, vb = getattr(a, name), getattr(b, name)
        if va is None or vb is None or va != vb:
            diffs.append(f"{name} {label_a}={_short(va)} {label_b}={_short(vb)}")
    if diffs:
        raise InputError(
            "FID stats are not comparable: "
            + "; ".join(diffs)
            + "; expected the same extractor and resize mode; "
            "recompute one side with the same --fid-weights (stats files from other tools lack this provenance)"
        )


def _check_against_extractor(prov: StatsProvenance, extractor: Any, label: str) -> None:
    """Like :func:`check_compatible` against an extractor, without loading it."""
    diffs = []
    for name, mine in (
        ("extractor_sha256", extractor.sha256),
        ("resize_mode", extractor.resize_mode),
        ("input_transform", extractor.input_transform),
        ("input_size", extractor.input_size),
    ):
        theirs = getattr(prov, name)
        if theirs is None or theirs != mine:
            diffs.append(f"{name} {label}={_short(theirs)} extractor={_short(mine)}")
    if diffs:
        raise InputError(
            "FID stats were not made with this extractor: " + "; ".join(diffs) + "; "
            "recompute them with the same --fid-weights, or leave --fid-weights out to use the stats' own"
        )


def _short(v: Any) -> str:
    if v is None:
        return "unknown"
    s = str(v)
    return s[:12] if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s


def _accelkit_version() -> str:
    try:
        from accelkit import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


# ---------------------------------------------------------------------- stats files
def save_stats(
    path: str | os.PathLike[str],
    stats: StreamingStats,
    provenance: StatsProvenance,
    force: bool = False,
) -> Path:
    """Write ``mu``, ``sigma``, ``n`` and the provenance (JSON) to an ``.npz``, atomically.

    ``mu``/``sigma`` use the names of pytorch-fid's stats files, so other tools can
    read them.

    Raises:
        InputError: ``path`` exists and ``force`` is False, its folder is missing, or
            the provenance's ``n`` differs from the stats.
    """
    dest = Path(path)
    if dest.suffix != ".npz":
        raise InputError(f"stats file {dest} must end in .npz")
    if provenance.n != stats.n:
        raise InputError(f"provenance says n={provenance.n} but the stats hold {stats.n} images")
    meta = json.dumps({"schema": STATS_SCHEMA, **provenance.to_dict()}, sort_keys=True, default=str)
    with atomic_path(dest, force=force) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f, mu=stats.mean, sigma=stats.cov, n=np.int64(stats.n), provenance=np.array(meta)
            )
    return dest


def load_stats(path: str | os.PathLike[str]) -> tuple[StreamingStats, StatsProvenance]:
    """Read an ``.npz`` stats file (accelkit's, or any with ``mu`` and ``sigma``).

    Files without accelkit provenance load with unknown extractor fields, so
    :func:`check_compatible` will refuse them.

    Raises:
        InputError: Missing file, unreadable file or missing ``mu``/``sigma``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"stats file {p} does not exist; expected an .npz written by accelkit fid --save-stats"
        )
    try:
        with np.load(p, allow_pickle=False) as data:
            keys = set(data.files)
            if not {"mu", "sigma"} <= keys:
                raise InputError(
                    f"stats file {p} has arrays {sorted(keys)}; expected 'mu' and 'sigma'; "
                    "write it with accelkit fid --save-stats"
                )
            mu = np.asarray(data["mu"], dtype=np.float64)
            sigma = np.asarray(data["sigma"], dtype=np.float64)
            n = int(data["n"]) if "n" in keys else 0
            meta: dict[str, Any] = (
                json.loads(str(data["provenance"])) if "provenance" in keys else {}
            )
            if not isinstance(meta, dict):
                raise ValueError("its provenance is not a JSON object")
    except InputError:
        raise
    except (
        OSError,
        ValueError,
        TypeError,
        json.JSONDecodeError,
        KeyError,
        EOFError,
        zipfile.BadZipFile,
    ) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(
            f"cannot read stats file {p} ({type(exc).__name__}: {first}); expected an .npz written by accelkit fid --save-stats"
        ) from None
    if mu.ndim != 1 or mu.shape[0] == 0 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise InputError(
            f"stats file {p} has mu {mu.shape} and sigma {sigma.shape}; expected D and D x D with D > 0"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise InputError(
            f"stats file {p} holds NaN or Inf in mu or sigma; recompute it with accelkit fid --save-stats"
        )
    if not np.allclose(sigma, sigma.T, rtol=1e-5, atol=1e-8 * max(1.0, float(np.abs(sigma).max()))):
        raise InputError(
            f"stats file {p}: sigma is not symmetric, so it is no covariance; recompute it with accelkit fid --save-stats"
        )
    eig_min = float(np.linalg.eigvalsh(sigma).min())
    scale = max(1e-12, float(np.abs(np.diag(sigma)).max()))
    if eig_min < -1e-6 * scale:
        raise InputError(
            f"stats file {p}: sigma has a negative eigenvalue ({eig_min:.3g}), so it is no covariance and any FID from it "
            "would be meaningless; recompute it with accelkit fid --save-stats"
        )
    meta.pop("schema", None)
    meta.setdefault("n", n)
    if not meta.get("dims"):
        meta["dims"] = None if not meta.get("extractor_sha256") else int(mu.shape[0])
    prov = StatsProvenance.from_dict(meta)
    return StreamingStats.from_moments(mu, sigma, prov.n or n), prov


# ---------------------------------------------------------------------- sources
@dataclass(frozen=True)
class FidResult:
    """FID between two sources.

    Attributes:
        fid: The Fréchet distance (>= 0).
        a, b: Provenance of both sides (N, extractor, resize mode, ...).
        feats_a, feats_b: With ``keep_features=True``, the features of each folder
            side (N x dims float64, for :func:`kid`); None for ``.npz`` sides.
    """

    fid: float
    a: StatsProvenance
    b: StatsProvenance
    feats_a: np.ndarray | None = field(default=None, repr=False, compare=False)
    feats_b: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (without the features)."""
        return {"fid": self.fid, "a": self.a.to_dict(), "b": self.b.to_dict()}


def accumulate(
    batches: Iterable[Any],
    extractor: Any,
    value_range: tuple[float, float] | None = None,
    keep_features: bool = False,
) -> tuple[StreamingStats, np.ndarray | None]:
    """Run image batches through the extractor into streaming stats.

    Args:
        batches: uint8 image batches, or float generator output when ``value_range``
            is given (quantized with :func:`accelkit.quality.images.to_uint8`).
        extractor: A :class:`accelkit.quality.features.FeatureExtractor`.
        value_range: Range of float batches; None when batches are uint8.
        keep_features: Also return all features (N x dims float64; needed for KID,
            memory grows with N).

    Returns:
        ``(stats, features or None)``.

    Raises:
        NonFiniteOutputError: A batch holds NaN or Inf.
    """
    stats: StreamingStats | None = None
    kept: list[np.ndarray] = []
    for batch in batches:
        u8 = to_uint8(batch, value_range) if value_range is not None else batch
        feats = extractor(u8)
        if stats is None:
            stats = StreamingStats(feats.shape[1])
        stats.update(feats)
        if keep_features:
            kept.append(feats)
    if stats is None:
        stats = StreamingStats(extractor.dims)
    feats_all = (
        np.concatenate(kept) if kept else (np.zeros((0, stats.dims)) if keep_features else None)
    )
    return stats, feats_all


def stats_from_folder(
    folder: str | os.PathLike[str],
    extractor: Any,
    batch_size: int = 32,
    features_out: list[np.ndarray] | None = None,
) -> tuple[StreamingStats, StatsProvenance]:
    """Streaming stats of every image under ``folder`` (see :mod:`accelkit.quality.images`).

    Args:
        folder: Folder of images (recursive, sorted).
        extractor: A :class:`accelkit.quality.features.FeatureExtractor`.
        batch_size: Images per extractor call.
        features_out: If given, each batch's features (float64 B x dims) are appended
            to it (for KID; memory grows with N).

    Raises:
        InputError: Missing/empty folder or an unreadable image (named).
    """
    files = list_images(folder)
    stats: StreamingStats | None = None
    for x in iter_folder_batches(files, batch_size, extractor.input_size, extractor.resize_mode):
        feats = extractor.features_prepared(x)
        if stats is None:
            stats = StreamingStats(feats.shape[1])
        stats.update(feats)
        if features_out is not None:
            features_out.append(feats)
    if stats is None:  # pragma: no cover - list_images returns at least one file
        raise InputError(f"image folder {folder} yielded no image")
    suffixes = sorted({p.suffix.lower().lstrip(".") for p in files})
    prov = StatsProvenance.for_extractor(
        extractor,
        stats.n,
        source_kind="folder",
        image_format="+".join(suffixes),
        source=str(folder),
    )
    log.info("FID stats of %s: %d images", folder, stats.n)
    return stats, prov


def stats_from_source(
    source: str | os.PathLike[str],
    extractor: Any | None,
    batch_size: int = 32,
    features_out: list[np.ndarray] | None = None,
) -> tuple[StreamingStats, StatsProvenance]:
    """Stats of a folder of images or a ``.npz`` stats file.

    ``features_out`` collects a folder's features (see :func:`stats_from_folder`);
    nothing is added for a stats file.

    Raises:
        InputError: The source is neither, or a folder is given without an extractor.
    """
    p = Path(source)
    if p.is_file() and p.suffix == ".npz":
        return load_stats(p)
    if p.is_dir():
        if extractor is None:
            raise InputError(f"{p} is an image folder; FID features need an extractor (got none)")
        return stats_from_folder(p, extractor, batch_size, features_out)
    raise InputError(
        f"FID source {p} is neither an image folder nor an .npz stats file; expected one of them"
    )


def fid_between(
    source_a: str | os.PathLike[str],
    source_b: str | os.PathLike[str],
    extractor: Any | None = None,
    batch_size: int = 32,
    save_stats_a: str | os.PathLike[str] | None = None,
    save_stats_b: str | os.PathLike[str] | None = None,
    force: bool = False,
    keep_features: bool = False,
) -> FidResult:
    """FID between two sources, each an image folder or an ``.npz`` stats file.

    Args:
        source_a, source_b: Folders of PNG/JPG images (recursive) or stats files.
        extractor: :class:`accelkit.quality.features.FeatureExtractor`; needed for
            folders. When both sides are stats files it may be None; when given, the
            stats must also have been made with it.
        batch_size: Images per extractor call.
        save_stats_a, save_stats_b: Where to write each side's stats (optional).
        force: Overwrite existing stats files.
        keep_features: Also return each folder side's features (for :func:`kid`,
            without extracting them twice).

    Returns:
        :class:`FidResult`.

    Raises:
        InputError: Bad sources, or stats that are not comparable (fields named).
    """
    fa: list[np.ndarray] | None = [] if keep_features else None
    fb: list[np.ndarray] | None = [] if keep_features else None
    sa, pa = stats_from_source(source_a, extractor, batch_size, fa)
    sb, pb = stats_from_source(source_b, extractor, batch_size, fb)
    check_compatible(pa, pb, "A", "B")
    if extractor is not None:
        _check_against_extractor(pa, extractor, "A")
    for stats, prov, dest in ((sa, pa, save_stats_a), (sb, pb, save_stats_b)):
        if dest is not None:
            save_stats(dest, stats, prov, force=force)
    return FidResult(
        fid_between_stats(sa, sb),
        pa,
        pb,
        np.concatenate(fa) if fa else None,
        np.concatenate(fb) if fb else None,
    )


__all__ = [
    "MUST_MATCH",
    "FidResult",
    "KidResult",
    "PairedMetrics",
    "StatsProvenance",
    "StreamingStats",
    "accumulate",
    "check_compatible",
    "fid_between",
    "fid_between_stats",
    "fid_from_features",
    "fid_from_stats",
    "kid",
    "load_stats",
    "trace_sqrt_product",
    "paired_metrics",
    "save_stats",
    "stats_from_folder",
    "stats_from_source",
]
