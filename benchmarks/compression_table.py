#!/usr/bin/env python
"""fp32 / fp16 / int8 / pruned+distilled on the bundled DCGAN: speed and quality in one table.

Runs (unless ``--from-results``):

1. ``accelkit prune dcgan --ratio 0.5 --distill-steps 1500 -o WORK/dcgan.pruned.pt``
2. ``accelkit bench dcgan --precision fp32,fp16,int8 --batch 1,32 --fid 500 --threads 1 --out WORK/teacher``
3. ``accelkit bench WORK/dcgan.pruned.pt --precision fp32 --batch 1,32 --fid 500 --threads 1 --reference dcgan --out WORK/pruned``

then writes a Markdown table (images/sec at batch 1 and 32, paired PSNR, FID drift vs
the FP32 teacher and the noise floor) from the two ``results.json`` files.

Usage::

    python benchmarks/compression_table.py --work /tmp/p5 --out benchmarks/results/compression_dcgan_cpu.md
    python benchmarks/compression_table.py --work /tmp/p5 --from-results --out ...   # only assemble
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

COMMANDS = [
    ["prune", "dcgan", "--ratio", "0.5", "--distill-steps", "1500", "-o", "{work}/dcgan.pruned.pt", "--force"],
    ["bench", "dcgan", "--precision", "fp32,fp16,int8", "--batch", "1,32", "--fid", "500", "--threads", "1", "--out", "{work}/teacher"],
    ["bench", "{work}/dcgan.pruned.pt", "--precision", "fp32", "--batch", "1,32", "--fid", "500", "--threads", "1",
     "--reference", "dcgan", "--out", "{work}/pruned"],
]  # fmt: skip


def _rows(path: Path, label_prefix: str = "") -> dict[str, dict[int, dict]]:
    data = json.loads((path / "results.json").read_text())
    out: dict[str, dict[int, dict]] = {}
    for r in data["rows"]:
        if r["status"] != "ok":
            continue
        label = f"{label_prefix}{r['backend']} {r['precision']}"
        out.setdefault(label, {})[r["batch_size"]] = r
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--from-results", action="store_true", help="skip the runs; assemble from WORK/teacher and WORK/pruned")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.from_results:
        for cmd in COMMANDS:
            subprocess.run([sys.executable, "-m", "accelkit.cli", *[c.format(work=args.work) for c in cmd]], check=True)
    rows = {**_rows(args.work / "teacher"), **_rows(args.work / "pruned", "pruned+distilled ")}
    base = rows["torch fp32"]
    lines = [
        "# Compression on the bundled DCGAN (CPU): fp32 / fp16 / int8 / pruned + distilled",
        "",
        f"Machine: {platform.machine()} 2-core shared developer VM, no GPU; 1 thread per backend (`--threads 1`).",
        "Commands (run by `python benchmarks/compression_table.py --work DIR --out FILE`):",
        "",
        *[f"    accelkit {' '.join(c).replace('{work}', 'DIR')}" for c in COMMANDS],
        "",
        "Quality is measured against the FP32 torch teacher on the same 500 latents; the noise floor is the FID",
        "between the teacher on two disjoint 500-latent sets (a drift inside it is not a drift).",
        "",
        "| build | img/s b1 | img/s b32 | vs torch fp32 b1 | vs torch fp32 b32 | PSNR dB | FID drift | noise floor | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, by_b in rows.items():
        r1, r32 = by_b.get(1), by_b.get(32)
        any_r = r1 or r32 or {}
        ips = [x["images_per_sec"] if x else None for x in (r1, r32)]
        sp = [(x["images_per_sec"] / base[b]["images_per_sec"]) if x and b in base else None for x, b in ((r1, 1), (r32, 32))]
        psnr = any_r.get("psnr_db")
        lines.append(
            f"| {label} | {ips[0] or 0:,.1f} | {ips[1] or 0:,.1f} | {sp[0] or 0:.2f}× | {sp[1] or 0:.2f}× | "
            f"{'∞' if psnr is None and any_r.get('drift_verdict') == 'reference' else f'{psnr:.1f}' if psnr is not None else '—'} | "
            f"{any_r.get('fid_drift', float('nan')):.3f} | {any_r.get('noise_floor_fid', float('nan')):.2f} | {any_r.get('drift_verdict')} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
