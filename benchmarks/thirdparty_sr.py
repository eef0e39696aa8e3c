"""A held-back third-party-style SR model for the optimize benchmark: a small Real-ESRGAN RRDBNet.

The architecture is Real-ESRGAN's RRDBNet (``basicsr/archs/rrdbnet_arch.py``: conv_first,
residual-in-residual dense blocks, conv_body, two nearest x2 upsamplings with convs,
conv_hr, conv_last, LeakyReLU 0.2; the test fixtures' copy in ``tests/fixtures/families.py``,
written from that layout so the state_dict keys are the ones a Real-ESRGAN ``.pth``
holds) at a small width, *trained* here. accelkit's bundled models never include it: it
is loaded the way a user loads a released checkpoint, a ``params_ema`` dict plus
``--arch tests/fixtures/families.py:RRDBNet --arch-kwargs ...`` and ``--output-range 0,1``
(Real-ESRGAN clamps its output to [0, 1]).

Training: the same procedural shapes and 4x4 box degradation as ``models/make_sr.py``,
MSE, Adam, a few minutes on the CPU::

    python benchmarks/thirdparty_sr.py --out /tmp/thirdparty/RealESRGAN_lite_x4.pth
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.fixtures.families import RRDBNet

ARCH_KWARGS = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 2, "num_grow_ch": 8}


def main() -> None:
    p = argparse.ArgumentParser(
        description="Train a small Real-ESRGAN-layout RRDBNet x4 on procedural shapes and save it as a params_ema .pth."
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    sys.path.insert(0, str(ROOT / "models"))
    import shapes

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    import numpy as np

    rng = np.random.default_rng(a.seed)
    train = torch.from_numpy(shapes.make_shapes(1000, 128, seed=a.seed + 7))
    test = torch.from_numpy(shapes.make_shapes(32, 128, seed=a.seed + 20_000))
    model = RRDBNet(**ARCH_KWARGS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    step = 0
    for step in range(1, a.steps + 1):
        idx = rng.integers(0, len(train), 16)
        ys, xs = rng.integers(0, 17, 16) * 4, rng.integers(0, 17, 16) * 4
        hr = torch.stack([train[i, :, y : y + 64, x : x + 64] for i, y, x in zip(idx, ys, xs)])
        loss = (model(F.avg_pool2d(hr, 4)) - hr).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(
                f"step {step}: mse {loss.item():.5f} ({time.perf_counter() - t0:.0f} s)", flush=True
            )
        if time.perf_counter() - t0 > a.max_seconds:
            break
    model.eval()
    with torch.no_grad():
        sr = model(F.avg_pool2d(test, 4)).clamp(0, 1)
        bic = F.interpolate(
            F.avg_pool2d(test, 4), scale_factor=4.0, mode="bicubic", align_corners=False
        ).clamp(0, 1)

    def psnr(x: torch.Tensor) -> float:
        return float(
            (10 * torch.log10(1.0 / (x - test).square().flatten(1).mean(1).clamp_min(1e-12))).mean()
        )

    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"params_ema": model.state_dict()}, a.out
    )  # the layout of Real-ESRGAN's released .pth files
    meta = {
        "arch_kwargs": ARCH_KWARGS,
        "steps": step,
        "seconds": round(time.perf_counter() - t0),
        "psnr_db": round(psnr(sr), 2),
        "psnr_bicubic_db": round(psnr(bic), 2),
    }
    a.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {a.out}: {meta}")


if __name__ == "__main__":
    main()
