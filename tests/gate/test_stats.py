"""accelkit.gate.stats: the seeded bootstrap interval of a ratio of medians that both gates decide on."""

from __future__ import annotations

import pytest

from accelkit.gate.stats import bootstrap_ratio


def test_bootstrap_is_seeded_and_brackets_the_ratio() -> None:
    a = [100.0, 110.0, 95.0, 105.0, 98.0]
    b = [80.0, 85.0, 79.0, 90.0, 82.0]
    e1 = bootstrap_ratio(b, a, seed=3)
    e2 = bootstrap_ratio(b, a, seed=3)
    assert e1 == e2
    assert e1.ratio == pytest.approx(82.0 / 100.0)
    assert e1.low <= e1.ratio <= e1.high and e1.high < 1.0
    const = bootstrap_ratio([50.0] * 4, [100.0] * 4)
    assert (const.low, const.ratio, const.high) == (0.5, 0.5, 0.5)
    wide = bootstrap_ratio(b, a, confidence=0.99)
    narrow = bootstrap_ratio(b, a, confidence=0.5)
    assert wide.high - wide.low >= narrow.high - narrow.low
