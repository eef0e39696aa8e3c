"""Numbers that hold: unstable rows (spread, oversubscription) are detected and never shown as a speed-up."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelkit import host
from accelkit.benchmark import stability
from accelkit.benchmark.report import BenchRow, Report, merge_stability
from accelkit.benchmark.stability import CV_THRESHOLD, ContentionProbe, assess, runner_threads
from tests.benchmark.fakes import ENV, fake_latency, runner_info


# ------------------------------------------------------------------------- assess
def test_steady_repeats_on_a_free_machine_are_stable() -> None:
    v = assess(
        [100.0, 102.0, 98.0, 101.0, 99.0],
        threads=1,
        contention={"busy_cores_others": 0.1, "cpus": 2},
    )
    assert v["unstable"] is False and v["reasons"] == [] and v["oversubscribed"] is False
    assert v["cv"] < 0.02 and v["cv_threshold"] == CV_THRESHOLD


def test_spread_above_threshold_is_unstable() -> None:
    # the "55.21 ± 81.11 img/s": repeats that disagree by a factor of ten
    v = assess([3.4, 55.2, 80.1, 9.0, 120.0])
    assert v["unstable"] is True and "coefficient of variation" in v["reasons"][0]
    assert v["oversubscribed"] is None  # contention not measured: not judged


@pytest.mark.parametrize(
    ("threads", "busy", "cpus", "over"),
    [
        (2, 1.0, 2, True),
        (2, 0.4, 2, False),
        (1, 0.9, 2, False),
        (1, 1.8, 2, True),
        (4, 0.0, 2, True),
    ],
)
def test_oversubscription(threads: int, busy: float, cpus: int, over: bool) -> None:
    v = assess(
        [100.0, 100.0, 100.0], threads=threads, contention={"busy_cores_others": busy, "cpus": cpus}
    )
    assert v["oversubscribed"] is over and v["unstable"] is over
    if over:
        assert "oversubscribed" in v["reasons"][0]


def test_runner_threads_from_each_backend_description() -> None:
    assert runner_threads({"threads": 2}) == 2  # torch, openvino
    assert runner_threads({"intra_op_num_threads": 1}) == 1  # ort
    assert runner_threads({"provider": "cuda"}) is None


# ----------------------------------------------------------------- contention probe
def test_probe_arithmetic_subtracts_own_cpu_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Busy jiffies of all allowed CPUs minus this process's own CPU seconds = other processes' cores."""
    jiffies = iter(
        [(0, 1000), (1500, 3000)]
    )  # 1500 of 2000 jiffies busy on 2 CPUs = 1.5 cores busy
    own = iter([10.0, 10.5])  # this process used 0.5 CPU-s
    clock = iter([100.0, 101.0])  # over 1 s -> 0.5 cores were ours
    monkeypatch.setattr(stability, "cpu_jiffies", lambda cpus: next(jiffies))
    monkeypatch.setattr(stability, "own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(stability.time, "monotonic", lambda: next(clock))
    probe = ContentionProbe()
    probe.cpus = [0, 1]
    got = probe.start().stop()
    assert got is not None and got.busy_cores_others == pytest.approx(1.0) and got.cpus == 2


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc/stat")
def test_probe_sees_a_competing_process() -> None:
    spin = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<3: pass"]
    )
    try:
        time.sleep(0.5)  # let it start spinning
        probe = ContentionProbe().start()
        time.sleep(1.0)
        got = probe.stop()
    finally:
        spin.kill()
        spin.wait()
    assert got is not None and got.busy_cores_others >= 0.6, got


# ------------------------------------------------------------------ default threads
@pytest.mark.parametrize(("busy", "want"), [(0.0, 2), (0.2, 2), (0.4, 1), (1.0, 1), (2.0, 1)])
def test_default_threads_leaves_busy_cores_alone(
    monkeypatch: pytest.MonkeyPatch, busy: float, want: int
) -> None:
    monkeypatch.setattr(host, "available_physical_cores", lambda: 2)
    assert host.default_threads(busy) == want


def test_default_threads_without_proc_stat_is_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "available_physical_cores", lambda: 4)
    monkeypatch.setattr(host, "busy_cores", lambda interval_s=0.3: None)
    assert host.default_threads() == 4


