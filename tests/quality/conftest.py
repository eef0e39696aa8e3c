"""Fixtures for the quality tests (the tiny extractor and the private cache folder are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture()
def rng() -> np.random.Generator:
    """A fixed-seed numpy generator."""
    return np.random.default_rng(1234)
