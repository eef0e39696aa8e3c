"""Train the bundled DCGAN (accelkit's default demo generator) on the procedural shapes.

Standard DCGAN recipe: the discriminator mirrors the generator (strided Conv2d, BatchNorm,
LeakyReLU 0.2), non-saturating BCE loss, Adam lr 2e-4, betas (0.5, 0.999). Choices made
for a run that must fit in 10 minutes on a shared 2-core CPU (see models/README.md for
what was tried): batch 8 (many more updates per second than 64, which is what this short
run needs most), a half-width discriminator (ndf 16), one torch thread, a wall-clock cap
(``--max-seconds``). Two further additions:

* an exponential moving average (EMA) of the generator weights is what gets saved;
* after training, the BatchNorm running statistics of the saved generator are
  recomputed (cumulative average over fresh latents), so eval mode, which the
  checkpoint is saved in, renders like training mode.

Writes ``models/weights/dcgan.safetensors``, ``docs/dcgan_samples.png`` (8x8 samples,
latents from ``torch.Generator().manual_seed(--sample-seed)``) and ``docs/dcgan_data.png``
(8x8 real training images). Deterministic for a given seed and thread count.

    python models/train_dcgan.py                # full run (see models/README.md for time)
    python models/train_dcgan.py --steps 20 --out /tmp/d.safetensors --no-png   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import shapes
import torch
from torch import nn

from accelkit.models.dcgan import DCGANGenerator

ARCH_KWARGS = {
    "z_dim": 64,
    "ngf": 32,
    "channels": 3,
    "img_size": 64,
    "num_classes": 0,
    "embed_dim": 16,
}


def discriminator(ndf: int = 32, channels: int = 3) -> nn.Sequential:
    """DCGAN discriminator for 64x64 images: mirror of the generator, logits out."""
    m = nn.Sequential(
        nn.Conv2d(channels, ndf, 4, 2, 1),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 2),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 4),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 8),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0),
        nn.Flatten(),
    )
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.normal_(mod.weight, 0.0, 0.02)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.normal_(mod.weight, 1.0, 0.02)
            nn.init.zeros_(mod.bias)
    return m


@torch.no_grad()
def recalibrate_bn(g: DCGANGenerator, z_dim: int, batches: int, batch_size: int, seed: int) -> None:
    """Recompute BatchNorm running statistics as a cumulative average over fresh latents."""
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    g.train()
    for _ in range(batches):
        g(torch.randn(batch_size, z_dim, generator=gen))
    for m in bns:
        m.momentum = 0.1
    g.eval()


def main() -> None:
    p = argparse.ArgumentParser(description="Train the bundled DCGAN on procedural shapes.")
    p.add_argument("--steps", type=int, default=2500, help="generator updates")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-train", type=int, default=12000, help="size of the procedural training set")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument(
        "--ema", type=float, default=0.99, help="EMA decay of the saved generator weights (0: off)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--sample-seed",
        type=int,
        default=1234,
        help="seed of the latents in docs/dcgan_samples.png",
    )
    p.add_argument("--ndf", type=int, default=16, help="discriminator width")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is fastest on a shared 2-core machine; results depend on it slightly)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=560,
        help="stop training early after this many seconds (0: never) so the script stays within "
        "10 minutes on a busy machine; the steps actually done are recorded in the metadata",
    )
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--out", default=str(shapes.WEIGHTS / "dcgan.safetensors"))
    p.add_argument("--samples-png", default=str(shapes.DOCS / "dcgan_samples.png"))
    p.add_argument("--data-png", default=str(shapes.DOCS / "dcgan_data.png"))
    p.add_argument("--no-png", action="store_true", help="do not write the PNG grids")
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="also write a grid of EMA samples to --snapshot-dir every N steps (0: off)",
    )
    p.add_argument("--snapshot-dir", default="dcgan-snapshots")
    a = p.parse_args()

    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    print(f"generating {a.n_train} shapes images (seed {a.seed}) ...", flush=True)
    data = torch.from_numpy(shapes.make_shapes(a.n_train, 64, seed=a.seed)).mul_(2.0).sub_(1.0)
    print(f"  done in {time.perf_counter() - t0:.1f}s", flush=True)

    g = DCGANGenerator(**ARCH_KWARGS)
    d = discriminator(a.ndf)
    g_ema = copy.deepcopy(g).eval()
    for q in g_ema.parameters():
        q.requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=a.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=a.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    bs = a.batch_size
    ones, zeros = torch.ones(bs, 1), torch.zeros(bs, 1)
    n_params = sum(q.numel() for q in g.parameters())
    print(
        f"G: {n_params:,} params; D: {sum(q.numel() for q in d.parameters()):,} params; "
        f"{a.steps} steps of batch {bs} on {a.threads} threads",
        flush=True,
    )

    perm = rng.permutation(a.n_train)
    pos = 0
    t_train = time.perf_counter()
    for step in range(1, a.steps + 1):
        if pos + bs > a.n_train:
            perm, pos = rng.permutation(a.n_train), 0
        real = data[torch.from_numpy(perm[pos : pos + bs])]
        pos += bs
        z = torch.randn(bs, g.z_dim)
        fake = g(z)

        loss_d = bce(d(real), ones) + bce(d(fake.detach()), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        loss_g = bce(d(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        if a.ema > 0:
            shapes.ema_update(g_ema, g, min(a.ema, (1.0 + step) / (10.0 + step)))
        if step % a.log_every == 0 or step == a.steps:
            el = time.perf_counter() - t_train
            print(
                f"step {step:5d}/{a.steps}  loss_d {loss_d.item():.3f}  loss_g {loss_g.item():.3f}  "
                f"{el:6.0f}s ({el / step:.2f}s/step)",
                flush=True,
            )
        if a.snapshot_every and step % a.snapshot_every == 0:
            snap = copy.deepcopy(g_ema if a.ema > 0 else g)
            recalibrate_bn(snap, g.z_dim, batches=4, batch_size=64, seed=a.seed + 1)
            with torch.no_grad():
                zs = torch.randn(
                    64, g.z_dim, generator=torch.Generator().manual_seed(a.sample_seed)
                )
                os.makedirs(a.snapshot_dir, exist_ok=True)
                shapes.save_grid(
                    snap(zs).numpy(),
                    os.path.join(a.snapshot_dir, f"step{step:05d}.png"),
                    value_range=(-1.0, 1.0),
                )
        if a.max_seconds and time.perf_counter() - t_train > a.max_seconds:
            print(
                f"WARNING: time budget of {a.max_seconds:.0f}s reached; stopping after {step} steps",
                flush=True,
            )
            break

    out_g = g_ema if a.ema > 0 else copy.deepcopy(g)
    recalibrate_bn(out_g, g.z_dim, batches=32, batch_size=64, seed=a.seed + 1)
    train_s = time.perf_counter() - t_train

    with torch.no_grad():
        z = torch.randn(64, g.z_dim, generator=torch.Generator().manual_seed(a.sample_seed))
        samples = out_g(z)
        s_flat = samples.flatten(1)
        div = torch.cdist(s_flat[:16], s_flat[:16]).sum() / (16 * 15) / s_flat.shape[1] ** 0.5
    print(
        f"samples: mean {samples.mean():.3f} std {samples.std():.3f}; "
        f"mean pairwise RMS distance of 16 samples {div:.3f}",
        flush=True,
    )
    size = shapes.save_checkpoint(
        out_g,
        a.out,
        "dcgan",
        ARCH_KWARGS,
        trained="procedural shapes 64x64 (models/shapes.py), DCGAN BCE loss, EMA generator, BN recalibrated",
        seed=a.seed,
        steps=step,
        ndf=a.ndf,
        threads=a.threads,
        batch_size=bs,
        n_train=a.n_train,
        lr=a.lr,
        ema=a.ema,
        train_seconds=f"{train_s:.0f}",
        params=n_params,
    )
    print(f"wrote {a.out} ({size / 1e6:.2f} MB)", flush=True)
    if not a.no_png:
        shapes.DOCS.mkdir(exist_ok=True)
        shapes.save_grid(samples.numpy(), a.samples_png, value_range=(-1.0, 1.0))
        shapes.save_grid(data[:64].numpy(), a.data_png, value_range=(-1.0, 1.0))
        print(f"wrote {a.samples_png} and {a.data_png}", flush=True)
    print(f"total {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
