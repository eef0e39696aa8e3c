"""Benchmarking: throughput/latency measurement, the benchmark matrix and its versioned report.

FLOPs and MFU live in :mod:`accelkit.flops`. Nothing here imports onnxruntime or tensorrt at import time; runners load them when activated.
"""

from accelkit.bench.harness import Latency, measure_throughput
from accelkit.bench.report import BenchRow, Report, collect_environment
from accelkit.bench.suite import BenchTarget, run_benchmark

__all__ = [
    "BenchRow",
    "BenchTarget",
    "Latency",
    "Report",
    "collect_environment",
    "measure_throughput",
    "run_benchmark",
]
