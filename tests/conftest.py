"""Shared fixtures: tiny generators in every file format, built once per session."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fixtures.* and --arch tests.fixtures.generators:X
    sys.path.insert(0, str(ROOT))

#: Fixture modules shared by several test folders (tiny diffusion pipelines: tests/diffusion, tests/passes).
pytest_plugins = ["tests.fixtures.diffusion"]


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Engine and calibration caches go to a temporary folder, never the user's ~/.cache."""
    old = os.environ.get("ACCELKIT_CACHE_DIR")
    path = tmp_path_factory.mktemp("accelkit-cache")
    os.environ["ACCELKIT_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ACCELKIT_CACHE_DIR", None)
    else:
        os.environ["ACCELKIT_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def gen_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.fixtures.generators import write_all

    return write_all(tmp_path_factory.mktemp("generators"))


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TorchScript feature extractor (3x32x32 -> 64) standing in for Inception, built once per session."""
    spec = importlib.util.spec_from_file_location(
        "make_tiny_extractor", ROOT / "tests" / "fixtures" / "make_tiny_extractor.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(tmp_path_factory.mktemp("extractor") / "tiny_extractor.pt")  # type: ignore[attr-defined,no-any-return]
