"""Serving fixtures: the bundled DCGAN exported once for every serving test."""

from __future__ import annotations

import pytest

from accelkit.artifact import Artifact


@pytest.fixture(scope="session")
def dcgan_onnx(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """The bundled DCGAN as an fp32 ONNX artifact (skips when the serve extra is missing: nothing
    here is worth exporting without a server to serve it)."""
    pytest.importorskip(
        "pytriton.triton",
        reason="the serve extra (nvidia-pytriton) is not installed: pip install 'accelkit[serve]'",
    )
    from accelkit.loading import load_generator
    from accelkit.passes.export import OnnxFromTorch

    return OnnxFromTorch(tmp_path_factory.mktemp("serve") / "dcgan.onnx", force=True)(
        load_generator("dcgan")
    )
