#!/usr/bin/env python
"""The bundled ``ddpm`` on every CPU backend: whole samples per second and drift, and the
sampler loop's own overhead.

Part 1 (one interleaved run): at batch 1 and 8, torch eager fp32 at the reference sampler
(DDIM, 50 steps) against each backend x precision the runner registry offers for the
denoiser (torch fp32; ONNX Runtime and OpenVINO at fp32/fp16/int8 ONNX made by the one
builder, INT8 calibrated on DDIM-50 trajectories), each at DDIM 50 and 20 steps. Each
round measures every cell once (one timed iteration after one warm-up), rotating the
order, so load from other processes hits every cell; the table gives the median
images/sec over rounds (a finished image = every step plus the clamp) and its ratio over
the reference's median. Drift: the first ``--drift-n`` images (seed 0, batch 8) of each
cell against the reference's on the same noise and labels: paired PSNR and max abs error
in [-1, 1] units (a small N: a paired check, not a distribution test; a 20-step row
differs from the 50-step reference by design, the number says by how much).

Part 2: the per-step overhead of accelkit's sampler loop (:class:`DiffusionRunner` over
a component runner) against a bare loop of the same runtime and scheduler (diffusers'
DDIMScheduler stepping around ``module(...)`` for torch, ``InferenceSession.run`` for
ONNX Runtime), DDIM 20 steps, same inputs, rounds alternating the order; target >= 0.95.

Usage::

    nice -n 10 python benchmarks/diffusion_backends.py --out benchmarks/results/diffusion_backends_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.environment import collect_environment
from accelkit.benchmark.harness import measure_throughput
from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
from accelkit.errors import one_line
from accelkit.models import bundled_pipeline_path
from accelkit.options import BuildRecipe
from accelkit.passes.verify import paired_error
from accelkit.pipelines.diffusion import component_builders, component_recipe
from accelkit.runners.base import Ask, offers
from accelkit.sampler import LatentSampler

BACKENDS = ("torch", "ort", "openvino")
#: Cells that could not run, with the one-line reason (listed in the result).
FAILED: list[str] = []
PRECISIONS = ("fp32", "fp16", "int8")


def cells(model: Any, workdir: Path, threads: int) -> list[dict[str, Any]]:
    """Every (backend, precision) the registry offers for the denoiser, its artifact built."""
    ref = SamplerSettings(scheduler="ddim", steps=50)
    recipe = component_recipe(BuildRecipe(), (1, 8), False)
    den_b, _ = component_builders(model, workdir, recipe, ref, progress=print)
    out = []
    for name in BACKENDS:
        for p in PRECISIONS:
            got = offers(name, Ask(kind="torch", precision=p, device="cpu", threads=threads))
            if isinstance(got, str):
                print(f"skip {name} {p}: {got}")
                continue
            r = next(x for x in got if x.variant is None)
            art = den_b.make(r.source)
            out.append(
                {
                    "backend": name,
                    "precision": p,
                    "denoiser": None if r.source == "torch" else art,
                    "options": dict(r.options),
                }
            )
    return out


def runner_for(model: Any, cell: dict[str, Any], steps: int) -> Any:
    return create_diffusion_runner(
        model,
        cell["backend"],
        settings=SamplerSettings(scheduler="ddim", steps=steps),
        denoiser=cell["denoiser"],
        options=cell["options"],
    )


def part1(
    model: Any, all_cells: list[dict[str, Any]], batches: list[int], rounds: int, drift_n: int
) -> list[str]:
    lines = []
    ref_cell = next(c for c in all_cells if c["backend"] == "torch" and c["precision"] == "fp32")
    grid = [(ref_cell, 50)] + [
        (c, s) for s in (50, 20) for c in all_cells if (c, s) != (ref_cell, 50)
    ]
    feeds = LatentSampler(model.spec, seed=0, batch_size=drift_n).inputs(0, drift_n)
    ref_imgs = None
    kept: list[tuple[dict[str, Any], int]] = []
    drift: dict[int, tuple[float, float]] = {}
    for c, s in grid:
        try:
            with runner_for(model, c, s) as r:
                imgs = r.infer(feeds)
        except Exception as exc:
            FAILED.append(f"{c['backend']} {c['precision']} ddim-{s}: {one_line(exc)}")
            print("failed:", FAILED[-1])
            continue
        if ref_imgs is None:
            ref_imgs = imgs
        err = paired_error(ref_imgs, imgs, (-1.0, 1.0))
        drift[len(kept)] = (float(err["psnr_db"]), float(err["max_abs_err"]))
        kept.append((c, s))
        print(f"drift {c['backend']} {c['precision']} ddim-{s}: PSNR {err['psnr_db']:.1f} dB")
    grid = kept
    for b in batches:
        runners = [runner_for(model, c, s).activate() for c, s in grid]
        samples: list[list[float]] = [[] for _ in grid]
        ms_step: list[list[float]] = [[] for _ in grid]
        try:
            for rnd in range(rounds):
                order = list(range(len(grid)))
                k = rnd % len(order)
                order = order[k:] + order[:k]
                for i in order:
                    lat = measure_throughput(
                        runners[i],
                        LatentSampler(model.spec, seed=0, batch_size=b),
                        warmup=1 if rnd == 0 else 0,  # runners stay active across rounds
                        repeats=1,
                        min_time_s=0.001,
                    )
                    samples[i].append(lat.images_per_sec)
                    # from the timed iteration only (the warm-up compiles for a new shape)
                    ms_step[i].append(1e3 * b / lat.images_per_sec / grid[i][1])
                    print(
                        f"batch {b} round {rnd} {grid[i][0]['backend']} {grid[i][0]['precision']} "
                        f"ddim-{grid[i][1]}: {lat.images_per_sec:.2f} img/s"
                    )
        finally:
            for r in runners:
                r.deactivate()
        ref_med = statistics.median(samples[0])
        for i, (c, s) in enumerate(grid):
            med = statistics.median(samples[i])
            per_round = [a / x for a, x in zip(samples[i], samples[0])]
            psnr, mae = drift[i]
            ptxt = "∞ (same images)" if psnr == float("inf") else f"{psnr:.1f}"
            lines.append(
                f"| {b} | {c['backend']} | {c['precision']} | ddim-{s} | {med:.2f} | "
                f"{statistics.median(ms_step[i]) if ms_step[i] else float('nan'):.1f} | "
                f"**{med / ref_med:.2f}×** | {min(per_round):.2f} … {max(per_round):.2f} | {ptxt} | {mae:.3f} |"
            )
    return lines


def _bare_setup(
    model: Any, feeds: dict[str, np.ndarray], steps: int
) -> tuple[Any, Any, Any, float]:
    """Scheduler, initial sample, labels for one denoiser call (guidance: [labels, null]) and the scale."""
    import torch

    sampling = model.sampling(SamplerSettings(scheduler="ddim", steps=steps))
    sched = sampling.build()
    sched.set_timesteps(steps)
    labels = torch.from_numpy(feeds["label"])
    if sampling.cfg:
        labels = torch.cat([labels, torch.full_like(labels, int(model.null_class))])
    return (
        sched,
        torch.from_numpy(feeds["noise"]) * sched.init_noise_sigma,
        labels,
        sampling.guidance,
    )


def _mix(eps: Any, n: int, g: float) -> Any:
    return eps if eps.shape[0] == n else eps[n:] + g * (eps[:n] - eps[n:])


def bare_torch(model: Any, feeds: dict[str, np.ndarray], steps: int) -> float:
    """Seconds per step of diffusers' DDIMScheduler around the plain torch module (guidance as
    the model's reference sampler: both passes in one call, as diffusers' pipelines do)."""
    import torch

    sched, x, labels, g = _bare_setup(model, feeds, steps)
    unet = model.denoiser.module
    n = x.shape[0]
    with torch.inference_mode():
        t0 = time.perf_counter()
        for t in sched.timesteps:
            inp = torch.cat([x, x]) if labels.shape[0] != n else x
            eps = unet(inp, t.float().reshape(1).expand(inp.shape[0]), labels)
            x = sched.step(_mix(eps, n, g), t, x).prev_sample
        x.clamp(-1, 1)
        return (time.perf_counter() - t0) / steps


def bare_ort(
    model: Any, path: Path, feeds: dict[str, np.ndarray], steps: int, threads: int
) -> float:
    """Seconds per step of DDIMScheduler around a plain InferenceSession.run (same guidance)."""
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    sched, x, labels, g = _bare_setup(model, feeds, steps)
    n = x.shape[0]
    lab = labels.numpy()
    t0 = time.perf_counter()
    for t in sched.timesteps:
        inp = torch.cat([x, x]) if lab.shape[0] != n else x
        eps = sess.run(
            None,
            {
                "sample": inp.numpy(),
                "timestep": np.full((inp.shape[0],), float(t), dtype=np.float32),
                "class_labels": lab,
            },
        )[0]
        x = sched.step(_mix(torch.from_numpy(eps), n, g), t, x).prev_sample
    x.clamp(-1, 1)
    return (time.perf_counter() - t0) / steps


def part2(
    model: Any, all_cells: list[dict[str, Any]], batches: list[int], rounds: int, threads: int
) -> list[str]:
    lines = []
    steps = 20
    for c in all_cells:
        if c["precision"] != "fp32" or c["backend"] not in ("torch", "ort"):
            continue
        for b in batches:
            feeds = LatentSampler(model.spec, seed=0, batch_size=b).inputs(0, b)
            ak, bare = [], []
            with runner_for(model, c, steps) as r:
                r.infer(feeds)  # warm-up
                for rnd in range(rounds):
                    for side in ("ak", "bare") if rnd % 2 == 0 else ("bare", "ak"):
                        if side == "ak":
                            t0 = time.perf_counter()
                            r.infer(feeds)
                            ak.append((time.perf_counter() - t0) / steps)
                        elif c["backend"] == "torch":
                            bare.append(bare_torch(model, feeds, steps))
                        else:
                            bare.append(bare_ort(model, c["denoiser"].path, feeds, steps, threads))
            ratio = statistics.median(bare) / statistics.median(ak)
            lines.append(
                f"| {c['backend']} fp32 | {b} | {1e3 * statistics.median(ak):.2f} | {1e3 * statistics.median(bare):.2f} | "
                f"**{ratio:.3f}** | {'yes' if ratio >= 0.95 else 'NO'} |"
            )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--drift-n", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--pipeline", default=None, help="a pipeline folder (default: the bundled ddpm)"
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    env = collect_environment()
    cpu = env.get("cpu", {})
    isa = cpu.get("isa") or {}
    load0 = os.getloadavg()
    t_start = time.time()
    model = load_pipeline(args.pipeline or bundled_pipeline_path("ddpm"))
    with tempfile.TemporaryDirectory() as tmp:
        all_cells = cells(model, Path(tmp), args.threads)
        for c in all_cells:
            c["options"].setdefault("threads", args.threads) if c["backend"] != "torch" else None
        rows1 = part1(model, all_cells, batches, args.rounds, args.drift_n)
        rows2 = part2(model, all_cells, batches, max(5, args.rounds), args.threads)
    load1 = os.getloadavg()
    text = "\n".join(
        [
            "# The bundled ddpm on every CPU backend: whole samples per second, drift, loop overhead",
            "",
            f"Command: `nice -n 10 python benchmarks/diffusion_backends.py --batch {args.batch} --rounds {args.rounds} "
            f"--drift-n {args.drift_n} --threads {args.threads}`",
            "",
            f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}. Machine: {cpu.get('model', platform.processor())}, "
            f"{cpu.get('available_cores', '?')} cores available, ISA {isa.get('summary', '?')} "
            f"({', '.join(k for k, v in (isa.get('flags') or {}).items() if v)}); {args.threads} thread(s) per runner. "
            f"Load average at start {tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)} "
            f"(a shared 2-core machine: other engineers' test suites ran meanwhile). Run time {time.time() - t_start:.0f} s.",
            f"Model: {model.folder.path.name} ({sum(p.numel() for p in model.denoiser.module.parameters()):,} parameters, "
            f"{'x'.join(map(str, model.spec.output_shape))}, reference sampler {model.sampling().label()}: every sampler below "
            f"uses the model's guidance {model.sampling().guidance:g}, both passes in one denoiser call). Versions: "
            + ", ".join(
                f"{k} {v}"
                for k, v in (env.get("versions") or {}).items()
                if v and k in ("torch", "onnxruntime", "openvino", "diffusers")
            ),
            "",
            "## Whole samples per second and drift (one interleaved run)",
            "",
            f"Median over {args.rounds} rounds of one timed iteration each (one warm-up iteration in the first round; the "
            "runners stay active across rounds); 'vs ref' = median images/sec over "
            "torch eager fp32 DDIM-50's median at the same batch; per-round ratio range shows the noise. Drift: the first "
            f"{args.drift_n} images (seed 0) against torch fp32 DDIM-50 on the same noise and labels (paired; small N).",
            "",
            "| batch | backend | precision | sampler | images/s | ms/step | vs ref | per-round ratio | PSNR dB vs ref | max abs err |",
            "|---:|---|---|---|---:|---:|---:|---|---:|---:|",
            *rows1,
            "",
            *(
                ["Cells that could not run here:", "", *[f"- {f}" for f in FAILED], ""]
                if FAILED
                else []
            ),
            "## Per-step overhead of accelkit's sampler loop vs a bare loop of the same runtime",
            "",
            f"DDIM 20 steps, seconds per step (median of {max(5, args.rounds)} alternating rounds); ratio = bare / accelkit "
            "(1.0 = no overhead; target >= 0.95). Bare: diffusers' DDIMScheduler stepping around the plain torch module or "
            "a plain onnxruntime InferenceSession with the same thread settings.",
            "",
            "| runtime | batch | accelkit ms/step | bare ms/step | ratio | >= 0.95 |",
            "|---|---:|---:|---:|---:|---|",
            *rows2,
            "",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
