"""The bundled demo generators: architectures, checkpoints and their conventions.

Fast (about 9 s on the shared 2-core CPU): small batches, one torch thread, and only the
TorchScript-based ONNX export (``dynamo=False``); the dynamo exporter is slower (4-11 s
per model) and is left to the export pass's tests.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from accelkit.models import ARCHITECTURES, BUNDLED, architecture

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
WEIGHTS = MODELS_DIR / "weights"
NAMES = sorted(BUNDLED)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine two threads made these small
    forwards up to 20x slower (spinning OpenMP workers), and results don't depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def _load(name: str) -> torch.nn.Module:
    """The bundled model in eval mode (cached: no test modifies it)."""
    path = WEIGHTS / BUNDLED[name]
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["accelkit.arch"] == name
    kwargs = json.loads(meta["accelkit.arch_kwargs"])
    model = architecture(name)(**kwargs)
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


@pytest.fixture(params=NAMES)
def bundled(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module]:
    return request.param, _load(request.param)


def _inputs(model: torch.nn.Module, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if hasattr(model, "input_shape"):
        return {"image": torch.rand(n, *model.input_shape, generator=gen)}
    inp = {"z": torch.randn(n, model.z_dim, generator=gen)}
    if model.num_classes > 0:
        inp["label"] = torch.randint(0, model.num_classes, (n,), generator=gen)
    return inp


def test_registry_names_and_files() -> None:
    assert set(ARCHITECTURES) == set(BUNDLED) == {"dcgan", "stylegan2", "sr4x"}
    for _name, fname in BUNDLED.items():
        path = WEIGHTS / fname
        assert path.is_file(), f"missing {path}; run python models/make_all.py"
        assert path.stat().st_size < 6_000_000


def test_default_constructor_is_bundled_configuration() -> None:
    """``Class()`` builds the bundled model: the kwargs in the metadata are the defaults."""
    for name in NAMES:
        cls = architecture(name)
        with safe_open(str(WEIGHTS / BUNDLED[name]), framework="pt") as f:
            kwargs = json.loads(f.metadata()["accelkit.arch_kwargs"])
        defaults = {
            k: p.default
            for k, p in inspect.signature(cls.__init__).parameters.items()
            if k != "self"
        }
        assert kwargs == defaults, name
        bundled_sd = load_file(str(WEIGHTS / BUNDLED[name]))
        cls().load_state_dict(bundled_sd, strict=True)


def test_spec_attributes(bundled: tuple[str, torch.nn.Module]) -> None:
    name, model = bundled
    lo, hi = model.output_range
    if name == "sr4x":
        assert model.input_shape == (3, 32, 32)
        assert (lo, hi) == (0.0, 1.0)
        assert not hasattr(model, "z_dim")
    else:
        assert isinstance(model.z_dim, int) and isinstance(model.num_classes, int)
        assert (lo, hi) == (-1.0, 1.0)
    assert {"dcgan": 0, "stylegan2": 4}.get(name, 0) == getattr(model, "num_classes", 0)


@pytest.mark.parametrize("n", [1, 3])
def test_output_shape_range_finite_deterministic(
    bundled: tuple[str, torch.nn.Module], n: int
) -> None:
    name, model = bundled
    expected = {"dcgan": (3, 64, 64), "stylegan2": (3, 64, 64), "sr4x": (3, 128, 128)}[name]
    inp = _inputs(model, n)
    with torch.no_grad():
        y1 = model(**inp)
        y2 = model(**inp)
    assert y1.dtype == torch.float32
    assert tuple(y1.shape) == (n, *expected)
    assert torch.isfinite(y1).all()
    lo, hi = model.output_range
    assert y1.min() >= lo and y1.max() <= hi
    assert torch.equal(y1, y2), "same input twice must give identical outputs"


def test_batch_independence(bundled: tuple[str, torch.nn.Module]) -> None:
    """Sample i alone equals sample i inside a batch (eval-mode BatchNorm, fixed noise)."""
    _, model = bundled
    inp = _inputs(model, 3, seed=1)
    with torch.no_grad():
        batch = model(**inp)
        for i in range(3):
            alone = model(**{k: v[i : i + 1] for k, v in inp.items()})
            torch.testing.assert_close(alone[0], batch[i], atol=1e-5, rtol=0)


def test_outputs_depend_on_inputs(bundled: tuple[str, torch.nn.Module]) -> None:
    """Different inputs give different outputs: not a constant function."""
    _, model = bundled
    with torch.no_grad():
        a = model(**_inputs(model, 2, seed=2))
    assert (a[0] - a[1]).abs().mean() > 0.02


def test_stylegan2_label_changes_output() -> None:
    model = _load("stylegan2")
    z = torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(3)).expand(
        model.num_classes, -1
    )
    with torch.no_grad():
        y = model(z, torch.arange(model.num_classes))
    for i in range(1, model.num_classes):
        assert (y[i] - y[0]).abs().mean() > 0.01
    with torch.no_grad():
        std = float(model(**_inputs(model, 16)).std())
    assert 0.15 < std < 0.7, (
        f"untrained StyleGAN2 output std {std:.3f} outside the documented 0.2-0.6 (+margin)"
    )


def test_dcgan_not_mode_collapsed() -> None:
    """16 samples are far apart on average, and no two are (near-)identical.

    Metric: mean pairwise RMS distance per pixel, in the [-1, 1] output units. Measured
    with these 16 latents: 0.61 between 16 real training images, 0.59 for the bundled
    model, 0.14 after only 5 training steps, 0.0006 for the untrained init, and 0 for a
    fully collapsed generator (one image for every z). We require 0.3, half the data's
    value; the smallest pair distance must exceed 0.05 (data: 0.33, bundled: 0.28).
    """
    model = _load("dcgan")
    with torch.no_grad():
        y = model(torch.randn(16, model.z_dim, generator=torch.Generator().manual_seed(4))).flatten(
            1
        )
    d = torch.cdist(y, y) / y.shape[1] ** 0.5
    mean_pairwise = d.sum() / (16 * 15)
    assert mean_pairwise > 0.3, f"mean pairwise RMS distance {mean_pairwise:.3f}: mode collapse?"
    assert d[~torch.eye(16, dtype=torch.bool)].min() > 0.05


def test_dcgan_uses_the_full_output_range() -> None:
    """A trained generator makes saturated colours, not mid-grey: pixel std 0.43 and 6%
    of values beyond +-0.8 for both the training data and the bundled model (untrained:
    0.0007 and 0%)."""
    model = _load("dcgan")
    with torch.no_grad():
        y = model(torch.randn(16, model.z_dim, generator=torch.Generator().manual_seed(5)))
    assert float(y.std()) > 0.25
    assert float((y.abs() > 0.8).float().mean()) > 0.02


def test_conditional_dcgan_variant() -> None:
    """The optional class conditioning builds, requires a label, and uses it."""
    cls = architecture("dcgan")
    g = cls(num_classes=5).eval()
    assert isinstance(g, cls) and g.num_classes == 5
    assert list(inspect.signature(g.forward).parameters) == ["z", "label"]
    z = torch.randn(2, g.z_dim)
    with torch.no_grad():
        a = g(z, torch.tensor([0, 0]))
        b = g(z, torch.tensor([1, 3]))
    assert a.shape == (2, 3, 64, 64)
    assert not torch.equal(a, b)
    with pytest.raises(TypeError):
        g(z)


@pytest.mark.parametrize("name", NAMES)
def test_forward_signature_is_exact(name: str) -> None:
    """forward takes exactly the inputs the model needs, no Optional extras."""
    model = _load(name)
    expected = {"dcgan": ["z"], "stylegan2": ["z", "label"], "sr4x": ["image"]}[name]
    assert list(inspect.signature(model.forward).parameters) == expected


def test_sr_beats_bilinear_on_shapes() -> None:
    """The trained SR model beats bilinear upsampling (its own skip path) on fresh data."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_accelkit_shapes", MODELS_DIR / "shapes.py")
    assert spec is not None and spec.loader is not None
    shapes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shapes)
    model = _load("sr4x")
    hr = torch.from_numpy(shapes.make_shapes(4, 128, seed=777))
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    with torch.no_grad():
        sr = model(lr)
    bil = torch.nn.functional.interpolate(
        lr, scale_factor=4.0, mode="bilinear", align_corners=False
    )
    mse_sr = (sr - hr).square().mean()
    mse_bil = (bil - hr).square().mean()
    assert mse_sr < 0.9 * mse_bil
    # Fully convolutional: another input size works.
    with torch.no_grad():
        assert model(lr[:, :, :16, :24]).shape == (4, 3, 64, 96)


