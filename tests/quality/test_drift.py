"""Quality drift per backend (bench --fid) and the `accelkit fid` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from accelkit.cli import app
from accelkit.errors import InputError, NonFiniteOutputError
from accelkit.loading import load_generator
from accelkit.quality.drift import DriftMeter
from accelkit.quality.features import FeatureExtractor
from accelkit.runners.base import create_runner

cli = CliRunner()
FAST = ["--batch", "1,4", "--repeats", "3", "--warmup", "1", "--min-time", "0.05"]


class _Noisy:
    """Wraps a runner and adds seeded noise to its outputs (a build that drifted)."""

    def __init__(self, inner, sigma: float, nan: bool = False) -> None:
        self.inner, self.sigma, self.nan = inner, sigma, nan
        self.name, self.precision, self.spec = "noisy", "fp32", inner.spec
        self.rng = np.random.default_rng(0)

    def infer(self, inputs):
        out = self.inner.infer(inputs)
        out = out + self.sigma * self.rng.standard_normal(out.shape).astype(np.float32)
        if self.nan:
            out[0, 0, 0, 0] = np.nan
        return out


@pytest.fixture()
def meter(gen_files, tiny_weights, tmp_path):
    art = load_generator(gen_files["torchscript"])
    with create_runner("torch", art, precision="fp32") as ref:
        m = DriftMeter(
            ref,
            art.source_sha256,
            FeatureExtractor(tiny_weights),
            n=48,
            seed=0,
            batch_size=16,
            workdir=tmp_path,
        )
        m.prepare()
        yield m, ref
        m.close()


@pytest.mark.slow
def test_identical_backend_is_accepted_and_noise_is_rejected(meter) -> None:
    m, ref = meter
    assert m.noise_floor_fid > 0
    same = m.measure(ref)
    assert same.fid_drift == pytest.approx(0.0, abs=1e-6) and same.max_abs_err == 0.0
    assert same.verdict == "accepted" and same.legacy_verdict == "within floor"
    assert same.drift_test == "paired" and "identical to the reference on all 48 images" in (
        same.test_verdict.reason if same.test_verdict else ""
    )
    noisy = m.measure(_Noisy(ref, sigma=0.3))
    assert noisy.verdict == "rejected" and noisy.legacy_verdict == "drift"
    assert noisy.fid_drift > m.noise_floor_fid
    assert 5 < noisy.psnr_db < 30 and noisy.changed_uint8_fraction > 0.5
    assert len(noisy.extractor["extractor_sha256"]) == 64 and noisy.n == 48
    # The verdict's numbers: interval around the estimate, above the 35 dB margin's MSE.
    lo, hi = noisy.drift_interval or (0, 0)
    assert lo > 4 * 10 ** (-3.5) and lo <= noisy.test_verdict.estimate <= hi  # type: ignore[union-attr]
    assert noisy.min_detectable_effect and noisy.min_detectable_effect > 0


def test_numerical_noise_is_the_reference_at_another_thread_count(meter) -> None:
    m, _ref = meter
    assert m.noise_what.startswith("torch fp32, ") and "thread" in m.noise_what
    assert m._noise_mse is not None and m._noise_mse.shape == (48,)
    ref_row = m.reference_drift()
    assert ref_row.verdict == "reference" and ref_row.drift_test == "paired"


def test_row_fields_carry_the_verdict_and_the_per_image_evidence(meter) -> None:
    from accelkit.quality.verdict import compare_builds, judge

    m, ref = meter
    small, big = m.measure(_Noisy(ref, sigma=0.02)), m.measure(_Noisy(ref, sigma=0.2))
    from accelkit.benchmark.report import BenchRow, Report

    rep = Report(
        [BenchRow("ort", "fp16", 1, "cpu", images_per_sec=1.0, images_per_sec_samples=[1.0])]
    )
    for k, v in big.row_fields().items():
        setattr(rep.rows[0], k, v)
    row = json.loads(rep.to_json())["rows"][0]  # what results.json holds (inf written as null)
    for key in (
        "drift_test",
        "drift_interval",
        "min_detectable_effect",
        "drift_reason",
        "legacy_verdict",
    ):
        assert row[key] is not None, key
    assert row["drift_verdict"] == "rejected" and len(row["drift_evidence"]["mse"]) == 48
    assert row["drift_detail"]["details"]["margin_db"] == 35.0
    # Builds measured by one meter compare image by image; a row loaded from JSON judges like the Drift.
    assert compare_builds(big, small).decision == "worse"
    assert (
        judge(row, "floor").decision == "rejected" and judge(row, "psnr:10").decision == "accepted"
    )


@pytest.mark.slow
def test_distribution_test_on_set_b_with_the_anchor_margin(meter, monkeypatch) -> None:
    m, ref = meter
    same = m.measure(ref, test="distribution")
    assert same.drift_test == "distribution" and same.verdict == "accepted"
    assert same.other_verdicts["paired"].decision == "accepted"
    far = m.measure(_Noisy(ref, sigma=0.3), test="distribution")
    assert far.verdict == "rejected" and far.test_verdict is not None
    # The anchor's noise is anchor_db (40 dB), not the paired test's 35 dB margin.
    assert "anchor: reference + Gaussian pixel noise at 40 dB" in far.test_verdict.reason
    assert far.test_verdict.details["settings"]["anchor_db"] == 40.0
    assert far.row_fields()["drift_detail"]["other_tests"]["paired"]["decision"] == "rejected"
    # The anchor is cached beside the reference features: a second meter does not recompute it.
    calls = []
    monkeypatch.setattr(m, "_anchor", {})
    real = m.extractor.__class__.__call__

    def counting(self, images):  # type: ignore[no-untyped-def]
        calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(m.extractor.__class__, "__call__", counting)
    m.anchor_features()
    assert calls == []
    with pytest.raises(InputError, match="'paired' or 'distribution'"):
        m.measure(ref, test="fid")


@pytest.mark.slow
def test_prepare_for_a_distribution_test_makes_the_anchor_from_set_b_once(
    gen_files, tiny_weights, tmp_path, monkeypatch
) -> None:
    """prepare(distribution=True) computes the anchor from the set-B images it makes anyway:
    the same features as anchor_features() makes alone, without generating set B again."""

    art = load_generator(gen_files["torchscript"])
    with create_runner("torch", art, precision="fp32") as ref:

        def meter_() -> DriftMeter:
            return DriftMeter(ref, art.source_sha256, FeatureExtractor(tiny_weights), n=24,
                              seed=3, batch_size=8, workdir=tmp_path)  # fmt: skip

        alone = meter_()
        alone.prepare()
        want = alone.anchor_features()
        alone.close()
        # a fresh cache: nothing of the above is reused
        monkeypatch.setenv("ACCELKIT_CACHE_DIR", str(tmp_path / "fresh-cache"))
        calls = []
        real = ref.infer

        def counting(inputs):  # type: ignore[no-untyped-def]
            calls.append(len(next(iter(inputs.values()))))
            return real(inputs)

        monkeypatch.setattr(ref, "infer", counting)
        once = meter_()
        once.prepare(distribution=True)
        made = sum(calls)
        got = once.anchor_features()
        assert sum(calls) == made, "anchor_features generated set B again"
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        once.close()


def test_nan_output_is_a_failure_not_a_number(meter) -> None:
    m, ref = meter
    with pytest.raises(NonFiniteOutputError, match=r"NaN/Inf"):
        m.measure(_Noisy(ref, 0.0, nan=True))


@pytest.mark.slow
def test_bench_fid_adds_drift_columns_grids_and_scatter(gen_files, tiny_weights, tmp_path) -> None:
    out = tmp_path / "res"
    res = cli.invoke(
        app,
        [
            "bench",
            str(gen_files["torchscript"]),
            "--out",
            str(out),
            "--fid",
            "32",
            "--fid-weights",
            str(tiny_weights),
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["fid_drift"] is not None and r["noise_floor_fid"] > 0 for r in ok)
    by = {(r["backend"], r["precision"]): r for r in ok}
    assert by[("torch", "fp32")]["drift_verdict"] == "reference"
    assert by[("ort", "fp32")]["max_abs_err"] < 1e-4
    fp16 = by[("ort", "fp16")]
    assert fp16["drift_verdict"] == "accepted" and fp16["psnr_db"] > 40, fp16["drift_reason"]
    assert fp16["legacy_verdict"] == "within floor" and fp16["drift_test"] == "paired"
    assert len(fp16["drift_interval"]) == 2 and fp16["min_detectable_effect"] > 0
    assert fp16["quality"]["n"] == 32 and len(fp16["quality"]["extractor_sha256"]) == 64
    for name in (
        "samples_grid.png",
        "speed_vs_drift.png",
        "grid_ort_fp16.png",
        "diff_ort_fp16.png",
    ):
        assert Image.open(out / name).size[0] > 100
    assert not (out / "diff_torch_fp32.png").exists()  # the reference has nothing to amplify
    assert fp16["extra"]["diff_amplification"] in (1, 2, 4, 8, 16, 32, 64, 128)
    md = (out / "results.md").read_text()
    assert "## Quality vs FP32 torch" in md and "| accepted | paired |" in md
    assert "speed_vs_drift.png" in md and "diff_ort_fp16.png" in md and "within floor" in md


def _write_folder(folder: Path, seed: int, n: int = 12, shift: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = np.clip(rng.integers(0, 200, (24, 24, 3)) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i:03d}.png")
    return folder


def test_fid_command_identical_and_different_folders(tiny_weights, tmp_path) -> None:
    a = _write_folder(tmp_path / "a", 0)
    b = _write_folder(tmp_path / "b", 0)
    c = _write_folder(tmp_path / "c", 1, shift=50)
    same = cli.invoke(app, ["fid", str(a), str(b), "--fid-weights", str(tiny_weights), "--json"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["fid"] == pytest.approx(0.0, abs=1e-6)
    diff = cli.invoke(app, ["fid", str(a), str(c), "--fid-weights", str(tiny_weights), "--json"])
    assert json.loads(diff.stdout)["fid"] > 1e-3 and json.loads(diff.stdout)["kid"] > 0
    stats = tmp_path / "a.npz"
    saved = cli.invoke(
        app, ["fid", str(a), "--save-stats", str(stats), "--fid-weights", str(tiny_weights)]
    )
    assert saved.exit_code == 0 and stats.is_file()
    vs_stats = cli.invoke(
        app, ["fid", str(stats), str(b), "--fid-weights", str(tiny_weights), "--json"]
    )
    assert vs_stats.exit_code == 0 and json.loads(vs_stats.stdout)["fid"] == pytest.approx(
        0.0, abs=1e-6
    )


def _one_line(res, pattern: str) -> None:
    assert res.exit_code == 2, res.output
    errs = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errs) == 1 and pattern in errs[0], res.stderr


def test_fid_command_errors(tiny_weights, tmp_path) -> None:
    a = _write_folder(tmp_path / "a", 0)
    _one_line(
        cli.invoke(app, ["fid", str(a), str(a), "--fid-weights", str(tmp_path / "none.pt")]),
        "none.pt",
    )
    bad = _write_folder(tmp_path / "bad", 2)
    (bad / "zz_broken.png").write_bytes(b"not a png")
    _one_line(
        cli.invoke(app, ["fid", str(a), str(bad), "--fid-weights", str(tiny_weights)]),
        "zz_broken.png",
    )
    _one_line(cli.invoke(app, ["fid", str(a)]), "--save-stats")
    # statistics made with another extractor are refused, naming the field
    other = tmp_path / "other.pt"
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mte", Path(__file__).parents[1] / "fixtures" / "make_tiny_extractor.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(other, seed=7)
    s1, s2 = tmp_path / "s1.npz", tmp_path / "s2.npz"
    assert (
        cli.invoke(
            app, ["fid", str(a), "--save-stats", str(s1), "--fid-weights", str(tiny_weights)]
        ).exit_code
        == 0
    )
    assert (
        cli.invoke(
            app, ["fid", str(a), "--save-stats", str(s2), "--fid-weights", str(other)]
        ).exit_code
        == 0
    )
    _one_line(cli.invoke(app, ["fid", str(s1), str(s2)]), "extractor_sha256")


def test_bench_fid_with_missing_weights_fails_before_work(tmp_path) -> None:
    res = cli.invoke(
        app,
        [
            "bench",
            "--fid",
            "10",
            "--fid-weights",
            str(tmp_path / "nope.pt"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    _one_line(res, "nope.pt")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_bench_fid_against_another_reference(gen_files, tiny_weights, tmp_path) -> None:
    """--reference: drift is measured against another model's FP32 torch (a pruned model's teacher)."""
    import torch

    from tests.fixtures.generators import LatentGen, make

    other = tmp_path / "other.pt"
    torch.jit.save(
        torch.jit.script(make(LatentGen, seed=5)), str(other)
    )  # same spec, different weights
    out = tmp_path / "res"
    args = [
        "bench",
        str(gen_files["torchscript"]),
        "--backend",
        "torch",
        "--precision",
        "fp32",
        "--out",
        str(out),
        "--fid",
        "32",
        "--fid-weights",
        str(tiny_weights),
        "--reference",
        str(other),
        *FAST,
    ]
    res = cli.invoke(app, args)
    assert res.exit_code == 0, res.output
    (row, *_) = [
        r for r in json.loads((out / "results.json").read_text())["rows"] if r["status"] == "ok"
    ]
    assert (
        row["drift_verdict"] in ("accepted", "rejected", "inconclusive")
        and row["max_abs_err"] > 1e-3
    )  # measured, not "reference"
    assert (
        json.loads((out / "results.json").read_text())["settings"]["fid"]["reference"] == "other.pt"
    )
    _one_line(
        cli.invoke(app, ["bench", "--reference", str(other), "--out", str(tmp_path / "x")]),
        "--reference only matters with --fid",
    )


@pytest.mark.slow
def test_drift_vs_reference_and_prune_fid(tiny_weights, tmp_path, monkeypatch) -> None:
    pytest.importorskip(
        "torch_pruning", reason="torch-pruning is in the dev extra; install accelkit[prune]"
    )
    from accelkit.passes.prune import Prune
    from accelkit.pipelines.bench import drift_vs_reference

    teacher = load_generator("dcgan")
    pruned = Prune(0.5)(teacher)
    d = drift_vs_reference(
        teacher, [("same", teacher), ("pruned", pruned)], 16, fid_weights=str(tiny_weights)
    )
    assert list(d) == ["same", "pruned"]
    assert d["same"].fid_drift == pytest.approx(0.0, abs=1e-6) and d["same"].psnr_db == float("inf")
    assert (
        d["pruned"].fid_drift > 1e-3
        and d["pruned"].psnr_db < 30
        and d["pruned"].noise_floor_fid == d["same"].noise_floor_fid > 0
    )
    with pytest.raises(InputError, match="different inputs or output shape"):
        drift_vs_reference(
            teacher, [("sr", load_generator("sr4x"))], 16, fid_weights=str(tiny_weights)
        )

    monkeypatch.chdir(tmp_path)
    res = cli.invoke(
        app,
        [
            "prune",
            "dcgan",
            "--ratio",
            "0.5",
            "--distill-steps",
            "3",
            "--distill-batch",
            "2",
            "--fid",
            "16",
            "--fid-weights",
            str(tiny_weights),
            "--threads",
            "1",
            "--force",  # the tiny extractor's floor is far below any pruning drift: written anyway
            "-o",
            "d.pruned.pt",
        ],
    )
    assert res.exit_code == 0, res.output
    line = next(
        x for x in res.stdout.splitlines() if x.startswith("quality vs the unpruned model (")
    )
    assert (
        "N=16 seeded latents" in line
        and " before distillation -> " in line
        and "pruned+distilled (noise floor " in line
    )
    q = json.loads((tmp_path / "d.pruned.pt.accelkit.json").read_text())["meta"][
        "quality_vs_teacher"
    ]
    assert (
        q["n"] == 16
        and q["pruned"]["fid_drift"] > 0
        and "fid_drift" in q["pruned+distilled"]
        and q["noise_floor_fid"] > 0
    )
    assert f"{q['pruned']['fid_drift']:.2f} before distillation" in line


def test_reference_cache_key_covers_everything_that_shapes_the_features(
    gen_files, tiny_weights, tmp_path
) -> None:
    """bench --fid with --truncation 0.1, then without, must not share reference features (a false 'drift')."""
    from dataclasses import replace

    art = load_generator(gen_files["torchscript"])
    ex = FeatureExtractor(tiny_weights)
    keys = {}
    variants = {
        "plain": art.spec,
        "truncated": replace(art.spec, truncation_psi=0.1),
        "uniform": replace(art.spec, latent_dist="uniform"),
        "range01": replace(art.spec, output_range=(0.0, 1.0)),
    }
    for name, spec in variants.items():
        with create_runner("torch", art.derive(spec=spec), precision="fp32") as ref:
            keys[name] = DriftMeter(
                ref, {"sha256": art.source_sha256, "arch_kwargs": {}}, ex, 8, 0, 4, tmp_path
            ).cache_key()
    with create_runner("torch", art, precision="fp32") as ref:
        keys["other_kwargs"] = DriftMeter(
            ref, {"sha256": art.source_sha256, "arch_kwargs": {"z_dim": 16}}, ex, 8, 0, 4, tmp_path
        ).cache_key()
        keys["other_seed"] = DriftMeter(
            ref, {"sha256": art.source_sha256, "arch_kwargs": {}}, ex, 8, 1, 4, tmp_path
        ).cache_key()
        keys["other_n"] = DriftMeter(
            ref, {"sha256": art.source_sha256, "arch_kwargs": {}}, ex, 9, 0, 4, tmp_path
        ).cache_key()
        same = DriftMeter(
            ref, {"sha256": art.source_sha256, "arch_kwargs": {}}, ex, 8, 0, 16, tmp_path
        ).cache_key()
    assert len(set(keys.values())) == len(keys)
    assert (
        same == keys["plain"]
    )  # the batch size does not change the images, so it is not in the key


def test_garbage_reference_cache_entry_is_recomputed_not_a_crash(
    gen_files, tiny_weights, tmp_path, caplog
) -> None:
    from accelkit.cache import Cache

    art = load_generator(gen_files["torchscript"])
    ex = FeatureExtractor(tiny_weights)
    with create_runner("torch", art, precision="fp32") as ref:
        m = DriftMeter(ref, art.source_sha256, ex, n=16, seed=0, batch_size=8, workdir=tmp_path)
        m.prepare()
        floor = m.noise_floor_fid
        entry = Cache("drift").path_for(m.cache_key(), ".npz")
        assert entry.is_file()
        entry.write_bytes(b"garbage that is no npz")
        again = DriftMeter(ref, art.source_sha256, ex, n=16, seed=0, batch_size=8, workdir=tmp_path)
        with caplog.at_level("WARNING"):
            again.prepare()
        assert again.noise_floor_fid == pytest.approx(floor) and "corrupt" in caplog.text
        m.close()
        again.close()


@pytest.mark.slow
def test_a_session_prepares_the_reference_once_and_gives_the_same_drift(
    gen_files, tiny_weights, tmp_path, monkeypatch
) -> None:
    """optimize checks many builds against one reference: a DriftSession makes the reference's
    images and noise floor once, and each check's numbers equal a fresh measurement's."""
    from accelkit.benchmark.plan import BenchOptions
    from accelkit.benchmark.suite import BenchTarget, run_benchmark
    from accelkit.options import FidSettings
    from accelkit.pipelines.bench import DriftSession, measure_quality

    art = load_generator(gen_files["torchscript"])
    prepared = []
    real_prepare = DriftMeter.prepare

    def counting(self, distribution: bool = False) -> None:
        prepared.append(self.n)
        real_prepare(self, distribution)

    monkeypatch.setattr(DriftMeter, "prepare", counting)

    def check(session, fid_n: int = 8):
        cfg = BenchOptions(
            backends=("torch",), precisions=("bf16",), batch_sizes=(2,), device="cpu",
            out=tmp_path, fid=FidSettings(n=fid_n, weights=str(tiny_weights)),
        )  # fmt: skip
        targets = [BenchTarget("torch", art, {"precision": "bf16"})]
        rep = run_benchmark(targets, (2,), device="cpu", warmup=0, repeats=1, min_time_s=0.0)
        (tmp_path / "artifacts").mkdir(exist_ok=True)
        measure_quality(art, targets, rep, cfg, "cpu", tmp_path, session=session)
        row = next((r for r in rep.rows if r.status == "ok"), None)
        assert row is not None, [(r.status, r.reason) for r in rep.rows]
        return row.fid_drift, row.psnr_db, row.drift_verdict

    fresh = check(None)
    assert prepared == [8]
    session = DriftSession()
    try:
        first, second = check(session), check(session)
        assert prepared == [8, 8], "the second check made the reference again"
        assert first == second == fresh
        check(session, fid_n=10)  # another measurement replaces the kept reference
        assert prepared == [8, 8, 10] and session.meter is not None and session.meter.n == 10
    finally:
        session.close()
    assert session.meter is None
