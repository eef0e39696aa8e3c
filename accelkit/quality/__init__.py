"""Quality metrics for generators: FID/KID on Inception features, paired errors.

* :mod:`accelkit.quality.images`: the one image path (quantize like a PNG, fixed
  resize, extractor input range) and folder loading.
* :mod:`accelkit.quality.features`: :class:`FeatureExtractor` (FID Inception-v3 via
  ONNX Runtime on CPU, torch on CUDA; or any TorchScript file).
* :mod:`accelkit.quality.metrics`: :class:`StreamingStats`, :func:`fid_from_stats`,
  :func:`kid`, :func:`paired_metrics`, stats files with provenance, :func:`fid_between`.

Importing this package loads numpy only; torch and onnxruntime load on first use.
"""

from __future__ import annotations

from accelkit.quality.features import FeatureExtractor
from accelkit.quality.images import RESIZE_MODE, to_uint8
from accelkit.quality.metrics import (
    FidResult,
    KidResult,
    PairedMetrics,
    StatsProvenance,
    StreamingStats,
    accumulate,
    check_compatible,
    fid_between,
    fid_between_stats,
    fid_from_stats,
    kid,
    load_stats,
    paired_metrics,
    save_stats,
    stats_from_folder,
    stats_from_source,
)

__all__ = [
    "RESIZE_MODE",
    "FeatureExtractor",
    "FidResult",
    "KidResult",
    "PairedMetrics",
    "StatsProvenance",
    "StreamingStats",
    "accumulate",
    "check_compatible",
    "fid_between",
    "fid_between_stats",
    "fid_from_stats",
    "kid",
    "load_stats",
    "paired_metrics",
    "save_stats",
    "stats_from_folder",
    "stats_from_source",
    "to_uint8",
]
