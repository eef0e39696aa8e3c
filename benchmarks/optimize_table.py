#!/usr/bin/env python
"""``accelkit optimize --budget floor`` on the bundled generators and a held-back SR model, then re-measured.

For each case ``NAME=GENERATOR@BATCH[+FLAGS]``:

1. ``accelkit optimize GENERATOR --budget floor --batch BATCH --time-budget T --fid N --out WORK/NAME``
   (with ``--allow-prune`` too when ``--prune`` names the case);
2. the commands the search printed to rebuild and re-measure the chosen build, run as
   printed: the build is made again from the generator and measured by ``accelkit bench
   --fid N --seed 1`` (a fresh latent set) against the FP32 torch model, with the noise
   floor of that fresh set;
3. one Markdown table: chosen build, its speed-up over torch eager fp32 (interleaved
   confirmation in the search), FID drift vs the noise floor in the search (seed 0) and
   in the re-measurement (seed 1), how the search spent its time, whether it finished
   within its budget; and, per generator, quantization alone vs with pruning.

Usage::

    python benchmarks/optimize_table.py --work /tmp/opt --out benchmarks/results/optimize_cpu.md \\
        --case dcgan-b1=dcgan@1 --case dcgan-b32=dcgan@32 --case sr4x-b1=sr4x@1 \\
        --case 'realesrgan-b1=/tmp/opt/RealESRGAN_lite_x4.pth@1+--arch=tests/fixtures/families.py:RRDBNet+--arch-kwargs={"num_feat":16,"num_block":2,"num_grow_ch":8}+--output-range=0,1' \\
        --prune dcgan-b1 --prune sr4x-b1

(the RealESRGAN file comes from ``python benchmarks/thirdparty_sr.py --out /tmp/opt/RealESRGAN_lite_x4.pth``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], log: Path, cwd: Path = ROOT) -> tuple[int, float]:
    t0 = time.monotonic()
    with open(log, "a") as fh:
        fh.write(f"$ (cd {cwd}) " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd).returncode
    return rc, time.monotonic() - t0


def parse_case(text: str) -> tuple[str, str, int, list[str]]:
    name, rest = text.split("=", 1)
    gen_batch, *flags = rest.split("+")
    gen, batch = gen_batch.rsplit("@", 1)
    extra: list[str] = []
    for f in flags:
        k, _, v = f.partition("=")
        extra += [k, v] if v else [k]
    return name, gen, int(batch), extra


def machine() -> str:
    sys.path.insert(0, str(ROOT))
    from accelkit.host import isa_summary

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, ISA {isa_summary()}, load average at start {os.getloadavg()[0]:.1f}"


def remeasure(record: dict, work: Path, log: Path) -> dict:
    """Run the search's own reproduce commands in ``work``; return the chosen build's row of the re-measurement."""
    for cmd in record["commands"]:
        argv = shlex.split(cmd)
        assert argv[0] == "accelkit", cmd
        rc, _ = run([sys.executable, "-m", "accelkit", *argv[1:], "--force"], log, cwd=work)
        if rc != 0:
            return {"error": f"`{cmd}` exited {rc} (see {log})"}
    data = json.loads((work / "remeasure" / "results.json").read_text())
    chosen = record["chosen"]["candidate"]
    rows = [
        r
        for r in data["rows"]
        if r["status"] == "ok"
        and r["backend"] == chosen["backend"]
        and r["precision"] == chosen["precision"]
    ]
    return rows[0] if rows else {"error": "the re-measurement has no row of the chosen build"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--case", action="append", required=True, help="NAME=GENERATOR@BATCH[+--flag=value...]"
    )
    ap.add_argument(
        "--prune", action="append", default=[], help="also run this case with --allow-prune"
    )
    ap.add_argument("--fid", type=int, default=500)
    ap.add_argument("--time-budget", default="20m")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--from-results", action="store_true", help="only assemble the table from WORK")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    log = a.work / "log.txt"
    header = [
        "# `accelkit optimize --budget floor` on this CPU",
        "",
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}. accelkit at `{_git_rev()}`.",
        "",
        "Command: `python benchmarks/optimize_table.py "
        + " ".join(shlex.quote(x) for x in sys.argv[1:])
        + "`",
        "",
    ]
    saved = a.work / "table_header.md"
    if (
        a.from_results
    ):  # the machine, date and revision of the run that measured, not of this assembly
        header = (
            saved.read_text().splitlines()
            if saved.is_file()
            else [
                *header[:2],
                f"(assembled from {a.work}; the run's machine and date were not recorded)",
                "",
            ]
        )
    else:
        saved.write_text("\n".join(header) + "\n")
    rows, prune_rows = [], []
    for case in a.case:
        name, gen, batch, extra = parse_case(case)
        for with_prune in [False, True] if name in a.prune else [False]:
            tag = f"{name}{'-prune' if with_prune else ''}"
            work = a.work / tag
            cmd = [
                sys.executable,
                "-m",
                "accelkit",
                "optimize",
                gen,
                "--budget",
                "floor",
                "--batch",
                str(batch),
                "--time-budget",
                a.time_budget,
                "--fid",
                str(a.fid),
                "--out",
                str(work / "opt"),
                *extra,
            ]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            if with_prune:
                cmd += ["--allow-prune"]
            wall = None
            if not a.from_results:
                work.mkdir(parents=True, exist_ok=True)
                rc, wall = run(cmd, log)
                if rc != 0:
                    rows.append((tag, f"optimize exited {rc}; see {log}"))
                    continue
            record = json.loads((work / "opt" / "optimize.json").read_text())
            re_row = (
                remeasure(record, work, log)
                if not a.from_results
                else json.loads((work / "remeasure" / "results.json").read_text())["rows"][0]
            )
            rows.append(
                (tag, _summary(record | {"case": f"{tag}, "}, re_row, batch, wall, a.time_budget))
            )
            if name in a.prune:
                prune_rows.append((name, with_prune, record))
    lines = header + [
        "| case | chosen build | img/s (search) | img/s (re-measured) | speed-up vs torch fp32 (interleaved, 95% CI) | FID drift / floor (search, seed 0) | re-measured FID drift / floor (seed 1) | verdict | search time (budget) |",
        "|---|---|---:|---:|---|---|---|---|---|",
    ]
    for tag, s in rows:
        lines.append(s if s.startswith("|") else f"| {tag} | {s} | | | | | | | |")
    if prune_rows:
        lines += [
            "",
            "## Quantization alone vs with pruning + distillation (same budget)",
            "",
            "| generator | search | chosen | img/s | FID drift / floor |",
            "|---|---|---|---:|---|",
        ]
        for name, with_prune, rec in prune_rows:
            c = rec["chosen"]
            lines.append(
                f"| {name} | {'with --allow-prune' if with_prune else 'quantization and runtimes only'} | {c['candidate']['id']} | "
                f"{c['images_per_sec']:.1f} | {_fmt(c.get('fid_drift'))} / {_fmt(rec.get('noise_floor_fid'))} |"
            )
    lines += [
        "",
        "Time spent per phase (seconds) is in each case's `optimize.json` (`seconds`); per-candidate decisions in its `results.md`/`optimize.json`.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) else "—"


def _summary(rec: dict, re_row: dict, batch: int, wall: float | None, budget: str) -> str:
    c = rec["chosen"]
    conf = rec.get("confirmation") or {}
    sp = (
        f"{conf['speedup']:.2f}x [{conf['speedup_low']:.2f}, {conf['speedup_high']:.2f}]"
        + (" (unstable)" if conf.get("unstable") else "")
        if conf
        else "—"
    )
    search = f"{_fmt(c.get('fid_drift'))} / {_fmt(rec.get('noise_floor_fid'))}"
    re_ips = re_row.get("images_per_sec")
    re_ips = f"{re_ips:.1f}" if isinstance(re_ips, (int, float)) else "—"
    if "error" in re_row:
        again, verdict = re_row["error"], "—"
    else:
        again = f"{_fmt(re_row.get('fid_drift'))} / {_fmt(re_row.get('noise_floor_fid'))}"
        verdict = re_row.get("drift_verdict") or "—"
    took = rec["seconds"].get("total", 0.0)
    return (
        f"| {rec.get('case', '')}batch {batch} | {c['candidate']['id']} | {c['images_per_sec']:.1f} | {re_ips} | {sp} | {search} | {again} | {verdict} | "
        f"{took:.0f} s ({budget}){'' if rec.get('complete', True) else ', stopped early'} |"
    )


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
