"""What ``accelkit info`` reports: format, size, parameters, spec and FLOPs per image.

(Named ``describe`` rather than ``inspect`` so it does not shadow the standard library module;
the FLOP counters it uses live in :mod:`accelkit.flops`.)
"""

from __future__ import annotations

from typing import Any

from accelkit.artifact import Artifact
from accelkit.files import sha256_file
from accelkit.flops import flops_per_image


def describe_artifact(artifact: Artifact) -> dict[str, Any]:
    """A JSON-ready description for ``accelkit info``."""
    params = artifact.meta.get("parameters")
    if params is None and artifact.format == "onnx" and artifact.path is not None:
        import numpy as np
        import onnx

        model = onnx.load(str(artifact.path), load_external_data=True)
        params = int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))
    src = artifact.source
    return {
        "file": src if artifact.path is None else str(artifact.path),
        "format": artifact.meta.get("loader", artifact.format),
        "artifact_format": artifact.format,
        "precision": artifact.precision,
        "bytes": artifact.meta.get("file_bytes"),
        "sha256": artifact.source_sha256 if artifact.path is None else sha256_file(artifact.path),
        "architecture": artifact.meta.get("arch"),
        "parameters": params,
        "flops_per_image": flops_per_image(artifact),
        "spec": artifact.spec.to_dict(),
        "spec_lines": artifact.spec.describe(),
        "passes": [p.get("name") for p in artifact.passes],
    }


__all__ = ["describe_artifact"]
