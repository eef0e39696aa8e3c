"""Report: files written atomically and parseable, schema validation, Markdown content, run_benchmark rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from torch import nn

from accelkit.artifact import Artifact
from accelkit.benchmark import BenchTarget, Report, run_benchmark
from accelkit.benchmark.environment import collect_environment
from accelkit.errors import InputError
from accelkit.spec import GeneratorSpec, InputSpec
from tests.benchmark.fakes import fake_latency as _lat
from tests.benchmark.fakes import runner_info as _info
from tests.benchmark.fakes import sample_report as _sample_report
from tests.fixtures import generators as tg

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_files_written_and_parseable(tmp_path: Path) -> None:
    written = _sample_report().write(tmp_path / "out")
    assert set(written) == {"json", "md", "csv", "png"}
    for p in written.values():
        assert p.is_file() and p.stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "results.csv",
        "results.json",
        "results.md",
        "throughput.png",
    ]  # no temp files left

    data = json.loads(written["json"].read_text())
    assert data["schema_version"] == Report.SCHEMA_VERSION == 3
    assert data["created"] == "2025-01-01T00:00:00+00:00"
    rows = data["rows"]
    assert len(rows) == 7
    required = {
        "backend",
        "precision",
        "batch_size",
        "device",
        "status",
        "reason",
        "images_per_sec",
        "images_per_sec_samples",
        "images_per_sec_spread",
        "latency_ms",
        "peak_memory_mb",
        "model_size_mb",
        "build_seconds",
        "flops_per_image",
        "mfu",
        "runner",
        "speedup_vs_torch_fp32",
    }
    for r in rows:
        assert required <= set(r), required - set(r)
    ort1 = next(
        r for r in rows if r["backend"] == "ort" and r["batch_size"] == 1 and r["status"] == "ok"
    )
    assert ort1["images_per_sec_samples"] == [300.0, 310.0, 290.0, 300.0, 305.0]  # raw, in order
    assert ort1["images_per_sec"] == 300.0
    assert ort1["speedup_vs_torch_fp32"] == pytest.approx(3.0)
    assert set(ort1["latency_ms"]) >= {"p50", "p90", "p99"} and ort1["latency_ms"][
        "p50"
    ] == pytest.approx(3.3)
    assert ort1["images_per_sec_spread"]["iqr"] == pytest.approx(5.0)  # sorted: 290 300 300 305 310
    assert ort1["flops_per_image"] == 1000 and ort1["runner"]["threads"] == 2
    fp16_8 = next(r for r in rows if r["precision"] == "fp16" and r["batch_size"] == 8)
    assert fp16_8["speedup_vs_torch_fp32"] == pytest.approx(
        0.5
    )  # vs torch fp32 at batch 8, not batch 1
    failed = next(r for r in rows if r["status"] == "failed")
    assert (
        failed["images_per_sec"] is None
        and failed["images_per_sec_samples"] == []
        and "NaN" in failed["reason"]
    )

    with Image.open(written["png"]) as img:
        assert img.format == "PNG" and img.size[0] >= 400


def test_markdown_table(tmp_path: Path) -> None:
    md = _sample_report().to_markdown()
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| backend"))
    assert (
        lines[header]
        == "| backend | precision | batch | images/s | p50 ms | p99 ms | vs torch fp32 | status |"
    )
    table = []
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip("|").split("|")])
    # batch 1 rows first (report order within a batch), skipped rows are not in the table
    assert [(r[0], r[1], r[2]) for r in table] == [
        ("torch", "fp32", "1"),
        ("ort", "fp32", "1"),
        ("ort", "fp16", "1"),
        ("torch", "fp32", "8"),
        ("ort", "fp16", "8"),
    ]
    ort1 = table[1]
    assert (
        ort1[3] == "300.0 ± 2.50" and ort1[4] == "3.30" and ort1[6] == "3.00×" and ort1[7] == "ok"
    )
    assert table[0][6] == "1.00×"
    assert table[2][3] == "—" and table[2][7] == "failed"
    assert (
        "## Skipped" in md
        and "- **trt fp16** on cpu (batch 1, 8): TensorRT needs an NVIDIA GPU" in md
    )
    assert "## Failed" in md and "non-finite" in md.split("## Failed")[1]
    assert "Test CPU" in md


def test_csv_columns(tmp_path: Path) -> None:
    rows = list(csv.DictReader(_sample_report().to_csv().splitlines()))
    assert len(rows) == 7
    assert list(rows[0]) == list(Report.CSV_COLUMNS)
    ort1 = next(
        r for r in rows if r["backend"] == "ort" and r["batch_size"] == "1" and r["status"] == "ok"
    )
    assert float(ort1["images_per_sec"]) == 300.0 and float(ort1["speedup_vs_torch_fp32"]) == 3.0
    assert ort1["images_per_sec_samples"] == "300;310;290;300;305" and ort1["repeats"] == "5"
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 2 and all(r["images_per_sec"] == "" and r["reason"] for r in skipped)


def test_load_roundtrip(tmp_path: Path) -> None:
    rep = _sample_report()
    rep.write(tmp_path)
    back = Report.load(tmp_path / "results.json")
    assert back.to_dict() == json.loads((tmp_path / "results.json").read_text())
    assert Report.load(tmp_path).created == rep.created  # a folder works too
    assert [r.status for r in back.rows] == [r.status for r in rep.rows]


def _write(tmp_path: Path, data: Any) -> Path:
    p = tmp_path / "results.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def _valid() -> dict[str, Any]:
    return json.loads(_sample_report().to_json())


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(schema_version=4), "schema_version 4, this accelkit reads 1, 2, 3"),
        (lambda d: d.update(schema_version="1"), "schema_version '1'"),
        (lambda d: d.pop("schema_version"), "no schema_version"),
        (lambda d: d.update(rows={}), "'rows' is missing or not a list"),
        (lambda d: d.pop("environment"), "'environment'"),
        (lambda d: d["rows"][0].pop("backend"), r"rows\[0\]: field 'backend'"),
        (lambda d: d["rows"][0].update(batch_size=0), "batch_size 0"),
        (lambda d: d["rows"][0].update(status="great"), "status 'great'"),
        (lambda d: d["rows"][0].update(images_per_sec_samples=[]), "needs images_per_sec"),
        (lambda d: d["rows"][0].update(images_per_sec_samples="1,2"), "list of numbers"),
        (lambda d: d["rows"][-1].update(reason=None), "needs a reason"),
    ],
)
def test_schema_validation_errors(tmp_path: Path, mutate: Any, match: str) -> None:
    data = _valid()
    mutate(data)
    with pytest.raises(InputError, match=match) as exc:
        Report.load(_write(tmp_path, data))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "match"), [("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object")]
)
def test_malformed_json(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Report.load(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        Report.load(tmp_path / "nope.json")


def test_unknown_row_fields_are_kept(tmp_path: Path) -> None:
    data = _valid()
    data["rows"][0]["future_field"] = 42
    back = Report.load(_write(tmp_path, data))
    assert back.rows[0].extra["future_field"] == 42


def test_non_finite_numbers_become_null() -> None:
    rep = Report(environment={}, created="x")
    rep.add_result(_info("torch", "fp32"), _lat(1, [1.0, 2.0, 3.0]), mfu=float("nan"))
    data = json.loads(rep.to_json())
    assert data["rows"][0]["mfu"] is None


def test_artifact_provenance_from_sidecar(tmp_path: Path) -> None:
    art, _ = tg.onnx_artifact("uncond", tmp_path)
    art.passes = [
        {"name": "OnnxFromTorch", "options": {"opset": 18}, "seconds": 1.5},
        {"name": "Fp16", "options": {}, "seconds": 0.5},
    ]
    art.save_sidecar()
    art.passes = []  # the sidecar, not the in-memory list, is the record
    rep = Report(environment={}, created="x")
    ident = rep.add_artifact(art)
    assert rep.add_artifact(art) == ident and len(rep.artifacts) == 1
    rec = rep.artifacts[0]
    from accelkit.files import sha256_file

    assert art.path is not None
    assert rec["path"] == str(art.path) and rec["sha256"] == sha256_file(art.path)
    assert [p["name"] for p in rec["passes"]] == ["OnnxFromTorch", "Fp16"] and rec[
        "build_seconds"
    ] == pytest.approx(2.0)
    assert rec["precision"] == "fp32" and rec["size_mb"] > 0


# --------------------------------------------------------------------- run_benchmark
class _NaNGen(nn.Module):
    def forward(self, z: Any) -> Any:
        return (z[:, :1, None, None] * float("nan")).expand(-1, 3, 4, 4)


@pytest.mark.slow
def test_run_benchmark_rows(tmp_path: Path) -> None:
    torch_art = tg.torch_artifact("uncond")
    onnx_art, _ = tg.onnx_artifact("uncond", tmp_path)
    nan_spec = GeneratorSpec(inputs=(InputSpec("z", "latent", (4,)),), output_shape=(3, 4, 4))
    nan_art = Artifact(format="torch", spec=nan_spec, module=_NaNGen().eval(), source="nan")
    one = {"threads": 1}  # the same thread policy for both (an earlier test may change torch's)
    targets = [
        BenchTarget("torch", torch_art, options=one),
        BenchTarget("ort", onnx_art, options=one),
        BenchTarget(
            "torch", torch_art, options={"precision": "fp16"}
        ),  # CPU: skipped with a reason
        BenchTarget("torch", nan_art, variant="nan"),  # NaN output: failed, never a number
        BenchTarget(
            "trt", None, precision="fp16", skip_reason="no engine: TensorRT is not installed"
        ),
    ]
    messages: list[str] = []
    rep = run_benchmark(
        targets,
        (1, 2),
        warmup=1,
        repeats=2,
        min_time_s=0.01,
        flops_model=onnx_art.path,
        progress=messages.append,
    )
    assert messages and all(isinstance(m, str) for m in messages)
    rows = {(r.label, r.precision, r.batch_size): r for r in rep.rows}
    assert len(rep.rows) == 10
    for b in (1, 2):
        t = rows[("torch", "fp32", b)]
        o = rows[("ort", "fp32", b)]
        assert t.status == o.status == "ok"
        assert o.images_per_sec is not None and t.images_per_sec is not None
        assert len(o.images_per_sec_samples) == 2 and o.images_per_sec > 0
        assert (
            t.flops_per_image == o.flops_per_image == 2 * 43_008
        )  # torch counted from flops_model
        assert t.mfu is None  # CPU
        if (
            t.unstable or o.unstable
        ):  # a loaded machine: no speed-up from a number that does not hold
            assert o.speedup_vs_torch_fp32 is None and (o.unstable_reason or t.unstable_reason)
        else:
            assert t.speedup_vs_torch_fp32 == 1.0 and o.speedup_vs_torch_fp32 == pytest.approx(
                o.images_per_sec / t.images_per_sec
            )
        assert o.model_size_mb and o.model_size_mb > 0 and t.model_size_mb and t.model_size_mb > 0
        assert o.build_seconds == pytest.approx(0.1)  # from the artifact's pass records
        assert o.runner["provider"] == "cpu"
        fp16 = rows[("torch", "fp16", b)]
        assert fp16.status == "skipped" and "CUDA" in (fp16.reason or "")
        nan = rows[("torch:nan", "fp32", b)]
        assert (
            nan.status == "failed"
            and "non-finite" in (nan.reason or "")
            and nan.images_per_sec is None
        )
        trt = rows[("trt", "fp16", b)]
        assert trt.status == "skipped" and trt.reason == "no engine: TensorRT is not installed"
    assert rep.settings["repeats"] == 2 and rep.settings["batch_sizes"] == [1, 2]
    written = rep.write(tmp_path / "report")
    assert Report.load(written["json"]).rows[0].backend == "torch"


def test_schema_doc_lists_every_field(tmp_path: Path) -> None:
    """docs/results-schema.md documents every field results.json can hold."""
    import re
    from dataclasses import fields

    from accelkit.benchmark.report import BenchRow

    doc = (Path(__file__).resolve().parents[2] / "docs" / "results-schema.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9.]+)` \|", doc, flags=re.M))
    data = _valid()
    data["environment"] = collect_environment()
    rep = Report(environment=data["environment"], created="x")
    art, _ = tg.onnx_artifact("uncond", tmp_path)
    rep.add_artifact(art)
    wanted = set(data) | {f.name for f in fields(BenchRow)} | set(rep.artifacts[0])
    wanted |= {k for k, v in data["environment"].items() if not isinstance(v, dict) or k != "cpu"}
    wanted |= {f"cpu.{k}" for k in data["environment"]["cpu"]}
    missing = sorted(wanted - documented)
    assert not missing, f"document these results.json fields in docs/results-schema.md: {missing}"


def test_version_2_quality_rows_load_with_their_old_verdict_as_legacy(tmp_path: Path) -> None:
    """Schema 3 changed drift_verdict's meaning; a version-2 file's 'within floor' is its legacy_verdict."""
    from accelkit.quality.verdict import quality_gate

    data = _valid()
    data["schema_version"] = 2
    data["rows"][0].update(fid_drift=2.7, noise_floor_fid=24.8, drift_verdict="within floor")
    data["rows"][1].update(fid_drift=0.0, noise_floor_fid=24.8, drift_verdict="reference")
    rep = Report.load(_write(tmp_path, data))
    old, ref = rep.rows[0], rep.rows[1]
    assert old.legacy_verdict == "within floor" and old.drift_verdict is None
    assert ref.drift_verdict == "reference"
    gate = quality_gate(old)
    assert gate.state == "unreliable" and "schema < 3" in gate.reason


def test_quality_section_shows_both_tests_and_the_csv_columns(tmp_path: Path) -> None:
    """results.md: verdict, test, interval in dB (paired) or KID x1e3 (distribution), what N resolves."""
    import numpy as np

    from accelkit.quality.verdict import (
        DistributionEvidence,
        PairedEvidence,
        VerdictSettings,
        distribution_test,
        paired_test,
    )

    rng = np.random.default_rng(0)
    s = VerdictSettings(resamples=200)
    ev = PairedEvidence(np.full(100, 4e-4), 2.0)  # 40 dB on every image
    pv = paired_test(ev, s)
    a, b = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
    dv = distribution_test(
        DistributionEvidence(a, b, b + 1.0), VerdictSettings(resamples=200, distribution_margin=0.0)
    )
    rep = _sample_report()
    for row, v in ((rep.rows[2], pv), (rep.rows[3], dv)):
        row.fid_drift, row.noise_floor_fid = 1.0, 20.0
        row.drift_verdict, row.drift_test, row.drift_reason = v.decision, v.test, v.reason
        row.drift_interval, row.min_detectable_effect = list(v.interval), v.mde
        row.drift_detail, row.legacy_verdict = v.to_dict(), "within floor"
    md = Report.from_dict(json.loads(rep.to_json())).to_markdown()
    assert "## Quality vs FP32 torch" in md
    line = next(x for x in md.splitlines() if x.startswith("| ort | fp32 | accepted | paired |"))
    assert (
        "40.0 dB" in line
        and "accepts > 3" in line
        and "within floor" in line
        and "diff_ort_fp32.png" in line
    )
    dline = next(
        x for x in md.splitlines() if x.startswith("| ort | fp16 | rejected | distribution |")
    )
    assert "KID Δ×1e3" in dline and "MDE ×1e3" in dline
    assert f"- ort fp32: {pv.reason}" in md
    rows = list(csv.DictReader(rep.to_csv().splitlines()))
    ort = next(r for r in rows if r["backend"] == "ort" and r["precision"] == "fp32")
    assert ort["drift_test"] == "paired" and float(ort["drift_interval_high"]) >= float(
        ort["drift_interval_low"]
    )
