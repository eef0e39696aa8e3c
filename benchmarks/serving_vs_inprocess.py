#!/usr/bin/env python
"""Served (Triton + dynamic batching) vs in-process images/sec for the same artifact, runner and request batch.

The bundled DCGAN is exported to fp32 ONNX once. A Triton Inference Server (PyTriton,
``accelkit.serving.server.ServerProcess``: its own process, as in a deployment) serves it
through the ``ort`` runner with ``--threads`` intra-op threads; the in-process side is
the same ``ort`` runner with the same threads in this process, timed by
``accelkit.benchmark.harness.measure_throughput``. Every round measures, back to back,
the in-process runner at the request batch size for ``--window`` seconds and then each
concurrency level for ``--window`` seconds with the tritonclient closed loop (gRPC,
``--concurrency`` requests in flight, each of ``--batch`` images), so load from other
processes on a shared machine hits both sides of the ratio. Each round gives one
images/sec sample per side and level; the report uses medians over rounds.

Headline: the best level's median images/sec over the in-process median (goal >= 0.85),
and the per-request overhead at concurrency 1 (served client p50 minus in-process p50
per batch, ms). The client, tritonserver, the Python-backend stub and the runner share
the machine's cores, as they would on a one-box deployment.

Usage::

    python benchmarks/serving_vs_inprocess.py --threads 1 --rounds 7 --out benchmarks/results/serving_cpu
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.environment import collect_environment
from accelkit.benchmark.harness import Latency, measure_throughput
from accelkit.benchmark.report import BenchRow, Report
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.runners.base import create_runner
from accelkit.sampler import LatentSampler
from accelkit.serving.loadgen import LevelResult, closed_loop
from accelkit.serving.options import ServeOptions
from accelkit.serving.server import ServerProcess, served_io
from accelkit.stats import quantile


def _merge_levels(parts: list[LevelResult]) -> LevelResult:
    """One level from its rounds: one sample per round, all latencies, server times weighted by requests."""
    n = [p.server_requests or 0 for p in parts]
    server = None
    if all(p.server_ms for p in parts) and sum(n):
        server = {
            k: sum(p.server_ms[k] * w for p, w in zip(parts, n)) / sum(n)
            for k in parts[0].server_ms
        }  # type: ignore[index]
    execs = sum(p.server_executions or 0 for p in parts)
    return LevelResult(
        concurrency=parts[0].concurrency,
        batch_size=parts[0].batch_size,
        tool=parts[0].tool,
        images_per_sec_samples=[p.images_per_sec_samples[0] for p in parts],
        requests_per_window=[p.requests_per_window[0] for p in parts],
        latencies_ms=[x for p in parts for x in p.latencies_ms],
        server_ms=server,
        server_requests=sum(n),
        server_executions=execs,
        avg_server_batch=(sum(n) * parts[0].batch_size / execs) if execs else None,
        window_s=parts[0].window_s,
        extra=dict(parts[0].extra),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads, both sides")
    ap.add_argument("--batch", type=int, default=1, help="images per request = in-process batch")
    ap.add_argument("--concurrency", default="1,2,4,8,16")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--window", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-queue-delay-us", type=int, default=500)
    ap.add_argument(
        "--instances",
        type=int,
        default=1,
        help="model instances (each its own runner with --threads)",
    )
    ap.add_argument(
        "--out", type=Path, required=True, help="report folder; a .md summary is written beside it"
    )
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    started = datetime.now(timezone.utc)
    t_start = time.monotonic()
    environment = (
        collect_environment()
    )  # before the run: its load average is what other processes were doing then

    with tempfile.TemporaryDirectory(prefix="accelkit-serving-bench-") as tmp:
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
            max_queue_delay_us=args.max_queue_delay_us,
            instances=args.instances,
        )
        inproc: list[Latency] = []
        served: dict[int, list[LevelResult]] = {c: [] for c in levels}
        with (
            ServerProcess(functools.partial(load_generator, str(art.path)), "ort", sopts) as proc,
            create_runner("ort", art, "cpu", threads=args.threads) as runner,
        ):
            assert proc.info is not None
            info = proc.info
            for rnd in range(args.rounds):
                print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr, flush=True)
                inproc.append(
                    measure_throughput(runner, sampler, warmup=3, repeats=1, min_time_s=args.window)
                )
                for c in levels:
                    served[c].append(
                        closed_loop(
                            info.grpc_url,
                            "grpc",
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
                    )
            runner_info = runner.describe()

        rep = Report(environment=environment)
        lat = Latency(
            batch_size=args.batch,
            device="cpu",
            warmup=3,
            iters_per_repeat=[n for x in inproc for n in x.iters_per_repeat],
            latencies_ms=[v for x in inproc for v in x.latencies_ms],
            images_per_sec_samples=[x.images_per_sec_samples[0] for x in inproc],
            load_average_1m=inproc[0].load_average_1m,
        )
        ip_row = rep.add_result(runner_info, lat, artifact=art)
        merged = {c: _merge_levels(parts) for c, parts in served.items()}
        for c, lv in merged.items():
            s = lv.images_per_sec_samples
            p25, p75 = quantile(s, 0.25), quantile(s, 0.75)
            rep.add_row(
                BenchRow(
                    backend="ort",
                    precision="fp32",
                    batch_size=args.batch,
                    device="cpu",
                    images_per_sec=lv.images_per_sec,
                    images_per_sec_samples=s,
                    images_per_sec_spread={
                        "p25": p25,
                        "p75": p75,
                        "iqr": p75 - p25,
                        "min": min(s),
                        "max": max(s),
                    },
                    latency_ms=lv.latency_ms,
                    iters_per_repeat=lv.requests_per_window,
                    timer="perf_counter",
                    artifact=ip_row.artifact,
                    scenario="serving",
                    concurrency=c,
                    server_latency_ms=lv.server_ms,
                    runner={
                        "model": "dcgan",
                        "protocol": "grpc",
                        **{
                            k: getattr(info, k)
                            for k in (
                                "max_batch",
                                "max_queue_delay_us",
                                "preferred_batches",
                                "instances",
                            )
                        },
                        "runner": info.runner,
                    },
                    extra={
                        "tool": lv.tool,
                        "avg_server_batch": lv.avg_server_batch,
                        "server_requests": lv.server_requests,
                        "vs_in_process": lv.images_per_sec / ip_row.images_per_sec,
                        "in_process_images_per_sec": ip_row.images_per_sec,
                        "per_round_ratio": [
                            a / b for a, b in zip(s, ip_row.images_per_sec_samples)
                        ],
                    },
                )
            )
        rep.settings.update(
            {
                "command": " ".join(
                    ["python", "benchmarks/serving_vs_inprocess.py", *sys.argv[1:]]
                ),
                "rounds": args.rounds,
                "window_s": args.window,
                "threads": args.threads,
                "interleaved": True,
            }
        )
        rep.write(args.out)

    best_c, best = max(merged.items(), key=lambda kv: kv[1].images_per_sec)
    ratio = best.images_per_sec / ip_row.images_per_sec
    per_round = [a / b for a, b in zip(best.images_per_sec_samples, ip_row.images_per_sec_samples)]
    c1 = merged.get(1)
    overhead = (
        (c1.latency_ms["p50"] - ip_row.latency_ms["p50"])
        if c1 is not None and ip_row.latency_ms
        else None
    )  # type: ignore[index]
    env = rep.environment
    cpu = env["cpu"]
    isa = cpu.get("isa", {})
    lines = [
        "# Served on Triton (dynamic batching) vs in-process: bundled DCGAN, ORT fp32, CPU",
        "",
        f"Command: `python benchmarks/serving_vs_inprocess.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {cpu.get('model')} ({platform.machine()}), {cpu.get('available_cores')} cores available, ISA {isa.get('summary', '?')} "
        f"({', '.join(k for k, v in (isa.get('flags') or {}).items() if v) or 'n/a'}); no GPU; load average at start {cpu.get('load_average')}.  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items() if v)}; nvidia-pytriton (Triton server with the Python backend), tritonclient gRPC.  ",
        f"Date: {started.date().isoformat()} ({time.monotonic() - t_start:.0f} s). Report folder: [{args.out.name}/]({args.out.name}/results.md) (results.json, serving.png).",
        "",
        f"Setup: one `ort` runner with {args.threads} intra-op thread(s) on both sides; requests of {args.batch} image(s); server max batch "
        f"{args.max_batch}, queue delay {args.max_queue_delay_us} us, {args.instances} instance(s); client: tritonclient gRPC closed loop in this process, the "
        f"server in a child process. {args.rounds} interleaved rounds of {args.window:g} s per side and level; medians over rounds.",
        "",
        "| side | concurrency | images/s (median) | per-round min … max | p50 ms | p99 ms | server queue ms | server compute ms | images/batch | vs in-process |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        f"| in-process (batch {args.batch}) | — | {ip_row.images_per_sec:.1f} | {min(ip_row.images_per_sec_samples):.1f} … {max(ip_row.images_per_sec_samples):.1f} | "
        f"{ip_row.latency_ms['p50']:.2f} | {ip_row.latency_ms['p99']:.2f} | — | — | — | 1.00 |",  # type: ignore[index]
    ]
    for c, lv in merged.items():
        srv = lv.server_ms or {}
        comp = sum(v for k, v in srv.items() if k.startswith("compute_"))
        lines.append(
            f"| Triton | {c} | {lv.images_per_sec:.1f} | {min(lv.images_per_sec_samples):.1f} … {max(lv.images_per_sec_samples):.1f} | {lv.latency_ms['p50']:.2f} | "
            f"{lv.latency_ms['p99']:.2f} | {srv.get('queue', float('nan')):.2f} | {comp:.2f} | {lv.avg_server_batch or 0:.2f} | {lv.images_per_sec / ip_row.images_per_sec:.2f} |"
        )
    verdict = "met" if ratio >= 0.85 else "NOT met"
    lines += [
        "",
        f"**Served / in-process at the best concurrency ({best_c}): {ratio:.2f}×** (per-round ratios {min(per_round):.2f} … {max(per_round):.2f}); "
        f"goal ≥ 0.85×: {verdict}.  ",
        f"**Per-request overhead at concurrency 1: {overhead:.2f} ms** (served client p50 {c1.latency_ms['p50']:.2f} ms vs in-process p50 "  # type: ignore[union-attr]
        f"{ip_row.latency_ms['p50']:.2f} ms per batch of {args.batch}): gRPC encode/decode, Triton's scheduler, the shared-memory hop to the "
        "Python-backend stub and PyTriton's hop to this runner's process."
        if overhead is not None
        else "",
        "",
        "Reading it: images/batch is what Triton's dynamic batcher formed from the requests in flight. The serving path costs a fixed "
        "time per model execution (server compute minus the runner's own time), so served throughput grows with concurrency as batches "
        "grow and the instances overlap, while latency grows with queueing. The load generator, tritonserver, the Python-backend stubs "
        "and the runners share the machine's cores, and in this run other processes did too (load average above).",
    ]
    md = args.out.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
