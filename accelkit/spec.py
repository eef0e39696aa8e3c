"""The generator's I/O contract: what goes in, what comes out, in which range.

A :class:`GeneratorSpec` is inferred from the model where possible (attributes such as
``z_dim``/``nz``/``latent_dim``, the forward signature, probing, ONNX graph shapes) and
can be overridden by the user with flags such as ``--input z:256``,
``--input label:int:10``, ``--input image:3x32x32``, ``--output-range -1,1`` and
``--dynamic-hw`` / ``--hw-range 16:64:256`` (inputs of any height and width).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from accelkit.errors import InputError, SpecError

InputKind = Literal["latent", "label", "image"]
LatentDist = Literal["normal", "uniform"]

#: Input names that mean a latent even with a ``C x H x W`` shape (a VAE decoder's ``latent:4x64x64``).
LATENT_NAMES = ("z", "latent", "latents", "noise", "w", "style", "styles", "z_in")

#: Largest single dimension and element count of one input sample (without batch).
MAX_DIM = 1 << 20
MAX_ELEMENTS = 1 << 28

_INPUT_HELP = (
    "use NAME:SIZE for a latent (z:256), NAME:int:CLASSES for a class label "
    "(label:int:10), NAME:CxHxW for an image (image:3x32x32), or name the kind "
    "explicitly (NAME:latent:256, NAME:label:10, NAME:image:3x32x32)"
)


@dataclass(frozen=True)
class InputSpec:
    """One generator input, without the batch dimension.

    Attributes:
        name: Argument / ONNX input name.
        kind: ``latent`` (float noise), ``label`` (int64 class index) or ``image``.
        shape: Shape without batch; ``()`` for a label.
        dtype: ``float32`` or ``int64``.
        num_classes: Number of classes for a ``label`` input.
    """

    name: str
    kind: InputKind
    shape: tuple[int, ...]
    dtype: str = "float32"
    num_classes: int | None = None

    def describe(self) -> str:
        """Short human form, e.g. ``z: latent float32[256]``."""
        extra = f" ({self.num_classes} classes)" if self.num_classes else ""
        dims = "x".join(str(d) for d in self.shape) or "scalar"
        return f"{self.name}: {self.kind} {self.dtype}[{dims}]{extra}"


@dataclass(frozen=True)
class GeneratorSpec:
    """The generator's I/O contract.

    Attributes:
        inputs: The inputs in forward-argument order.
        output_shape: Output shape without batch, ``(C, H, W)``.
        output_range: Value range of the output, ``(-1, 1)`` or ``(0, 1)``.
        latent_dist: Distribution latents are drawn from.
        truncation_psi: Truncation applied to latents (None: none).
        hw_range: ``(min, opt, max)`` height and width in pixels that every spatial
            input (``C x H x W``: an image, or a VAE decoder's latent) may take, when the
            generator runs at any size (``--dynamic-hw``); None: fixed size. The input
            shapes hold the nominal size that benchmarks and samples use.
        inferred: Which fields were inferred rather than given, with how.
    """

    inputs: tuple[InputSpec, ...]
    output_shape: tuple[int, ...] = ()
    output_range: tuple[float, float] = (-1.0, 1.0)
    latent_dist: LatentDist = "normal"
    truncation_psi: float | None = None
    hw_range: tuple[int, int, int] | None = None
    inferred: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def num_classes(self) -> int | None:
        """Classes of the first label input, or None for unconditional generators."""
        for inp in self.inputs:
            if inp.kind == "label":
                return inp.num_classes
        return None

    @property
    def input_names(self) -> list[str]:
        """Input names in order."""
        return [i.name for i in self.inputs]

    @property
    def spatial_inputs(self) -> list[InputSpec]:
        """Inputs with a ``C x H x W`` shape (images, spatial latents): the ones ``hw_range`` resizes."""
        return [i for i in self.inputs if is_spatial(i)]

    def at_size(self, height: int, width: int) -> GeneratorSpec:
        """Copy with every spatial input at ``height x width`` (the output scaled alike when it divides).

        Used to run a dynamic-H/W generator at another size than its nominal one.
        """
        spatial = self.spatial_inputs
        if not spatial:
            return self
        h0, w0 = spatial[0].shape[1:]
        inputs = tuple(
            replace(i, shape=(i.shape[0], height, width)) if is_spatial(i) else i
            for i in self.inputs
        )
        out = self.output_shape
        if len(out) == 3 and (out[1] * height) % h0 == 0 and (out[2] * width) % w0 == 0:
            out = (out[0], out[1] * height // h0, out[2] * width // w0)
        return replace(self, inputs=inputs, output_shape=out)

    def with_output(
        self, shape: Sequence[int] | None = None, rng: tuple[float, float] | None = None
    ) -> GeneratorSpec:
        """Copy with the output shape and/or range replaced."""
        return replace(
            self,
            output_shape=tuple(shape) if shape is not None else self.output_shape,
            output_range=rng if rng is not None else self.output_range,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (used in sidecars, reports and ONNX metadata)."""
        d = asdict(self)
        d["inputs"] = [asdict(i) for i in self.inputs]
        d["inferred"] = dict(self.inferred)
        return d

    def to_json(self) -> str:
        """Compact JSON form."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorSpec:
        """Inverse of :meth:`to_dict`."""
        try:
            inputs = tuple(
                InputSpec(
                    name=str(i["name"]),
                    kind=i["kind"],
                    shape=tuple(int(s) for s in i["shape"]),
                    dtype=str(i.get("dtype", "float32")),
                    num_classes=i.get("num_classes"),
                )
                for i in d["inputs"]
            )
            rng = d.get("output_range", (-1.0, 1.0))
            hw = d.get("hw_range")
            return cls(
                inputs=inputs,
                output_shape=tuple(int(s) for s in d.get("output_shape", ())),
                output_range=(float(rng[0]), float(rng[1])),
                latent_dist=d.get("latent_dist", "normal"),
                truncation_psi=d.get("truncation_psi"),
                hw_range=(int(hw[0]), int(hw[1]), int(hw[2])) if hw else None,
                inferred=tuple(sorted(dict(d.get("inferred", {})).items())),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SpecError(
                f"malformed generator spec ({exc!r}); re-create the artifact with accelkit export"
            ) from None

    def describe(self) -> list[str]:
        """Human-readable lines for ``accelkit info``."""
        lines = [f"input  {i.describe()}" for i in self.inputs]
        out = "x".join(str(d) for d in self.output_shape) or "?"
        lo, hi = self.output_range
        lines.append(f"output float32[{out}] in [{lo:g}, {hi:g}]")
        lat = self.latent_dist + (
            f", truncation psi={self.truncation_psi:g}" if self.truncation_psi else ""
        )
        if any(i.kind == "latent" for i in self.inputs):
            lines.append(f"latent distribution: {lat}")
        if self.hw_range is not None:
            lo_hw, opt_hw, hi_hw = self.hw_range
            names = ", ".join(i.name for i in self.spatial_inputs)
            lines.append(
                f"dynamic height/width of {names}: {lo_hw}..{hi_hw} pixels (opt {opt_hw}); the input shape above is the size benchmarks use"
            )
        if self.inferred:
            lines.append("inferred: " + "; ".join(f"{k} from {v}" for k, v in self.inferred))
        return lines


def is_spatial(inp: InputSpec) -> bool:
    """True for a ``C x H x W`` input with a real spatial size (an image, a VAE decoder latent)."""
    return inp.kind != "label" and len(inp.shape) == 3 and (inp.shape[1] > 1 or inp.shape[2] > 1)


def _parse_dims(text: str, flag: str) -> tuple[int, ...]:
    parts = re.split(r"[x,]", text.strip())
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"--input {flag!r}: {text!r} is not a shape; {_INPUT_HELP}") from None
    if not dims or any(d <= 0 for d in dims):
        raise InputError(f"--input {flag!r}: dimensions must be positive integers; {_INPUT_HELP}")
    if max(dims) > MAX_DIM or math.prod(dims) > MAX_ELEMENTS:
        raise InputError(
            f"--input {flag!r}: {text} is far too large for one sample (at most {MAX_ELEMENTS:,} values); {_INPUT_HELP}"
        )
    return dims


def parse_input_flag(flag: str) -> InputSpec:
    """Parse one ``--input`` value.

    Accepted forms: ``z:256`` (latent), ``z:512x1x1`` (latent kept 3-D),
    ``label:int:10`` (int64 label, 10 classes), ``image:3x32x32`` (image, because the
    name says so or ``NAME:image:CxHxW``), ``NAME:latent:256``, ``NAME:label:10``.

    Raises:
        InputError: The text does not follow one of those forms.
    """
    parts = flag.split(":")
    if len(parts) < 2 or not parts[0] or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", parts[0]):
        raise InputError(f"--input {flag!r} is not NAME:SHAPE; {_INPUT_HELP}")
    name = parts[0]
    if len(parts) == 3:
        kind, rest = parts[1].lower(), parts[2]
        if kind in ("int", "label", "int64", "class"):
            (n,) = _parse_dims(rest, flag) if rest else (0,)
            if n < 1:
                raise InputError(
                    f"--input {flag!r}: a label needs its number of classes; {_INPUT_HELP}"
                )
            return InputSpec(name, "label", (), "int64", n)
        if kind in ("latent", "z", "float"):
            return InputSpec(name, "latent", _parse_dims(rest, flag))
        if kind in ("image", "img"):
            dims = _parse_dims(rest, flag)
            if len(dims) != 3:
                raise InputError(f"--input {flag!r}: an image is CxHxW; {_INPUT_HELP}")
            return InputSpec(name, "image", dims)
        raise InputError(f"--input {flag!r}: unknown kind {parts[1]!r}; {_INPUT_HELP}")
    if len(parts) != 2:
        raise InputError(f"--input {flag!r} has too many ':'; {_INPUT_HELP}")
    dims = _parse_dims(parts[1], flag)
    looks_image = name.lower() in (
        "image",
        "img",
        "x_img",
        "lr",
        "input_image",
        "src",
        "cond_image",
    )
    looks_latent = name.lower() in LATENT_NAMES
    if len(dims) == 3 and not looks_latent and (looks_image or dims[1] > 1 or dims[2] > 1):
        return InputSpec(name, "image", dims)
    return InputSpec(name, "latent", dims)


def input_flag(inp: InputSpec) -> str:
    """The ``--input`` text that gives ``inp`` back (``z:latent:128``, ``label:int:10``, ``image:image:3x32x32``)."""
    if inp.kind == "label":
        return f"{inp.name}:int:{inp.num_classes}"
    return f"{inp.name}:{inp.kind}:{'x'.join(str(d) for d in inp.shape)}"


def parse_output_range(text: str) -> tuple[float, float]:
    """Parse ``--output-range`` such as ``-1,1`` or ``0,1``."""
    try:
        lo_s, hi_s = text.split(",")
        lo, hi = float(lo_s), float(hi_s)
    except ValueError:
        raise InputError(f"--output-range {text!r} is not LOW,HIGH; use -1,1 or 0,1") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(
            f"--output-range {text!r}: LOW and HIGH must be finite numbers; use -1,1 or 0,1"
        )
    if not lo < hi:
        raise InputError(f"--output-range {text!r}: LOW must be below HIGH; use -1,1 or 0,1")
    return (lo, hi)


def apply_overrides(
    spec: GeneratorSpec | None,
    inputs: Sequence[InputSpec] = (),
    output_range: tuple[float, float] | None = None,
    latent_dist: LatentDist | None = None,
    truncation_psi: float | None = None,
    hw_range: tuple[int, int, int] | None = None,
) -> GeneratorSpec | None:
    """Replace inferred fields by user-given ones.

    Inputs given by the user replace the inferred input of the same name, or, when
    no name matches, the inferred input at the same position.

    Raises:
        InputError: ``hw_range`` for a generator without a spatial input, or whose
            range does not hold the input's nominal size.
    """
    if spec is None and not inputs:
        return None
    if spec is None:
        spec = GeneratorSpec(inputs=tuple(inputs))
    else:
        new = list(spec.inputs)
        for pos, inp in enumerate(inputs):
            idx = next((k for k, cur in enumerate(new) if cur.name == inp.name), None)
            if idx is None and pos < len(new) and len(inputs) <= len(new):
                idx = pos
            if idx is None:
                new.append(inp)
            else:
                new[idx] = inp
        inferred = tuple((k, v) for k, v in spec.inferred if not (k == "inputs" and inputs))
        spec = replace(spec, inputs=tuple(new), inferred=inferred)
    if output_range is not None:
        spec = replace(
            spec,
            output_range=output_range,
            inferred=tuple((k, v) for k, v in spec.inferred if k != "output_range"),
        )
    if latent_dist is not None:
        spec = replace(spec, latent_dist=latent_dist)
    if truncation_psi is not None:
        spec = replace(spec, truncation_psi=truncation_psi)
    if hw_range is not None:
        spec = with_hw_range(spec, hw_range)
    return spec


def default_hw_range(size: int) -> tuple[int, int, int]:
    """``--dynamic-hw`` without ``--hw-range``: a quarter to four times the nominal size (at least 1)."""
    return (max(1, size // 4), size, size * 4)


def with_hw_range(spec: GeneratorSpec, hw_range: tuple[int, int, int] | None) -> GeneratorSpec:
    """``spec`` with dynamic height/width over ``hw_range`` (``(0, 0, 0)``: the default range).

    Raises:
        InputError: No spatial input, non-square nominal size outside the range, or a
            range that does not hold the nominal size.
    """
    if hw_range is None:
        return replace(spec, hw_range=None)
    spatial = spec.spatial_inputs
    if not spatial:
        raise InputError(
            "--dynamic-hw/--hw-range: this generator has no C x H x W input ("
            + ", ".join(i.describe() for i in spec.inputs)
            + "); give its image input with --input image:3xHxW"
        )
    h, w = spatial[0].shape[1:]
    if tuple(hw_range) == (0, 0, 0):
        hw_range = default_hw_range(max(h, w))
    lo, opt, hi = hw_range
    if not (lo <= min(h, w) and max(h, w) <= hi):
        raise InputError(
            f"--hw-range {lo}:{opt}:{hi} does not hold the input size {h}x{w}; widen it or set the size with --input NAME:CxHxW"
        )
    return replace(spec, hw_range=(int(lo), int(opt), int(hi)))


def parse_hw_range(text: str) -> tuple[int, int, int]:
    """Parse ``--hw-range MIN:OPT:MAX`` (pixels of height and width), e.g. ``16:64:256``.

    Raises:
        InputError: Not three ordered positive integers.
    """
    raw = str(text).strip()
    parts = [p.strip() for p in raw.split(":")]
    if len(parts) != 3 or any(not re.fullmatch(r"\d+", p) for p in parts):
        raise InputError(
            f"--hw-range {text!r} is not MIN:OPT:MAX; give pixel sizes of height and width, e.g. 16:64:256"
        )
    lo, opt, hi = (int(p) for p in parts)
    if not 1 <= lo <= opt <= hi:
        raise InputError(f"--hw-range {text!r}: need 1 <= MIN <= OPT <= MAX, e.g. 16:64:256")
    return (lo, opt, hi)


def parse_output_shape(text: str) -> tuple[int, ...]:
    """Parse ``--output-shape CxHxW`` (e.g. ``1x28x28``): the image shape of a flat output.

    Raises:
        InputError: Not three positive integers.
    """
    try:
        dims = tuple(int(p) for p in re.split(r"[x,]", str(text).strip()))
    except ValueError:
        raise InputError(
            f"--output-shape {text!r} is not CxHxW; give the image shape of each output, e.g. 1x28x28 or 3x64x64"
        ) from None
    if len(dims) != 3 or any(d <= 0 for d in dims):
        raise InputError(
            f"--output-shape {text!r} is not CxHxW; give the image shape of each output, e.g. 1x28x28 or 3x64x64"
        )
    return dims


_BATCH_HELP = (
    "use MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX (e.g. 1:8:64), or a single N for a fixed batch"
)


# --------------------------------------------------------------------------- parsing
def parse_batch_range(text: str) -> tuple[int, int, int]:
    """Parse a ``--batch-range`` value.

    Args:
        text: ``MIN:OPT:MAX`` (e.g. ``1:8:64``) or a single ``N`` meaning ``N:N:N``.
            Values are batch sizes (images per call).

    Returns:
        ``(min, opt, max)`` with ``1 <= min <= opt <= max``.

    Raises:
        InputError: The text is not of that form, a value is not a positive integer,
            or the values are out of order.
    """
    raw = str(text).strip()
    parts = [p.strip() for p in raw.split(":")] if raw else []
    if len(parts) not in (1, 3) or any(not re.fullmatch(r"[+-]?\d+", p) for p in parts):
        raise InputError(f"--batch-range {text!r} is not MIN:OPT:MAX or N; {_BATCH_HELP}")
    values = [int(p) for p in parts]
    if any(v < 1 for v in values):
        raise InputError(
            f"--batch-range {text!r}: batch sizes must be positive integers; {_BATCH_HELP}"
        )
    lo, opt, hi = values * 3 if len(values) == 1 else values
    if not lo <= opt <= hi:
        raise InputError(
            f"--batch-range {text!r}: need MIN <= OPT <= MAX, got {lo}:{opt}:{hi}; {_BATCH_HELP}"
        )
    return (lo, opt, hi)


def as_batch_range(value: str | Sequence[int]) -> tuple[int, int, int]:
    """``(min, opt, max)`` from a ``--batch-range`` string or a sequence of 1 or 3 ints.

    Raises:
        InputError: Not a valid batch range.
    """
    if isinstance(value, str):
        return parse_batch_range(value)
    vals = tuple(value)
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise InputError(
            f"batch range {value!r} is not three integers (MIN, OPT, MAX); {_BATCH_HELP}"
        )
    return parse_batch_range(":".join(str(v) for v in vals))
