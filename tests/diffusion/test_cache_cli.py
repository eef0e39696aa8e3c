"""``--cache`` through the real CLI: bench rows and export files of a cached sampler on
torch and the ONNX backends (partial graphs exported and verified), ``auto`` calibration
recorded, FBCache on a DiT, and one-line errors for a cache that does not apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.diffusion.test_cli import QUICK, _accelkit
from tests.e2e.conftest import cli, error_line


def _rows(out: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    data = json.loads((out / "results.json").read_text())
    return data["settings"], data["rows"]


def test_a_cache_that_does_not_fit_the_denoiser_is_one_line(
    class_ddpm_folder: Path, tmp_path: Path
) -> None:
    res = cli("bench", class_ddpm_folder, "--cache", "fbcache:0.1", "--out", tmp_path, code=2)
    assert "First-Block-Cache needs a DiT" in error_line(res)
    res = cli("bench", class_ddpm_folder, "--cache", "deepcache:0", "--out", tmp_path, code=2)
    assert "N (steps between full passes) and DEPTH must be >= 1" in error_line(res)
    res = cli("bench", class_ddpm_folder, "--cache", "auto:3", "--out", tmp_path, code=2)
    assert "is not a cache setting" in error_line(res)


@pytest.mark.slow
def test_bench_deepcache_rows_on_torch_and_onnx_backends(ddpm_folder: Path, tmp_path: Path) -> None:
    """Every row records the canonical cache; the ONNX rows run the exported, verified
    partial graphs; int8 is skipped with the reason; the reference row is uncached."""
    out = tmp_path / "r"
    res = _accelkit(
        "bench", ddpm_folder, *QUICK, "--backend", "torch,ort", "--precision", "fp32,int8",
        "--steps", "4", "--scheduler", "ddim", "--cache", "deepcache:2", "--out", out,
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr + res.stdout
    settings, rows = _rows(out)
    ok = {(r["backend"], r["variant"]): r for r in rows if r["status"] == "ok"}
    assert ok[("torch", "reference")]["cache"] == "none"
    for key in (("torch", None), ("ort", None)):
        r = ok[key]
        assert (r["cache"], r["steps"], r["scheduler"]) == ("deepcache:2:1", 4, "ddim")
        assert r["runner"]["cache"] == "deepcache:2:1"
        # 4 steps at N=2: full passes at steps 0 and 2, the shallow branch at 1 and 3
        assert r["runner"]["cache_detail"]["stats"]["full_fraction"] == pytest.approx(0.5)
    parts = sorted(p.name for p in (out / "artifacts").rglob("denoiser_*.onnx"))
    assert parts == ["denoiser_full.onnx", "denoiser_shallow.onnx"]
    side = json.loads(
        next((out / "artifacts").rglob("denoiser_full.onnx.accelkit.json")).read_text()
    )
    check = side["meta"]["diffusion_cache"]["sample_verification"]
    assert check["max_abs_err"] <= check["tolerance"]
    skipped = [r for r in rows if r["backend"] == "ort" and r["precision"] == "int8"]
    assert skipped and "export as fp32 or fp16 only" in str(skipped[0]["reason"])
    assert settings["diffusion"]["sampler"]["cache"] == "deepcache:2:1"


@pytest.mark.slow
def test_export_with_a_cache_writes_verified_partial_graphs(
    ddpm_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "onnx"
    res = _accelkit("export", ddpm_folder, "--cache", "deepcache:2", "-o", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    manifest = json.loads((out / "pipeline.accelkit.json").read_text())
    assert manifest["cache"] == "deepcache:2:1"
    files = manifest["cache_parts"]["files"]
    assert files == {"full": "denoiser_full.onnx", "shallow": "denoiser_shallow.onnx"}
    assert all((out / f).is_file() for f in files.values())
    res = _accelkit("export", ddpm_folder, "--cache", "deepcache:2", "--int8", "-o", tmp_path / "q",
                    cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "export as fp32 or fp16 only" in res.stderr


@pytest.mark.slow
def test_fbcache_row_on_a_dit_and_auto_records_its_calibration(
    dit_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "dit"
    res = _accelkit(
        "bench", dit_folder, *QUICK, "--backend", "torch", "--precision", "fp32",
        "--steps", "4", "--cache", "fbcache:0.1", "--out", out, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr + res.stdout
    _, rows = _rows(out)
    row = next(r for r in rows if r["status"] == "ok" and r["variant"] is None)
    assert row["cache"] == "fbcache:0.1" and row["runner"]["cache"] == "fbcache:0.1"

    out = tmp_path / "auto"
    res = _accelkit(
        "bench", dit_folder, *QUICK, "--backend", "torch", "--precision", "fp32",
        "--steps", "4", "--cache", "auto", "--out", out, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr + res.stdout
    settings, rows = _rows(out)
    cal = settings["diffusion"]["cache_calibration"]
    assert (
        cal["auto"] is True
        and cal["trials"]
        and cal["chosen"] in [t["cache"] for t in cal["trials"]] + ["none"]
    )
    row = next(r for r in rows if r["status"] == "ok" and r["variant"] is None)
    assert row["cache"] == cal["chosen"]
