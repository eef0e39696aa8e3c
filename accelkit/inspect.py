"""What ``accelkit info`` reports: format, size, parameters, spec and FLOPs per image."""

from __future__ import annotations

from typing import Any

from accelkit.artifact import Artifact
from accelkit.files import sha256_file


def count_flops(module: Any, args: tuple[Any, ...]) -> int | None:
    """FLOPs of ``module(*args)`` counted by ``torch.utils.flop_counter`` (2 per MAC of
    matmul/conv/conv-transpose); None when the module cannot run under the counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            module(*args)
        return int(counter.get_total_flops())
    except Exception:  # some ScriptModules/GraphModules do not run under the mode
        return None


def flops_per_image_torch(artifact: Artifact) -> int | None:
    """FLOPs of one forward pass at batch 1, counted by ``torch.utils.flop_counter``.

    Counts matmul/conv/conv-transpose FLOPs (2 per MAC), as usual for MFU figures.
    Returns None when the module cannot be traced by the counter.
    """
    import torch

    from accelkit.sampler import LatentSampler

    feeds = LatentSampler(artifact.spec, seed=0).inputs(0, 1)
    return count_flops(artifact.module, tuple(torch.from_numpy(feeds[i.name]) for i in artifact.spec.inputs))


def flops_per_image(artifact: Artifact) -> int | None:
    """FLOPs per generated image for a torch or ONNX artifact (None if unknown)."""
    if artifact.format == "torch" and artifact.module is not None:
        return flops_per_image_torch(artifact)
    if artifact.format == "onnx" and artifact.path is not None:
        from accelkit.bench.harness import flops_per_image_onnx

        return flops_per_image_onnx(artifact.path, artifact.spec)
    return None


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
