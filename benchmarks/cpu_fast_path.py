#!/usr/bin/env python
"""The CPU fast path, measured in one interleaved run: torch, ONNX Runtime and OpenVINO on one generator.

For one generator (``--generator``, a bundled name or a file) and its ONNX exports made by
accelkit (fp32 and the int8 Q/DQ file, the *same* files for ONNX Runtime and OpenVINO),
this measures every CPU row side by side:

* torch eager fp32 (the baseline), torch bf16 (where the CPU has native bf16),
  ``torch.compile`` with accelkit's CPU settings;
* ONNX Runtime fp32 and int8;
* OpenVINO fp32 (f32 hint), bf16 (bf16 hint, native-bf16 CPUs), int8 (f32 hint for the
  float parts) and int8 with the bf16 hint.

**Interleaved**: every runner is activated once (compilation outside timing); then each of
``--rounds`` rounds measures every row once (one repeat of ``--min-time`` seconds after
``--warmup`` iterations) at every batch size, in rotating order, so load from other
processes hits every row alike. Each row's samples are its rounds; besides the median
images/sec, the speed-up is given as the median over rounds of the *paired* ratio (row /
eager in the same round), which a slow drift of a shared machine does not bias.

With ``--fid N`` every row gains paired PSNR / max error and FID/KID drift against the
torch fp32 reference on the same N latents, with the noise floor (reference on two
disjoint sets), through accelkit's own ``bench --fid`` code (:func:`measure_quality`).

Writes the accelkit report folder (``results.json/md/csv``; rows judged ``unstable`` as
``accelkit bench`` does) to ``--out`` and a summary table to ``--table``.

Usage::

    python benchmarks/cpu_fast_path.py --generator dcgan --batch 1,32 --fid 250 \\
        --out benchmarks/results/cpu_fast_path_dcgan --table benchmarks/results/cpu_fast_path_dcgan.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.benchmark.harness import Latency, measure_throughput
from accelkit.benchmark.plan import BenchOptions
from accelkit.benchmark.report import Report
from accelkit.benchmark.suite import BenchTarget
from accelkit.host import busy_cores, default_threads, has_native_bf16
from accelkit.loading import load_generator
from accelkit.options import FidSettings
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.int8 import Int8
from accelkit.pipelines.bench import measure_quality
from accelkit.runners import available_backends, create_runner
from accelkit.sampler import LatentSampler


def targets_for(art: Any, fp32: Any, int8: Any, threads: int) -> list[BenchTarget]:
    """The rows, torch eager fp32 first (the baseline)."""
    t = {"threads": threads}
    bf16 = has_native_bf16()
    out = [BenchTarget("torch", art, {"precision": "fp32", **t})]
    if bf16:
        out.append(
            BenchTarget("torch", art, {"precision": "bf16", "channels_last": True, **t})
        )  # as accelkit bench runs CPU bf16
    out.append(
        BenchTarget("torch", art, {"precision": "fp32", "compile": True, **t}, variant="compile")
    )
    out += [BenchTarget("ort", fp32, dict(t)), BenchTarget("ort", int8, dict(t))]
    if "openvino" in available_backends("cpu"):
        out.append(BenchTarget("openvino", fp32, dict(t)))
        if bf16:
            out.append(BenchTarget("openvino", fp32, {"precision": "bf16", **t}))
        out.append(BenchTarget("openvino", int8, dict(t)))
        if bf16:
            out.append(
                BenchTarget(
                    "openvino", int8, {"inference_precision": "bf16", **t}, variant="bf16-hint"
                )
            )
    return out


def label(t: BenchTarget) -> str:
    prec = t.options.get("precision") or (t.artifact.precision if t.artifact is not None else "?")
    return f"{t.backend}{':' + t.variant if t.variant else ''} {prec}"


def merge(parts: list[Latency]) -> Latency:
    """One Latency from one-repeat rounds: samples and latencies concatenated, the worst round's contention."""
    first = parts[0]
    worst = max(
        (p.contention for p in parts if p.contention),
        key=lambda c: c["busy_cores_others"],
        default=None,
    )
    return Latency(
        batch_size=first.batch_size,
        device=first.device,
        warmup=first.warmup,
        iters_per_repeat=[n for p in parts for n in p.iters_per_repeat],
        latencies_ms=[x for p in parts for x in p.latencies_ms],
        images_per_sec_samples=[x for p in parts for x in p.images_per_sec_samples],
        timer=first.timer,
        peak_memory_mb=max(
            (p.peak_memory_mb for p in parts if p.peak_memory_mb is not None), default=None
        ),
        memory_kind=first.memory_kind,
        wall_seconds=sum(p.wall_seconds for p in parts),
        load_average_1m=max(
            (p.load_average_1m for p in parts if p.load_average_1m is not None), default=None
        ),
        contention=worst,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="dcgan")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for every row (default: accelkit's default_threads)",
    )
    ap.add_argument("--fid", type=int, default=0, help="images per set for quality drift (0: none)")
    ap.add_argument("--fid-precision", default="fp32")
    ap.add_argument("--calib", type=int, default=256, help="int8 calibration samples")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    busy0 = busy_cores()
    threads = args.threads or default_threads(busy0)
    load0 = os.getloadavg()

    out = Path(args.out)
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    art = load_generator(args.generator)
    name = art.name
    fp32 = OnnxFromTorch(out / "artifacts" / f"{name}.onnx", force=True)(art)
    int8 = Int8(out / "artifacts" / f"{name}.int8.onnx", force=True, calib_samples=args.calib)(fp32)
    targets = targets_for(art, fp32, int8, threads)
    labels = [label(t) for t in targets]

    runners = []
    for t in targets:
        r = create_runner(t.backend, t.artifact, device="cpu", **t.options)
        r.activate()
        runners.append(r)
    prepared_warm: set[tuple[int, int]] = set()
    parts: dict[tuple[int, int], list[Latency]] = {}
    for rnd in range(args.rounds):
        for b in batches:
            order = list(range(len(targets)))
            k = (rnd + b) % len(order)
            order = order[k:] + order[:k]
            for i in order:
                sampler = LatentSampler(targets[i].artifact.spec, seed=0, batch_size=b)
                warm = args.warmup if (i, b) in prepared_warm else max(args.warmup, 3)
                lat = measure_throughput(
                    runners[i], sampler, warmup=warm, repeats=1, min_time_s=args.min_time
                )
                prepared_warm.add((i, b))
                parts.setdefault((i, b), []).append(lat)
            print(
                f"round {rnd + 1}/{args.rounds} batch {b}: "
                + ", ".join(
                    f"{labels[i]} {parts[(i, b)][-1].images_per_sec:.0f}"
                    for i in range(len(targets))
                ),
                flush=True,
            )

    report = Report()
    report.settings.update(
        {
            "generator": args.generator,
            "batch_sizes": batches,
            "interleaved_rounds": args.rounds,
            "warmup": args.warmup,
            "min_time_s": args.min_time,
            "threads": threads,
            "busy_cores_at_start": busy0,
            "seed": 0,
            "device": "cpu",
            "command": "python benchmarks/cpu_fast_path.py " + " ".join(sys.argv[1:]),
        }
    )
    for i, t in enumerate(targets):
        info = runners[i].describe()
        for b in batches:
            report.add_result(info, merge(parts[(i, b)]), artifact=t.artifact, variant=t.variant)
    for r in runners:
        r.deactivate()
    report.compute_speedups()

    # paired per-round ratios vs torch eager fp32 (same round, same batch)
    paired: dict[tuple[int, int], list[float]] = {}
    for b in batches:
        base = [lat.images_per_sec_samples[0] for lat in parts[(0, b)]]
        for i in range(len(targets)):
            mine = [lat.images_per_sec_samples[0] for lat in parts[(i, b)]]
            paired[(i, b)] = [m / e for m, e in zip(mine, base)]

    fid_seconds = None
    if args.fid:
        cfg = BenchOptions(
            backends=("torch", "ort", "openvino"),
            fid=FidSettings(n=args.fid, precision=args.fid_precision),
            threads=threads,
            seed=0,
        )
        t0 = time.perf_counter()
        measure_quality(
            art, targets, report, cfg, "cpu", out, progress=lambda m: print(m, flush=True)
        )
        fid_seconds = time.perf_counter() - t0
    files = report.write(out, plot=False)
    total = time.perf_counter() - t_start
    load1 = os.getloadavg()

    # ----------------------------------------------------------------- summary table
    env = report.environment
    cpu = env["cpu"]
    rows = {(r.label, r.precision, r.batch_size): r for r in report.rows if r.status == "ok"}
    lines = [
        f"# CPU fast path: {args.generator}, one interleaved run",
        "",
        f"Command: `python benchmarks/cpu_fast_path.py {' '.join(sys.argv[1:])}`",
        "",
        f"Date: {started}. Machine: {cpu['model']}, {cpu['available_cores']} cores available (affinity {cpu['affinity']}); "
        f"ISA **{cpu['isa']['summary']}** ({', '.join(k for k, v in cpu['isa']['flags'].items() if v)}). "
        f"Versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items() if v)}. ",
        "",
        f"Threads: {threads} for every row (accelkit's default: {busy0:.2f} cores were busy with other processes at the start). "
        f"Load average at start {tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)}: "
        "a machine shared with other developers, so absolute numbers are pessimistic; compare within this table.",
        "",
        f"{args.rounds} interleaved rounds; per round and batch size every row runs {args.warmup} warm-up iterations and one timed repeat of "
        f"≥ {args.min_time} s, in rotating order. images/s: median over rounds (± half IQR). **paired ×**: median over rounds of "
        "(row ÷ torch eager fp32 in the same round), with its min–max. Rows marked unstable had rounds that disagree "
        "(CV > 0.10) or ran while the CPU was oversubscribed; their ratios are shown for the record but are not claims.",
        "",
    ]
    if args.fid:
        q = next((r.quality for r in report.rows if r.quality), {}) or {}
        lines.append(
            f"Quality: paired PSNR vs torch fp32 on the same latents, FID drift vs the noise floor (reference on two disjoint sets of N = {args.fid}), "
            f"extractor {q.get('extractor_name', '?')} ({q.get('feature_runtime', '?')} {q.get('feature_precision', '?')} features). "
            f"N = {args.fid} rather than 500 to fit the 2-core machine: the floor is larger at small N, so 'within floor' is a coarser test."
        )
        lines.append("")
    lines += [
        "| batch | row | images/s | paired × vs eager (min–max) | PSNR dB | FID drift | noise floor | verdict | stable |",
        "|---:|---|---:|---|---:|---:|---:|---|---|",
    ]
    best: dict[int, tuple[str, float, float]] = {}
    for b in batches:
        for i, lab in enumerate(labels):
            t = targets[i]
            prec = t.options.get("precision") or t.artifact.precision
            r = rows.get((f"{t.backend}{':' + t.variant if t.variant else ''}", prec, b))
            if r is None:
                continue
            pr = paired[(i, b)]
            half = (r.images_per_sec_spread or {}).get("iqr", 0.0) / 2
            psnr = (
                "∞"
                if r.psnr_db is not None and r.psnr_db == float("inf")
                else (f"{r.psnr_db:.1f}" if r.psnr_db is not None else "—")
            )
            fidd = f"{r.fid_drift:.3f}" if r.fid_drift is not None else "—"
            floor = f"{r.noise_floor_fid:.2f}" if r.noise_floor_fid is not None else "—"
            stable = "**unstable**: " + (r.unstable_reason or "") if r.unstable else "yes"
            lines.append(
                f"| {b} | {lab} | {r.images_per_sec:,.0f} ± {half:,.0f} | {statistics.median(pr):.2f}× ({min(pr):.2f}–{max(pr):.2f}) | {psnr} | {fidd} | {floor} | "
                f"{r.drift_verdict or '—'} | {stable} |"
            )
            ok_quality = (r.drift_verdict in ("within floor", "reference")) if args.fid else True
            if ok_quality and (b not in best or statistics.median(pr) > best[b][1]):
                best[b] = (lab, statistics.median(pr), r.images_per_sec)
    lines += ["", "## Best CPU build within the noise floor", ""]
    for b, (lab, ratio, ips) in best.items():
        lines.append(
            f"- batch {b}: **{lab}**, {ips:,.0f} images/s, **{ratio:.2f}×** torch eager fp32 (paired median)."
        )
    lines += ["", "## accelkit's best torch setting", ""]
    for b in batches:
        torch_rows = [
            (statistics.median(paired[(i, b)]), labels[i])
            for i, t in enumerate(targets)
            if t.backend == "torch"
        ]
        ratio, lab = max(torch_rows)
        lines.append(f"- batch {b}: **{lab}**, {ratio:.2f}× torch eager fp32 (paired median).")
    lines += [
        "",
        f"Report folder: `{out}` (results.json/md/csv). Timing + quality took {total / 60:.1f} min"
        + (f", of which quality drift {fid_seconds / 60:.1f} min." if fid_seconds else "."),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.table:
        args.table.write_text(text)
    print("wrote", ", ".join(str(p) for p in files.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
