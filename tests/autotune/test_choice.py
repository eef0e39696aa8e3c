"""The optimize choice rules (accelkit.autotune.choice) on tables of cases: no search, no timing.

Each case is a few builds with their speed, status and drift; the rule under test says what
is chosen, what can still win, what must be checked next, what time must be kept.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from accelkit.autotune import choice
from accelkit.autotune.choice import Budget, Tried
from accelkit.autotune.space import Candidate
from accelkit.errors import InputError
from tests.fixtures.quality import FEW_RUINED, paired_fields


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


# -------------------------------------------------------------------------- the verdict decides
JUDGE_CASES = [
    # (budget, drift, decision, words in the reason)
    # floor = no detectable drift: the paired test against the 35 dB margin
    (Budget("floor"), paired_fields(50.0), "accepted", ["paired test", "inside the 35 dB"]),
    (Budget("floor"), paired_fields(25.0), "rejected", ["paired test", "beyond the 35 dB"]),
    (Budget("floor"), paired_fields(math.inf), "accepted", ["identical to the reference"]),
    # 3 ruined images of 200 put the mean near the margin (too few for the tail guard):
    # not accepted, and it says what N would decide
    (
        Budget("floor"),
        paired_fields(0, mse=FEW_RUINED),
        "inconclusive",
        ["straddles", "would decide"],
    ),
    (Budget("floor"), paired_fields(50.0, n=10), "inconclusive", ["below 20 images"]),
    # a PSNR budget moves the paired test's margin
    (Budget("psnr", 45.0), paired_fields(40.0), "rejected", ["beyond the 45 dB"]),
    (Budget("psnr", 30.0), paired_fields(40.0), "accepted", ["inside the 30 dB"]),
    # an explicit FID budget keeps working (a point estimate: no interval)
    (Budget("fid", 2.5), paired_fields(40.0, fid=2.0), "accepted", ["FID drift 2 <= budget 2.5"]),
    (Budget("fid", 2.5), paired_fields(60.0, fid=3.0), "rejected", ["FID drift 3 > budget 2.5"]),
    (Budget("fid", 2.5), {"fid_drift": math.nan}, "inconclusive", ["could not be measured"]),
    # a journal from before the calibrated verdict: nothing to accept on
    (Budget("floor"), {"fid_drift": 1.0, "noise_floor_fid": 2.0}, "inconclusive", ["schema 3"]),
]


@pytest.mark.parametrize(("budget", "drift", "decision", "words"), JUDGE_CASES)
def test_judge_decides_from_the_verdict(budget, drift, decision, words) -> None:
    v = choice.judge(drift, budget)
    assert v.decision == decision
    for w in words:
        assert w in v.reason, v.reason
    assert v.accepted is (decision == "accepted")


def test_inconclusive_says_which_n_would_decide() -> None:
    v = choice.judge(paired_fields(0, mse=FEW_RUINED), Budget("floor"))
    need = v.n_to_decide
    assert need is not None and need > 200 and f"about N = {need} would decide" in v.reason
    # and with that many images of the same kind it decides (the 1.5 % ruined: rejected)
    more = np.resize(FEW_RUINED, need)
    assert choice.judge(paired_fields(0, mse=more), Budget("floor")).decision == "rejected"


def test_budget_words() -> None:
    assert "no detectable drift" in Budget("floor").describe()
    assert Budget("floor").fid_line(25.0) is None  # the noise floor no longer decides
    assert Budget("fid", 2.5).fid_line(25.0) == 2.5


# -------------------------------------------------------------------------- which test decides
CHANGE_CASES = [
    # (candidate, changes, test)
    (Candidate("ort-fp32", "ort", "fp32", "onnx-fp32"), {"backend"}, "paired"),
    (Candidate("ov-int8", "openvino", "int8", "onnx-int8"), {"backend", "precision"}, "paired"),
    (
        Candidate("pruned25-ov-int8", "openvino", "int8", "onnx-int8", prune_ratio=0.25),
        {"backend", "precision", "prune"},
        "paired",
    ),
    (
        Candidate("torch-fp32-compile", "torch", "fp32", "torch", recipe_variant="compile"),
        {"runtime"},
        "paired",
    ),
    (
        Candidate("ort-int8+keep1", "ort", "int8", "onnx-int8", exclude_groups=("g",)),
        {"backend", "precision", "exclusions"},
        "paired",
    ),
    # changes of trajectory (the diffusion builds): the distribution test
    (
        Candidate("torch-fp32-steps10", "torch", "fp32", "torch", {"steps": 10}),
        {"steps"},
        "distribution",
    ),
    (
        Candidate("ort-fp16-cache", "ort", "fp16", "onnx-fp16", {"cache": "deepcache"}),
        {"backend", "precision", "cache"},
        "distribution",
    ),
    (
        SimpleNamespace(
            backend="torch", precision="fp32", source="torch", trajectory=("scheduler",)
        ),
        {"scheduler"},
        "distribution",
    ),
]


@pytest.mark.parametrize(("cand", "changes", "test"), CHANGE_CASES)
def test_the_test_follows_what_the_build_changed(cand, changes, test) -> None:
    got = choice.build_changes(cand)
    assert got == frozenset(changes)
    assert choice.quality_test(got) == test


# -------------------------------------------------------------------------- ties by quality
def judged(name: str, ips: float, drift: dict) -> Tried:
    t = tried(name, ips, "accepted")
    t.drift = drift
    return t


def test_a_speed_tie_goes_to_the_build_that_is_not_detectably_worse() -> None:
    # the faster build's paired FID reads lower (0.5 vs 1.0: noise), but its images are
    # detectably further from the reference's, image by image
    fast = judged("ort-int8", 1000, paired_fields(40.0, fid=0.5))
    slow = judged("ort-fp32", 990, paired_fields(60.0, fid=1.0, seed=1))
    assert choice.detectably_worse(fast, slow).worse
    assert not choice.detectably_worse(slow, fast).worse
    assert choice.best([fast, slow], 0.05, "floor") is slow
    why = choice.set_aside_by(fast, choice.tied_builds([fast, slow], 0.05))
    assert why is not None and why.startswith("detectably worse than ort-fp32 (paired comparison")
    text = choice.explain_choice(slow, fast, 0.05, why)
    assert "ort-int8 (1000.0 img/s), which is detectably worse than ort-fp32" in text
    # not a tie (10 % slower): the fastest accepted build, however its quality compares
    far = judged("ort-fp32", 900, paired_fields(60.0, seed=1))
    assert choice.best([fast, far], 0.05, "floor") is fast


def test_builds_not_detectably_different_tie_on_drift_then_speed() -> None:
    a = judged("a-fp32", 1000, paired_fields(40.0, seed=0, fid=1.2))
    b = judged("b-fp32", 990, paired_fields(40.0, seed=1, fid=1.0))  # same error level
    assert choice.detectably_worse(a, b).decision == "not detectably different"
    assert choice.best([a, b], 0.05, "floor") is b  # the least drift, as before


def test_builds_judged_by_different_tests_are_not_compared() -> None:
    a = judged("a-fp32", 1000, paired_fields(40.0))
    b = judged("b-fp32", 990, {**paired_fields(60.0), "drift_test": "distribution"})
    assert choice.detectably_worse(a, b) is None


def test_distribution_builds_compare_by_their_intervals() -> None:
    def dist(lo: float, hi: float) -> dict:
        v = {
            "test": "distribution",
            "decision": "accepted",
            "statistic": "delta_kid",
            "estimate": (lo + hi) / 2,
            "interval": [lo, hi],
            "margin": 1.0,
            "mde": 0.1,
            "n": 500,
            "level": 0.9,
            "power": 0.9,
            "reason": "",
        }
        return {"fid_drift": 1.0, "drift_test": "distribution", "drift_detail": v}

    a = judged("steps10", 1000, dist(0.5, 0.8))
    b = judged("steps20", 990, dist(0.1, 0.4))
    c = judged("steps20b", 985, dist(0.3, 0.6))
    assert choice.detectably_worse(a, b).worse and not choice.detectably_worse(b, a).worse
    assert choice.detectably_worse(a, c).decision == "not detectably different"


def test_a_custom_comparison_decides_the_tie() -> None:
    a, b = tried("a-fp32", 1000, "accepted", 0.1), tried("b-fp32", 990, "accepted", 2.0)
    assert choice.best([a, b], 0.05, "floor") is a
    always = SimpleNamespace(worse=True, reason="told so")
    assert choice.best([a, b], 0.05, "floor", worse=lambda x, y: always if x is a else None) is b