def test_isa_flags_and_summary() -> None:
    flags = host.isa_flags()
    assert set(flags) == set(host.ISA_FLAGS) and all(isinstance(v, bool) for v in flags.values())
    assert host.isa_summary({"avx2": True, "avx512f": True, "avx512_vnni": True}) == "avx512_vnni"
    assert (
        host.isa_summary({"avx2": True, "amx_tile": True, "amx_bf16": True, "avx512_bf16": True})
        == "amx"
    )
    assert host.isa_summary({}) == "baseline"
    assert host.has_native_bf16({"amx_bf16": True}) and not host.has_native_bf16({"avx512f": True})


# -------------------------------------------------------------- report formats
def _report(torch_samples: list[float], ort_samples: list[float], ort_busy: float = 0.0) -> Report:
    rep = Report(environment=dict(ENV), created="2025-01-01T00:00:00+00:00")
    calm = {"busy_cores_others": 0.0, "cpus": 2, "wall_seconds": 2.5}
    t = fake_latency(1, torch_samples)
    t.contention = calm
    o = fake_latency(1, ort_samples)
    o.contention = {**calm, "busy_cores_others": ort_busy}
    rep.add_result(runner_info("torch", "fp32") | {"threads": 1}, t)
    rep.add_result(runner_info("ort", "fp32") | {"threads": 1}, o)
    return rep


def test_unstable_row_is_marked_in_every_format_and_gets_no_speedup(tmp_path: Path) -> None:
    rep = _report([100.0, 101.0, 99.0], [55.2, 3.4, 160.0])  # the ort row's repeats disagree
    files = rep.write(tmp_path, plot=False)
    rows = {r["backend"]: r for r in json.loads(files["json"].read_text())["rows"]}
    assert (
        rows["ort"]["unstable"] is True
        and "coefficient of variation" in rows["ort"]["unstable_reason"]
    )
    assert (
        rows["ort"]["speedup_vs_torch_fp32"] is None
        and rows["ort"]["stability"]["cv"] > CV_THRESHOLD
    )
    assert rows["torch"]["unstable"] is False and rows["torch"][
        "speedup_vs_torch_fp32"
    ] == pytest.approx(1.0)
    md = files["md"].read_text()
    ort_line = next(line for line in md.splitlines() if line.startswith("| ort |"))
    assert "unstable" in ort_line and "×" not in ort_line
    with open(files["csv"]) as f:
        by = {r["backend"]: r for r in csv.DictReader(f)}
    assert (
        by["ort"]["unstable"] == "true"
        and by["ort"]["speedup_vs_torch_fp32"] == ""
        and by["ort"]["unstable_reason"]
    )
    assert by["torch"]["unstable"] == "false"


def test_oversubscribed_row_is_unstable() -> None:
    rep = _report([100.0, 100.0, 100.0], [300.0, 300.0, 300.0], ort_busy=1.9)
    ort = next(r for r in rep.rows if r.backend == "ort")
    rep.compute_speedups()
    assert (
        ort.unstable
        and "oversubscribed" in (ort.unstable_reason or "")
        and ort.speedup_vs_torch_fp32 is None
    )


def test_unstable_baseline_withholds_every_speedup_at_that_batch() -> None:
    rep = _report(
        [3.4, 374.0, 55.0], [300.0, 301.0, 299.0]
    )  # torch collapsed: ort's "324x" would be a lie
    rep.compute_speedups()
    ort = next(r for r in rep.rows if r.backend == "ort")
    assert not ort.unstable and ort.speedup_vs_torch_fp32 is None
    md = rep.to_markdown()
    assert "| withheld |" in md and "the torch fp32 baseline is unstable" in md


def test_merged_rounds_are_judged_on_all_samples_and_the_worst_contention() -> None:
    row = BenchRow(
        backend="ort",
        precision="fp32",
        batch_size=1,
        device="cpu",
        images_per_sec_samples=[100.0, 30.0, 100.0],
        images_per_sec=100.0,
        runner={"threads": 1},
    )
    merge_stability(
        row, [{"busy_cores_others": 0.1, "cpus": 2}, None, {"busy_cores_others": 0.2, "cpus": 2}]
    )
    assert (
        row.unstable
        and row.stability is not None
        and row.stability["busy_cores_others"] == pytest.approx(0.2)
    )


def test_environment_records_isa_affinity_and_threads() -> None:
    from accelkit.benchmark.environment import collect_environment

    env = collect_environment()
    assert env["cpu"]["isa"]["summary"] in (
        "amx",
        "avx512_bf16",
        "avx512_vnni",
        "avx512",
        "avx2",
        "baseline",
    )
    assert set(env["cpu"]["isa"]["flags"]) == set(host.ISA_FLAGS)
    assert env["cpu"]["affinity"] and all(isinstance(c, int) for c in env["cpu"]["affinity"])
