"""``accelkit optimize PIPELINE_FOLDER`` end to end on a tiny class-conditional DDPM (a
small space so it runs here): every candidate timed, the ladder, and the printed
reproduce command runs as printed."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from accelkit.autotune import diffusion_search as ds
from tests.diffusion.test_cli import _accelkit
from tests.e2e.conftest import cli, error_line

pytest.importorskip("diffusers", reason="diffusion tests need diffusers (extra [diffusion])")


def test_a_pipeline_search_needs_the_distribution_test_size(
    class_ddpm_folder: Path, tmp_path: Path
) -> None:
    res = cli("optimize", class_ddpm_folder, "--fid", "8", "--out", tmp_path / "o", code=2)
    assert "needs at least 20 images per set" in error_line(res)


@pytest.mark.slow
def test_optimize_a_pipeline_times_everything_and_prints_a_runnable_command(
    class_ddpm_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ds, "STEP_GRID", (10,))
    monkeypatch.setattr(ds, "SCHEDULERS", ("ddim",))
    monkeypatch.setattr(ds, "UNET_CACHES", ("none", "deepcache:3:1"))
    out = tmp_path / "o"
    res = cli(
        "optimize", class_ddpm_folder, "--backend", "torch", "--precision", "fp32", "--fid", "20",
        "--batch", "1", "--threads", "1", "--time-budget", "10m", "--out", out,
    )  # fmt: skip
    rec = json.loads((out / "optimize.json").read_text())
    ids = {c["id"] for c in rec["candidates"]}
    # reference ddim-50 + {ddim-50, ddim-10} x {none, deepcache:3:1} minus the reference itself
    assert ids == {
        "ddim-50 none torch fp32",
        "ddim-50 deepcache:3:1 torch fp32",
        "ddim-10 none torch fp32",
        "ddim-10 deepcache:3:1 torch fp32",
    }
    assert all(c["images_per_sec"] for c in rec["candidates"])
    assert [r["rung"] for r in rec["ladder"]] == [
        "reference", "fewer steps", "+ cache", "+ backend/precision",
    ]  # fmt: skip
    checked = [c for c in rec["candidates"] if c["verdict"] not in (None, "failed")]
    assert checked and all(
        c["verdict"] in ("accepted", "rejected", "inconclusive") for c in checked
    )
    chosen = rec["chosen"]
    assert chosen is not None and (
        chosen["verdict"] == "accepted" or chosen["id"].startswith("ddim-50 none")
    )
    assert "ladder:" in res.output and rec["commands"][0] in res.output
    assert (out / "optimize.md").is_file() and (out / "pareto.png").is_file()
    # what held back a faster build: only refused builds faster than the chosen one
    assert "## What held back a faster build" in (out / "optimize.md").read_text()
    for f in rec["held_back"]:
        assert f["lever"] in ("steps/scheduler", "cache", "backend/precision")
        assert f["verdict"] != "accepted" and f["images_per_sec"] > chosen["images_per_sec"]
        assert f["build"] in res.output

    argv = shlex.split(rec["commands"][0])
    assert argv[:2] == ["accelkit", "bench"]
    run = _accelkit(*argv[1:], "--out", tmp_path / "re", "--repeats", "3", "--min-time", "0.01",
                    cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    rows = json.loads((tmp_path / "re" / "results.json").read_text())["rows"]
    row = next(r for r in rows if r["status"] == "ok" and r["variant"] != "reference")
    assert (row["scheduler"], row["steps"], row["cache"]) == (
        chosen["scheduler"], chosen["steps"], chosen["cache"],
    )  # fmt: skip