@pytest.mark.parametrize("name", NAMES)
def test_scriptable_and_traceable(name: str) -> None:
    """TorchScript (script for the generators, trace for all) gives the eager output."""
    model = _load(name)
    inp = _inputs(model, 2, seed=6)
    with torch.no_grad():
        ref = model(**inp)
        traced = torch.jit.trace(model, example_kwarg_inputs=inp, check_trace=False)
        torch.testing.assert_close(traced(**inp), ref, atol=1e-5, rtol=1e-5)
        scripted = torch.jit.script(model)
        torch.testing.assert_close(scripted(**inp), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_dynamic_batch(name: str) -> None:
    """TorchScript-based ONNX export (dynamo=False, opset 18) keeps the batch dynamic and
    matches torch at a batch size other than the one exported with. (The dynamo exporter
    takes 4-11 s per model here, too slow for this file; it was checked by hand, see
    models/README.md.)"""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import io
    import warnings

    model = _load(name)
    inp = _inputs(model, 2, seed=7)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(inp.values()),
            buf,
            dynamo=False,
            opset_version=18,
            input_names=list(inp),
            output_names=["out"],
            dynamic_axes={**{k: {0: "batch"} for k in inp}, "out": {0: "batch"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    assert [i.type.tensor_type.shape.dim[0].dim_param for i in proto.graph.input] == [
        "batch"
    ] * len(inp)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    inp3 = _inputs(model, 3, seed=8)
    with torch.no_grad():
        ref = model(**inp3).numpy()
    out = sess.run(None, {k: v.numpy() for k, v in inp3.items()})[0]
    assert out.shape == ref.shape
    assert abs(out - ref).max() < 1e-4
