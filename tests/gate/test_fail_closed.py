"""The gate fails closed and says when it cannot tell: the cases of issue 22 (each exits non-zero
unless --allow-unreliable, a different generator never compared), nothing compared, missing
metrics, run-to-run differences (``unreliable``, exit 3), interleaved runs, and summary counts
that always match the verdict."""

from __future__ import annotations

import copy
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accelkit.cli import app
from accelkit.errors import InputError
from accelkit.gate.compare import (
    FAILING,
    STRICT_UNRELIABLE,
    UNRELIABLE,
    VERDICTS,
    Comparison,
    compare_files,
    compare_reports,
)
from tests.gate.test_compare import NOISY, SPEC, base_rows, results, row

runner = CliRunner()


def with_load(rep: dict[str, Any], load: float, cores: int = 2) -> dict[str, Any]:
    """``rep`` measured at 1-minute load ``load`` on ``cores`` cores (report and every row)."""
    out = copy.deepcopy(rep)
    out["environment"]["cpu"] = dict(
        out["environment"]["cpu"], available_cores=cores, load_average=[load, load, load]
    )
    for r in out["rows"]:
        r["load_average_1m"] = load
    return out


def scaled(factor: float, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``rows`` (default: :func:`base_rows`) with every sample multiplied by ``factor`` (0.5 = 50 % slower)."""
    return [
        dict(r, images_per_sec_samples=[x * factor for x in r["images_per_sec_samples"]])
        for r in (rows if rows is not None else base_rows())
    ]


def one_repeat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r, images_per_sec_samples=r["images_per_sec_samples"][:1]) for r in rows]


def skipped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        row(
            r["backend"],
            r["batch_size"],
            None,
            precision=r["precision"],
            status="skipped",
            reason="no GPU",
        )
        for r in rows
    ]


def other_cpu(rep: dict[str, Any]) -> dict[str, Any]:
    rep["environment"]["cpu"]["model"] = "Other CPU"
    return rep


def unrecorded(rep: dict[str, Any]) -> dict[str, Any]:
    rep["settings"].pop("generator_sha256")
    rep["artifacts"] = []
    return rep


# --------------------------------------------------- the issue's cases, one table
#: (id, baseline, current, exit code, exit code with --allow-unreliable, what the summary says)
ISSUE_CASES: list[tuple[str, Any, Any, int, int, str]] = [
    ("unchanged", lambda: results(base_rows()), lambda: results(base_rows()), 0, 0, "PASS: 4 pass"),
    (
        "50%-slower-other-cpu-model",
        lambda: results(base_rows()),
        lambda: other_cpu(results(scaled(0.5))),
        1,
        1,
        "FAIL: 4 regression; 1 environment difference — 4 failing rows",
    ),
    (
        "unchanged-other-cpu-model",
        lambda: results(base_rows()),
        lambda: other_cpu(results(base_rows())),
        3,
        0,
        "cpu: Test CPU → Other CPU",
    ),
    (
        "70%-slower-oversubscribed",
        lambda: with_load(results(base_rows()), 0.2),
        lambda: with_load(results(scaled(0.3)), 4.9),
        3,
        0,
        "current machine oversubscribed (load 4.9 on 2 cores)",
    ),
    (
        "90%-slower-one-repeat-per-row",
        lambda: results(one_repeat(base_rows())),
        lambda: results(one_repeat(scaled(0.1))),
        3,
        0,
        "no noise estimate (1 and 1 repeats, need >= 3 on each side)",
    ),
    (
        "rows-skipped",
        lambda: results(base_rows()),
        lambda: results(skipped(base_rows())),
        3,
        3,
        "nothing compared: the current report measured nothing",
    ),
    (
        "rows-removed",
        lambda: results(base_rows()),
        lambda: results(base_rows()[:2]),
        3,
        0,
        "2 rows not compared (missing-in-current)",
    ),
    (
        "1-of-4-rows-left",
        lambda: results(base_rows()),
        lambda: results(base_rows()[:1]),
        3,
        0,
        "3 rows not compared (missing-in-current)",
    ),
    (
        "some-rows-skipped",
        lambda: results(base_rows()),
        lambda: results(base_rows()[:2] + skipped(base_rows()[2:])),
        3,
        0,
        "2 missing-in-current",
    ),
    (
        "no-common-rows",
        lambda: results(base_rows()),
        lambda: results([dict(r, device="cpu") for r in base_rows()]),
        3,
        3,
        "nothing compared: the current report measured none of the baseline's 4 rows",
    ),
    (
        "current-records-no-generator",
        lambda: results(base_rows()),
        lambda: unrecorded(results(base_rows())),
        3,
        0,
        "current does not record which generator it benched",
    ),
    (
        "regression-same-machine",
        lambda: results(base_rows()),
        lambda: results(scaled(0.8)),
        1,
        1,
        "FAIL: 4 regression — 4 failing rows",
    ),
]


@pytest.mark.parametrize(
    ("base", "cur", "code", "allowed_code", "said"),
    [c[1:] for c in ISSUE_CASES],
    ids=[c[0] for c in ISSUE_CASES],
)
def test_issue_cases_exit_non_zero_unless_allowed(
    base: Callable[[], dict[str, Any]],
    cur: Callable[[], dict[str, Any]],
    code: int,
    allowed_code: int,
    said: str,
) -> None:
    comp = compare_reports(base(), cur(), current_name="current")
    assert comp.exit_code == code, comp.summary_line()
    assert said in comp.summary_line(), comp.summary_line()
    allowed = compare_reports(base(), cur(), allow_unreliable=True)
    assert allowed.exit_code == allowed_code, allowed.summary_line()
    if code == 3 and allowed_code == 0:
        assert allowed.summary_line().startswith("UNRELIABLE (exit 0: --allow-unreliable)")
    _check_counts(comp)
    _check_counts(allowed)


@pytest.mark.parametrize(
    ("cur", "said"),
    [
        (
            lambda: results(scaled(3.0), sha="e" * 64),
            "benched different generators (sha256 dddddddddddddddd vs eeeeeeeeeeeeeeee)",
        ),
        (
            lambda: results(scaled(3.0), spec=dict(SPEC, output_shape=[3, 32, 32])),
            "benched generators with different I/O specs",
        ),
    ],
    ids=["other-sha256-3x-faster", "other-spec-3x-faster"],
)
def test_a_different_generator_is_never_compared(
    cur: Callable[[], dict[str, Any]], said: str
) -> None:
    for allow in (False, True):
        with pytest.raises(InputError) as ei:
            compare_reports(results(base_rows()), cur(), allow_unreliable=allow)
        msg = str(ei.value)
        assert said in msg and "\n" not in msg and ei.value.exit_code == 2
    # bench --vs measures two builds (two files) in one run on purpose: no identity check there
    b, c = results(base_rows()), cur()
    b["settings"]["interleaved_run"] = c["settings"]["interleaved_run"] = "run-1"
    assert compare_reports(b, c).rows[0].verdict == "improved"


def test_the_sha256_prefix_bench_records_matches_the_full_one() -> None:
    full = results(base_rows())
    full["settings"].pop("generator_sha256")  # only the artifacts' full source_sha256
    assert compare_reports(results(base_rows()), full).exit_code == 0


def test_strict_and_allow_unreliable_contradict() -> None:
    with pytest.raises(InputError) as ei:
        compare_reports(
            results(base_rows()), results(base_rows()), strict=True, allow_unreliable=True
        )
    assert "--strict and --allow-unreliable" in str(ei.value)


@pytest.mark.parametrize(
    ("case", "flags", "code"),
    [
        ("70%-slower-oversubscribed", [], 3),
        ("70%-slower-oversubscribed", ["--allow-unreliable"], 0),
        ("50%-slower-other-cpu-model", ["--allow-unreliable"], 1),
        ("rows-skipped", ["--allow-unreliable"], 3),
        ("unchanged", ["--strict", "--allow-unreliable"], 2),
    ],
)
def test_cli_exit_codes(tmp_path: Path, case: str, flags: list[str], code: int) -> None:
    _, base, cur, *_ = next(c for c in ISSUE_CASES if c[0] == case)
    (tmp_path / "base.json").write_text(json.dumps(base()))
    (tmp_path / "cur.json").write_text(json.dumps(cur()))
    res = runner.invoke(
        app, ["compare", str(tmp_path / "base.json"), str(tmp_path / "cur.json"), *flags]
    )
    assert res.exit_code == code, res.output
    if code == 2:
        assert res.stderr.startswith("error: --strict and --allow-unreliable") and not res.stdout
    else:
        assert res.stdout.strip().splitlines()[-1].startswith(("PASS", "FAIL", "UNRELIABLE"))


def test_cli_refuses_another_generator_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text(json.dumps(results(base_rows())))
    (tmp_path / "cur.json").write_text(json.dumps(results(scaled(3.0), sha="f" * 64)))
    res = runner.invoke(
        app,
        ["compare", str(tmp_path / "base.json"), str(tmp_path / "cur.json"), "--allow-unreliable"],
    )
    assert res.exit_code == 2 and not res.stdout
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and "benched different generators" in line


# ------------------------------------------------------------ nothing compared
@pytest.mark.parametrize(
    ("current_rows", "why"),
    [
        ([], "the current report has no rows"),
        ([row("ort", 1, 500.0)], "measured none of the baseline's 4 rows (it measured 1 other row"),
        (
            [
                row(
                    r["backend"],
                    r["batch_size"],
                    None,
                    precision=r["precision"],
                    status="skipped",
                    reason="no GPU",
                )
                for r in base_rows()
            ],
            "the current report measured nothing (its 4 rows are skipped or failed; trt fp16 batch 1 on cuda:0: no GPU)",
        ),
        (
            [
                row(
                    r["backend"],
                    r["batch_size"],
                    None,
                    precision=r["precision"],
                    status="failed",
                    reason="NaN",
                )
                for r in base_rows()
            ],
            "the current report measured nothing",
        ),
        ([row("trt", 1, 2000.0), row("trt", 8, None, status="skipped", reason="x")], None),
    ],
    ids=["zero-rows", "all-missing", "all-skipped", "all-failed", "one-compared"],
)
def test_nothing_compared_cannot_tell_with_a_reason(
    current_rows: list[dict[str, Any]], why: str | None
) -> None:
    comp = compare_reports(results(base_rows()), results(current_rows))
    if why is None:  # one row compared: the missing ones leave the gate unable to tell
        assert comp.cannot_compare == [] and comp.exit_code == 3
        assert comp.counts()["missing-in-current"] == 3
        return
    if "failed" in (r.get("status") for r in current_rows):  # a failed row is a measured failure
        assert comp.exit_code == 1 and comp.verdict == "fail" and comp.cannot_compare
        return
    assert comp.exit_code == 3 and comp.verdict == "unreliable"
    assert comp.cannot_compare and why in comp.cannot_compare[0], comp.cannot_compare
    line = comp.summary_line()
    assert line.startswith("UNRELIABLE (exit 3): ") and "nothing compared" in line
    junit = ET.fromstring(comp.to_junit())
    cov = next(c for c in junit.iter("testcase") if c.get("name") == "coverage")
    assert cov.find("error") is not None and junit.get("failures") == "0"
    assert json.loads(json.dumps(comp.to_dict()))["problems"] == comp.cannot_compare


def test_empty_baseline_cannot_tell() -> None:
    comp = compare_reports(results([]), results(base_rows()))
    assert comp.exit_code == 3 and "baseline has no ok row" in comp.summary_line()
    assert {r.verdict for r in comp.rows} == {"new-in-current"}


@pytest.mark.parametrize(
    "current_rows",
    [[], [row("trt", 1, None, status="skipped", reason="no GPU")]],
    ids=["empty", "all-missing"],
)
def test_cli_compare_on_empty_or_all_missing_current_exits_3(
    tmp_path: Path, current_rows: list[dict[str, Any]]
) -> None:
    (tmp_path / "base.json").write_text(json.dumps(results(base_rows())))
    (tmp_path / "cur.json").write_text(json.dumps(results(current_rows)))
    for flags in ([], ["--allow-unreliable"]):
        res = runner.invoke(
            app, ["compare", str(tmp_path / "base.json"), str(tmp_path / "cur.json"), *flags]
        )
        assert res.exit_code == 3, res.output
        last = res.stdout.strip().splitlines()[-1]
        assert last.startswith("UNRELIABLE (exit 3): ") and "nothing compared" in last


# ------------------------------------------------------------- missing metric
def test_nan_fid_in_a_file_is_a_missing_metric(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text(json.dumps(results([row("trt", 1, 2000.0, fid_drift=1.0)])))
    (tmp_path / "cur.json").write_text(
        json.dumps(results([row("trt", 1, 2000.0, fid_drift=math.nan)]))
    )  # json writes NaN
    comp = compare_files(tmp_path / "base.json", tmp_path / "cur.json", max_fid_drift=0.5)
    r = comp.rows[0]
    assert r.verdict == "missing-metric" and "current not finite (nan)" in r.reason
    assert comp.exit_code == 1 and comp.counts()["missing-metric"] == 1


@pytest.mark.parametrize(
    ("base_fid", "cur_fid", "said"),
    [
        (None, 1.0, "baseline absent"),
        (None, None, "baseline absent and current absent"),
        ("1.2", 1.0, "baseline not a number"),
    ],
)
def test_gated_fid_missing_on_either_side_fails(base_fid: Any, cur_fid: Any, said: str) -> None:
    b = row("trt", 1, 2000.0, **({} if base_fid is None else {"fid_drift": base_fid}))
    c = row("trt", 1, 2000.0, **({} if cur_fid is None else {"fid_drift": cur_fid}))
    comp = compare_reports(results([b]), results([c]), max_fid_drift=0.5)
    assert (
        comp.rows[0].verdict == "missing-metric"
        and said in comp.rows[0].reason
        and comp.exit_code == 1
    )


def test_missing_metric_keeps_a_speed_regression_a_regression() -> None:
    comp = compare_reports(
        results([row("trt", 1, 2000.0, fid_drift=1.0)]),
        results([row("trt", 1, 1000.0)]),
        max_fid_drift=0.5,
    )
    assert comp.rows[0].verdict == "regression" and "names fid_drift" in comp.rows[0].reason


# ---------------------------------------------------------- run-to-run checks
def test_same_build_at_different_loads_is_unreliable_not_a_regression() -> None:
    """Same build, busier machine for the second run, rows 20 % slower with tight repeats: exit 3, not 1."""
    base = with_load(results(base_rows()), 0.2)
    cur_rows = [
        dict(r, images_per_sec_samples=[x * 0.8 for x in r["images_per_sec_samples"]])
        for r in base_rows()
    ]
    cur = with_load(results(cur_rows), 1.9)
    comp = compare_reports(base, cur)
    assert {r.speed_verdict for r in comp.rows} == {"regression"}  # what the interval alone says
    assert {r.verdict for r in comp.rows} == {"unreliable"} and all(r.run_to_run for r in comp.rows)
    assert comp.exit_code == 3 and comp.verdict == "unreliable"
    line = comp.summary_line()
    assert line.startswith("UNRELIABLE (exit 3; --allow-unreliable accepts it): 4 unreliable")
    assert "load 0.2 → 1.9 (2 cores)" in line and "accelkit bench CURRENT --vs BASELINE" in line
    junit = ET.fromstring(comp.to_junit())
    assert junit.get("failures") == "0" and junit.get("errors") == "4"
    assert "⚠️ unreliable" in comp.to_markdown().splitlines()[0]
    d = json.loads(json.dumps(comp.to_dict()))
    assert (
        d["verdict"] == "unreliable"
        and d["rows"][0]["speed_verdict"] == "regression"
        and d["rows"][0]["unreliable_reasons"]
    )
    allowed = compare_reports(base, cur, allow_unreliable=True)
    assert allowed.exit_code == 0 and allowed.summary_line().startswith(
        "UNRELIABLE (exit 0: --allow-unreliable): 4 unreliable"
    )
    assert ET.fromstring(allowed.to_junit()).get("skipped") == "4"


def test_oversubscribed_machine_is_unreliable_even_at_equal_loads() -> None:
    comp = compare_reports(
        with_load(results(base_rows()), 4.9), with_load(results(base_rows()), 4.9)
    )
    assert {r.verdict for r in comp.rows} == {"unreliable"}
    assert "machine oversubscribed (load 4.9 on 2 cores)" in comp.summary_line()


def test_measured_contention_is_preferred_to_the_load_average() -> None:
    """Rows carrying ``stability`` (others' busy cores during the repeats) are judged on it, not on the load average."""

    def stab(rep: dict[str, Any], others: float, over: bool) -> dict[str, Any]:
        for r in rep["rows"]:
            r["stability"] = {"busy_cores_others": others, "oversubscribed": over, "cpus": 2}
        return rep

    quiet = compare_reports(
        stab(with_load(results(base_rows()), 0.2), 0.1, False),
        stab(with_load(results(base_rows()), 3.0), 0.2, False),
    )
    assert (
        quiet.verdict == "pass"
    )  # the load average counted the bench's own threads; nobody else competed
    over = compare_reports(
        stab(with_load(results(base_rows()), 1.0), 0.1, False),
        stab(with_load(results(base_rows()), 1.0), 1.8, True),
    )
    assert {r.verdict for r in over.rows} == {"unreliable"}
    assert (
        "current oversubscribed while measured (others kept 1.8 of 2 cores busy)"
        in over.summary_line()
    )
    assert "other processes' busy cores 0.1 → 1.8 (2 cores)" in over.summary_line()


def test_small_load_changes_and_quiet_machines_stay_reliable() -> None:
    comp = compare_reports(
        with_load(results(base_rows()), 0.3), with_load(results(base_rows()), 1.1)
    )
    assert comp.verdict == "pass" and comp.summary_line() == "PASS: 4 pass"
    big = compare_reports(
        with_load(results(base_rows()), 2.0, cores=16),
        with_load(results(base_rows()), 5.0, cores=16),
    )
    assert big.verdict == "pass"  # 3 more runnable processes on 16 cores: within 0.25 per core


def test_a_real_regression_on_equal_quiet_machines_still_fails() -> None:
    cur_rows = base_rows()
    cur_rows[0] = row("trt", 1, 1600.0)
    comp = compare_reports(with_load(results(base_rows()), 0.5), with_load(results(cur_rows), 0.6))
    assert comp.rows[0].verdict == "regression" and comp.exit_code == 1


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda r: r["environment"].update(threads={"torch_intra_op": 1}),
            "threads.torch_intra_op",
        ),
        (lambda r: r["environment"]["cpu"].update(model="Other CPU"), "cpu: Test CPU → Other CPU"),
        (lambda r: [x.update(runner={"threads": 1}) for x in r["rows"]], "runner threads — → 1"),
    ],
    ids=["env-threads", "cpu-model", "runner-threads"],
)
def test_thread_and_hardware_differences_make_an_unchanged_build_unreliable(
    change: Callable[[dict[str, Any]], Any], said: str
) -> None:
    cur = results(base_rows())
    change(cur)
    comp = compare_reports(results(base_rows()), cur)
    assert {r.verdict for r in comp.rows} == {"unreliable"} and said in comp.summary_line(), (
        comp.summary_line()
    )


