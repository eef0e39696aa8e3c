"""Typed options of the pipelines: one dataclass per step, enums for every choice.

The CLI parses flags into these objects and hands them to one pipeline function; a
Python user builds them directly. Validation happens here, once, with the same one-line
messages whether the values came from flags or from code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelkit.errors import InputError

if TYPE_CHECKING:
    from accelkit.artifact import Artifact


class Precision(str, Enum):
    """Numeric precision of a build."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"
    bf16 = "bf16"


class Exporter(str, Enum):
    """Which torch ONNX exporter runs (``auto``: dynamo, falling back to TorchScript)."""

    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


class CalibMethod(str, Enum):
    """INT8 calibration method."""

    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


class Importance(str, Enum):
    """Channel importance for structured pruning."""

    l2 = "l2"
    l1 = "l1"
    random = "random"


class DistillLoss(str, Enum):
    """Pixel loss of data-free distillation."""

    l1 = "l1"
    l2 = "l2"


class LatentDistribution(str, Enum):
    """Prior latents are drawn from."""

    normal = "normal"
    uniform = "uniform"


def _value(x: Any) -> Any:
    return x.value if isinstance(x, Enum) else x


def _normalize(obj: Any, name: str, fn: Any) -> None:
    """Set a frozen dataclass field to its normalized value (used in ``__post_init__``)."""
    object.__setattr__(obj, name, fn(getattr(obj, name)))


def _enum(enum: Any, value: Any, flag: str) -> Any:
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        raise InputError(
            f"{flag} {value!r} is unknown; choose one of {', '.join(m.value for m in enum)}"
        ) from None


def _batch_range(value: Any) -> tuple[int, int, int]:
    """``"1:8:64"``, ``8`` or a sequence -> ``(min, opt, max)``."""
    from accelkit.spec import as_batch_range

    return as_batch_range(str(value) if isinstance(value, int) else value)


def _fraction(value: Any) -> float:
    """``"5%"``, ``"0.05"`` or ``0.05`` -> ``0.05``."""
    from accelkit.gate.compare import parse_fraction

    return float(parse_fraction(value)) if isinstance(value, str) else float(value)


