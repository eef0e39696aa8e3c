"""accelkit: make trained image generators fast, and prove it.

Load a generator (:func:`accelkit.loading.load_generator`), export verified ONNX
(:class:`accelkit.passes.export.OnnxFromTorch`, :class:`accelkit.passes.fp16.Fp16`),
run it on any backend (:mod:`accelkit.runners`) and measure images/sec and quality drift.

Importing this package loads only the core dependencies; onnxruntime, tensorrt and
CUDA buffer libraries are imported when a feature needs them.
"""

from __future__ import annotations

from accelkit.errors import AccelkitError

__version__ = "0.1.0"

__all__ = ["AccelkitError", "__version__"]
