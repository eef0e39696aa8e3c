"""Train the bundled class-conditional DDPM (``ddpm``) on the procedural shapes.

A diffusers ``UNet2DModel`` (32x32 RGB, 4 resolutions 32/16/8/4 with channels
16/32/64/64, one ResNet block per level, self-attention at 8x8, ``num_class_embeds=4``:
0 circle, 1 square, 2 triangle, and 3 the "null" class that stands for no label) learns to predict the noise (epsilon) of a 1000-step linear
beta schedule (1e-4 .. 0.02, the DDPM paper's) on :func:`shapes.make_labeled_shapes`
images (one shape of the label's kind over a colour gradient). The loss is the noise MSE
weighted by min(SNR, 5) / SNR ("Min-SNR-5", Hang et al. 2023: the same optimum, reached in
fewer updates, which is what a 20-minute CPU run needs most). AdamW, a linear warm-up then
cosine decay of the learning rate to 0 at the last step, gradient clipping at 1.0, and an
exponential moving average (EMA) of the weights, which is what gets saved. Choices made for a run that must fit in
20 minutes on a 2-core CPU (see models/README.md): batch 32 on two torch threads (the most
images per second an idle 2-core machine gives this UNet; batch 16 on one thread is the
choice on a shared one), bfloat16
autocast for the forward/backward pass where the CPU has native bf16 (weights and optimizer
stay float32), a wall-clock cap (``--max-seconds``).

Writes, as diffusers writes a pipeline (``DDIMPipeline.save_pretrained``)::

    models/weights/ddpm/model_index.json
    models/weights/ddpm/unet/config.json
    models/weights/ddpm/unet/diffusion_pytorch_model.safetensors   (float16)
    models/weights/ddpm/scheduler/scheduler_config.json            (DDIMScheduler)

plus two JSON files of data that diffusers ignores: ``accelkit.json`` (class names, the
null class, the reference sampler) and ``training.json`` (how the run went). The saved
scheduler is a ``DDIMScheduler`` with the training betas. The reference sampler is DDIM 50
steps (diffusers' ``DDIMPipeline`` default), eta 0, classifier-free guidance 3 (the
conditional and null-class passes, ``--guidance``): labels are dropped to the null class
10% of the time in training so that guidance is possible. Also writes
``docs/ddpm_samples.png`` (8x8 EMA samples at the reference sampler, one class per row:
circle, square, triangle, circle, ...; initial noise from
``torch.Generator().manual_seed(--sample-seed)``) and ``docs/ddpm_data.png`` (64 training
images, same row layout). Deterministic for a given seed, thread count and autocast mode.

    python models/train_ddpm.py                 # full run (see models/README.md for time)
    python models/train_ddpm.py --steps 20 --out /tmp/ddpm --no-png   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import shapes
import torch

UNET_CONFIG: dict = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (16, 32, 64, 64),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "attention_head_dim": 32,
    "num_class_embeds": len(shapes.SHAPES) + 1,  # the last row is the null class (guidance)
}
SCHEDULER_CONFIG: dict = {
    "num_train_timesteps": 1000,
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
    "clip_sample": True,
}
REFERENCE_STEPS = 50
NULL_CLASS = len(shapes.SHAPES)


def has_native_bf16() -> bool:
    """Whether this CPU advertises bfloat16 arithmetic (AVX512-BF16 or AMX), Linux only."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to 0 at ``steps`` (step counts from 1)."""
    if step <= warmup:
        return peak * step / max(1, warmup)
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))


