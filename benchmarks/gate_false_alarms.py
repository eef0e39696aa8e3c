#!/usr/bin/env python
"""Measure ``accelkit compare`` on real benches: false alarms on an unchanged build, detections of a slowed one.

Every bench below really runs (:func:`accelkit.benchmark.suite.run_benchmark`, the library
behind ``accelkit bench``): torch eager fp32 and ONNX Runtime CPU fp32 at batch sizes
1 and 8 (4 rows), each row ``--repeats`` timed repeats of ``--min-time`` seconds after 3
warm-up iterations. Each bench's report goes through JSON (``Report.to_json`` then
``Report.from_dict``), as ``accelkit compare`` reads files, and is compared by
:func:`accelkit.gate.compare.compare_reports` at each ``--thresholds`` value. A trial
"alarms" when the comparison's exit code is 1: a false alarm for the unchanged build, a
detection for the slowed one.

Part 1, interleaved A/B (the pass/fail measurement). Each trial measures the baseline
build (A) and the current build (B) row by row: in each of ``--rounds`` rounds, every
(backend, batch size) row is benched for A and for B back to back (one
``run_benchmark`` call each, alternating which goes first), and each side's rounds are
merged (:func:`accelkit.gate.ratio_gate.merge_reports`) into one report of
``--rounds`` x ``--repeats`` samples per row. Both sides' samples of a row thus span
the same seconds. This is how two builds must be compared on a machine whose speed
changes from second to second: then the repeats carry the machine's noise and the
bootstrap interval can account for it. ``--unchanged`` trials use B = A; ``--slowed``
trials use the slowed build.

Part 2, sequential with one committed baseline (documented, not a criterion). One
baseline bench, then ``--seq-unchanged`` unchanged and ``--seq-slowed`` slowed benches,
each in its own fresh Python process, compared with that one baseline: what
``accelkit compare`` faces on a shared machine when the baseline was measured at
another time. On the 2-core machine shared with other developers, the speed available to
one thread changed by up to 2x between runs (other tenants' jobs start and stop; raising
the bench's priority with nice did not help), which no interval computed from one run can
see: three exploratory runs of this part at a load average of ~5, while this script was
being written, gave unchanged/baseline ratios from 0.28 to 1.64 and false alarms (5 %,
rule b) in 2 of 2, 4 of 4 and 0 of 4 unchanged benches; in quiet stretches it gives none.
That is why this project's own CI uses the in-run ratio (``benchmarks/ci_perf_gate.py``)
and why the GPU workflow (``.github/workflows/perf-regression.yml``) runs on a dedicated
self-hosted runner with one job at a time.

The slowed build: both runners are subclassed (``ci_perf_gate._slowed``) so that
``run()`` does the real work (and synchronizes), then busy-waits (a
``time.perf_counter()`` loop holding the CPU) until ``1 + --slow-factor`` times the
real work's duration has passed. With the default 0.25, each iteration takes 1.25x as
long: images/sec x 0.8, a 20 % slowdown that costs CPU like real extra work. The achieved
slowdown is reported from the measurements.

Threads: both backends run with one intra-op thread. With torch's default 2 OpenMP
threads on this loaded 2-core machine, torch eager ran up to 30x slower than with one
thread (threads spinning at barriers get descheduled), which turns its rows into noise;
the gate's statistics are what is measured here, not the backends' best speed.

Output: a Markdown report (``--md``) with the command, machine, settings, totals and
every trial, and the raw per-bench samples as JSON (``--json``).

Usage (about 8 minutes on the 2-core machine; the results folder has the last run)::

    nohup python benchmarks/gate_false_alarms.py > /tmp/gate.log 2>&1 &
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from accelkit.artifact import Artifact  # noqa: E402
from accelkit.benchmark.environment import collect_environment  # noqa: E402
from accelkit.benchmark.report import Report  # noqa: E402
from accelkit.benchmark.suite import BenchTarget, run_benchmark  # noqa: E402
from accelkit.gate.compare import Comparison, compare_reports  # noqa: E402
from accelkit.gate.ratio_gate import merge_reports  # noqa: E402
from ci_perf_gate import _slowed, export_fp32, load_dcgan  # noqa: E402

BATCHES = (1, 8)


# ------------------------------------------------------------------------ benches
@contextlib.contextmanager
def slowed_build(factor: float, enabled: bool = True) -> Iterator[None]:
    """Within the block, the ``torch`` and ``ort`` backends are the slowed build."""
    from accelkit.runners import base
    from accelkit.runners.ort_runner import OrtRunner
    from accelkit.runners.torch_runner import TorchRunner

    saved = dict(base.RUNNERS)
    if enabled:
        globals()["_SlowTorch"] = _slowed(TorchRunner, factor)
        globals()["_SlowOrt"] = _slowed(OrtRunner, factor)
        base.RUNNERS["torch"] = f"{__name__}:_SlowTorch"
        base.RUNNERS["ort"] = f"{__name__}:_SlowOrt"
    try:
        yield
    finally:
        base.RUNNERS.clear()
        base.RUNNERS.update(saved)


def bench(
    targets: list[BenchTarget], args: argparse.Namespace, *, slowed: bool, env: dict[str, Any] | None = None, batches: tuple[int, ...] = BATCHES
) -> Report:
    """One bench of ``targets`` at ``batches``, as JSON would carry it."""
    with slowed_build(args.slow_factor, enabled=slowed):
        rep = run_benchmark(targets, batches, warmup=3, repeats=args.repeats, min_time_s=args.min_time, report=Report(environment=env))
    rep.settings["build"] = f"slowed x{1 + args.slow_factor:g} busy-wait" if slowed else "unchanged"
    return Report.from_dict(json.loads(rep.to_json()))


def ab_trial(targets: list[BenchTarget], args: argparse.Namespace, *, slowed: bool, env: dict[str, Any]) -> tuple[Report, Report]:
    """Part 1: A (unchanged) and B (``slowed`` or unchanged) measured row by row, interleaved.

    In each of ``args.rounds`` rounds, every (backend, batch size) row is measured for A
    and for B back to back, alternating which goes first; each side's rounds are then
    merged into one report (``args.rounds * args.repeats`` samples per row) that goes
    through JSON as a results.json would.
    """
    a_reps: list[Report] = []
    b_reps: list[Report] = []
    for r in range(args.rounds):
        for j, t in enumerate(targets):
            for k, b in enumerate(BATCHES):
                order = (False, True) if (r + j + k) % 2 == 0 else (True, False)
                for is_b in order:
                    rep = bench([t], args, slowed=(is_b and slowed), env=env, batches=(b,))
                    (b_reps if is_b else a_reps).append(rep)
    base, cur = merge_reports(a_reps), merge_reports(b_reps)
    return Report.from_dict(json.loads(base.to_json())), Report.from_dict(json.loads(cur.to_json()))


def make_targets(torch_art: Artifact, onnx_art: Artifact, threads: int) -> list[BenchTarget]:
    """torch eager fp32 and ort fp32, ``threads`` intra-op threads each."""
    opts = {"precision": "fp32", "threads": threads}
    return [BenchTarget("torch", torch_art, dict(opts)), BenchTarget("ort", onnx_art, dict(opts))]


def _worker(args: argparse.Namespace) -> int:
    from accelkit.loading import load_generator

    torch_art, _ = load_dcgan()
    rep = bench(make_targets(torch_art, load_generator(args.onnx), args.threads), args, slowed=args.slow)
    args.worker.write_text(rep.to_json())
    return 0


def _spawn(onnx_path: Path, out: Path, args: argparse.Namespace, slowed: bool) -> Report:
    cmd = [
        sys.executable, __file__, "--worker", str(out), "--onnx", str(onnx_path), "--repeats", str(args.seq_repeats),
        "--min-time", str(args.min_time), "--threads", str(args.threads), "--slow-factor", str(args.slow_factor),
    ]  # fmt: skip
    if slowed:
        cmd.append("--slow")
    subprocess.run(cmd, check=True, cwd=ROOT)
    return Report.load(out)


def _plan(unchanged: int, slowed: int) -> list[str]:
    plan: list[str] = []
    while unchanged or slowed:
        for _ in range(2):
            if unchanged:
                plan.append("unchanged")
                unchanged -= 1
        if slowed:
            plan.append("slowed")
            slowed -= 1
    return plan


# ---------------------------------------------------------------------- tallying
def rule_a_rows(comp: Comparison, thr: float) -> int:
    """Rows the looser rule (a) flags: point slowdown > thr and the whole interval below 1 (or failed)."""
    return sum(1 for r in comp.rows if (r.ratio is not None and r.ci_high is not None and r.ratio < 1 - thr and r.ci_high < 1) or r.verdict == "failed")


class Tally:
    """Bench-level and row-level alarm counts per (kind, threshold, rule)."""

    def __init__(self) -> None:
        self.t: dict[tuple[str, float, str], list[int]] = {}
        self.ratios: dict[str, list[float]] = {"unchanged": [], "slowed": []}

    def add(self, kind: str, comps: dict[float, Comparison]) -> None:
        first = True
        for thr, comp in comps.items():
            if first:
                self.ratios[kind] += [r.ratio for r in comp.rows if r.ratio is not None]
                first = False
            rb = sum(1 for r in comp.rows if r.fails(False))
            ra = rule_a_rows(comp, thr)
            for rule, rows in (("b", rb), ("a", ra)):
                t = self.t.setdefault((kind, thr, rule), [0, 0, 0, 0])
                t[0] += int(rows > 0)
                t[1] += rows
                t[2] += len(comp.rows)
                t[3] += 1

    def table(self, thresholds: list[float]) -> list[str]:
        lines = [
            "| --max-slowdown | rule | false alarms (unchanged trials) | false alarms (rows) | detections (slowed trials) | detections (rows) |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for thr in thresholds:
            for rule in ("b", "a"):
                fu = self.t.get(("unchanged", thr, rule), [0, 0, 0, 0])
                fs = self.t.get(("slowed", thr, rule), [0, 0, 0, 0])
                name = "(b) accelkit" if rule == "b" else "(a) for comparison"
                lines.append(f"| {thr * 100:g}% | {name} | {fu[0]}/{fu[3]} | {fu[1]}/{fu[2]} | {fs[0]}/{fs[3]} | {fs[1]}/{fs[2]} |")
        return lines

    def ratio_line(self) -> str:
        def d(xs: list[float]) -> str:
            if not xs:
                return "none"
            s = sorted(xs)
            return f"median {s[len(s) // 2]:.3f} (min {s[0]:.3f}, max {s[-1]:.3f}, {len(s)} rows)"

        return f"current/baseline images/sec ratio, unchanged: {d(self.ratios['unchanged'])}; slowed: {d(self.ratios['slowed'])}"


def trial_row(i: int, kind: str, load: float, comps: dict[float, Comparison]) -> str:
    first = next(iter(comps.values()))
    cells = [f"{r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] {r.verdict}" if r.ratio is not None else r.verdict for r in first.rows]
    exits = [str(c.exit_code) for c in comps.values()]
    return f"| {i} | {kind} | {load:.1f} | " + " | ".join(cells) + " | " + " | ".join(exits) + " |"


def trial_header(comps: dict[float, Comparison]) -> list[str]:
    first = next(iter(comps.values()))
    names = [f"{r.key.backend} b{r.key.batch_size}" for r in first.rows]
    head = "| # | build | load 1m | " + " | ".join(f"{n} ratio [95% CI] verdict" for n in names) + " | " + " | ".join(f"exit @{t * 100:g}%" for t in comps) + " |"
    return [head, "|" + "---|" * (3 + len(names) + len(comps))]


def _raw(rep: Report) -> list[dict[str, Any]]:
    return [{"row": f"{r.label} {r.precision} b{r.batch_size}", "status": r.status, "samples": [round(x, 3) for x in r.images_per_sec_samples]} for r in rep.rows]


# -------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the measurement and write the report; returns 0 (the numbers are the result)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--unchanged", type=int, default=20, help="part 1: interleaved trials of the unchanged build (default: %(default)s)")
    ap.add_argument("--slowed", type=int, default=8, help="part 1: interleaved trials of the slowed build (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="part 1: interleaved rounds per trial (default: %(default)s)")
    ap.add_argument("--seq-unchanged", type=int, default=4, help="part 2: sequential unchanged benches (default: %(default)s)")
    ap.add_argument("--seq-slowed", type=int, default=2, help="part 2: sequential slowed benches (default: %(default)s)")
    ap.add_argument("--seq-repeats", type=int, default=5, help="part 2: timed repeats per row (default: %(default)s)")
    ap.add_argument("--slow-factor", type=float, default=0.25, help="extra busy-wait per iteration, fraction of its duration (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats per row per bench (default: %(default)s)")
    ap.add_argument("--min-time", type=float, default=0.15, help="seconds per repeat (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per backend (default: %(default)s)")
    ap.add_argument("--thresholds", default="0.05,0.10", help="--max-slowdown values to evaluate (default: %(default)s)")
    ap.add_argument("--md", type=Path, default=HERE / "results" / "gate_false_alarms.md")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "gate_false_alarms.json")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--onnx", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--slow", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        return _worker(args)
    thresholds = [float(x) for x in args.thresholds.split(",")]
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])])
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    loads: list[float] = []
    torch_art, origin = load_dcgan()
    env = collect_environment()
    raw: dict[str, Any] = {"command": cmd, "started": started, "environment": env, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="accelkit-gate-fa-") as tmp_s:
        tmp = Path(tmp_s)
        onnx_art = export_fp32(torch_art, tmp)
        targets = make_targets(torch_art, onnx_art, args.threads)
        # The export leaves ~10^6 long-lived Python objects; without this the harness's
        # gc.collect() before each row costs ~0.45 s (untimed, but it doubles the run time).
        gc.collect()
        gc.freeze()

        # ---------------------------------------------------------------- part 1
        bench(targets, args, slowed=False, env=env)  # warm-up bench, discarded (first-in-process effects)
        p1 = Tally()
        p1_rows: list[str] = []
        p1_raw: list[dict[str, Any]] = []
        header1: list[str] = []
        for i, kind in enumerate(_plan(args.unchanged, args.slowed), start=1):
            base, cur = ab_trial(targets, args, slowed=(kind == "slowed"), env=env)
            load = os.getloadavg()[0]
            loads.append(load)
            comps = {thr: compare_reports(base, cur, max_slowdown=thr) for thr in thresholds}
            p1.add(kind, comps)
            header1 = header1 or trial_header(comps)
            p1_rows.append(trial_row(i, kind, load, comps))
            p1_raw.append({"trial": i, "kind": kind, "load_1m": round(load, 2), "baseline": _raw(base), "current": _raw(cur), "comparison": comps[thresholds[0]].to_dict()})
            print(f"[{time.perf_counter() - t0:6.1f} s] part 1 trial {i} {kind}: exit " + ", ".join(f"{t:g}->{c.exit_code}" for t, c in comps.items()), flush=True)
        t1 = time.perf_counter()

        # ---------------------------------------------------------------- part 2
        p2 = Tally()
        p2_rows: list[str] = []
        p2_raw: list[dict[str, Any]] = []
        header2: list[str] = []
        seq_base: Report | None = None
        plan2 = _plan(args.seq_unchanged, args.seq_slowed)
        if plan2:
            onnx_path = Path(onnx_art.path) if onnx_art.path is not None else tmp / "dcgan.onnx"
            seq_base = _spawn(onnx_path, tmp / "seq_base.json", args, slowed=False)
            p2_raw.append({"bench": 0, "kind": "baseline", "rows": _raw(seq_base)})
            for i, kind in enumerate(plan2, start=1):
                cur = _spawn(onnx_path, tmp / f"seq{i:02d}.json", args, slowed=(kind == "slowed"))
                load = os.getloadavg()[0]
                loads.append(load)
                comps = {thr: compare_reports(seq_base, cur, max_slowdown=thr) for thr in thresholds}
                p2.add(kind, comps)
                header2 = header2 or trial_header(comps)
                p2_rows.append(trial_row(i, kind, load, comps))
                p2_raw.append({"bench": i, "kind": kind, "load_1m": round(load, 2), "rows": _raw(cur), "comparison": comps[thresholds[0]].to_dict()})
                print(f"[{time.perf_counter() - t0:6.1f} s] part 2 bench {i} {kind}: exit " + ", ".join(f"{t:g}->{c.exit_code}" for t, c in comps.items()), flush=True)
    total = time.perf_counter() - t0
    cpu = env.get("cpu", {})
    vers = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v and k in ("torch", "onnxruntime"))
    lines = [
        "# `accelkit compare` on real benches: false alarms and detections",
        "",
        f"Command: `{cmd}` (from the repository root), started {started}, {total / 60:.1f} min in all "
        f"(part 1 {(t1 - t0) / 60:.1f} min).",
        "",
        f"Machine: {cpu.get('model', '?')} with {cpu.get('available_cores', '?')} cores available, shared with other developers "
        f"working at the same time (1-minute load average {min(loads, default=0):.1f} to {max(loads, default=0):.1f} during the run); "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, {vers}. No GPU.",
        "",
        f"Generator: {origin}. Rows: torch eager fp32 and ONNX Runtime CPU fp32 at batch sizes {', '.join(map(str, BATCHES))} (4 rows), "
        f"3 warm-up iterations, repeats of {args.min_time:g} s, {args.threads} intra-op thread per backend; "
        f"part 1: {args.rounds} rounds x {args.repeats} repeats per row and side; part 2: {args.seq_repeats} repeats per row. "
        f"Slowed build: each iteration does the real work, then busy-waits {args.slow_factor:g}x its duration (images/sec x {1 / (1 + args.slow_factor):.2f}).",
        "",
        "Rules: **(b)**, accelkit's: a row regresses when the whole 95% bootstrap interval of current/baseline images/sec "
        "(ratio of medians) lies below 1 − threshold. (a), for comparison only: the point estimate is below 1 − threshold and the "
        "interval lies entirely below 1. A trial alarms when any of its 4 rows does (exit code 1).",
        "",
        f"## Part 1: interleaved A/B, row by row, {args.rounds} rounds x {args.repeats} repeats per side (the measurement of the gate)",
        "",
        *p1.table(thresholds),
        "",
        p1.ratio_line() + ".",
        "",
    ]
    if p2.t:
        lines += [
            "## Part 2: one baseline, then sequential benches in fresh processes (what a stale baseline meets on a shared machine)",
            "",
            *p2.table(thresholds),
            "",
            p2.ratio_line() + ".",
            "",
            "Part 2 is not a criterion. Benches run minutes apart meet whatever else the machine is doing at the time; on this shared "
            "machine that changed the speed of one thread by up to 2x between runs while this script was being developed (see its "
            "docstring), and no interval computed from one run can see it. Part 2's result therefore depends on the other tenants' "
            "activity during the run; part 1's does not. This is why this project's CPU CI gates on the in-run ratio "
            "(benchmarks/ci_perf_gate.py) and the GPU workflow runs on a dedicated runner, one job at a time.",
            "",
        ]
    lines += ["## Every trial, part 1", "", *header1, *p1_rows, ""]
    if p2_rows:
        base_txt = ", ".join(f"{r.label} b{r.batch_size} {r.images_per_sec:.1f} img/s" for r in seq_base.rows if r.images_per_sec) if seq_base else ""
        lines += ["## Every bench, part 2", "", f"Baseline bench: {base_txt}.", "", *header2, *p2_rows, ""]
    lines += [f"Raw samples: `{os.path.relpath(args.json, ROOT)}`.", ""]
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text("\n".join(lines))
    raw.update(total_seconds=round(total, 1), part1=p1_raw, part2=p2_raw)
    args.json.write_text(json.dumps(raw, indent=1) + "\n")
    print("\n".join(p1.table(thresholds)))
    if p2.t:
        print("\n".join(p2.table(thresholds)))
    print(f"wrote {args.md} and {args.json} in {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
