"""Adding a backend is one runner module plus its registration (issue 18, item 1).

A backend accelkit does not ship (``tests/runners/fake_backend.py``: ONNX's reference
evaluator) is registered, and every planner asks the registry: ``bench`` measures it and
lists the cells it cannot run as skipped rows with its reason, ``optimize`` searches it and
reports the cells it cannot run, and the conformance test runs it through the contract every
runner passes. Nothing in accelkit names it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import accelkit as ak
from accelkit.errors import InputError
from accelkit.runners.base import (
    Ask,
    backend_names,
    offers,
    register_backend,
    runner_class,
    unregister_backend,
)
from tests.fixtures.generators import LatentGen, make
from tests.fixtures.timing import fake_timing

FAST = ak.Timing(warmup=1, repeats=3, min_time_s=0.02)


@pytest.fixture()
def fake_backend():  # type: ignore[no-untyped-def]
    register_backend("fake", "tests.runners.fake_backend:FakeRunner")
    try:
        yield "fake"
    finally:
        unregister_backend("fake")
    assert "fake" not in backend_names()


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    p = tmp_path_factory.mktemp("reg") / "latent.ts.pt"
    torch.jit.save(torch.jit.script(make(LatentGen)), str(p))
    return p


def test_a_registered_backend_answers_through_the_registry(fake_backend) -> None:
    assert "fake" in backend_names() and runner_class("fake").name == "fake"
    plain = offers("fake", Ask(kind="torch", precision="fp16"))
    assert not isinstance(plain, str) and plain[0].source == "onnx-fp16"
    assert (
        offers("fake", Ask(kind="torch", precision="int8")) == "the fake backend does not run int8"
    )


@pytest.mark.parametrize("name", ["", "has space", "a-b"])
def test_backend_names_must_be_flag_words(name) -> None:
    with pytest.raises(InputError, match="backend name"):
        register_backend(name, "x:Y")


@pytest.mark.slow
def test_bench_measures_it_and_says_why_where_it_cannot(fake_backend, gen, tmp_path) -> None:
    res = ak.bench(
        gen,
        ak.BenchOptions(
            backends=("torch", "fake"),
            precisions=("fp32", "int8"),
            batch_sizes=(1,),
            timing=FAST,
            out=tmp_path / "b",
            plot=False,
        ),
    )
    rows = {(r.backend, r.precision): r for r in res.report.rows}
    assert rows[("fake", "fp32")].status == "ok" and rows[("fake", "fp32")].images_per_sec > 0
    assert rows[("fake", "int8")].status == "skipped"
    assert rows[("fake", "int8")].reason == "the fake backend does not run int8"
    md = (tmp_path / "b" / "results.md").read_text()
    assert "- **fake int8** on cpu (batch 1): the fake backend does not run int8" in md


@pytest.mark.slow
def test_optimize_searches_it_and_reports_what_it_cannot_run(
    fake_backend, gen, tiny_weights, tmp_path, monkeypatch
) -> None:
    fake_timing(monkeypatch)
    res = ak.optimize(
        gen,
        ak.OptimizeOptions(
            backends=("fake",),
            fid=ak.FidSettings(n=16, weights=str(tiny_weights)),
            timing=FAST,
            out=tmp_path / "o",
            time_budget="5m",
        ),
    )
    ids = [t.candidate.id for t in res.outcome.tried]
    # the fake backend's recipes, and of torch only the FP32 baseline (the reference): no torch variants
    assert ids[0] == "torch-fp32" and set(ids) == {"torch-fp32", "fake-fp32", "fake-fp16"}
    assert "fake int8: the fake backend does not run int8" in res.outcome.not_offered
    assert "not offered here: fake int8: the fake backend does not run int8" in res.to_text()
    record = json.loads((tmp_path / "o" / "optimize.json").read_text())
    assert "fake bf16: the fake backend does not run bf16" in record["not_offered"]


@pytest.mark.slow
def test_the_conformance_contract_runs_it(fake_backend, tmp_path) -> None:
    from tests.runners import test_conformance as conf

    offered = dict(conf._offered("fake", "cpu"))
    assert set(offered) == {"fp32", "fp16"}
    artifacts = conf._Artifacts(tmp_path)
    for cid, recipe in offered.items():
        conf.test_runner_conformance(artifacts, "fake", "cpu", cid, recipe, "uncond")
