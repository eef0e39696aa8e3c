"""INT8 sensitivity report: one layer group quantized at a time, ranked, and auto-exclusion."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from accelkit.artifact import Artifact
from accelkit.errors import InputError
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.int8 import Int8
from accelkit.passes.sensitivity import (
    ALL_GROUPS,
    AutoExclusion,
    GroupSensitivity,
    SensitivityReport,
    auto_exclude,
    format_report,
    layer_groups,
    sensitivity,
)
from accelkit.passes.verify import ort_session, paired_error
from accelkit.sampler import LatentSampler

FAST = {"calib_samples": 8, "n_eval": 8}


class Outlier(nn.Module):
    """z (N, 16) -> image (N, 3, 8, 8) in [-1, 1], where one layer's *input* has a huge outlier.

    A constant shift (an elementwise Add, never quantized) puts 400 on channel 0 after
    ``head``, so ``head``'s own input, weights and output stay ordinary. ``body`` reads that
    channel with zero weight, so in fp32 it changes nothing, but a symmetric per-tensor
    int8 scale for ``body``'s input spans 400 and rounds every ordinary activation (~1)
    to zero. ``body`` is the sensitive layer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 16
        self.head = nn.Linear(16, 32)
        self.body = nn.Linear(32, 3 * 8 * 8)
        self.tail = nn.Conv2d(3, 3, 3, padding=1)
        shift = torch.zeros(32)
        shift[0] = 400.0
        self.register_buffer("shift", shift)
        with torch.no_grad():
            self.body.weight[:, 0] = 0.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.head(z)) + self.shift
        return torch.tanh(self.tail(self.body(h).view(-1, 3, 8, 8)))


@pytest.fixture(scope="module")
def outlier(tmp_path_factory) -> Artifact:
    folder = tmp_path_factory.mktemp("outlier")
    torch.manual_seed(0)
    path = folder / "outlier.ts.pt"
    torch.jit.save(torch.jit.script(Outlier().eval()), str(path))
    return OnnxFromTorch(folder / "outlier.onnx")(load_generator(path))


@pytest.fixture(scope="module")
def latent(gen_files, tmp_path_factory) -> Artifact:
    """LatentGen via the dynamo exporter (nodes carry torch module paths)."""
    art = load_generator(gen_files["state_dict"], arch="tests.fixtures.generators:LatentGen")
    return OnnxFromTorch(tmp_path_factory.mktemp("latent") / "latent.onnx")(art)


@pytest.fixture(scope="module")
def report(outlier) -> SensitivityReport:
    return sensitivity(outlier, **FAST)


def _psnr_with(art: Artifact, exclude: list[str], tmp: Path, n_eval: int = 8) -> float:
    """Quantize with ``exclude`` via Int8 itself and re-measure on fresh code (samples 0..n_eval-1)."""
    q = Int8(
        tmp / "check.int8.onnx",
        calib_samples=FAST["calib_samples"],
        exclude=exclude,
        verify=False,
        force=True,
    )(art)
    feeds = LatentSampler(art.spec, seed=0).inputs(0, n_eval)
    ref = ort_session(art.path).run(None, feeds)[0]
    got = ort_session(q.path).run(None, feeds)[0]
    return paired_error(ref, got, art.spec.output_range)["psnr_db"]


@pytest.mark.slow
def test_layer_groups_by_module_path(latent, outlier) -> None:
    groups = layer_groups(onnx.load(str(latent.path)))
    assert list(groups) == ["fc", "net.2", "net.4"] and all(len(v) == 1 for v in groups.values())
    # TorchScript-exporter names (/head/Gemm) give the module path too
    assert list(layer_groups(onnx.load(str(outlier.path)))) == ["head", "body", "tail"]
    assert list(layer_groups(onnx.load(str(outlier.path)), ["Conv"])) == ["tail"]


