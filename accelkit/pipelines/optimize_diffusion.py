"""``accelkit optimize PIPELINE_FOLDER``: steps x scheduler x cache x backend x precision.

The space and the choice rules are :mod:`accelkit.autotune.diffusion_search` (pure); this
module runs them:

1. **builds**: every backend x precision this machine offers for the denoiser
   (:func:`~accelkit.benchmark.plan.planned_recipes`), made once by the component builder
   (INT8 calibrated on the reference sampler's trajectories, which visit every timestep a
   shorter sampler does), and each cache's partial graphs once per precision (fp32/fp16);
2. **speed first**: the reference and each unit (backend x precision x cache) at the
   probe step counts (:func:`~accelkit.autotune.diffusion_search.probe_steps`, the
   reference scheduler) are timed briefly (:data:`SEARCH_REPEATS` repeats of
   ``--min-time``) at ``--batch`` in two rounds (the second in reverse order, so a
   machine-load drift hits both ends alike); a speed is the mean of the two medians,
   *unstable* when a round was unstable or the rounds disagree by more than
   :data:`ROUND_SPREAD`. Every other candidate's speed is *estimated* from its unit's
   fitted cost (overhead + per-step x steps): a few hundred candidates cannot each be
   timed within a CPU search's budget, and steps change a build's cost linearly;
3. **quality only for builds that could win**: in decreasing speed, each candidate faster
   than the reference is first timed itself when its speed was estimated (and re-ranked),
   then gets its drift measured against the reference sampler (``--fid N`` images, same
   noise and labels; the reference's images, features and anchor are made once for all
   checks); steps/scheduler/cache change trajectories, so the **distribution-level**
   test decides (paired PSNR is shown, not deciding) and ``choice.judge(drift, budget)``
   accepts or not; the first accepted one is chosen. A change of trajectory is judged
   once for all backends (:func:`~accelkit.autotune.diffusion_search.choose`: its fp32
   build first; a refusal sets aside the same sampler at equal or lower precision);
4. **the ladder** checks, if not already checked, the fastest sampler-only candidates
   so that each lever's gain is measured on an accepted build; when the choice stopped
   (budget, check limit) before an accepted build, the fastest accepted build the
   ladder found is chosen.

``--time-budget`` is honoured between timings (speed) and before each check, whose cost
is estimated first (quality); what was not reached is listed in the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.autotune.diffusion_search import (
    LEVER_GROUPS,
    DiffusionCandidate,
    Rung,
    Shortfall,
    Timed,
    choose,
    diffusion_space,
    estimated,
    fastest_accepted,
    fit_step_cost,
    held_back,
    ladder,
    probe_candidates,
    probe_steps,
)
from accelkit.errors import AccelkitError, one_line
from accelkit.pipelines.results import Result

Progress = Callable[[str], None]
#: Two rounds' medians disagreeing by more than this (relative) mark a candidate unstable.
ROUND_SPREAD = 0.2
#: Timed repeats per candidate and round (at most; ``--repeats`` lower is kept): brief, the
#: two rounds and the quality phase's order make up for it.
SEARCH_REPEATS = 3
#: At most this many quality checks for the choice, and as many again for the ladder (each
#: samples 2 x --fid images); the time budget usually ends the search first.
MAX_QUALITY_CHECKS = 12


@dataclass
class DiffusionOptimizeResult(Result):
    """The search over a pipeline: every candidate timed, the checked ones, the choice, the ladder."""

    reference: DiffusionCandidate
    timed: list[Timed]
    checked: list[Timed]
    chosen: Timed | None
    rungs: list[Rung]
    excluded: list[tuple[str, str]]
    commands: list[str]
    budget: str
    batch: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    shortfalls: list[Shortfall] = field(default_factory=list)

    def ratio(self, t: Timed | None) -> tuple[float | None, str | None]:
        """Speed over the reference, or why withheld."""
        ref = next((x for x in self.timed if x.candidate == self.reference and x.ok), None)
        if t is None or ref is None or not t.ok:
            return None, "not measured"
        if t.estimated:
            return None, "estimated, not timed"
        if t.unstable or ref.unstable:
            return None, "unstable timing"
        return (t.images_per_sec or 0.0) / (ref.images_per_sec or 1.0), None

    def to_dict(self) -> dict[str, Any]:
        """The search record (``optimize.json``)."""
        ratio, withheld = self.ratio(self.chosen)
        return {
            "kind": "diffusion",
            "budget": self.budget,
            "batch": self.batch,
            "reference": self.reference.to_dict(),
            "chosen": self.chosen.to_dict() if self.chosen else None,
            "speedup_vs_reference": ratio,
            "speedup_withheld": withheld,
            "candidates": [t.to_dict() for t in self.timed],
            "checked": [t.candidate.id for t in self.checked],
            "excluded": [{"id": i, "reason": r} for i, r in self.excluded],
            "ladder": [
                {
                    "rung": r.name,
                    "build": r.timed.candidate.id if r.timed else None,
                    "images_per_sec": r.timed.images_per_sec if r.timed else None,
                    "ratio_vs_previous": r.ratio,
                    "withheld": r.withheld,
                    "verdict_via": r.via,
                }
                for r in self.rungs
            ],
            "held_back": [
                {
                    "lever": f.lever,
                    "build": f.timed.candidate.id,
                    "images_per_sec": f.timed.images_per_sec,
                    "ratio_vs_chosen": f.gain,
                    "withheld": f.withheld,
                    "verdict": f.timed.verdict,
                    "why": f.why,
                }
                for f in self.shortfalls
            ],
            "commands": self.commands,
            "seconds": self.seconds,
            "notes": self.notes,
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def to_text(self) -> str:
        """The summary ``accelkit optimize`` prints."""
        lines = [f"budget: {self.budget}; batch {self.batch}; {len(self.timed)} candidates timed"]
        if self.chosen is None:
            lines.append("nothing was chosen (the reference did not run)")
        else:
            ratio, why = self.ratio(self.chosen)
            lines.append(
                f"chosen: {self.chosen.candidate.id} at {self.chosen.images_per_sec:.3g} images/s "
                + (
                    f"({ratio:.2f}x the reference)"
                    if ratio is not None
                    else f"(ratio withheld: {why})"
                )
            )
        lines.append("ladder:")
        for r in self.rungs:
            what = r.timed.candidate.id if r.timed else "-"
            gain = (
                f"x{r.ratio:.2f}"
                if r.ratio is not None
                else f"({r.withheld})"
                if r.withheld
                else ""
            )
            via = f" [accepted as {r.via}]" if r.via else ""
            lines.append(f"  {r.name:<20} {what:<40} {gain}{via}")
        if self.chosen is not None:
            lines.append(
                "what held back a faster build (per lever moved alone: the fastest not accepted):"
            )
            lines.extend(
                f"  {lever:<20} {text}" for lever, text in _shortfall_lines(self.shortfalls)
            )
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append("reproduce and re-measure:")
        lines.extend(f"  {c}" for c in self.commands)
        lines.append(f"wrote {self.files.get('optimize', '')}")
        return "\n".join(lines)


def _shortfall_text(f: Shortfall, width: int = 200) -> str:
    gain = (
        f"x{f.gain:.2f} the chosen build" if f.gain is not None else f"ratio withheld: {f.withheld}"
    )
    why = f.why if len(f.why) <= width else f.why[: width - 3] + "..."
    return f"{f.timed.candidate.id} ({gain}): {why}"


def _shortfall_lines(shortfalls: list[Shortfall], width: int = 200) -> list[tuple[str, str]]:
    """One ``(lever, text)`` per lever, in :data:`LEVER_GROUPS` order."""
    by = {f.lever: f for f in shortfalls}
    return [
        (
            lever,
            _shortfall_text(by[lever], width)
            if lever in by
            else "nothing faster in the searched space moves only this lever",
        )
        for lever, _ in LEVER_GROUPS
    ]


def _row_speed(rows: list[Any]) -> tuple[float | None, bool, str]:
    ok = [r for r in rows if r.status == "ok" and r.images_per_sec]
    if not ok:
        return None, False, (rows[0].reason if rows else "not run") or "failed"
    r = ok[0]
    return float(r.images_per_sec), bool(getattr(r, "unstable", False)), ""


def optimize_diffusion(
    artifact: Artifact,
    opts: Any,
    budget: Any,
    device: str,
    out: Path,
    generator_text: str,
    progress: Progress | None = None,
    started: float | None = None,
) -> DiffusionOptimizeResult:
    """Search a pipeline's builds under a quality budget (see the module docstring).

    Args:
        artifact: The ``diffusion`` artifact.
        opts: :class:`~accelkit.pipelines.options.OptimizeOptions` (``batch``, ``backends``,
            ``precisions``, ``fid``, ``threads``, ``timing``, ``time_budget_s``, ``out``).
        budget: :class:`~accelkit.autotune.choice.Budget`.
        device: The resolved device.
        out: Output folder (made).
        generator_text: The generator as the user gave it (for the printed commands).
        progress: Called with a short message per step.
        started: ``time.monotonic()`` at the command's start (the time budget counts from it).

    Returns:
        :class:`DiffusionOptimizeResult`.
    """
    from accelkit.autotune import choice
    from accelkit.benchmark.plan import BenchOptions, bench_ask, planned_recipes
    from accelkit.benchmark.report import Report
    from accelkit.benchmark.suite import BenchTarget, run_benchmark
    from accelkit.diffusion.cache import CacheSpec
    from accelkit.diffusion.kind import model_of
    from accelkit.diffusion.model import SamplerSettings
    from accelkit.diffusion.sampler import create_diffusion_runner
    from accelkit.files import write_text_atomic
    from accelkit.options import BuildRecipe
    from accelkit.pipelines import diffusion as dif
    from accelkit.pipelines.bench import DriftSession
    from accelkit.runners.base import available_backends
    from accelkit.vocab import onnx_source

    t0 = started if started is not None else time.monotonic()
    say = progress or (lambda m: None)

    def left() -> float:
        return float(opts.time_budget_s) - (time.monotonic() - t0)

    model = model_of(artifact)
    ref_s = model.sampling(None)
    ref_sampling = ref_s.to_dict()
    reference = DiffusionCandidate(str(ref_sampling["scheduler"]), int(ref_sampling["steps"]))
    threads = opts.threads.resolve(device)
    thread_opts = {"threads": threads} if threads else {}
    workdir = out / "artifacts"
    workdir.mkdir(parents=True, exist_ok=True)
    backends = [b for b in available_backends(device) if not opts.backends or b in opts.backends]
    precisions = tuple(opts.precisions) or ("fp32", "fp16", "int8")
    batch = int(opts.batch)
    cfg = BenchOptions(
        backends=tuple(backends),
        precisions=precisions,
        batch_sizes=(batch,),
        device=device,
        out=out,
        timing=opts.timing,
        threads=opts.threads,
        fid=opts.fid,
        force=True,
        plot=False,
    )
    recipe = dif.component_recipe(BuildRecipe(), (batch,), bool(ref_s.cfg))
    den_b, dec_b = dif.component_builders(
        model, workdir, recipe, dif.sampler_settings(None), progress=say
    )
    notes: list[str] = []
    excluded: list[tuple[str, str]] = []

    # 1. builds: (backend, precision) -> (runner options, denoiser artifact or None for torch)
    builds: dict[tuple[str, str], tuple[dict[str, Any], Artifact | None, Artifact | None]] = {}
    for name in backends:
        for p in precisions:
            got = planned_recipes(name, bench_ask(cfg, "torch", p, device, threads, workdir))
            if isinstance(got, str):
                excluded.append((f"{name} {p}", got))
                continue
            for r in got:
                if r.variant is not None:
                    continue
                if r.refused is not None:
                    excluded.append((f"{name} {p}", r.refused))
                    continue
                try:
                    say(f"building the denoiser for {name} {p}")
                    den = None if r.source == "torch" else den_b.make(r.source)
                    dec = None
                    if dec_b is not None and r.source != "torch":
                        dec = dec_b.make(onnx_source("fp32"))
                except AccelkitError as exc:
                    excluded.append((f"{name} {p}", one_line(exc)))
                    continue
                builds[(name, p)] = (dict(r.options), den, dec)
    if ("torch", "fp32") not in builds:
        builds[("torch", "fp32")] = ({"precision": "fp32", **thread_opts}, None, None)
    unet = str(model.denoiser.meta.get("diffusers_class", "")).startswith("UNet")
    candidates, excl = diffusion_space(reference, list(builds), unet=unet)
    excluded.extend(excl)

    made: dict[tuple[str, str], Any] = {}

    def target(c: DiffusionCandidate) -> Any:
        opts_, den, dec = builds[(c.backend, c.precision)]
        spec = CacheSpec.parse(c.cache)
        cached = None
        if spec.enabled and c.backend != "torch":
            cached = dif.cached_parts(model, spec, c.precision, workdir, recipe, say, made)
        settings = SamplerSettings(scheduler=c.scheduler, steps=c.steps).validated()

        def make() -> Any:
            return create_diffusion_runner(
                model,
                c.backend,
                settings=settings,
                device=device,
                denoiser=None if spec.enabled else den,
                decoder=dec,
                decoder_backend=c.backend if dec is not None else "torch",
                options=opts_,
                decoder_options={**thread_opts, "precision": "fp32"},
                cache=spec if spec.enabled else None,
                cached=cached,
            )

        variant = dif.REFERENCE_VARIANT if c == reference else c.sampler_label
        return BenchTarget(
            c.backend, artifact, opts_, variant=variant, precision=c.precision, make_runner=make
        )

    # 2. speed first: the reference and every unit (backend x precision x cache) at the
    # probe step counts, two rounds (forward, then reverse); every other candidate's speed
    # is estimated from its unit's fitted per-step cost, and timed itself before a check
    timed: dict[DiffusionCandidate, Timed] = {}
    reports: dict[DiffusionCandidate, Any] = {}
    targets: dict[DiffusionCandidate, Any] = {}

    def time_once(c: DiffusionCandidate) -> tuple[tuple[float | None, bool, str], Any]:
        if c not in targets:
            targets[c] = target(c)
        rep = run_benchmark(
            [targets[c]],
            (batch,),
            device=device,
            warmup=opts.timing.warmup,
            repeats=min(opts.timing.repeats, SEARCH_REPEATS),
            min_time_s=opts.timing.min_time_s,
            seed=0,
            report=Report(),
        )
        return _row_speed(rep.rows), rep

    def settle(c: DiffusionCandidate, rounds: list[tuple[float | None, bool, str]]) -> Timed:
        vals = [v for v, _, _ in rounds if v is not None]
        if not vals:
            return Timed(c, None, reason=rounds[0][2])
        mean = sum(vals) / len(vals)
        spread = (max(vals) - min(vals)) / mean if len(vals) > 1 else 0.0
        unstable = any(u for _, u, _ in rounds) or spread > ROUND_SPREAD or len(vals) < 2
        return Timed(c, mean, unstable=unstable)

    probes = probe_candidates(candidates, reference)
    speeds: dict[DiffusionCandidate, list[tuple[float | None, bool, str]]] = {}
    for rnd, seq in enumerate((probes, probes[::-1])):
        for c in seq:
            if left() <= 0:
                break
            if rnd == 1 and c not in speeds:
                continue
            try:
                say(f"timing {c.id} (round {rnd + 1})")
                speed, rep = time_once(c)
            except AccelkitError as exc:
                excluded.append((c.id, one_line(exc)))
                continue
            speeds.setdefault(c, []).append(speed)
            if rnd == 0:
                reports[c] = rep
    for c, rounds in speeds.items():
        timed[c] = settle(c, rounds)
    costs: dict[tuple[str, str, str], Any] = {}
    for unit in dict.fromkeys(c.unit for c in probes):
        pts = [
            t
            for c, t in timed.items()
            if c.unit == unit and t.ok and c.scheduler == reference.scheduler
        ]
        costs[unit] = fit_step_cost(
            [(t.candidate.steps, batch / float(t.images_per_sec or 1.0)) for t in pts],
            unstable=any(t.unstable for t in pts),
        )
    gone = dict(excluded)
    not_timed = []
    for c in candidates:
        if c in timed or c.id in gone:
            continue
        cost = costs.get(c.unit)
        if cost is not None:
            timed[c] = estimated(c, cost, batch)
        else:
            not_timed.append(c.id)
    if not_timed:
        notes.append(
            f"{len(not_timed)} candidates have no speed (the time budget ran out, or their "
            f"unit could not be timed at {' and '.join(map(str, probe_steps(candidates, reference)))} steps): "
            f"{', '.join(not_timed[:6])}" + (" ..." if len(not_timed) > 6 else "")
        )

    def confirm(t: Timed) -> None:
        """Time an estimated candidate itself (two rounds back to back)."""
        c = t.candidate
        say(f"timing {c.id} before its quality check")
        try:
            first, rep = time_once(c)
            second, _ = time_once(c)
        except AccelkitError as exc:
            t.images_per_sec, t.reason = None, one_line(exc)
            return
        reports[c] = rep
        got = settle(c, [first, second])
        t.images_per_sec, t.unstable, t.reason = got.images_per_sec, got.unstable, got.reason

    # 3. quality for builds that could win, fastest first; the reference's images,
    # features and margin anchor are made once for all checks (the session)
    session = DriftSession()

    def judge(t: Timed) -> str:
        c = t.candidate
        rep = reports[c]
        for r in rep.rows:
            r.steps, r.scheduler, r.cache = c.steps, c.scheduler, c.cache
        changed = bool(c.trajectory(reference))
        record = {
            "sampler": {"scheduler": c.scheduler, "steps": c.steps, "cache": c.cache},
            "reference_sampler": ref_sampling,
            "sampler_is_reference": not changed,
        }
        say(f"quality: {c.id} on {opts.fid.n} images")
        try:
            dif.measure_quality(
                artifact,
                [targets[c]],
                rep,
                record,
                replace(cfg, out=out / "quality"),
                device,
                out / "quality",
                say,
                session=session,
            )
        except AccelkitError as exc:
            t.reason = one_line(exc)
            return "failed"
        row = next((r for r in rep.rows if r.status == "ok"), None)
        if row is None or row.drift_detail is None:
            t.reason = (rep.rows[0].reason if rep.rows else "") or "quality not measured"
            return "failed"
        v = choice.judge(row.to_dict(), budget)
        t.reason, t.psnr_db, t.fid_drift = v.reason, row.psnr_db, row.fid_drift
        return v.decision

    (out / "quality" / "artifacts").mkdir(parents=True, exist_ok=True)
    all_timed = list(timed.values())
    ref_timed = timed.get(reference)
    n_fid = int(opts.fid.n)

    def fits(t: Timed) -> bool:
        """Whether the budget holds checking ``t``: its 2 x N images (at its batch-size
        speed, an upper bound at the drift batch) plus, the first time, the reference's
        3 x N (sets A and B and the margin's anchor)."""
        ips = float(t.images_per_sec or 0.0)
        if ips <= 0:
            return left() > 0
        need = 2 * n_fid / ips
        if session.meter is None and ref_timed is not None and ref_timed.images_per_sec:
            need += 3 * n_fid / float(ref_timed.images_per_sec)
        return left() > need

    try:
        chosen, checked = choose(
            all_timed,
            reference,
            judge,
            max_checks=MAX_QUALITY_CHECKS,
            time_left=fits,
            confirm=confirm,
        )
        # 4. the ladder's sampler-only rungs, measured if not yet checked
        for only_steps in (True, False):
            pool = [
                t
                for t in all_timed
                if not ({"backend", "precision"} & t.candidate.levers(reference))
                and (not only_steps or "cache" not in t.candidate.trajectory(reference))
            ]
            _, more = choose(
                pool,
                reference,
                judge,
                max_checks=2 * MAX_QUALITY_CHECKS - len(checked),
                time_left=fits,
                confirm=confirm,
            )
            checked.extend(more)
        # a check limit or the budget can end the choice before the ladder's passes find an
        # accepted build: the choice is the fastest accepted build of all that were checked
        # (checked builds were timed before their check; the first choice's own accepted
        # build is among them, so this can only move to a faster one)
        chosen = fastest_accepted(checked) or chosen
    finally:
        session.close()
    rungs = ladder(all_timed, reference, chosen)
    shortfalls = held_back(all_timed, chosen)
    commands = []
    if chosen is not None:
        fid = ["--fid", str(opts.fid.n)] if opts.fid.n else []
        commands.append(
            chosen.candidate.bench_command(generator_text, batch, ["--seed", "1", *fid])
        )
    result = DiffusionOptimizeResult(
        reference=reference,
        timed=all_timed,
        checked=checked,
        chosen=chosen,
        rungs=rungs,
        excluded=excluded,
        commands=commands,
        budget=budget.describe(),
        batch=batch,
        seconds=time.monotonic() - t0,
        notes=notes,
        shortfalls=shortfalls,
    )
    result.files["report"] = out / "optimize.md"
    write_text_atomic(out / "optimize.md", render(result))
    result.files["pareto"] = _pareto(result, out / "pareto.png")
    result.files["optimize"] = out / "optimize.json"
    from accelkit.pipelines.optimize import _finite  # strict JSON, as the torch search writes

    write_text_atomic(
        out / "optimize.json",
        json.dumps(_finite(result.to_dict()), indent=2, default=str, allow_nan=False) + "\n",
    )
    return result


def _pareto(result: DiffusionOptimizeResult, path: Path) -> Path:
    """images/s against FID drift of every candidate whose drift was measured (the table
    lists every candidate: one not checked has no drift to place), the chosen one marked."""
    from accelkit.benchmark.plot import plot_pareto

    pts = [
        (
            t.candidate.id,
            float(t.fid_drift),
            float(t.images_per_sec or 0.0),
            ("chosen" if t is result.chosen else (t.verdict or "checked"))
            + (" unstable" if t.unstable else ""),
        )
        for t in result.timed
        if t.fid_drift is not None and t.ok
    ]
    return plot_pareto(pts, path, title=f"batch {result.batch}; budget: {result.budget}")


def render(result: DiffusionOptimizeResult) -> str:
    """``optimize.md``: the ladder, the chosen build, every candidate."""
    lines = [
        "# accelkit optimize: a diffusion pipeline",
        "",
        f"Budget: {result.budget}. Batch {result.batch}. Reference: torch fp32 "
        f"{result.reference.scheduler}-{result.reference.steps}, no cache. "
        "Steps, scheduler and cache change trajectories: the distribution-level test decides "
        "their verdict; paired PSNR is shown, not deciding. Speeds: mean of two timing rounds "
        "(forward then reverse order); *unstable* rows rank but their ratios are withheld; "
        "*estimated* speeds (from the build's per-step cost, timed at two step counts) "
        "rank, and a candidate is timed itself before its quality is checked.",
        "",
        "## The ladder",
        "",
        "| rung | build | images/s | x previous |",
        "|---|---|---:|---:|",
    ]
    for r in result.rungs:
        ips = f"{r.timed.images_per_sec:.3g}" if r.timed and r.timed.images_per_sec else "-"
        gain = (
            f"{r.ratio:.2f}"
            if r.ratio is not None
            else (f"withheld: {r.withheld}" if r.withheld else "-")
        )
        via = f" (accepted as {r.via}, the same sampler)" if r.via else ""
        lines.append(
            f"| {r.name} | {r.timed.candidate.id if r.timed else '-'}{via} | {ips} | {gain} |"
        )
    ratio, why = result.ratio(result.chosen)
    lines += [
        "",
        f"Chosen: {result.chosen.candidate.id if result.chosen else 'nothing'}"
        + (f", {ratio:.2f}x the reference" if ratio is not None else f" (ratio withheld: {why})"),
        "",
        "Reproduce and re-measure on a fresh seed:",
        "",
        *[f"    {c}" for c in result.commands],
        "",
        "## What held back a faster build",
        "",
        "Per lever, the fastest candidate faster than the chosen build that moves only that "
        "lever and was not accepted: by how much it was faster, and why.",
        "",
        *[f"- **{lever}**: {text}" for lever, text in _shortfall_lines(result.shortfalls, 400)],
        "",
        "## Every candidate",
        "",
        "| build | images/s | vs reference | verdict | paired PSNR dB | reason |",
        "|---|---:|---:|---|---:|---|",
    ]
    for t in sorted(result.timed, key=lambda x: -(x.images_per_sec or 0.0)):
        vs, w = result.ratio(t)
        lines.append(
            f"| {t.candidate.id} | {t.images_per_sec or 0:.3g}{' (est.)' if t.estimated else ''} | "
            f"{f'{vs:.2f}x' if vs is not None else w} | {t.verdict or 'not checked'} | "
            f"{'' if t.psnr_db is None else f'{t.psnr_db:.1f}'} | {t.reason[:160]} |"
        )
    if result.excluded:
        lines += ["", "## Not searched", ""]
        lines += [f"- {i}: {r}" for i, r in result.excluded]
    lines += ["", *[f"Note: {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"


__all__ = ["DiffusionOptimizeResult", "optimize_diffusion", "render"]