def test_fid_regression_is_not_hidden_by_an_unreliable_speed() -> None:
    base = with_load(results([row("trt", 1, 2000.0, fid_drift=1.0)]), 0.1)
    cur = with_load(results([row("trt", 1, 2000.0, fid_drift=3.0)]), 3.0)
    comp = compare_reports(base, cur, max_fid_drift=0.5)
    assert comp.rows[0].verdict == "regression" and comp.exit_code == 1


# ----------------------------------------------------------------- interleaved
def _interleaved(
    base: dict[str, Any], cur: dict[str, Any], run: str = "abc"
) -> tuple[dict[str, Any], dict[str, Any]]:
    base, cur = copy.deepcopy(base), copy.deepcopy(cur)
    base["settings"]["interleaved_run"] = cur["settings"]["interleaved_run"] = run
    return base, cur


def test_interleaved_reports_skip_run_to_run_checks_and_pair_rounds() -> None:
    # per-round machine speed swings ±30 % and hits both builds alike; the candidate is 10 % slower in every round
    rounds = [1.0, 0.7, 1.3, 0.8, 1.2, 0.75, 1.25]
    b = [row("ort", 1, 1000.0, shape=rounds, precision="fp32", device="cpu")]
    c = [row("ort", 1, 900.0, shape=rounds, precision="fp32", device="cpu")]
    base, cur = _interleaved(with_load(results(b), 0.2), with_load(results(c), 4.9))
    paired = compare_reports(base, cur)
    assert (
        paired.interleaved and paired.rows[0].verdict == "regression"
    )  # load ignored: both sides shared it
    assert paired.rows[0].ci_high == pytest.approx(0.9)  # round effects cancel
    unpaired = compare_reports(base, cur, interleaved=False)
    assert unpaired.rows[0].verdict == "unreliable"
    other_run = compare_reports(
        *_interleaved(results(b), results(c), "abc")[:1],
        _interleaved(results(b), results(c), "xyz")[1],
    )
    assert not other_run.interleaved


