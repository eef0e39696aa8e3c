#!/usr/bin/env python
"""Which torch CPU settings win, measured interleaved: eager vs channels_last vs bf16 vs torch.compile variants.

Rows on the bundled DCGAN (``--generator``), every one a :class:`~accelkit.runners.torch_runner.TorchRunner`
configuration accelkit can run: eager fp32, eager channels_last, bf16 (native-bf16 CPUs),
bf16 + channels_last, ``torch.compile`` with torch's default Inductor settings
(``compile_config={}``, accelkit's CPU default), with ``freezing``, and with ``freezing``
+ ``cpp_wrapper``. Every runner is activated once and compiled per batch size before the
rounds; then ``--rounds`` interleaved rounds measure every row once at every batch size,
rotating the order. The defaults in ``accelkit/runners/torch_runner.py`` and the
``--compile`` row of ``accelkit bench`` come from this table (``docs/cpu.md``).

Usage::

    python benchmarks/torch_cpu_settings.py --batch 1,32 --out benchmarks/results/torch_cpu_settings.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_fast_path import ROOT  # noqa: F401  (puts the repo on sys.path)

from accelkit.benchmark.environment import collect_environment
from accelkit.benchmark.harness import measure_throughput
from accelkit.host import default_threads, has_native_bf16
from accelkit.loading import load_generator
from accelkit.runners import create_runner
from accelkit.sampler import LatentSampler


def configs() -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = [
        ("eager fp32", {}),
        ("eager fp32 channels_last", {"channels_last": True}),
    ]
    if has_native_bf16():
        rows += [
            ("eager bf16", {"precision": "bf16"}),
            ("eager bf16 channels_last", {"precision": "bf16", "channels_last": True}),
        ]
    rows += [
        ("compile (torch defaults = accelkit default)", {"compile": True, "compile_config": {}}),
        ("compile + freezing", {"compile": True, "compile_config": {"freezing": True}}),
        (
            "compile + freezing + cpp_wrapper",
            {"compile": True, "compile_config": {"freezing": True, "cpp_wrapper": True}},
        ),
    ]
    if has_native_bf16():
        rows.append(
            (
                "compile + freezing, bf16",
                {"compile": True, "precision": "bf16", "compile_config": {"freezing": True}},
            )
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="dcgan")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    threads = args.threads or default_threads()
    batches = [int(b) for b in args.batch.split(",")]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load0 = os.getloadavg()
    art = load_generator(args.generator)
    rows = configs()
    runners = [create_runner("torch", art, threads=threads, **opts).activate() for _, opts in rows]
    samples: dict[tuple[int, int], list[float]] = {}
    compile_s: dict[tuple[int, int], float] = {}
    for b in batches:
        for i, r in enumerate(runners):  # compile + warm every row before the rounds
            measure_throughput(
                r,
                LatentSampler(art.spec, seed=0, batch_size=b),
                warmup=args.warmup,
                repeats=1,
                min_time_s=0.05,
            )
            cs = r.describe().get("compile_seconds", {}).get(str(b))
            if cs is not None:
                compile_s[(i, b)] = cs
    for rnd in range(args.rounds):
        for b in batches:
            k = (rnd + b) % len(rows)
            for i in list(range(len(rows)))[k:] + list(range(len(rows)))[:k]:
                lat = measure_throughput(
                    runners[i],
                    LatentSampler(art.spec, seed=0, batch_size=b),
                    warmup=args.warmup,
                    repeats=1,
                    min_time_s=args.min_time,
                )
                samples.setdefault((i, b), []).append(lat.images_per_sec)
            print(
                f"round {rnd + 1} batch {b}: "
                + ", ".join(f"{rows[i][0]} {samples[(i, b)][-1]:.0f}" for i in range(len(rows))),
                flush=True,
            )
    for r in runners:
        r.deactivate()
    env = collect_environment()
    cpu = env["cpu"]
    lines = [
        f"# torch CPU settings on {args.generator}, one interleaved run",
        "",
        f"Command: `python benchmarks/torch_cpu_settings.py {' '.join(sys.argv[1:])}`",
        "",
        f"Date: {started}. Machine: {cpu['model']}, {cpu['available_cores']} cores, ISA {cpu['isa']['summary']} "
        f"({', '.join(k for k, v in cpu['isa']['flags'].items() if v)}); torch {env['versions']['torch']}; {threads} thread(s). "
        f"Load average at start {tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in os.getloadavg())} (shared machine).",
        "",
        f"{args.rounds} interleaved rounds (one timed repeat of ≥ {args.min_time} s per row per round). paired ×: median over rounds of row ÷ eager fp32 in the same round.",
        "",
        "| batch | setting | images/s (median) | min–max | paired × vs eager fp32 | compile s |",
        "|---:|---|---:|---|---:|---:|",
    ]
    for b in batches:
        base = samples[(0, b)]
        for i, (name, _) in enumerate(rows):
            s = samples[(i, b)]
            paired = statistics.median([x / e for x, e in zip(s, base)])
            cs = compile_s.get((i, b))
            lines.append(
                f"| {b} | {name} | {statistics.median(s):,.0f} | {min(s):,.0f}–{max(s):,.0f} | {paired:.2f}× | {f'{cs:.1f}' if cs is not None else '—'} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
