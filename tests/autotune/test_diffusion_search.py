"""The diffusion search's pure rules, table-driven: the space, speed-first choice, the ladder."""

from __future__ import annotations

import shlex

import pytest

from accelkit.autotune.diffusion_search import (
    ESTIMATED,
    UNSTABLE,
    DiffusionCandidate,
    StepCost,
    Timed,
    choose,
    diffusion_space,
    estimated,
    fit_step_cost,
    held_back,
    ladder,
    probe_candidates,
    probe_steps,
    quality_order,
    settled_by,
)

REF = DiffusionCandidate("ddim", 50)


def C(sched: str, steps: int, cache: str = "none", backend: str = "torch", prec: str = "fp32"):
    return DiffusionCandidate(sched, steps, cache, backend, prec)


def test_space_is_small_documented_and_excludes_int8_caches() -> None:
    cands, excluded = diffusion_space(
        REF, [("torch", "fp32"), ("ort", "int8")], unet=True, steps=(25, 10, 60)
    )
    assert cands[0] == REF and len(set(cands)) == len(cands)
    # steps {50, 25, 10} (60 > reference dropped) x {ddim, dpm++} x {none, dc2, dc3}, torch fp32,
    # minus the reference itself; ort int8 keeps only the uncached sampler settings
    assert len([c for c in cands if c.backend == "torch"]) == 3 * 2 * 3
    ort = [c for c in cands if c.backend == "ort"]
    assert len(ort) == 3 * 2 and {c.cache for c in ort} == {"none"}
    assert len(excluded) == 3 * 2 * 2 and all("fp32/fp16 only" in r for _, r in excluded)
    dit, _ = diffusion_space(REF, [("torch", "fp32")], unet=False, steps=())
    assert {c.cache for c in dit} == {"none", "fbcache:0.05", "fbcache:0.1"}


@pytest.mark.parametrize(
    ("cand", "trajectory", "levers"),
    [
        (C("ddim", 50), set(), set()),
        (C("ddim", 20), {"steps"}, {"steps"}),
        (
            C("dpm++", 20, "deepcache:3:1"),
            {"steps", "scheduler", "cache"},
            {"steps", "scheduler", "cache"},
        ),
        (C("ddim", 50, backend="ort", prec="int8"), set(), {"backend", "precision"}),
    ],
)
def test_levers_against_the_reference(cand, trajectory, levers) -> None:
    assert cand.trajectory(REF) == trajectory and cand.levers(REF) == levers


def T(
    c: DiffusionCandidate,
    ips: float | None,
    unstable: bool = False,
    verdict: str | None = None,
    reason: str = "",
    estimated: bool = False,
):
    return Timed(c, ips, unstable=unstable, verdict=verdict, reason=reason, estimated=estimated)


@pytest.mark.parametrize(
    ("speeds", "verdicts", "chosen", "checked"),
    [
        # the fastest accepted wins; slower ones are never checked
        (
            {"a": 10, "b": 8, "c": 5},
            {"a": "rejected", "b": "accepted", "c": "accepted"},
            "b",
            ["a", "b"],
        ),
        # inconclusive is not accepted: keep going
        ({"a": 10, "b": 8}, {"a": "inconclusive", "b": "accepted"}, "b", ["a", "b"]),
        # nothing accepted: the reference stays
        ({"a": 10}, {"a": "rejected"}, "ref", ["a"]),
        # slower than the reference: cannot win, not checked
        ({"a": 0.5}, {"a": "accepted"}, "ref", []),
    ],
)
def test_speed_first_then_quality(speeds, verdicts, chosen, checked) -> None:
    cands = {k: C("ddim", 10 + i) for i, k in enumerate(speeds)}
    timed = [T(REF, 1.0)] + [T(cands[k], v) for k, v in speeds.items()]
    name = {c: k for k, c in cands.items()} | {REF: "ref"}
    got, done = choose(timed, REF, lambda t: verdicts[name[t.candidate]])
    assert name[got.candidate] == chosen
    assert [name[t.candidate] for t in done] == checked


