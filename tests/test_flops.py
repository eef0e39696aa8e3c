"""accelkit.flops: FLOPs per image from ONNX graphs and torch modules; the GPU peak table and MFU."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from accelkit.errors import InputError
from accelkit.flops import flops_per_image, flops_per_image_onnx, gpu_key, gpu_peak_flops, mfu
from tests.fixtures import generators as tg

# the TorchScript ONNX exporter used to build fixtures warns that it is deprecated
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ----------------------------------------------------------------------------- FLOPs
# Hand-counted multiply-accumulates of the tiny fixtures (per image):
#   uncond: Linear 16->128 (2,048) + ConvT 8->8 k4 on 4x4 (8*16 inputs * 8*16 = 16,384)
#           + ConvT 8->3 k4 on 8x8 (8*64 * 3*16 = 24,576) = 43,008
#   cond:   Linear 12->128 (1,536) + 16,384 + 24,576 = 42,496 (the embedding Gather is not counted)
#   img2img: Conv 3->8 k3 at 16x16 (8*256 * 27 = 55,296) + Conv 8->12 k3 (12*256 * 72 = 221,184) = 276,480
@pytest.mark.parametrize(
    ("kind", "macs"), [("uncond", 43_008), ("cond", 42_496), ("img2img", 276_480)]
)
def test_flops_of_generators(tmp_path: Path, kind: str, macs: int) -> None:
    art, _ = tg.onnx_artifact(kind, tmp_path)
    assert flops_per_image_onnx(art.path, art.spec) == 2 * macs
    assert (
        flops_per_image_onnx(onnx.load(str(art.path)), art.spec) == 2 * macs
    )  # ModelProto works too


def test_flops_are_per_image_whatever_the_export_batch(tmp_path: Path) -> None:
    module, spec = tg.build("uncond")
    path = tmp_path / "static4.onnx"
    torch.onnx.export(
        module,
        (torch.zeros(4, 16),),
        str(path),
        dynamo=False,
        input_names=["z"],
        output_names=["image"],
        opset_version=18,
    )
    assert flops_per_image_onnx(path, spec) == 2 * 43_008


class _Mm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.ones(6, 5)
        return (x @ w).unsqueeze(1)  # MatMul (B, 3, 6) @ (6, 5)


def test_flops_count_matmul(tmp_path: Path) -> None:
    path = tmp_path / "mm.onnx"
    torch.onnx.export(
        _Mm(),
        (torch.zeros(2, 3, 6),),
        str(path),
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
        opset_version=18,
    )
    model = onnx.load(str(path))
    assert any(n.op_type == "MatMul" for n in model.graph.node)
    assert flops_per_image_onnx(path) == 2 * (3 * 5 * 6)


def test_flops_unknown_shape_gives_none(tmp_path: Path) -> None:
    module, spec = tg.build("img2img")
    path = tmp_path / "dyn_hw.onnx"
    torch.onnx.export(
        module,
        (torch.zeros(1, 3, 16, 16),),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["out"],
        dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}, "out": {0: "b"}},
        opset_version=18,
    )
    assert flops_per_image_onnx(path) is None  # H, W unknown: no partial count
    assert flops_per_image_onnx(path, spec) == 2 * 276_480  # the spec fixes them


def test_flops_bad_file_is_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot read ONNX model"):
        flops_per_image_onnx(bad)


@pytest.mark.parametrize("kind", ["uncond", "cond", "img2img"])
def test_torch_and_onnx_counts_agree(tmp_path: Path, kind: str) -> None:
    """Both counters follow one convention (2 per MAC of conv/conv-transpose/matmul), so ``accelkit info`` gives one number."""
    onnx_art, _ = tg.onnx_artifact(kind, tmp_path)
    assert (
        flops_per_image(tg.torch_artifact(kind))
        == flops_per_image(onnx_art)
        == flops_per_image_onnx(onnx_art.path, onnx_art.spec)
    )


# ------------------------------------------------------------------------------- MFU
@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA L4", "L4"),
        ("Tesla T4", "T4"),
        ("NVIDIA L40S", None),
        ("NVIDIA GeForce RTX 4090", None),
        (None, None),
    ],
)
def test_gpu_names_map_to_table(name: str | None, key: str | None) -> None:
    assert gpu_key(name) == key


def test_peak_and_mfu() -> None:
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3", "fp16") == pytest.approx(989.4e12)
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989.4e12)
    assert gpu_peak_flops("Tesla T4", "fp32") == pytest.approx(8.1e12)
    assert gpu_peak_flops("Tesla T4", "bf16") is None  # T4 has no bf16
    # 1e6 images/s x 1e8 FLOPs = 1e14 FLOP/s = 1/3.12 of an A100's fp16 peak
    assert mfu(1e6, 100_000_000, "NVIDIA A100-SXM4-40GB", "fp16") == pytest.approx(1e14 / 312e12)
    assert mfu(1e6, 100_000_000, None, "fp16") is None  # CPU
    assert mfu(1e6, None, "NVIDIA L4", "fp16") is None
    assert mfu(1e6, 10, "Some Future GPU", "fp16") is None
