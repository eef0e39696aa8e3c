"""Command-line parameters shared by several commands, declared once.

:func:`load_options` adds the generator-loading flags (``--arch``, ``--input``,
``--output-range``...) to a command and hands it one :class:`LoadOptions` (as
Polygraphy's ``ModelArgs`` group does for its tools); :func:`bind` does the same for any
option value object of :mod:`accelkit.options` (:class:`~accelkit.options.Timing`,
:class:`~accelkit.options.FidSettings`, :class:`~accelkit.options.Int8Settings`...), whose
fields own the flag names, defaults, help and bounds. So every command spells and
validates a flag the same way.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from enum import Enum
from typing import Any, TypeVar

import typer

from accelkit.options import FidSettings, Flag, flags_of, parse_csv, parse_int_list
from accelkit.pipelines.options import LatentDistribution, LoadOptions

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
            help="Truncation psi applied to latents (0 < psi <= 2; 1: none).",
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


# ------------------------------------------------------------------ option groups bound to value objects
def _cli_default(value: Any, fl: Flag) -> Any:
    """A field's default as typer wants it (enum -> its value, tuple -> None, a range -> ``a:b:c``)."""
    if fl.show is not None:
        return fl.show(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple) and fl.parse is not None and fl.cli_type is str:
        return ":".join(str(v) for v in value)
    if isinstance(value, tuple) and not value:
        return None
    return value


def bind(
    param: str,
    cls: type,
    *,
    defaults: Any = None,
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    panel: str | None = None,
    panels: Mapping[str, str | None] | None = None,
    help: Mapping[str, str] | None = None,
    hide_defaults: Sequence[str] = (),
) -> Callable[[F], F]:
    """Add the flags of an option value object to a command; it receives the object as ``param``.

    The flag names, help texts and defaults come from the object's fields
    (:func:`accelkit.options.flag` metadata): a flag is declared once and means the same in
    every command (as Polygraphy's argument groups own their flags). The object is built and
    ``validated()`` when the command line is parsed, before any work, so a bad value is a
    one-line error (exit 2) at once.

    Args:
        param: Name of the command's keyword-only parameter that receives the object.
        cls: The value object class (:class:`~accelkit.options.Timing`, ...).
        defaults: An instance whose values are this command's defaults (default: ``cls()``).
        only: The fields offered (default: every flag field), minus ``skip``.
        skip: Fields not offered by this command.
        panel: ``--help`` panel of the group.
        panels: Field -> ``--help`` panel, where a field stands apart from ``panel``.
        help: Field -> help text, where this command says more than the shared text.
        hide_defaults: Fields whose default ``--help`` does not show (their help text says
            it, e.g. a 0 that means "the kind's default").
    """
    base = defaults if defaults is not None else cls()
    all_flags = flags_of(cls)
    names = [n for n in (only or all_flags) if n not in skip]
    own_help = dict(help or {})

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name != param]
        extra = []
        for name in names:
            fl = all_flags[name]
            extra.append(
                inspect.Parameter(
                    f"{param}__{name}",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(
                        _cli_default(getattr(base, name), fl),
                        *fl.names,
                        help=own_help.get(name, fl.help),
                        metavar=fl.metavar,
                        rich_help_panel=(panels or {}).get(name, panel),
                        show_default=name not in hide_defaults,
                    ),
                    annotation=fl.cli_type,
                )
            )

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {}
            for name in names:
                raw = kwargs.pop(f"{param}__{name}")
                fl = all_flags[name]
                values[name] = fl.parse(raw) if fl.parse is not None else raw
            obj = replace(base, **values)
            kwargs[param] = obj.validated() if hasattr(obj, "validated") else obj
            return fn(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
        hints = {k: v for k, v in getattr(fn, "__annotations__", {}).items() if k != param}
        wrapper.__annotations__ = {
            **hints,
            **{f"{param}__{n}": all_flags[n].cli_type for n in names},
        }
        return wrapper  # type: ignore[return-value]

    return deco


def option_for(cls: type, field_name: str, *, help: str | None = None, default: Any = None) -> Any:
    """One flag of an option value object as a ``typer.Option`` (for a command that takes
    the value itself rather than the whole object)."""
    fl = flags_of(cls)[field_name]
    return typer.Option(default, *fl.names, help=help or fl.help, metavar=fl.metavar)


def fid_weights_option() -> Any:
    """``--fid-weights`` as :class:`~accelkit.options.FidSettings` declares it."""
    return option_for(FidSettings, "weights")


def fid_mode_option() -> Any:
    """``--fid-mode`` as :class:`~accelkit.options.FidSettings` declares it."""
    return option_for(FidSettings, "mode", default=FidSettings().mode)


def backend_option(default_help: str, flag_name: str = "--backend") -> Any:
    """``--backend``: comma-separated backend names; the vocabulary is the runner registry."""
    from accelkit.runners.base import backend_names

    return typer.Option(
        None,
        flag_name,
        help=f"Comma-separated backends: {', '.join(backend_names())}. {default_help}",
    )


def precision_option(default_help: str, flag_name: str = "--precision") -> Any:
    """``--precision``: comma-separated precisions from :data:`accelkit.vocab.PRECISIONS`."""
    from accelkit.vocab import PRECISIONS

    return typer.Option(
        None, flag_name, help=f"Comma-separated precisions: {', '.join(PRECISIONS)}. {default_help}"
    )


def hidden_alias(flag_name: str) -> Any:
    """A deprecated spelling of a flag (a ``str | None`` parameter), accepted but not shown in ``--help``."""
    return typer.Option(None, flag_name, hidden=True)


def force_option(what: str = "an existing output file") -> Any:
    return typer.Option(False, "--force", help=f"Overwrite {what}.")


# ------------------------------------------------------------------ small parsers (one definition each)
csv = parse_csv
int_csv = parse_int_list
