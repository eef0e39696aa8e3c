"""The optimize choice rules (accelkit.autotune.choice) on tables of cases: no search, no timing.

Each case is a few builds with their speed, status and drift; the rule under test says what
is chosen, what can still win, what must be checked next, what time must be kept.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from accelkit.autotune import choice
from accelkit.autotune.choice import Budget, Tried
from accelkit.autotune.space import Candidate
from accelkit.errors import InputError


def tried(
    name: str,
    ips: float | None,
    status: str = "not checked",
    fid: float | None = None,
    psnr: float | None = None,
    unstable: bool = False,
) -> Tried:
    """A build: ``name`` timed at ``ips`` images/s, its status and drift."""
    backend, prec = (name.split("-") + ["fp32"])[:2]
    row = None if ips is None else {"images_per_sec": ips, "unstable": unstable}
    drift = None if fid is None and psnr is None else {"fid_drift": fid, "psnr_db": psnr}
    return Tried(
        Candidate(name, backend, prec.split("+")[0], "onnx-fp32"),
        row=row,
        status=status,
        drift=drift,
    )


def ids(ts):  # type: ignore[no-untyped-def]
    return [t.candidate.id for t in ts]


# -------------------------------------------------------------------------- the choice
CHOICE_CASES = [
    # (builds, margin, budget kind, chosen)
    (
        [("torch-fp32", 100, "accepted", 0.0), ("ort-int8", 1000, "accepted", 2.0)],
        0.05,
        "floor",
        "ort-int8",
    ),
    # a speed tie (1 % apart) goes to the least drift
    (
        [("ort-fp32", 990, "accepted", 0.1), ("ort-int8", 1000, "accepted", 2.0)],
        0.05,
        "floor",
        "ort-fp32",
    ),
    # ... unless the margin is 0: then the faster one
    (
        [("ort-fp32", 990, "accepted", 0.1), ("ort-int8", 1000, "accepted", 2.0)],
        0.0,
        "floor",
        "ort-int8",
    ),
    # a build 10 % slower is not a tie
    (
        [("ort-fp32", 900, "accepted", 0.1), ("ort-int8", 1000, "accepted", 2.0)],
        0.05,
        "floor",
        "ort-int8",
    ),
    # rejected builds are never chosen, however fast
    (
        [("torch-fp32", 100, "accepted", 0.0), ("ort-int8", 1000, "rejected", 9.0)],
        0.05,
        "floor",
        "torch-fp32",
    ),
    # equal drift: the faster of the tied builds
    ([("a-fp32", 98, "accepted", 1.0), ("b-fp32", 100, "accepted", 1.0)], 0.05, "floor", "b-fp32"),
    # an unmeasured drift counts as the worst
    ([("a-fp32", 99, "accepted", None), ("b-fp32", 100, "accepted", 1.0)], 0.05, "fid", "b-fp32"),
]


@pytest.mark.parametrize(("builds", "margin", "kind", "want"), CHOICE_CASES)
def test_best(builds, margin, kind, want) -> None:
    ts = [tried(n, ips, st, fid=f) for n, ips, st, f in builds]
    assert choice.best(ts, margin, kind).candidate.id == want


def test_psnr_budget_ranks_by_psnr() -> None:
    ts = [tried("a-fp32", 100, "accepted", psnr=40.0), tried("b-fp32", 99, "accepted", psnr=55.0)]
    assert choice.best(ts, 0.05, "psnr").candidate.id == "b-fp32"
    assert (
        choice.drift_key(ts[1], "psnr") == -55.0
        and choice.drift_key(tried("c", 1), "fid") == math.inf
    )


def test_nothing_accepted_chooses_nothing() -> None:
    assert choice.best([tried("ort-int8", 1000, "rejected", 9.0)], 0.05, "floor") is None


@pytest.mark.parametrize(
    ("ips", "want"),
    [
        (1000, None),
        (960, None),
        (950, None),
        (949, "cannot beat the accepted ort-int8 (1000.0 img/s)"),
    ],
)
def test_cannot_win_is_the_tie_bar(ips, want) -> None:
    top = tried("ort-int8", 1000, "accepted", 1.0)
    t = tried("ort-fp32", ips)
    why = choice.cannot_win(t, [top, t], 0.05)
    assert (why is None) == (want is None) and (want is None or want in why)


def test_undecided_is_what_can_still_change_the_answer() -> None:
    ts = [
        tried("torch-fp32", 100, "accepted", 0.0),
        tried("ort-int8", 1000, "accepted", 2.0),
        tried("ov-int8", 990),  # ties: still open
        tried("ort-fp16", 500),  # cannot beat int8: closed
        tried("x-fp32", 2000, "failed"),  # failed: closed
        tried("y-fp32", None),  # never timed: nothing to check
    ]
    assert ids(choice.undecided(ts, 0.05)) == ["ov-int8"]


def test_quality_is_checked_fastest_first() -> None:
    ts = [
        tried("a-fp32", 10),
        tried("b-fp32", 30),
        tried("c-fp32", 20),
        tried("d-fp32", 40, "failed"),
    ]
    assert ids(choice.quality_order(ts)) == ["b-fp32", "c-fp32", "a-fp32"]


@pytest.mark.parametrize(
    ("chosen", "top", "starts"),
    [
        (tried("ort-int8", 1000, "accepted", 1.0), None, "fastest accepted build"),
        (
            tried("ort-fp32", 990, "accepted", 0.1),
            tried("ort-int8", 1000, "accepted", 2.0),
            "within 5% of the fastest accepted build ort-int8 (1000.0 img/s), with less drift",
        ),
    ],
)
def test_explain_choice(chosen, top, starts) -> None:
    assert choice.explain_choice(chosen, top or chosen, 0.05).startswith(starts)


# -------------------------------------------------------------------------- rescue
@pytest.mark.parametrize(
    ("groups", "kept"), [(5, [1, 2, 4]), (3, [1, 2]), (2, [1]), (1, []), (0, []), (9, [1, 2, 4, 8])]
)
def test_int8_rescue_never_keeps_every_group_in_float(groups, kept) -> None:
    """Keeping every group in float leaves nothing to quantize: the rescue stops one short."""
    assert choice.int8_rescue_sizes(groups) == kept


def test_int8_rescue_is_bounded_by_max_retries() -> None:
    assert choice.int8_rescue_sizes(100, max_retries=2) == [1, 2]
    assert choice.fp16_rescue_headrooms(1) == [0.05]


# -------------------------------------------------------------------------- time
@pytest.mark.parametrize(
    ("cost", "left", "reserve", "ok"),
    [(10, 20, 0, True), (10, 20, 10, True), (10, 20, 11, False), (21, 20, 0, False)],
)
def test_affordable(cost, left, reserve, ok) -> None:
    assert choice.affordable(cost, left, reserve) is ok


RESERVE_CASES = [
    # nothing timed but the accepted baseline: nothing to keep
    ([("torch-fp32", 100, "accepted", 0.0)], 0.0),
    # one open build faster than the baseline: one check
    ([("torch-fp32", 100, "accepted", 0.0), ("ort-int8", 1000, "not checked", None)], 30.0),
    # two open builds that tie (36.9 vs 36.6, the SR case): both checks, before any new candidate
    (
        [
            ("torch-fp32", 10, "accepted", 0.0),
            ("ort-int8", 36.9, "not checked", None),
            ("ort-fp32", 36.6, "not checked", None),
        ],
        60.0,
    ),
    # an open build far slower than the fastest open one only needs checking if that one fails
    (
        [
            ("torch-fp32", 10, "accepted", 0.0),
            ("ort-int8", 100, "not checked", None),
            ("ort-fp32", 50, "not checked", None),
        ],
        30.0,
    ),
]


@pytest.mark.parametrize(("builds", "want"), RESERVE_CASES)
def test_time_is_kept_for_checks_of_builds_that_tie(builds, want) -> None:
    ts = [tried(n, ips, st, fid=f) for n, ips, st, f in builds]
    assert choice.reserve_for_checks(ts, 0.05, check_s=30.0) == want
    # timing one more keeps time for its own check too: it may tie as well
    assert choice.reserve_for_checks(ts, 0.05, check_s=30.0, and_new=True) == want + 30.0


@pytest.mark.parametrize(
    ("left", "rescue", "pending", "first"),
    [(100, 40, 50, True), (100, 60, 50, False), (100, 60, 0, True)],
)
def test_rescue_waits_for_the_pending_checks_when_time_is_short(
    left, rescue, pending, first
) -> None:
    assert choice.rescue_first(left, rescue, pending) is first


@pytest.mark.parametrize(("elapsed", "ok"), [(0, True), (150, True), (151, False)])
def test_expensive_candidates_only_in_the_first_half(elapsed, ok) -> None:
    assert choice.can_time_expensive(elapsed, 300) is ok


# -------------------------------------------------------------------------- budget
@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("floor", "floor", None),
        ("2.5", "fid", 2.5),
        ("psnr:35", "psnr", 35.0),
        (" PSNR:40 ", "psnr", 40.0),
    ],
)
def test_budget_parse(text, kind, value) -> None:
    b = Budget.parse(text)
    assert (b.kind, b.value) == (kind, value)


@pytest.mark.parametrize("text", ["fast", "psnr:-3", "psnr:0", "nan", "-1", "inf"])
def test_budget_parse_refuses(text) -> None:
    with pytest.raises(InputError, match="--budget"):
        Budget.parse(text)


JUDGE_CASES = [
    (Budget("floor"), 1.0, 2.0, 30.0, True, "FID drift 1 <= noise floor 2"),
    (Budget("floor"), 3.0, 2.0, 30.0, False, "FID drift 3 > noise floor 2"),
    (Budget("fid", 2.5), 2.0, 9.0, 30.0, True, "FID drift 2 <= budget 2.5"),
    (Budget("psnr", 40.0), 0.0, 1.0, 35.0, False, "PSNR 35.0 dB < budget 40 dB"),
    (Budget("floor"), math.nan, 1.0, 35.0, False, "could not be measured"),
]


@pytest.mark.parametrize(("budget", "fid", "floor", "psnr", "ok", "why"), JUDGE_CASES)
def test_judge(budget, fid, floor, psnr, ok, why) -> None:
    drift = SimpleNamespace(fid_drift=fid, noise_floor_fid=floor, psnr_db=psnr)
    got, text = choice.judge(drift, budget)
    assert got is ok and why in text
