"""accelkit: make trained image generators fast, and prove it.

The public API, importable from the top level::

    import accelkit as ak

    gen = ak.load_generator("dcgan")                                    # or a .pt/.pt2/.onnx/.safetensors path
    fp16 = ak.export_onnx(gen, ak.ExportOptions(out="g.fp16.onnx", precision="fp16")).artifact
    result = ak.bench(gen, ak.BenchOptions(backends=["torch", "ort"], batch_sizes=[1, 8], out="results"))
    print(result.report.to_markdown())

Pipelines (:mod:`accelkit.pipelines`): ``info``, ``export_onnx``, ``quantize``,
``prune_and_distill``, ``build_engine``, ``bench``, ``bench_vs``, ``fid``, ``compare``,
``optimize`` (the fastest build within a quality budget).
Building blocks: :func:`load_generator`, :class:`GeneratorSpec`, :class:`Artifact`,
:class:`LatentSampler`, the passes (:class:`OnnxFromTorch`, :class:`Fp16`, :class:`Int8`,
:class:`Prune`, :class:`EngineFromOnnx`), :func:`create_runner`,
:func:`measure_throughput`, :func:`measure_drift`, :class:`Report`, :func:`compare_reports`;
the quality verdict: :class:`VerdictSettings`, :func:`judge`, :func:`compare_builds`.

Every name is imported on first use: ``import accelkit`` loads neither torch nor
onnxruntime nor tensorrt.
"""

from __future__ import annotations

import importlib
from typing import Any

from accelkit._version import __version__
from accelkit.errors import AccelkitError

_EXPORTS = {
    # core
    "load_generator": "accelkit.loading",
    "GeneratorSpec": "accelkit.spec",
    "InputSpec": "accelkit.spec",
    "Artifact": "accelkit.artifact",
    "LatentSampler": "accelkit.sampler",
    # passes
    "OnnxFromTorch": "accelkit.passes.export",
    "Fp16": "accelkit.passes.fp16",
    "Int8": "accelkit.passes.int8",
    "Prune": "accelkit.passes.prune",
    "distill": "accelkit.passes.distill",
    "EngineFromOnnx": "accelkit.trt.build",
    # running and measuring
    "create_runner": "accelkit.runners.base",
    "available_backends": "accelkit.runners.base",
    "measure_throughput": "accelkit.benchmark.harness",
    "measure_drift": "accelkit.quality.drift",
    "DriftMeter": "accelkit.quality.drift",
    "VerdictSettings": "accelkit.quality.verdict",
    "judge": "accelkit.quality.verdict",
    "compare_builds": "accelkit.quality.verdict",
    "FeatureExtractor": "accelkit.quality.features",
    "Report": "accelkit.benchmark.report",
    "compare_reports": "accelkit.gate.compare",
    # options
    "LoadOptions": "accelkit.pipelines.options",
    "ExportOptions": "accelkit.pipelines.options",
    "Int8Options": "accelkit.pipelines.options",
    "QuantizeOptions": "accelkit.pipelines.options",
    "PruneOptions": "accelkit.pipelines.options",
    "BuildOptions": "accelkit.pipelines.options",
    "FidOptions": "accelkit.pipelines.options",
    "CompareOptions": "accelkit.pipelines.options",
    "BenchOptions": "accelkit.benchmark.plan",
    "Timing": "accelkit.options",
    "Threads": "accelkit.options",
    "FidSettings": "accelkit.options",
    "Int8Settings": "accelkit.options",
    "Fp16Settings": "accelkit.options",
    "OnnxSettings": "accelkit.options",
    # pipelines
    "info": "accelkit.pipelines.info",
    "export_onnx": "accelkit.pipelines.export",
    "quantize": "accelkit.pipelines.export",
    "prune_and_distill": "accelkit.pipelines.prune",
    "build_engine": "accelkit.pipelines.build",
    "bench": "accelkit.pipelines.bench",
    "bench_vs": "accelkit.pipelines.bench",
    "fid": "accelkit.pipelines.fid",
    "compare": "accelkit.pipelines.compare",
    "optimize": "accelkit.pipelines.optimize",
    "OptimizeOptions": "accelkit.pipelines.options",
}

__all__ = ["AccelkitError", "__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'accelkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
