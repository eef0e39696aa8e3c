"""Does a default ``accelkit bench`` fit its time budget? And what do threads do on a busy CPU?

Runs the default benchmark matrix of ``accelkit bench`` on the DCGAN 3x64x64 generator
(the bundled checkpoint when present, else the same architecture freshly initialised:
speed does not depend on the weights): torch fp32, ort fp32 and ort fp16 at batch
sizes 1 and 8, with the harness defaults (warm-up 3, 5 repeats, 0.5 s per repeat).

Target: export + fp16 + bench in well under 120 s on 2 CPU cores. With ``--threads`` it
also measures each backend at 1 thread, which shows how much the default thread count
(all physical cores) loses when other processes compete for the cores.

Usage::

    python benchmarks/bench_budget.py [--threads] [--out benchmarks/results/bench_budget_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.artifact import Artifact
from accelkit.benchmark import BenchTarget, run_benchmark
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.fp16 import Fp16
from accelkit.spec import GeneratorSpec, InputSpec

BUDGET_S = 120.0


def _generator() -> tuple[Artifact, str]:
    try:
        from accelkit.loading import load_generator

        return load_generator(None), "bundled DCGAN checkpoint"
    except Exception as exc:
        import torch

        from accelkit.models.dcgan import DCGANGenerator

        torch.manual_seed(0)
        module = DCGANGenerator().eval()
        spec = GeneratorSpec(
            inputs=(InputSpec("z", "latent", (module.z_dim,)),), output_shape=(3, 64, 64)
        )
        return Artifact(
            format="torch", spec=spec, module=module, source="dcgan-random"
        ), f"DCGAN architecture, random weights ({exc})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", action="store_true", help="also measure every backend at 1 thread")
    ap.add_argument("--out", type=Path, default=None, help="write a Markdown summary here")
    args = ap.parse_args()

    load1 = os.getloadavg()[0]
    torch_art, what = _generator()
    tmp = Path(tempfile.mkdtemp(prefix="accelkit-budget-"))
    t0 = time.perf_counter()
    onnx_art = OnnxFromTorch(tmp / "g.onnx")(torch_art)
    fp16_art = Fp16(tmp / "g.fp16.onnx")(onnx_art)
    t_export = time.perf_counter() - t0
    targets = [
        BenchTarget("torch", torch_art),
        BenchTarget("ort", onnx_art),
        BenchTarget("ort", fp16_art),
    ]
    t1 = time.perf_counter()
    rep = run_benchmark(targets, (1, 8), flops_model=onnx_art.path)
    t_bench = time.perf_counter() - t1
    total = t_export + t_bench
    written = rep.write(tmp / "report")

    lines = [
        "# Default `accelkit bench` time budget (CPU)",
        "",
        f"Generator: {what}. Load average at start: {load1:.1f} on {os.cpu_count()} cores.",
        "",
        f"- export + fp16: {t_export:.1f} s",
        f"- bench (6 rows, defaults): {t_bench:.1f} s",
        f"- total: {total:.1f} s (budget {BUDGET_S:.0f} s: {'OK' if total < BUDGET_S else 'OVER'})",
        "",
        written["md"].read_text().split("\n", 2)[2],
    ]
    if args.threads:
        one = [
            BenchTarget(t.backend, t.artifact, options={"threads": 1}, variant="1thread")
            for t in targets
        ]
        rep1 = run_benchmark(one, (1, 8), flops_model=onnx_art.path)
        lines += [
            "",
            "## Same rows at 1 thread",
            "",
            "| backend | precision | batch | images/s (default threads) | images/s (1 thread) |",
            "|---|---|---:|---:|---:|",
        ]
        for a, b in zip(rep.rows, rep1.rows):
            lines.append(
                f"| {a.backend} | {a.precision} | {a.batch_size} | {a.images_per_sec or 0:.1f} | {b.images_per_sec or 0:.1f} |"
            )
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return 0 if total < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
