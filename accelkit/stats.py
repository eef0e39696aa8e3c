"""Summary statistics shared by the harness, the report and the gates (numpy only).

One definition of each: a quantile with numpy's default (linear) interpolation, the
median and the coefficient of variation. The bootstrap the gates use lives beside them in
:mod:`accelkit.gate.stats`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method) of a non-empty sequence.

    Args:
        values: Numbers (any units; the result has the same units).
        q: Quantile in [0, 1] (0.5 is the median, 0.25 the lower quartile).

    Returns:
        The quantile as a Python float.
    """
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (the mean of the two middle values for an even count)."""
    return float(statistics.median(values))


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation: sample standard deviation (``ddof=1``) over the mean.

    Dimensionless (0.05 means the values spread about 5 % around their mean). A single
    value has no spread (0.0); a zero mean gives ``inf`` (or 0.0 when every value is 0).

    Raises:
        ValueError: ``values`` is empty.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("cv of an empty sequence")
    if arr.size == 1:
        return 0.0
    sd = float(np.std(arr, ddof=1))
    mean = float(np.mean(arr))
    if mean == 0.0:
        return 0.0 if sd == 0.0 else float("inf")
    return sd / abs(mean)


__all__ = ["cv", "median", "quantile"]
