"""Load-generator parts that need no server: perf_analyzer's CSV and command, Triton statistics arithmetic."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from accelkit.serving.errors import LoadtestError
from accelkit.serving.loadgen import (
    parse_perf_csv,
    perf_analyzer_level,
    perf_input_data,
    statistics_delta,
    strip_scheme,
)
from accelkit.serving.server import ServedTensor

#: The example in perf_analyzer's documentation (docs/measurements_metrics.md), times in microseconds.
PERF_CSV = """Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency
1,69.2,225,2148,64,206,11781,19,0,13891,18795,19753,21018
3,84.2,237,1768,21673,209,11742,17,0,35398,43984,47085,51701
"""


def test_parse_perf_csv_converts_microseconds() -> None:
    rows = parse_perf_csv(PERF_CSV)
    assert [r["concurrency"] for r in rows] == [1, 3]
    assert rows[0]["infer_per_sec"] == 69.2
    assert rows[0]["p50"] == pytest.approx(13.891) and rows[0]["p99"] == pytest.approx(21.018)
    assert rows[1]["queue"] == pytest.approx(21.673) and rows[1]["compute_infer"] == pytest.approx(
        11.742
    )
    old = parse_perf_csv(
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute,Client Recv\n1,160.8,68,1291,38,4801,7\n"
    )
    assert (
        old[0]["compute_infer"] == pytest.approx(4.801) and old[0]["p50"] is None
    )  # perf_client's older columns
    with pytest.raises(LoadtestError, match="no Concurrency"):
        parse_perf_csv("a,b\n1,2\n")


def test_statistics_delta_is_average_per_request() -> None:
    before = {
        "success_ns": 0,
        "success_count": 0,
        "executions": 0,
        "inferences": 0,
        **{
            f"{p}_{k}": 0
            for p in ("queue", "compute_input", "compute_infer", "compute_output")
            for k in ("ns", "count")
        },
    }
    after = dict(
        before,
        success_ns=40_000_000,
        success_count=10,
        executions=4,
        queue_ns=10_000_000,
        queue_count=10,
        compute_infer_ns=25_000_000,
        compute_infer_count=10,
    )
    ms, n, execs = statistics_delta(before, after)
    assert n == 10 and execs == 4
    assert ms == {
        "queue": 1.0,
        "compute_input": 0.0,
        "compute_infer": 2.5,
        "compute_output": 0.0,
        "total": 4.0,
    }
    assert statistics_delta(None, after) == (None, None, None)


def test_perf_input_data_and_urls() -> None:
    ins = [ServedTensor("z", "float32", (4,), (4,)), ServedTensor("label", "int64", (1,), ())]
    data = perf_input_data(ins, [{"z": np.ones((2, 4), np.float32), "label": np.array([3, 1])}])
    assert data["data"][0]["z"]["shape"] == [4] and len(data["data"][0]["z"]["content"]) == 8
    assert data["data"][0]["label"] == {"content": [3, 1], "shape": [1]}
    assert strip_scheme("grpc://localhost:8001/") == "localhost:8001"


def test_perf_analyzer_driver_runs_the_binary_and_reads_its_csv(tmp_path: Path) -> None:
    """A stand-in perf_analyzer (the real binary is not installable here) checks the arguments and writes the documented CSV."""
    fake = tmp_path / "perf_analyzer"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, json\n"
        "a = sys.argv[1:]\n"
        "assert a[a.index('-m') + 1] == 'gen' and a[a.index('-i') + 1] == 'grpc' and a[a.index('-b') + 1] == '2', a\n"
        "assert a[a.index('--concurrency-range') + 1] == '3:3', a\n"
        "json.load(open(a[a.index('--input-data') + 1]))\n"
        f"open(a[a.index('-f') + 1], 'w').write({PERF_CSV.splitlines()[0]!r} + '\\n' + {PERF_CSV.splitlines()[2]!r} + '\\n')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    ins = [ServedTensor("z", "float32", (4,), (4,))]
    lv = perf_analyzer_level(
        str(fake),
        "grpc://127.0.0.1:1",
        "grpc",
        "gen",
        ins,
        [{"z": np.zeros((2, 4), np.float32)}],
        3,
        2,
        window_s=0.5,
    )
    assert lv.tool == "perf_analyzer" and lv.images_per_sec == 84.2
    assert (
        lv.latency_ms["p99"] == pytest.approx(51.701)
        and lv.server_ms is not None
        and lv.server_ms["queue"] == pytest.approx(21.673)
    )
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'error: failed to connect' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(LoadtestError, match="exit 3.*failed to connect"):
        perf_analyzer_level(
            str(broken),
            "127.0.0.1:1",
            "grpc",
            "gen",
            ins,
            [{"z": np.zeros((1, 4), np.float32)}],
            1,
            1,
        )
