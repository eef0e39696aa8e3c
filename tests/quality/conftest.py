"""Fixtures for the quality tests: the tiny extractor and a private cache folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator

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


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ACCELKIT_CACHE_DIR at a temp folder so tests never touch ~/.cache."""
    old = os.environ.get("ACCELKIT_CACHE_DIR")
    path = tmp_path_factory.mktemp("accelkit-cache")
    os.environ["ACCELKIT_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ACCELKIT_CACHE_DIR", None)
    else:
        os.environ["ACCELKIT_CACHE_DIR"] = old


@pytest.fixture()
def rng() -> np.random.Generator:
    """A fixed-seed numpy generator."""
    return np.random.default_rng(1234)
