"""Shared helpers of the end-to-end tests: run the CLI in-process, read sidecars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from accelkit.cli import app

_runner = CliRunner()

#: Bench flags that keep a cell quick: one small batch, few short repeats.
QUICK = ["--batch", "2", "--repeats", "3", "--warmup", "1", "--min-time", "0.02"]


def cli(*args: Any, code: int = 0) -> Result:
    """Run ``accelkit ARGS`` in-process and assert its exit code (the output is shown on failure)."""
    res = _runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, (
        f"accelkit {' '.join(map(str, args))} -> {res.exit_code}\n{res.output}\n{res.stderr if res.stderr_bytes else ''}"
    )
    if code == 2:
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in res.output, res.output
    return res


def sidecar(path: Path) -> dict[str, Any]:
    """The sidecar of an artifact accelkit wrote (``<file>.accelkit.json``)."""
    side = path.with_name(path.name + ".accelkit.json")
    assert side.is_file(), f"{path} has no sidecar"
    return json.loads(side.read_text())  # type: ignore[no-any-return]


def error_line(res: Result) -> str:
    """The one ``error: ...`` line of a failed command."""
    return next(ln for ln in res.stderr.splitlines() if ln.startswith("error: "))


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 24 small photo-like PNGs (40 x 56, not the generators' size or aspect)."""
    from tests.fixtures.families import write_images

    return write_images(tmp_path_factory.mktemp("images") / "lr", 24)
