"""Benchmarking: throughput/latency measurement, the benchmark matrix and its versioned report.

* :mod:`~accelkit.benchmark.harness`: :func:`measure_throughput` -> :class:`Latency`.
* :mod:`~accelkit.benchmark.suite`: :func:`run_benchmark` over :class:`BenchTarget` configurations.
* :mod:`~accelkit.benchmark.report`: :class:`Report` and :class:`BenchRow` (the ``results.json`` data);
  :mod:`~accelkit.benchmark.render` (Markdown, CSV) and :mod:`~accelkit.benchmark.plot` (PNG charts) draw it.
* :mod:`~accelkit.benchmark.environment`: :func:`collect_environment`, where the numbers were measured.

FLOPs and MFU live in :mod:`accelkit.flops`; comparing reports (CI gates) in :mod:`accelkit.gate`.
Nothing here imports onnxruntime or tensorrt at import time; runners load them when activated.
"""

from accelkit.benchmark.environment import collect_environment
from accelkit.benchmark.harness import Latency, measure_throughput
from accelkit.benchmark.plot import plot_speed_vs_drift, plot_throughput
from accelkit.benchmark.report import BenchRow, Report
from accelkit.benchmark.suite import BenchTarget, run_benchmark

__all__ = [
    "BenchRow",
    "BenchTarget",
    "Latency",
    "Report",
    "collect_environment",
    "measure_throughput",
    "plot_speed_vs_drift",
    "plot_throughput",
    "run_benchmark",
]
