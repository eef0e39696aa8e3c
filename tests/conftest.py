"""Shared fixtures: tiny generators in every file format, built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fixtures.* and --arch tests.fixtures.generators:X
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def gen_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.fixtures.generators import write_all

    return write_all(tmp_path_factory.mktemp("generators"))


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
