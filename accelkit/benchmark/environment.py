"""Where a benchmark ran: the ``environment`` block of ``results.json``.

Package versions are read with ``importlib.metadata`` (no package is imported for its
version), CPU facts from the OS (:mod:`accelkit.host`), GPU identity from
:mod:`accelkit.device`. Nothing here imports onnxruntime or a runner module; torch is
asked for its thread pools and CUDA build. Fields: ``docs/results-schema.md``.
"""

from __future__ import annotations

import logging
import os
import platform
from typing import Any

from accelkit.artifact import tool_versions
from accelkit.device import gpu_identity
from accelkit.host import (
    available_physical_cores,
    cpu_affinity,
    installed_ort_distributions,
    isa_flags,
    isa_summary,
)

log = logging.getLogger(__name__)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows, else ``unknown``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _add_gpus(torch: Any, out: list[dict[str, Any]]) -> None:
    """Append one entry per GPU torch's CUDA build sees: ``index``, ``name``, ``compute_capability``, ``memory_mb``."""
    if not torch.cuda.is_available():
        return
    for i in range(torch.cuda.device_count()):
        ident = gpu_identity(i)
        mem = ident.get("memory_bytes")
        out.append(
            {
                "index": i,
                "name": ident["name"],
                "compute_capability": ident["compute_capability"],
                "memory_mb": round(mem / 2**20) if mem is not None else None,
            }
        )


def collect_environment() -> dict[str, Any]:
    """Where the numbers were measured: versions, CPU, GPU, thread settings.

    Returns:
        A JSON-ready dict; see ``docs/results-schema.md`` (``environment``).
    """
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 1
    isa = isa_flags()
    env: dict[str, Any] = {
        "versions": tool_versions(),
        "onnxruntime_distributions": installed_ort_distributions(),
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "cpu": {
            "model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "available_cores": affinity,
            "physical_cores": available_physical_cores(),
            "affinity": cpu_affinity(),
            "isa": {"summary": isa_summary(isa), "flags": isa},
        },
        "gpus": [],
        "threads": {},
    }
    try:
        env["cpu"]["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        env["cpu"]["load_average"] = None
    try:
        import torch

        env["threads"] = {
            "torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(),
        }
        env["cuda"] = torch.version.cuda
        _add_gpus(torch, env["gpus"])
    except Exception as exc:  # noqa: BLE001 - the environment block is informative
        log.warning("could not query torch for the environment block: %s", exc)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "ONEDNN_MAX_CPU_ISA"):
        if var in os.environ:
            env["threads" if "THREADS" in var else "platform"][var] = os.environ[var]
    try:
        from importlib import metadata

        env["versions"].setdefault("openvino", metadata.version("openvino"))
    except Exception:  # noqa: BLE001 - not installed
        pass
    return env


__all__ = ["collect_environment", "cpu_model"]
