"""``accelkit optimize``: the fastest build whose quality the user accepts, found and proven."""

from __future__ import annotations

from dataclasses import replace

from accelkit.cli.app import app, emit, handle_errors, progress_status
from accelkit.cli.params import (
    backend_option,
    bind,
    csv,
    generator_argument,
    hidden_alias,
    load_options,
    precision_option,
)
from accelkit.errors import InputError
from accelkit.options import (
    SEARCH_TIMING,
    FidSettings,
    Int8Settings,
    Threads,
    Timing,
)
from accelkit.pipelines.options import LoadOptions, OptimizeOptions

_DEFAULTS = OptimizeOptions()


@app.command()
@handle_errors
@load_options()
@bind("timing", Timing, defaults=SEARCH_TIMING, panel="Timing")
@bind("threads", Threads, panel="Timing")
@bind(
    "fid_settings",
    FidSettings,
    defaults=_DEFAULTS.fid,
    only=("n", "weights", "batch"),
    panel="Quality",
    help={
        "n": "Images per set for the FID/KID drift of each candidate (the noise floor uses twice as many); at least 2. "
        "Default: 500, or 200 for a diffusion pipeline (each image is a whole sampler run)."
    },
    hide_defaults=("n",),
)
@bind("int8_settings", Int8Settings, only=("calib",), panel="INT8")
@bind("search", OptimizeOptions)
def optimize(
    generator: str | None = generator_argument(),
    backend: str | None = backend_option(
        "Default: every backend this machine runs. The FP32 torch baseline (the reference) is always measured; "
        "torch variants are searched only when torch is named."
    ),
    backends_deprecated: str | None = hidden_alias("--backends"),
    precision: str | None = precision_option("Default: all; the FP32 torch baseline always runs."),
    precisions_deprecated: str | None = hidden_alias("--precisions"),
    *,
    load: LoadOptions,
    search: OptimizeOptions,
    timing: Timing,
    threads: Threads,
    fid_settings: FidSettings,
    int8_settings: Int8Settings,
) -> None:
    """Find the fastest build whose quality drift stays within the budget; write it, its report and its proof."""
    from accelkit.cli.app import command_start
    from accelkit.pipelines.optimize import optimize as run_optimize

    started = command_start()  # the budget counts from the command's start

    backend = _one_of(backend, backends_deprecated, "--backend", "--backends")
    precision = _one_of(precision, precisions_deprecated, "--precision", "--precisions")
    opts = replace(
        search,
        backends=tuple(csv(backend, "--backend")) if backend else (),
        precisions=tuple(csv(precision, "--precision")) if precision else (),
        fid=fid_settings,
        threads=threads,
        int8=int8_settings,
        timing=timing,
    ).validated()
    with progress_status() as progress:
        result = run_optimize(load, opts, progress, started=started)
    emit(result)


def _one_of(value: str | None, deprecated: str | None, flag: str, old: str) -> str | None:
    """The value of ``flag`` or of its deprecated spelling ``old`` (not both)."""
    if value is not None and deprecated is not None:
        raise InputError(f"{old} is the old spelling of {flag}; give {flag} only")
    return value if value is not None else deprecated
