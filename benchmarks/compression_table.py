#!/usr/bin/env python
"""fp32 / fp16 / int8 / pruned+distilled on the bundled generators: speed and quality in one table.

For each generator G (unless ``--from-results``):

1. ``accelkit prune G --ratio 0.5 --distill-steps S --fid 500 --threads 2 -o WORK/G/G.pruned.pt``
   (FID drift vs the teacher before and after distillation, stored in the sidecar)
2. ``accelkit bench G --precision fp32,fp16,int8 --batch 1,32 --fid 500 --threads 1 --out WORK/G/teacher``
3. ``accelkit bench WORK/G/G.pruned.pt --precision fp32 --batch 1,32 --fid 500 --threads 1 --reference G --out WORK/G/pruned``

then writes one Markdown table (images/sec at batch 1 and 32, speed-up vs torch fp32,
paired PSNR, FID drift vs the FP32 teacher and the noise floor) from the results files.

Usage::

    python benchmarks/compression_table.py --work /tmp/p6 --out benchmarks/results/compression_cpu.md
    python benchmarks/compression_table.py --work /tmp/p6 --generators sr4x --distill-steps 400   # one generator
    python benchmarks/compression_table.py --work /tmp/p6 --generators stylegan2 --feature-loss stylegan2  # + feature-loss run
    python benchmarks/compression_table.py --work /tmp/p6 --from-results --out ...                # only assemble
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

GENERATORS = ("dcgan", "stylegan2", "sr4x")
#: Distillation steps per generator (batch 16). StyleGAN2 and sr4x cost ~1.8 s/step on 2 CPU cores.
DISTILL_STEPS = {"dcgan": 1500, "stylegan2": 400, "sr4x": 400}


def commands(gen: str, steps: int | str) -> list[list[str]]:
    w = f"{{work}}/{gen}"
    return [
        [
            "prune",
            gen,
            "--ratio",
            "0.5",
            "--distill-steps",
            str(steps),
            "--distill-time",
            "604800",  # the table measures S steps, not prune's default 60 s budget
            "--fid",
            "500",
            "--threads",
            "2",
            "-o",
            f"{w}/{gen}.pruned.pt",
            "--force",
        ],
        [
            "bench",
            gen,
            "--precision",
            "fp32,fp16,int8",
            "--batch",
            "1,32",
            "--fid",
            "500",
            "--threads",
            "1",
            "--out",
            f"{w}/teacher",
            "--force",
        ],
        [
            "bench",
            f"{w}/{gen}.pruned.pt",
            "--precision",
            "fp32",
            "--batch",
            "1,32",
            "--fid",
            "500",
            "--threads",
            "1",
            "--reference",
            gen,
            "--out",
            f"{w}/pruned",
            "--force",
        ],
    ]


def feature_loss_command(gen: str, steps: int | str) -> list[str]:
    """The distillation of step 1 again with ``--feature-loss 1`` (quality only: the model is the same size)."""
    return [
        "prune",
        gen,
        "--ratio",
        "0.5",
        "--distill-steps",
        str(steps),
        "--distill-time",
        "604800",
        "--feature-loss",
        "1",
        "--fid",
        "500",
        "--threads",
        "2",
        "-o",
        f"{{work}}/{gen}/feature_loss/{gen}.pruned.pt",
        "--force",
    ]


def _load(path: Path) -> dict:
    return json.loads((path / "results.json").read_text())


def _rows(data: dict, label_prefix: str = "") -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for r in data["rows"]:
        if r["status"] != "ok":
            continue
        out.setdefault(f"{label_prefix}{r['backend']} {r['precision']}", {})[r["batch_size"]] = r
    return out


def _failed(data: dict) -> dict[str, str]:
    """Builds that were planned but not measured because their conversion failed (label -> reason)."""
    return {
        f"{r['backend']} {r['precision']}": r.get("reason") or ""
        for r in data["rows"]
        if r["status"] != "ok"
        and r["backend"] == "ort"
        and "conversion failed" in (r.get("reason") or "")
    }


def _fmt(v: float | None, spec: str, none: str = "—") -> str:
    return none if v is None else format(v, spec)


def table(work: Path, gens: list[str]) -> list[str]:
    lines = [
        "| generator | build | params | img/s b1 | img/s b32 | vs torch fp32 b1 | vs torch fp32 b32 | PSNR dB | FID drift | noise floor | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for gen in gens:
        folder = work / gen
        if not (folder / "teacher" / "results.json").is_file():
            continue
        teacher = _load(folder / "teacher")
        rows = _rows(teacher)
        pruned_rows = (
            _rows(_load(folder / "pruned"), "pruned+distilled ")
            if (folder / "pruned" / "results.json").is_file()
            else {}
        )
        base = rows.get("torch fp32", {})
        side_path = folder / f"{gen}.pruned.accelkit.json"
        side = json.loads(side_path.read_text()) if side_path.is_file() else {}
        prune_rec = next((p for p in side.get("passes", []) if p.get("name") == "Prune"), {})
        quality = side.get("meta", {}).get("quality_vs_teacher", {})
        distill_rec = next((p for p in side.get("passes", []) if p.get("name") == "Distill"), {})
        for label, by_b in {**rows, **pruned_rows}.items():
            r1, r32 = by_b.get(1), by_b.get(32)
            r = r1 or r32 or {}
            ips = [x["images_per_sec"] if x else None for x in (r1, r32)]
            sp = [
                (x["images_per_sec"] / base[b]["images_per_sec"]) if x and b in base else None
                for x, b in ((r1, 1), (r32, 32))
            ]
            psnr = r.get("psnr_db")
            params = (
                prune_rec.get("params_after")
                if label.startswith("pruned")
                else prune_rec.get("params_before")
            )
            psnr_s = (
                "∞" if psnr is None and r.get("drift_verdict") == "reference" else _fmt(psnr, ".1f")
            )
            lines.append(
                f"| {gen} | {label} | {_fmt(params, ',')} | {_fmt(ips[0], ',.1f')} | {_fmt(ips[1], ',.1f')} | "
                f"{_fmt(sp[0], '.2f')}× | {_fmt(sp[1], '.2f')}× | {psnr_s} | {_fmt(r.get('fid_drift'), '.3f')} | "
                f"{_fmt(r.get('noise_floor_fid'), '.2f')} | {r.get('drift_verdict')} |"
            )
        for label, reason in _failed(teacher).items():
            lines.append(
                f"| {gen} | {label}: **not measured** — {reason.replace('|', '/')} | | | | | | | | | failed |"
            )
        if (
            "pruned" in quality
        ):  # the same pruned model before distillation (speed as the row above)
            q = quality["pruned"]
            floor = quality.get("noise_floor_fid")
            verdict = "within floor" if floor is not None and q["fid_drift"] <= floor else "drift"
            lines.append(
                f"| {gen} | pruned, not distilled (torch fp32) | {_fmt(prune_rec.get('params_after'), ',')} | — | — | — | — | "
                f"{_fmt(q.get('psnr_db'), '.1f')} | {_fmt(q.get('fid_drift'), '.3f')} | {_fmt(floor, '.2f')} | {verdict} |"
            )
        feat_path = folder / "feature_loss" / f"{gen}.pruned.accelkit.json"
        if feat_path.is_file():
            feat = json.loads(feat_path.read_text())
            fq = feat.get("meta", {}).get("quality_vs_teacher", {})
            fd = next((p for p in feat.get("passes", []) if p.get("name") == "Distill"), {})
            if "pruned+distilled" in fq:
                d = fq["pruned+distilled"]
                floor = fq.get("noise_floor_fid")
                verdict = (
                    "within floor" if floor is not None and d["fid_drift"] <= floor else "drift"
                )
                lines.append(
                    f"| {gen} | pruned+distilled with --feature-loss {fd.get('options', {}).get('feature_loss')} (torch fp32) | "
                    f"{_fmt(prune_rec.get('params_after'), ',')} | — | — | — | — | {_fmt(d.get('psnr_db'), '.1f')} | "
                    f"{_fmt(d.get('fid_drift'), '.3f')} | {_fmt(floor, '.2f')} | {verdict} |"
                )
        if distill_rec:
            lines.append(
                f"| {gen} | (distillation: {distill_rec.get('options', {}).get('steps')} steps, PSNR vs teacher "
                f"{distill_rec.get('psnr_before', 0):.1f} → {distill_rec.get('psnr_after', 0):.1f} dB on 64 held-out latents) "
                "| | | | | | | | | |"
            )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument(
        "--out", type=Path, default=None, help="Markdown file to write (default: print only)"
    )
    ap.add_argument(
        "--generators",
        default=",".join(GENERATORS),
        help="comma-separated bundled generators to run",
    )
    ap.add_argument(
        "--distill-steps",
        type=int,
        default=None,
        help="override the per-generator distillation steps",
    )
    ap.add_argument(
        "--from-results", action="store_true", help="skip the runs; assemble from WORK/<generator>/"
    )
    ap.add_argument(
        "--feature-loss",
        default="",
        help="comma-separated generators to also distill with --feature-loss 1 (WORK/<generator>/feature_loss/)",
    )
    args = ap.parse_args()
    gens = [g for g in args.generators.split(",") if g]
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.from_results:
        for gen in gens:
            (args.work / gen).mkdir(exist_ok=True)
            for cmd in commands(gen, args.distill_steps or DISTILL_STEPS[gen]):
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "accelkit.cli",
                        *[c.format(work=args.work) for c in cmd],
                    ],
                    check=True,
                )
        for gen in [g for g in args.feature_loss.split(",") if g]:
            (args.work / gen / "feature_loss").mkdir(parents=True, exist_ok=True)
            cmd = feature_loss_command(gen, args.distill_steps or DISTILL_STEPS[gen])
            subprocess.run(
                [sys.executable, "-m", "accelkit.cli", *[c.format(work=args.work) for c in cmd]],
                check=True,
            )
    lines = [
        "# Compression on the bundled generators (CPU): fp32 / fp16 / int8 / pruned + distilled",
        "",
        f"Machine: {platform.machine()} 2-core shared developer VM, no GPU; benches use 1 thread per backend (`--threads 1`).",
        "Commands per generator G (run by `python benchmarks/compression_table.py --work DIR --out FILE`):",
        "",
        *[f"    accelkit {' '.join(c).replace('{work}', 'DIR')}" for c in commands("G", "S")],
        "",
        'and, with `--feature-loss G` (the row "with --feature-loss"):',
        "",
        f"    accelkit {' '.join(feature_loss_command('G', 'S')).replace('{work}', 'DIR')}",
        "",
        f"Distillation steps (batch 16, Adam 1e-3, pixel L1): {', '.join(f'{g} {s}' for g, s in DISTILL_STEPS.items())}.",
        "Quality is measured against the FP32 torch teacher on the same 500 latents; the noise floor is the FID",
        "between the teacher on two disjoint 500-latent sets (a drift inside it is not a drift).",
        "",
        *table(args.work, gens if args.from_results else list(GENERATORS)),
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
