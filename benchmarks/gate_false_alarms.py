#!/usr/bin/env python
"""Measure every CI gate mode on this machine: false alarms on an unchanged build, detections of a 20 % slower one.

Three ways accelkit can gate a change, each run for real here, in the same cycles (one
trial of every mode per cycle, so all modes meet the same machine load):

``compare`` (cross-run)
    A baseline bench and a current bench, each in its own fresh Python process, back to
    back (what ``accelkit bench`` then ``accelkit compare BASELINE CURRENT`` does with a
    freshly measured baseline; a baseline committed days earlier can only be worse), then
    :func:`accelkit.gate.compare.compare_reports`. Reported: exit 1 (a regression), how
    many trials were ``unreliable`` (exit 3), any non-zero exit, and what the bootstrap
    interval alone would have said (any row whose whole interval is below the threshold:
    the verdict before run-to-run checks existed).
``bench --vs`` (interleaved)
    Both builds in one process, ``--vs-rounds`` interleaved rounds of one repeat each per
    row and side (:func:`accelkit.gate.interleave.measure_interleaved`, the code
    ``accelkit bench CANDIDATE --vs BASELINE`` runs), compared with a paired bootstrap.
``ratio gate`` (in-run ORT/torch ratio, ``benchmarks/ci_perf_gate.py``)
    12 interleaved rounds of torch and ORT, then
    :func:`accelkit.gate.ratio_gate.ratio_gate` against a baseline calibrated on this
    machine at the start of the run (``--calib-runs`` runs, the committed tolerance), and
    against the committed ``benchmarks/baselines/cpu_ratio.json``.

Rows: torch eager fp32 and ONNX Runtime CPU fp32 of the bundled DCGAN at batch sizes 1
and 8, one intra-op thread each (with 2 threads on a loaded 2-core machine torch eager
collapses; the gate's statistics are measured here, not the backends' best speed).

The slowed build: runners whose ``run()`` does the real work, synchronizes, then
busy-waits (a ``time.perf_counter()`` loop holding the CPU) until ``1 + --slow-factor``
times the work's duration has passed; with 0.25, images/sec x 0.8, a 20 % slowdown that
costs CPU like real extra work. ``compare`` and ``--vs`` slow both backends (the whole
build is slower); the ratio gate slows ORT only: it watches accelkit's ONNX path relative
to torch, and a change that slows both backends alike is invisible to it by design.

A trial *alarms* when the mode's exit code is 1: a false alarm for the unchanged build, a
detection for the slowed one. A trial the gate cannot judge exits 3 (``unreliable``; 0 with
``--allow-unreliable``); the "non-zero" rows count both, which is what fails a CI job. Output: a Markdown table (``--md``) with the command, the
machine (CPU model and ISA), the settings, the run time and every trial, and the raw
samples and verdicts as JSON (``--json``).

Usage (about 40 minutes on the 2-core machine; the results folder has the last run)::

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
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from ci_perf_gate import DEFAULT_BASELINE, export_fp32, load_dcgan, run_rounds

from accelkit.artifact import Artifact
from accelkit.benchmark.environment import collect_environment
from accelkit.benchmark.report import Report
from accelkit.benchmark.suite import BenchTarget, run_benchmark
from accelkit.gate.compare import Comparison, compare_reports
from accelkit.gate.interleave import measure_interleaved
from accelkit.gate.ratio_gate import (
    RatioBaseline,
    RatioGateResult,
    baseline_from_reports,
    merge_reports,
    ratio_gate,
)

BATCHES = (1, 8)
ISA_ORDER = ("amx_tile", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


# ----------------------------------------------------------------- slowed builds
def _switchable(cls: type) -> type:
    """A subclass of runner ``cls`` taking ``slow_factor``: ``run`` then busy-waits that fraction of its own duration."""

    class Switchable(cls):  # type: ignore[misc, valid-type]
        def __init__(
            self, artifact: Any, device: str = "cpu", slow_factor: float = 0.0, **options: Any
        ) -> None:
            super().__init__(artifact, device=device, **options)
            self._slow = float(slow_factor)

        def run(self, prepared: Any) -> Any:
            if self._slow <= 0:
                return super().run(prepared)
            t0 = time.perf_counter()
            out = super().run(prepared)
            self.synchronize()
            end = t0 + (time.perf_counter() - t0) * (1.0 + self._slow)
            while time.perf_counter() < end:
                pass
            return out

    Switchable.__name__ = f"Switchable{cls.__name__}"
    return Switchable


@contextlib.contextmanager
def switchable_runners() -> Iterator[None]:
    """Within the block, ``torch`` and ``ort`` accept a ``slow_factor`` option (0: the unchanged build)."""
    from accelkit.runners import base
    from accelkit.runners.ort_runner import OrtRunner
    from accelkit.runners.torch_runner import TorchRunner

    saved = dict(base.RUNNERS)
    globals()["_SwitchTorch"] = _switchable(TorchRunner)
    globals()["_SwitchOrt"] = _switchable(OrtRunner)
    base.RUNNERS["torch"] = f"{__name__}:_SwitchTorch"
    base.RUNNERS["ort"] = f"{__name__}:_SwitchOrt"
    try:
        yield
    finally:
        base.RUNNERS.clear()
        base.RUNNERS.update(saved)


def make_targets(
    torch_art: Artifact, onnx_art: Artifact, threads: int, slow: float = 0.0
) -> list[BenchTarget]:
    """torch eager fp32 and ort fp32, ``threads`` intra-op threads each (``slow``: the slowed build)."""
    opts: dict[str, Any] = {"precision": "fp32", "threads": threads}
    if slow:
        opts["slow_factor"] = slow
    return [BenchTarget("torch", torch_art, dict(opts)), BenchTarget("ort", onnx_art, dict(opts))]


# ---------------------------------------------------------- cross-run (processes)
def _worker(args: argparse.Namespace) -> int:
    """One bench in this fresh process, written as results.json would be."""
    from accelkit.loading import load_generator

    torch_art, _ = load_dcgan()
    targets = make_targets(
        torch_art, load_generator(args.onnx), args.threads, args.slow_factor if args.slow else 0.0
    )
    with switchable_runners():
        rep = run_benchmark(
            targets, BATCHES, warmup=3, repeats=args.seq_repeats, min_time_s=args.min_time
        )
    rep.settings["build"] = "slowed" if args.slow else "unchanged"
    rep.settings["generator_sha256"] = (torch_art.source_sha256 or "dcgan-random-init")[:16]
    args.worker.write_text(rep.to_json())
    return 0


def _spawn(onnx_path: Path, out: Path, args: argparse.Namespace, slowed: bool) -> Report:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        str(out),
        "--onnx",
        str(onnx_path),
        "--seq-repeats",
        str(args.seq_repeats),
        "--min-time",
        str(args.min_time),
        "--threads",
        str(args.threads),
        "--slow-factor",
        str(args.slow_factor),
    ]
    if slowed:
        cmd.append("--slow")
    subprocess.run(cmd, check=True, cwd=ROOT)
    return Report.load(out)


def _plan(unchanged: int, slowed: int) -> list[str]:
    """Two unchanged trials, then a slowed one, and so on: both kinds meet the same stretches of load."""
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
def interval_alone_alarms(comp: Comparison) -> bool:
    """What the gate said before run-to-run checks: a row whose whole interval is below the threshold, or a failed row."""
    return any(
        r.speed_verdict == "regression" or r.verdict in ("failed", "regression") for r in comp.rows
    )


class Tally:
    """Per (mode, kind): trials, exit-1 trials, unreliable trials."""

    def __init__(self) -> None:
        self.t: dict[tuple[str, str], list[int]] = {}

    def add(self, mode: str, kind: str, alarm: bool, unreliable: bool = False) -> None:
        t = self.t.setdefault((mode, kind), [0, 0, 0])
        t[0] += 1
        t[1] += int(alarm)
        t[2] += int(unreliable)

    def cell(self, mode: str, kind: str, unreliable: bool = True) -> str:
        n, a, u = self.t.get((mode, kind), [0, 0, 0])
        if not n:
            return "—"
        return f"{a}/{n}" + (f" ({u} unreliable)" if unreliable and u else "")


def _cpu_facts() -> tuple[str, str]:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "model name":
                model = v.strip()
            elif k.strip() == "flags":
                flags = set(v.split())
    except OSError:
        pass
    isa = [f for f in ISA_ORDER if f in flags]
    return model, (", ".join(isa) if isa else "no AVX2")


def _rows(rep: Report) -> list[dict[str, Any]]:
    return [
        {
            "row": f"{r.label} {r.precision} b{r.batch_size}",
            "status": r.status,
            "samples": [round(x, 2) for x in r.images_per_sec_samples],
        }
        for r in rep.rows
    ]


REASON_KINDS = (
    ("oversubscribed while measured", "CPU contention measured during the row (`stability`)"),
    ("busy cores", "CPU contention measured during the row (`stability`)"),
    ("load ", "1-minute load average"),
    ("environments differ", "environment difference"),
    ("runner ", "thread settings"),
    ("wider than", "interval wider than the threshold"),
    ("no noise estimate", "too few repeats"),
)


def reason_kinds(comp: Comparison) -> set[str]:
    """Which kinds of reasons made rows of ``comp`` unreliable."""
    out: set[str] = set()
    for r in comp.rows:
        if r.verdict == "unreliable":
            for why in r.unreliable_reasons:
                out.update(kind for key, kind in REASON_KINDS if key in why)
    return out


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + (" with uncommitted changes in the working tree" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cmp_cell(comp: Comparison) -> str:
    return f"{comp.verdict} ({comp.exit_code})"


def _ratio_cell(res: RatioGateResult) -> str:
    rel = ", ".join(
        f"b{v.batch_size} {(v.ratio / v.baseline_ratio - 1) * 100:+.0f}%"
        for v in res.verdicts
        if v.ratio and v.baseline_ratio
    )
    return f"{res.verdict} ({res.exit_code}; {rel})"


# -------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the measurement and write the report; returns 0 (the numbers are the result)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument(
        "--unchanged",
        type=int,
        default=20,
        help="trials of the unchanged build per mode (default: %(default)s)",
    )
    ap.add_argument(
        "--slowed",
        type=int,
        default=10,
        help="trials of the slowed build per mode (default: %(default)s)",
    )
    ap.add_argument(
        "--slow-factor",
        type=float,
        default=0.25,
        help="extra busy-wait per iteration, fraction of its duration (default: %(default)s)",
    )
    ap.add_argument(
        "--thresholds",
        default="0.05,0.10",
        help="--max-slowdown values for compare and --vs (default: %(default)s)",
    )
    ap.add_argument(
        "--seq-repeats",
        type=int,
        default=5,
        help="compare: timed repeats per row per bench (accelkit bench's default: %(default)s)",
    )
    ap.add_argument(
        "--vs-rounds",
        type=int,
        default=5,
        help="--vs: interleaved rounds (bench --vs uses --repeats, default %(default)s)",
    )
    ap.add_argument(
        "--min-time",
        type=float,
        default=0.2,
        help="compare and --vs: seconds per timed repeat (default: %(default)s)",
    )
    ap.add_argument(
        "--ratio-rounds",
        type=int,
        default=12,
        help="ratio gate: rounds per run (ci_perf_gate.py's default: %(default)s)",
    )
    ap.add_argument(
        "--calib-runs",
        type=int,
        default=5,
        help="ratio gate: runs for this machine's baseline (default: %(default)s)",
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="intra-op threads per backend (default: %(default)s)"
    )
    ap.add_argument("--md", type=Path, default=HERE / "results" / "gate_false_alarms.md")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "gate_false_alarms.json")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--onnx", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--slow", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        return _worker(args)
    thresholds = [float(x) for x in args.thresholds.split(",")]
    thr0 = thresholds[0]
    cmd = "python " + " ".join(
        shlex.quote(a)
        for a in [os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])]
    )
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    git_state = _git()
    t0 = time.perf_counter()
    loads: list[float] = [os.getloadavg()[0]]
    torch_art, origin = load_dcgan()
    env = collect_environment()
    committed = RatioBaseline.load(DEFAULT_BASELINE)
    raw: dict[str, Any] = {
        "command": cmd,
        "started": started,
        "environment": env,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "trials": [],
    }
    tally = Tally()
    kinds: dict[str, dict[str, int]] = {"compare": {}, "vs": {}}
    table_rows: list[str] = []
    mode_seconds = {"compare": 0.0, "vs": 0.0, "ratio": 0.0}
    with tempfile.TemporaryDirectory(prefix="accelkit-gate-fa-") as tmp_s:
        tmp = Path(tmp_s)
        onnx_art = export_fp32(torch_art, tmp)
        onnx_path = Path(str(onnx_art.path))
        # The export leaves ~10^6 long-lived Python objects; without this the harness's
        # gc.collect() before each row costs ~0.45 s (untimed, but it doubles the run time).
        gc.collect()
        gc.freeze()

        # ratio gate: this machine's baseline, measured as ci_perf_gate.py --update-baseline does
        calib = [
            merge_reports(
                run_rounds(
                    torch_art,
                    onnx_art,
                    rounds=args.ratio_rounds,
                    warmup=3,
                    repeats=1,
                    min_time_s=0.3,
                    threads=args.threads,
                    env=env,
                )
            )
            for _ in range(args.calib_runs)
        ]
        here = baseline_from_reports(calib, tolerance=committed.tolerance)
        raw["ratio_baseline_here"] = here.to_dict()
        print(
            f"[{time.perf_counter() - t0:6.1f} s] ratio baseline here: {here.ratios} (committed: {committed.ratios})",
            flush=True,
        )
        with switchable_runners():
            measure_interleaved(
                [(t, t) for t in make_targets(torch_art, onnx_art, args.threads)],
                BATCHES,
                rounds=1,
                warmup=3,
                min_time_s=args.min_time,
                environment=env,
            )  # warm-up, discarded (first-in-process effects)
        t_ready = time.perf_counter()

        for i, kind in enumerate(_plan(args.unchanged, args.slowed), start=1):
            slowed = kind == "slowed"
            slow = args.slow_factor if slowed else 0.0
            trial: dict[str, Any] = {"trial": i, "kind": kind}

            # ---- compare: two fresh processes, back to back
            ts = time.perf_counter()
            base = _spawn(onnx_path, tmp / f"base{i:02d}.json", args, slowed=False)
            cur = _spawn(onnx_path, tmp / f"cur{i:02d}.json", args, slowed=slowed)
            mode_seconds["compare"] += time.perf_counter() - ts
            comps = {thr: compare_reports(base, cur, max_slowdown=thr) for thr in thresholds}
            for thr in thresholds:
                tally.add(
                    f"compare@{thr:g}",
                    kind,
                    comps[thr].exit_code == 1,
                    comps[thr].verdict == "unreliable",
                )
                tally.add(f"compare-nonzero@{thr:g}", kind, comps[thr].exit_code != 0)
                tally.add(f"compare-interval@{thr:g}", kind, interval_alone_alarms(comps[thr]))
            trial["compare"] = {
                "baseline": _rows(base),
                "current": _rows(cur),
                "load_1m": [
                    base.environment.get("cpu", {}).get("load_average"),
                    cur.environment.get("cpu", {}).get("load_average"),
                ],
                "comparison": comps[thr0].to_dict(),
            }

            # ---- bench --vs: both builds interleaved in this process
            ts = time.perf_counter()
            with switchable_runners():
                pairs = list(
                    zip(
                        make_targets(torch_art, onnx_art, args.threads, slow),
                        make_targets(torch_art, onnx_art, args.threads),
                    )
                )
                cand, vbase = measure_interleaved(
                    pairs,
                    BATCHES,
                    rounds=args.vs_rounds,
                    warmup=3,
                    min_time_s=args.min_time,
                    environment=env,
                )
            mode_seconds["vs"] += time.perf_counter() - ts
            vs = {thr: compare_reports(vbase, cand, max_slowdown=thr) for thr in thresholds}
            for thr in thresholds:
                assert vs[thr].interleaved
                tally.add(
                    f"vs@{thr:g}", kind, vs[thr].exit_code == 1, vs[thr].verdict == "unreliable"
                )
                tally.add(f"vs-nonzero@{thr:g}", kind, vs[thr].exit_code != 0)
            trial["vs"] = {
                "baseline": _rows(vbase),
                "candidate": _rows(cand),
                "comparison": vs[thr0].to_dict(),
            }
            for mode, comp in (("compare", comps[thr0]), ("vs", vs[thr0])):
                for k in reason_kinds(comp):
                    kinds[mode][k] = kinds[mode].get(k, 0) + 1

            # ---- ratio gate: ci_perf_gate.py's rounds, ORT slowed
            ts = time.perf_counter()
            merged = merge_reports(
                run_rounds(
                    torch_art,
                    onnx_art,
                    rounds=args.ratio_rounds,
                    warmup=3,
                    repeats=1,
                    min_time_s=0.3,
                    threads=args.threads,
                    slowdown=slow,
                    env=env,
                )
            )
            mode_seconds["ratio"] += time.perf_counter() - ts
            r_here = ratio_gate(merged, here, paired=True)
            r_comm = ratio_gate(merged, committed, paired=True)
            tally.add("ratio-here", kind, r_here.exit_code == 1, r_here.verdict == "unreliable")
            tally.add("ratio-here-nonzero", kind, r_here.exit_code != 0)
            tally.add(
                "ratio-committed", kind, r_comm.exit_code == 1, r_comm.verdict == "unreliable"
            )
            trial["ratio"] = {
                "rows": _rows(merged),
                "here": r_here.to_dict(),
                "committed": r_comm.to_dict(),
            }

            load = os.getloadavg()[0]
            loads.append(load)
            trial["load_1m_end"] = round(load, 2)
            raw["trials"].append(trial)
            table_rows.append(
                f"| {i} | {kind} | {load:.1f} | {_cmp_cell(comps[thr0])} | {'alarm' if interval_alone_alarms(comps[thr0]) else '—'} "
                f"| {_cmp_cell(vs[thr0])} | {_ratio_cell(r_here)} | {_ratio_cell(r_comm)} |"
            )
            print(
                f"[{time.perf_counter() - t0:6.1f} s] trial {i} {kind}: compare {comps[thr0].verdict}, vs {vs[thr0].verdict}, "
                f"ratio {r_here.verdict} / committed {r_comm.verdict}; load {load:.1f}",
                flush=True,
            )
    total = time.perf_counter() - t0
    model, isa = _cpu_facts()
    cpu = env.get("cpu", {})
    vers = ", ".join(
        f"{k} {v}"
        for k, v in (env.get("versions") or {}).items()
        if v and k in ("torch", "onnxruntime", "accelkit")
    )
    n_u, n_s = args.unchanged, args.slowed

    def line(name: str, mode: str, note: str, unreliable: bool = True) -> str:
        return f"| {name} | {tally.cell(mode, 'unchanged', unreliable)} | {tally.cell(mode, 'slowed', unreliable)} | {note} |"

    table = [
        "| mode | false alarms (exit 1, same build twice) | detections (exit 1, 20 % slower) | how |",
        "|---|---:|---:|---|",
    ]
    for thr in thresholds:
        pct = f"{thr * 100:g}%"
        table += [
            line(
                f"`bench --vs`, `--max-slowdown {pct}`",
                f"vs@{thr:g}",
                f"interleaved, {args.vs_rounds} rounds, paired bootstrap",
            ),
            line(
                f"`bench --vs`, non-zero exit (1 or 3), {pct}",
                f"vs-nonzero@{thr:g}",
                "what fails a CI job",
                False,
            ),
            line(
                f"`compare`, `--max-slowdown {pct}`",
                f"compare@{thr:g}",
                f"two fresh processes back to back, {args.seq_repeats} repeats each",
            ),
            line(
                f"`compare`, non-zero exit (1 or 3), {pct}",
                f"compare-nonzero@{thr:g}",
                "what fails a CI job without --allow-unreliable",
                False,
            ),
            line(
                f"`compare`, interval alone, {pct}",
                f"compare-interval@{thr:g}",
                "the verdict before run-to-run checks (for comparison)",
                False,
            ),
        ]
    table += [
        line(
            f"ratio gate, baseline calibrated here, tolerance {committed.tolerance * 100:g}%",
            "ratio-here",
            f"ORT slowed; {args.ratio_rounds} rounds, paired",
        ),
        line(
            "ratio gate, same, non-zero exit (1 or 3)",
            "ratio-here-nonzero",
            "what fails a CI job",
            False,
        ),
        line(
            f"ratio gate, committed baseline ({committed.machine.get('cpu')})",
            "ratio-committed",
            "another machine type's baseline (.ci/run no longer borrows it)",
        ),
    ]
    lines = [
        "# The CI gate's modes on real benches: false alarms and detections",
        "",
        f"Command: `{cmd}` (from the repository root), started {started}, **{total / 60:.1f} min** in all "
        f"(setup and ratio calibration {(t_ready - t0) / 60:.1f} min; compare {mode_seconds['compare'] / 60:.1f} min, "
        f"--vs {mode_seconds['vs'] / 60:.1f} min, ratio gate {mode_seconds['ratio'] / 60:.1f} min).",
        "",
        f"Machine: **{model}** (ISA: {isa}), {cpu.get('available_cores', '?')} cores available, no GPU, shared with other developers "
        f"working at the same time (1-minute load average {min(loads):.1f} to {max(loads):.1f} during the run); "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, {vers}. Code: {git_state}.",
        "",
        f"Generator: {origin}. Rows: torch eager fp32 and ONNX Runtime CPU fp32 at batch sizes {', '.join(map(str, BATCHES))} "
        f"(4 rows; the ratio gate uses them as 2 ratios), {args.threads} intra-op thread per backend, 3 warm-up iterations. "
        f"Slowed build: every iteration busy-waits {args.slow_factor:g}x its own duration (images/sec x {1 / (1 + args.slow_factor):.2f}); "
        f"compare and --vs slow both backends, the ratio gate ORT only. {n_u} unchanged and {n_s} slowed trials per mode, "
        "run in the same cycles (unchanged, unchanged, slowed, ...).",
        "",
        "A trial alarms when the mode's exit code is 1. `unreliable` trials exit 3 (0 with --allow-unreliable) and say so; "
        "they are counted in brackets.",
        "",
        *table,
        "",
        f"What made trials unreliable at {thr0 * 100:g}% (trials with at least one row for that reason): "
        + "; ".join(
            f"{mode}: "
            + (", ".join(f"{k} {n}" for k, n in sorted(d.items(), key=lambda kv: -kv[1])) or "none")
            for mode, d in kinds.items()
        )
        + ".",
        "",
        "## Every trial",
        "",
        f"Verdict (exit code) at --max-slowdown {thr0 * 100:g}%; ratio gate: verdict (exit; change of each batch size's ORT/torch ratio "
        "against the baseline).",
        "",
        "| # | build | load 1m | compare | interval alone | bench --vs | ratio gate (here) | ratio gate (committed) |",
        "|---|---|---:|---|---|---|---|---|",
        *table_rows,
        "",
        f"This machine's ratio baseline: {', '.join(f'batch {b}: {r:.3f}' for b, r in here.ratios.items())} "
        f"(committed, {committed.machine.get('cpu')}: {', '.join(f'batch {b}: {r:.3f}' for b, r in committed.ratios.items())}).",
        "",
        f"Raw samples and every comparison: `{os.path.relpath(args.json, ROOT)}`.",
        "",
    ]
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text("\n".join(lines))
    raw.update(
        total_seconds=round(total, 1),
        mode_seconds={k: round(v, 1) for k, v in mode_seconds.items()},
        tally={f"{m}|{k}": v for (m, k), v in tally.t.items()},
        cpu_model=model,
        isa=isa,
        unreliable_reason_kinds=kinds,
        code=git_state,
    )
    args.json.write_text(json.dumps(raw, indent=1, default=str) + "\n")
    print("\n".join(table))
    print(f"wrote {args.md} and {args.json} in {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
