"""Train the bundled x4 super-resolution model (SRResNet4x) briefly on procedural shapes.

High-resolution images are 128x128 shapes pictures (models/shapes.py); their low-resolution
versions are 4x4 box (area) averages, 32x32. Training uses random aligned 64x64 HR crops
(16x16 LR) with an MSE loss (as SRResNet) and Adam (lr 1e-3, cosine decay). An L1 loss
was tried first: on these mostly flat images it drove the learned residual to zero in
every short run (the output stayed exactly bilinear), so it is only an option here. At the end the script
measures PSNR on held-out full 32->128 images against bicubic and bilinear upsampling and
stores it in the checkpoint's metadata. Deterministic for a given seed and thread count.

    python models/make_sr.py                     # writes models/weights/sr4x.safetensors
    python models/make_sr.py --steps 10 --out /tmp/sr.safetensors   # smoke test
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import shapes
import torch
import torch.nn.functional as F

from accelkit.models.sr import SRResNet4x

ARCH_KWARGS = {"channels": 3, "features": 32, "num_blocks": 4, "res_scale": 1.0, "in_size": 32}


def downsample(hr: torch.Tensor) -> torch.Tensor:
    """The degradation the model learns to invert: 4x4 box average."""
    return F.avg_pool2d(hr, 4)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR in dB over images, for values in [0, 1]."""
    mse = (a - b).square().flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1.0 / mse)).mean())


def main() -> None:
    p = argparse.ArgumentParser(
        description="Train the bundled x4 super-resolution model on procedural shapes."
    )
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop", type=int, default=64, help="HR training crop side (multiple of 4)")
    p.add_argument("--n-train", type=int, default=2000, help="128x128 training images")
    p.add_argument(
        "--n-test", type=int, default=64, help="held-out 128x128 images for the PSNR report"
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=["mse", "l1"], default="mse")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is fastest on a shared 2-core machine; results depend on it slightly)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=160,
        help="stop training early after this many seconds (0: never); the steps done are recorded",
    )
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--out", default=str(shapes.WEIGHTS / "sr4x.safetensors"))
    a = p.parse_args()

    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    print(f"generating {a.n_train} + {a.n_test} shapes images at 128x128 ...", flush=True)
    train = torch.from_numpy(shapes.make_shapes(a.n_train, 128, seed=a.seed))
    test_hr = torch.from_numpy(shapes.make_shapes(a.n_test, 128, seed=a.seed + 10_000))
    test_lr = downsample(test_hr)
    print(f"  done in {time.perf_counter() - t0:.1f}s", flush=True)

    model = SRResNet4x(**ARCH_KWARGS)
    n_params = sum(q.numel() for q in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.steps)
    print(
        f"SRResNet4x: {n_params:,} params; {a.steps} steps of batch {a.batch_size} ({a.crop}px HR crops)",
        flush=True,
    )

    cells = (128 - a.crop) // 4 + 1
    t_train = time.perf_counter()
    step = 0
    for step in range(1, a.steps + 1):
        idx = rng.integers(0, a.n_train, a.batch_size)
        ys, xs = rng.integers(0, cells, a.batch_size) * 4, rng.integers(0, cells, a.batch_size) * 4
        hr = torch.stack(
            [train[i, :, y : y + a.crop, x : x + a.crop] for i, y, x in zip(idx, ys, xs)]
        )
        flip = torch.from_numpy(rng.random(a.batch_size) < 0.5)
        hr = torch.where(flip[:, None, None, None], hr.flip(-1), hr)
        err = model(downsample(hr)) - hr
        loss = err.square().mean() if a.loss == "mse" else err.abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % a.log_every == 0 or step == a.steps:
            el = time.perf_counter() - t_train
            print(
                f"step {step:5d}/{a.steps}  {a.loss} {loss.item():.5f}  {el:5.0f}s ({el / step:.2f}s/step)",
                flush=True,
            )
        if a.max_seconds and time.perf_counter() - t_train > a.max_seconds:
            print(
                f"WARNING: time budget of {a.max_seconds:.0f}s reached; stopping after {step} steps",
                flush=True,
            )
            break
    train_s = time.perf_counter() - t_train

    model.eval()
    with torch.no_grad():
        sr = torch.cat([model(test_lr[i : i + 16]) for i in range(0, a.n_test, 16)])
        bic = F.interpolate(test_lr, scale_factor=4.0, mode="bicubic", align_corners=False).clamp(
            0, 1
        )
        bil = F.interpolate(test_lr, scale_factor=4.0, mode="bilinear", align_corners=False)
    p_sr, p_bic, p_bil = psnr(sr, test_hr), psnr(bic, test_hr), psnr(bil, test_hr)
    print(
        f"held-out PSNR (32->128, {a.n_test} images): model {p_sr:.2f} dB, bicubic {p_bic:.2f} dB, "
        f"bilinear {p_bil:.2f} dB  (model - bicubic: {p_sr - p_bic:+.2f} dB)",
        flush=True,
    )
    size = shapes.save_checkpoint(
        model,
        a.out,
        "sr4x",
        ARCH_KWARGS,
        trained=f"procedural shapes 128x128 (models/shapes.py), LR = 4x4 box average, {a.loss} loss",
        seed=a.seed,
        steps=step,
        loss=a.loss,
        batch_size=a.batch_size,
        crop=a.crop,
        n_train=a.n_train,
        lr=a.lr,
        threads=a.threads,
        train_seconds=f"{train_s:.0f}",
        params=n_params,
        psnr_db=f"{p_sr:.2f}",
        psnr_bicubic_db=f"{p_bic:.2f}",
        psnr_bilinear_db=f"{p_bil:.2f}",
        psnr_eval=f"{a.n_test} held-out 128x128 shapes images (seed {a.seed + 10_000}), full 32x32 inputs",
    )
    print(f"wrote {a.out} ({size / 1e6:.2f} MB); total {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
