"""Serving an accelerated generator on Triton Inference Server, and measuring it under load.

* :mod:`accelkit.serving.repository` writes a standard Triton model repository
  (``config.pbtxt`` + ``1/model.onnx`` or ``1/model.plan``) for an artifact; needs
  nothing beyond the core dependencies.
* :mod:`accelkit.serving.server` runs a real Triton Inference Server in-process with
  PyTriton, binding an accelkit runner (torch, ort, trt, openvino) as the model.
* :mod:`accelkit.serving.loadgen` drives a concurrency sweep against a running server
  (perf_analyzer where it is installed, a tritonclient closed loop otherwise) and reads
  Triton's own statistics for the server-side queue vs compute split.

PyTriton and tritonclient come with the ``serve`` extra (``pip install 'accelkit[serve]'``)
and are imported only when a server starts or a load test runs. Nothing here imports
the CLI or the pipelines.
"""

from __future__ import annotations
