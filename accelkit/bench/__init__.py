"""Benchmarking: throughput/latency measurement, FLOPs/MFU, the benchmark matrix and its versioned report.

Nothing here imports onnxruntime or tensorrt at import time; runners load them when activated.
"""

from accelkit.bench.harness import Latency, check_finite, flops_per_image_onnx, gpu_peak_flops, measure_throughput, mfu
from accelkit.bench.report import BenchRow, Report, collect_environment
from accelkit.bench.suite import BenchTarget, run_benchmark

__all__ = [
    "BenchRow",
    "BenchTarget",
    "Latency",
    "Report",
    "check_finite",
    "collect_environment",
    "flops_per_image_onnx",
    "gpu_peak_flops",
    "measure_throughput",
    "mfu",
    "run_benchmark",
]