@torch.no_grad()
def sample_ddim(unet, labels: torch.Tensor, steps: int, seed: int, guidance: float) -> torch.Tensor:
    """DDIM (eta 0) samples from ``unet`` with classifier-free guidance, (N, 3, 32, 32) in [-1, 1]."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(**SCHEDULER_CONFIG)
    sched.set_timesteps(steps)
    x = torch.randn(len(labels), 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * float(
        sched.init_noise_sigma
    )
    both = torch.cat([labels, torch.full_like(labels, NULL_CLASS)])
    for t in sched.timesteps:
        eps_c, eps_u = unet(torch.cat([x, x]), t, class_labels=both).sample.chunk(2)
        x = sched.step(eps_u + guidance * (eps_c - eps_u), t, x).prev_sample
    return x.clamp(-1.0, 1.0)


def reference_sampler(guidance: float) -> dict:
    """The sampler quality is measured against: DDIM 50 steps, eta 0, guidance ``guidance``."""
    return {"scheduler": "ddim", "steps": REFERENCE_STEPS, "guidance": guidance, "eta": 0.0}


def save_folder(unet, out: Path, info: dict) -> int:
    """Write the pipeline folder atomically (temp folder + rename); returns its size in bytes."""
    from diffusers import DDIMPipeline, DDIMScheduler

    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent))
    try:
        unet_half = copy.deepcopy(unet).to(torch.float16)
        DDIMPipeline(unet=unet_half, scheduler=DDIMScheduler(**SCHEDULER_CONFIG)).save_pretrained(
            tmp
        )
        (tmp / "training.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        hints = {
            "schema_version": 1,
            "class_names": list(shapes.SHAPES),
            "null_class": NULL_CLASS,
            "sampler": info["reference_sampler"],
        }
        (tmp / "accelkit.json").write_text(json.dumps(hints, indent=2, sort_keys=True) + "\n")
        for p in [tmp, *tmp.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)  # mkdtemp creates 0700
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def main() -> None:
    p = argparse.ArgumentParser(description="Train the bundled class-conditional DDPM.")
    p.add_argument(
        "--steps", type=int, default=7200, help="optimizer updates the learning-rate schedule spans"
    )
    p.add_argument(
        "--stop-at",
        type=int,
        default=0,
        help="stop after this many updates (0: --steps); the schedule still spans --steps "
        "(reproduces a run the time cap stopped: see models/README.md)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-train", type=int, default=50000, help="size of the procedural training set")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument(
        "--label-dropout",
        type=float,
        default=0.1,
        help="share of training labels replaced by the null class (classifier-free guidance)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=3.0,
        help="guidance scale of the reference sampler (accelkit.json) and of the sample grid",
    )
    p.add_argument(
        "--min-snr",
        type=float,
        default=5.0,
        help="Min-SNR-gamma loss weighting min(SNR, gamma)/SNR (0: plain noise MSE)",
    )
    p.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-seed", type=int, default=1234, help="seed of docs/ddpm_samples.png")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads (2 on an idle 2-core machine, 1 on a shared one; results depend on it)",
    )
    p.add_argument(
        "--autocast",
        choices=("auto", "bf16", "off"),
        default="auto",
        help="bfloat16 autocast of the training forward/backward (auto: on where the CPU has "
        "native bf16, ~1.5x faster there; results depend on it)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=1020,
        help="stop training early after this many seconds (0: never) so the script stays within "
        "20 minutes on a busy machine; the steps actually done are recorded",
    )
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--out", default=str(shapes.WEIGHTS / "ddpm"))
    p.add_argument("--samples-png", default=str(shapes.DOCS / "ddpm_samples.png"))
    p.add_argument("--data-png", default=str(shapes.DOCS / "ddpm_data.png"))
    p.add_argument("--no-png", action="store_true", help="do not write the PNG grids")
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="also write a grid of EMA samples (DDIM 25 steps) to --snapshot-dir every N steps",
    )
    p.add_argument("--snapshot-dir", default="ddpm-snapshots")
    a = p.parse_args()

    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the float16 cast of the saved copy warns

    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    bf16 = a.autocast == "bf16" or (a.autocast == "auto" and has_native_bf16())

    print(f"generating {a.n_train} labelled shapes images (seed {a.seed}) ...", flush=True)
    x_np, y_np = shapes.make_labeled_shapes(a.n_train, 32, seed=a.seed)
    data = torch.from_numpy(x_np).mul_(2.0).sub_(1.0)
    labels = torch.from_numpy(y_np)
    print(f"  done in {time.perf_counter() - t0:.1f}s", flush=True)

    unet = UNet2DModel(**UNET_CONFIG)
    ema = copy.deepcopy(unet).eval()
    for q in ema.parameters():
        q.requires_grad_(False)
    noise_sched = DDPMScheduler(**SCHEDULER_CONFIG)
    abar = noise_sched.alphas_cumprod.to(torch.float32)
    snr = abar / (1.0 - abar)  # signal-to-noise ratio of each training timestep
    opt = torch.optim.AdamW(unet.parameters(), lr=a.lr, weight_decay=0.0)
    n_params = sum(q.numel() for q in unet.parameters())
    bs = a.batch_size
    print(
        f"UNet2DModel: {n_params:,} params; {a.steps} steps of batch {bs} on {a.threads} "
        f"thread(s), autocast {'bf16' if bf16 else 'off'}",
        flush=True,
    )

    perm = rng.permutation(a.n_train)
    pos = 0
    t_train = time.perf_counter()
    cpu_train = time.process_time()
    snap_s = 0.0
    loss_avg = 0.0
    step = 0
    for step in range(1, a.steps + 1):
        if pos + bs > a.n_train:
            perm, pos = rng.permutation(a.n_train), 0
        idx = torch.from_numpy(perm[pos : pos + bs])
        pos += bs
        x0, y = data[idx], labels[idx]
        y = torch.where(torch.rand(bs) < a.label_dropout, torch.full_like(y, NULL_CLASS), y)
        noise = torch.randn_like(x0)
        t = torch.randint(0, SCHEDULER_CONFIG["num_train_timesteps"], (bs,))
        xt = noise_sched.add_noise(x0, noise, t)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, a.warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = unet(xt, t, class_labels=y).sample
        per_sample = (pred.float() - noise).pow(2).mean(dim=(1, 2, 3))
        if a.min_snr > 0:
            per_sample = per_sample * (snr[t].clamp(max=a.min_snr) / snr[t])
        loss = per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        shapes.ema_update(ema, unet, min(a.ema, (1.0 + step) / (10.0 + step)))
        loss_avg = 0.98 * loss_avg + 0.02 * loss.item() if step > 1 else loss.item()
        if step % a.log_every == 0 or step == a.steps:
            el = time.perf_counter() - t_train - snap_s
            print(
                f"step {step:5d}/{a.steps}  loss {loss_avg:.4f}  {el:6.0f}s ({el / step:.2f}s/step, "
                f"load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        if a.snapshot_every and step % a.snapshot_every == 0:
            t_s = time.perf_counter()
            lab = torch.arange(24) // 8 % len(shapes.SHAPES)
            snap = sample_ddim(ema, lab, 25, a.sample_seed, a.guidance)
            os.makedirs(a.snapshot_dir, exist_ok=True)
            shapes.save_grid(
                snap.numpy(),
                os.path.join(a.snapshot_dir, f"step{step:05d}.png"),
                value_range=(-1.0, 1.0),
            )
            snap_s += time.perf_counter() - t_s  # not training: excluded from the budget
        if a.stop_at and step >= a.stop_at:
            break
        if a.max_seconds and time.perf_counter() - t_train - snap_s > a.max_seconds:
            print(
                f"WARNING: time budget of {a.max_seconds:.0f}s reached; stopping after {step} steps",
                flush=True,
            )
            break
    train_s = time.perf_counter() - t_train - snap_s
    cpu_s = time.process_time() - cpu_train

    # What gets saved is float16 (half the file); sample from exactly those weights.
    saved = copy.deepcopy(ema).to(torch.float16).to(torch.float32).eval()
    info = {
        "trained": "procedural labelled shapes 32x32 (models/shapes.py make_labeled_shapes), "
        "epsilon MSE with Min-SNR weighting, EMA weights stored as float16",
        "class_names": list(shapes.SHAPES),
        "null_class": NULL_CLASS,
        "label_dropout": a.label_dropout,
        "reference_sampler": reference_sampler(a.guidance),
        "seed": a.seed,
        "steps": step,
        "schedule_steps": a.steps,
        "batch_size": bs,
        "n_train": a.n_train,
        "lr": a.lr,
        "min_snr": a.min_snr,
        "warmup": a.warmup,
        "ema": a.ema,
        "threads": a.threads,
        "autocast": "bf16" if bf16 else "off",
        "train_seconds": round(train_s),
        "train_cpu_seconds": round(cpu_s),
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "params": n_params,
        "final_loss_ema": round(loss_avg, 5),
    }
    size = save_folder(ema, Path(a.out), info)
    print(
        f"wrote {a.out} ({size / 1e6:.2f} MB); trained {step} steps in {train_s:.0f}s wall, "
        f"{cpu_s:.0f}s CPU",
        flush=True,
    )
    if not a.no_png:
        t_s = time.perf_counter()
        lab = torch.arange(64) // 8 % len(shapes.SHAPES)
        samples = sample_ddim(saved, lab, REFERENCE_STEPS, a.sample_seed, a.guidance)
        shapes.DOCS.mkdir(exist_ok=True)
        shapes.save_grid(samples.numpy(), a.samples_png, value_range=(-1.0, 1.0))
        order = np.concatenate(
            [
                np.flatnonzero(y_np == int(c))[(r // 3) * 8 : (r // 3) * 8 + 8]
                for r, c in enumerate(lab[::8])
            ]
        )
        shapes.save_grid(data[order].numpy(), a.data_png, value_range=(-1.0, 1.0))
        print(
            f"wrote {a.samples_png} and {a.data_png} (sampling {time.perf_counter() - t_s:.0f}s)",
            flush=True,
        )
    print(f"total {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
