"""Benchmarking: throughput/latency measurement, the benchmark matrix and its versioned report.

* :mod:`~accelkit.bench.harness`: :func:`measure_throughput` -> :class:`Latency`.
* :mod:`~accelkit.bench.suite`: :func:`run_benchmark` over :class:`BenchTarget` configurations.
* :mod:`~accelkit.bench.report`: :class:`Report` and :class:`BenchRow` (the ``results.json`` data);
  :mod:`~accelkit.bench.render` (Markdown, CSV) and :mod:`~accelkit.bench.plot` (PNG charts) draw it.
* :mod:`~accelkit.bench.environment`: :func:`collect_environment`, where the numbers were measured.

FLOPs and MFU live in :mod:`accelkit.flops`; comparing reports (CI gates) in :mod:`accelkit.gate`.
Nothing here imports onnxruntime or tensorrt at import time; runners load them when activated.
"""

from accelkit.bench.environment import collect_environment
from accelkit.bench.harness import Latency, measure_throughput
from accelkit.bench.plot import plot_speed_vs_drift, plot_throughput
from accelkit.bench.report import BenchRow, Report
from accelkit.bench.suite import BenchTarget, run_benchmark

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
