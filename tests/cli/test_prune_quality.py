"""``prune`` says what it did to quality, through the real CLI in a subprocess.

With the defaults (distillation on, the quality check on N seeded latents) on the bundled
generators, ``prune`` prints the paired PSNR and FID drift against the unpruned model with
its noise floor, and a result outside the floor is refused (exit 4, nothing written) unless
``--force``, which writes it with a loud verdict recorded in the sidecar. The tests use the
tiny feature extractor (``--fid-weights``) and a short ``--distill-time`` to stay quick; its
noise floor is far below any pruning drift, so every result here is outside the floor.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from accelkit.errors import EXIT_QUALITY
from accelkit.pipelines.options import PRUNE_CHECK_N, PruneOptions
from accelkit.pipelines.prune import judge_pruned
from accelkit.quality.verdict import PairedEvidence, paired_test
from tests.fixtures.cli import accelkit as run_cli

pytest.importorskip(
    "torch_pruning", reason="torch-pruning is in the dev extra; install accelkit[prune]"
)


def accelkit(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, cache=cwd / "cache", timeout=300)


def test_defaults_distill_and_check_quality() -> None:
    opts = PruneOptions()
    assert opts.distill_steps > 0 and opts.distill_seconds is not None and opts.distill_seconds > 0
    assert opts.fid.n == PRUNE_CHECK_N > 0 and not opts.force


def _drift_at(db: float, n: int) -> SimpleNamespace:
    """A drift whose images all sit at ``db`` dB paired PSNR (peak 2), judged by the paired test."""
    mse = np.full(n, 4.0 / 10 ** (db / 10.0))
    return SimpleNamespace(test_verdict=paired_test(PairedEvidence(mse, 2.0)))


@pytest.mark.parametrize(
    ("db", "n", "accepted", "decision"),
    [
        (50.0, 100, True, "accepted"),
        (20.0, 100, False, "rejected"),
        (50.0, 5, False, "inconclusive"),
    ],
)
def test_judge_pruned_is_the_quality_verdict(
    db: float, n: int, accepted: bool, decision: str
) -> None:
    ok, why = judge_pruned(_drift_at(db, n))
    assert ok is accepted and why.startswith(f"{decision}: ")


@pytest.mark.slow
@pytest.mark.parametrize("gen", ["dcgan", "sr4x"])
def test_prune_with_defaults_prints_its_drift_and_refuses_an_out_of_floor_result(
    gen: str, tiny_weights: Path, tmp_path: Path
) -> None:
    """The verdict follows the printed numbers: outside the floor -> exit 4, nothing written;
    within -> written, the verdict in the sidecar. (dcgan at ratio 0.5 is outside the tiny
    extractor's floor; sr4x, whose output is mostly its bicubic skip, may be within.)"""
    out = tmp_path / "p.pt"
    res = accelkit(
        "prune", gen, "--fid-weights", tiny_weights, "--distill-time", "2", "-o", out, cwd=tmp_path
    )
    assert "Traceback" not in res.stderr, res.stderr
    assert "distilling from the unpruned model: up to 500 steps, at most 2 s" in res.stderr
    if res.returncode == EXIT_QUALITY:
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1, res.stderr
        assert (
            "the quality verdict does not accept the pruned model vs the unpruned model ("
            in errors[0]
        )
        assert f"N={PRUNE_CHECK_N}, paired PSNR " in errors[0] and "--force" in errors[0]
        assert "rejected: " in errors[0] or "inconclusive: " in errors[0]
        assert not out.exists() and not Path(str(out) + ".accelkit.json").exists()
    else:
        assert gen != "dcgan" and res.returncode == 0, res.stderr
        line = next(
            ln for ln in res.stdout.splitlines() if ln.startswith("quality vs the unpruned")
        )
        assert f"N={PRUNE_CHECK_N} seeded latents" in line
        assert "quality verdict: accepted" in res.stdout
        q = json.loads(Path(str(out) + ".accelkit.json").read_text())["meta"]["quality_vs_teacher"]
        assert q["verdict"]["accepted"] is True


@pytest.mark.slow
def test_force_writes_it_with_a_loud_verdict_in_output_and_sidecar(
    tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.pt"
    res = accelkit(
        "prune",
        "dcgan",
        "--fid-weights",
        tiny_weights,
        "--fid",
        "16",
        "--distill-time",
        "1",
        "--force",
        "-o",
        out,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("quality vs the unpruned"))
    assert "N=16 seeded latents, seed 0" in line and "paired PSNR " in line
    assert "WRITTEN WITH --force ALTHOUGH THE QUALITY VERDICT DID NOT ACCEPT IT" in res.stdout
    assert "the quality verdict did not accept it" in res.stderr  # the warning, on stderr too
    q = json.loads(Path(str(out) + ".accelkit.json").read_text())["meta"]["quality_vs_teacher"]
    assert q["verdict"]["accepted"] is False and q["verdict"]["forced"] is True
    assert q["n"] == 16 and q["pruned+distilled"]["psnr_db"] > 0


@pytest.mark.slow
def test_fid_0_skips_the_check_loudly(tmp_path: Path) -> None:
    out = tmp_path / "p.pt"
    res = accelkit("prune", "dcgan", "--fid", "0", "--no-distill", "-o", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "QUALITY NOT MEASURED (--fid 0)" in res.stdout and "not distilled" in res.stdout
    q = json.loads(Path(str(out) + ".accelkit.json").read_text())["meta"]["quality_vs_teacher"]
    assert q["verdict"] is None and q["n"] == 0
