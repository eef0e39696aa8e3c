"""Super-resolution state_dicts without --arch: spandrel detects the architecture (extra [sr]).

The tests that need spandrel carry the ``sr`` marker and skip where it cannot be imported
(spandrel 0.4 imports torchvision, which needs the torch build it was made for); CI runs
them in a second environment (``.ci/run``). The last test checks the message where it is
missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from accelkit.errors import InputError
from accelkit.loading import load_generator
from accelkit.loading.spandrel_sr import nominal_size, spandrel_available
from tests.fixtures.families import TINY_RRDB, RRDBNet, write_rrdbnet

REASON = spandrel_available()


@pytest.fixture(scope="module")
def rrdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rrdbnet(tmp_path_factory.mktemp("sr") / "RealESRGAN_x4plus-tiny.pth")


def test_nominal_size_meets_the_architectures_requirements() -> None:
    assert (
        nominal_size(2, 1) == 64
        and nominal_size(2, 8) == 64
        and nominal_size(80, 16) == 80
        and nominal_size(1, 48) == 96
    )


def _ref(path: Path) -> RRDBNet:
    net = RRDBNet(**TINY_RRDB).eval()
    net.load_state_dict(torch.load(path, weights_only=True)["params_ema"])
    return net


@pytest.mark.sr
@pytest.mark.skipif(REASON is not None, reason=f"spandrel is not importable here: {REASON}")
def test_real_esrgan_state_dict_loads_without_arch(rrdb) -> None:
    art = load_generator(rrdb)
    assert art.meta["arch"] == "spandrel:ESRGAN" and art.meta["spandrel"]["scale"] == 4
    assert [(i.name, i.kind, i.shape) for i in art.spec.inputs] == [("image", "image", (3, 64, 64))]
    assert art.spec.output_shape == (3, 256, 256) and art.spec.output_range == (0.0, 1.0)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(art.module(x), _ref(rrdb)(x), atol=1e-5, rtol=1e-4)


@pytest.mark.sr
@pytest.mark.skipif(REASON is not None, reason=f"spandrel is not importable here: {REASON}")
def test_spandrel_model_exports_with_dynamic_hw(rrdb, tmp_path) -> None:
    from accelkit.passes.export import OnnxFromTorch
    from accelkit.passes.verify import ort_session
    from accelkit.spec import InputSpec

    art = load_generator(
        rrdb, inputs=[InputSpec("image", "image", (3, 16, 16))], hw_range=(0, 0, 0)
    )
    out = OnnxFromTorch(tmp_path / "sr.onnx", batch_range=(1, 2, 4))(art)
    assert out.meta["verification"]["sizes"] == [[16, 16], [8, 8]]
    sess = ort_session(out.path)
    for hw in (12, 20):
        x = np.random.default_rng(hw).random((1, 3, hw, hw), dtype=np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(
                sess.run(None, {"image": x})[0], _ref(rrdb)(torch.from_numpy(x)).numpy(), atol=1e-4
            )


@pytest.mark.skipif(
    REASON is None, reason="spandrel is importable here; this checks the message where it is not"
)
def test_without_spandrel_the_error_says_arch_or_the_sr_extra(rrdb) -> None:
    with pytest.raises(InputError) as info:
        load_generator(rrdb)
    msg = str(info.value)
    assert "--arch" in msg and "accelkit[sr]" in msg and "spandrel" in msg
