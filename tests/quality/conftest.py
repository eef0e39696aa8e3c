"""Fixtures for the quality tests: the tiny extractor (the private cache folder is set in tests/conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _load_fixture_builder() -> object:
    spec = importlib.util.spec_from_file_location("make_tiny_extractor", FIXTURES / "make_tiny_extractor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny TorchScript extractor (3x32x32 -> 64), built once per session."""
    builder = _load_fixture_builder()
    return builder.build(tmp_path_factory.mktemp("extractor") / "tiny_extractor.pt")  # type: ignore[attr-defined]


@pytest.fixture()
def rng() -> np.random.Generator:
    """A fixed-seed numpy generator."""
    return np.random.default_rng(1234)
