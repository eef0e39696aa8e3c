"""The gates' statistics: a bootstrap interval for a ratio of medians.

:func:`bootstrap_ratio` is what both gates decide on: :mod:`accelkit.gate.compare`
(current / baseline images/sec of one row, two runs) and :mod:`accelkit.gate.ratio_gate`
(ORT / torch images/sec, one run). Plain summaries (quantile, median, coefficient of
variation) live in :mod:`accelkit.stats`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from accelkit.errors import InputError

#: Fewest repeats per side for a noise estimate; below it a row never regresses.
MIN_SAMPLES = 3


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio of medians with its bootstrap percentile interval.

    Attributes:
        ratio: ``median(numerator) / median(denominator)`` (dimensionless).
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        confidence: Two-sided coverage of ``[low, high]`` (0.95).
        n_numerator: Samples on the numerator side.
        n_denominator: Samples on the denominator side.
    """

    ratio: float
    low: float
    high: float
    confidence: float
    n_numerator: int
    n_denominator: int

    @property
    def noise_known(self) -> bool:
        """Both sides have at least :data:`MIN_SAMPLES` samples."""
        return min(self.n_numerator, self.n_denominator) >= MIN_SAMPLES


def _positive_samples(samples: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(list(samples), dtype=np.float64)
    if arr.size == 0:
        raise InputError(
            f"{what} has no images_per_sec_samples; re-run accelkit bench (every ok row stores its repeats)"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(
            f"{what} has a non-positive or non-finite images/sec sample {arr.tolist()}; re-run accelkit bench"
        )
    return arr


def bootstrap_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int | Sequence[int] = 0,
    what: str = "row",
    paired: bool = False,
) -> RatioEstimate:
    """Bootstrap the ratio of medians ``median(numerator) / median(denominator)``.

    Each side is resampled with replacement independently (its own size), ``n_boot``
    times; the interval is the ``(1-confidence)/2`` and ``(1+confidence)/2`` percentiles
    of the resampled ratios. With a single sample on a side, that side does not vary.
    With ``paired`` and equal sizes, sample *i* of both sides was measured together
    (same round) and the same indices are drawn for both, which keeps what a round's
    machine load did to both sides out of the interval.

    Args:
        numerator: Positive samples (e.g. current images/sec per repeat).
        denominator: Positive samples (e.g. baseline images/sec per repeat).
        confidence: Two-sided coverage in (0, 1).
        n_boot: Bootstrap resamples (>= 100).
        seed: Seed of the resampling (``numpy.random.default_rng``), for reproducibility.
        what: Which row, for error messages.

    Returns:
        The :class:`RatioEstimate`.

    Raises:
        InputError: Empty, non-positive or non-finite samples, or bad settings.
    """
    check_bootstrap_settings(confidence, n_boot)
    num = _positive_samples(numerator, what)
    den = _positive_samples(denominator, what)
    point = float(np.median(num) / np.median(den))
    rng = np.random.default_rng(seed)
    idx_num = rng.integers(0, num.size, size=(n_boot, num.size))
    idx_den = (
        idx_num
        if (paired and num.size == den.size)
        else rng.integers(0, den.size, size=(n_boot, den.size))
    )
    med_num = np.median(num[idx_num], axis=1)
    med_den = np.median(den[idx_den], axis=1)
    ratios = med_num / med_den
    alpha = 1.0 - confidence
    lo, hi = np.quantile(ratios, [alpha / 2.0, 1.0 - alpha / 2.0])
    return RatioEstimate(
        point,
        float(min(lo, point)),
        float(max(hi, point)),
        confidence,
        int(num.size),
        int(den.size),
    )


def check_bootstrap_settings(confidence: float, n_boot: int) -> None:
    """Raise :class:`~accelkit.errors.InputError` for a coverage outside (0, 1) or fewer than 100 resamples."""
    if not (isinstance(confidence, (int, float)) and 0.0 < float(confidence) < 1.0):
        raise InputError(
            f"--confidence {confidence!r} is out of range; expected a fraction between 0 and 1 such as 0.95"
        )
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 100:
        raise InputError(
            f"n_boot {n_boot!r} is too small; use at least 100 bootstrap resamples (2000 is the default)"
        )


def row_seed(seed: int, key: Any) -> list[int]:
    """A per-row seed independent of row order: ``[seed, crc32(str(key))]``."""
    return [int(seed) & 0xFFFFFFFF, zlib.crc32(str(key).encode())]


__all__ = [
    "MIN_SAMPLES",
    "RatioEstimate",
    "bootstrap_ratio",
    "check_bootstrap_settings",
    "row_seed",
]
