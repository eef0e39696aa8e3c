"""The pipeline layer: one function per command, typed options in, a result object out.

Each function loads what it needs, runs the passes / measurements and returns a result
that renders itself (``to_text()`` for the CLI, ``to_dict()`` for JSON,
``_repr_markdown_()`` for notebooks). The CLI is parsing + one call + printing.

Importing this package is light: torch, onnx and onnxruntime load when a function runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "info": "accelkit.pipelines.info",
    "InfoResult": "accelkit.pipelines.info",
    "export_onnx": "accelkit.pipelines.export",
    "ExportResult": "accelkit.pipelines.export",
    "quantize": "accelkit.pipelines.export",
    "QuantizeResult": "accelkit.pipelines.export",
    "prune_and_distill": "accelkit.pipelines.prune",
    "PruneResult": "accelkit.pipelines.prune",
    "build_engine": "accelkit.pipelines.build",
    "BuildResult": "accelkit.pipelines.build",
    "bench": "accelkit.pipelines.bench",
    "bench_vs": "accelkit.pipelines.bench",
    "BenchResult": "accelkit.pipelines.bench",
    "BenchVsResult": "accelkit.pipelines.bench",
    "drift_vs_reference": "accelkit.pipelines.bench",
    "fid": "accelkit.pipelines.fid",
    "FidRun": "accelkit.pipelines.fid",
    "compare": "accelkit.pipelines.compare",
    "CompareResult": "accelkit.pipelines.compare",
    "triton_repo": "accelkit.pipelines.serve",
    "TritonRepoResult": "accelkit.pipelines.serve",
    "serve": "accelkit.pipelines.serve",
    "ServeResult": "accelkit.pipelines.serve",
    "loadtest": "accelkit.pipelines.serve",
    "bench_serve": "accelkit.pipelines.serve",
    "LoadtestResult": "accelkit.pipelines.serve",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'accelkit.pipelines' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