def test_choice_honours_the_check_limit_and_the_clock() -> None:
    timed = [T(REF, 1.0), T(C("ddim", 10), 9), T(C("ddim", 20), 5)]
    got, done = choose(timed, REF, lambda t: "rejected", max_checks=1)
    assert got.candidate == REF and len(done) == 1
    got, done = choose(timed, REF, lambda t: "accepted", time_left=lambda t: False)
    assert got.candidate == REF and done == []
    assert [t.candidate.steps for t in quality_order(timed, REF)] == [10, 20]


def test_ladder_attributes_each_lever_and_withholds_unstable_ratios() -> None:
    ref = T(REF, 1.0)
    steps = T(C("ddim", 20), 2.5, verdict="accepted")
    cache = T(C("ddim", 20, "deepcache:3:1"), 5.0, verdict="accepted")
    rejected = T(C("ddim", 10, "deepcache:3:1"), 9.0, verdict="rejected")
    final = T(C("ddim", 20, "deepcache:3:1", "ort", "fp32"), 12.0, verdict="accepted")
    rungs = ladder([ref, steps, cache, rejected, final], REF, final)
    assert [r.name for r in rungs] == ["reference", "fewer steps", "+ cache", "+ backend/precision"]
    assert [r.timed for r in rungs] == [ref, steps, cache, final]
    assert [r.ratio for r in rungs[1:]] == pytest.approx([2.5, 2.0, 2.4])

    cache.unstable = True
    rungs = ladder([ref, steps, cache, final], REF, final)
    assert rungs[2].ratio is None and rungs[2].withheld == UNSTABLE
    assert rungs[3].withheld == UNSTABLE  # its previous rung is unstable too

    # no accepted cached build: the rung keeps the previous build and says so, no ratio
    rungs = ladder([ref, steps, rejected], REF, steps)
    assert rungs[2].timed is steps and rungs[2].ratio is None and "no accepted" in rungs[2].withheld

    # the sampler accepted at fp32 on ORT only: the unchecked torch fp32 build of it takes that
    # verdict (named), and its estimated speed withholds both ratios it is a side of
    chosen = T(C("ddim", 15, "none", "ort", "fp32"), 19.0, verdict="accepted")
    torch15 = T(C("ddim", 15), 4.6, estimated=True)
    int8 = T(C("ddim", 10, "none", "ort", "int8"), 30.0, verdict="accepted")
    torch10 = T(C("ddim", 10), 8.0)  # its sampler accepted only at int8: says nothing at fp32
    rungs = ladder([ref, torch15, chosen, int8, torch10], REF, chosen)
    assert rungs[1].timed is torch15 and rungs[1].via == chosen.candidate.id
    assert rungs[1].withheld == ESTIMATED and rungs[3].withheld == ESTIMATED
    assert rungs[3].timed is chosen and rungs[3].via is None


@pytest.mark.parametrize(
    ("fp16_15", "chosen_id"),
    [("accepted", "ddim-15 none ort fp16"), ("rejected", "ddim-15 none ort fp32")],
)
def test_choose_judges_a_trajectory_once_at_full_precision_first(
    fp16_15: str, chosen_id: str
) -> None:
    ref = T(REF, 1.0)
    a = T(C("ddim", 10, "none", "ort", "fp16"), 20.0)
    b = T(C("ddim", 10, "none", "ort", "fp32"), 18.0)
    c = T(C("ddim", 10, "none", "torch", "fp32"), 8.0)
    e = T(C("ddim", 15, "none", "ort", "fp16"), 13.0)
    d = T(C("ddim", 15, "none", "ort", "fp32"), 12.0)
    verdicts = {id(b): "inconclusive", id(c): "inconclusive", id(d): "accepted", id(e): fp16_15}
    judged: list[str] = []

    def judge(t: Timed) -> str:
        judged.append(t.candidate.id)
        return verdicts[id(t)]

    chosen, checked = choose([ref, a, b, c, d, e], REF, judge)
    # ddim-10 is judged once, at fp32 (b before the faster fp16 a), and settles a and c unchecked;
    # ddim-15's fp32 build is checked first, then its faster fp16 build, which wins if accepted
    assert judged == [b.candidate.id, d.candidate.id, e.candidate.id]
    assert chosen is not None and chosen.candidate.id == chosen_id
    assert a.verdict is None and a.reason.startswith(
        "not checked: the same sampler was inconclusive"
    )
    assert b.candidate.id in a.reason and c.verdict is None and settled_by(c, [b, c], REF) is b
    # a refusal at lower precision does not settle a higher one; the reference sampler is never settled
    f16 = T(C("ddim", 10, "none", "ort", "fp16"), 20.0, verdict="rejected")
    assert settled_by(T(C("ddim", 10), 8.0), [f16], REF) is None
    assert settled_by(T(C("ddim", 10, prec="int8"), 9.0), [f16], REF) is f16
    assert (
        settled_by(
            T(C("ddim", 50, "none", "ort", "int8"), 3.0),
            [T(C("ddim", 50, "none", "ort", "fp32"), 2.0, verdict="rejected")],
            REF,
        )
        is None
    )


