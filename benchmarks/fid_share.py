#!/usr/bin/env python
"""How much of a ``bench --fid N`` run is spent in FID feature extraction, per feature runtime.

Runs the real ``accelkit bench`` pipeline (``accelkit.pipelines.bench.bench``) on the bundled
DCGAN with ``--backend torch,ort --precision fp32 --batch 1 --fid N`` (the torch fp32
reference, its noise floor and one accelerated row: 3N feature images) once per feature
runtime, each in a fresh cache (the extractor's ONNX export is copied in, so it is not
counted; no reference features are cached), and times every call of the feature extractor.

* ``ort fp32``: the runtime before this change (ONNX Runtime);
* ``openvino fp32``: the default now where OpenVINO is installed;
* ``openvino bf16``: ``--fid-precision bf16``.

Usage::

    python benchmarks/fid_share.py --fid 500 --out benchmarks/results/fid_share_cpu.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.environment import collect_environment
from accelkit.cache import CACHE_ENV, cache_dir
from accelkit.host import default_threads
from accelkit.quality import features as features_mod


def one_run(
    runtime: str, precision: str, n: int, threads: int, extractor_cache: Path
) -> dict[str, float]:
    from accelkit.benchmark.plan import BenchOptions
    from accelkit.options import FidSettings, Timing
    from accelkit.pipelines.bench import bench

    spent = {"s": 0.0, "images": 0}
    orig_call = features_mod.FeatureExtractor.__call__
    orig_ov = features_mod._openvino_available

    def timed(self, images):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = orig_call(self, images)
        spent["s"] += time.perf_counter() - t0
        spent["images"] += len(out)
        return out

    with tempfile.TemporaryDirectory(prefix="accelkit-fid-share-") as tmp:
        cache = Path(tmp) / "cache"
        shutil.copytree(extractor_cache, cache / "extractor")
        old_env = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = str(cache)
        features_mod.FeatureExtractor.__call__ = timed  # type: ignore[method-assign]
        if runtime == "ort":
            features_mod._openvino_available = lambda: False  # type: ignore[assignment]
        try:
            t0 = time.perf_counter()
            bench(
                "dcgan",
                BenchOptions(
                    backends=("torch", "ort"),
                    precisions=("fp32",),
                    batch_sizes=(1,),
                    out=Path(tmp) / "out",
                    timing=Timing(repeats=3, min_time_s=0.2),
                    plot=False,
                    fid=FidSettings(n=n, precision=precision),
                    threads=threads,
                ),
            )
            total = time.perf_counter() - t0
        finally:
            features_mod.FeatureExtractor.__call__ = orig_call  # type: ignore[method-assign]
            features_mod._openvino_available = orig_ov  # type: ignore[assignment]
            if old_env is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = old_env
    return {"total_s": total, "features_s": spent["s"], "images": spent["images"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fid", type=int, default=500)
    ap.add_argument("--runtimes", default="ort:fp32,openvino:fp32,openvino:bf16")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    threads = args.threads or default_threads()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load0 = os.getloadavg()
    features_mod.FeatureExtractor(
        backend="ort"
    ).load()  # make sure the extractor ONNX is cached (not timed)
    extractor_cache = cache_dir("extractor")
    rows = []
    for spec in args.runtimes.split(","):
        rt, prec = spec.split(":")
        got = one_run(rt, prec, args.fid, threads, extractor_cache)
        rows.append((f"{rt} {prec}", got))
        print(spec, got, flush=True)
    env = collect_environment()
    cpu = env["cpu"]
    lines = [
        f"# Share of `accelkit bench --fid {args.fid}` spent in FID features, per feature runtime",
        "",
        f"Command: `python benchmarks/fid_share.py {' '.join(sys.argv[1:])}`",
        "",
        f"Date: {started}. Machine: {cpu['model']}, {cpu['available_cores']} cores, ISA {cpu['isa']['summary']}; {threads} thread(s) "
        f"(accelkit's default at the start). Load average at start {tuple(round(x, 2) for x in load0)}, at end "
        f"{tuple(round(x, 2) for x in os.getloadavg())}: a shared machine, runs are sequential so load differs between them.",
        "",
        f"Each run: `bench dcgan --backend torch,ort --precision fp32 --batch 1 --fid {args.fid}` in a fresh cache (no cached reference features): "
        f"{3 * args.fid} feature images (reference sets A and B, the ort row).",
        "",
        "| feature runtime | bench wall s | in features s | share in features | feature images | features/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, g in rows:
        lines.append(
            f"| {name} | {g['total_s']:.0f} | {g['features_s']:.0f} | {100 * g['features_s'] / g['total_s']:.0f} % | {g['images']} | {g['images'] / g['features_s']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
