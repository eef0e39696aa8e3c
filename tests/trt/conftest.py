"""Fixtures of the TensorRT tests: the fake TensorRT + CUDA world (see ``fake_tensorrt.py``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from accelkit import device
from tests.trt import fake_tensorrt


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """``import tensorrt`` and Polygraphy's ``trt`` are the fake; CUDA is :class:`FakeCudart` over host memory."""
    pytest.importorskip(
        "polygraphy", reason="polygraphy (the gpu and dev extras) builds and loads engines"
    )
    pytest.importorskip("onnx", reason="onnx builds the test models")
    pytest.importorskip("onnxruntime", reason="the fake engine executes with ONNX Runtime")
    trt = fake_tensorrt.install(monkeypatch)
    cudart = fake_tensorrt.FakeCudart()
    monkeypatch.setattr(
        device, "torch_with_cuda", lambda: None
    )  # buffers and device selection through cuda-python
    monkeypatch.setattr(device, "import_cudart", lambda: cudart)
    monkeypatch.setattr(device, "cuda_driver_version", lambda: "13.0")
    return SimpleNamespace(trt=trt, record=trt.RECORD, cudart=cudart)
