"""Loader: every format, the untrusted-pickle refusal, corrupt files, spec inference."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from accelkit.errors import InputError, LoadError, SpecError, UntrustedPickleError
from accelkit.loading import detect_format, load_generator
from accelkit.passes.verify import torch_forward
from accelkit.sampler import LatentSampler
from accelkit.spec import InputSpec
from tests.fixtures.generators import CondGen, LatentGen, NoAttrGen, make

ARCH = "tests.fixtures.generators:LatentGen"


def _same_as_reference(art, ref_module) -> None:
    feeds = LatentSampler(art.spec, seed=3).inputs(0, 4)
    got = torch_forward(art, feeds)
    with torch.inference_mode():
        want = ref_module(*[torch.from_numpy(feeds[i.name]) for i in art.spec.inputs]).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize(
    ("key", "fmt", "needs_arch", "where"),
    [
        ("state_dict", "torch_save", True, "<top level>"),
        ("ckpt_g_ema", "torch_save", True, "G_ema"),
        ("ckpt_lightning", "torch_save", True, "state_dict"),
        ("legacy", "torch_legacy", True, "<top level>"),
        ("safetensors", "safetensors", True, None),
        ("torchscript", "torchscript", False, None),
    ],
)
def test_latent_generator_loads_from_every_format(gen_files, key, fmt, needs_arch, where) -> None:
    art = load_generator(gen_files[key], arch=ARCH if needs_arch else None)
    assert art.format == "torch"
    assert art.meta["loader"] == fmt
    if where:
        assert art.meta["checkpoint_key"] == where
    assert art.spec.inputs == (InputSpec("z", "latent", (16,)),)
    assert art.spec.output_shape == (3, 16, 16)
    assert art.spec.output_range == (-1.0, 1.0)
    assert art.source_sha256 and len(art.source_sha256) == 64
    _same_as_reference(art, make(LatentGen))


def test_weights_only_file_without_arch_says_how_to_fix(gen_files) -> None:
    with pytest.raises(InputError, match=r"--arch module:Class"):
        load_generator(gen_files["state_dict"])


def test_arch_from_a_python_file(gen_files) -> None:
    path = Path(__file__).parents[1] / "fixtures" / "generators.py"
    art = load_generator(gen_files["state_dict"], arch=f"{path}:LatentGen")
    assert art.spec.output_shape == (3, 16, 16)


def test_wrong_arch_kwargs_give_a_size_mismatch_message(gen_files) -> None:
    with pytest.raises(LoadError, match=r"do not fit --arch"):
        load_generator(gen_files["state_dict"], arch=ARCH, arch_kwargs={"ngf": 4})


def test_unknown_arch_module(gen_files) -> None:
    with pytest.raises(InputError, match=r"importing no_such_module failed"):
        load_generator(gen_files["state_dict"], arch="no_such_module:G")


def test_pickled_module_is_refused_without_trust(gen_files) -> None:
    with pytest.raises(UntrustedPickleError, match=r"--trust-code") as info:
        load_generator(gen_files["pickled_module"])
    assert "LatentGen" in str(info.value)


def test_pickled_module_loads_with_trust(gen_files) -> None:
    art = load_generator(gen_files["pickled_module"], trust=True)
    assert art.meta["checkpoint_key"] == "<module>"
    _same_as_reference(art, make(LatentGen))


class _Evil:
    def __reduce__(self):  # runs os.system on unpickling
        return (os.system, (f"touch {os.environ['ACCELKIT_TEST_MARKER']}",))


def test_malicious_pickle_never_executes(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("ACCELKIT_TEST_MARKER", str(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"G_ema": _Evil()}, evil)
    with pytest.raises(UntrustedPickleError):
        load_generator(evil, arch=ARCH)
    assert not marker.exists(), "loading executed code from the file"
    legacy = tmp_path / "evil_legacy.pkl"
    legacy.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(LoadError):
        load_generator(legacy, arch=ARCH)
    assert not marker.exists()


def test_pt2_program_keeps_names_and_label_classes(gen_files) -> None:
    art = load_generator(
        gen_files["pt2"],
        inputs=[InputSpec("z", "latent", (8,)), InputSpec("label", "label", (), "int64", 5)],
    )
    assert art.program is not None and art.meta["loader"] == "pt2"
    assert art.spec.num_classes == 5
    _same_as_reference(art, make(CondGen))


def test_pt2_reads_label_classes_from_its_embedding(gen_files) -> None:
    # torch.export drops the num_classes attribute; the embedding table the label indexes has 5 rows.
    art = load_generator(gen_files["pt2"])
    assert [(i.name, i.kind, i.num_classes) for i in art.spec.inputs] == [
        ("z", "latent", None),
        ("label", "label", 5),
    ]
    assert dict(art.spec.inferred)["inputs"] == "torch.export signature"


def test_pt2_label_without_embedding_needs_class_count(tmp_path) -> None:
    class OneHot(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4 + 3, 3 * 4 * 4)

        def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
            h = torch.cat([z, torch.nn.functional.one_hot(label, 3).float()], 1)
            return torch.tanh(self.fc(h)).view(-1, 3, 4, 4)

    ep = torch.export.export(OneHot().eval(), (torch.randn(2, 4), torch.tensor([0, 2])))
    path = tmp_path / "onehot.pt2"
    torch.export.save(ep, str(path))
    with pytest.raises(SpecError, match=r"--input label:int:CLASSES"):
        load_generator(path)
    art = load_generator(
        path, inputs=[InputSpec("label", "label", (), "int64", 3)]
    )  # overrides one input, keeps z
    assert [(i.name, i.shape, i.num_classes) for i in art.spec.inputs] == [
        ("z", (4,), None),
        ("label", (), 3),
    ]


def test_traced_conditional_torchscript_inputs_from_its_layers(gen_files) -> None:
    # Tracing drops z_dim/num_classes attributes: the embedding gives the classes, the first
    # Linear's width less the embedding's the latent size.
    art = load_generator(gen_files["cond_torchscript"])
    assert [(i.name, i.kind, i.shape, i.num_classes) for i in art.spec.inputs] == [
        ("z", "latent", (8,), None),
        ("label", "label", (), 5),
    ]
    art = load_generator(
        gen_files["cond_torchscript"],
        inputs=[InputSpec("z", "latent", (8,)), InputSpec("label", "label", (), "int64", 5)],
    )
    assert [i.kind for i in art.spec.inputs] == ["latent", "label"]
    assert art.spec.num_classes == 5
    _same_as_reference(art, make(CondGen))


def test_image_to_image_torchscript(gen_files) -> None:
    art = load_generator(gen_files["img2img_torchscript"])
    assert art.spec.inputs == (InputSpec("image", "image", (3, 12, 12)),)
    assert art.spec.output_shape == (3, 24, 24)
    assert art.spec.output_range == (0.0, 1.0)


def test_input_override_changes_image_size(gen_files) -> None:
    art = load_generator(
        gen_files["img2img_torchscript"], inputs=[InputSpec("image", "image", (3, 20, 20))]
    )
    assert art.spec.output_shape == (3, 40, 40)
    assert ("inputs", "--input") in art.spec.inferred


def test_spec_inference_without_attributes(tmp_path) -> None:
    p = tmp_path / "noattr.pt"
    torch.save(make(NoAttrGen).state_dict(), p)
    art = load_generator(p, arch="tests.fixtures.generators:NoAttrGen")
    assert art.spec.inputs == (InputSpec("noise", "latent", (12, 1, 1)),)
    assert art.spec.output_shape == (3, 8, 8)
    assert art.spec.output_range == (0.0, 1.0)


def test_wrong_input_override_is_a_spec_error(gen_files) -> None:
    with pytest.raises(SpecError, match=r"fails on inputs z=\(2, 7\)"):
        load_generator(gen_files["torchscript"], inputs=[InputSpec("z", "latent", (7,))])


def test_output_range_override(gen_files) -> None:
    art = load_generator(gen_files["torchscript"], output_range=(0.0, 1.0), truncation_psi=0.7)
    assert art.spec.output_range == (0.0, 1.0)
    assert art.spec.truncation_psi == 0.7


@pytest.mark.parametrize(
    ("content", "name", "pattern"),
    [
        (b"", "empty.pt", r"is empty"),
        (b"hello, I am not a model at all", "notes.pt", r"not a model file"),
        (b"\x00\x01\x02garbage", "weird.safetensors", r"no valid safetensors header"),
    ],
)
def test_not_a_model(tmp_path, content, name, pattern) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(LoadError, match=pattern):
        load_generator(p)


@pytest.mark.parametrize("key", ["state_dict", "torchscript", "pt2", "safetensors"])
def test_truncated_files_are_reported_as_truncated(gen_files, tmp_path, key) -> None:
    src = gen_files[key]
    data = src.read_bytes()
    p = tmp_path / ("cut_" + src.name)
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match=r"truncated|corrupt"):
        load_generator(p, arch=ARCH)


def test_truncated_onnx(gen_files, tmp_path) -> None:
    from accelkit.passes.export import OnnxFromTorch

    art = load_generator(gen_files["torchscript"])
    onnx_path = OnnxFromTorch(tmp_path / "g.onnx")(art).path
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(onnx_path.read_bytes()[:200])
    with pytest.raises(LoadError, match=r"not a readable ONNX model|empty graph"):
        load_generator(cut)


def test_missing_file_and_folder(tmp_path) -> None:
    with pytest.raises(InputError, match=r"no such file"):
        load_generator(tmp_path / "nope.pt")
    with pytest.raises(InputError, match=r"is a folder"):
        load_generator(tmp_path)


def test_checkpoint_without_generator_key(tmp_path) -> None:
    p = tmp_path / "ckpt.pt"
    torch.save({"D": {"x": 1}, "epoch": 2}, p)
    with pytest.raises(LoadError, match=r"no generator weights found.*top-level keys: D, epoch"):
        load_generator(p, arch=ARCH)


def test_detect_format_by_bytes_not_suffix(gen_files, tmp_path) -> None:
    p = tmp_path / "model.bin"
    p.write_bytes(gen_files["torchscript"].read_bytes())
    assert detect_format(p) == "torchscript"
    q = tmp_path / "weights.bin"
    q.write_bytes(gen_files["safetensors"].read_bytes())
    assert detect_format(q) == "safetensors"


def test_default_is_the_bundled_dcgan() -> None:
    art = load_generator()
    assert art.meta["arch"] == "dcgan"
    assert art.spec.inputs[0].kind == "latent"
    assert art.spec.output_shape == (3, 64, 64)


def test_scripted_conditional_keeps_attributes(tmp_path) -> None:
    p = tmp_path / "cond_scripted.pt"
    torch.jit.save(torch.jit.script(make(CondGen)), str(p))
    art = load_generator(p)
    assert art.spec.inputs == (
        InputSpec("z", "latent", (8,)),
        InputSpec("label", "label", (), "int64", 5),
    )
    _same_as_reference(art, make(CondGen))


def test_eager_conditional_without_class_attribute_uses_embedding_rows(tmp_path) -> None:
    class NoCount(CondGen):
        def __init__(self) -> None:
            super().__init__()
            del self.num_classes

    p = tmp_path / "c.pt"
    torch.save(make(CondGen).state_dict(), p)
    import tests.fixtures.generators as fx

    fx.NoCount = NoCount  # importable by name for --arch
    art = load_generator(p, arch="tests.fixtures.generators:NoCount")
    assert art.spec.num_classes == 5


def test_onnx_without_metadata_probes_its_range_and_asks_for_a_dynamic_size(tmp_path) -> None:
    """A plain ONNX file (no accelkit metadata): range probed in ONNX Runtime; dynamic H/W needs --input."""
    import warnings

    from accelkit.spec import InputSpec as _In
    from tests.fixtures.generators import build, export_tiny_onnx

    module, spec = build("img2img")
    path = export_tiny_onnx(module, spec, tmp_path / "plain.onnx")
    art = load_generator(path)
    assert (
        art.spec.output_range == (0.0, 1.0) and "probing" in dict(art.spec.inferred)["output_range"]
    )
    assert art.spec.output_shape == (3, 32, 32)

    dyn = tmp_path / "dyn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.rand(2, 3, 16, 16),),
            str(dyn),
            dynamo=False,
            input_names=["image"],
            output_names=["out"],
            dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}, "out": {0: "b", 2: "H", 3: "W"}},
        )
    with pytest.raises(SpecError, match=r"--input image:3xHxW"):
        load_generator(dyn)
    art = load_generator(dyn, inputs=[_In("image", "image", (3, 24, 24))])
    assert art.spec.output_shape == (3, 48, 48) and art.spec.hw_range == (6, 24, 96)
