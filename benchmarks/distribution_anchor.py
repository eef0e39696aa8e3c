#!/usr/bin/env python
"""Calibrating the distribution test's anchor on trajectory changes of the bundled ddpm.

The distribution test (``accelkit.quality.verdict.distribution_test``) accepts a build whose
KID delta against the reference stays inside a margin; by default the margin is the
*anchor*, the same delta for the reference's own images with Gaussian pixel noise at
``VerdictSettings.anchor_db``. This script measures, on one set of latents, what the
anchor costs at several noise levels next to what real trajectory changes cost:

* the reference (torch fp32, DDIM-50) on set A (seed 0, latents 0..N-1) and on set B
  (latents N..2N-1), every configuration on the same set B;
* trajectory changes: DDIM at 25, 20, 15, 10 and 6 steps; DeepCache N=2 and N=3 at 50
  steps; diffusers' Pyramid Attention Broadcast (skip 2);
* anchors: set B plus Gaussian pixel noise at 35, 40 and 45 dB PSNR, and a Gaussian blur
  (sigma 0.5 and 0.8 pixels).

Per row: the KID delta x1e3 with its 90 % bootstrap interval (the verdict's statistic, the
real FID Inception), the paired PSNR against the reference on the same latents, the pixel
standard deviation, and the **shape accuracy** of set B: the share of images that
``models/eval_ddpm.py``'s shape classifier assigns to the asked-for class (a task metric;
the classifier is trained on clean shapes, so it is itself sensitive to pixel noise). A
grid PNG (``accelkit.benchmark.plot.save_grid``) shows the first 12 images of set B per row,
labelled, so the reader can judge what is visible.

Usage::

    python benchmarks/distribution_anchor.py --n 200 --threads 2 \
        --out benchmarks/results/distribution_anchor_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "models"))

from accelkit.benchmark.environment import cpu_model
from accelkit.host import busy_cores, isa_summary

#: name -> (scheduler, steps, cache); "pab" is diffusers' hook
CONFIGS: dict[str, tuple[str, int, str]] = {
    "DDIM-25": ("ddim", 25, "none"),
    "DDIM-20": ("ddim", 20, "none"),
    "DDIM-15": ("ddim", 15, "none"),
    "DDIM-10": ("ddim", 10, "none"),
    "DDIM-6": ("ddim", 6, "none"),
    "DeepCache N=2 (DDIM-50)": ("ddim", 50, "deepcache:2"),
    "DeepCache N=3 (DDIM-50)": ("ddim", 50, "deepcache:3"),
    "PAB skip 2 (DDIM-50)": ("ddim", 50, "pab"),
}
NOISE_DB = (35.0, 40.0, 45.0)
BLUR_SIGMA = (0.5, 0.8)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of NCHW images (reflect padding)."""
    import torch
    import torch.nn.functional as F

    k = int(2 * round(3 * sigma) + 1)
    ax = torch.arange(k, dtype=torch.float32) - k // 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g /= g.sum()
    c = x.shape[1]
    t = F.pad(torch.from_numpy(x), (k // 2,) * 4, mode="reflect")
    t = F.conv2d(t, g.view(1, 1, 1, k).repeat(c, 1, 1, 1), groups=c)
    t = F.conv2d(t, g.view(1, 1, k, 1).repeat(c, 1, 1, 1), groups=c)
    return t.numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="images per set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import eval_ddpm
    import torch
    from diffusion_cache import pab_denoiser

    from accelkit.benchmark.plot import save_grid
    from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
    from accelkit.diffusion.cache import CacheSpec
    from accelkit.models import bundled_pipeline_path
    from accelkit.quality.features import FeatureExtractor
    from accelkit.quality.images import to_uint8
    from accelkit.quality.verdict import KernelCache, VerdictSettings, _interval, _mmd_delta

    def generate(runner: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with runner:
            return eval_ddpm.infer_batches(runner, feeds, args.batch)

    torch.set_num_threads(args.threads)
    t_start, load_before, busy = time.time(), os.getloadavg(), busy_cores()
    model = load_pipeline(bundled_pipeline_path("ddpm"))
    n = args.n
    from accelkit.sampler import LatentSampler

    sampler = LatentSampler(model.spec, seed=0, batch_size=n)
    feeds_a, feeds_b = sampler.inputs(0, n), sampler.inputs(n, n)
    opts = {"threads": args.threads}

    def runner(sched: str, steps: int, cache: str) -> Any:
        s = SamplerSettings(sched, steps)
        if cache == "pab":
            return create_diffusion_runner(
                model, "torch", settings=s, denoiser=pab_denoiser(model), options=opts
            )
        spec = CacheSpec.parse(cache)
        return create_diffusion_runner(
            model, "torch", settings=s, cache=spec if spec.enabled else None, options=opts
        )

    ref = runner("ddim", 50, "none")
    print("reference: sets A and B", flush=True)
    ref_a = generate(ref, feeds_a)
    rows: dict[str, np.ndarray] = {"reference (DDIM-50), set B": generate(ref, feeds_b)}
    ref_b = rows["reference (DDIM-50), set B"]
    for name, (sched, steps, cache) in CONFIGS.items():
        print(name, flush=True)
        rows[name] = generate(runner(sched, steps, cache), feeds_b)
    rng = np.random.default_rng(0)
    for db in NOISE_DB:
        sigma = 2.0 * 10.0 ** (-db / 20.0)
        rows[f"anchor: pixel noise {db:g} dB"] = np.clip(
            ref_b + rng.normal(0.0, sigma, ref_b.shape), -1, 1
        ).astype(np.float32)
    for sg in BLUR_SIGMA:
        rows[f"Gaussian blur sigma {sg:g} px"] = blur(ref_b, sg)

    print("features and shape classifier", flush=True)
    ex = FeatureExtractor()
    fa = ex(to_uint8(ref_a, (-1.0, 1.0)))
    feats = {k: ex(to_uint8(v, (-1.0, 1.0))) for k, v in rows.items()}
    net = eval_ddpm.train_classifier(6000, 6, seed=1)
    s, kc = VerdictSettings(), KernelCache()
    fb = feats["reference (DDIM-50), set B"]
    lines = []
    for name, imgs in rows.items():
        d, boots = _mmd_delta(fa, feats[name], fb, s, kc)
        lo, hi = _interval(boots, s.alpha)
        mse = float(((imgs.astype(np.float64) - ref_b) ** 2).mean())
        psnr = "-" if mse == 0 else f"{10 * np.log10(4.0 / mse):.1f}"
        acc = eval_ddpm.accuracy(net, imgs, feeds_b["label"])[0]
        lines.append(
            f"| {name} | {d * 1e3:.2f} [{lo * 1e3:.2f}, {hi * 1e3:.2f}] | {psnr} | {imgs.std():.2f} | {acc:.1%} |"
        )
    acc_a = eval_ddpm.accuracy(net, ref_a, feeds_a["label"])[0]
    out = Path(args.out)
    grid = out.with_suffix(".png")
    save_grid(
        [(k, to_uint8(v[:12], (-1.0, 1.0)).transpose(0, 2, 3, 1)) for k, v in rows.items()], grid
    )
    elapsed = time.time() - t_start
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            "# The distribution test's anchor, calibrated on trajectory changes of the bundled ddpm (CPU)",
            "",
            f"Measured by `benchmarks/distribution_anchor.py --n {n} --threads {args.threads}` on {stamp}.",
            f"Machine: {cpu_model()}; ISA {isa_summary()}; {os.cpu_count()} logical CPUs. Load average before/after: "
            f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; busy cores at start: {busy:.1f}; run took {elapsed:.0f} s.",
            "",
            f"N = {n} images per set; set A: reference, latents 0..{n - 1}; every row below is on set B (latents {n}..{2 * n - 1}, "
            "the same noise and labels). KID delta = KID(ref A, row) - KID(ref A, ref B), x1e3, 90 % bootstrap interval "
            f"(the verdict's own statistic and resampling, real FID Inception). Shape accuracy of the reference on set A: {acc_a:.1%}.",
            "",
            "| set B made by | KID delta x1e3 [90 % interval] | paired PSNR dB vs reference | pixel std | shape accuracy |",
            "|---|---|---:|---:|---:|",
            *lines,
            "",
            f"Grid: `{grid.name}` (one labelled row per table row, the first 12 images of set B).",
            "",
        ]
    )
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
