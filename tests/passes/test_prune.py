"""Structured pruning, data-free distillation and TorchScript saving of pruned generators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("torch_pruning")

from accelkit.artifact import Artifact
from accelkit.errors import InputError
from accelkit.loading import infer_torch_spec, load_generator
from accelkit.passes.distill import distill, match_feature_layers
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.prune import Prune, save_pruned
from accelkit.passes.verify import ort_session, torch_forward
from accelkit.sampler import LatentSampler
from tests.fixtures.generators import make


class ConvStack(nn.Module):
    """z (N, 8) -> (N, 3, 16, 16) in [-1, 1]: a DCGAN-like ConvTranspose2d + BatchNorm stack."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 8
        self.net = nn.Sequential(
            nn.ConvTranspose2d(8, 32, 4, 1, 0, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 3, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


def _art(module: nn.Module) -> Artifact:
    return Artifact(
        format="torch",
        spec=infer_torch_spec(module),
        module=module,
        source="mem.pt",
        source_sha256="0" * 64,
    )


def _outputs(art: Artifact, n: int = 4) -> np.ndarray:
    return torch_forward(art, LatentSampler(art.spec, seed=5).inputs(0, n))


# Bound: at ratio 0.5 a hidden conv loses half its inputs and half its outputs (1/4 of
# its weights); the first layer (fixed input width) and the last (fixed RGB output)
# lose only half, so a conv stack keeps between 0.2 and 0.6 of its parameters.
def test_prune_conv_stack_is_dense_smaller_and_teacher_untouched() -> None:
    teacher = _art(make(ConvStack))
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    ref = _outputs(teacher)
    pruned = Prune(0.5)(teacher)
    rec = pruned.passes[-1]
    assert (
        rec["name"] == "Prune"
        and rec["options"]["ratio"] == 0.5
        and rec["options"]["importance"] == "l2"
    )
    assert 0.2 <= rec["params_after"] / rec["params_before"] <= 0.6
    assert rec["flops_after"] < 0.6 * rec["flops_before"]
    convs = [m for m in pruned.module.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (8, 16),
        (16, 8),
        (8, 3),
    ]  # dense, fewer channels
    assert convs[1].weight.shape == (16, 8, 4, 4)
    assert not pruned.module.training
    assert _outputs(pruned).shape == ref.shape
    for k, v in teacher.module.state_dict().items():  # the teacher is a separate, unchanged module
        assert torch.equal(v, before[k])
    np.testing.assert_array_equal(_outputs(teacher), ref)


@pytest.mark.slow
def test_prune_dcgan_bundled() -> None:
    art = load_generator("dcgan")
    pruned = Prune(0.5, importance="l1")(art)
    rec = pruned.passes[-1]
    assert 0.2 <= rec["params_after"] / rec["params_before"] <= 0.6
    first = pruned.module.net[0]
    assert first.in_channels == art.module.net[0].in_channels  # the latent width never changes
    assert first.out_channels == art.module.net[0].out_channels // 2
    assert pruned.module.net[-2].out_channels == 3
    assert _outputs(pruned).shape == (4, 3, 64, 64)


def test_keep_globs_and_per_layer() -> None:
    art = _art(make(ConvStack))
    kept = Prune(0.5, keep=["net.0"])(art)
    assert kept.module.net[0].out_channels == 32 and kept.module.net[3].out_channels == 8
    assert "net.0" in kept.passes[-1]["ignored_layers"]
    per = Prune(0.0, per_layer={"net.3": 0.75})(art)
    assert per.module.net[0].out_channels == 32 and per.module.net[3].out_channels == 4
    with pytest.raises(InputError, match="per-layer"):
        Prune(0.5, per_layer={"nope*": 0.5})(art)
    with pytest.raises(InputError):
        Prune(1.0)
    with pytest.raises(InputError):
        Prune(0.5, importance="taylor")


def test_random_importance_is_seeded_and_global_works() -> None:
    art = _art(make(ConvStack))
    a = Prune(0.5, importance="random", seed=3)(art)
    b = Prune(0.5, importance="random", seed=3)(art)
    for x, y in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(x, y)
    g = Prune(0.5, global_pruning=True)(art)
    assert g.passes[-1]["params_after"] < g.passes[-1]["params_before"]
    assert _outputs(g).shape == (4, 3, 16, 16)


def _small_stylegan2() -> nn.Module:
    from accelkit.models.stylegan2 import StyleGAN2Generator

    torch.manual_seed(0)
    return StyleGAN2Generator(
        z_dim=16,
        w_dim=16,
        num_classes=0,
        img_size=16,
        channel_base=128,
        channel_max=16,
        mapping_layers=2,
    ).eval()


@pytest.mark.slow
def test_prune_stylegan2_modulated_convs() -> None:
    art = load_generator("stylegan2")
    pruned = Prune(0.5)(art)
    rec = pruned.passes[-1]
    # Hidden modulated convs lose half their inputs and outputs; conv4 keeps its 128 input
    # channels (the learned constant) and the mapping network is left whole.
    assert 0.3 <= rec["params_after"] / rec["params_before"] <= 0.5
    assert rec["flops_after"] < 0.35 * rec["flops_before"]
    m, t = pruned.module, art.module
    assert m.conv4.conv.weight.shape == (64, 128, 3, 3)
    assert m.blocks[0].conv0.conv.weight.shape == (64, 64, 3, 3)
    assert m.blocks[0].conv0.conv.affine.out_features == 64  # one style per remaining input channel
    assert m.blocks[0].conv0.bias.shape == (64,)
    assert m.blocks[3].torgb.conv.weight.shape == (3, 16, 1, 1)  # RGB outputs kept
    for (k, a), b in zip(m.mapping.state_dict().items(), t.mapping.state_dict().values()):
        assert torch.equal(a, b), k
    assert all(n.endswith("torgb.conv") or n == "torgb4.conv" for n in rec["ignored_layers"])
    assert _outputs(pruned).shape == (4, 3, 64, 64)


def test_pruning_dead_modulated_channels_changes_nothing() -> None:
    """Channels that carry nothing are the ones pruned, and the output stays the same to
    float precision: proves weight rows, weight columns, affine rows and bias are sliced
    on the right axes."""
    gen = _small_stylegan2()
    layer, consumer = gen.blocks[0].conv0, gen.blocks[0].conv1
    dead = [1, 2, 5, 6, 9, 12, 13, 14]  # half of 16
    with torch.no_grad():
        layer.conv.weight[dead] = 0.0
        layer.bias[dead] = 0.0
        layer.noise_strength.zero_()
        consumer.conv.weight[:, dead] = 0.0
    art = _art(gen)
    ref = _outputs(art)
    pruned = Prune(0.0, per_layer={"blocks.0.conv0.conv": 0.5})(art)
    pl, pc = pruned.module.blocks[0].conv0, pruned.module.blocks[0].conv1
    alive = [i for i in range(16) if i not in dead]
    assert pl.conv.weight.shape == (8, 16, 3, 3) and pc.conv.weight.shape == (16, 8, 3, 3)
    assert pc.conv.affine.out_features == 8 and pl.bias.shape == (8,)
    assert torch.equal(pc.conv.affine.weight, consumer.conv.affine.weight[alive])
    assert torch.equal(pl.conv.weight, layer.conv.weight[alive])
    np.testing.assert_allclose(_outputs(pruned), ref, atol=1e-5)


def test_pruned_stylegan2_saves_and_exports(tmp_path: Path) -> None:
    pruned = Prune(0.5)(_art(_small_stylegan2()))
    saved = save_pruned(pruned, tmp_path / "sg.pruned.pt")
    loaded = load_generator(saved.path)
    np.testing.assert_allclose(_outputs(loaded), _outputs(pruned), atol=1e-5)
    onnx_art = OnnxFromTorch(tmp_path / "sg.onnx", exporter="torchscript")(pruned)
    feeds = LatentSampler(pruned.spec, seed=9).inputs(0, 3)
    np.testing.assert_allclose(
        ort_session(onnx_art.path).run(None, feeds)[0], torch_forward(pruned, feeds), atol=1e-4
    )


class BareMatrix(nn.Module):
    """A generator whose layer keeps a (out, in) weight matrix as a bare parameter: no known channel axis."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 8
        self.mix = nn.Parameter(torch.randn(16, 8))
        self.up = nn.ConvTranspose2d(16, 3, 4, 1, 0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.up((z @ self.mix.t())[:, :, None, None]))


def test_bare_parameter_without_channel_axis_is_refused() -> None:
    with pytest.raises(
        InputError, match=r"channel axis.*mix \(BareMatrix, shape \(16, 8\)\).*--keep"
    ):
        Prune(0.5)(_art(make(BareMatrix)))


def test_pruned_exports_to_onnx(tmp_path: Path) -> None:
    pruned = Prune(0.5)(_art(make(ConvStack)))
    onnx_art = OnnxFromTorch(tmp_path / "p.onnx", exporter="torchscript")(pruned)
    feeds = LatentSampler(pruned.spec, seed=9).inputs(0, 3)
    got = ort_session(onnx_art.path).run(None, feeds)[0]
    np.testing.assert_allclose(got, torch_forward(pruned, feeds), atol=1e-4)


@pytest.mark.slow
def test_save_pruned_loads_without_pickle(tmp_path: Path) -> None:
    pruned = Prune(0.5)(load_generator("dcgan"))
    saved = save_pruned(pruned, tmp_path / "gen.pruned.pt")
    assert saved.path is not None and saved.path.is_file()
    loaded = load_generator(saved.path)  # trust=False: TorchScript, no pickle
    assert (
        loaded.spec.inputs == pruned.spec.inputs
        and loaded.spec.output_shape == pruned.spec.output_shape
    )
    np.testing.assert_allclose(_outputs(loaded), _outputs(pruned), atol=1e-5)
    with pytest.raises(InputError, match="exists"):
        save_pruned(pruned, tmp_path / "gen.pruned.pt")


@pytest.mark.slow
def test_distill_raises_psnr_and_leaves_inputs_alone() -> None:
    teacher = _art(make(ConvStack))
    student = Prune(0.5)(teacher)
    s_before = {k: v.clone() for k, v in student.module.state_dict().items()}
    seen: list[tuple[int, int, float]] = []
    trained, rep = distill(
        teacher,
        student,
        steps=60,
        batch_size=16,
        lr=3e-3,
        eval_samples=32,
        progress=lambda s, t, loss: seen.append((s, t, loss)),
    )
    assert rep["psnr_after"] > rep["psnr_before"] + 3.0, rep
    assert [s for s, _, _ in seen] == list(range(1, 61)) and all(t == 60 for _, t, _ in seen)
    assert not trained.module.training and trained.passes[-1]["name"] == "Distill"
    for k, v in student.module.state_dict().items():
        assert torch.equal(v, s_before[k])


@pytest.mark.slow
def test_distill_feature_loss_matches_intermediate_layers() -> None:
    teacher = _art(make(ConvStack))
    student = Prune(0.5)(teacher)
    assert match_feature_layers(teacher.module, student.module) == [
        "net.0",
        "net.3",
    ]  # the narrowed layers
    assert match_feature_layers(teacher.module, student.module, ["net.3"]) == ["net.3"]
    with pytest.raises(InputError, match="matches no layer"):
        match_feature_layers(teacher.module, student.module, ["nope*"])
    trained, rep = distill(
        teacher, student, steps=60, batch_size=16, lr=3e-3, eval_samples=32, feature_loss=1.0
    )
    assert rep["feature_layers"] == ["net.0", "net.3"] and rep["feature_loss"] == 1.0
    assert 0.0 < rep["final_feature_loss"] < rep["final_loss"]  # part of the total, and not zero
    assert rep["psnr_after"] > rep["psnr_before"] + 3.0, rep
    # the adapters are training-only: the student keeps exactly the pruned model's parameters
    assert set(trained.module.state_dict()) == set(student.module.state_dict())
    assert trained.passes[-1]["options"]["feature_loss"] == 1.0
    # without the feature loss the run is a different one
    pixels, rep0 = distill(teacher, student, steps=60, batch_size=16, lr=3e-3, eval_samples=32)
    assert rep0["final_feature_loss"] == 0.0 and rep0["feature_layers"] == []
    assert not torch.equal(trained.module.net[0].weight, pixels.module.net[0].weight)
    with pytest.raises(InputError, match="feature loss weight"):
        distill(teacher, student, steps=1, feature_loss=-1.0)


@pytest.mark.slow
def test_distill_resume_matches_uninterrupted(tmp_path: Path) -> None:
    teacher = _art(make(ConvStack))
    student = Prune(0.5)(teacher)
    kw: dict[str, Any] = {
        "steps": 12,
        "batch_size": 4,
        "lr": 1e-3,
        "eval_samples": 8,
        "checkpoint_every": 5,
        "feature_loss": 0.5,
    }
    full, _ = distill(teacher, student, checkpoint=tmp_path / "a.ckpt", **kw)

    class Stop(Exception):
        pass

    def stop_at_7(step: int, total: int, loss: float) -> None:
        if step == 7:
            raise Stop

    with pytest.raises(Stop):  # interrupted after step 7; the last checkpoint is at step 5
        distill(teacher, student, checkpoint=tmp_path / "b.ckpt", progress=stop_at_7, **kw)
    assert torch.load(tmp_path / "b.ckpt", weights_only=True)["step"] == 5
    resumed, rep = distill(teacher, student, checkpoint=tmp_path / "b.ckpt", **kw)
    assert rep["resumed_from"] == 5
    for (k, a), b in zip(full.module.state_dict().items(), resumed.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    with pytest.raises(InputError, match="batch_size"):
        distill(teacher, student, checkpoint=tmp_path / "b.ckpt", **{**kw, "batch_size": 8})
    # the feature-loss hooks on the caller's teacher are gone, also after that refusal
    assert all(not m._forward_hooks for m in teacher.module.modules())