def test_held_back_names_per_lever_the_fastest_refused_build_and_by_how_much() -> None:
    chosen = T(C("ddim", 15, "none", "ort", "fp32"), 10.0, verdict="accepted")
    steps = T(C("ddim", 10, "none", "ort", "fp32"), 15.0, verdict="inconclusive", reason="KID x")
    steps_cache = T(C("ddim", 10, "deepcache:2:1", "ort", "fp32"), 30.0, verdict="rejected")
    cache = T(
        C("ddim", 15, "deepcache:2:1", "ort", "fp32"), 12.0, verdict="rejected", reason="KID y"
    )
    int8 = T(C("ddim", 15, "none", "ort", "int8"), 11.0, verdict="rejected", reason="PSNR z")
    slower = T(C("ddim", 6, "none", "torch", "fp32"), 9.0, verdict="rejected")
    accepted = T(C("ddim", 20, "none", "ort", "fp32"), 20.0, verdict="accepted")  # not refused
    out = held_back(
        [T(REF, 1.0), chosen, steps, steps_cache, cache, int8, slower, accepted], chosen
    )
    by = {f.lever: f for f in out}
    assert list(by) == ["steps/scheduler", "cache", "backend/precision"]
    # the lever moved alone wins over a faster build that also moves another lever
    assert by["steps/scheduler"].timed is steps and by["steps/scheduler"].gain == pytest.approx(1.5)
    assert by["steps/scheduler"].why == "inconclusive: KID x"
    assert by["cache"].timed is cache and by["cache"].gain == pytest.approx(1.2)
    assert by["backend/precision"].timed is int8 and by["backend/precision"].gain == pytest.approx(
        1.1
    )
    # a build moving two levers says nothing about either alone: no line
    assert held_back([chosen, steps_cache], chosen) == []
    # an unchecked, estimated build: the gain is withheld and the reason says it was not checked
    est = T(C("ddim", 6, "none", "ort", "fp32"), 25.0, estimated=True)
    (f,) = held_back([chosen, est], chosen)
    assert f.gain is None and f.withheld == ESTIMATED and f.why.startswith("not checked")
    assert held_back([chosen], chosen) == [] and held_back([steps], None) == []


def test_bench_command_round_trips_through_a_shell() -> None:
    c = C("dpm++", 20, "deepcache:3:1", "ort", "fp16")
    argv = shlex.split(c.bench_command("my folder", 8, ["--fid", "200"]))
    assert argv[:3] == ["accelkit", "bench", "my folder"]
    flags = dict(zip(argv[3::2], argv[4::2]))
    assert flags == {
        "--steps": "20", "--scheduler": "dpm++", "--cache": "deepcache:3:1", "--backend": "ort",
        "--precision": "fp16", "--batch": "8", "--fid": "200",
    }  # fmt: skip


def test_probes_time_each_unit_at_two_step_counts_with_the_reference_scheduler() -> None:
    cands, _ = diffusion_space(REF, [("torch", "fp32"), ("ort", "int8")], unet=True)
    probes = probe_candidates(cands, REF)
    assert probes[0] == REF and len(set(probes)) == len(probes)
    units = {c.unit for c in cands}
    assert len(units) == 3 + 1  # torch fp32 x {none, dc2, dc3}; ort int8 uncached
    assert {(c.unit, c.steps) for c in probes[1:]} == {(u, n) for u in units for n in (10, 25)}
    assert {c.scheduler for c in probes} == {"ddim"}
    # the fewest steps and the most below the reference's; the reference's own when alone
    assert probe_steps(cands, REF) == [10, 25]
    assert probe_steps([C("ddim", 10), C("ddim", 50)], REF) == [10, 50]
    assert probe_steps([C("ddim", 50)], REF) == [50]
    got = probe_candidates([C("ddim", 8, backend="ort")], REF, steps=(8, 20))
    assert [c.steps for c in got[1:]] == [8, 20] and got[1].backend == "ort"


