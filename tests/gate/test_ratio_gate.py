"""The in-run ratio gate (ORT fp32 / torch fp32 images/sec) and this project's CI script around it."""

from __future__ import annotations

import copy
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from accelkit.benchmark.report import Report
from accelkit.errors import InputError
from accelkit.gate.ratio_gate import (
    RatioBaseline,
    baseline_from_reports,
    measure_ratios,
    merge_reports,
    ratio_gate,
)

ROOT = Path(__file__).resolve().parents[2]
ENV: dict[str, Any] = {
    "versions": {"torch": "2.13.0", "onnxruntime": "1.32.0"},
    "cpu": {"model": "AMD EPYC", "available_cores": 2},
    "gpus": [],
}
STEADY = [1.0, 1.01, 0.99, 1.005, 0.995, 1.0]
NOISY = [1.0, 1.3, 0.7, 1.2, 0.8, 1.0]


def row(
    backend: str,
    batch: int,
    ips: float | None,
    *,
    shape: list[float] = STEADY,
    status: str = "ok",
    reason: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    samples = [ips * s for s in shape] if (ips is not None and status == "ok") else []
    return {
        "backend": backend,
        "precision": "fp32",
        "batch_size": batch,
        "device": "cpu",
        "status": status,
        "reason": reason,
        "variant": variant,
        "images_per_sec": sorted(samples)[len(samples) // 2] if samples else None,
        "images_per_sec_samples": samples,
    }


def report(
    torch1: float,
    ort1: float,
    torch8: float,
    ort8: float,
    *,
    ort_shape: list[float] = STEADY,
    cpu: str = "AMD EPYC",
) -> Report:
    env = copy.deepcopy(ENV)
    env["cpu"]["model"] = cpu
    rows = [
        row("torch", 1, torch1),
        row("torch", 8, torch8),
        row("ort", 1, ort1, shape=ort_shape),
        row("ort", 8, ort8, shape=ort_shape),
    ]
    return Report.from_dict(
        {
            "schema_version": 1,
            "created": "2025-05-01T00:00:00+00:00",
            "environment": env,
            "settings": {},
            "artifacts": [],
            "rows": rows,
        }
    )


BASE = RatioBaseline(
    ratios={1: 3.0, 8: 1.0}, tolerance=0.2, machine={"cpu": "AMD EPYC", "available_cores": 2}
)


def test_unchanged_ratio_passes() -> None:
    res = ratio_gate(report(100, 300, 200, 200), BASE)
    assert [v.verdict for v in res.verdicts] == ["pass", "pass"]
    assert res.exit_code == 0 and res.notes == []
    assert res.verdicts[0].ratio == pytest.approx(3.0) and res.verdicts[0].floor == pytest.approx(
        2.4
    )
    assert res.to_text().strip().endswith("PASS")


def test_a_slower_machine_cancels_out() -> None:
    """Both backends at half speed (a busy CI box): the ratio, and the verdict, do not move."""
    res = ratio_gate(report(50, 150, 100, 100), BASE)
    assert res.exit_code == 0 and all(v.verdict == "pass" for v in res.verdicts)


def test_ort_slowdown_beyond_tolerance_fails() -> None:
    res = ratio_gate(report(100, 200, 200, 200), BASE)  # batch 1: 3.0 -> 2.0, -33 %
    v1, v8 = res.verdicts
    assert v1.verdict == "regression" and v1.ci_high is not None and v1.ci_high < 2.4
    assert "-33.3%" in v1.reason
    assert v8.verdict == "pass"
    assert res.exit_code == 1 and res.to_text().strip().endswith("FAIL")


def test_slowdown_inside_tolerance_passes() -> None:
    res = ratio_gate(report(100, 255, 200, 200), BASE)  # -15 % with a 20 % tolerance
    assert res.verdicts[0].verdict == "pass" and res.exit_code == 0


def test_noisy_slowdown_is_within_noise() -> None:
    res = ratio_gate(
        report(100, 210, 200, 200, ort_shape=NOISY), BASE
    )  # point -30 %, repeats ±30 %
    v1, v8 = res.verdicts
    assert v1.verdict == "within-noise" and v1.ci_high is not None and v1.ci_high >= 2.4
    assert v8.verdict == "unreliable"  # ±30 % repeats around an unchanged ratio of 1.0
    assert res.exit_code == 3
    accepted = ratio_gate(report(100, 210, 200, 200, ort_shape=NOISY), BASE, allow_unreliable=True)
    assert accepted.exit_code == 0


def test_improvement_suggests_refreshing() -> None:
    res = ratio_gate(report(100, 400, 200, 200), BASE)
    assert res.verdicts[0].verdict == "improved" and "--update-baseline" in res.verdicts[0].reason
    assert res.exit_code == 0


def test_missing_or_failed_rows_fail() -> None:
    rep = report(100, 300, 200, 200)
    rep.rows = [r for r in rep.rows if not (r.backend == "ort" and r.batch_size == 8)]
    res = ratio_gate(rep, BASE)
    assert (
        res.verdicts[1].verdict == "missing"
        and "no ort fp32 row at batch 8" in res.verdicts[1].reason
    )
    assert res.exit_code == 1
    data = report(100, 300, 200, 200).to_dict()
    data["rows"][3] = row("ort", 8, None, status="failed", reason="NaN output")
    res = ratio_gate(data, BASE)  # a results.json dict works too
    assert (
        res.verdicts[1].verdict == "missing"
        and "NaN output" in res.verdicts[1].reason
        and res.exit_code == 1
    )


def test_variant_rows_are_not_the_plain_backend() -> None:
    rep = report(100, 300, 200, 200)
    data = rep.to_dict()
    for r in data["rows"]:
        if r["backend"] == "ort":
            r["variant"] = "tensorrt"
    res = ratio_gate(data, BASE)
    assert {v.verdict for v in res.verdicts} == {"missing"}


def test_other_machine_is_unreliable_and_extra_batches_are_noted() -> None:
    rep = report(100, 300, 200, 200, cpu="Intel Xeon")
    res = ratio_gate(
        rep,
        RatioBaseline(
            ratios={1: 3.0}, tolerance=0.2, machine={"cpu": "AMD EPYC", "available_cores": 2}
        ),
    )
    assert any(
        "is not the baseline's (AMD EPYC, 2 cores)" in n and "--update-baseline" in n
        for n in res.notes
    )
    assert any("[8]" in n for n in res.notes)
    assert (
        res.verdicts[0].verdict == "unreliable"
        and res.verdict == "unreliable"
        and res.exit_code == 3
    )
    assert (
        res.to_text()
        .strip()
        .splitlines()[-1]
        .startswith("UNRELIABLE (exit 3; allow_unreliable accepts it): 1 of 1")
    )


def test_other_machine_still_reports_a_measured_regression() -> None:
    """Another machine type's baseline: a 33 % ORT loss is a regression (exit 1), an unchanged build unreliable (exit 3)."""
    rep = report(100, 200, 200, 200, cpu="Intel Xeon")
    res = ratio_gate(rep, BASE, allow_unreliable=True)
    v1, v8 = res.verdicts
    assert v1.verdict == "regression" and "is not the baseline's" in v1.reason
    assert v8.verdict == "unreliable" and "may be the environment" in v8.reason
    assert res.exit_code == 1 and res.to_text().strip().endswith("FAIL")
    same = ratio_gate(report(100, 300, 200, 200, cpu="Intel Xeon"), BASE)
    assert {v.verdict for v in same.verdicts} == {"unreliable"} and same.exit_code == 3
    assert same.to_dict()["verdict"] == "unreliable"


def test_wide_interval_or_few_repeats_is_unreliable() -> None:
    wild = [1.0, 1.9, 0.4, 1.6, 0.5, 1.0]
    res = ratio_gate(report(100, 250, 200, 200, ort_shape=wild), BASE)
    assert (
        res.verdicts[0].verdict == "unreliable"
        and "wider than the ±20% threshold" in res.verdicts[0].reason
    )
    assert res.exit_code == 3
    few = Report.from_dict({**report(100, 300, 200, 200).to_dict()})
    for r in few.rows:
        r.images_per_sec_samples = r.images_per_sec_samples[:2]
    res = ratio_gate(few, BASE)
    assert {v.verdict for v in res.verdicts} == {
        "unreliable"
    } and "no noise estimate" in res.verdicts[0].reason
    assert ratio_gate(few, BASE, allow_unreliable=True).exit_code == 0


def test_tolerance_override_and_validation() -> None:
    rep = report(100, 255, 200, 200)  # -15 %
    assert ratio_gate(rep, BASE, tolerance=0.05).verdicts[0].verdict == "regression"
    with pytest.raises(InputError):
        ratio_gate(rep, BASE, tolerance=1.5)


def test_measure_ratios_reports_reasons() -> None:
    rep = report(100, 300, 200, 200)
    est = measure_ratios(rep, batch_sizes=[1, 4])
    assert not isinstance(est[1], str) and est[1].ratio == pytest.approx(3.0)
    assert isinstance(est[4], str) and "batch 4" in est[4]


# ------------------------------------------------------------------- baseline file
def test_baseline_roundtrip_and_bad_files(tmp_path: Path) -> None:
    p = BASE.save(tmp_path / "b" / "cpu_ratio.json")
    back = RatioBaseline.load(p)
    assert back.ratios == BASE.ratios and back.tolerance == BASE.tolerance
    bad = tmp_path / "bad.json"
    for text, needle in (
        ("{nope", "not valid JSON"),
        (
            json.dumps({"schema_version": 7, "tolerance": 0.1, "ratios": {"1": 2}}),
            "schema_version 7",
        ),
        (json.dumps({"schema_version": 1, "tolerance": 2, "ratios": {"1": 2}}), "tolerance"),
        (json.dumps({"schema_version": 1, "tolerance": 0.1, "ratios": {"x": 2}}), "batch size"),
        (json.dumps({"schema_version": 1, "tolerance": 0.1, "ratios": {"1": -2}}), "positive"),
        (json.dumps({"schema_version": 1, "tolerance": 0.1, "ratios": {}}), "non-empty"),
    ):
        bad.write_text(text)
        with pytest.raises(InputError) as ei:
            RatioBaseline.load(bad)
        assert needle in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(InputError) as ei:
        RatioBaseline.load(tmp_path / "missing.json")
    assert "--update-baseline" in str(ei.value)


def test_baseline_from_runs_takes_the_median() -> None:
    runs = [report(100, 290, 200, 200), report(100, 300, 200, 210), report(100, 360, 200, 190)]
    b = baseline_from_reports(runs, tolerance=0.2)
    assert b.ratios[1] == pytest.approx(3.0) and b.ratios[8] == pytest.approx(1.0)
    assert b.measured["runs"] == 3 and len(b.measured["per_run_ratios"]["1"]) == 3
    assert b.measured["relative_spread"]["1"]["max"] == pytest.approx(0.2)
    assert b.machine == {"cpu": "AMD EPYC", "available_cores": 2}
    with pytest.raises(InputError):
        baseline_from_reports([], tolerance=0.2)


def test_merge_reports_concatenates_repeats() -> None:
    a, b = report(100, 300, 200, 200), report(110, 310, 210, 190)
    b.rows[3].status, b.rows[3].reason = "failed", "boom"
    m = merge_reports([a, b])
    torch1 = next(r for r in m.rows if r.backend == "torch" and r.batch_size == 1)
    assert len(torch1.images_per_sec_samples) == 12
    assert torch1.images_per_sec == pytest.approx(statistics.median(torch1.images_per_sec_samples))
    assert torch1.images_per_sec_spread is not None and torch1.images_per_sec_spread[
        "max"
    ] == pytest.approx(110 * 1.01)
    ort8 = next(r for r in m.rows if r.backend == "ort" and r.batch_size == 8)
    assert ort8.status == "failed"  # a failure is never averaged away
    assert m.settings["merged_reports"] == 2 and m.settings["batch_sizes"] == [1, 8]
    assert len(a.rows[0].images_per_sec_samples) == 6  # inputs untouched


def test_committed_baseline_is_valid() -> None:
    b = RatioBaseline.load(ROOT / "benchmarks" / "baselines" / "cpu_ratio.json")
    assert set(b.ratios) == {1, 8} and 0 < b.tolerance < 1
    assert b.measured.get("runs", 0) >= 3


# --------------------------------------------------------------------- CI script
def _script() -> ModuleType:
    path = ROOT / "benchmarks" / "ci_perf_gate.py"
    spec = importlib.util.spec_from_file_location("ci_perf_gate_under_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_script_bad_baseline_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = _script()
    assert mod.main(["--baseline", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read the ratio baseline") and "\n" not in err


def test_script_slowed_runner_takes_longer() -> None:
    from tests.benchmark.fakes import SleepRunner

    mod = _script()
    slow_cls = mod._slowed(SleepRunner, 1.0)
    plain, slow = SleepRunner(sleeps_s=(0.02,)), slow_cls(sleeps_s=(0.02,))
    times = []
    for r in (plain, slow):
        with r:
            prepared = r.prepare({"z": __import__("numpy").zeros((1, 4), dtype="float32")})
            t0 = time.perf_counter()
            r.run(prepared)
            times.append(time.perf_counter() - t0)
    assert slow.name == "fake"  # keeps the backend name, so rows keep their keys
    assert times[1] >= 2 * 0.02 and times[1] > 1.5 * times[0]


# ------------------------------------------------- the CI script's baseline policy
def _fake_measurements(
    monkeypatch: pytest.MonkeyPatch, mod: ModuleType, reports: list[Report], tmp_path: Path
) -> list[int]:
    """Make the script measure nothing: each run returns the next of ``reports``; baselines live in ``tmp_path``."""
    calls: list[int] = []

    def measure(*_a: Any, **_k: Any) -> Report:
        calls.append(1)
        return reports[min(len(calls), len(reports)) - 1]

    monkeypatch.setattr(mod, "_measure", measure)
    monkeypatch.setattr(mod, "load_dcgan", lambda: (None, "fake generator"))
    monkeypatch.setattr(mod, "export_fp32", lambda art, folder: None)
    monkeypatch.setattr(mod, "collect_environment", lambda: copy.deepcopy(ENV))
    monkeypatch.setattr(mod, "BASELINES", tmp_path)
    return calls


def _machine_baseline(mod: ModuleType, tmp_path: Path) -> Path:
    """BASE, saved as this (fake) machine type's committed baseline."""
    b = copy.deepcopy(BASE)
    b.machine["isa"] = mod._machine(ENV)[2]
    return b.save(tmp_path / "cpu_ratio.amd-epyc-test-2c.json")


def test_script_never_borrows_another_machine_types_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = _script()
    calls = _fake_measurements(monkeypatch, mod, [report(100, 300, 200, 200)], tmp_path)
    other = copy.deepcopy(BASE)
    other.machine = {"cpu": "Intel Xeon", "available_cores": 2, "isa": "amx"}
    other.save(tmp_path / "cpu_ratio.json")  # the default file, of another machine type
    assert mod.baseline_for(ENV) is None
    assert mod.main([]) == 3 and calls == []  # refused before measuring anything
    out = capsys.readouterr().out
    assert out.startswith(
        "UNRELIABLE (exit 3): no committed ratio baseline for this machine type (AMD EPYC"
    )
    assert mod.main(["--allow-unreliable"]) == 0
    # an explicit --baseline of another machine type: an unchanged build cannot be judged (exit 3)
    assert mod.main(["--baseline", str(tmp_path / "cpu_ratio.json")]) == 3
    assert "is not the baseline's (Intel Xeon, 2 cores, amx)" in capsys.readouterr().out


def test_script_records_a_baseline_where_none_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = _script()
    runs = [report(100, 290, 200, 200), report(100, 300, 200, 210), report(100, 310, 200, 190)]
    calls = _fake_measurements(monkeypatch, mod, runs, tmp_path)
    assert mod.main(["--record-if-missing"]) == 0 and len(calls) == mod.RECORD_RUNS
    out = capsys.readouterr().out
    assert (
        "no committed ratio baseline for this machine type" in out
        and "this run did not gate" in out
    )
    (written,) = tmp_path.glob("cpu_ratio.*.json")
    b = RatioBaseline.load(written)
    assert b.ratios[1] == pytest.approx(3.0) and b.tolerance == mod.DEFAULT_TOLERANCE
    assert mod.baseline_for(ENV) == written  # the next run gates against it
    calls.clear()
    assert mod.main(["--record-if-missing"]) == 0 and len(calls) == 1
    assert capsys.readouterr().out.splitlines()[-2] == "PASS"


@pytest.mark.parametrize(
    ("sequence", "code", "checks"),
    [
        (["pass"], 0, 1),
        (["regression"], 1, 1),  # a regression is never re-measured
        (["unreliable", "pass"], 0, 2),
        (["unreliable", "unreliable", "regression"], 1, 3),
        (["unreliable", "unreliable", "unreliable", "pass"], 3, 3),  # bounded: 1 + 2 retries
    ],
)
def test_script_remeasures_only_what_it_cannot_tell_and_stops(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sequence: list[str],
    code: int,
    checks: int,
) -> None:
    mod = _script()
    wild = [1.0, 1.9, 0.4, 1.6, 0.5, 1.0]
    many = STEADY * 5  # a long measurement outweighs the short wild ones it is pooled with
    kinds = {
        "pass": report(100, 300, 200, 200, ort_shape=many),
        "regression": report(100, 150, 200, 100, ort_shape=many),
        "unreliable": report(100, 250, 200, 200, ort_shape=wild),
    }
    calls = _fake_measurements(monkeypatch, mod, [kinds[k] for k in sequence], tmp_path)
    _machine_baseline(mod, tmp_path)
    assert mod.main([]) == code and len(calls) == checks
    out = capsys.readouterr().out
    assert out.count("more and deciding on all") == checks - 1
    calls.clear()
    assert (
        mod.main(["--retries", "0"]) == {"pass": 0, "regression": 1, "unreliable": 3}[sequence[0]]
    )
