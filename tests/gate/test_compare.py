"""accelkit.gate.compare on synthetic results: verdicts, exit codes, outputs, bad input; the CI workflow file."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from accelkit.benchmark.report import Report
from accelkit.errors import AccelkitError, InputError
from accelkit.gate.compare import compare_files, compare_reports, parse_fraction
from accelkit.gate.stats import MIN_SAMPLES

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "perf-regression.yml"

ENV: dict[str, Any] = {
    "versions": {
        "python": "3.11.7",
        "torch": "2.13.0",
        "onnxruntime-gpu": "1.22.0",
        "tensorrt": "10.9.0",
        "accelkit": "0.1.0",
    },
    "cpu": {"model": "Test CPU", "available_cores": 16},
    "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}],
}
SETTINGS = {"device": "cuda", "warmup": 3, "repeats": 5, "min_time_s": 0.5}
#: Which generator the synthetic reports benched (``bench`` records its sha256 and spec).
GEN_SHA = "d" * 64
SPEC: dict[str, Any] = {
    "inputs": [{"name": "z", "kind": "latent", "shape": [64], "dtype": "float32"}],
    "output_shape": [3, 64, 64],
    "output_range": [-1.0, 1.0],
}

# Five repeats of a steady machine (about ±1 %) and of a noisy one (about ±15 %).
STEADY = [1.00, 1.01, 0.99, 1.005, 0.995]
NOISY = [1.00, 1.18, 0.82, 1.10, 0.87]


def row(
    backend: str,
    batch: int,
    ips: float | None,
    *,
    shape: list[float] = STEADY,
    precision: str = "fp16",
    device: str = "cuda:0",
    status: str = "ok",
    reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A results.json row whose samples are ``ips`` times ``shape``."""
    samples = [ips * s for s in shape] if (ips is not None and status == "ok") else []
    d: dict[str, Any] = {
        "backend": backend,
        "precision": precision,
        "batch_size": batch,
        "device": device,
        "status": status,
        "reason": reason,
        "images_per_sec": sorted(samples)[len(samples) // 2] if samples else None,
        "images_per_sec_samples": samples,
    }
    d.update(extra)
    return d


def results(
    rows: list[dict[str, Any]],
    *,
    sha: str = GEN_SHA,
    spec: dict[str, Any] | None = None,
    **env_changes: Any,
) -> dict[str, Any]:
    """A results.json of ``rows``, benched from the generator ``sha`` (``spec``), in ``ENV`` changed by ``env_changes``."""
    env = copy.deepcopy(ENV)
    for k, v in env_changes.items():
        if k in env["versions"]:
            env["versions"][k] = v
        else:
            env[k] = v
    return {
        "schema_version": 1,
        "created": "2025-05-01T12:00:00+00:00",
        "environment": env,
        "settings": dict(SETTINGS, generator="gen.pt", generator_sha256=sha[:16]),
        "artifacts": [
            {"id": "torch:gen.pt:fp32", "source_sha256": sha, "spec": copy.deepcopy(spec or SPEC)}
        ],
        "rows": rows,
    }


def base_rows() -> list[dict[str, Any]]:
    return [
        row("trt", 1, 2000.0),
        row("trt", 8, 9000.0),
        row("torch", 1, 800.0, precision="fp32"),
        row("torch", 8, 3000.0, precision="fp32"),
    ]


def verdicts(comp: Any) -> dict[str, str]:
    return {f"{r.key.backend} {r.key.precision} {r.key.batch_size}": r.verdict for r in comp.rows}


# ---------------------------------------------------------------------- verdicts
def test_unchanged_build_passes() -> None:
    cur = [
        row("trt", 1, 2010.0, shape=STEADY[::-1]),
        row("trt", 8, 8950.0),
        row("torch", 1, 805.0, precision="fp32"),
        row("torch", 8, 2990.0, precision="fp32"),
    ]
    comp = compare_reports(results(base_rows()), results(cur), max_slowdown=0.05)
    assert comp.exit_code == 0 and comp.passed
    assert set(verdicts(comp).values()) == {"pass"}
    assert comp.env_mismatches == [] and comp.notes == []
    r = comp.rows[0]
    assert r.baseline_ips == pytest.approx(2000.0) and r.current_ips == pytest.approx(2010.0)
    assert r.ci_low is not None and r.ci_high is not None and r.ratio is not None
    assert r.ci_low <= r.ratio <= r.ci_high


def test_clear_regression_fails_with_numbers() -> None:
    cur = base_rows()
    cur[1] = row("trt", 8, 7200.0)  # 20 % slower, steady repeats
    comp = compare_reports(results(base_rows()), results(cur), max_slowdown=0.05)
    assert comp.exit_code == 1
    bad = comp.rows[1]
    assert bad.verdict == "regression" and bad.speed_verdict == "regression"
    assert bad.ratio == pytest.approx(0.8, abs=1e-9)
    assert bad.ci_high is not None and bad.ci_high < 0.95
    assert "-20.0%" in bad.reason and "5%" in bad.reason
    assert [r.verdict for r in comp.failing_rows] == ["regression"]
    assert verdicts(comp)["trt fp16 1"] == "pass"


def test_slowdown_inside_the_threshold_passes() -> None:
    cur = base_rows()
    cur[0] = row("trt", 1, 1940.0)  # 3 % slower, steady: real but allowed
    comp = compare_reports(results(base_rows()), results(cur), max_slowdown=0.05)
    assert comp.rows[0].verdict == "pass" and comp.exit_code == 0
    # the same change with a 1 % threshold is a regression (the ±1 % repeats cannot explain 3 %)
    assert compare_reports(results(base_rows()), results(cur), max_slowdown=0.01).exit_code == 1


def test_noisy_repeats_are_unreliable_not_a_pass_nor_a_failure() -> None:
    base = [row("torch", 1, 800.0, shape=NOISY, precision="fp32")]
    cur = [
        row("torch", 1, 720.0, shape=NOISY[::-1], precision="fp32")
    ]  # -10 % point estimate, ±15 % repeats
    comp = compare_reports(results(base), results(cur), max_slowdown=0.05)
    r = comp.rows[0]
    assert r.ratio == pytest.approx(0.9)
    assert r.verdict == r.speed_verdict == "unreliable" and not r.run_to_run
    assert r.ci_low is not None and r.ci_high is not None and r.ci_low < 0.95 <= r.ci_high
    assert "wider than the ±5% threshold" in r.reason
    assert comp.exit_code == 3 and comp.verdict == "unreliable"  # the gate cannot tell
    assert comp.summary_line().startswith("UNRELIABLE (exit 3; --allow-unreliable accepts it)")
    assert "more --repeats" in comp.summary_line()
    allowed = compare_reports(results(base), results(cur), allow_unreliable=True)
    assert allowed.exit_code == 0 and allowed.summary_line().startswith(
        "UNRELIABLE (exit 0: --allow-unreliable): 1 unreliable"
    )


def test_rule_needs_the_whole_interval_beyond_the_threshold() -> None:
    """7 % slower with an interval inside (0.9, 1): below 1, but it reaches the 5 % threshold."""
    base = [row("trt", 1, 1000.0, shape=[1.0, 1.03, 0.97, 1.02, 0.98])]
    cur = [row("trt", 1, 930.0, shape=[1.0, 1.03, 0.97, 1.02, 0.98])]
    comp = compare_reports(results(base), results(cur), max_slowdown=0.05)
    r = comp.rows[0]
    assert r.ci_high is not None and r.ci_low is not None
    assert (
        r.ci_high < 1.0 and r.ci_high > 0.95
    )  # rule (a) would flag it, accelkit's rule (b) does not
    assert r.verdict == "within-noise" and comp.exit_code == 0


def test_improvement_is_reported_not_failed() -> None:
    cur = base_rows()
    cur[2] = row("torch", 1, 1040.0, precision="fp32")  # +30 %
    comp = compare_reports(results(base_rows()), results(cur), max_slowdown=0.05)
    assert comp.rows[2].verdict == "improved" and comp.exit_code == 0


def test_few_repeats_never_regress_but_cannot_tell() -> None:
    base = [row("trt", 1, 1000.0, shape=[1.0, 1.01])]
    cur = [row("trt", 1, 700.0, shape=[1.0, 1.01])]
    assert MIN_SAMPLES > 2
    comp = compare_reports(results(base), results(cur))
    r = comp.rows[0]
    assert r.verdict == "unreliable" and "repeats" in r.unreliable_reasons[0]
    assert comp.exit_code == 3 and comp.summary_line().startswith("UNRELIABLE")
    assert compare_reports(results(base), results(cur), allow_unreliable=True).exit_code == 0


# ----------------------------------------------------------------- missing rows
def test_missing_rows_cannot_be_vouched_for_new_rows_only_under_strict() -> None:
    cur = base_rows()[1:] + [row("ort", 8, 5000.0, variant="tensorrt")]
    comp = compare_reports(results(base_rows()), results(cur))
    v = verdicts(comp)
    assert v["trt fp16 1"] == "missing-in-current"
    assert v["ort:tensorrt fp16 8"] == "new-in-current"
    assert comp.exit_code == 3 and [r.verdict for r in comp.undecided_rows] == [
        "missing-in-current"
    ]
    assert compare_reports(results(base_rows()), results(cur), allow_unreliable=True).exit_code == 0
    only_new = compare_reports(results(base_rows()), results(base_rows() + cur[-1:]))
    assert only_new.exit_code == 0  # a row the baseline never measured is reported, not judged
    strict = compare_reports(results(base_rows()), results(base_rows() + cur[-1:]), strict=True)
    assert strict.exit_code == 3
    assert [r.verdict for r in strict.undecided_rows] == ["new-in-current"]


def test_row_skipped_in_current_is_missing() -> None:
    cur = base_rows()
    cur[0] = row("trt", 1, None, status="skipped", reason="TensorRT is not installed")
    comp = compare_reports(results(base_rows()), results(cur))
    assert (
        comp.rows[0].verdict == "missing-in-current"
        and "TensorRT is not installed" in comp.rows[0].reason
    )
    assert comp.exit_code == 3


def test_rows_skipped_on_both_sides_are_notes() -> None:
    skipped = row("trt", 1, None, status="skipped", reason="no GPU")
    comp = compare_reports(results([skipped]), results([skipped]))
    assert comp.rows == [] and len(comp.notes) == 1
    assert comp.exit_code == 3 and "nothing compared" in comp.summary_line()
    # a gate never passes on nothing, not even when unreliable comparisons are accepted
    assert (
        compare_reports(results([skipped]), results([skipped]), allow_unreliable=True).exit_code
        == 3
    )


def test_failed_row_fails_the_comparison() -> None:
    cur = base_rows()
    cur[1] = row("trt", 8, None, status="failed", reason="trt fp16 produced 12 NaN")
    comp = compare_reports(results(base_rows()), results(cur))
    assert comp.rows[1].verdict == "failed" and "NaN" in comp.rows[1].reason
    assert comp.exit_code == 1
    # a failed row that the baseline never had fails too
    extra = compare_reports(
        results(base_rows()),
        results(base_rows() + [row("ort", 1, None, status="failed", reason="boom")]),
    )
    assert verdicts(extra)["ort fp16 1"] == "failed" and extra.exit_code == 1


def test_baseline_failed_now_ok_is_new() -> None:
    base = base_rows()
    base[0] = row("trt", 1, None, status="failed", reason="old bug")
    comp = compare_reports(results(base), results(base_rows()))
    assert comp.rows[0].verdict == "new-in-current" and comp.exit_code == 0


# ---------------------------------------------------------------- environment
def test_mismatched_devices_compare_nothing() -> None:
    cur_rows = [dict(r, device="cpu") for r in base_rows()]
    cur = results(cur_rows, gpus=[])
    comp = compare_reports(results(base_rows()), cur)
    assert {r.verdict for r in comp.rows} == {"missing-in-current", "new-in-current"}
    missing = next(r for r in comp.rows if r.verdict == "missing-in-current")
    assert "device mismatch" in missing.reason and "cpu" in missing.reason
    assert any(
        m.field == "gpu" and m.baseline == "NVIDIA H100 80GB HBM3" and m.current is None
        for m in comp.env_mismatches
    )
    assert (
        comp.exit_code == 3 and "measured none of the baseline's 4 rows" in comp.summary_line()
    )  # nothing compared
    assert compare_reports(results(base_rows()), cur, allow_unreliable=True).exit_code == 3


def test_version_mismatch_makes_an_unchanged_build_unreliable() -> None:
    cur = results(base_rows(), tensorrt="10.11.0", torch="2.14.0")
    comp = compare_reports(results(base_rows()), cur)
    fields = {m.field: (m.baseline, m.current) for m in comp.env_mismatches}
    assert fields["tensorrt"] == ("10.9.0", "10.11.0") and fields["torch"] == ("2.13.0", "2.14.0")
    assert comp.exit_code == 3 and "environment difference" in comp.summary_line()
    assert comp.verdict == "unreliable" and {r.verdict for r in comp.rows} == {"unreliable"}
    assert "tensorrt: 10.9.0 → 10.11.0" in comp.summary_line() and "--vs" in comp.summary_line()
    md = comp.to_markdown()
    assert "Environment differences" in md and "10.11.0" in md
    # --strict: even a harmless difference (the number of repeats) leaves the gate unable to tell
    fewer = results(base_rows())
    fewer["settings"]["repeats"] = 3
    assert compare_reports(results(base_rows()), fewer).exit_code == 0
    strict = compare_reports(results(base_rows()), fewer, strict=True)
    assert strict.exit_code == 3 and "--strict is set" in strict.summary_line()
    junit = ET.fromstring(strict.to_junit())
    env_case = next(c for c in junit.iter("testcase") if c.get("name") == "environment")
    assert env_case.find("error") is not None and junit.get("failures") == "0"


def test_settings_mismatch_reported() -> None:
    cur = results(base_rows())
    cur["settings"]["repeats"] = 3
    comp = compare_reports(results(base_rows()), cur)
    assert any(m.field == "settings.repeats" for m in comp.env_mismatches)
    assert comp.verdict == "pass"  # fewer repeats widen the interval, they do not bias the median
    cur["settings"]["min_time_s"] = 0.05
    assert compare_reports(results(base_rows()), cur).verdict == "unreliable"


# ------------------------------------------------------------------------ FID
def test_fid_drift_regression_and_noise_floor() -> None:
    base = [row("trt", 1, 2000.0, fid_drift=1.0)]
    worse = [row("trt", 1, 2000.0, fid_drift=2.0)]
    comp = compare_reports(results(base), results(worse), max_fid_drift=0.5)
    r = comp.rows[0]
    assert r.verdict == "regression" and r.fid_regressed and r.speed_verdict == "pass"
    assert "FID drift" in r.reason and comp.exit_code == 1
    assert r.fid_baseline == 1.0 and r.fid_current == 2.0
    # inside the limit
    ok = compare_reports(
        results(base), results([row("trt", 1, 2000.0, fid_drift=1.3)]), max_fid_drift=0.5
    )
    assert ok.rows[0].verdict == "pass" and ok.exit_code == 0
    # beyond the limit but inside the current run's noise floor
    floor = [row("trt", 1, 2000.0, fid_drift=2.0, noise_floor_fid=3.0)]
    assert compare_reports(results(base), results(floor), max_fid_drift=0.5).exit_code == 0
    # another writer's layout: the numbers under a "quality" object
    other = [row("trt", 1, 2000.0, quality={"fid_drift": 2.0, "fid_noise_floor": 1.0})]
    assert compare_reports(results(base), results(other), max_fid_drift=0.5).rows[0].fid_regressed
    # not compared without --max-fid-drift
    assert compare_reports(results(base), results(worse)).exit_code == 0


def test_fid_on_one_side_only_fails_when_gated() -> None:
    base = [row("trt", 1, 2000.0, fid_drift=1.0)]
    cur = [row("trt", 1, 2000.0)]
    comp = compare_reports(results(base), results(cur), max_fid_drift=0.5)
    r = comp.rows[0]
    assert r.verdict == "missing-metric" and "current absent" in r.reason and comp.exit_code == 1
    assert comp.summary_line() == "FAIL: 1 missing-metric — 1 failing row"
    assert (
        compare_reports(results(base), results(cur)).exit_code == 0
    )  # not gated without --max-fid-drift


# ------------------------------------------------------------------ bad input
def _one_line(exc: AccelkitError) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, msg
    return msg


def test_malformed_json_file_is_one_line_input_error(tmp_path: Path) -> None:
    good = tmp_path / "base.json"
    good.write_text(json.dumps(results(base_rows())))
    bad = tmp_path / "current.json"
    bad.write_text('{"schema_version": 1, "rows": [')
    with pytest.raises(InputError) as ei:
        compare_files(good, bad)
    msg = _one_line(ei.value)
    assert "current.json" in msg and "JSON" in msg
    assert ei.value.exit_code == 2


def test_missing_file_and_truncated_content(tmp_path: Path) -> None:
    good = tmp_path / "base.json"
    good.write_text(json.dumps(results(base_rows())))
    with pytest.raises(InputError) as ei:
        compare_files(good, tmp_path / "nope.json")
    assert "nope.json" in _one_line(ei.value)
    truncated = results(base_rows())
    del truncated["rows"]
    (tmp_path / "t.json").write_text(json.dumps(truncated))
    with pytest.raises(InputError) as ei:
        compare_files(good, tmp_path / "t.json")
    assert "rows" in _one_line(ei.value)


def test_unknown_schema_version() -> None:
    future = results(base_rows())
    future["schema_version"] = 99
    with pytest.raises(InputError) as ei:
        compare_reports(results(base_rows()), future)
    assert "schema_version 99" in _one_line(ei.value)


def test_bad_rows_and_duplicates() -> None:
    dup = results(base_rows() + [row("trt", 1, 1.0)])
    with pytest.raises(InputError) as ei:
        compare_reports(dup, results(base_rows()))
    assert "two rows" in _one_line(ei.value)
    zero = results([row("trt", 1, 2000.0)])
    zero["rows"][0]["images_per_sec_samples"] = [2000.0, 0.0, 1990.0]
    with pytest.raises(InputError) as ei:
        compare_reports(results([row("trt", 1, 2000.0)]), zero)
    assert "non-positive" in _one_line(ei.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_slowdown": 1.5},
        {"max_slowdown": -0.1},
        {"max_fid_drift": -1.0},
        {"confidence": 1.0},
        {"n_boot": 10},
    ],
)
def test_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError) as ei:
        compare_reports(results(base_rows()), results(base_rows()), **kwargs)
    _one_line(ei.value)