@pytest.mark.parametrize(
    ("points", "want"),
    [
        ([(10, 1.5), (25, 3.0)], (0.5, 0.1)),  # exact line
        ([(10, 1.0), (20, 2.0), (30, 3.0)], (0.0, 0.1)),  # through the origin
        ([(10, 2.0), (25, 1.9)], (1.95, 0.0)),  # faster with more steps: noise, flat
        ([(10, 0.5), (25, 3.5)], (0.0, (10 * 0.5 + 25 * 3.5) / (100 + 625))),  # overhead < 0
    ],
)
def test_step_cost_fit(points, want) -> None:
    cost = fit_step_cost(points)
    assert cost is not None
    assert (cost.overhead_s, cost.per_step_s) == pytest.approx(want)
    assert cost.overhead_s >= 0 and cost.per_step_s >= 0


def test_step_cost_needs_two_counts_and_positive_times() -> None:
    assert fit_step_cost([(10, 1.0), (10, 1.1)]) is None
    assert fit_step_cost([(10, 1.0), (20, 0.0)]) is None
    t = estimated(C("ddim", 20), StepCost(0.5, 0.1, unstable=True), batch=4)
    assert t.images_per_sec == pytest.approx(4 / 2.5) and t.estimated and t.unstable
    assert t.reason == ESTIMATED and t.to_dict()["estimated"] is True


def test_an_estimated_candidate_is_timed_before_it_is_judged_and_reranked() -> None:
    ref = T(REF, 1.0)
    a = Timed(C("ddim", 10), 9.0, estimated=True)  # estimated fastest, truly 3.0
    b = T(C("ddim", 15), 5.0)  # timed
    c = Timed(C("ddim", 20), 4.0, estimated=True)  # truly 0.5: slower than the reference
    truth = {a.candidate: 3.0, c.candidate: 0.5}
    confirmed = []

    def confirm(t: Timed) -> None:
        confirmed.append(t.candidate.steps)
        t.images_per_sec = truth[t.candidate]

    judged = []

    def judge(t: Timed) -> str:
        assert not t.estimated, "judged on an estimate"
        judged.append(t.candidate.steps)
        return "rejected"

    got, done = choose([ref, a, b, c], REF, judge, confirm=confirm)
    # a timed first (estimated fastest): now 3.0 < b's 5.0, so b is judged first, then a;
    # c is timed when it becomes the fastest left, found slower than the reference, never judged
    assert confirmed == [10, 20] and judged == [15, 10]
    assert got is ref and [t.candidate.steps for t in done] == [15, 10]
    # without confirm an estimate is taken as it is
    for t in (a, c):
        t.estimated, t.verdict = True, None
    a.images_per_sec, c.images_per_sec = 9.0, 4.0
    got, done = choose([ref, a, b, c], REF, lambda t: "accepted")
    assert got is a


def test_a_verdict_from_an_earlier_pass_stands() -> None:
    """The ladder's passes re-use choose(): a candidate judged before is not judged again;
    an accepted one is chosen where it ranks, a rejected one is passed over."""
    ref = T(REF, 1.0)
    rejected = T(C("ddim", 10), 9.0, verdict="rejected")
    accepted = T(C("ddim", 15), 6.0, verdict="accepted")
    fresh = T(C("ddim", 12), 8.0)
    judged = []

    def judge(t: Timed) -> str:
        judged.append(t.candidate.steps)
        return "inconclusive"

    got, done = choose([ref, rejected, accepted, fresh], REF, judge)
    assert judged == [12] and [t.candidate.steps for t in done] == [12]
    assert got is accepted and rejected.verdict == "rejected"
    fresh.verdict = None
    got, done = choose([ref, rejected, accepted, fresh], REF, judge, max_checks=0)
    assert got is ref and done == [] and judged == [12]  # fresh is faster: no check left for it
    fresh.images_per_sec = 5.0
    got, done = choose([ref, rejected, accepted, fresh], REF, judge, max_checks=0)
    assert got is accepted and done == []  # a standing verdict costs no check
