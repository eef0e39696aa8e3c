"""Fixtures shared by the pass tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (outputs go to tmp_path, its parent)."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work