@pytest.mark.parametrize(
    ("text", "want"),
    [("5%", 0.05), ("0.05", 0.05), (" 12.5 % ", 0.125), ("0%", 0.0), (0.1, 0.1), (".2", 0.2)],
)
def test_parse_fraction(text: Any, want: float) -> None:
    assert parse_fraction(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["5", "abc", "-1%", "100%", "", "5%%", "1e9"])
def test_parse_fraction_rejects(text: str) -> None:
    with pytest.raises(InputError) as ei:
        parse_fraction(text)
    assert "--max-slowdown" in _one_line(ei.value)


def test_accepts_report_objects() -> None:
    base = Report.from_dict(results(base_rows()))
    comp = compare_reports(base, results(base_rows()))
    assert comp.exit_code == 0 and len(comp.rows) == 4


# --------------------------------------------------------------------- outputs
def _mixed() -> Any:
    cur = base_rows()
    cur[1] = row("trt", 8, 7200.0)
    cur = cur[:3]  # torch fp32 8 missing
    return compare_reports(
        results(base_rows()),
        results(cur),
        baseline_name="baseline/results.json",
        current_name="current/results.json",
    )


def test_junit_has_one_case_per_row_and_failures() -> None:
    comp = _mixed()
    root = ET.fromstring(comp.to_junit())
    cases = list(root.iter("testcase"))
    assert len(cases) == len(comp.rows) + 2  # + coverage, environment
    assert root.get("failures") == "1" and root.get("errors") == "1" and root.get("skipped") == "0"
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("classname") for c in failed] == ["accelkit.perf.trt.fp16"] and failed[0].get(
        "name"
    ) == "batch 8 on cuda:0"
    assert "regression" in (failed[0].find("failure").get("message") or "")  # type: ignore[union-attr]
    errors = [c for c in cases if c.find("error") is not None]  # missing: the gate cannot tell
    assert [c.get("name") for c in errors] == ["batch 8 on cuda:0"] and errors[0].get(
        "classname"
    ) == "accelkit.perf.torch.fp32"
    accepted = compare_reports(
        results(base_rows()), results(base_rows()[:3]), allow_unreliable=True
    )
    aroot = ET.fromstring(accepted.to_junit())
    assert (aroot.get("failures"), aroot.get("errors"), aroot.get("skipped")) == ("0", "0", "1")


