"""Parse-time bounds (issue 22, item 6): an absurd value is one ``error:`` line and exit 2
*before any work* (no generator loaded, nothing written), in every command that takes it.

``load_generator`` is replaced by a function that fails the test: a row passes only when
the value was refused while the command line was parsed. One row also runs the real CLI in
a subprocess, so stderr is what a user sees.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accelkit.cli import app

runner = CliRunner()

ROWS = [
    ("bench", ["--fid", "99999999999"], "--fid 99999999999 is out of range"),
    ("bench", ["--threads", "99999"], "--threads 99999 is out of range"),
    ("bench", ["--fid", "8", "--fid-weights", "/etc/hostname"], "is not a model file"),
    ("bench", ["--truncation", "1e300"], "--truncation 1e+300 is out of range"),
    ("bench", ["--batch", "99999999999"], "--batch 99999999999 is beyond any generator"),
    ("bench", ["--repeats", "99999999"], "--repeats 99999999 is out of range"),
    ("optimize", ["--fid", "99999999999"], "--fid 99999999999 is out of range"),
    ("optimize", ["--threads", "99999"], "--threads 99999 is out of range"),
    ("optimize", ["--fid-weights", "/etc/hostname"], "is not a model file"),
    ("optimize", ["--truncation", "1e300"], "--truncation 1e+300 is out of range"),
    ("optimize", ["--calib", "0"], "--calib 0 is out of range"),
    ("optimize", ["--time-budget", "1000000h"], "longer than a week"),
    ("prune", ["--keep", "["], "--keep '[' is not a valid glob"),
    ("prune", ["--fid", "99999999999"], "--fid 99999999999 is out of range"),
    ("prune", ["--threads", "99999"], "--threads 99999 is out of range"),
    ("prune", ["--fid", "8", "--fid-weights", "/etc/hostname"], "is not a model file"),
    ("export", ["--truncation", "1e300"], "--truncation 1e+300 is out of range"),
    ("export", ["--int8", "--exclude", "["], "--exclude '[' is not a valid glob"),
    ("export", ["--int8", "--calib", "99999999999"], "--calib 99999999999 is out of range"),
    ("export", ["--opset", "99"], "--opset 99 is out of range"),
    ("export", ["--fp16", "--fp16-headroom", "2"], "--fp16-headroom 2 is out of range"),
    ("fid", ["a", "b", "--fid-weights", "/etc/hostname"], "is not a model file"),
]


@pytest.mark.parametrize(("command", "args", "pattern"), ROWS, ids=[f"{c}{a}" for c, a, _ in ROWS])
def test_refused_while_parsing(command, args, pattern, tmp_path, monkeypatch) -> None:
    def no_work(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError(
            "the generator was loaded: the bad value was not refused at parse time"
        )

    monkeypatch.setattr("accelkit.loading.load_generator", no_work)
    monkeypatch.chdir(tmp_path)
    out = ["--out", str(tmp_path / "o")] if command in ("bench", "optimize") else []
    res = runner.invoke(app, [command, *args, *out])
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and pattern in errors[0], res.stderr
    assert "Traceback" not in res.output
    assert list(Path(tmp_path).iterdir()) == []


def test_real_cli_refuses_fid_weights_that_are_not_a_model(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "accelkit", "bench", "--fid", "8", "--fid-weights", "/etc/hostname"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --fid-weights /etc/hostname is not a model file")
    assert proc.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []
