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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.benchmark.suite import BenchTarget
from accelkit.errors import BackendUnavailableError, InputError, one_line
from accelkit.options import (
    FidSettings,
    Threads,
    Timing,
    check_batches,
    check_int,
    choice,
    parse_batches,
)
from accelkit.runners.base import RUNNERS, runner_class
from accelkit.vocab import DEFAULT_PRECISIONS, PRECISIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
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
        timing: Warm-up iterations, repeats and seconds per repeat.
        threads: The CPU thread policy for torch, ONNX Runtime and OpenVINO (one count
            for every row, chosen once per run when not given).
        fid: Quality drift (``fid.n`` images per set; 0: none), extractor, mode, precision.
        seed: Latent seed, identical for every backend.
        batch_range: TensorRT optimization profile ``(min, opt, max)``.
        compile: Add a ``torch.compile`` torch row.
        channels_last: Run torch in channels_last memory format.
        cuda_graphs: Capture torch runs in CUDA graphs (CUDA only).
        ort_tensorrt: Add ONNX Runtime rows on its TensorRT execution provider (CUDA).
        plot: Write the throughput PNG.
        images: Folder of real inputs for an image-to-image generator: used for
            throughput inputs, drift (it needs ``2 * fid.n`` images) and sample grids.
        force: Replace a report already in ``out``.
        trust_engine: Load TensorRT plans whose sidecar does not vouch for them (runs plugin code).
    """

    backends: Sequence[str] = ()
    precisions: Sequence[str] = ()
    batch_sizes: Sequence[int] = (1, 8)
    device: str = "auto"
    out: Path = Path("accelkit-results")
    timing: Timing = field(default_factory=Timing)
    threads: Threads = field(default_factory=Threads)
    fid: FidSettings = field(default_factory=FidSettings)
    seed: int = 0
    batch_range: tuple[int, int, int] | None = None
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False
    ort_tensorrt: bool = False
    plot: bool = True
    images: Path | None = None
    force: bool = False
    trust_engine: bool = False

    def __post_init__(self) -> None:
        from accelkit.spec import as_batch_range

        set_ = object.__setattr__
        set_(self, "backends", tuple(self.backends))
        set_(self, "precisions", tuple(self.precisions))
        if isinstance(self.batch_sizes, (str, int)):
            set_(self, "batch_sizes", parse_batches(self.batch_sizes))
        else:
            set_(self, "batch_sizes", tuple(self.batch_sizes))
        if self.batch_range is not None:
            br = self.batch_range
            set_(self, "batch_range", as_batch_range(str(br) if isinstance(br, int) else br))
        set_(self, "out", Path(self.out))
        set_(self, "fid", FidSettings.of(self.fid))
        set_(self, "threads", Threads.of(self.threads))
        if self.images is not None:
            set_(self, "images", Path(self.images))

    def validated(self) -> BenchOptions:
        """Check the values; returns ``self``.

        Raises:
            InputError: One line naming the flag and the fix.
        """
        from accelkit.runners.base import backend_names

        unknown = [b for b in self.backends if b not in backend_names()]
        if unknown:
            raise InputError(
                f"--backend {','.join(unknown)} is unknown; choose from {', '.join(backend_names())}"
            )
        for p in self.precisions:
            choice(p, PRECISIONS, "--precision")
        check_batches(self.batch_sizes, "--batch")
        self.timing.validated()
        self.threads.validated()
        self.fid.validated()
        check_int(self.seed, "--seed", low=0, high=2**63 - 1, fix="give a non-negative seed")
        return self

    def validate(self) -> None:
        """Deprecated spelling of :meth:`validated`."""
        self.validated()


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
    n_threads = cfg.threads.resolve(device)
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
