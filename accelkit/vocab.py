"""Every closed vocabulary of accelkit, defined once: precisions, build sources, calibration
methods, exporters, FID modes, serving choices...

The one exception is the list of backends: it is the runner registry
(:func:`accelkit.runners.base.backend_names`), because a backend is a class that registers
itself. Everything else that a flag, an option object, a sidecar or a report column
spells out as a choice comes from here, so ``grep`` finds one definition of each.

Standard library only (a bottom-layer module): importing it costs nothing.
"""

from __future__ import annotations

from enum import Enum


class Precision(str, Enum):
    """Numeric precision of a build or a report row."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"
    bf16 = "bf16"


#: Every precision, in the order reports and flags list them.
PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)
#: Precisions an ONNX graph can hold (bf16 is a runtime precision: torch autocast, OpenVINO's hint).
ONNX_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
#: What ``bench`` measures when no ``--precision`` is given (plus an int8 ONNX file's own).
DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16")


class ArtifactKind(str, Enum):
    """What an artifact file holds (``Artifact.format``): the first coordinate of a backend's
    "can you run this?" question (see :class:`accelkit.runners.base.Ask`)."""

    torch = "torch"
    onnx = "onnx"
    trt = "trt"


#: Derived artifacts the builder (:mod:`accelkit.passes.build`) makes, by name: what a
#: backend's recipe asks for. ``torch`` is the generator itself.
SOURCE_TORCH = "torch"


def onnx_source(precision: str) -> str:
    """The build source of an ONNX file of ``precision``: ``onnx-fp32``, ``onnx-fp16``, ``onnx-int8``."""
    return f"onnx-{precision}"


class CalibMethod(str, Enum):
    """INT8 calibration method (ONNX Runtime's calibrators)."""

    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


CALIB_METHODS: tuple[str, ...] = tuple(m.value for m in CalibMethod)


class Exporter(str, Enum):
    """Which torch ONNX exporter runs (``auto``: dynamo, falling back to TorchScript)."""

    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


EXPORTERS: tuple[str, ...] = tuple(e.value for e in Exporter)


class Importance(str, Enum):
    """Channel importance for structured pruning."""

    l2 = "l2"
    l1 = "l1"
    random = "random"


class DistillLoss(str, Enum):
    """Pixel loss of data-free distillation."""

    l1 = "l1"
    l2 = "l2"


class LatentDistribution(str, Enum):
    """Prior latents are drawn from."""

    normal = "normal"
    uniform = "uniform"


#: Resize before the FID network, as clean-fid names its modes (``clean`` is the default).
FID_MODES: tuple[str, ...] = ("clean", "legacy-tensorflow", "legacy-pytorch")
#: Precision of the FID feature network.
FID_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


class InstanceKind(str, Enum):
    """Where Triton places model instances (``instance_group.kind``); ``auto``: GPU for engines, else CPU."""

    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class Protocol(str, Enum):
    """Triton's client protocols."""

    grpc = "grpc"
    http = "http"


class LoadTool(str, Enum):
    """Who generates the load: perf_analyzer when installed (``auto``), else a tritonclient closed loop."""

    auto = "auto"
    perf_analyzer = "perf_analyzer"
    tritonclient = "tritonclient"


__all__ = [
    "CALIB_METHODS",
    "DEFAULT_PRECISIONS",
    "EXPORTERS",
    "FID_MODES",
    "FID_PRECISIONS",
    "ONNX_PRECISIONS",
    "PRECISIONS",
    "SOURCE_TORCH",
    "ArtifactKind",
    "CalibMethod",
    "DistillLoss",
    "Exporter",
    "Importance",
    "InstanceKind",
    "LatentDistribution",
    "LoadTool",
    "Precision",
    "Protocol",
    "onnx_source",
]
