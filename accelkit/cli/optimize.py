"""``accelkit optimize``: the fastest build whose quality the user accepts, found and proven."""

from __future__ import annotations

from pathlib import Path

import typer

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
    parse_batches,
    parse_float_list,
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
        "n": "Images per set for the FID/KID drift of each candidate (the noise floor uses twice as many); at least 2."
    },
)
@bind("int8_settings", Int8Settings, only=("calib",), panel="INT8")
def optimize(
    generator: str | None = generator_argument(),
    budget: str = typer.Option(
        _DEFAULTS.budget,
        "--budget",
        help="Quality the build must keep: floor (FID drift within the noise floor), a max FID drift (e.g. 2.5) or psnr:DB (e.g. psnr:35).",
    ),
    backend: str | None = backend_option(
        "Default: every backend this machine runs. The FP32 torch baseline (the reference) is always measured; "
        "torch variants are searched only when torch is named."
    ),
    backends_deprecated: str | None = hidden_alias("--backends"),
    precision: str | None = precision_option("Default: all; the FP32 torch baseline always runs."),
    precisions_deprecated: str | None = hidden_alias("--precisions"),
    batch: str = typer.Option(
        str(_DEFAULTS.batch),
        "--batch",
        help="Images per call the build is for (one batch size; its speed is measured at it).",
    ),
    device: str = typer.Option(
        _DEFAULTS.device, "--device", help="auto (CUDA if available), cpu or cuda[:N]."
    ),
    time_budget: str = typer.Option(
        str(_DEFAULTS.time_budget),
        "--time-budget",
        help="Wall time for the search, e.g. 10m, 600s, 1h (held within 5 %: each phase is estimated before it starts); "
        "when it runs out the best build found so far is chosen.",
    ),
    out: Path = typer.Option(
        _DEFAULTS.out,
        "--out",
        help="Output folder: the chosen artifact + sidecar, results.json/md/csv, pareto.png, optimize.json, journal.jsonl.",
    ),
    seed: int = typer.Option(
        _DEFAULTS.seed,
        "--seed",
        help="Latent seed of the search (re-measure the chosen build with another one).",
    ),
    allow_prune: bool = typer.Option(
        False,
        "--allow-prune",
        help="Also search structured pruning + data-free distillation (changes the weights).",
    ),
    prune_ratios: str = typer.Option(
        ",".join(f"{r:g}" for r in _DEFAULTS.prune_ratios),
        "--prune-ratios",
        help="With --allow-prune: comma-separated pruning ratios.",
    ),
    distill_steps: int = typer.Option(
        _DEFAULTS.distill_steps,
        "--distill-steps",
        help="With --allow-prune: distillation steps per pruned model.",
    ),
    min_psnr: float = typer.Option(
        _DEFAULTS.min_psnr_db,
        "--min-psnr",
        help="Quick check: reject a candidate whose paired PSNR on a few images is below this (dB) before measuring FID.",
    ),
    tie_margin: float = typer.Option(
        _DEFAULTS.tie_margin,
        "--tie-margin",
        help="Builds within this share of the fastest accepted build's speed count as equally fast (timing noise); of those the one with the least drift is chosen (0: the fastest, however small its lead).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Start over even when --out holds a search (default: resume it from its journal).",
    ),
    *,
    load: LoadOptions,
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
    opts = OptimizeOptions(
        budget=budget,
        backends=tuple(csv(backend, "--backend")) if backend else (),
        precisions=tuple(csv(precision, "--precision")) if precision else (),
        batch=parse_batches(batch, "--batch", single=True)[0],
        device=device,
        time_budget=time_budget,
        out=out,
        fid=fid_settings,
        seed=seed,
        threads=threads,
        allow_prune=allow_prune,
        prune_ratios=tuple(parse_float_list(prune_ratios, "--prune-ratios")),
        distill_steps=distill_steps,
        int8=int8_settings,
        min_psnr_db=min_psnr,
        tie_margin=tie_margin,
        timing=timing,
        force=force,
    ).validated()
    with progress_status() as progress:
        result = run_optimize(load, opts, progress, started=started)
    emit(result)


def _one_of(value: str | None, deprecated: str | None, flag: str, old: str) -> str | None:
    """The value of ``flag`` or of its deprecated spelling ``old`` (not both)."""
    if value is not None and deprecated is not None:
        raise InputError(f"{old} is the old spelling of {flag}; give {flag} only")
    return value if value is not None else deprecated
