"""TensorRT: build engines from typed ONNX and run them, on NVIDIA GPUs.

One package owns the backend, as Polygraphy's ``backend/trt`` does:

* :mod:`accelkit.trt.platform`: the lazy ``tensorrt``/``polygraphy`` imports, logging,
  and which plans may be loaded (trusted: built by accelkit; compatible: this TensorRT
  version and GPU);
* :mod:`accelkit.trt.build`: :class:`~accelkit.trt.build.EngineFromOnnx`, the pass that
  builds a strongly typed engine through Polygraphy's loaders, with accelkit's engine
  cache and a locked, merged timing cache;
* :mod:`accelkit.trt.runner`: :class:`~accelkit.trt.runner.TrtRunner`, the ``trt``
  backend (inputs and outputs stay on the device);
* :mod:`accelkit.trt.memory`: device buffers (torch CUDA tensors or cuda-python).

Importing this package imports none of tensorrt, polygraphy, torch or a CUDA library.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "EngineFromOnnx": "accelkit.trt.build",
    "TrtRunner": "accelkit.trt.runner",
    "check_plan_compatible": "accelkit.trt.platform",
    "check_plan_trusted": "accelkit.trt.platform",
    "tensorrt_import_problem": "accelkit.trt.platform",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import the public names on first use (PEP 562), keeping ``import accelkit.trt`` light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'accelkit.trt' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
