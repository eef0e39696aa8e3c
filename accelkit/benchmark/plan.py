"""Planning a benchmark: which (backend, precision) targets to measure and the artifacts they need.

:func:`plan_targets` asks every registered backend what it runs for each precision
(:func:`accelkit.runners.base.offers`) and has one :class:`~accelkit.passes.build.Builder`
make the derived artifacts the answers name (shared by every backend);
:func:`accelkit.pipelines.bench.bench` runs the targets with
:func:`~accelkit.benchmark.suite.run_benchmark` and writes the report folder.

Defaults: every backend and precision this machine can run. What it cannot run is kept
as a ``skipped`` row with the reason, so the report says what was left out and why.
A backend the user asked for by name that cannot run here is an error instead
(:class:`~accelkit.errors.BackendUnavailableError`, exit 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from accelkit.artifact import Artifact
from accelkit.benchmark.suite import BenchTarget
from accelkit.errors import BackendUnavailableError, InputError
from accelkit.options import (
    BuildRecipe,
    DiffusionSettings,
    FidSettings,
    Threads,
    Timing,
    check_batches,
    check_int,
    choice,
    parse_batches,
)
from accelkit.runners.base import RUNNERS, Ask, Recipe, offers, runner_class
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
        build: The recipe of the derived ONNX files (the one ``export``, ``quantize`` and
            ``optimize`` use; no flags: ``bench`` measures the default builds).
        diffusion: The sampler knobs of a diffusion pipeline (steps, scheduler, guidance,
            cache, condition); refused for one-pass generators.
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
    build: BuildRecipe = field(default_factory=BuildRecipe)
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)

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
        self.build.validated()
        self.diffusion.validated()
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


def bench_wants(cfg: BenchOptions) -> frozenset[str]:
    """The optional toggles and variants ``bench`` was asked for (:attr:`Ask.wants`)."""
    flags = {
        "compile": cfg.compile,
        "channels_last": cfg.channels_last,
        "cuda_graphs": cfg.cuda_graphs,
        "tensorrt": cfg.ort_tensorrt,
    }
    return frozenset(k for k, on in flags.items() if on)


def is_torchscript(artifact: Artifact) -> bool:
    """The artifact's torch module is TorchScript (``torch.compile`` cannot compile it)."""
    if artifact.format != "torch" or artifact.module is None:
        return False
    import torch

    return isinstance(artifact.module, (torch.jit.ScriptModule, torch.jit.ScriptFunction))


def bench_ask(
    cfg: BenchOptions,
    kind: str,
    precision: str,
    device: str,
    threads: int | None,
    workdir: Path,
    *,
    given_precision: str = "fp32",
    scripted: bool = False,
) -> Ask:
    """The :class:`~accelkit.runners.base.Ask` of one bench cell (a whole generator, or a
    diffusion pipeline's denoiser: kind ``torch``)."""
    from accelkit.host import has_native_bf16

    return Ask(
        kind=kind,
        precision=precision,
        device=device,
        given_precision=given_precision,
        threads=threads,
        native_bf16=has_native_bf16() and not device.startswith("cuda"),
        scripted=scripted,
        wants=bench_wants(cfg),
        batch_range=_max_batch(cfg),
        cache_dir=str(workdir / "engines"),
        trust_engine=cfg.trust_engine,
    )


def planned_recipes(name: str, ask: Ask) -> list[Recipe] | str:
    """What backend ``name`` runs for ``ask``: its plain recipe plus the variants the user
    asked for (``ask.wants``), or the reason it cannot (a skipped row)."""
    got = offers(name, ask)
    if isinstance(got, str):
        return got
    return [r for r in got if r.variant is None or r.variant in ask.wants]


def plan_targets(
    artifact: Artifact,
    cfg: BenchOptions,
    device: str,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
    *,
    threads: int | None = None,
) -> tuple[list[BenchTarget], Path | None]:
    """Ask every backend what it runs for each precision, build what the answers need, and
    describe the targets.

    Each backend answers through the registry (:func:`accelkit.runners.base.offers`): its
    recipes, or a reason, which becomes a ``skipped`` row. The derived artifacts the recipes
    name are made once by one :class:`~accelkit.passes.build.Builder` (shared by every
    backend; a failed build skips its rows with the reason). Rows come in registry order,
    torch first: the torch fp32 row is the speed-up baseline.

    Args:
        artifact: What the user gave.
        cfg: The bench options.
        device: The resolved device.
        workdir: Where the derived artifacts (and TensorRT's engine cache) go.
        progress: Called with a short message per step.
        threads: The run's CPU thread count (default: ``cfg.threads`` resolved now).

    Returns:
        ``(targets, fp32_onnx_path)``; the ONNX path (when one was made) counts FLOPs.
    """
    from accelkit.passes.build import Builder, BuildFailed

    say = progress or (lambda m: None)
    backends = check_requested_backends(cfg, device)
    precisions = tuple(cfg.precisions) or default_precisions(artifact)
    if threads is None:
        threads = cfg.threads.resolve(device)
    recipe = replace(cfg.build, onnx=cfg.build.onnx.covering(cfg.batch_sizes))
    builder = Builder(artifact, workdir, recipe, progress=say)
    targets: list[BenchTarget] = []
    for name in backends:
        for p in precisions:
            ask = bench_ask(cfg, artifact.format, p, device, threads, workdir,
                            given_precision=artifact.precision, scripted=is_torchscript(artifact))  # fmt: skip
            got = planned_recipes(name, ask)
            if isinstance(got, str):
                targets.append(BenchTarget(name, None, precision=p, skip_reason=got))
                continue
            for r in got:
                reason = r.refused
                made = None
                if reason is None:
                    try:
                        made = builder.make(r.source)
                    except BuildFailed as exc:
                        reason = str(exc)
                fp32 = builder.fp32_onnx() if r.flops_from_fp32 else None
                targets.append(
                    BenchTarget(
                        name,
                        made,
                        dict(r.options),
                        variant=r.variant,
                        precision=p,
                        skip_reason=reason,
                        flops_model=fp32.path if fp32 is not None else None,
                    )
                )
    fp32_onnx = builder.fp32_onnx()
    return targets, fp32_onnx.path if fp32_onnx is not None else None