def test_layer_groups_depth_and_fallback() -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    w = onnx.numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")

    def mm(name: str, i: str, o: str, scope: str | None) -> onnx.NodeProto:
        n = onnx.helper.make_node("MatMul", [i, "w"], [o], name=name)
        if scope is not None:
            p = n.metadata_props.add()
            parts = scope.split(
                "."
            )  # dynamo writes cumulative paths: ['', 'blocks', 'blocks.0', ...]
            p.key, p.value = (
                "pkg.torch.onnx.name_scopes",
                repr(["", *(".".join(parts[: k + 1]) for k in range(len(parts))), "matmul"]),
            )
        return n

    nodes = [
        mm("a", "x", "y1", "blocks.0.conv0"),
        mm("b", "y1", "y2", "blocks.0.conv1"),
        mm("c", "y2", "y3", "blocks.1.conv0"),
        mm("plain", "y3", "y", None),
    ]
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    model = onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [x], [y], [w]))
    # the scope read by node_scope is the module path: "blocks.0.conv0" etc.
    assert layer_groups(model) == {"blocks.0": ["a", "b"], "blocks.1": ["c"], "plain": ["plain"]}
    assert layer_groups(model, depth=3) == {
        "blocks.0.conv0": ["a"],
        "blocks.0.conv1": ["b"],
        "blocks.1.conv0": ["c"],
        "plain": ["plain"],
    }


def test_sensitive_layer_ranks_first(report, outlier) -> None:
    assert isinstance(report, SensitivityReport) and all(
        isinstance(r, GroupSensitivity) for r in report
    )
    assert report[0].group == "body"
    assert {r.group for r in report} == {"head", "body", "tail"}
    psnrs = [r.psnr_db for r in report]
    assert all(p is not None for p in psnrs) and psnrs == sorted(psnrs)
    body, rest = report[0], report[1:]
    assert all(body.psnr_db < r.psnr_db - 10 for r in rest)  # clearly the worst
    assert body.op_types == {"Gemm": 1} and body.max_abs_err > rest[0].max_abs_err
    assert report.all_psnr_db is not None and report.all_psnr_db <= body.psnr_db + 1.0
    assert report.options["n_eval"] == 8 and report.options["calib_samples"] == 8


def test_format_report_table(report) -> None:
    text = format_report(report, title="int8 sensitivity")
    lines = text.splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    assert "group" in table[0] and "PSNR dB" in table[0] and "max abs err" in table[0]
    assert set(table[1]) <= set("|-: ")
    assert "body" in table[2] and "Gemm 1" in table[2]  # most harmful first
    assert ALL_GROUPS in table[-1]
    assert len(table) == 2 + len(report) + 1 and len({len(t) for t in table}) == 1  # aligned
    assert f"{report[0].psnr_db:.1f}" in table[2]


def test_auto_exclude_fewest_groups_meets_target(report, outlier, tmp_path, cwd) -> None:
    body, second = report[0], report[1]
    # a target between "all quantized" and "all but body quantized" -> exactly body
    target = report.all_psnr_db + 5.0
    assert target < second.psnr_db
    res = auto_exclude(outlier, target, report)
    assert (
        isinstance(res, AutoExclusion) and res.groups == ["body"] and list(res) == list(body.nodes)
    )
    assert res.psnr_db >= target
    # re-measured through Int8 with these patterns as --exclude, it still meets the target
    assert _psnr_with(outlier, list(res), tmp_path) >= target
    # already met: nothing excluded
    easy = auto_exclude(outlier, max(1e-3, report.all_psnr_db - 1.0), report)
    assert list(easy) == [] and easy.groups == []
    # unreachable by quantizing anything: every group ends in float (fp32 -> inf PSNR)
    allf = auto_exclude(outlier, 1e6, report)
    assert len(allf.groups) == len(report) and math.isinf(allf.psnr_db)
    assert list(cwd.iterdir()) == []


def test_auto_exclude_rejects_bad_target(report, outlier) -> None:
    for bad in (0.0, -3.0, float("nan")):
        with pytest.raises(InputError, match="positive PSNR target"):
            auto_exclude(outlier, bad, report)


def test_sensitivity_cwd_clean_and_dynamo_groups(latent, cwd) -> None:
    rep = sensitivity(latent, calib_samples=4, n_eval=4, exclude=["fc"])
    assert {r.group for r in rep} == {"net.2", "net.4"}  # the user's exclusion is not measured
    assert all(r.op_types == {"ConvTranspose": 1} for r in rep)
    assert [r.psnr_db for r in rep] == sorted(r.psnr_db for r in rep)
    assert list(cwd.iterdir()) == [] and Path.cwd() == cwd


def test_sensitivity_refuses_non_onnx(outlier) -> None:
    with pytest.raises(InputError, match="needs an ONNX model"):
        sensitivity(outlier.derive(format="torch", path=None))
    with pytest.raises(InputError, match="at least one"):
        sensitivity(outlier, n_eval=0)
