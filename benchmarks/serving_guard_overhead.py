#!/usr/bin/env python
"""What the request guard costs: the same served model reached through accelkit serve's guard and directly.

``accelkit serve`` puts a request guard (:mod:`accelkit.serving.guard`) in front of
Triton: every request is parsed and checked before it is forwarded to ``tritonserver``
on loopback. This script measures that hop. One server (the bundled DCGAN exported to
fp32 ONNX, the ``ort`` runner, its own process as in a deployment) is load-tested by the
tritonclient closed loop at each ``--concurrency`` level, per protocol (gRPC, HTTP), once
through the guard's endpoint and once at Triton's own loopback endpoint, the two in
alternating order within each of ``--rounds`` rounds so load from other processes hits
both sides. Each round and level gives one images/s sample and client latencies per side.

Headline: per protocol and level, median images/s through the guard over direct, the
per-round range of that ratio, the p50 latency difference (ms per request), and the CPU
time the server's process (PyTriton's side of the runner, plus the guard when it is used)
spends per request, read from ``/proc`` — a cost that depends less than images/s on what
else runs on the machine.

Usage::

    python benchmarks/serving_guard_overhead.py --rounds 5 --window 1.5 --out benchmarks/results/serving_guard_cpu.md
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.environment import collect_environment
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.sampler import LatentSampler
from accelkit.serving.loadgen import closed_loop, connect
from accelkit.serving.loadgen import statistics as model_statistics
from accelkit.serving.options import ServeOptions
from accelkit.serving.server import ServerProcess, served_io


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its finished children's, seconds (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads of the runner")
    ap.add_argument("--batch", type=int, default=1, help="images per request")
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--protocols", default="grpc,http")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--window", type=float, default=1.5, help="seconds per measurement")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    protocols = args.protocols.split(",")
    started = datetime.now(timezone.utc)
    t_start = time.monotonic()
    environment = collect_environment()

    # (protocol, concurrency, side) -> per-round images/s, and all request latencies (ms)
    ips: dict[tuple[str, int, str], list[float]] = {}
    lat: dict[tuple[str, int, str], list[float]] = {}
    cpu_ms: dict[tuple[str, int, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="accelkit-guard-bench-") as tmp:
        art = OnnxFromTorch(Path(tmp) / "dcgan.onnx", force=True)(load_generator("dcgan"))
        ins, out = served_io(art)
        sampler = LatentSampler(art.spec, seed=0, batch_size=args.batch)
        sopts = ServeOptions(
            name="dcgan",
            http_port=0,
            grpc_port=0,
            metrics_port=0,
            threads=args.threads,
            max_batch=args.max_batch,
        )
        with ServerProcess(functools.partial(load_generator, str(art.path)), "ort", sopts) as proc:
            assert proc.info is not None
            info = proc.info
            urls = {
                ("grpc", "guard"): info.grpc_url,
                ("http", "guard"): info.http_url,
                ("grpc", "direct"): info.upstream["grpc"],
                ("http", "direct"): info.upstream["http"],
            }
            stats = connect(info.upstream["grpc"], "grpc")
            for rnd in range(args.rounds):
                print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr, flush=True)
                sides = ("guard", "direct") if rnd % 2 == 0 else ("direct", "guard")
                for proto in protocols:
                    for c in levels:
                        for side in sides:
                            served0 = model_statistics(stats, "dcgan")["success_count"]
                            cpu0 = cpu_seconds(proc._proc.pid)
                            lv = closed_loop(
                                urls[(proto, side)],
                                proto,
                                "dcgan",
                                ins,
                                out.name,
                                lambda k: sampler.inputs(k * args.batch, args.batch),
                                c,
                                args.batch,
                                window_s=args.window,
                                windows=1,
                                warmup_s=0.3,
                            )
                            ips.setdefault((proto, c, side), []).append(lv.images_per_sec)
                            cpu1 = cpu_seconds(proc._proc.pid)
                            # every request of the run (warm-up included): Triton's own count
                            n = model_statistics(stats, "dcgan")["success_count"] - served0
                            if n:
                                cpu_ms.setdefault((proto, c, side), []).append(
                                    (cpu1 - cpu0) * 1000 / n
                                )
                            lat.setdefault((proto, c, side), []).extend(lv.latencies_ms)

    cpu = environment["cpu"]
    isa = cpu.get("isa", {})
    lines = [
        "# The request guard's cost: bundled DCGAN served on Triton, through the guard vs directly (CPU)",
        "",
        f"Command: `python benchmarks/serving_guard_overhead.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {cpu.get('model')} ({platform.machine()}), {cpu.get('available_cores')} cores available, ISA "
        f"{isa.get('summary', '?')}; no GPU; load average at start {cpu.get('load_average')}.  ",
        f"Date: {started.date().isoformat()} ({time.monotonic() - t_start:.0f} s).",
        "",
        f"Setup: one `ort` runner, {args.threads} intra-op thread(s), requests of {args.batch} image(s), max batch "
        f"{args.max_batch}; server (tritonserver + the guard) in a child process, tritonclient closed loop in this process. "
        f"{args.rounds} rounds; in each, every protocol and level is measured through the guard and directly for "
        f"{args.window:g} s, in alternating order. Medians over rounds.",
        "",
        "| protocol | concurrency | guard images/s | direct images/s | guard / direct | per-round range | guard p50 ms | direct p50 ms | p50 difference ms | server CPU ms/request guard | direct | difference |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for proto in protocols:
        for c in levels:
            g, d = ips[(proto, c, "guard")], ips[(proto, c, "direct")]
            ratios = [a / b for a, b in zip(g, d)]
            gp50 = statistics.median(lat[(proto, c, "guard")])
            dp50 = statistics.median(lat[(proto, c, "direct")])
            gc = statistics.median(cpu_ms[(proto, c, "guard")])
            dc = statistics.median(cpu_ms[(proto, c, "direct")])
            lines.append(
                f"| {proto} | {c} | {statistics.median(g):.1f} | {statistics.median(d):.1f} | "
                f"{statistics.median(g) / statistics.median(d):.2f} | {min(ratios):.2f} … {max(ratios):.2f} | "
                f"{gp50:.2f} | {dp50:.2f} | {gp50 - dp50:+.2f} | {gc:.2f} | {dc:.2f} | {gc - dc:+.2f} |"
            )
    lines += [
        "",
        "Server CPU per request is the user + system time of the server's process (PyTriton's side of the runner, and the guard "
        "when it is used; not tritonserver's) over the requests Triton counted, medians over rounds: the difference is the "
        "guard's own CPU cost per request, which depends less on the machine's other load than images/s does.",
        "",
        "The guard parses each request's header (the HTTP JSON header, or the gRPC message), checks it and forwards it "
        "over a kept-alive loopback connection; the client, the guard, tritonserver, its Python-backend stub and the runner "
        "share the machine's cores (and other processes did too: load average above).",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