# --------------------------------------------------------- counts match verdict
def _scenarios() -> dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    base = results(base_rows())
    slow = base_rows()
    slow[1] = row("trt", 8, 7000.0)
    noisy_b = results([row("torch", 1, 800.0, shape=NOISY, precision="fp32")])
    noisy_c = results([row("torch", 1, 720.0, shape=NOISY[::-1], precision="fp32")])
    few_b, few_c = (
        results([row("trt", 1, 1000.0, shape=[1.0, 1.01])]),
        results([row("trt", 1, 990.0, shape=[1.0, 1.01])]),
    )
    failed = base_rows()
    failed[2] = row("torch", 1, None, precision="fp32", status="failed", reason="NaN")
    return {
        "unchanged": (base, results(base_rows()), {}),
        "regression": (base, results(slow), {}),
        "partly-missing": (base, results(base_rows()[:2]), {}),
        "new-row": (base, results(base_rows() + [row("ort", 1, 10.0)]), {}),
        "all-missing": (base, results([]), {}),
        "failed-row": (base, results(failed), {}),
        "noisy": (noisy_b, noisy_c, {}),
        "few-repeats": (few_b, few_c, {}),
        "env-versions": (base, results(base_rows(), torch="2.14.0"), {}),
        "load-differs": (with_load(base, 0.1), with_load(results(slow), 2.5), {}),
        "fid-missing": (
            results([row("trt", 1, 1.0e3, fid_drift=1.0)]),
            results([row("trt", 1, 1.0e3)]),
            {"max_fid_drift": 0.5},
        ),
        "improved": (
            base,
            results(
                [
                    dict(r, images_per_sec_samples=[x * 1.5 for x in r["images_per_sec_samples"]])
                    for r in base_rows()
                ]
            ),
            {},
        ),
    }


