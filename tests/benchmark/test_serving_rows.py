"""Serving rows in the report (schema 2): round trip, old files, labels that never collide, rendering, compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelkit.benchmark.report import BenchRow, Report
from accelkit.errors import InputError

ENV = {
    "versions": {},
    "cpu": {"model": "test", "available_cores": 2},
    "gpus": [],
    "threads": {},
    "platform": {},
}


def _row(
    backend: str = "ort",
    *,
    scenario: str = "in_process",
    concurrency: int | None = None,
    ips: float = 100.0,
) -> BenchRow:
    r = BenchRow(
        backend=backend,
        precision="fp32",
        batch_size=1,
        device="cpu",
        images_per_sec=ips,
        images_per_sec_samples=[ips * 0.98, ips, ips * 1.01],
        images_per_sec_spread={
            "p25": ips * 0.99,
            "p75": ips * 1.005,
            "iqr": ips * 0.015,
            "min": ips * 0.98,
            "max": ips * 1.01,
        },
        latency_ms={"p50": 3.0, "p90": 4.0, "p99": 6.0, "mean": 3.2},
        scenario=scenario,
        concurrency=concurrency,
    )
    if scenario == "serving":
        r.server_latency_ms = {
            "queue": 0.5,
            "compute_input": 0.01,
            "compute_infer": 2.0,
            "compute_output": 0.1,
            "total": 2.7,
        }
        r.extra = {"avg_server_batch": 2.5, "vs_in_process": ips / 100.0}
    return r


def _report() -> Report:
    rows = [
        _row("torch", ips=50.0),
        _row(),
        _row(scenario="serving", concurrency=1, ips=80.0),
        _row(scenario="serving", concurrency=8, ips=160.0),
    ]
    return Report(rows, environment=ENV, created="2025-01-01T00:00:00+00:00")


def test_serving_rows_round_trip_and_render(tmp_path: Path) -> None:
    files = _report().write(tmp_path)
    assert files["serving_png"].stat().st_size > 1000
    rep = Report.load(tmp_path)
    serving = [r for r in rep.rows if r.scenario == "serving"]
    assert [(r.concurrency, r.label) for r in serving] == [
        (1, "ort@triton c1"),
        (8, "ort@triton c8"),
    ]
    assert serving[1].server_latency_ms == {
        "queue": 0.5,
        "compute_input": 0.01,
        "compute_infer": 2.0,
        "compute_output": 0.1,
        "total": 2.7,
    }
    assert all(
        r.speedup_vs_torch_fp32 is None for r in serving
    )  # per concurrency level: no speed-up column
    assert next(
        r for r in rep.rows if r.backend == "ort" and r.scenario == "in_process"
    ).speedup_vs_torch_fp32 == pytest.approx(2.0)
    md = (tmp_path / "results.md").read_text()
    table, serving_md = md.split("## Serving (Triton Inference Server)")
    assert "@triton" not in table  # the in-process table holds in-process rows only
    assert "| ort fp32 | 1 | 8 | 160.0" in serving_md and "1.60×" in serving_md
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert {"scenario", "concurrency", "server_queue_ms", "server_compute_infer_ms"} <= set(header)


def test_a_load_test_report_has_no_empty_in_process_parts(tmp_path: Path) -> None:
    """A report of serving rows only (accelkit loadtest URL): no "No measurements.", no empty
    throughput.png (and a stale one from an earlier run in the folder goes)."""
    (tmp_path / "throughput.png").write_bytes(b"stale")
    rows = [_row(scenario="serving", concurrency=c, ips=80.0 * c) for c in (1, 2)]
    files = Report(rows, environment=ENV, created="2025-01-01T00:00:00+00:00").write(tmp_path)
    assert set(files) == {"json", "md", "csv", "serving_png"}
    assert not (tmp_path / "throughput.png").exists()
    md = (tmp_path / "results.md").read_text()
    assert "No measurements." not in md and "## Serving (Triton Inference Server)" in md
    assert "| ort fp32 | 1 | 2 | 160.0" in md
    # an in-process report still draws its plot and drops a stale serving.png
    (tmp_path / "serving.png").write_bytes(b"stale")
    files = Report([_row()], environment=ENV, created="2025-01-01T00:00:00+00:00").write(tmp_path)
    assert set(files) == {"json", "md", "csv", "png"} and not (tmp_path / "serving.png").exists()
    assert "No measurements." in Report([], environment=ENV).to_markdown()


def test_version_1_files_still_load(tmp_path: Path) -> None:
    data = json.loads(_report().to_json())
    data["schema_version"] = 1
    data["rows"] = [
        {k: v for k, v in r.items() if k not in ("scenario", "concurrency", "server_latency_ms")}
        for r in data["rows"][:2]
    ]
    rep = Report.from_dict(data)
    assert [r.scenario for r in rep.rows] == ["in_process", "in_process"] and rep.rows[
        1
    ].label == "ort"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"scenario": "batch"}, "scenario 'batch'"),
        ({"concurrency": 0}, "positive integer concurrency"),
    ],
)
def test_bad_serving_fields_are_refused(change: dict, match: str) -> None:
    data = json.loads(_report().to_json())
    data["rows"][2].update(change)
    with pytest.raises(InputError, match=match):
        Report.from_dict(data)


def test_compare_matches_serving_rows_per_concurrency() -> None:
    from accelkit.gate.compare import compare_reports

    comp = compare_reports(_report(), _report(), max_slowdown=0.05)
    keys = {str(c.key) for c in comp.rows}
    assert any("@triton c8" in k for k in keys) and any(k.startswith("ort fp32") for k in keys)
