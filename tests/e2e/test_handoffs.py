"""The hand-offs between commands that broke on real generators (issue 11), each through the CLI.

Every test here failed on the code before the fix it names:

* ``.pt2`` programs on the torch backend (``Calling eval() is not supported yet``);
* ``bench`` of an existing fp16 ONNX (no rows; fp16 both measured and skipped; trt fp16 twice);
* image-to-image: a fixed spatial size in ONNX, random inputs instead of real images;
* the output range silently defaulting to [-1, 1];
* prune -> info/bench of a state_dict model (the pruned TorchScript forgot its inputs, and
  the teacher's ``--arch`` did not reach ``--reference``);
* pruning a PixelShuffle SR network (torch-pruning's IndexError, layer not named);
* input inference: TorchScript first layers, and ``--input`` replacing every input.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from tests.e2e.conftest import QUICK, cli, error_line, sidecar
from tests.fixtures.families import PixelShuffleSR, write_sr_torchscript

ARCH = "tests.fixtures.generators:LatentGen"


@pytest.fixture(scope="module")
def sr_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sr_torchscript(tmp_path_factory.mktemp("sr") / "sr.ts.pt")


# ------------------------------------------------------------------------ .pt2 on torch
@pytest.mark.slow
def test_pt2_program_benches_on_torch_with_fid(gen_files, tiny_weights, tmp_path) -> None:
    out = tmp_path / "r"
    res = cli(
        "bench",
        gen_files["pt2"],
        "--input",
        "z:8",
        "--input",
        "label:int:5",
        "--backend",
        "torch,ort",
        "--precision",
        "fp32",
        "--fid",
        8,
        "--fid-weights",
        tiny_weights,
        "--out",
        out,
        *QUICK,
    )
    assert "Calling eval()" not in res.output + res.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    by = {(r["backend"], r["precision"]): r for r in rows}
    assert (
        by[("torch", "fp32")]["status"] == "ok"
        and by[("torch", "fp32")]["drift_verdict"] == "reference"
    )
    assert by[("ort", "fp32")]["status"] == "ok" and by[("ort", "fp32")]["fid_drift"] is not None


# ----------------------------------------------------------------- bench of an fp16 ONNX
@pytest.mark.slow
def test_bench_of_an_fp16_onnx_measures_it_once(gen_files, tmp_path) -> None:
    fp16 = tmp_path / "g.fp16.onnx"
    cli("export", gen_files["torchscript"], "--fp16", "-o", fp16)
    only = cli(
        "bench", fp16, "--precision", "fp16", "--backend", "ort", "--out", tmp_path / "a", *QUICK
    )
    rows = json.loads((tmp_path / "a" / "results.json").read_text())["rows"]
    assert [(r["backend"], r["precision"], r["status"]) for r in rows] == [("ort", "fp16", "ok")], (
        only.output
    )
    cli("bench", fp16, "--out", tmp_path / "b", *QUICK)
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    keys = [(r["backend"], r.get("variant"), r["precision"], r["batch_size"]) for r in rows]
    assert len(keys) == len(set(keys)), f"a row is listed twice: {keys}"
    status = {(r["backend"], r["precision"]): (r["status"], r.get("reason") or "") for r in rows}
    assert status[("ort", "fp16")][0] == "ok"
    assert (
        status[("ort", "fp32")][0] == "skipped"
        and "the ONNX file is fp16" in status[("ort", "fp32")][1]
    )


# ------------------------------------------------------------------- image-to-image
@pytest.mark.slow
def test_sr_export_with_dynamic_hw_runs_at_two_sizes(sr_ts, tmp_path) -> None:
    out = tmp_path / "sr.onnx"
    res = cli("export", sr_ts, "--input", "image:3x16x16", "--dynamic-hw", "-o", out)
    assert "sizes 16x16, 8x8" in res.stdout, res.stdout
    side = sidecar(out)
    assert side["spec"]["hw_range"] == [4, 16, 64] and side["meta"]["verification"]["sizes"] == [
        [16, 16],
        [8, 8],
    ]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ref = torch.jit.load(str(sr_ts))
    for hw in (16, 24):
        x = np.random.default_rng(hw).random((2, 3, hw, hw), dtype=np.float32)
        got = sess.run(None, {"image": x})[0]
        assert got.shape == (2, 3, 4 * hw, 4 * hw)
        with torch.no_grad():
            np.testing.assert_allclose(got, ref(torch.from_numpy(x)).numpy(), atol=1e-4)
    # the next command needs no flags: the spec (with its H/W range) travels in the file
    info = json.loads(cli("info", out, "--json").stdout)
    assert info["spec"]["hw_range"] == [4, 16, 64] and info["spec"]["output_range"] == [0.0, 1.0]


@pytest.mark.slow
def test_bench_images_feed_the_sr_grid_and_fid(sr_ts, images_dir, tiny_weights, tmp_path) -> None:
    out = tmp_path / "r"
    cli(
        "bench",
        sr_ts,
        "--input",
        "image:3x16x16",
        "--images",
        images_dir,
        "--backend",
        "torch,ort",
        "--precision",
        "fp32",
        "--fid",
        8,
        "--fid-weights",
        tiny_weights,
        "--out",
        out,
        *QUICK,
    )
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["images"]["files"] == 16 and settings["images"]["size"] == [3, 16, 16]
    assert settings["fid"]["images"]["sha256"] == settings["images"]["sha256"]
    from PIL import Image

    grid = Image.open(out / "samples_grid.png")
    assert grid.height >= 3 * 64  # input row, reference row, ort row
    # the drift set is the folder's images, not random smooth ones: the grid's input row shows them
    few = cli(
        "bench",
        sr_ts,
        "--input",
        "image:3x16x16",
        "--images",
        images_dir,
        "--fid",
        20,
        "--fid-weights",
        tiny_weights,
        "--out",
        tmp_path / "x",
        *QUICK,
        code=2,
    )
    assert "needs 40 images" in error_line(few)


def test_images_flag_refused_for_a_latent_generator(gen_files, images_dir, tmp_path) -> None:
    res = cli(
        "bench",
        gen_files["torchscript"],
        "--images",
        images_dir,
        "--out",
        tmp_path / "r",
        *QUICK,
        code=2,
    )
    assert "--images is for image-to-image generators" in error_line(res)


# ----------------------------------------------------------------------- output range
def test_output_range_of_an_sr_torchscript_is_inferred_not_defaulted(sr_ts) -> None:
    d = json.loads(cli("info", sr_ts, "--input", "image:3x16x16", "--json").stdout)
    assert d["spec"]["output_range"] == [0.0, 1.0]
    assert "probing" in d["spec"]["inferred"]["output_range"]
    text = cli("info", sr_ts, "--input", "image:3x16x16").stdout
    assert "in [0, 1]" in text and "output_range from probing" in text


def test_an_output_range_that_cannot_be_told_asks_for_the_flag(tmp_path) -> None:
    class Wide(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 3 * 4 * 4)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (self.fc(z) * 40).view(-1, 3, 4, 4)

    torch.manual_seed(0)
    path = tmp_path / "wide.pt"
    torch.jit.save(torch.jit.script(Wide()), str(path))
    res = cli("info", path, code=2)
    assert "--output-range" in error_line(res)
    assert "in [-1, 1]" in cli("info", path, "--output-range", "-1,1").stdout


# ----------------------------------------------------------------------- prune -> bench
@pytest.mark.slow
def test_prune_of_a_state_dict_model_then_bench_needs_no_flags(
    gen_files, tiny_weights, tmp_path
) -> None:
    src = tmp_path / "gen_sd.pt"
    src.write_bytes(gen_files["state_dict"].read_bytes())
    pruned = tmp_path / "gen.pruned.pt"
    res = cli("prune", src, "--arch", ARCH, "--ratio", "0.5", "-o", pruned)
    assert sidecar(pruned)["meta"]["teacher"]["arch"] == ARCH
    info = cli("info", pruned).stdout  # the pruned TorchScript remembers its inputs
    assert "z: latent float32[16]" in info and "stored by accelkit" in info
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("measure it: "))
    argv = shlex.split(line.removeprefix("measure it: accelkit "))
    argv[argv.index("--fid") + 1] = "8"
    out = tmp_path / "r"
    cli(
        *argv,
        "--fid-weights",
        tiny_weights,
        "--backend",
        "torch",
        "--precision",
        "fp32",
        "--out",
        out,
        *QUICK,
    )
    ref = json.loads((out / "results.json").read_text())["settings"]["fid"]["reference"]
    assert ref == src.name


def test_reference_arch_flag_loads_a_weight_only_teacher(gen_files, tiny_weights, tmp_path) -> None:
    out = tmp_path / "r"
    cli(
        "bench",
        gen_files["torchscript"],
        "--fid",
        8,
        "--fid-weights",
        tiny_weights,
        "--reference",
        gen_files["state_dict"],
        "--reference-arch",
        ARCH,
        "--backend",
        "torch",
        "--precision",
        "fp32",
        "--out",
        out,
        *QUICK,
    )
    res = cli(
        "bench",
        gen_files["torchscript"],
        "--fid",
        8,
        "--fid-weights",
        tiny_weights,
        "--reference",
        gen_files["state_dict"],
        "--backend",
        "torch",
        "--precision",
        "fp32",
        "--out",
        tmp_path / "r2",
        *QUICK,
        code=2,
    )
    assert "--arch" in error_line(res)


@pytest.mark.slow
def test_prune_a_pixel_shuffle_sr_network(tmp_path) -> None:
    torch.manual_seed(0)
    sd = tmp_path / "msr.pth"
    torch.save(PixelShuffleSR().state_dict(), str(sd))
    out = tmp_path / "msr.pruned.pt"
    cli(
        "prune",
        sd,
        "--arch",
        "tests.fixtures.families:PixelShuffleSR",
        "--input",
        "image:3x16x16",
        "--ratio",
        "0.5",
        "-o",
        out,
    )
    pruning = next(p for p in sidecar(out)["passes"] if p["name"] == "Prune")
    assert pruning["pixel_shuffle_inputs_kept"] == ["upconv1", "upconv2"]
    assert pruning["params_after"] < 0.8 * pruning["params_before"]
    cli("export", out, "-o", tmp_path / "msr.pruned.onnx")  # and it exports with no flags


# --------------------------------------------------------------------- input inference
def test_torchscript_inputs_from_the_first_layer(tmp_path) -> None:
    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(256, 3 * 8 * 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(x)).view(-1, 3, 8, 8)

    class Conv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.c(t))

    torch.manual_seed(0)
    mlp, conv = tmp_path / "mlp.ts.pt", tmp_path / "conv.ts.pt"
    torch.jit.save(torch.jit.trace(MLP(), torch.randn(2, 256)), str(mlp))
    torch.jit.save(torch.jit.trace(Conv(), torch.rand(2, 3, 8, 8)), str(conv))
    d = json.loads(cli("info", mlp, "--json").stdout)
    assert [(i["kind"], i["shape"]) for i in d["spec"]["inputs"]] == [("latent", [256])]
    d = json.loads(cli("info", conv, "--json").stdout)
    assert [(i["kind"], i["shape"]) for i in d["spec"]["inputs"]] == [("image", [3, 32, 32])]
    assert d["spec"]["output_range"] == [0.0, 1.0]


def test_input_flag_overrides_one_inferred_input(gen_files) -> None:
    d = json.loads(cli("info", gen_files["pt2"], "--input", "label:int:5", "--json").stdout)
    assert [(i["name"], i["shape"], i["num_classes"]) for i in d["spec"]["inputs"]] == [
        ("z", [8], None),
        ("label", [], 5),
    ]
    d = json.loads(
        cli("info", gen_files["pt2"], "--json").stdout
    )  # and the classes come from its embedding table
    assert d["spec"]["inputs"][1]["num_classes"] == 5


# ---------------------------------------------------------------------- flags -> files
def test_dynamic_hw_spec_reaches_tensorrt_profiles(sr_ts, tmp_path) -> None:
    from accelkit.loading import load_generator
    from accelkit.spec import InputSpec
    from accelkit.trt.build import profile_shapes

    art = load_generator(
        sr_ts, inputs=[InputSpec("image", "image", (3, 16, 16))], hw_range=(8, 16, 48)
    )
    shapes = profile_shapes(art.spec, (1, 2, 4))
    assert shapes["image"] == ((1, 3, 8, 8), (2, 3, 16, 16), (4, 3, 48, 48))
    model = onnx.load(str(_export(sr_ts, tmp_path)))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[2], str) and isinstance(dims[3], str), dims


def _export(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "dyn.onnx"
    cli("export", src, "--input", "image:3x16x16", "--hw-range", "8:16:48", "-o", out)
    return out
