#!/usr/bin/env python
"""DeepCache on the bundled DDPM, torch eager on the CPU: images/sec and paired PSNR.

For each batch size, every configuration (DDIM steps x cache) gets its own
:class:`~accelkit.diffusion.sampler.DiffusionRunner` (torch eager, fp32, the same thread
count), all activated and warmed up before timing; then ``--rounds`` rounds each time one
full sample of every configuration, in an order rotated per round, so load from other
processes hits all of them alike. A configuration's images/sec is ``batch / median``
seconds of its ``run`` (inputs already prepared on the device, warm-up excluded); the p10
and p90 are reported beside it. A speed ratio is printed only when both sides are stable
(interquartile range <= 20 % of the median), else withheld with the reason.

Quality: ``--images`` images (LatentSampler seed 0: the same noise and labels everywhere)
sampled by each configuration; paired PSNR (dB, peak 2 on ``[-1, 1]``) against the
uncached sampler at the same steps and against the reference sampler (DDIM-50, no cache),
and the share of steps that ran the whole UNet.

diffusers' own cache hooks (First-Block-Cache, Pyramid Attention Broadcast, FasterCache)
are tried on the model; the script records whether they apply. DeepCache's own package
(``DeepCache``, which patches diffusers' UNet2DConditionModel pipelines) is recorded as
installed or not; it is not installed here (no downloads at run time).

Usage::

    python benchmarks/diffusion_cache.py --pipeline /path/to/ddpm --batch 1,8 --rounds 5 \
        --out benchmarks/results/diffusion_cache_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.environment import cpu_model
from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
from accelkit.diffusion.cache import CacheSpec, psnr_db
from accelkit.host import busy_cores, isa_summary
from accelkit.sampler import LatentSampler

STABLE_IQR = 0.20


def quantiles(xs: list[float]) -> tuple[float, float, float, float, float]:
    """median, p10, p90, q1, q3 of ``xs``."""
    s = sorted(xs)
    med = statistics.median(s)
    if len(s) < 2:
        return med, med, med, med, med
    q = statistics.quantiles(s, n=20, method="inclusive")
    quart = statistics.quantiles(s, n=4, method="inclusive")
    return med, q[1], q[17], quart[0], quart[2]


def _timestep() -> int:
    return 500


PAB = "diffusers-pab:2"


def pab_denoiser(model: Any, skip: int = 2) -> Any:
    """The denoiser with diffusers' Pyramid Attention Broadcast on a copy of its UNet.

    PAB reuses each attention layer's output for ``skip - 1`` of every ``skip`` calls while
    the timestep is inside (100, 800) (diffusers' default range). The hook needs the
    current timestep (a callback) and a state reset per sample, which diffusers'
    pipelines do; here the wrapper records the timestep before each call and resets the
    hooks when the timestep goes up (a new sample starts).
    """
    import copy

    import torch
    from diffusers.hooks import (
        HookRegistry,
        PyramidAttentionBroadcastConfig,
        apply_pyramid_attention_broadcast,
    )

    unet = copy.deepcopy(model.denoiser.module.model)
    now = {"t": 1e9}
    apply_pyramid_attention_broadcast(
        unet,
        PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=skip, current_timestep_callback=lambda: now["t"]
        ),
    )
    registry = HookRegistry.check_if_exists_or_initialize(unet)

    class PabDenoiser(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = unet

        def forward(self, sample: Any, timestep: Any, class_labels: Any) -> Any:
            t = float(timestep.reshape(-1)[0])
            if t > now["t"]:
                registry.reset_stateful_hooks(recurse=True)
            now["t"] = t
            return self.model(sample, timestep, class_labels=class_labels, return_dict=False)[0]

    return model.denoiser.derive(module=PabDenoiser().eval())


def diffusers_hooks(model: Any) -> list[tuple[str, str]]:
    """Whether diffusers' own cache hooks apply to the denoiser (on a copy of its config)."""
    import copy

    import diffusers.hooks as hooks

    out = []
    tries = [
        ("apply_first_block_cache", "FirstBlockCacheConfig", {"threshold": 0.05}),
        (
            "apply_pyramid_attention_broadcast",
            "PyramidAttentionBroadcastConfig",
            {"spatial_attention_block_skip_range": 2, "current_timestep_callback": _timestep},
        ),
        (
            "apply_faster_cache",
            "FasterCacheConfig",
            {"spatial_attention_block_skip_range": 2, "current_timestep_callback": _timestep},
        ),
    ]
    for fn_name, cfg_name, kwargs in tries:
        fn, cfg = getattr(hooks, fn_name, None), getattr(hooks, cfg_name, None)
        if fn is None or cfg is None:
            out.append((fn_name, "not in this diffusers"))
            continue
        unet = copy.deepcopy(model.denoiser.module.model)
        try:
            fn(unet, cfg(**kwargs))
        except Exception as exc:  # any failure is recorded as the reason it does not apply
            out.append((fn_name, f"does not apply: {type(exc).__name__}: {str(exc)[:140]}"))
            continue
        touched = sum(1 for m in unet.modules() if getattr(m, "_diffusers_hook", None) is not None)
        out.append(
            (
                fn_name,
                "registered no block hook (no transformer/attention block it recognises)"
                if touched <= 1
                else f"applied to {touched} modules",
            )
        )
    found = importlib.util.find_spec("DeepCache") is not None
    out.append(("DeepCache package", "installed" if found else "not installed (not downloaded)"))
    return out


def make_runner(model: Any, steps: int, cache: Any) -> Any:
    settings = SamplerSettings("ddim", steps)
    if cache == PAB:
        return create_diffusion_runner(
            model, "torch", settings=settings, denoiser=pab_denoiser(model)
        )
    return create_diffusion_runner(model, "torch", settings=settings, cache=cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pipeline", required=True, help="the bundled ddpm pipeline folder")
    ap.add_argument("--steps", default="50,20")
    ap.add_argument(
        "--cache",
        default=f"none,deepcache:2,deepcache:3,deepcache:5,{PAB}",
        help=f"cache specs; {PAB} is diffusers' Pyramid Attention Broadcast hook (skip range 2)",
    )
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=16, help="images of the PSNR comparison")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    steps_list = [int(s) for s in args.steps.split(",")]
    caches: list[Any] = [c if c == PAB else CacheSpec.parse(c) for c in args.cache.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    model = load_pipeline(args.pipeline)
    configs = [(s, c) for s in steps_list for c in caches]
    load_before = os.getloadavg()
    busy = busy_cores()
    t_start = time.time()

    # ---- speed
    speed: dict[tuple[int, int, str], dict[str, float]] = {}
    for bs in batches:
        feeds = LatentSampler(model.spec, seed=1, batch_size=bs).inputs(0, bs)
        runners = {(s, str(c)): make_runner(model, s, c) for s, c in configs}
        prepared = {}
        for key, r in runners.items():
            r.activate()
            prepared[key] = r.prepare(feeds)
            r.run(prepared[key])  # warm-up
        times: dict[tuple[int, str], list[float]] = {k: [] for k in runners}
        keys = list(runners)
        for rnd in range(args.rounds):
            order = keys[rnd % len(keys) :] + keys[: rnd % len(keys)]
            for key in order:
                t0 = time.perf_counter()
                runners[key].run(prepared[key])
                runners[key].synchronize()
                times[key].append(time.perf_counter() - t0)
        for key, r in runners.items():
            r.deactivate()
            med, p10, p90, q1, q3 = quantiles(times[key])
            speed[(bs, *key)] = {
                "ips": bs / med,
                "ips_p10": bs / p90,
                "ips_p90": bs / p10,
                "iqr_rel": (q3 - q1) / med,
            }

    # ---- quality
    qfeeds = LatentSampler(model.spec, seed=0, batch_size=8).inputs(0, args.images)
    samples: dict[tuple[int, str], np.ndarray] = {}
    fractions: dict[tuple[int, str], float] = {}
    for s, c in configs:
        r = make_runner(model, s, c)
        with r:
            samples[(s, str(c))] = np.concatenate(
                [
                    r.infer({k: v[i : i + 8] for k, v in qfeeds.items()})
                    for i in range(0, args.images, 8)
                ]
            )
            fractions[(s, str(c))] = (
                1.0 if r.cache is None else float(r.cache.stats.full_fraction or 1.0)
            )
    ref_key = (50, "none")
    if ref_key not in samples:
        r = create_diffusion_runner(model, "torch", settings=SamplerSettings("ddim", 50))
        with r:
            samples[ref_key] = r.infer(qfeeds)
    hooks = diffusers_hooks(model)
    load_after = os.getloadavg()
    elapsed = time.time() - t_start

    # ---- report
    def ratio(a: dict[str, float], b: dict[str, float]) -> str:
        if a["iqr_rel"] > STABLE_IQR or b["iqr_rel"] > STABLE_IQR:
            return f"withheld (IQR {max(a['iqr_rel'], b['iqr_rel']):.0%} > {STABLE_IQR:.0%})"
        return f"{a['ips'] / b['ips']:.2f}x"

    lines = [
        "# DeepCache on the bundled DDPM, torch eager fp32, CPU",
        "",
        f"Measured by `benchmarks/diffusion_cache.py` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {cpu_model()}; ISA {isa_summary()}; {os.cpu_count()} logical CPUs, shared.",
        f"Load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} (1 min); busy cores at "
        f"start: {busy if busy is None else round(busy, 2)}; run took {elapsed:.0f} s.",
        f"torch {torch.__version__}, {args.threads} thread(s) for every configuration; "
        f"pipeline `{args.pipeline}` (folder sha256 {str(model.source_sha256)[:12]}...).",
        f"Timing: {args.rounds} interleaved rounds per batch, one whole sample per configuration per "
        "round, median (p10-p90); a ratio is withheld when either side's IQR exceeds 20 % of its median.",
        f"Quality: {args.images} images (LatentSampler seed 0), paired PSNR in dB (peak 2) vs the "
        "uncached sampler at the same steps and vs the reference DDIM-50 without cache.",
        "",
        f"`{PAB}`: diffusers' Pyramid Attention Broadcast hook (attention outputs reused every "
        "other call for timesteps in (100, 800)); its full-UNet column counts UNet calls.",
        "",
        "| batch | sampler | cache | full UNet steps | images/s (p10-p90) | vs same steps, no cache "
        "| vs DDIM-50 | PSNR vs same steps (dB) | PSNR vs DDIM-50 (dB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for bs in batches:
        for s, c in configs:
            key = (s, str(c))
            sp = speed[(bs, *key)]
            base = speed[(bs, s, "none")] if (bs, s, "none") in speed else None
            ref = speed.get((bs, 50, "none"))
            p_same = psnr_db(samples[(s, "none")], samples[key]) if (s, "none") in samples else None
            p_ref = psnr_db(samples[ref_key], samples[key])
            lines.append(
                f"| {bs} | DDIM-{s} | {c} | {fractions[key]:.0%} "
                f"| {sp['ips']:.2f} ({sp['ips_p10']:.2f}-{sp['ips_p90']:.2f}) "
                f"| {ratio(sp, base) if base else '-'} | {ratio(sp, ref) if ref else '-'} "
                f"| {'-' if p_same is None else ('identical' if p_same == float('inf') else f'{p_same:.1f}')} "
                f"| {'identical' if p_ref == float('inf') else f'{p_ref:.1f}'} |"
            )
    lines += ["", "## diffusers' own cache hooks on this UNet2DModel", ""]
    lines += [f"- `{name}`: {what}" for name, what in hooks]
    lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