def _check_counts(comp: Comparison) -> None:
    c = comp.counts()
    assert set(c) == set(VERDICTS) and sum(c.values()) == len(comp.rows)
    failing = sum(n for v, n in c.items() if v in FAILING)
    undecided = sum(
        n for v, n in c.items() if v in UNRELIABLE or (comp.strict and v in STRICT_UNRELIABLE)
    )
    line = comp.summary_line()
    status, _, rest = line.partition(":")
    for v, n in c.items():
        if n:
            assert re.search(rf"(^|, | ){n} {re.escape(v)}(,| —|;|$)", rest), (v, n, line)
    if failing:
        assert status == "FAIL" and comp.exit_code == 1
        assert f"{failing} failing row" in line
    elif undecided or comp.problems:
        assert status.startswith("UNRELIABLE (exit ") and comp.exit_code in (0, 3)
        assert comp.exit_code == (0 if comp.accepted else 3)
        assert all(p in line for p in comp.problems) and "failing row" not in line
    else:
        assert status == "PASS" and comp.exit_code == 0
    assert comp.to_dict()["counts"] == c and comp.to_dict()["verdict"] == comp.verdict
    junit = ET.fromstring(comp.to_junit())
    assert (int(junit.get("failures") or 0) > 0) == (comp.exit_code == 1)
    assert (int(junit.get("errors") or 0) > 0) == (
        comp.verdict == "unreliable" and not comp.accepted
    )


@pytest.mark.parametrize(
    "flags",
    [{}, {"strict": True}, {"allow_unreliable": True}],
    ids=["default", "strict", "allow-unreliable"],
)
@pytest.mark.parametrize("name", list(_scenarios()))
def test_summary_counts_match_the_verdict(name: str, flags: dict[str, bool]) -> None:
    base, cur, kw = _scenarios()[name]
    _check_counts(compare_reports(base, cur, **flags, **kw))


def test_unreliable_never_says_pass_in_its_counts() -> None:
    """A row without a noise estimate is counted unreliable, never as a pass, under any flag."""
    b, c = (
        results([row("trt", 1, 1000.0, shape=[1.0, 1.01])]),
        results([row("trt", 1, 1000.0, shape=[1.0, 1.01])]),
    )
    for flags in ({}, {"strict": True}, {"allow_unreliable": True}):
        line = compare_reports(b, c, **flags).summary_line()
        assert line.startswith("UNRELIABLE") and "pass" not in line.split("—")[0], line
