"""The time budget holds and never changes the rule (issue 23, item 3).

On an SR model a 5-minute search chose INT8 (36.9 img/s) over an equally fast fp32 (36.6) because
fp32's quality was never checked before time ran out. Here the clock is fake (every phase costs a
fixed number of seconds, so the test does not depend on this machine's speed) and the budget
is tight: the search must keep time for the quality checks of the builds that tie, skip timing
new candidates instead, pick fp32 by the rule (least drift among ties) and end inside the budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import accelkit as ak
from accelkit.autotune import search as search_mod
from tests.fixtures.generators import LatentGen, make
from tests.fixtures.timing import SPEEDS, fake_timing

#: Seconds each kind of work costs on the fake clock.
COSTS = {
    "speed": 10.0,
    "expensive": 10.0,
    "reference": 60.0,
    "quality": 100.0,
    "quick": 100.0,
    "confirm": 10.0,
    "sensitivity": 30.0,
    "build:onnx-fp32": 5.0,
    "build:onnx-fp16": 5.0,
    "build:onnx-int8": 5.0,
}


class FakeClock(search_mod.Clock):
    """Elapsed time is the sum of the fixed costs of the work recorded so far."""

    def __init__(self, budget_s: float, started: float | None = None) -> None:
        super().__init__(budget_s, started)
        self.fake = 0.0

    def elapsed(self) -> float:
        return self.fake

    def record(self, phase: str, kind: str, seconds: float) -> None:
        cost = COSTS.get(kind, 0.0)
        self.fake += cost
        super().record(phase, kind, cost)

    def estimate(self, kind: str, default: float) -> float:
        return super().estimate(kind, COSTS.get(kind, default))


@pytest.fixture()
def sr_like_speeds(monkeypatch):  # type: ignore[no-untyped-def]
    for key, ips in {
        ("torch", "fp32"): 10.0,
        ("ort", "fp32"): 36.6,
        ("ort", "int8"): 36.9,
        ("ort", "fp16"): 20.0,
        ("openvino", "fp32"): 15.0,
        ("openvino", "int8"): 12.0,
        ("openvino", "bf16"): 11.0,
    }.items():
        monkeypatch.setitem(SPEEDS, key, ips)
    fake = fake_timing(monkeypatch)
    monkeypatch.setattr(search_mod, "Clock", FakeClock)
    # the quality check costs what the table says, not what the tiny extractor makes it
    monkeypatch.setattr(search_mod.Search, "_probe_features", lambda self: 0.0)
    return fake


@pytest.mark.slow
def test_a_short_budget_checks_the_tie_before_timing_more(
    sr_like_speeds, tiny_weights, tmp_path
) -> None:
    gen = tmp_path / "sr.ts.pt"
    torch.jit.save(torch.jit.script(make(LatentGen)), str(gen))
    res = ak.optimize(
        gen,
        ak.OptimizeOptions(
            backends=("ort", "openvino"),
            fid=ak.FidSettings(n=24, weights=str(tiny_weights)),
            timing=ak.Timing(warmup=1, repeats=5, min_time_s=0.02),
            time_budget=375,
            threads=1,
            out=tmp_path / "o",
        ),
    )
    o = res.outcome
    by_id = {t.candidate.id: t for t in o.tried}
    # both builds of the tie were judged, and the rule (least drift among ties) chose fp32
    assert by_id["ort-int8"].drift is not None and by_id["ort-fp32"].drift is not None
    assert o.chosen.candidate.id == "ort-fp32", [
        (t.candidate.id, t.status, t.reason) for t in o.tried
    ]
    assert o.chosen.reason.startswith("within 5% of the fastest accepted build ort-int8")
    # time went to those checks instead of new candidates, and the search ended inside its budget
    skipped = [t for t in o.tried if t.reason.startswith("not timed: the time left is kept")]
    assert skipped and not o.complete
    assert o.seconds["total"] <= 375


@pytest.mark.slow
def test_a_budget_too_short_for_the_reference_keeps_the_baseline(
    sr_like_speeds, tiny_weights, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(COSTS, "speed", 50.0)
    monkeypatch.setattr(search_mod.Search, "_probe_features", lambda self: 10.0)  # 10 s per image
    gen = tmp_path / "g.ts.pt"
    torch.jit.save(torch.jit.script(make(LatentGen)), str(gen))
    res = ak.optimize(
        gen,
        ak.OptimizeOptions(
            backends=("ort",),
            fid=ak.FidSettings(n=16, weights=str(tiny_weights)),
            timing=ak.Timing(warmup=1, repeats=5, min_time_s=0.02),
            time_budget=120,
            out=tmp_path / "o",
        ),
    )
    o = res.outcome
    assert o.chosen is o.baseline and not o.complete
    assert any(
        "do not fit in the" in n and "raise --time-budget or lower --fid" in n for n in o.notes
    )
    assert Path(tmp_path / "o" / "optimize.json").is_file()
