"""accelkit.stats: the one quantile, median and coefficient of variation."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from accelkit.stats import cv, median, quantile


def test_quantile_interpolates_linearly_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.5) == pytest.approx(50.5)
    assert quantile(values, 0.99) == pytest.approx(99.01)
    assert quantile([10.0, 20.0, 30.0, 40.0, 100.0], 0.25) == 20.0
    assert quantile([3.0], 0.9) == 3.0
    assert isinstance(quantile([1, 2], 0.5), float)


def test_median_matches_statistics() -> None:
    for values in ([1.0], [3.0, 1.0], [5.0, 1.0, 4.0, 2.0, 3.0], [1.5, 2.5, 10.0, -1.0]):
        assert median(values) == statistics.median(values)


def test_cv_is_sample_std_over_mean() -> None:
    values = [90.0, 100.0, 110.0]
    assert cv(values) == pytest.approx(np.std(values, ddof=1) / 100.0)
    assert cv([-90.0, -100.0, -110.0]) == pytest.approx(
        0.1
    )  # relative spread, sign of the mean ignored
    assert cv([5.0]) == 0.0 and cv([2.0, 2.0, 2.0]) == 0.0
    assert cv([0.0, 0.0]) == 0.0 and cv([-1.0, 1.0]) == float("inf")
    with pytest.raises(ValueError):
        cv([])