def test_markdown_has_the_table_and_details() -> None:
    md = _mixed().to_markdown()
    assert md.startswith("## accelkit compare: ❌")
    assert "| row | batch | device | baseline img/s | current img/s | change |" in md
    assert re.search(
        r"\| trt fp16 \| 8 \| cuda:0 \| 9,000 \| 7,200 \| -20\.0% \| .* \| ❌ regression \|", md
    ), md
    assert "missing-in-current" in md and "### Details" in md
    assert "`baseline/results.json`" in md
    ok = compare_reports(results(base_rows()), results(base_rows())).to_markdown()
    assert ok.startswith("## accelkit compare: ✅")


def test_text_table() -> None:
    text = _mixed().to_text()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("row"))
    assert "baseline img/s" in header and "verdict" in header
    assert any(
        line.startswith("trt fp16") and line.rstrip().endswith("regression") for line in lines
    )
    assert lines[-1].startswith("FAIL: ")
    assert "\x1b[" not in text


def test_to_dict_is_json() -> None:
    d = _mixed().to_dict()
    assert json.loads(json.dumps(d))["exit_code"] == 1
    assert {r["verdict"] for r in d["rows"]} == {"pass", "regression", "missing-in-current"}


# ------------------------------------------------------------ CI workflow file
README_COMMANDS = (
    "accelkit bench GEN --backend trt,torch --out current/",
    "accelkit compare baseline/results.json current/results.json --max-slowdown 5% --markdown summary.md --junit junit.xml",
)


