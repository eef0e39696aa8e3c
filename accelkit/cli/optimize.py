"""``accelkit optimize``: the fastest build whose quality the user accepts, found and proven."""

from __future__ import annotations

from pathlib import Path

import typer

from accelkit.cli.app import app, emit, handle_errors, progress_status
from accelkit.cli.params import csv, fid_weights_option, generator_argument, load_options
from accelkit.pipelines.options import LoadOptions, OptimizeOptions


@app.command()
@handle_errors
@load_options()
def optimize(
    generator: str | None = generator_argument(),
    budget: str = typer.Option(
        "floor",
        "--budget",
        help="Quality the build must keep: floor (FID drift within the noise floor), a max FID drift (e.g. 2.5) or psnr:DB (e.g. psnr:35).",
    ),
    backends: str | None = typer.Option(
        None,
        "--backends",
        help="Comma-separated backends to search (default: every backend this machine runs: torch, ort, openvino, trt).",
    ),
    precisions: str | None = typer.Option(
        None,
        "--precisions",
        help="Comma-separated precisions to search: fp32, bf16, fp16, int8 (default: all; the FP32 torch baseline always runs).",
    ),
    batch: int = typer.Option(
        1,
        "--batch",
        help="Images per call the build is for (its speed is measured at this batch size).",
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (CUDA if available), cpu or cuda[:N]."
    ),
    time_budget: str = typer.Option(
        "20m",
        "--time-budget",
        help="Wall time for the search, e.g. 10m, 600s, 1h; when it runs out the best build found so far is chosen.",
    ),
    out: Path = typer.Option(
        Path("accelkit-optimize"),
        "--out",
        help="Output folder: the chosen artifact + sidecar, results.json/md/csv, pareto.png, optimize.json, journal.jsonl.",
    ),
    fid: int = typer.Option(
        500,
        "--fid",
        help="Images per set for the FID/KID drift of each candidate (the noise floor uses twice as many).",
    ),
    fid_weights: Path | None = fid_weights_option(),
    seed: int = typer.Option(
        0,
        "--seed",
        help="Latent seed of the search (re-measure the chosen build with another one).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for every runner (default: free physical cores)."
    ),
    allow_prune: bool = typer.Option(
        False,
        "--allow-prune",
        help="Also search structured pruning + data-free distillation (changes the weights).",
    ),
    prune_ratios: str = typer.Option(
        "0.25,0.5", "--prune-ratios", help="With --allow-prune: comma-separated pruning ratios."
    ),
    distill_steps: int = typer.Option(
        300, "--distill-steps", help="With --allow-prune: distillation steps per pruned model."
    ),
    calib: int = typer.Option(128, "--calib", help="INT8 calibration samples."),
    min_psnr: float = typer.Option(
        20.0,
        "--min-psnr",
        help="Quick check: reject a candidate whose paired PSNR on a few images is below this (dB) before measuring FID.",
    ),
    tie_margin: float = typer.Option(
        0.05,
        "--tie-margin",
        help="Builds within this share of the fastest accepted build's speed count as equally fast (timing noise); of those the one with the least drift is chosen (0: the fastest, however small its lead).",
    ),
    repeats: int = typer.Option(5, "--repeats", help="Timed repeats per candidate."),
    min_time: float = typer.Option(0.3, "--min-time", help="Seconds each repeat runs at least."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Start over even when --out holds a search (default: resume it from its journal).",
    ),
    *,
    load: LoadOptions,
) -> None:
    """Find the fastest build whose quality drift stays within the budget; write it, its report and its proof."""
    from accelkit.pipelines.optimize import optimize as run_optimize

    opts = OptimizeOptions(
        budget=budget,
        backends=tuple(csv(backends, "--backends")) if backends else (),
        precisions=tuple(csv(precisions, "--precisions")) if precisions else (),
        batch=batch,
        device=device,
        time_budget=time_budget,
        out=out,
        fid=fid,
        fid_weights=str(fid_weights) if fid_weights else None,
        seed=seed,
        threads=threads,
        allow_prune=allow_prune,
        prune_ratios=tuple(_floats(prune_ratios)),
        distill_steps=distill_steps,
        calib=calib,
        min_psnr_db=min_psnr,
        tie_margin=tie_margin,
        repeats=repeats,
        min_time_s=min_time,
        force=force,
    ).validated()
    with progress_status() as progress:
        result = run_optimize(load, opts, progress)
    emit(result)


def _floats(text: str) -> list[float]:
    from accelkit.errors import InputError

    try:
        return [float(t) for t in csv(text, "--prune-ratios")]
    except ValueError:
        raise InputError(
            f"--prune-ratios {text!r} is not a comma-separated list of numbers, e.g. 0.25,0.5"
        ) from None
