"""Planning a benchmark: which (backend, precision) targets to measure and the artifacts they need.

:func:`plan_targets` turns :class:`BenchOptions` into the backend configurations
(:class:`~accelkit.benchmark.suite.BenchTarget`) for one generator, exporting the ONNX files
ONNX Runtime and TensorRT share; :func:`accelkit.pipelines.bench.bench` runs them with
:func:`~accelkit.benchmark.suite.run_benchmark` and writes the report folder.

Defaults: every backend and precision this machine can run. What it cannot run is kept
as a ``skipped`` row with the reason, so the report says what was left out and why.
A backend the user asked for by name that cannot run here is an error instead
(:class:`~accelkit.errors.BackendUnavailableError`, exit 2).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.benchmark.suite import BenchTarget
from accelkit.errors import BackendUnavailableError, InputError, StorageError, one_line
from accelkit.host import default_threads
from accelkit.runners.base import RUNNERS, runner_class

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "bf16")
#: Largest batch accepted (images per call); larger values are typing mistakes, not benchmarks.
MAX_BATCH = 65536
DEFAULT_PRECISIONS = ("fp32", "fp16")


@dataclass
class BenchOptions:
    """Everything ``accelkit bench`` was asked for.

    Attributes:
        backends: Backend names; empty = every backend this machine can run.
        precisions: ``fp32``, ``fp16``, ``int8``, ``bf16`` (bf16: torch, and OpenVINO's bf16 hint).
            Empty: :func:`default_precisions` of the generator (``fp32,fp16``, and an int8
            ONNX file's own precision).
        batch_sizes: Images per iteration.
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]``.
        out: Report folder (also holds the exported ONNX files under ``artifacts/``).
        warmup, repeats, min_time_s: Timing budget (see ``measure_throughput``).
        threads: CPU threads for torch, ONNX Runtime and OpenVINO (None: chosen once per
            run by :func:`accelkit.host.default_threads`: free physical cores, 1 when loaded).
        seed: Latent seed, identical for every backend.
        batch_range: TensorRT optimization profile ``(min, opt, max)``.
        compile: Add a ``torch.compile`` torch row.
        channels_last: Run torch in channels_last memory format.
        cuda_graphs: Capture torch runs in CUDA graphs (CUDA only).
        ort_tensorrt: Add ONNX Runtime rows on its TensorRT execution provider (CUDA).
        plot: Write the throughput PNG.
        force: Replace a report already in ``out``.
        trust_engine: Load TensorRT plans whose sidecar does not vouch for them (runs plugin code).
        fid: Images per set for quality drift (0: no drift measurement).
        fid_weights: Feature extractor TorchScript (None: the packaged FID Inception).
        fid_batch: Images per inference call while measuring drift.
        fid_mode: Resize before the FID extractor: ``clean`` (clean-fid's PIL bicubic),
            ``legacy-tensorflow`` or ``legacy-pytorch`` (see :mod:`accelkit.quality.images`).
        images: Folder of real inputs for an image-to-image generator: used for
            throughput inputs, drift (it needs ``2 * fid`` images) and sample grids.
        fid_precision: FID feature precision: ``fp32`` (default) or ``bf16`` (OpenVINO on a
            native-bf16 CPU; faster, its effect on FID is measured in ``docs/quality.md``).
    """

    backends: Sequence[str] = ()
    precisions: Sequence[str] = ()
    batch_sizes: Sequence[int] = (1, 8)
    device: str = "auto"
    out: Path = Path("accelkit-results")
    warmup: int = 3
    repeats: int = 5
    min_time_s: float = 0.5
    threads: int | None = None
    seed: int = 0
    batch_range: tuple[int, int, int] | None = None
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False
    ort_tensorrt: bool = False
    plot: bool = True
    fid: int = 0
    fid_weights: str | None = None
    fid_batch: int = 32
    fid_mode: str = "clean"
    images: Path | None = None
    fid_precision: str = "fp32"
    force: bool = False
    trust_engine: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.batch_range, (str, int)):
            from accelkit.spec import as_batch_range

            self.batch_range = as_batch_range(str(self.batch_range))
        self.out = Path(self.out)

    def validate(self) -> None:
        """Raise :class:`InputError` for values that cannot work."""
        unknown = [b for b in self.backends if b not in RUNNERS]
        if unknown:
            raise InputError(
                f"--backend {','.join(unknown)} is unknown; choose from {', '.join(RUNNERS)}"
            )
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise InputError(
                f"--precision {','.join(bad)} is unknown; choose from {', '.join(PRECISIONS)}"
            )
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise InputError("--batch needs positive integers, e.g. --batch 1,8,32")
        if max(self.batch_sizes) > MAX_BATCH:
            raise InputError(
                f"--batch {max(self.batch_sizes)} is beyond any generator's memory; use at most {MAX_BATCH} images per call"
            )
        if self.repeats < 3:
            raise InputError(
                f"--repeats {self.repeats} is too few for a median and spread; use 3 or more"
            )
        if self.repeats > 10_000:
            raise InputError(
                f"--repeats {self.repeats} is unreasonably many; 5 to 30 give a stable median"
            )
        if self.warmup < 0:
            raise InputError(f"--warmup {self.warmup}: give 0 or more untimed iterations")
        if not (math.isfinite(self.min_time_s) and 0 < self.min_time_s <= 3600):
            raise InputError(
                f"--min-time {self.min_time_s}: give a finite number of seconds > 0 (e.g. 0.5)"
            )
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads}: give a positive number of threads")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed}: give a non-negative seed")
        if self.fid_batch < 1:
            raise InputError(
                f"--fid-batch {self.fid_batch}: give a positive number of images per call"
            )
        if self.fid_precision not in ("fp32", "bf16"):
            raise InputError(
                f"--fid-precision {self.fid_precision!r} is unknown; choose fp32 or bf16"
            )
        if self.fid < 0 or self.fid == 1:
            raise InputError(
                f"--fid {self.fid}: give the number of images per set (e.g. 500), or 0 for none"
            )


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; others checked as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"--device {device!r} is unknown; use auto, cpu or cuda[:N]")
    if device.startswith("cuda"):
        from accelkit.device import gpu_identity, parse_device_index

        try:
            gpu_identity(parse_device_index(device))
        except (
            BackendUnavailableError
        ) as exc:  # nothing could be measured: say so instead of an empty report
            raise BackendUnavailableError(
                f"--device {device}: {exc}; use --device cpu (or auto)"
            ) from None
    return device


def _max_batch(cfg: BenchOptions) -> tuple[int, int, int]:
    if cfg.batch_range is not None:
        return cfg.batch_range
    lo, hi = min(cfg.batch_sizes), max(cfg.batch_sizes)
    return (lo, sorted(cfg.batch_sizes)[len(cfg.batch_sizes) // 2], max(hi, 2))


def check_requested_backends(cfg: BenchOptions, device: str) -> list[str]:
    """The backends to plan. Named ones must be able to run here (else exit-2 error).

    Raises:
        BackendUnavailableError: A backend named with ``--backend`` cannot run on ``device``.
    """
    from accelkit.runners.base import available_backends

    if not cfg.backends:
        return list(RUNNERS)
    for name in cfg.backends:
        reason = runner_class(name).availability(device)  # ort on cuda checks the CUDA provider
        if reason is not None:
            avail = available_backends(device)
            raise BackendUnavailableError(
                f"--backend {name} cannot run on {device} here: {reason}; available here: {', '.join(avail) or 'none'}"
            )
    return list(cfg.backends)


def default_precisions(artifact: Artifact) -> tuple[str, ...]:
    """The precisions planned when none are given: ``fp32,fp16``, plus an int8 ONNX file's own
    (nothing else can be made from it: without int8 the default would measure nothing; the
    others stay, as rows skipped with the reason)."""
    if artifact.format == "onnx" and artifact.precision not in DEFAULT_PRECISIONS:
        return (*DEFAULT_PRECISIONS, artifact.precision)
    return DEFAULT_PRECISIONS


def plan_targets(
    artifact: Artifact,
    cfg: BenchOptions,
    device: str,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[BenchTarget], Path | None]:
    """Make the artifacts each (backend, precision) needs and describe the targets.

    The torch fp32 row comes first (the speed-up baseline). ONNX files are exported
    once per precision into ``workdir`` and shared by ONNX Runtime and TensorRT.

    Returns:
        ``(targets, fp32_onnx_path)``; the ONNX path is used to count FLOPs.
    """
    from accelkit.passes.export import OnnxFromTorch
    from accelkit.passes.fp16 import Fp16

    say = progress or (lambda m: None)
    backends = check_requested_backends(cfg, device)
    precisions = tuple(cfg.precisions) or default_precisions(artifact)
    targets: list[BenchTarget] = []
    n_threads = cfg.threads or (None if device.startswith("cuda") else default_threads())
    threads = {"threads": n_threads} if n_threads else {}
    br = _max_batch(cfg)

    # ---- torch
    if "torch" in backends:
        if artifact.format != "torch":
            for p in precisions:
                targets.append(
                    BenchTarget(
                        "torch",
                        None,
                        precision=p,
                        skip_reason="the generator was given as ONNX; torch rows need the torch model",
                    )
                )
        else:
            for p in precisions:
                opts: dict[str, Any] = {"precision": p, **threads}
                if cfg.channels_last or (p == "bf16" and not device.startswith("cuda")):
                    # bf16 on CPU: channels_last measured 1.9x-3.9x eager vs 0.8x-2.4x without (torch_cpu_settings.md)
                    opts["channels_last"] = True
                if cfg.cuda_graphs:
                    opts["cuda_graphs"] = True
                reason = None
                if p == "int8":
                    reason = "int8 is an ONNX Q/DQ precision; it runs on ort, openvino and trt, not torch eager"
                elif p == "fp16" and not device.startswith("cuda"):
                    reason = "torch fp16 runs on CUDA only (CPU half kernels are missing or slow); use bf16 on CPU"
                targets.append(
                    BenchTarget(
                        "torch",
                        artifact if reason is None else None,
                        opts,
                        precision=p,
                        skip_reason=reason,
                    )
                )
                if cfg.compile and reason is None:
                    targets.append(
                        BenchTarget("torch", artifact, {**opts, "compile": True}, variant="compile")
                    )

    # ---- ONNX artifacts for ort / trt
    onnx_by_prec: dict[str, Artifact | str] = {}
    needs_onnx = [b for b in backends if b in ("ort", "trt", "openvino")]
    fp32_path: Path | None = None
    if needs_onnx:
        try:
            if artifact.format == "onnx" and artifact.precision != "fp32":
                # A given fp16/int8 file is measured as what it is; the other precisions are made from fp32 only.
                onnx_by_prec[artifact.precision] = artifact
                onnx_by_prec["fp32"] = (
                    f"the ONNX file is {artifact.precision}; fp32 rows need the fp32 ONNX or the torch model"
                )
                fp32_path = artifact.path
            else:
                if artifact.format == "onnx":
                    fp32 = artifact
                else:
                    say("exporting fp32 ONNX for ort/trt")
                    fp32 = OnnxFromTorch(
                        workdir / f"{artifact.name}.onnx", batch_range=br, force=True, progress=say
                    )(artifact)
                onnx_by_prec["fp32"] = fp32
                fp32_path = fp32.path
        except StorageError:
            raise  # a full disk stops the run: no row could be written, and none should read "skipped"
        except Exception as exc:  # noqa: BLE001 - a generator that breaks in export fails its rows, not the run
            onnx_by_prec["fp32"] = f"ONNX export failed: {one_line(exc)}"
        from accelkit.passes.int8 import Int8

        converters = {
            "fp16": lambda base: Fp16(
                workdir / f"{artifact.name}.fp16.onnx", force=True, progress=say
            )(base),
            "int8": lambda base: Int8(
                workdir / f"{artifact.name}.int8.onnx", force=True, calib_samples=64, progress=say
            )(base),
        }
        for prec, convert in converters.items():
            if prec not in precisions or prec in onnx_by_prec:
                continue
            base = onnx_by_prec["fp32"]
            if isinstance(base, str):
                onnx_by_prec[prec] = (
                    base
                    if artifact.format != "onnx"
                    else f"the ONNX file is {artifact.precision}; {prec} is made from the fp32 ONNX or the torch model"
                )
            elif base.precision != "fp32":
                onnx_by_prec[prec] = f"the ONNX file is {base.precision}; {prec} is made from fp32"
            else:
                try:
                    say(f"converting to {prec} ONNX")
                    onnx_by_prec[prec] = convert(base)
                except StorageError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed conversion fails its rows, not the run
                    onnx_by_prec[prec] = f"{prec} conversion failed: {one_line(exc)}"
    for backend in needs_onnx:
        for p in precisions:
            if backend == "openvino":
                targets.append(openvino_target(p, onnx_by_prec, threads))
                continue
            if p == "bf16":
                targets.append(
                    BenchTarget(
                        backend,
                        None,
                        precision=p,
                        skip_reason=f"bf16 is a torch-only precision here; {backend} takes fp32/fp16 ONNX",
                    )
                )
                continue
            made = onnx_by_prec.get(p)
            if isinstance(made, str) or made is None:
                targets.append(
                    BenchTarget(backend, None, precision=p, skip_reason=made or "no ONNX artifact")
                )
                continue
            if backend == "ort":
                provider = "cuda" if device.startswith("cuda") else "cpu"
                targets.append(
                    BenchTarget(
                        "ort",
                        made,
                        {"provider": provider, **(threads if provider == "cpu" else {})},
                    )
                )
                if cfg.ort_tensorrt and device.startswith("cuda"):
                    targets.append(
                        BenchTarget("ort", made, {"provider": "tensorrt"}, variant="tensorrt")
                    )
            else:
                trt_opts: dict[str, Any] = {
                    "batch_range": br,
                    "cache_dir": str(workdir / "engines"),
                }
                if cfg.trust_engine:
                    trt_opts["trust_engine"] = True
                targets.append(BenchTarget("trt", made, trt_opts, flops_model=fp32_path))
    # A backend that cannot run here (not requested by name) is kept as skipped rows with the reason.
    return targets, fp32_path


def openvino_target(
    precision: str, onnx_by_prec: dict[str, Artifact | str], threads: dict[str, Any]
) -> BenchTarget:
    """The OpenVINO row for ``precision``: fp32/fp16/int8 run their ONNX file with an f32 hint, bf16 the fp32 file with a bf16 hint.

    bf16 on a CPU without native bf16 (AVX-512 BF16 or AMX) is a skipped row: OpenVINO
    would silently compute in f32 there.
    """
    from accelkit.host import has_native_bf16

    made = onnx_by_prec.get("fp32" if precision == "bf16" else precision)
    if isinstance(made, str) or made is None:
        return BenchTarget(
            "openvino", None, precision=precision, skip_reason=made or "no ONNX artifact"
        )
    if precision == "bf16":
        if not has_native_bf16():
            return BenchTarget(
                "openvino",
                None,
                precision="bf16",
                skip_reason="this CPU has no native bf16 (AVX-512 BF16 or AMX); OpenVINO would compute in f32",
            )
        return BenchTarget("openvino", made, {"precision": "bf16", **threads})
    return BenchTarget("openvino", made, dict(threads))