def _workflow() -> dict[str, Any]:
    yaml = pytest.importorskip(
        "yaml", reason="pyyaml is needed to parse the workflow (pip install -e '.[dev]')"
    )
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _accelkit_commands(data: dict[str, Any]) -> list[str]:
    cmds = []
    for job in data["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                line = line.strip()
                if line.startswith("accelkit "):
                    cmds.append(re.sub(r'"?\$\{?GEN\}?"?', "GEN", line))
    return cmds


def test_workflow_is_valid_and_complete() -> None:
    data = _workflow()
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    triggers: Any = data["on"] if "on" in data else dict(data).get(True)  # type: ignore[call-overload]
    assert {"pull_request", "push", "workflow_dispatch"} <= set(triggers)
    (job,) = data["jobs"].values()
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    steps = job["steps"]
    assert any('pip install -e ".[gpu]"' in str(s.get("run", "")) for s in steps)
    assert any("GITHUB_STEP_SUMMARY" in str(s.get("run", "")) for s in steps)
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert (
        upload
        and "current/" in upload[0]["with"]["path"]
        and upload[0].get("if") == "${{ always() }}"
    )
    assert sorted(_accelkit_commands(data)) == sorted(README_COMMANDS)


def test_workflow_commands_are_documented_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for cmd in _accelkit_commands(_workflow()):
        assert cmd in readme, f"the workflow runs `{cmd}` but README.md does not document it"


def test_docs_carry_an_exact_copy_of_the_workflow() -> None:
    doc = (ROOT / "docs" / "perf-regression.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert WORKFLOW.read_text() in blocks, (
        "docs/perf-regression.md must embed .github/workflows/perf-regression.yml verbatim"
    )


def test_write_outputs_atomically(tmp_path: Path) -> None:
    comp = _mixed()
    written = comp.write(markdown=tmp_path / "out" / "summary.md", junit=tmp_path / "junit.xml")
    assert set(written) == {"markdown", "junit"}
    assert written["markdown"].read_text() == comp.to_markdown()
    ET.parse(written["junit"])
    assert comp.write() == {}
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError) as ei:
        comp.write(junit=tmp_path / "file" / "junit.xml")
    assert "--junit" in _one_line(ei.value)
