"""One builder makes every derived artifact (issue 18, item 2): one recipe, cached by what shapes it.

The file ``optimize`` chooses is the file ``bench`` and ``export`` make of the same
generator, byte for byte; the recipe is recorded in the sidecar; a reused file is verified;
a custom calibration-data provider replaces the seeded prior.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import accelkit as ak
from accelkit.artifact import read_sidecar
from accelkit.loading import load_generator
from accelkit.options import BuildRecipe, Int8Settings
from accelkit.passes.build import Builder, BuildFailed, sources
from accelkit.sampler import LatentSampler
from tests.fixtures.generators import LatentGen, make
from tests.fixtures.timing import fake_timing

FAST = ak.Timing(warmup=1, repeats=3, min_time_s=0.02)


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    p = tmp_path_factory.mktemp("build") / "latent.ts.pt"
    torch.jit.save(torch.jit.script(make(LatentGen)), str(p))
    return p


@pytest.mark.slow
def test_optimize_chooses_the_int8_file_bench_and_export_make(
    gen, tiny_weights, tmp_path, monkeypatch
) -> None:
    fake_timing(monkeypatch)
    res = ak.optimize(
        gen,
        ak.OptimizeOptions(
            backends=("ort",),
            precisions=("int8",),
            budget="psnr:5",
            fid=ak.FidSettings(n=24, weights=str(tiny_weights)),
            timing=FAST,
            out=tmp_path / "opt",
        ),
    )
    assert res.outcome.chosen.candidate.id == "ort-int8" and res.chosen_artifact is not None
    monkeypatch.undo()
    bench = ak.bench(
        gen,
        ak.BenchOptions(
            backends=("ort",),
            precisions=("int8",),
            batch_sizes=(1,),
            timing=FAST,
            out=tmp_path / "bench",
            plot=False,
        ),
    )
    assert [r.status for r in bench.report.rows] == ["ok"]
    bench_file = tmp_path / "bench" / "artifacts" / "latent.int8.onnx"
    exported = ak.export_onnx(
        gen, ak.ExportOptions(out=tmp_path / "exp.int8.onnx", precision="int8")
    ).artifact.path
    chosen = Path(res.chosen_artifact).read_bytes()
    assert chosen == bench_file.read_bytes() == Path(exported).read_bytes()
    # the sidecar records the one recipe (the default calibration: 256 samples), keyed the same
    side = read_sidecar(bench_file)
    build = side["meta"]["build"]
    assert build["source"] == "onnx-int8" and build["recipe"]["calib_samples"] == 256
    assert side["meta"]["int8"]["calibration"]["samples"] == 256
    opt_side = read_sidecar(next((tmp_path / "opt" / "artifacts").glob("*.int8.onnx")))
    assert opt_side["meta"]["build"]["key"] == build["key"]
    # the printed reproduce command asks for the same recipe
    assert any("--int8 --calib 256" in c for c in res.commands)


@pytest.mark.slow
def test_builds_are_reused_by_key_and_verified(gen, tmp_path) -> None:
    art = load_generator(gen)
    b = Builder(art, tmp_path)
    fp32 = b.make("onnx-fp32")
    assert b.make("onnx-fp32") is fp32  # in this process
    mtime = fp32.path.stat().st_mtime_ns
    again = Builder(load_generator(gen), tmp_path).make("onnx-fp32")  # another process: from disk
    assert again.path == fp32.path and again.path.stat().st_mtime_ns == mtime
    # another recipe is another build; a file that no longer matches its sidecar is rebuilt
    other = Builder(art, tmp_path / "o", BuildRecipe(onnx=ak.OnnxSettings(opset=17)))
    assert other.key("onnx-fp32") != b.key("onnx-fp32")
    fp32.path.write_bytes(fp32.path.read_bytes() + b"tampered")
    rebuilt = Builder(load_generator(gen), tmp_path).make("onnx-fp32")
    assert rebuilt.path.stat().st_mtime_ns != mtime
    assert json.loads(fp32.path.with_name(fp32.path.name + ".accelkit.json").read_text())[
        "sha256"
    ] == __import__("accelkit.files", fromlist=["x"]).sha256_file(rebuilt.path)


def test_what_cannot_be_made_says_why(gen, tmp_path) -> None:
    art = load_generator(gen)
    fp16 = Builder(art, tmp_path).make("onnx-fp16")
    b = Builder(fp16, tmp_path / "x")
    assert "the ONNX file is fp16" in (b.can_make("onnx-int8") or "")
    with pytest.raises(BuildFailed, match="the ONNX file is fp16"):
        b.make("onnx-fp32")
    assert b.make("onnx-fp16") is fp16  # the file as given
    assert "no builder knows the source" in (b.can_make("onnx-fp8") or "")
    assert set(sources()) >= {"torch", "given", "onnx-fp32", "onnx-fp16", "onnx-int8"}


class TrajectoryInputs:
    """A calibration-data provider: latents from a recorded set (here: a scaled prior), as a
    diffusion denoiser would give inputs collected along sampling trajectories."""

    def __init__(self, spec: Any, scale: float) -> None:
        self.spec, self.scale, self.calls = spec, scale, 0

    def identity(self) -> dict[str, Any]:
        return {"kind": "test trajectories", "scale": self.scale}

    def batches(
        self, n: int, batch_size: int, input_names: Sequence[str]
    ) -> Iterable[dict[str, np.ndarray]]:
        self.calls += 1
        s = LatentSampler(self.spec, seed=7, batch_size=batch_size)
        for feeds in s.batches(n):
            yield {
                k: (v * self.scale).astype(v.dtype) for k, v in feeds.items() if k in input_names
            }


@pytest.mark.slow
def test_a_calibration_provider_replaces_the_prior(gen, tmp_path) -> None:
    art = load_generator(gen)
    recipe = BuildRecipe(int8=Int8Settings(calib=16))
    plain = Builder(art, tmp_path / "a", recipe).make("onnx-int8")
    provider = TrajectoryInputs(art.spec, scale=3.0)
    custom = Builder(art, tmp_path / "b", recipe, calibration=provider).make("onnx-int8")
    assert provider.calls >= 1
    assert custom.path.read_bytes() != plain.path.read_bytes()  # other ranges, other scales
    side = read_sidecar(custom.path)
    assert side["meta"]["build"]["calibration"] == provider.identity()
    assert side["meta"]["int8"]["calibration"]["provider"] == provider.identity()
    assert Builder(art, tmp_path / "b", recipe, calibration=provider).key("onnx-int8") != Builder(
        art, tmp_path / "a", recipe
    ).key("onnx-int8")
