"""Make the bundled StyleGAN2-style checkpoint: a seeded random initialisation (not trained).

The architecture (accelkit/models/stylegan2.py) is initialised from ``--seed``; then two
cheap, deterministic adjustments make the untrained outputs image-like:

* every layer's noise strength is set to ``--noise-strength`` (StyleGAN2 starts them at
  0, which would leave the noise path unexercised);
* the 4x4 toRGB bias is set so the mean pre-tanh output over ``--calib`` random
  (z, label) pairs is 0 per colour channel (a centred palette instead of a colour cast).

It prints the output statistics (std, fraction near +-1, spread between samples) and
stores them in the metadata. Runs in a few seconds.

    python models/make_stylegan2.py             # writes models/weights/stylegan2.safetensors
"""

from __future__ import annotations

import argparse
import time

import shapes
import torch

from accelkit.models.stylegan2 import StyleGAN2Generator, SynthesisLayer

ARCH_KWARGS = {
    "z_dim": 128,
    "w_dim": 128,
    "num_classes": 4,
    "img_size": 64,
    "channels": 3,
    "channel_base": 2048,
    "channel_max": 128,
    "mapping_layers": 4,
    "rgb_gain": 4.0,
}


@torch.no_grad()
def output_stats(g: StyleGAN2Generator, n: int, seed: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, g.z_dim, generator=gen)
    label = torch.randint(0, max(g.num_classes, 1), (n,), generator=gen)
    y = g(z, label)
    return {
        "std": float(y.std()),
        "mean": float(y.mean()),
        "saturated_frac": float((y.abs() > 0.95).float().mean()),
        "between_sample_std": float(y.std(0).mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description="Make the bundled StyleGAN2-style checkpoint (seeded random init)."
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-strength", type=float, default=0.1)
    p.add_argument(
        "--calib", type=int, default=256, help="random samples used to centre the output colours"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        help="accepted for symmetry with the other scripts; must be 0 (no training)",
    )
    p.add_argument("--out", default=str(shapes.WEIGHTS / "stylegan2.safetensors"))
    p.add_argument("--samples-png", default="", help="optionally write an 8x8 grid of samples here")
    a = p.parse_args()
    if a.steps:
        p.error("this model is not trained: --steps must be 0")

    t0 = time.perf_counter()
    torch.manual_seed(a.seed)
    g = StyleGAN2Generator(**ARCH_KWARGS).eval()
    n_params = sum(q.numel() for q in g.parameters())
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, SynthesisLayer):
                m.noise_strength.fill_(a.noise_strength)
        # Centre the colours: the output is tanh(img) and the 4x4 toRGB bias adds to img
        # directly, so subtracting the mean pre-tanh value centres the palette.
        gen = torch.Generator().manual_seed(a.seed + 1)
        z = torch.randn(a.calib, g.z_dim, generator=gen)
        label = torch.randint(0, max(g.num_classes, 1), (a.calib,), generator=gen)
        pre = torch.atanh(g(z, label).clamp(-0.999999, 0.999999))
        g.torgb4.bias.sub_(pre.mean(dim=(0, 2, 3)))
    stats = output_stats(g, 64, seed=a.seed + 2)
    print(
        f"StyleGAN2Generator: {n_params:,} params; outputs over 64 samples: "
        + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()),
        flush=True,
    )
    size = shapes.save_checkpoint(
        g,
        a.out,
        "stylegan2",
        ARCH_KWARGS,
        trained="no: seeded random initialisation (models/make_stylegan2.py)",
        seed=a.seed,
        steps=0,
        noise_strength=a.noise_strength,
        params=n_params,
        **{f"output_{k}": f"{v:.4f}" for k, v in stats.items()},
    )
    print(f"wrote {a.out} ({size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f}s", flush=True)
    if a.samples_png:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1234)
            y = g(torch.randn(64, g.z_dim, generator=gen), torch.arange(64) % max(g.num_classes, 1))
        shapes.save_grid(y.numpy(), a.samples_png, value_range=(-1.0, 1.0))
        print(f"wrote {a.samples_png}", flush=True)


if __name__ == "__main__":
    main()
