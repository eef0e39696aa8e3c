#!/usr/bin/env python
"""accelkit's own overhead on OpenVINO: accelkit's ``openvino`` row vs a bare ``InferRequest.infer()`` loop.

Both sides run the same ONNX file (the bundled DCGAN, fp32 and the int8 Q/DQ file accelkit
writes), with the same OpenVINO settings (f32 inference precision, the same thread count,
one stream, LATENCY hint, static batch), batch and inputs, in one process. Rounds
alternate which side goes first, so load from other processes hits both; each round gives
one images/sec sample per side. Reported: the ratio of medians (accelkit / bare) and the
median of per-round ratios. Target: >= 0.97.

* accelkit side: :class:`accelkit.runners.openvino_runner.OpenVinoRunner` (activated once)
  timed by :func:`accelkit.benchmark.harness.measure_throughput` (one repeat per round).
* bare side, two ways, each from ``core.compile_model`` of the same reshaped model and
  each iteration timed with ``time.perf_counter`` for the same minimum time after the
  same warm-up: ``request.infer(feeds)`` (the call a user writes: numpy inputs passed each
  call, an output dict built each call) and ``request.infer()`` with the input tensor
  bound once (the tightest plain-Python loop; the ratio against it is the overhead that
  matters).

Usage::

    python benchmarks/openvino_overhead.py --batch 1,32 --rounds 9 --out benchmarks/results/openvino_overhead_cpu.md
"""

from __future__ import annotations

import argparse
import os
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
from accelkit.host import default_threads
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.int8 import Int8
from accelkit.runners.openvino_runner import OpenVinoRunner
from accelkit.sampler import LatentSampler


def bare_request(path: Path, batch: int, threads: int) -> tuple[Any, str]:
    """A compiled model's infer request with the runner's settings, and its input name."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    model = core.read_model(str(path))
    name = model.inputs[0].get_any_name()
    per_sample = [d.get_length() for d in list(model.inputs[0].get_partial_shape())[1:]]
    model.reshape({name: [batch, *per_sample]})
    cfg = {
        hints.inference_precision: ov.Type.f32,
        props.inference_num_threads: threads,
        props.num_streams: 1,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
    }
    return core.compile_model(model, "CPU", cfg).create_infer_request(), name


def bare_loop(
    request: Any, feeds: dict[str, np.ndarray], warmup: int, min_time_s: float, bound: bool = False
) -> float:
    """images/sec of a plain ``request.infer(feeds)`` loop, or ``request.infer()`` on inputs bound once (one repeat)."""
    import openvino as ov

    if bound:
        for name, arr in feeds.items():
            request.set_tensor(name, ov.Tensor(np.ascontiguousarray(arr)))
    call = (lambda: request.infer()) if bound else (lambda: request.infer(feeds))
    for _ in range(warmup):
        call()
    batch = next(iter(feeds.values())).shape[0]
    total, iters = 0.0, 0
    while total < min_time_s:
        t0 = time.perf_counter()
        call()
        total += time.perf_counter() - t0
        iters += 1
    return batch * iters / total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="default: accelkit's default_threads")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    threads = args.threads or default_threads()
    batches = [int(b) for b in args.batch.split(",")]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load0 = os.getloadavg()

    art = load_generator("dcgan")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = OnnxFromTorch(Path(tmp) / "dcgan.onnx", verify=False, force=True)(art)
        int8 = Int8(Path(tmp) / "dcgan.int8.onnx", force=True, calib_samples=64)(fp32)
        for onnx_art in (fp32, int8):
            runner = OpenVinoRunner(onnx_art, threads=threads).activate()
            for b in batches:
                feeds = LatentSampler(onnx_art.spec, seed=0).inputs(0, b)
                request, name = bare_request(Path(onnx_art.path), b, threads)
                bare_feeds = {name: np.ascontiguousarray(feeds[name])}
                sampler = LatentSampler(onnx_art.spec, seed=0, batch_size=b)
                measure_throughput(
                    runner, sampler, warmup=args.warmup, repeats=1, min_time_s=0.1
                )  # compile outside the rounds
                bound_request, _ = bare_request(Path(onnx_art.path), b, threads)
                got: dict[str, list[float]] = {"accelkit": [], "bare": [], "bound": []}
                sides = list(got)
                for r in range(args.rounds):
                    for side in sides[r % 3 :] + sides[: r % 3]:
                        if side == "bare":
                            got[side].append(
                                bare_loop(request, bare_feeds, args.warmup, args.min_time)
                            )
                        elif side == "bound":
                            got[side].append(
                                bare_loop(
                                    bound_request,
                                    bare_feeds,
                                    args.warmup,
                                    args.min_time,
                                    bound=True,
                                )
                            )
                        else:
                            lat = measure_throughput(
                                runner,
                                sampler,
                                warmup=args.warmup,
                                repeats=1,
                                min_time_s=args.min_time,
                            )
                            got[side].append(lat.images_per_sec)
                ak = got["accelkit"]
                for side in ("bare", "bound"):
                    other = got[side]
                    ratio = statistics.median(ak) / statistics.median(other)
                    per_round = [a / x for a, x in zip(ak, other)]
                    what = "infer(feeds)" if side == "bare" else "infer(), inputs bound once"
                    lines.append(
                        f"| {onnx_art.precision} | {b} | {what} | {statistics.median(ak):,.0f} | {statistics.median(other):,.0f} | **{ratio:.3f}** | "
                        f"{statistics.median(per_round):.3f} ({min(per_round):.3f} … {max(per_round):.3f}) | {'yes' if ratio >= 0.97 else 'NO'} |"
                    )
                    print(lines[-1], flush=True)
            runner.deactivate()
    env = collect_environment()
    cpu = env["cpu"]
    load1 = os.getloadavg()
    text = "\n".join(
        [
            "# accelkit OpenVINO overhead vs a bare InferRequest.infer() loop (CPU)",
            "",
            f"Command: `python benchmarks/openvino_overhead.py {' '.join(sys.argv[1:])}`",
            "",
            f"Date: {started}. Machine: {cpu['model']}, {cpu['available_cores']} cores (affinity {cpu['affinity']}), ISA {cpu['isa']['summary']} "
            f"({', '.join(k for k, v in cpu['isa']['flags'].items() if v)}); openvino {env['versions'].get('openvino')}; "
            f"{threads} thread(s), f32 inference precision, 1 stream, LATENCY, static batch. Model: bundled DCGAN 3x64x64, fp32 ONNX and its int8 Q/DQ file. "
            f"Load average at start {tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)} (shared machine).",
            "",
            "Rounds rotate which side runs first; each round gives one images/sec sample per side.",
            "",
            "| file | batch | bare loop | accelkit img/s (median) | bare img/s (median) | ratio of medians | per-round ratio: median (range) | >= 0.97 |",
            "|---|---:|---|---:|---:|---:|---|---|",
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
