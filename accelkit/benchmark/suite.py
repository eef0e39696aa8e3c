"""Run a benchmark matrix (backends x precisions x batch sizes) into a :class:`Report`.

This is the library function behind ``accelkit bench``: the CLI makes the artifacts
(load, export, fp16...), describes each backend configuration as a
:class:`BenchTarget`, and calls :func:`run_benchmark`. A configuration this machine
cannot run becomes a ``skipped`` row with the reason; one that breaks (NaN output,
runner error, out of memory) becomes a ``failed`` row with the reason; neither stops
the other rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.benchmark.harness import (
    DEFAULT_MIN_TIME_S,
    DEFAULT_REPEATS,
    DEFAULT_WARMUP,
    measure_throughput,
)
from accelkit.benchmark.report import Report
from accelkit.device import cuda_device_name
from accelkit.errors import (
    AccelkitError,
    BackendUnavailableError,
    MissingDependencyError,
    StorageError,
    one_line,
)
from accelkit.flops import flops_per_image_onnx, mfu
from accelkit.runners.base import Runner, create_runner
from accelkit.sampler import LatentSampler

log = logging.getLogger(__name__)

#: Errors that mean "this machine cannot run it" (row ``skipped``), not "it broke" (``failed``).
SKIP_ERRORS: tuple[type[AccelkitError], ...] = (BackendUnavailableError, MissingDependencyError)


@dataclass
class BenchTarget:
    """One backend configuration, measured at every batch size.

    Attributes:
        backend: Registered runner name (``torch``, ``ort``, ``trt``).
        artifact: What the runner runs; None when it could not be made (give ``skip_reason``).
        options: Runner options (``precision``, ``provider``, ``compile``...).
        variant: Label that distinguishes configurations of one backend in the report
            (``tensorrt`` for ORT's TensorRT provider, ``compile``...); None for the plain one.
        precision: Precision label for rows that never got a runner; default: the
            ``precision`` option, else the artifact's.
        skip_reason: Why this configuration is not measured (e.g. the fp16 pass failed);
            produces ``skipped`` rows.
        flops_model: ONNX file to count FLOPs from; default: the artifact when it is ONNX,
            else :func:`run_benchmark`'s ``flops_model``.
        make_runner: Builds this target's runner instead of ``create_runner(backend,
            artifact)`` (a diffusion pipeline: the sampling loop over component runners
            built for this row); ``artifact`` then only gives the spec the inputs are drawn from.
    """

    backend: str
    artifact: Artifact | None = None
    options: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    precision: str | None = None
    skip_reason: str | None = None
    flops_model: str | Path | None = None
    make_runner: Callable[[], Runner] | None = None

    def precision_label(self) -> str:
        """The precision shown in rows that have no runner."""
        if self.precision:
            return self.precision
        if self.options.get("precision"):
            return str(self.options["precision"])
        return self.artifact.precision if self.artifact is not None else "fp32"


ProgressFn = Callable[[str], None]


def _unexpected(exc: BaseException, what: str) -> str | None:
    """Log a row's failure: one line at WARNING, the traceback at INFO (``-v``); return the traceback.

    accelkit's own errors already say what went wrong in one line: no traceback for them.
    """
    if isinstance(exc, AccelkitError):
        return None
    import traceback

    log.warning("%s: %s", what, one_line(exc))
    log.info("%s", what, exc_info=exc)
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def run_benchmark(
    targets: Sequence[BenchTarget],
    batch_sizes: Sequence[int] = (1, 8),
    *,
    device: str = "cpu",
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    min_time_s: float = DEFAULT_MIN_TIME_S,
    seed: int = 0,
    flops_model: str | Path | None = None,
    report: Report | None = None,
    progress: ProgressFn | None = None,
    images: Any = None,
) -> Report:
    """Measure every target at every batch size; never raises for a single bad row.

    Args:
        targets: Backend configurations, in the order the report lists them (put plain
            torch fp32 first: it is the speed-up baseline).
        batch_sizes: Batch sizes to measure (images per iteration).
        device: ``cpu`` or ``cuda[:N]`` for every target.
        warmup, repeats, min_time_s: See :func:`~accelkit.benchmark.harness.measure_throughput`.
        seed: :class:`~accelkit.sampler.LatentSampler` seed (same inputs for every backend).
        images: Real inputs for an image-to-image generator's image input (``bench
            --images``), float32 ``N x C x H x W`` in its range; None: seeded smooth images.
        flops_model: ONNX file (normally the fp32 export) used to count FLOPs for
            targets that are not ONNX themselves (torch, TensorRT engines).
        report: Report to add rows to; a new one (environment collected now) when None.
        progress: Called with a one-line status before each measurement.

    Returns:
        The report with one row per (target, batch size), speed-ups filled.
    """
    rep = report if report is not None else Report()
    rep.settings.update(
        {
            "device": device,
            "batch_sizes": list(batch_sizes),
            "warmup": warmup,
            "repeats": repeats,
            "min_time_s": min_time_s,
            "seed": seed,
        }
    )
    gpu_name = cuda_device_name(device)
    flops_cache: dict[str, int | None] = {}

    def flops_for(t: BenchTarget) -> int | None:
        src = t.flops_model
        if (
            src is None
            and t.artifact is not None
            and t.artifact.format == "onnx"
            and t.artifact.path is not None
        ):
            src = t.artifact.path
        if src is None:
            src = flops_model
        if src is None:
            return None
        key = str(src)
        if key not in flops_cache:
            try:
                flops_cache[key] = flops_per_image_onnx(
                    src, t.artifact.spec if t.artifact is not None else None
                )
            except AccelkitError as exc:
                log.warning("FLOPs of %s unknown: %s", src, exc)
                flops_cache[key] = None
        return flops_cache[key]

    def note(msg: str) -> None:
        log.info(msg)
        if progress is not None:
            progress(msg)

    for t in targets:
        prec = t.precision_label()
        if t.skip_reason or t.artifact is None:
            for b in batch_sizes:
                rep.add_failure(
                    t.backend,
                    prec,
                    b,
                    device,
                    t.skip_reason or "no artifact to run",
                    status="skipped",
                    variant=t.variant,
                )
            continue
        runner: Runner | None = None
        try:
            runner = (
                t.make_runner()
                if t.make_runner is not None
                else create_runner(t.backend, t.artifact, device=device, **t.options)
            )
            note(
                f"activating {t.backend}{':' + t.variant if t.variant else ''} {runner.precision} on {device}"
            )
            runner.activate()
        except Exception as exc:
            if isinstance(exc, StorageError):
                raise  # a full disk stops the run; no row should read "failed" for it
            status = "skipped" if isinstance(exc, SKIP_ERRORS) else "failed"
            trace = _unexpected(exc, f"{t.backend} failed to start")
            info = runner.describe() if runner is not None else None
            if runner is not None:
                runner.deactivate()
            for b in batch_sizes:
                rep.add_failure(
                    t.backend,
                    prec,
                    b,
                    device,
                    one_line(exc),
                    status=status,
                    variant=t.variant,
                    artifact=t.artifact,
                    runner_info=info,
                    traceback=trace,
                )
            continue
        try:
            flops = flops_for(t)
            for b in batch_sizes:
                note(
                    f"measuring {t.backend}{':' + t.variant if t.variant else ''} {runner.precision} batch {b}"
                )
                sampler = LatentSampler(t.artifact.spec, seed=seed, batch_size=b, images=images)
                try:
                    lat = measure_throughput(
                        runner, sampler, warmup=warmup, repeats=repeats, min_time_s=min_time_s
                    )
                except Exception as exc:
                    if isinstance(exc, StorageError):
                        raise
                    status = "skipped" if isinstance(exc, SKIP_ERRORS) else "failed"
                    trace = _unexpected(exc, f"{t.backend} batch {b} failed")
                    rep.add_failure(
                        t.backend,
                        runner.precision,
                        b,
                        device,
                        one_line(exc),
                        status=status,
                        variant=t.variant,
                        artifact=t.artifact,
                        runner_info=runner.describe(),
                        traceback=trace,
                    )
                    continue
                info = runner.describe()
                rep.add_result(
                    info,
                    lat,
                    artifact=t.artifact,
                    variant=t.variant,
                    flops_per_image=flops,
                    mfu=mfu(lat.images_per_sec, flops, gpu_name, runner.precision),
                )
        finally:
            runner.deactivate()
    rep.compute_speedups()
    return rep
