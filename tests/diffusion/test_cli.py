"""Diffusion pipelines through the real CLI: info -> export -> bench for each folder layout
(tiny, random weights, saved by diffusers' own ``save_pretrained``), with no loading flags."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import cli, error_line

ROOT = Path(__file__).resolve().parents[2]
#: Timing flags that keep a bench row short (they shape timing only, not the sampler).
QUICK = ["--batch", "1", "--repeats", "3", "--warmup", "0", "--min-time", "0.01", "--threads", "1"]


def _accelkit(*args: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "accelkit", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _run(subprocess_: bool, *args: Any, cwd: Path) -> tuple[int, str]:
    """``accelkit ARGS``: in a subprocess (the installed entry point) or in-process; (exit code, output)."""
    if subprocess_:
        res = _accelkit(*args, cwd=cwd)
        return res.returncode, res.stdout + res.stderr
    got = cli(*args)
    return got.exit_code, got.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layout", "kind", "components", "subprocess_"),
    [
        # one layout through a real subprocess (the entry point, a fresh interpreter); the
        # others in-process (same commands, without 3 interpreter starts each)
        ("ddpm_folder", "pixel", ["denoiser"], True),
        ("dit_folder", "class-dit", ["denoiser", "decoder"], False),
        ("sd_folder", "latent-text", ["denoiser", "decoder"], False),
    ],
)
def test_info_export_bench_through_the_cli(
    layout: str,
    kind: str,
    components: list[str],
    subprocess_: bool,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder: Path = request.getfixturevalue(layout)
    monkeypatch.chdir(tmp_path)
    code, output = _run(subprocess_, "info", folder, "--json", cwd=tmp_path)
    assert code == 0, output
    desc, _ = json.JSONDecoder().raw_decode(output[output.index("{") :])
    assert desc["format"] == "diffusion" and desc["kind"] == kind
    assert [c["name"] for c in desc["components"]] == components
    assert desc["flops_per_step"] and desc["flops_per_image"] >= desc["flops_per_step"]
    assert desc["sampler"]["steps"] >= 1 and desc["reference_sampler"] == desc["sampler"]

    code, output = _run(subprocess_, "export", folder, "-o", tmp_path / "onnx", cwd=tmp_path)
    assert code == 0, output
    den = tmp_path / "onnx" / "denoiser.onnx"
    side = json.loads((tmp_path / "onnx" / "denoiser.onnx.accelkit.json").read_text())
    rec = side["meta"]["diffusion"]
    assert rec["component"] == "denoiser" and rec["sampler"]["cache"] == "none"
    assert rec["component_precisions"]["denoiser"] == "fp32"
    assert rec["sample_verification"]["max_abs_err"] <= rec["sample_verification"]["tolerance"]
    if "decoder" in components:
        assert (tmp_path / "onnx" / "vae_decoder.onnx").is_file()
        assert rec["component_precisions"]["decoder"] == "fp32"

    # the exported denoiser knows its pipeline: bench runs the whole sampler with no flags
    code, output = _run(
        subprocess_, "bench", den, *QUICK, "--backend", "ort", "--out", tmp_path / "r", cwd=tmp_path
    )
    assert code == 0, output
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["backend"] == "ort" for r in ok)
    assert (
        ok[0]["steps"] == rec["sampler"]["steps"]
        and ok[0]["scheduler"] == rec["sampler"]["scheduler"]
    )
    assert ok[0]["ms_per_step"] > 0 and ok[0]["cache"] == "none"
    comps = ok[0]["runner"]["component_precisions"]
    assert comps["denoiser"] == "fp32"
    if "decoder" in components:
        assert ok[0]["runner"]["components"]["decoder"]["backend"] == "ort"


@pytest.mark.slow
def test_bench_a_folder_rows_carry_the_sampler_and_the_reference(
    class_ddpm_folder: Path, tmp_path: Path
) -> None:
    """A sampler other than the reference gets a torch fp32 reference row measured in the
    same run; every row has steps, scheduler, cache, ms per step, time shares."""
    out = tmp_path / "r"
    cli(
        "bench", class_ddpm_folder, *QUICK, "--backend", "torch,ort", "--precision", "fp32",
        "--steps", "3", "--scheduler", "euler", "--out", out,
    )  # fmt: skip
    data = json.loads((out / "results.json").read_text())
    rows = {(r["backend"], r["variant"]): r for r in data["rows"] if r["status"] == "ok"}
    ref = rows[("torch", "reference")]
    assert ref["scheduler"] == "ddim" and ref["steps"] == 50  # DDIMPipeline's defaults
    for key in (("torch", None), ("ort", None)):
        r = rows[key]
        assert (r["scheduler"], r["steps"], r["cache"]) == ("euler", 3, "none")
        assert r["ms_per_step"] > 0 and abs(sum(r["time_share"].values()) - 1) < 1e-3
        assert r["speedup_vs_reference"] is not None or r["speedup_vs_reference_withheld"]
    assert data["settings"]["diffusion"]["reference_sampler"]["steps"] == 50
    assert "## Sampler (diffusion)" in (out / "results.md").read_text()
    # results.csv carries the sampler columns too (a CI job reads the CSV)
    lines = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    got = {(r["backend"], r["variant"]): r for r in lines if r["status"] == "ok"}
    assert (got[("ort", "")]["scheduler"], got[("ort", "")]["steps"]) == ("euler", "3")
    assert float(got[("ort", "")]["ms_per_step"]) == pytest.approx(
        rows[("ort", None)]["ms_per_step"], rel=1e-3
    )
    assert got[("torch", "reference")]["steps"] == "50"


def test_one_pass_generators_refuse_the_sampler_flags(tmp_path: Path) -> None:
    res = cli("info", "dcgan", "--steps", "20", code=2)
    assert "--steps apply to diffusion pipelines" in error_line(res)


def test_bad_knobs_are_one_line_errors(class_ddpm_folder: Path, tmp_path: Path) -> None:
    res = cli("bench", class_ddpm_folder, "--scheduler", "heun", "--out", tmp_path, code=2)
    assert "--scheduler 'heun' is unknown" in error_line(res)
    res = cli("bench", class_ddpm_folder, "--cache", "teacache:3", "--out", tmp_path, code=2)
    assert "--cache 'teacache:3' is not a cache setting" in error_line(res)
    res = cli("info", class_ddpm_folder, "--guidance", "0.5", code=2)
    assert "--guidance" in error_line(res)


def test_info_of_a_folder_lists_components_and_sampler(class_ddpm_folder: Path) -> None:
    res = cli("info", class_ddpm_folder, "--steps", "10")
    assert "component denoiser: UNet2DModel" in res.output
    assert "class_labels: label int64" in res.output
    assert "reference sampler (quality and speed-ups): ddim-50" in res.output


def test_a_loading_flag_is_refused_for_a_folder(class_ddpm_folder: Path) -> None:
    res = cli("info", class_ddpm_folder, "--input", "z:8", code=2)
    assert "--input describe one-pass generators" in error_line(res)


@pytest.mark.slow
def test_bench_fid_gives_every_row_drift_against_the_reference_sampler(
    class_ddpm_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    cli(
        "bench", class_ddpm_folder, *QUICK, "--backend", "torch,ort", "--precision", "fp32",
        "--steps", "4", "--scheduler", "ddim", "--fid", "4", "--fid-batch", "4", "--out", out,
    )  # fmt: skip
    data = json.loads((out / "results.json").read_text())
    rows = {(r["backend"], r["variant"]): r for r in data["rows"] if r["status"] == "ok"}
    ref = rows[("torch", "reference")]
    assert ref["psnr_db"] is None or ref["psnr_db"] == float("inf") or ref["max_abs_err"] == 0
    for key in (("torch", None), ("ort", None)):
        r = rows[key]
        assert r["fid_drift"] is not None and r["drift_verdict"]
        assert (
            r["max_abs_err"] > 0
        )  # 4 DDIM steps are not the reference's 50: paired error is informative
        assert r["quality"]["verdict_basis"].startswith("distribution")
    assert "reference sampler" in data["settings"]["fid"]["reference"]
    assert (out / "samples_grid.png").is_file()


@pytest.mark.slow
def test_hostile_folders_through_the_cli_run_no_code(ddpm_folder: Path, tmp_path: Path) -> None:
    """``accelkit bench`` / ``export`` of a folder that names code: exit 2, one line, no marker
    (the working directory holds the payload modules, so an import of them would succeed)."""
    from tests.fixtures.diffusion import write_hostile_folders

    marker = tmp_path / "PWNED"
    folders = write_hostile_folders(tmp_path / "hostile", ddpm_folder, marker)
    for name, folder in folders.items():
        cmd = ("export", folder, "-o", tmp_path / f"x-{name}") if name == "auto_map" else (
            "bench", folder, "--out", tmp_path / f"r-{name}")  # fmt: skip
        res = _accelkit(*cmd, cwd=folder)
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
        assert res.returncode == 2 and len(errors) == 1, (name, res.stderr[-1500:])
        assert "Traceback" not in res.stderr
        assert not (tmp_path / f"r-{name}" / "results.json").exists()
    assert not marker.exists(), "a payload ran"


def test_vs_and_serve_in_bench_say_they_do_not_take_pipelines_yet(
    class_ddpm_folder: Path, tmp_path: Path
) -> None:
    res = cli(
        "bench", class_ddpm_folder, "--vs", class_ddpm_folder, "--out", tmp_path / "v", code=2
    )
    assert "--vs does not pair diffusion pipelines yet" in error_line(res)
    res = cli("bench", class_ddpm_folder, "--serve", "--out", tmp_path / "s", code=2)
    assert "bench --serve does not load-test diffusion pipelines yet" in error_line(res)
