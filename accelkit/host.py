"""Facts about this machine's CPU and installed packages that runners and reports share.

Standard library only: nothing here imports torch or onnxruntime. The CPU runners take
their default thread count from :func:`default_threads` (physical cores this process may
use, minus the cores other processes keep busy); the benchmark report's environment block
(:mod:`accelkit.benchmark.environment`) records the cores, the ISA flags that decide which
kernels run (:func:`isa_flags`), the affinity and the load.
"""

from __future__ import annotations

import math
import os
import time
from importlib import metadata
from pathlib import Path

#: Distributions that install the ``onnxruntime`` module (they overwrite each other).
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-training",
)


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
            cores.add(
                (
                    (topo / "physical_package_id").read_text().strip(),
                    (topo / "core_id").read_text().strip(),
                )
            )
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


#: CPU flags (``/proc/cpuinfo`` names) that decide which kernels the CPU runtimes pick:
#: AVX2/FMA (baseline fp32), AVX-512 (wider fp32), VNNI (int8 dot products), AVX-512
#: BF16 and AMX (bf16/int8 matrix tiles), AVX-512 FP16.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def cpu_flags() -> frozenset[str]:
    """Every flag of the first CPU in ``/proc/cpuinfo`` (empty off Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def isa_flags() -> dict[str, bool]:
    """The flags of :data:`ISA_FLAGS`, name -> present on this CPU."""
    have = cpu_flags()
    return {f: f in have for f in ISA_FLAGS}


def isa_summary(flags: dict[str, bool] | None = None) -> str:
    """The widest ISA level in one word: ``amx``, ``avx512_bf16``, ``avx512_vnni``, ``avx512``, ``avx2`` or ``baseline``."""
    f = isa_flags() if flags is None else flags
    for name, keys in (
        ("amx", ("amx_tile", "amx_bf16")),
        ("avx512_bf16", ("avx512_bf16",)),
        ("avx512_vnni", ("avx512_vnni",)),
        ("avx512", ("avx512f",)),
        ("avx2", ("avx2",)),
    ):
        if all(f.get(k) for k in keys):
            return name
    return "baseline"


def has_native_bf16(flags: dict[str, bool] | None = None) -> bool:
    """True when the CPU computes bf16 in hardware (AVX-512 BF16 or AMX-BF16); elsewhere bf16 is emulated and slow."""
    f = isa_flags() if flags is None else flags
    return bool(f.get("avx512_bf16") or f.get("amx_bf16"))


def cpu_affinity() -> list[int]:
    """Logical CPUs this process may run on (all of them where the OS cannot tell)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def cpu_jiffies(cpus: list[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cpus`` from ``/proc/stat``; None off Linux."""
    want = {f"cpu{c}" for c in cpus}
    busy = total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in want:
                    vals = [
                        int(v) for v in parts[1:9]
                    ]  # user nice system idle iowait irq softirq steal
                    total += sum(vals)
                    busy += sum(vals) - vals[3] - vals[4]
    except (OSError, ValueError):
        return None
    return (busy, total) if total else None


def own_cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used, all threads."""
    t = os.times()
    return t.user + t.system


def busy_cores(interval_s: float = 0.3) -> float | None:
    """Cores kept busy by *other* processes, measured now over ``interval_s`` seconds.

    Reads ``/proc/stat`` for the CPUs this process may use before and after a sleep and
    subtracts this process's own CPU time. A number, not a load average: the 1-minute
    load average also counts this process's own threads of the last minute, so it
    cannot tell a benchmark's own work from a competitor's.

    Returns:
        Busy cores in ``[0, len(affinity)]`` (1.5 = one and a half cores' worth of
        other work), or None where ``/proc/stat`` is unavailable.
    """
    cpus = cpu_affinity()
    a = cpu_jiffies(cpus)
    own0 = own_cpu_seconds()
    w0 = time.monotonic()
    time.sleep(interval_s)
    b = cpu_jiffies(cpus)
    own = own_cpu_seconds() - own0
    wall = time.monotonic() - w0
    if a is None or b is None or b[1] <= a[1] or wall <= 0:
        return None
    share = (b[0] - a[0]) / (b[1] - a[1])  # busy fraction of all allowed CPUs
    others = share * len(cpus) - own / wall
    return max(0.0, min(float(len(cpus)), others))


#: A thread is given a core only when at least this share of the core is free.
FREE_CORE_SHARE = 0.75


def default_threads(busy: float | None = None) -> int:
    """Threads for a CPU runtime on this machine now: free physical cores, at least 1.

    ``floor(physical cores - busy cores + 1 - FREE_CORE_SHARE)``, at least 1 and at
    most the physical cores: on a quiet machine every physical core; when other
    processes keep cores busy, only the cores left (1 when the machine is loaded).
    Measured on a 2-core machine with one core kept busy (``benchmarks/threads_under_load.py``):
    torch eager with 2 threads collapses while 1 thread keeps its speed; see ``docs/cpu.md``.

    Args:
        busy: Cores busy with other work (default: :func:`busy_cores` measured now).
    """
    cores = available_physical_cores()
    if busy is None:
        busy = busy_cores()
    if busy is None:
        return cores
    return max(1, min(cores, math.floor(cores - busy + 1.0 - FREE_CORE_SHARE)))


def available_memory_bytes() -> int | None:
    """Memory a new allocation can take now, in bytes: ``MemAvailable`` of ``/proc/meminfo``.

    Falls back to free physical pages (``os.sysconf``); None where neither can be read.
    A cgroup limit below it (``memory.max``) wins.
    """
    avail: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            return None
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if text != "max":
            avail = min(avail, max(0, int(text) - used))
    except (OSError, ValueError):
        pass
    return avail


def process_age_s() -> float:
    """Seconds since this process started (Linux ``/proc``; 0.0 where it cannot tell).

    A command line's time budget (``optimize --time-budget``) counts from here, so the
    interpreter's start and the imports are inside it.
    """
    try:
        with open("/proc/self/stat") as f:
            after_comm = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(after_comm[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


__all__ = [
    "FREE_CORE_SHARE",
    "ISA_FLAGS",
    "ORT_DISTRIBUTIONS",
    "available_memory_bytes",
    "available_physical_cores",
    "busy_cores",
    "cpu_affinity",
    "cpu_flags",
    "cpu_jiffies",
    "default_threads",
    "has_native_bf16",
    "installed_ort_distributions",
    "isa_flags",
    "isa_summary",
    "own_cpu_seconds",
    "process_age_s",
]
