#!/usr/bin/env python
"""accelkit's own overhead on ONNX Runtime: accelkit's ``ort`` row vs a bare ``InferenceSession.run`` loop.

Both sides run the same ONNX file (the bundled DCGAN exported to fp32), with the same
thread settings, batch and inputs, in one process. Rounds alternate which side goes
first, so load from other processes hits both; each round gives one images/sec sample
per side and the script reports the ratio of medians (accelkit / bare). Target: >= 0.97.

* accelkit side: :class:`accelkit.runners.ort_runner.OrtRunner` timed by
  :func:`accelkit.benchmark.harness.measure_throughput` (one repeat per round).
* bare side: ``onnxruntime.InferenceSession`` with the same ``SessionOptions``
  (intra/inter-op threads, ORT_ENABLE_ALL) and ``session.run(None, feeds)`` in a loop
  timed with ``time.perf_counter`` per iteration, for the same minimum time.

Usage::

    python benchmarks/ort_overhead.py --threads 1 --batch 1,8 --rounds 9 --out benchmarks/results/ort_overhead_cpu.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.harness import measure_throughput
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.runners.ort_runner import OrtRunner
from accelkit.sampler import LatentSampler


def bare_loop(
    path: Path, feeds: dict[str, np.ndarray], threads: int, warmup: int, min_time_s: float
) -> float:
    """images/sec of a plain InferenceSession.run loop (one repeat)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        sess.run(None, feeds)
    batch = next(iter(feeds.values())).shape[0]
    total, iters = 0.0, 0
    while total < min_time_s:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        total += time.perf_counter() - t0
        iters += 1
    return batch * iters / total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]

    art = load_generator("dcgan")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_art = OnnxFromTorch(Path(tmp) / "dcgan.onnx", verify=False, force=True)(art)
        lines = []
        for b in batches:
            feeds = LatentSampler(onnx_art.spec, seed=0).inputs(0, b)
            ak, bare = [], []
            for r in range(args.rounds):
                order = ("accelkit", "bare") if r % 2 == 0 else ("bare", "accelkit")
                for side in order:
                    if side == "bare":
                        bare.append(
                            bare_loop(
                                onnx_art.path, feeds, args.threads, args.warmup, args.min_time
                            )
                        )
                    else:
                        runner = OrtRunner(onnx_art, threads=args.threads)
                        lat = measure_throughput(
                            runner,
                            LatentSampler(onnx_art.spec, seed=0, batch_size=b),
                            warmup=args.warmup,
                            repeats=1,
                            min_time_s=args.min_time,
                        )
                        ak.append(lat.images_per_sec)
            ratio = statistics.median(ak) / statistics.median(bare)
            per_round = [a / x for a, x in zip(ak, bare)]
            lines.append(
                f"| {b} | {statistics.median(ak):,.1f} | {statistics.median(bare):,.1f} | **{ratio:.3f}** | "
                f"{min(per_round):.3f} … {max(per_round):.3f} | {'yes' if ratio >= 0.97 else 'NO'} |"
            )
    import onnxruntime

    text = "\n".join(
        [
            "# accelkit ORT overhead vs a bare InferenceSession loop (CPU)",
            "",
            f"Command: `python benchmarks/ort_overhead.py --threads {args.threads} --batch {args.batch} --rounds {args.rounds} "
            f"--min-time {args.min_time}`",
            f"Machine: {platform.processor() or platform.machine()}, 2-core shared developer VM, no GPU; "
            f"onnxruntime {onnxruntime.__version__}; model: bundled DCGAN 3x64x64 fp32 ONNX; {args.threads} intra-op thread(s).",
            "Rounds alternate which side runs first; each round gives one images/sec sample per side.",
            "",
            "| batch | accelkit img/s (median) | bare img/s (median) | ratio | per-round ratio range | >= 0.97 |",
            "|---:|---:|---:|---:|---|---|",
            *lines,
            "",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
