"""compare's quality gate (issue 21): results.json files whose rows carry the calibrated
verdict, through compare_files and the real CLI's exit codes.

A rejected row fails the job like a speed regression (exit 1); a row whose drift moved
outside the baseline's window too; an inconclusive row cannot be vouched for (exit 3,
accepted by --allow-unreliable); the reason names the test, its interval and its MDE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accelkit.cli import app
from accelkit.gate.compare import compare_files
from tests.fixtures.quality import FEW_RUINED, paired_fields
from tests.gate.test_compare import results, row

runner = CliRunner()


def write(path: Path, rows: list[dict[str, Any]], version: int = 3) -> Path:
    """A results.json of ``rows`` (schema ``version``), as bench writes it."""
    doc = results(rows)
    doc["schema_version"] = version
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, allow_nan=True))
    return path


def reports(tmp_path: Path, base: dict[str, Any], cur: dict[str, Any]) -> tuple[Path, Path]:
    """Baseline and current reports: the FP32 reference row and one INT8 row with these quality fields."""

    def rows(q: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            row("torch", 1, 800.0, precision="fp32", drift_verdict="reference", fid_drift=0.0),
            row("ort", 1, 2000.0, precision="int8", **q),
        ]

    return write(tmp_path / "b" / "results.json", rows(base)), write(
        tmp_path / "c" / "results.json", rows(cur)
    )


def int8_row(comp: Any) -> Any:
    return next(r for r in comp.rows if r.key.precision == "int8")


GATE_CASES = [
    # (baseline quality, current quality, row verdict, exit code, words in the reason)
    (paired_fields(45.0), paired_fields(45.0), "pass", 0, ["quality accepted", "paired test"]),
    # the build got worse than the visibility margin: a user would see it
    (
        paired_fields(45.0),
        paired_fields(25.0),
        "regression",
        1,
        ["quality rejected", "paired test", "beyond the 35 dB", "rejects builds below"],
    ),
    # still inside the margin (no image beyond it), but far outside the baseline's window
    # (60 dB -> 38 dB)
    (
        paired_fields(60.0),
        paired_fields(38.0, cv=0.1),
        "regression",
        1,
        ["outside the baseline's window", "paired test, N = 200", "its MDE"],
    ),
    # the same build measured again on another seed of noise: inside the window
    (paired_fields(45.0), paired_fields(45.0, seed=3), "pass", 0, ["quality accepted"]),
    # this N cannot tell: the gate cannot vouch for it
    (
        paired_fields(45.0),
        paired_fields(0, mse=FEW_RUINED),
        "unreliable",
        3,
        ["quality inconclusive", "straddles", "would decide it", "larger --fid N"],
    ),
    # the baseline judged quality, the current run did not measure it
    (
        paired_fields(45.0),
        {},
        "unreliable",
        3,
        ["no calibrated verdict", "--fid N"],
    ),
]


@pytest.mark.parametrize(("base", "cur", "verdict", "code", "words"), GATE_CASES)
def test_quality_gate(tmp_path, base, cur, verdict, code, words) -> None:
    b, c = reports(tmp_path, base, cur)
    comp = compare_files(b, c)
    r = int8_row(comp)
    assert r.verdict == verdict and comp.exit_code == code, r.reason
    quality = next(f for f in r.findings if f.metric == "quality")
    for w in words:
        assert w in quality.reason, quality.reason
    assert r.speed_verdict == "pass"  # the speed did not change: quality alone decided


def test_the_cli_fails_the_job_and_allow_unreliable_accepts_only_what_cannot_tell(
    tmp_path,
) -> None:
    b, c = reports(tmp_path / "bad", paired_fields(45.0), paired_fields(25.0))
    res = runner.invoke(app, ["compare", str(b), str(c)])
    assert res.exit_code == 1, res.output
    assert "quality rejected: paired test" in res.stdout
    res = runner.invoke(app, ["compare", str(b), str(c), "--allow-unreliable"])
    assert res.exit_code == 1  # a rejected build still fails
    b, c = reports(tmp_path / "unsure", paired_fields(45.0), paired_fields(0, mse=FEW_RUINED))
    res = runner.invoke(app, ["compare", str(b), str(c)])
    assert res.exit_code == 3, res.output
    assert "larger --fid N" in res.stdout
    res = runner.invoke(app, ["compare", str(b), str(c), "--allow-unreliable"])
    assert res.exit_code == 0, res.output


def test_reports_without_calibrated_verdicts_are_not_quality_gated(tmp_path) -> None:
    """Version-2 files (the old `within floor` rule) carry no verdict on either side: the
    gate has nothing to judge quality on and keeps to speed (and --max-fid-drift)."""
    old = {"fid_drift": 22.0, "noise_floor_fid": 25.0, "drift_verdict": "within floor"}
    rows = [row("ort", 1, 2000.0, precision="int8", **old)]
    b = write(tmp_path / "b" / "results.json", rows, version=2)
    c = write(tmp_path / "c" / "results.json", rows, version=2)
    comp = compare_files(b, c)
    assert comp.exit_code == 0 and not any(f.metric == "quality" for f in comp.rows[0].findings)


def test_the_window_needs_the_same_test_and_n(tmp_path) -> None:
    """A baseline at another N has another window: only the current verdict decides."""
    b, c = reports(tmp_path, paired_fields(60.0, n=100), paired_fields(38.0, cv=0.1))
    comp = compare_files(b, c)
    assert int8_row(comp).verdict == "pass" and comp.exit_code == 0


def test_quality_findings_are_in_the_json_record(tmp_path) -> None:
    b, c = reports(tmp_path, paired_fields(45.0), paired_fields(25.0))
    rec = compare_files(b, c).to_dict()
    row_rec = next(r for r in rec["rows"] if r["precision"] == "int8")
    q = next(f for f in row_rec["findings"] if f["metric"] == "quality")
    assert q["verdict"] == "regression" and "paired test" in q["reason"]
