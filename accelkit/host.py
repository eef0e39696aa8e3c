"""Facts about this machine's CPU and installed packages that runners and reports share.

Standard library only: nothing here imports torch or onnxruntime. The ONNX Runtime
runner takes its default thread count from :func:`available_physical_cores`; the
benchmark report's environment block (:mod:`accelkit.benchmark.environment`) records both.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

#: Distributions that install the ``onnxruntime`` module (they overwrite each other).
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-training")


def available_physical_cores() -> int:
    """Physical CPU cores this process may run on (affinity mask, hyper-threads merged).

    Reads ``os.sched_getaffinity`` and Linux's ``/sys/.../topology`` to count distinct
    (package, core) pairs among the allowed logical CPUs; falls back to the number of
    allowed logical CPUs, then to ``os.cpu_count()``.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores) or len(cpus))


def installed_ort_distributions() -> dict[str, str]:
    """Installed distributions that provide the ``onnxruntime`` module, name -> version (``importlib.metadata``)."""
    found: dict[str, str] = {}
    for dist in ORT_DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


__all__ = ["ORT_DISTRIBUTIONS", "available_physical_cores", "installed_ort_distributions"]