def check_number(
    value: float | None,
    flag: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    """Refuse NaN/Inf and values out of ``[low, high]`` (``(low, high]`` with ``low_open``).

    Raises:
        InputError: One line naming the flag and the allowed range.
    """
    if value is None:
        return
    if not math.isfinite(value):
        raise InputError(f"{flag} {value} is not a finite number")
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(
            f"{flag} {value:g} is out of range; use a value {'>' if low_open else '>='} {low:g}"
            + (f" and <= {high:g}" if high is not None else "")
        )
    if high is not None and value > high:
        raise InputError(f"{flag} {value:g} is out of range; use a value <= {high:g}")


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

        check_number(self.truncation, "--truncation", low=0.0, low_open=True)
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
class Int8Options:
    """Post-training INT8 quantization (explicit Q/DQ, calibrated on the generator's prior).

    Attributes:
        calib: Calibration samples.
        calib_method: minmax, entropy or percentile.
        per_channel: Per-channel weight scales.
        exclude: Node-name / module-path globs kept in float.
        include: Globs of the only nodes quantized.
        op_types: Op types to quantize (None: Conv, ConvTranspose, Gemm, MatMul).
        calib_images: Folder of real inputs for image-to-image generators.
        calib_cache: Reuse cached calibration ranges.
    """

    calib: int = 256
    calib_method: CalibMethod = CalibMethod.minmax
    per_channel: bool = False
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    op_types: tuple[str, ...] | None = None
    calib_images: Path | None = None
    calib_cache: bool = True

    def __post_init__(self) -> None:
        _normalize(self, "calib_method", lambda v: _enum(CalibMethod, v, "--calib-method"))
        _normalize(self, "calib_images", lambda v: Path(v) if v is not None else None)

    def validated(self) -> Int8Options:
        """Check the values; returns ``self``."""
        if self.calib < 1:
            raise InputError(
                f"--calib {self.calib}: give a positive number of calibration samples, e.g. 256"
            )
        if self.calib > 1_000_000:
            raise InputError(
                f"--calib {self.calib} is unreasonably large; a few hundred samples calibrate a generator"
            )
        return self

    def pass_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`accelkit.passes.int8.Int8`."""
        kw: dict[str, Any] = {
            "calib_samples": self.calib,
            "calib_method": _value(self.calib_method),
            "per_channel": self.per_channel,
            "exclude": tuple(self.exclude),
        }
        if not self.calib_cache:
            kw["calib_cache"] = False
        if self.calib_images is not None:
            kw["calib_images"] = self.calib_images
        if self.include:
            kw["include"] = tuple(self.include)
        if self.op_types is not None:
            kw["op_types"] = tuple(self.op_types)
        return kw


@dataclass(frozen=True)
class ExportOptions:
    """``accelkit export``: torch (or fp32 ONNX) -> verified fp32/fp16/int8 ONNX.

    Attributes:
        out: Destination ``.onnx`` (None: next to the input, ``<stem>[.<precision>].onnx``).
        precision: fp32, fp16 or int8.
        opset: ONNX opset.
        batch_range: ``(min, opt, max)`` of the dynamic batch dimension.
        exporter: Which torch exporter.
        tolerance: Max abs error vs torch (None: per-precision default).
        fp16_keep_nodes: Node names kept in float32 by ``--fp16``.
        fp16_headroom: ``--fp16``: keep in float32 every node whose calibrated activations
            exceed this fraction of the fp16 maximum (0.5 default; lower keeps more).
        int8: INT8 options (used with ``precision=int8``).
        force: Overwrite an existing file.
    """

    out: Path | None = None
    precision: Precision | str = Precision.fp32
    opset: int = 18
    batch_range: tuple[int, int, int] | str = (1, 8, 64)
    exporter: Exporter = Exporter.auto
    tolerance: float | None = None
    fp16_keep_nodes: tuple[str, ...] = ()
    fp16_headroom: float = 0.5
    int8: Int8Options = field(default_factory=Int8Options)
    force: bool = False

    def __post_init__(self) -> None:
        _normalize(self, "batch_range", _batch_range)
        _normalize(self, "precision", lambda v: _enum(Precision, v, "--precision"))
        _normalize(self, "exporter", lambda v: _enum(Exporter, v, "--exporter"))
        _normalize(self, "out", lambda v: Path(v) if v is not None else None)

    def validated(self) -> ExportOptions:
        """Check the values; returns ``self``."""
        check_number(self.fp16_headroom, "--fp16-headroom", low=0.0, low_open=True, high=1.0)
        if Precision(self.precision) == Precision.bf16:
            raise InputError(
                "bf16 is a torch runtime precision, not an ONNX export; use --fp16 or --int8"
            )
        if not 13 <= self.opset <= 25:
            raise InputError(f"--opset {self.opset} is out of range; use 13..25 (18 recommended)")
        check_number(self.tolerance, "--tolerance", low=0.0, low_open=True)
        self.int8.validated()
        return self


@dataclass(frozen=True)
class QuantizeOptions:
    """``accelkit quantize``: fp32 ONNX -> INT8 Q/DQ ONNX, optionally with a sensitivity report.

    Attributes:
        out: Destination (None: ``<stem>.int8.onnx`` next to the input).
        int8: The quantization options.
        tolerance: Max abs error vs fp32 (None: 0.5).
        report: Write the per-layer-group sensitivity report (``<stem>.int8-sensitivity.md``).
        auto_exclude_db: Keep in float the fewest harmful groups needed to reach this PSNR.
        force: Overwrite existing files (the model and the report).
    """

    out: Path | None = None
    int8: Int8Options = field(default_factory=Int8Options)
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


@dataclass(frozen=True)
class PruneOptions:
    """``accelkit prune``: structured channel pruning, optional data-free distillation.

    Attributes:
        out: Destination TorchScript (None: ``<stem>.pruned.pt``).
        ratio: Fraction of channels removed.
        importance: Channel importance criterion.
        global_pruning: Rank channels across layers.
        keep: Module-name globs never pruned.
        round_to: Keep channel counts a multiple of this.
        distill_steps: Distillation steps (0: none).
        distill_batch: Latents per step.
        lr: Adam learning rate.
        loss: Pixel loss.
        feature_loss: Weight of the feature loss (0: pixels only).
        feature_layers: Globs of the layers the feature loss matches.
        fid: FID drift vs the teacher on N images (0: off).
        fid_weights: Feature extractor file (None: FID Inception).
        threads: CPU threads for torch (None: torch's default).
        checkpoint: Distillation checkpoint (None: ``<out>.distill.ckpt``).
        resume: Resume from the checkpoint when it exists.
        seed: Seed of latents and random importance.
        force: Overwrite an existing file.
    """

    out: Path | None = None
    ratio: float = 0.5
    importance: Importance = Importance.l2
    global_pruning: bool = False
    keep: tuple[str, ...] = ()
    round_to: int | None = None
    distill_steps: int = 0
    distill_batch: int = 16
    lr: float = 1e-3
    loss: DistillLoss = DistillLoss.l1
    feature_loss: float = 0.0
    feature_layers: tuple[str, ...] = ()
    fid: int = 0
    fid_weights: str | None = None
    threads: int | None = None
    checkpoint: Path | None = None
    resume: bool = True
    seed: int = 0
    force: bool = False

    def __post_init__(self) -> None:
        _normalize(self, "loss", lambda v: _enum(DistillLoss, v, "--loss"))
        _normalize(self, "importance", lambda v: _enum(Importance, v, "--importance"))

    def validated(self) -> PruneOptions:
        """Check the values; returns ``self``."""
        check_number(self.lr, "--lr", low=0.0, low_open=True)
        check_number(self.feature_loss, "--feature-loss", low=0.0)
        if self.distill_steps < 0:
            raise InputError("--distill-steps must be >= 0")
        if self.distill_batch < 1:
            raise InputError(f"--distill-batch {self.distill_batch}: give a positive batch size")
        if self.fid < 0 or self.fid == 1:
            raise InputError(
                f"--fid {self.fid}: give the number of images (>= 2; hundreds for a meaningful FID), or 0 to skip it"
            )
        if (self.feature_loss or self.feature_layers) and not self.distill_steps:
            raise InputError(
                "--feature-loss/--feature-layer shape distillation; add --distill-steps N"
            )
        if self.feature_layers and not self.feature_loss:
            raise InputError(
                "--feature-layer needs a --feature-loss weight > 0, e.g. --feature-loss 1"
            )
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads}: give a positive number of threads")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed}: give a non-negative seed")
        if self.round_to is not None and self.round_to < 1:
            raise InputError(
                f"--round-to {self.round_to}: give a positive channel multiple, e.g. 8"
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
    batch_range: tuple[int, int, int] | str = (1, 8, 64)
    workspace_mb: int = 1024
    opt_level: int | None = None
    tf32: bool | None = None
    cache: bool = True
    rebuild: bool = False
    device: str = "cuda"
    force: bool = False

    def __post_init__(self) -> None:
        _normalize(self, "batch_range", _batch_range)

    def validated(self) -> BuildOptions:
        """Check the values; returns ``self``."""
        if self.workspace_mb < 1:
            raise InputError(
                f"--workspace {self.workspace_mb}: give a positive size in MiB, e.g. 1024"
            )
        if self.opt_level is not None and not 0 <= self.opt_level <= 5:
            raise InputError(f"--opt-level {self.opt_level} is out of range; use 0..5")
        if not self.device.startswith("cuda"):
            raise InputError(f"--device {self.device!r}: TensorRT engines build on cuda or cuda:N")
        return self


@dataclass(frozen=True)
class FidOptions:
    """``accelkit fid``: FID/KID between image folders or ``.npz`` statistics.

    Attributes:
        save_stats: Write the first source's statistics to this ``.npz``.
        fid_weights: Feature extractor file (None: FID Inception).
        batch_size: Images per extractor call.
        kid_subsets: KID subsets (folders only).
        device: ``cpu`` or ``cuda[:N]`` for the extractor.
        force: Overwrite an existing ``save_stats`` file.
        fid_mode: Resize before the extractor: ``clean`` (default), ``legacy-tensorflow``
            or ``legacy-pytorch`` (clean-fid's modes); recorded in the provenance.
    """

    save_stats: Path | None = None
    fid_weights: str | None = None
    batch_size: int = 32
    kid_subsets: int = 100
    device: str = "cpu"
    force: bool = False
    fid_mode: str = "clean"

    def validated(self) -> FidOptions:
        """Check the values; returns ``self``."""
        if self.batch_size < 1:
            raise InputError(
                f"--batch-size {self.batch_size}: give a positive number of images per call"
            )
        if self.kid_subsets < 0:
            raise InputError(
                f"--kid-subsets {self.kid_subsets}: give 0 (no KID) or a positive number of subsets"
            )
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise InputError(f"--device {self.device!r} is unknown; use cpu or cuda[:N]")
        from accelkit.quality.images import check_fid_mode

        object.__setattr__(self, "fid_mode", check_fid_mode(self.fid_mode))
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

    max_slowdown: float | str = 0.05
    max_fid_drift: float | None = None
    confidence: float = 0.95
    strict: bool = False
    allow_unreliable: bool = False
    markdown: Path | None = None
    junit: Path | None = None
    force: bool = False

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


def parse_duration(text: str | float | int, flag: str = "--time-budget") -> float:
    """``20m``, ``90s``, ``1h``, ``1.5h`` or a number of seconds -> seconds.

    Raises:
        InputError: Not a positive finite duration.
    """
    import re

    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", str(text).lower())
        if not m:
            raise InputError(f"{flag} {text!r} is not a duration; use e.g. 20m, 90s or 1h")
        value = (
            float(m.group(1))
            * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 1}[m.group(2)]
        )
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{flag} {text!r} must be a positive duration, e.g. 20m")
    return value


@dataclass(frozen=True)
class OptimizeOptions:
    """``accelkit optimize``: the fastest build whose quality the user accepts.

    Attributes:
        budget: ``floor`` (FID drift within the noise floor), a max FID drift, or ``psnr:DB``.
        backends: Backends to search (empty: every backend this machine runs).
        precisions: Precisions to search (empty: all; the FP32 torch baseline always runs).
        batch: Images per call the build is tuned for.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        time_budget: Wall time for the search (``20m``, seconds...).
        out: Output folder (chosen artifact, report, Pareto plot, journal).
        fid: Images per set for FID/KID drift (the noise floor uses twice as many).
        fid_weights: Feature extractor file (None: the FID Inception).
        seed: Latent seed.
        threads: CPU threads for every runner (None: the default policy).
        allow_prune: Also search structured pruning + distillation (changes weights).
        prune_ratios: Pruning ratios tried with ``allow_prune``.
        distill_steps: Distillation steps per pruned model.
        calib: INT8 calibration samples.
        min_psnr_db: Quick check: reject a candidate whose paired PSNR on a few images is below this.
        tie_margin: Builds within this share of the fastest accepted build's images/sec count as
            equally fast (timing noise); of those, the one with the least drift is chosen.
        repeats, min_time_s: Timing of each candidate.
        force: Start over even when ``out`` holds a search (default: resume it).
    """

    budget: str = "floor"
    backends: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    batch: int = 1
    device: str = "auto"
    time_budget: str | float = "20m"
    out: Path = Path("accelkit-optimize")
    fid: int = 500
    fid_weights: str | None = None
    seed: int = 0
    threads: int | None = None
    allow_prune: bool = False
    prune_ratios: tuple[float, ...] = (0.25, 0.5)
    distill_steps: int = 300
    calib: int = 128
    min_psnr_db: float = 20.0
    tie_margin: float = 0.05
    repeats: int = 5
    min_time_s: float = 0.3
    force: bool = False

    def __post_init__(self) -> None:
        _normalize(self, "out", Path)
        _normalize(self, "backends", lambda v: tuple(v))
        _normalize(
            self,
            "precisions",
            lambda v: tuple(_enum(Precision, p, "--precisions").value for p in v),
        )
        _normalize(self, "prune_ratios", lambda v: tuple(float(x) for x in v))

    def validated(self) -> OptimizeOptions:
        """Check the values; returns ``self``."""
        from accelkit.autotune.search import Budget
        from accelkit.benchmark.plan import MAX_BATCH

        Budget.parse(self.budget)
        parse_duration(self.time_budget)
        if not 1 <= self.batch <= MAX_BATCH:
            raise InputError(
                f"--batch {self.batch}: give the number of images per call the build is for (1..{MAX_BATCH})"
            )
        if self.fid < 2:
            raise InputError(
                f"--fid {self.fid}: the quality gate needs images (hundreds for a meaningful FID, e.g. 500)"
            )
        if self.seed < 0:
            raise InputError(f"--seed {self.seed}: give a non-negative seed")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads}: give a positive number of threads")
        if self.calib < 1:
            raise InputError(f"--calib {self.calib}: give a positive number of calibration samples")
        if self.repeats < 3:
            raise InputError(f"--repeats {self.repeats} is too few for a median; use 3 or more")
        check_number(self.min_time_s, "--min-time", low=0.0, low_open=True, high=3600.0)
        check_number(self.min_psnr_db, "--min-psnr", low=0.0)
        check_number(self.tie_margin, "--tie-margin", low=0.0, high=0.5)
        if any(not (0 < r < 1) or not math.isfinite(r) for r in self.prune_ratios):
            raise InputError(
                f"--prune-ratios {','.join(map(str, self.prune_ratios))}: each ratio must be in (0, 1)"
            )
        if self.distill_steps < 0:
            raise InputError("--distill-steps must be >= 0")
        return self
