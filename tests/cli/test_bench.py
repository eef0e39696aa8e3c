"""`accelkit bench` end to end on a tiny generator: report files, skipped rows, exit codes."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from accelkit.cli import app

runner = CliRunner()
FAST = ["--batch", "1,2", "--repeats", "3", "--warmup", "1", "--min-time", "0.05"]


@pytest.mark.slow
def test_bench_writes_all_reports_with_torch_and_ort_rows(gen_files, tmp_path) -> None:
    out = tmp_path / "res"
    res = runner.invoke(app, ["bench", str(gen_files["torchscript"]), "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    for name in ("results.json", "results.md", "results.csv", "throughput.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    assert data["schema_version"] == 3
    ok = {
        (r["backend"], r["precision"], r["batch_size"]) for r in data["rows"] if r["status"] == "ok"
    }
    assert {
        ("torch", "fp32", 1),
        ("torch", "fp32", 2),
        ("ort", "fp32", 1),
        ("ort", "fp16", 2),
    } <= ok
    for r in data["rows"]:
        if r["status"] == "ok":
            assert r["images_per_sec"] > 0 and len(r["images_per_sec_samples"]) == 3
            assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
    skipped = {
        (r["backend"], r["precision"]): r["reason"]
        for r in data["rows"]
        if r["status"] == "skipped"
    }
    assert "TensorRT" in skipped[("trt", "fp32")] and "CUDA" in skipped[("torch", "fp16")]
    torch_rows = [
        r
        for r in data["rows"]
        if r["backend"] == "torch" and r["precision"] == "fp32" and r["status"] == "ok"
    ]
    assert all(
        r["speedup_vs_torch_fp32"] == pytest.approx(1.0) for r in torch_rows if not r["unstable"]
    )
    assert all(
        r["speedup_vs_torch_fp32"] is None
        for r in data["rows"]
        if r["status"] == "ok" and r["unstable"]
    )
    md = (out / "results.md").read_text()
    assert "| torch | fp32 | 1 |" in md and "| ort | fp16 |" in md and "Skipped" in md
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(data["rows"])
    assert (out / "artifacts" / "latent.fp16.onnx").is_file()
    assert "| ort | fp32 |" in res.stdout


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--backend", "trt"], "available here: torch, ort"),
        (["--backend", "ort", "--device", "cuda"], "--device cuda: no CUDA GPU"),
        (["--backend", "tpu"], "--backend tpu is unknown"),
        (["--precision", "int4"], "--precision 'int4' is unknown"),
        (["--fid", "99999999999"], "--fid 99999999999 is out of range"),
        (["--threads", "99999"], "--threads 99999 is out of range"),
        (["--fid", "8", "--fid-weights", "/etc/hostname"], "is not a model file"),
        (["--fid-weights", "/nonexistent/w.pt"], "does not exist"),
        (["--warmup", "-1"], "--warmup -1 is out of range"),
        (["--min-time", "nan"], "--min-time nan is not a finite number"),
        (["--truncation", "1e300"], "--truncation 1e+300 is out of range"),
        (["--batch", "0"], "--batch needs positive integers"),
        (["--batch", "one"], "not a comma-separated list of integers"),
        (["--repeats", "1"], "too few"),
    ],
)
def test_bench_user_errors_exit_2_before_any_work(tmp_path, args, pattern) -> None:
    res = runner.invoke(app, ["bench", "--out", str(tmp_path / "r"), *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and pattern in lines[0], res.stderr
    assert not (tmp_path / "r").exists()


VS_FAST = [
    "--backend",
    "ort",
    "--precision",
    "fp32",
    "--batch",
    "1",
    "--repeats",
    "4",
    "--warmup",
    "1",
    "--min-time",
    "0.05",
]


def _onnx(tmp_path, name: str, ngf: int):
    """A LatentGen (z 16 -> 3x16x16) with ``ngf`` base channels as fp32 ONNX; ngf 64 costs ~60x the MACs of ngf 8."""
    import torch

    from accelkit.loading import load_generator
    from accelkit.pipelines import export_onnx
    from accelkit.pipelines.options import ExportOptions
    from tests.fixtures.generators import LatentGen

    torch.manual_seed(0)
    ts = tmp_path / f"{name}.ts.pt"
    torch.jit.save(torch.jit.script(LatentGen(ngf=ngf).eval()), str(ts))
    return export_onnx(
        load_generator(ts), ExportOptions(out=tmp_path / f"{name}.onnx")
    ).artifact.path


@pytest.mark.slow
def test_bench_vs_interleaves_both_builds_and_passes_the_same_build(tmp_path) -> None:
    a, b = _onnx(tmp_path, "a", 8), _onnx(tmp_path, "b", 8)
    out = tmp_path / "vs"
    # same model on both sides and a 90% allowance: nothing a shared machine does can make this a regression
    res = runner.invoke(
        app, ["bench", str(a), "--vs", str(b), *VS_FAST, "--max-slowdown", "90%", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    cand = json.loads((out / "results.json").read_text())
    base = json.loads((out / "vs-baseline" / "results.json").read_text())
    for rep in (cand, base):
        (row,) = [r for r in rep["rows"] if r["status"] == "ok"]
        assert len(row["images_per_sec_samples"]) == 4  # one sample per interleaved round
        assert rep["settings"]["interleaved_rounds"] == 4
    assert (
        cand["settings"]["interleaved_run"] == base["settings"]["interleaved_run"]
    )  # compare knows they are one run
    md = (out / "comparison.md").read_text()
    assert "ort fp32" in md and "✅ pass" in md
    assert res.stdout.strip().splitlines()[-2] == "PASS: 1 pass"


@pytest.mark.slow
def test_bench_vs_catches_a_clearly_slower_candidate(tmp_path) -> None:
    slow, fast = _onnx(tmp_path, "slow", 64), _onnx(tmp_path, "fast", 8)
    out = tmp_path / "vs"
    res = runner.invoke(
        app,
        [
            "bench",
            str(slow),
            "--vs",
            str(fast),
            *VS_FAST,
            "--max-slowdown",
            "50%",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 1, res.output
    assert (
        "FAIL: 1 regression" in res.stdout and "regression: ort fp32 batch 1 on cpu" in res.stdout
    )
    assert "❌ regression" in (out / "comparison.md").read_text()


def test_bench_vs_with_no_comparable_rows_fails_closed(tmp_path) -> None:
    a, b = _onnx(tmp_path, "a", 8), _onnx(tmp_path, "b", 8)
    out = tmp_path / "vs"
    # torch rows need the torch model: both sides are skipped, nothing is measured
    res = runner.invoke(
        app,
        ["bench", str(a), "--vs", str(b), "--backend", "torch", *VS_FAST[2:], "--out", str(out)],
    )
    assert res.exit_code == 3, res.output  # the gate cannot tell
    last = [ln for ln in res.stdout.splitlines() if ln.startswith(("PASS", "FAIL", "UNRELIABLE"))]
    assert (
        last
        and last[-1].startswith("UNRELIABLE (exit 3): ")
        and "nothing compared: the current report measured nothing" in last[-1]
    )
    assert "torch rows need the torch model" in last[-1]


@pytest.mark.slow
def test_bench_vs_allow_unreliable_accepts_what_cannot_tell(tmp_path, monkeypatch) -> None:
    """Rounds too noisy to resolve 5 %: the gate cannot tell (exit 3), and --allow-unreliable
    accepts that (exit 0, said loudly) where the rows were compared. The interleaved
    measurement is replaced by its result on a noisy machine (everything else is real)."""
    from accelkit.benchmark.report import BenchRow, Report
    from accelkit.gate import interleave

    def noisy(pairs, batch_sizes, **kw):  # type: ignore[no-untyped-def]
        reps = []
        for samples in ([100.0, 82.0, 118.0, 87.0], [100.0, 118.0, 82.0, 110.0]):
            rep = Report()
            rep.add_row(
                BenchRow(
                    "ort", "fp32", 1, "cpu", images_per_sec=100.0, images_per_sec_samples=samples
                )
            )
            reps.append(rep)
        return reps[0], reps[1]

    monkeypatch.setattr(interleave, "measure_interleaved", noisy)
    a, b = _onnx(tmp_path, "a", 8), _onnx(tmp_path, "b", 8)
    base = ["bench", str(a), "--vs", str(b), *VS_FAST]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "strict")])
    assert res.exit_code == 3, res.output
    res = runner.invoke(app, [*base, "--allow-unreliable", "--out", str(tmp_path / "lenient")])
    assert res.exit_code == 0, res.output
    assert "UNRELIABLE" in res.stdout and "allow-unreliable" in res.stdout


def test_allow_unreliable_needs_vs(tmp_path) -> None:
    res = runner.invoke(app, ["bench", "dcgan", "--allow-unreliable", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "--allow-unreliable only matters with --vs" in res.output
