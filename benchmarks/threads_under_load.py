#!/usr/bin/env python
"""Does the default thread count survive a loaded machine? torch eager and ORT at 1 thread, all cores, and accelkit's default.

Starts ``--spinners`` busy-looping processes (each keeps one core busy, like another
developer's job on a shared machine), then measures the bundled DCGAN at batch 1 and the
``--batch`` sizes with torch eager and ONNX Runtime at 1 thread, at every physical core, and at
:func:`accelkit.host.default_threads` (measured with the spinners running), interleaved
over ``--rounds`` rounds. Repeated for each spinner count given (``0,1``: a quiet and a loaded run).

Usage::

    python benchmarks/threads_under_load.py --spinners 0,1 --out benchmarks/results/threads_under_load.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.environment import collect_environment
from accelkit.benchmark.harness import measure_throughput
from accelkit.host import available_physical_cores, busy_cores, default_threads
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.runners import create_runner
from accelkit.sampler import LatentSampler
from accelkit.stats import cv

SPIN = "import time\nwhile True: pass\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spinners", default="0,1")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cores = available_physical_cores()
    batches = [int(b) for b in args.batch.split(",")]
    art = load_generator("dcgan")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx = OnnxFromTorch(Path(tmp) / "dcgan.onnx", verify=False, force=True)(art)
        for k in [int(x) for x in args.spinners.split(",")]:
            procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(k)]
            try:
                time.sleep(1.0)
                busy = busy_cores(1.0)
                chosen = default_threads(busy)
                settings = sorted({1, cores, chosen})
                rows = [(be, n) for be in ("torch", "ort") for n in settings]
                runners = {
                    (be, n): create_runner(be, art if be == "torch" else onnx, threads=n).activate()
                    for be, n in rows
                }
                got: dict[tuple[str, int, int], list[float]] = {}
                for rnd in range(args.rounds):
                    for b in batches:
                        order = rows[rnd % len(rows) :] + rows[: rnd % len(rows)]
                        for be, n in order:
                            lat = measure_throughput(
                                runners[(be, n)],
                                LatentSampler(art.spec, seed=0, batch_size=b),
                                warmup=3,
                                repeats=1,
                                min_time_s=args.min_time,
                            )
                            got.setdefault((be, n, b), []).append(lat.images_per_sec)
                for r in runners.values():
                    r.deactivate()
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            for b in batches:
                for be, n in rows:
                    s = got[(be, n, b)]
                    mark = " (default)" if n == chosen else ""
                    lines.append(
                        f"| {k} | {busy:.2f} | {be} | {b} | {n}{mark} | {statistics.median(s):,.0f} | {min(s):,.0f}–{max(s):,.0f} | {cv(s):.2f} |"
                    )
                    print(lines[-1], flush=True)
    env = collect_environment()
    cpu = env["cpu"]
    text = "\n".join(
        [
            "# Threads on a loaded machine: 1 thread vs all cores vs accelkit's default",
            "",
            f"Command: `python benchmarks/threads_under_load.py {' '.join(sys.argv[1:])}`",
            "",
            f"Date: {started}. Machine: {cpu['model']}, {cores} physical cores, ISA {cpu['isa']['summary']}; torch {env['versions']['torch']}, "
            f"onnxruntime {env['versions'].get('onnxruntime')}. Other developers' jobs also ran on this machine (load average now "
            f"{tuple(round(x, 2) for x in os.getloadavg())}), on top of the spinners this script starts.",
            "",
            "spinners: busy-looping processes started by the script; busy cores: other processes' CPU use measured by "
            "`accelkit.host.busy_cores` just before (spinners and everything else); default: `accelkit.host.default_threads` at that moment. "
            f"{args.rounds} interleaved rounds per row.",
            "",
            "| spinners | busy cores | backend | batch | threads | images/s (median) | min–max | CV |",
            "|---:|---:|---|---:|---|---:|---|---:|",
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
