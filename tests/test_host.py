"""accelkit.host facts the time budget relies on."""

from __future__ import annotations

import subprocess
import sys

from accelkit.host import process_age_s


def test_process_age_counts_from_the_interpreter_start() -> None:
    """A fresh interpreter that slept 0.5 s before asking is at least that old (the CLI's budget
    counts its own start-up and imports)."""
    code = "import time; time.sleep(0.5); from accelkit.host import process_age_s; print(process_age_s())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    age = float(out.stdout)
    assert 0.5 <= age < 30, out.stderr
    assert process_age_s() > 0
