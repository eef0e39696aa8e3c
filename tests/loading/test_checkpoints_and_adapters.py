"""Checkpoints saved by common training code, and generators that return a dict, a tuple or flat vectors."""

from __future__ import annotations

import pytest
import torch

from accelkit.errors import SpecError, UntrustedPickleError
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.verify import ort_session
from accelkit.sampler import LatentSampler
from tests.fixtures.families import (
    DictOutGen,
    FlatMLPGen,
    RosinalityWrapped,
    UnetGenerator,
    write_pix2pix,
    write_rosinality,
    write_state_dict,
)

FAM = "tests.fixtures.families"


def test_rosinality_checkpoint_with_args_namespace_loads_weights_only(tmp_path) -> None:
    path = write_rosinality(tmp_path / "550000.pt")
    art = load_generator(path, arch=f"{FAM}:RosinalityWrapped")
    assert art.meta["checkpoint_key"] == "g_ema"  # EMA weights, not "g"
    assert [(i.name, i.shape) for i in art.spec.inputs] == [("z", (32,))]  # from style_dim
    assert (
        art.meta["output_adapter"]["index"] == 0
        and "item 0 of a 2-tuple" in dict(art.spec.inferred)["output"]
    )
    ema = torch.load(path, weights_only=False)["g_ema"]
    ref = RosinalityWrapped().eval()
    ref.load_state_dict(ema)
    z = torch.randn(3, 32)
    with torch.no_grad():
        torch.testing.assert_close(art.module(z), ref(z)[0])


def test_pix2pix_netG_with_arch(tmp_path) -> None:
    art = load_generator(write_pix2pix(tmp_path / "latest_net_G.pth"), arch=f"{FAM}:UnetGenerator")
    assert art.meta["checkpoint_key"] == "netG"
    assert [(i.name, i.kind, i.shape) for i in art.spec.inputs] == [("input", "image", (3, 32, 32))]
    assert art.spec.output_shape == (3, 32, 32) and art.spec.output_range == (-1.0, 1.0)
    assert dict(art.spec.inferred)["output_range"] == "final Tanh layer"


def test_dict_output_is_adapted_and_exports(tmp_path) -> None:
    art = load_generator(write_state_dict(DictOutGen, tmp_path / "d.pt"), arch=f"{FAM}:DictOutGen")
    assert art.meta["output_adapter"]["key"] == "sample"
    out = OnnxFromTorch(tmp_path / "d.onnx")(art)
    feeds = LatentSampler(art.spec, seed=1).inputs(0, 3)
    got = ort_session(out.path).run(None, feeds)[0]
    with torch.no_grad():
        want = DictOutGen.__call__(art.module.inner, torch.from_numpy(feeds["z"]))["sample"].numpy()
    assert got.shape == (3, 3, 8, 8) and abs(got - want).max() < 1e-5


def test_flat_output_needs_and_takes_output_shape(tmp_path) -> None:
    path = write_state_dict(FlatMLPGen, tmp_path / "mlp.pt")
    with pytest.raises(SpecError, match="--output-shape CxHxW"):
        load_generator(path, arch=f"{FAM}:FlatMLPGen")
    with pytest.raises(
        SpecError, match="3x28x28 has 2352 values per image but the generator returns 784"
    ):
        load_generator(path, arch=f"{FAM}:FlatMLPGen", output_shape=(3, 28, 28))
    art = load_generator(path, arch=f"{FAM}:FlatMLPGen", output_shape=(1, 28, 28))
    assert art.spec.output_shape == (1, 28, 28) and art.spec.output_range == (0.0, 1.0)
    out = OnnxFromTorch(tmp_path / "mlp.onnx")(art)
    assert out.spec.output_shape == (1, 28, 28)


def test_a_wrong_output_shape_for_an_image_output_is_refused(tmp_path) -> None:
    path = write_state_dict(DictOutGen, tmp_path / "d.pt")
    with pytest.raises(SpecError, match="not --output-shape 1x8x8"):
        load_generator(path, arch=f"{FAM}:DictOutGen", output_shape=(1, 8, 8))


def test_spec_and_adapter_survive_a_pruned_torchscript(tmp_path) -> None:
    pytest.importorskip("torch_pruning")
    from accelkit.passes.prune import Prune, save_pruned

    art = load_generator(write_rosinality(tmp_path / "ck.pt"), arch=f"{FAM}:RosinalityWrapped")
    saved = save_pruned(Prune(0.25, keep=("style*",))(art), tmp_path / "p.pt")
    again = load_generator(saved.path)
    assert again.spec.inputs == art.spec.inputs and again.spec.output_range == art.spec.output_range
    assert dict(again.spec.inferred) == {"spec": "stored by accelkit with the file"}


class Opaque:
    """A class a checkpoint may pickle; only argparse.Namespace is allowed in weights-only loading."""


def test_an_unknown_global_in_a_checkpoint_is_still_refused(tmp_path) -> None:
    torch.save({"g_ema": UnetGenerator().state_dict(), "cfg": Opaque()}, str(tmp_path / "x.pt"))
    with pytest.raises(UntrustedPickleError, match="needs code execution"):
        load_generator(tmp_path / "x.pt", arch=f"{FAM}:UnetGenerator")
