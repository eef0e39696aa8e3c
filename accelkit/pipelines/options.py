"""Typed options of the pipelines: one frozen dataclass per command, composed of the shared
value objects of :mod:`accelkit.options` (:class:`~accelkit.options.Timing`,
:class:`~accelkit.options.Threads`, :class:`~accelkit.options.FidSettings`,
:class:`~accelkit.options.Int8Settings`...), which own each default, its bounds and its help.

The CLI binds its flags to those fields and hands one object to one pipeline function; a
Python user builds them directly. ``validated()`` checks the values, once, with the same
one-line messages whether they came from flags or from code, and returns ``self``.
The vocabularies (precisions, calibration methods, exporters...) live in
:mod:`accelkit.vocab` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelkit.errors import InputError
from accelkit.options import (
    DEFAULT_BATCH_RANGE,
    SEARCH_TIMING,
    DiffusionSettings,
    FidSettings,
    Fp16Settings,
    Int8Settings,
    OnnxSettings,
    Threads,
    Timing,
    check_int,
    check_number,
    enum_value,
    flag,
    parse_batches,
    parse_duration,
    parse_float_list,
)
from accelkit.vocab import (
    PRECISIONS,
    CalibMethod,
    DistillLoss,
    Exporter,
    Importance,
    LatentDistribution,
    Precision,
)

if TYPE_CHECKING:
    from accelkit.artifact import Artifact

#: Largest truncation psi: latents are scaled by psi (1 = none); beyond 2 the prior is another one.
MAX_TRUNCATION = 2.0

#: The INT8 options of ``export --int8`` / ``quantize`` are the one INT8 recipe.
Int8Options = Int8Settings


def _value(x: Any) -> Any:
    return x.value if isinstance(x, Enum) else x


def _normalize(obj: Any, name: str, fn: Any) -> None:
    """Set a frozen dataclass field to its normalized value (used in ``__post_init__``)."""
    object.__setattr__(obj, name, fn(getattr(obj, name)))


def _fraction(value: Any) -> float:
    """``"5%"``, ``"0.05"`` or ``0.05`` -> ``0.05``."""
    from accelkit.gate.compare import parse_fraction

    return float(parse_fraction(value)) if isinstance(value, str) else float(value)


@dataclass(frozen=True)
class LoadOptions:
    """How to load a generator (the options every command shares).

    Attributes:
        generator: File path, bundled name (``dcgan``, ``stylegan2``, ``sr4x``) or None
            for the bundled DCGAN.
        arch: Architecture for weight-only files: ``module:Class``, ``file.py:Class`` or
            a bundled name.
        arch_kwargs: Constructor keyword arguments for ``arch``.
        inputs: Input overrides as ``--input`` texts (``z:256``, ``label:int:10``,
            ``image:3x32x32``).
        output_range: Output value range ``(low, high)``.
        latent_dist: Latent prior.
        truncation: Truncation psi applied to latents.
        trust_pickle: The old name of ``trust_code`` (still honoured).
        output_shape: ``(C, H, W)`` of a flat output (``--output-shape 1x28x28``).
        hw_range: ``(min, opt, max)`` pixels of height/width for spatial inputs of a
            generator that runs at any size (``--hw-range``); ``(0, 0, 0)`` asks for the
            default range around the input size (``--dynamic-hw``).
        trust_code: Run code the file carries (``--trust-code``): a full pickled module,
            a TorchScript or ``torch.export`` archive outside accelkit's allow-list.
    """

    generator: str | None = None
    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    output_range: tuple[float, float] | None = None
    latent_dist: LatentDistribution | None = None
    truncation: float | None = None
    trust_pickle: bool = False
    output_shape: tuple[int, ...] | None = None
    hw_range: tuple[int, int, int] | None = None
    trust_code: bool = False

    @classmethod
    def from_flags(
        cls,
        generator: str | None = None,
        *,
        arch: str | None = None,
        arch_kwargs: str | None = None,
        inputs: Sequence[str] | None = None,
        output_range: str | None = None,
        latent_dist: str | LatentDistribution | None = None,
        truncation: float | None = None,
        trust_pickle: bool = False,
        output_shape: str | None = None,
        dynamic_hw: bool = False,
        hw_range: str | None = None,
        trust_code: bool = False,
    ) -> LoadOptions:
        """Build from command-line text, validating each value.

        Raises:
            InputError: A value is malformed (one line naming the flag and the fix).
        """
        from accelkit.loading.safe_read import parse_arch_kwargs
        from accelkit.spec import parse_hw_range, parse_output_range, parse_output_shape

        kwargs: dict[str, Any] = parse_arch_kwargs(arch_kwargs) if arch_kwargs else {}
        if latent_dist is not None and not isinstance(latent_dist, LatentDistribution):
            try:
                latent_dist = LatentDistribution(latent_dist)
            except ValueError:
                raise InputError(
                    f"--latent-dist {latent_dist!r} is unknown; use normal or uniform"
                ) from None
        return cls(
            generator=generator,
            arch=arch,
            arch_kwargs=kwargs,
            inputs=tuple(inputs or ()),
            output_range=parse_output_range(output_range) if output_range else None,
            latent_dist=latent_dist,
            truncation=truncation,
            trust_pickle=trust_pickle,
            output_shape=parse_output_shape(output_shape) if output_shape else None,
            hw_range=parse_hw_range(hw_range) if hw_range else (0, 0, 0) if dynamic_hw else None,
            trust_code=trust_code,
        ).validated()

    def validated(self) -> LoadOptions:
        """Check the values (also when built in code); returns ``self``."""
        from accelkit.spec import parse_input_flag

        check_number(self.truncation, "--truncation", low=0.0, low_open=True, high=MAX_TRUNCATION)
        if self.output_range is not None:
            lo, hi = self.output_range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise InputError(
                    f"--output-range {lo:g},{hi:g} must be two finite numbers LOW < HIGH; use -1,1 or 0,1"
                )
        for text in self.inputs:
            parse_input_flag(text)
        return self

    def with_generator(
        self,
        generator: str | None,
        *,
        keep_arch: bool = True,
        arch: str | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
    ) -> LoadOptions:
        """The same options for another file (``--vs``, ``--reference``).

        Args:
            generator: The other file.
            keep_arch: Keep ``--arch``/``--arch-kwargs`` (False: drop them, e.g. for a
                teacher of a pruned TorchScript, unless ``arch`` is given).
            arch, arch_kwargs: The other file's own architecture (``--reference-arch``).
        """
        if arch is not None:
            return replace(
                self, generator=generator, arch=arch, arch_kwargs=dict(arch_kwargs or {})
            )
        if keep_arch:
            return replace(self, generator=generator)
        return replace(self, generator=generator, arch=None, arch_kwargs={})

    def load(self) -> Artifact:
        """Load the generator (see :func:`accelkit.loading.load_generator`)."""
        from accelkit.loading import load_generator
        from accelkit.spec import parse_input_flag

        return load_generator(
            self.generator,
            arch=self.arch,
            arch_kwargs=dict(self.arch_kwargs),
            inputs=[parse_input_flag(i) for i in self.inputs],
            output_range=self.output_range,
            latent_dist=_value(self.latent_dist),
            truncation_psi=self.truncation,
            output_shape=self.output_shape,
            hw_range=self.hw_range,
            trust=self.trust_code or self.trust_pickle,
        )


def trusts_code(source: Any) -> bool:
    """Whether the user passed ``--trust-code`` (or its old name) with this generator source:
    then code-bearing files they name (the generator, ``--fid-weights``) load unchecked."""
    return bool(getattr(source, "trust_code", False) or getattr(source, "trust_pickle", False))


def resolve_artifact(source: Any) -> Artifact:
    """An :class:`Artifact` from an artifact, :class:`LoadOptions`, a path/name or None (bundled DCGAN)."""
    from accelkit.artifact import Artifact

    if isinstance(source, Artifact):
        return source
    if isinstance(source, LoadOptions):
        return source.load()
    if source is None or isinstance(source, (str, Path)):
        return LoadOptions(generator=None if source is None else str(source)).load()
    raise InputError(
        f"expected a generator path, LoadOptions or Artifact, got {type(source).__name__}"
    )


@dataclass(frozen=True)
class ExportOptions:
    """``accelkit export``: torch (or fp32 ONNX) -> verified fp32/fp16/int8 ONNX.

    Attributes:
        out: Destination ``.onnx`` (None: next to the input, ``<stem>[.<precision>].onnx``).
        precision: fp32, fp16 or int8.
        onnx: Opset, batch range and exporter of the fp32 graph.
        fp16: How the fp16 graph keeps nodes in float32 (``precision=fp16``).
        int8: The INT8 recipe (``precision=int8``).
        tolerance: Max abs error vs torch (None: per-precision default).
        force: Overwrite an existing file.
        diffusion: Sampler knobs of a diffusion pipeline (the sampler INT8 calibrates on
            and the whole-sample check runs; the decoder's precision).
    """

    out: Path | None = None
    precision: Precision | str = Precision.fp32
    onnx: OnnxSettings = field(default_factory=OnnxSettings)
    fp16: Fp16Settings = field(default_factory=Fp16Settings)
    int8: Int8Settings = field(default_factory=Int8Settings)
    tolerance: float | None = None
    force: bool = False
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)

    def __post_init__(self) -> None:
        _normalize(self, "precision", lambda v: enum_value(Precision, v, "--precision"))
        _normalize(self, "out", lambda v: Path(v) if v is not None else None)

    def validated(self) -> ExportOptions:
        """Check the values; returns ``self``."""
        if Precision(self.precision) == Precision.bf16:
            raise InputError(
                "bf16 is a torch runtime precision, not an ONNX export; use --fp16 or --int8"
            )
        self.onnx.validated()
        self.fp16.validated()
        self.int8.validated()
        self.diffusion.validated()
        check_number(self.tolerance, "--tolerance", low=0.0, low_open=True)
        return self


@dataclass(frozen=True)
class QuantizeOptions:
    """``accelkit quantize``: fp32 ONNX -> INT8 Q/DQ ONNX, optionally with a sensitivity report.

    Attributes:
        out: Destination (None: ``<stem>.int8.onnx`` next to the input).
        int8: The INT8 recipe.
        tolerance: Max abs error vs fp32 (None: 0.5).
        report: Write the per-layer-group sensitivity report (``<stem>.int8-sensitivity.md``).
        auto_exclude_db: Keep in float the fewest harmful groups needed to reach this PSNR.
        force: Overwrite existing files (the model and the report).
    """

    out: Path | None = None
    int8: Int8Settings = field(default_factory=Int8Settings)
    tolerance: float | None = None
    report: bool = False
    auto_exclude_db: float | None = None
    force: bool = False

    def validated(self) -> QuantizeOptions:
        """Check the values; returns ``self``."""
        self.int8.validated()
        check_number(self.tolerance, "--tolerance", low=0.0, low_open=True)
        v = self.auto_exclude_db
        if v is not None and not (math.isfinite(v) and 0 < v <= 200):
            raise InputError(f"--auto-exclude {v:g}: give a target PSNR in dB above 0, e.g. 35")
        if self.int8.include and (self.report or self.auto_exclude_db is not None):
            raise InputError(
                "--include cannot be combined with --report/--auto-exclude (they choose the quantized layers themselves); use --exclude"
            )
        return self


#: Images per set of ``prune``'s default quality check against the unpruned model: quick on a
#: CPU (3 x 100 images through the FID network) and enough for a noise floor to compare with.
PRUNE_CHECK_N = 100


@dataclass(frozen=True)
class PruneOptions:
    """``accelkit prune``: structured channel pruning, optional data-free distillation.

    ``fid`` and ``threads`` are the shared :class:`~accelkit.options.FidSettings` and
    :class:`~accelkit.options.Threads` objects (a number of images / a thread count is
    accepted and wrapped); only their ``n``, ``weights`` and ``count`` apply here.

    Attributes:
        out: Destination TorchScript (None: ``<stem>.pruned.pt``).
        ratio: Fraction of channels removed.
        importance: Channel importance criterion.
        global_pruning: Rank channels across layers.
        keep: Module-name globs never pruned.
        round_to: Keep channel counts a multiple of this.
        distill_steps: Distillation steps (0: none); on by default.
        distill_seconds: Time budget of distillation in seconds (None or 0: only
            ``distill_steps`` bounds it); it stops at whichever comes first.
        distill_batch: Latents per step.
        lr: Adam learning rate.
        loss: Pixel loss.
        feature_loss: Weight of the feature loss (0: pixels only).
        feature_layers: Globs of the layers the feature loss matches.
        fid: The quality check vs the teacher: ``n`` seeded latents (default
            :data:`PRUNE_CHECK_N`; 0: not measured, said loudly), ``weights`` the feature
            extractor file (None: FID Inception). A result the quality verdict does not
            accept is not written without ``force``.
        threads: CPU threads for torch (``count`` None: torch's default).
        checkpoint: Distillation checkpoint (None: ``<out>.distill.ckpt``).
        resume: Resume from the checkpoint when it exists.
        seed: Seed of latents and random importance.
        force: Overwrite an existing file, and write a pruned model whose quality is outside
            the noise floor (with a loud verdict).
    """

    out: Path | None = None
    ratio: float = 0.5
    importance: Importance = Importance.l2
    global_pruning: bool = False
    keep: tuple[str, ...] = ()
    round_to: int | None = None
    distill_steps: int = 500
    distill_seconds: float | None = 60.0
    distill_batch: int = 16
    lr: float = 1e-3
    loss: DistillLoss = DistillLoss.l1
    feature_loss: float = 0.0
    feature_layers: tuple[str, ...] = ()
    fid: FidSettings = field(default_factory=lambda: FidSettings(n=PRUNE_CHECK_N))
    threads: Threads = field(default_factory=Threads)
    checkpoint: Path | None = None
    resume: bool = True
    seed: int = 0
    force: bool = False

    def __post_init__(self) -> None:
        _normalize(self, "loss", lambda v: enum_value(DistillLoss, v, "--loss"))
        _normalize(self, "importance", lambda v: enum_value(Importance, v, "--importance"))
        _normalize(self, "fid", FidSettings.of)
        _normalize(self, "threads", Threads.of)

    def validated(self) -> PruneOptions:
        """Check the values; returns ``self``."""
        from accelkit.options import check_globs

        check_number(self.lr, "--lr", low=0.0, low_open=True, high=10.0)
        check_number(self.feature_loss, "--feature-loss", low=0.0)
        check_int(self.distill_steps, "--distill-steps", low=0, high=10_000_000)
        if self.distill_seconds is not None:
            check_number(self.distill_seconds, "--distill-time", low=0.0, high=7 * 86400.0)
        check_int(self.distill_batch, "--distill-batch", low=1, high=65536, fix="e.g. 16")
        self.fid.validated()
        self.threads.validated()
        check_globs(self.keep, "--keep")
        check_globs(self.feature_layers, "--feature-layer")
        if (self.feature_loss or self.feature_layers) and not self.distill_steps:
            raise InputError(
                "--feature-loss/--feature-layer shape distillation, which is off here (--no-distill or --distill-steps 0); drop --no-distill or add --distill-steps N"
            )
        if self.feature_layers and not self.feature_loss:
            raise InputError(
                "--feature-layer needs a --feature-loss weight > 0, e.g. --feature-loss 1"
            )
        check_int(self.seed, "--seed", low=0, high=2**63 - 1, fix="give a non-negative seed")
        check_int(
            self.round_to, "--round-to", low=1, high=4096, fix="give a channel multiple, e.g. 8"
        )
        return self


@dataclass(frozen=True)
class BuildOptions:
    """``accelkit build``: ONNX -> TensorRT engine (strongly typed, batch profile, caches).

    Attributes:
        out: Engine path (None: ``<onnx stem>.plan`` next to the ONNX file).
        batch_range: Optimization profile ``(min, opt, max)``.
        workspace_mb: Builder workspace limit, MiB.
        opt_level: Builder optimization level 0..5 (None: TensorRT's default).
        tf32: Allow TF32 for fp32 layers (False: exact fp32 math; None: TensorRT's default).
        cache: Use and fill the engine cache.
        rebuild: Build even when a matching cached engine exists.
        device: ``cuda`` or ``cuda:N``.
        force: Overwrite an existing engine file.
    """

    out: Path | None = None
    batch_range: tuple[int, int, int] | str = DEFAULT_BATCH_RANGE
    workspace_mb: int = 1024
    opt_level: int | None = None
    tf32: bool | None = None
    cache: bool = True
    rebuild: bool = False
    device: str = "cuda"
    force: bool = False

    def __post_init__(self) -> None:
        from accelkit.spec import as_batch_range

        _normalize(
            self, "batch_range", lambda v: as_batch_range(str(v) if isinstance(v, int) else v)
        )

    def validated(self) -> BuildOptions:
        """Check the values; returns ``self``."""
        check_int(
            self.workspace_mb, "--workspace", low=1, high=1 << 24, fix="a size in MiB, e.g. 1024"
        )
        check_int(self.opt_level, "--opt-level", low=0, high=5)
        if not self.device.startswith("cuda"):
            raise InputError(f"--device {self.device!r}: TensorRT engines build on cuda or cuda:N")
        return self


@dataclass(frozen=True)
class FidOptions:
    """``accelkit fid``: FID/KID between image folders or ``.npz`` statistics.

    The extractor settings are the shared :class:`~accelkit.options.FidSettings` (its
    ``weights``, ``batch`` and ``mode`` apply here; the command spells ``--fid-batch``
    ``--batch-size``).

    Attributes:
        save_stats: Write the first source's statistics to this ``.npz``.
        fid: The feature extractor file (``weights``, None: FID Inception), images per
            extractor call (``batch``) and the resize before it (``mode``: ``clean``,
            ``legacy-tensorflow`` or ``legacy-pytorch``, clean-fid's modes; recorded in
            the provenance).
        kid_subsets: KID subsets (folders only).
        device: ``cpu`` or ``cuda[:N]`` for the extractor.
        force: Overwrite an existing ``save_stats`` file.
        trust_code: Load ``fid.weights`` even when its TorchScript uses ops outside the
            allow-list (``--trust-code``).
    """

    save_stats: Path | None = None
    fid: FidSettings = field(default_factory=FidSettings)
    kid_subsets: int = 100
    device: str = "cpu"
    force: bool = False
    trust_code: bool = False

    def validated(self) -> FidOptions:
        """Check the values; returns ``self``."""
        try:
            self.fid.validated()
        except InputError as exc:  # the fid command spells the batch flag --batch-size
            raise InputError(str(exc).replace("--fid-batch", "--batch-size")) from None
        check_int(
            self.kid_subsets, "--kid-subsets", low=0, high=100_000, fix="0 (no KID) or e.g. 100"
        )
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise InputError(f"--device {self.device!r} is unknown; use cpu or cuda[:N]")
        return self


@dataclass(frozen=True)
class CompareOptions:
    """``accelkit compare``: the CI gate between two bench reports.

    Attributes:
        max_slowdown: Allowed slowdown as a fraction (0.05 = 5 %).
        max_fid_drift: Allowed growth of FID drift (None: quality not gated).
        confidence: Confidence level of the bootstrap interval.
        strict: New rows and any environment difference leave the gate unable to tell too.
        allow_unreliable: Accept (exit 0) a comparison that cannot tell (exit 3 by
            default), where it compared something; a regression still exits 1.
        markdown: Write a Markdown summary here.
        junit: Write JUnit XML here.
        force: Overwrite existing summary files.
    """

    max_slowdown: float | str = flag(
        0.05,
        "--max-slowdown",
        help="Allowed slowdown, e.g. 5% or 0.05; a row regresses only when the whole confidence interval of its "
        "speed ratio is below 1 - this.",
        cli_type=str,
        show=lambda v: f"{float(v) * 100:g}%",
    )
    max_fid_drift: float | None = flag(
        None,
        "--max-fid-drift",
        help="Allowed growth of FID drift (rows measured with bench --fid); a row without a finite FID drift on "
        "both sides then fails.",
        cli_type=float | None,
    )
    confidence: float = flag(
        0.95,
        "--confidence",
        help="Confidence level of the bootstrap interval over per-repeat samples.",
        cli_type=float,
    )
    strict: bool = flag(
        False,
        "--strict",
        help="Also exit 3 (cannot tell) on rows new in the current report and on any environment difference, "
        "the number of repeats included.",
        cli_type=bool,
    )
    allow_unreliable: bool = flag(
        False,
        "--allow-unreliable",
        help="Exit 0 instead of 3 when the gate cannot tell (rows unreliable: loads, versions or hardware differ, "
        "too few repeats, an interval wider than the threshold; rows missing), said loudly; a regression still "
        "exits 1, and a comparison that compared nothing still exits 3.",
        cli_type=bool,
    )
    markdown: Path | None = flag(
        None,
        "--markdown",
        help="Write a Markdown summary (CI job summary / PR comment).",
        cli_type=Path | None,
    )
    junit: Path | None = flag(
        None, "--junit", help="Write JUnit XML, one test case per row.", cli_type=Path | None
    )
    force: bool = flag(
        False, "--force", help="Overwrite existing --markdown/--junit files.", cli_type=bool
    )

    def __post_init__(self) -> None:
        _normalize(self, "max_slowdown", _fraction)

    def validated(self) -> CompareOptions:
        """Check the values; returns ``self``."""
        check_number(float(self.max_slowdown), "--max-slowdown", low=0.0, high=0.99)
        check_number(self.max_fid_drift, "--max-fid-drift", low=0.0)
        if not (math.isfinite(self.confidence) and 0.5 <= self.confidence < 1):
            raise InputError(f"--confidence {self.confidence} is out of range; use e.g. 0.95")
        if self.strict and self.allow_unreliable:
            raise InputError(
                "--strict and --allow-unreliable contradict each other (one makes more comparisons unreliable, "
                "the other accepts them); pass one of them"
            )
        return self


def _precisions(values: Sequence[Any], flag_text: str) -> tuple[str, ...]:
    return tuple(enum_value(Precision, p, flag_text).value for p in values)


#: ``optimize --fid`` when not given: images per set of a one-pass generator's search.
OPTIMIZE_FID_N = 500
#: ... and of a diffusion pipeline's (every image is a whole sampler run; at 200 the
#: distribution-level test decides the bundled ddpm's step changes: docs/diffusion.md).
OPTIMIZE_DIFFUSION_FID_N = 200


@dataclass(frozen=True)
class OptimizeOptions:
    """``accelkit optimize``: the fastest build whose quality the user accepts.

    Attributes:
        budget: ``floor`` (no detectable drift: the calibrated quality verdict accepts the
            build), a max paired FID drift, or ``psnr:DB`` (the paired test's margin at DB).
        backends: Backends to search (empty: every backend this machine runs).
        precisions: Precisions to search (empty: all; the FP32 torch baseline always runs).
        batch: Images per call the build is tuned for.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        time_budget: Wall time for the search (``20m``, seconds...).
        out: Output folder (chosen artifact, report, Pareto plot, journal).
        fid: The drift measurement (N images per set, extractor...); N >= 2, or 0 (the
            default): :data:`OPTIMIZE_FID_N`, :data:`OPTIMIZE_DIFFUSION_FID_N` for a
            diffusion pipeline (:meth:`for_kind`).
        seed: Latent seed.
        threads: The CPU thread policy, the same for every candidate and the baseline.
        allow_prune: Also search structured pruning + distillation (changes weights).
        prune_ratios: Pruning ratios tried with ``allow_prune``.
        distill_steps: Distillation steps per pruned model.
        int8: The INT8 recipe of the int8 candidates (the one ``bench`` and ``export`` use).
        min_psnr_db: Quick check: reject a candidate whose paired PSNR on a few images is below this.
        tie_margin: Builds within this share of the fastest accepted build's images/sec count as
            equally fast (timing noise); of those, the one with the least drift is chosen.
        timing: Timing of each candidate.
        force: Start over even when ``out`` holds a search (default: resume it).
    """

    budget: str = flag(
        "floor",
        "--budget",
        help="Quality the build must keep: floor (no detectable drift: the quality verdict accepts it; "
        "inconclusive is not accepted), a max paired FID drift (e.g. 2.5) or psnr:DB (the paired test with "
        "its margin at DB, e.g. psnr:40).",
        cli_type=str,
    )
    backends: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    batch: int = flag(
        1,
        "--batch",
        help="Images per call the build is for (one batch size; its speed is measured at it).",
        cli_type=str,
        parse=lambda text: parse_batches(text, "--batch", single=True)[0],
        show=str,
    )
    device: str = flag(
        "auto", "--device", help="auto (CUDA if available), cpu or cuda[:N].", cli_type=str
    )
    time_budget: str | float = flag(
        "20m",
        "--time-budget",
        help="Wall time for the search, e.g. 10m, 600s, 1h (held within 5 %: each phase is estimated before it "
        "starts); when it runs out the best build found so far is chosen.",
        cli_type=str,
        show=str,
    )
    out: Path = flag(
        Path("accelkit-optimize"),
        "--out",
        help="Output folder: the chosen artifact + sidecar, results.json/md/csv, pareto.png, optimize.json, "
        "journal.jsonl.",
        cli_type=Path,
    )
    fid: FidSettings = field(default_factory=lambda: FidSettings(n=0))
    seed: int = flag(
        0,
        "--seed",
        help="Latent seed of the search (re-measure the chosen build with another one).",
        cli_type=int,
    )
    threads: Threads = field(default_factory=Threads)
    allow_prune: bool = flag(
        False,
        "--allow-prune",
        help="Also search structured pruning + data-free distillation (changes the weights).",
        cli_type=bool,
    )
    prune_ratios: tuple[float, ...] = flag(
        (0.25, 0.5),
        "--prune-ratios",
        help="With --allow-prune: comma-separated pruning ratios.",
        cli_type=str,
        parse=lambda text: tuple(parse_float_list(text, "--prune-ratios")),
        show=lambda ratios: ",".join(f"{r:g}" for r in ratios),
    )
    distill_steps: int = flag(
        300,
        "--distill-steps",
        help="With --allow-prune: distillation steps per pruned model.",
        cli_type=int,
    )
    int8: Int8Settings = field(default_factory=Int8Settings)
    min_psnr_db: float = flag(
        20.0,
        "--min-psnr",
        help="Quick check: reject a candidate whose paired PSNR on a few images is below this (dB) before "
        "measuring FID.",
        cli_type=float,
    )
    tie_margin: float = flag(
        0.05,
        "--tie-margin",
        help="Builds within this share of the fastest accepted build's speed count as equally fast (timing "
        "noise); of those the one with the least drift is chosen (0: the fastest, however small its lead).",
        cli_type=float,
    )
    timing: Timing = SEARCH_TIMING
    force: bool = flag(
        False,
        "--force",
        help="Start over even when --out holds a search (default: resume it from its journal).",
        cli_type=bool,
    )

    def __post_init__(self) -> None:
        _normalize(self, "out", Path)
        _normalize(self, "backends", lambda v: tuple(v))
        _normalize(self, "precisions", lambda v: _precisions(v, "--precision"))
        _normalize(self, "prune_ratios", lambda v: tuple(float(x) for x in v))
        _normalize(self, "fid", FidSettings.of)
        _normalize(self, "threads", Threads.of)

    @property
    def time_budget_s(self) -> float:
        """The time budget in seconds."""
        return parse_duration(self.time_budget)

    def for_kind(self, diffusion: bool) -> OptimizeOptions:
        """These options with ``--fid`` resolved for the generator's kind when not given
        (0): :data:`OPTIMIZE_DIFFUSION_FID_N` for a diffusion pipeline (each of its images is
        a whole sampler run, and the reference is made three times over: sets A and B and
        the margin's anchor), else :data:`OPTIMIZE_FID_N`."""
        if self.fid.n:
            return self
        n = OPTIMIZE_DIFFUSION_FID_N if diffusion else OPTIMIZE_FID_N
        return replace(self, fid=replace(self.fid, n=n))

    def validated(self) -> OptimizeOptions:
        """Check the values; returns ``self``."""
        from accelkit.autotune.choice import Budget

        Budget.parse(self.budget)
        parse_duration(self.time_budget)
        parse_batches(self.batch, "--batch", single=True)
        self.fid.validated(required=self.fid.n != 0)  # 0: the kind's default (for_kind)
        self.threads.validated()
        self.int8.validated()
        self.timing.validated()
        check_int(self.seed, "--seed", low=0, high=2**63 - 1, fix="give a non-negative seed")
        check_number(self.min_psnr_db, "--min-psnr", low=0.0, high=200.0)
        check_number(self.tie_margin, "--tie-margin", low=0.0, high=0.5)
        if any(not math.isfinite(r) or not (0 < r < 1) for r in self.prune_ratios):
            raise InputError(
                f"--prune-ratios {','.join(map(str, self.prune_ratios))}: each ratio must be in (0, 1)"
            )
        check_int(self.distill_steps, "--distill-steps", low=0, high=10_000_000)
        return self


__all__ = [
    "PRECISIONS",
    "BuildOptions",
    "CalibMethod",
    "CompareOptions",
    "DistillLoss",
    "ExportOptions",
    "Exporter",
    "FidOptions",
    "FidSettings",
    "Fp16Settings",
    "Importance",
    "Int8Options",
    "Int8Settings",
    "LatentDistribution",
    "LoadOptions",
    "OnnxSettings",
    "OptimizeOptions",
    "Precision",
    "PruneOptions",
    "PRUNE_CHECK_N",
    "QuantizeOptions",
    "Threads",
    "Timing",
    "check_number",
    "parse_duration",
    "resolve_artifact",
]
