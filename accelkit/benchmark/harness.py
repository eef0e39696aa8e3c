"""Throughput and latency measurement (FLOPs and MFU live in :mod:`accelkit.flops`).

How :func:`measure_throughput` measures (see DESIGN.md, "Measuring honestly"):

1. One batch of inputs is drawn from the :class:`~accelkit.sampler.LatentSampler`
   (samples ``0 .. batch-1``) and placed on the device once (``runner.prepare``).
2. ``warmup`` untimed iterations run first (lazy initialisation, allocator growth,
   cuDNN/oneDNN algorithm choice, compilation).
3. Each repeat runs iterations until their timed total reaches ``min_time_s`` (at
   least one; a fixed ``iters_per_repeat`` may be given instead). Bounding repeats by
   time rather than by a count calibrated in advance keeps a measurement short even
   when a shared machine slows down half-way.
4. ``repeats`` repeats run; every iteration is timed around ``run()`` +
   ``synchronize()``: ``time.perf_counter`` on CPU, CUDA events on a CUDA device (with
   a CUDA build of torch; otherwise ``perf_counter`` again, recorded in ``timer``).
   Outputs stay on the device. Python's garbage collector is paused while timing.
5. Each repeat gives one images/sec sample, ``batch * iterations / sum(iteration
   latencies)``; the raw samples are kept (a CI gate bootstraps over them) and the
   median is the headline number.
6. The output of the last warm-up iteration and of the last timed iteration are
   copied to the host and checked: NaN or Inf raises
   :class:`~accelkit.errors.NonFiniteOutputError`; values far outside the spec's output
   range (:data:`~accelkit.quality.images.RANGE_TOLERANCE`) raise
   :class:`~accelkit.errors.SpecError`. Every iteration's output shape is compared with
   the first one's, outside the timed region (a tuple comparison): a shape that changes
   between calls raises :class:`~accelkit.errors.SpecError`. Either fails the row.

Default budget: with ``warmup=3``, ``repeats=5`` and ``min_time_s=0.5`` a fast row costs
about ``3 * t_iter + 5 * 0.5 s`` ≈ 2.7 s, so the six rows of a default CPU bench (torch
fp32, ort fp32, ort fp16 at batches 1 and 8) take ≈ 20 s of timing; five samples are
enough for a median and an interquartile range, and half a second per repeat averages
over the scheduler noise of a shared 2-core machine. A slow row (one iteration longer
than ``min_time_s``) runs one iteration per repeat, i.e. ``(warmup + repeats) * t_iter``.
Measured with ``benchmarks/bench_budget.py`` (DCGAN 3x64x64, 2 cores shared with other
work, load average ~5): 26 s for the six rows, 42 s including ONNX export and the fp16
pass, against a budget of 120 s.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from accelkit.benchmark.stability import ContentionProbe
from accelkit.errors import InputError
from accelkit.options import Timing
from accelkit.quality.images import check_finite, check_range
from accelkit.runners.base import Runner
from accelkit.sampler import LatentSampler
from accelkit.stats import median, quantile

log = logging.getLogger(__name__)

#: The harness's defaults are :class:`accelkit.options.Timing`'s (defined there, once).
DEFAULT_WARMUP = Timing().warmup
DEFAULT_REPEATS = Timing().repeats
DEFAULT_MIN_TIME_S = Timing().min_time_s
DEFAULT_MAX_ITERS_PER_REPEAT = 10_000


# --------------------------------------------------------------------------- results
@dataclass
class Latency:
    """What one throughput measurement found, for one runner at one batch size.

    Attributes:
        batch_size: Images per iteration.
        device: The runner's device (``cpu``, ``cuda:0``...).
        warmup: Untimed iterations run first.
        iters_per_repeat: Timed iterations in each repeat (one count per repeat).
        latencies_ms: Every timed iteration's latency in milliseconds (all repeats,
            in order), ``run()`` + ``synchronize()`` of one batch.
        images_per_sec_samples: One throughput sample per repeat, images/second:
            ``batch_size * iters_per_repeat / (sum of that repeat's latencies)``.
        timer: ``perf_counter`` or ``cuda_events``.
        peak_memory_mb: See ``memory_kind``; None where it could not be measured.
        memory_kind: What ``peak_memory_mb`` means:
            ``cpu_peak_rss_delta`` (Linux: the process's resident-set high-water mark
            is reset when the measurement starts, and the value is that peak minus the
            resident set at the start: the extra host memory the measurement needed,
            including the runner's activation when the harness activated it),
            ``cpu_max_rss_delta`` (where the mark cannot be reset: growth of
            ``getrusage(RUSAGE_SELF).ru_maxrss``; 0 when the process had been bigger
            before, so a lower bound), ``cuda_torch_max_allocated`` (peak bytes held by torch's
            CUDA caching allocator; used for the torch backend),
            ``cuda_device_used_delta`` (device memory in use after the run minus
            before, all allocators; used for backends that allocate outside torch),
            ``runner_reported`` (the runner's own ``peak_memory_bytes()``) or ``none``.
        wall_seconds: Wall time of the whole measurement (prepare, warm-up, repeats).
        load_average_1m: The machine's 1-minute load average when the measurement
            started (None where unknown): above the number of cores, other processes
            competed for the CPU and the numbers are pessimistic and noisy.
        contention: CPU runs only: what other processes did to the CPUs during the
            timed repeats (:class:`accelkit.benchmark.stability.Contention` as a dict:
            ``busy_cores_others``, ``cpus``, ``wall_seconds``); None on CUDA or where
            ``/proc/stat`` is unavailable.
        extra: Anything else worth keeping.
    """

    batch_size: int
    device: str
    warmup: int
    iters_per_repeat: list[int]
    latencies_ms: list[float]
    images_per_sec_samples: list[float]
    timer: str = "perf_counter"
    peak_memory_mb: float | None = None
    memory_kind: str = "none"
    wall_seconds: float = 0.0
    load_average_1m: float | None = None
    contention: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        """Number of repeats (= number of images/sec samples)."""
        return len(self.images_per_sec_samples)

    @property
    def images_per_sec(self) -> float:
        """Median of the per-repeat images/sec samples."""
        return median(self.images_per_sec_samples)

    @property
    def spread(self) -> dict[str, float]:
        """Spread of the per-repeat images/sec samples: ``p25``, ``p75``, ``iqr``, ``min``, ``max``."""
        s = self.images_per_sec_samples
        p25, p75 = quantile(s, 0.25), quantile(s, 0.75)
        return {
            "p25": p25,
            "p75": p75,
            "iqr": p75 - p25,
            "min": float(min(s)),
            "max": float(max(s)),
        }

    def latency_percentile(self, q: float) -> float:
        """Latency percentile ``q`` in [0, 100], milliseconds."""
        return quantile(self.latencies_ms, q / 100.0)

    @property
    def latency_ms(self) -> dict[str, float]:
        """Per-iteration latency summary in milliseconds: ``p50``, ``p90``, ``p99``, ``mean``, ``min``, ``max``."""
        lat = self.latencies_ms
        return {
            "p50": self.latency_percentile(50),
            "p90": self.latency_percentile(90),
            "p99": self.latency_percentile(99),
            "mean": float(statistics.fmean(lat)),
            "min": float(min(lat)),
            "max": float(max(lat)),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the raw fields plus the derived summaries."""
        d = asdict(self)
        d.update(
            repeats=self.repeats,
            images_per_sec=self.images_per_sec,
            images_per_sec_spread=self.spread,
            latency_ms_summary=self.latency_ms,
        )
        return d


# --------------------------------------------------------------------------- memory
def _maxrss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def _proc_status_mb(field_name: str) -> float | None:
    """``VmRSS``/``VmHWM`` of this process from ``/proc/self/status``, MB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux >= 4.0: ``5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _torch_cuda(device: str) -> Any:
    """The ``torch`` module when ``device`` is CUDA and torch can use it, else None."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return None
    return torch if torch.cuda.is_available() else None


class _MemoryProbe:
    """Measures the memory a measurement needed; see :attr:`Latency.memory_kind`."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.torch = _torch_cuda(runner.device)
        self.rss0 = 0.0
        self.used0 = 0.0
        if callable(getattr(runner, "peak_memory_bytes", None)):
            self.kind = "runner_reported"
        elif self.torch is not None:
            self.kind = (
                "cuda_torch_max_allocated" if runner.name == "torch" else "cuda_device_used_delta"
            )
        elif runner.device.startswith("cuda"):
            self.kind = "none"
        else:
            rss = _proc_status_mb("VmRSS")
            if rss is not None and _reset_peak_rss():
                self.kind, self.rss0 = "cpu_peak_rss_delta", rss
            else:
                self.kind, self.rss0 = "cpu_max_rss_delta", _maxrss_mb()
        if self.kind == "cuda_torch_max_allocated":
            self.torch.cuda.reset_peak_memory_stats(runner.device)
        elif self.kind == "cuda_device_used_delta":
            free, total = self.torch.cuda.mem_get_info(runner.device)
            self.used0 = (total - free) / 2**20

    def peak_mb(self) -> float | None:
        try:
            if self.kind == "runner_reported":
                got = self.runner.peak_memory_bytes()  # type: ignore[attr-defined]
                return None if got is None else float(got) / 2**20
            if self.kind == "cuda_torch_max_allocated":
                return float(self.torch.cuda.max_memory_allocated(self.runner.device)) / 2**20
            if self.kind == "cuda_device_used_delta":
                free, total = self.torch.cuda.mem_get_info(self.runner.device)
                return max(0.0, float(total - free) / 2**20 - self.used0)
            if self.kind == "cpu_peak_rss_delta":
                hwm = _proc_status_mb("VmHWM")
                return None if hwm is None else max(0.0, hwm - self.rss0)
            if self.kind == "cpu_max_rss_delta":
                return max(0.0, _maxrss_mb() - self.rss0)
        except Exception as exc:  # noqa: BLE001 - memory is informative, never fatal
            log.warning("could not read peak memory (%s): %s", self.kind, exc)
        return None


# --------------------------------------------------------------------------- timing
def _describe_run(runner: Runner, batch: int) -> str:
    return f"{runner.name} {runner.precision} on {runner.device} at batch {batch}"


def _shape_of(out: Any) -> tuple[int, ...] | None:
    """The shape of a runner's output where reading it costs nothing (a tensor's or array's
    ``shape`` attribute); None for outputs that do not expose one so (an IO binding)."""
    shape = getattr(out, "shape", None)
    return tuple(shape) if isinstance(shape, tuple) else None


class _ShapeCheck:
    """Checks, after every iteration (outside its timing), that the output keeps one shape.

    A generator whose output shape changes between calls of the same batch (state kept
    in the module, a shape that depends on the input values) cannot be measured: each
    images/sec sample would be of another workload.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.shape: tuple[int, ...] | None = None

    def __call__(self, out: Any) -> None:
        shape = _shape_of(out)
        if shape is None:
            return
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            from accelkit.errors import SpecError

            raise SpecError(
                f"{self.what}: the output shape changed between calls ({'x'.join(map(str, self.shape))}, then "
                f"{'x'.join(map(str, shape))}) for the same inputs; a generator must return one shape per batch, "
                "so its speed is not one number: fix the generator"
            )


def _time_iters(
    runner: Runner,
    prepared: Any,
    n: int,
    torch_cuda: Any,
    min_time_s: float = 0.0,
    check: _ShapeCheck | None = None,
) -> tuple[list[float], Any]:
    """Time iterations of run()+synchronize(); return (latencies in ms, last output).

    Runs exactly ``n`` iterations when ``min_time_s`` is 0; otherwise runs until the
    timed total reaches ``min_time_s`` seconds, with at least one and at most ``n``
    iterations (a time-bounded repeat stays short even when the machine slows down).
    ``check`` sees every iteration's output after its time was taken.
    """
    out: Any = None
    times: list[float] = []
    budget_ms = min_time_s * 1e3
    clock = time.perf_counter
    if torch_cuda is not None:
        ev = torch_cuda.cuda.Event
        pairs: list[tuple[Any, Any]] = []
        spent = 0.0
        while len(pairs) < n:
            start, end = ev(enable_timing=True), ev(enable_timing=True)
            t0 = clock()
            start.record()
            out = runner.run(prepared)
            runner.synchronize()
            end.record()
            pairs.append((start, end))
            spent += (clock() - t0) * 1e3  # host clock only decides when to stop
            if check is not None:
                check(out)
            if budget_ms and spent >= budget_ms:
                break
        pairs[-1][1].synchronize()
        return [float(s.elapsed_time(e)) for s, e in pairs], out
    spent = 0.0
    while len(times) < n:
        t0 = clock()
        out = runner.run(prepared)
        runner.synchronize()
        dt = (clock() - t0) * 1e3
        if check is not None:
            check(out)
        times.append(dt)
        spent += dt
        if budget_ms and spent >= budget_ms:
            break
    return times, out


def _check_output(arr: Any, value_range: tuple[float, float], what: str) -> None:
    """No NaN/Inf, and no value far outside the declared range (:func:`~accelkit.quality.images.check_range`)."""
    check_finite(arr, what)
    check_range(arr, value_range, what)


def measure_throughput(
    runner: Runner,
    sampler: LatentSampler,
    *,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    min_time_s: float = DEFAULT_MIN_TIME_S,
    iters_per_repeat: int | None = None,
    max_iters_per_repeat: int = DEFAULT_MAX_ITERS_PER_REPEAT,
) -> Latency:
    """Measure images/sec and per-batch latency of ``runner`` at ``sampler.batch_size``.

    The runner may be active already; if not, it is activated here (its activation
    then counts towards ``peak_memory_mb``) and deactivated before returning.

    Args:
        runner: The backend to measure.
        sampler: Source of the inputs; its ``batch_size`` is the measured batch size.
        warmup: Untimed iterations before timing (>= 0).
        repeats: Timed repeats, one images/sec sample each (>= 1).
        min_time_s: Each repeat runs iterations until their timed total reaches this
            many seconds (at least one iteration, at most ``max_iters_per_repeat``);
            ignored when ``iters_per_repeat`` is given.
        iters_per_repeat: Fixed number of iterations per repeat (no time bound).
        max_iters_per_repeat: Upper bound on iterations in a time-bounded repeat.

    Returns:
        The :class:`Latency` of this runner at this batch size.

    Raises:
        InputError: Invalid measurement settings.
        NonFiniteOutputError: The output holds NaN or Inf.
        SpecError: The output shape changed between calls, or values lie far outside
            the declared output range.
        AccelkitError: Whatever the runner raises (unavailable backend, bad inputs).
    """
    if (
        warmup < 0
        or repeats < 1
        or min_time_s < 0
        or (iters_per_repeat is not None and iters_per_repeat < 1)
        or max_iters_per_repeat < 1
    ):
        raise InputError(
            f"bad measurement settings (warmup={warmup}, repeats={repeats}, min_time_s={min_time_s}, "
            f"iters_per_repeat={iters_per_repeat}); expected warmup >= 0, repeats >= 1, min_time_s >= 0, iters >= 1"
        )
    batch = sampler.batch_size
    what = _describe_run(runner, batch)
    t_start = time.perf_counter()
    try:
        load1: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):
        load1 = None
    owns = not runner.active
    probe = _MemoryProbe(runner)
    torch_cuda = _torch_cuda(runner.device)
    if owns:
        runner.activate()
    if iters_per_repeat is not None:
        n, budget = int(iters_per_repeat), 0.0
    else:
        n, budget = int(max_iters_per_repeat), float(min_time_s)
    gc_was_enabled = gc.isenabled()
    try:
        prepared = runner.prepare(sampler.inputs(0, batch))
        shapes = _ShapeCheck(what)
        value_range = sampler.spec.output_range
        if warmup:
            _, out = _time_iters(runner, prepared, warmup, torch_cuda, check=shapes)
            _check_output(runner.to_numpy(out), value_range, what + " (warm-up)")
        lat_ms: list[float] = []
        samples: list[float] = []
        counts: list[int] = []
        gc.collect()
        gc.disable()
        cpu_probe = None if runner.device.startswith("cuda") else ContentionProbe().start()
        try:
            for _ in range(repeats):
                ms, out = _time_iters(runner, prepared, n, torch_cuda, budget, check=shapes)
                lat_ms.extend(ms)
                counts.append(len(ms))
                samples.append(batch * len(ms) / max(sum(ms) / 1e3, 1e-12))
        finally:
            if gc_was_enabled:
                gc.enable()
        contention = cpu_probe.stop() if cpu_probe is not None else None
        _check_output(runner.to_numpy(out), value_range, what)
        peak = probe.peak_mb()
    finally:
        if owns:
            runner.deactivate()
    result = Latency(
        batch_size=batch,
        device=runner.device,
        warmup=warmup,
        iters_per_repeat=counts,
        latencies_ms=lat_ms,
        images_per_sec_samples=samples,
        timer="cuda_events" if torch_cuda is not None else "perf_counter",
        peak_memory_mb=peak,
        memory_kind=probe.kind,
        wall_seconds=time.perf_counter() - t_start,
        load_average_1m=load1,
        contention=asdict(contention) if contention is not None else None,
    )
    log.info(
        "%s: %.1f images/s (median of %d repeats), p50 %.3f ms, %d iterations timed",
        what,
        result.images_per_sec,
        repeats,
        result.latency_ms["p50"],
        len(lat_ms),
    )
    return result


__all__ = [
    "DEFAULT_MAX_ITERS_PER_REPEAT",
    "DEFAULT_MIN_TIME_S",
    "DEFAULT_REPEATS",
    "DEFAULT_WARMUP",
    "Latency",
    "measure_throughput",
]
