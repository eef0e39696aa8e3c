"""``optimize``: find the fastest build of a generator whose quality the user accepts, and prove it.

Searches every backend this machine runs x precision x INT8 layer exclusions (x pruning
with ``allow_prune``) at the user's batch size, judging each candidate by the calibrated
quality verdict against the FP32 torch reference (:mod:`accelkit.quality.verdict`, chosen
by :mod:`accelkit.autotune.choice`; see :mod:`accelkit.autotune.search`). Writes into ``out``: the chosen artifact with its
sidecar (recording the whole search), ``results.json/md/csv`` in the bench schema (one
row per candidate timed), ``pareto.png`` (images/s vs FID drift, the budget line, the
chosen point), ``optimize.json`` and the journal that lets a killed search resume.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.benchmark.render import fmt_num
from accelkit.errors import BackendUnavailableError, InputError
from accelkit.pipelines.options import (
    LoadOptions,
    OptimizeOptions,
    resolve_artifact,
    trusts_code,
)
from accelkit.pipelines.results import Result

Progress = Callable[[str], None]


@dataclass
class OptimizeResult(Result):
    """The search outcome, the report and the files written.

    Attributes:
        outcome: :class:`accelkit.autotune.search.SearchOutcome`.
        report: The candidates as a bench report (one row each, quality where checked).
        files: Kind -> path of every file written.
        chosen_artifact: The chosen build's file in ``out`` (None when it is the torch
            model itself run with other runtime options).
        commands: ``accelkit`` commands that reproduce the chosen build and re-measure it.
        budget: The budget, in words.
    """

    outcome: Any
    report: Any
    files: dict[str, Path] = field(default_factory=dict)
    chosen_artifact: Path | None = None
    commands: list[str] = field(default_factory=list)
    budget: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The search record (as in ``optimize.json``)."""
        o = self.outcome
        ratio, withheld = o.speedup(o.chosen)
        return {
            "budget": self.budget,
            "chosen": o.chosen.to_dict(),
            "chosen_artifact": str(self.chosen_artifact) if self.chosen_artifact else None,
            "speedup_vs_torch_fp32": ratio,
            "speedup_withheld": withheld,
            "confirmation": o.confirmation,
            "noise_floor_fid": o.noise_floor_fid,
            "threads": o.threads,
            "cpu_peak_gflops": o.cpu_peak_gflops,
            "complete": o.complete,
            "resumed": o.resumed,
            "seconds": o.seconds,
            "candidates": candidate_records(o),
            "not_offered": o.not_offered,
            "commands": self.commands,
            "notes": o.notes,
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def to_text(self) -> str:
        """A table of the candidates, the choice, how the time was spent, the commands."""
        o = self.outcome
        lines = [
            f"budget: {self.budget}"
            + (
                f" (FID noise floor {o.noise_floor_fid:.3g}, for comparison: it decides nothing)"
                if o.noise_floor_fid is not None
                else ""
            ),
            *([m] if (m := mde_line(o.tried)) else []),
            f"threads: {o.threads} for the baseline and every candidate"
            if o.threads
            else "threads: not set (a CUDA device)",
            "",
            "| candidate | img/s | vs torch fp32 | quick PSNR | FID drift | decision |",
            "|---|---:|---:|---:|---:|---|",
        ]
        withheld: list[str] = []
        for t in sorted(o.tried, key=lambda t: -(t.images_per_sec or -1.0)):
            ips = t.images_per_sec
            drift = (t.drift or {}).get("fid_drift")
            ratio, why = o.speedup(t) if t is not o.baseline else (1.0, None)
            if why:
                withheld.append(f"{t.candidate.id}: {why}")
            sp = f"{ratio:.2f}x" if ratio is not None else ("withheld" if why else "—")
            lines.append(
                f"| {t.candidate.id} | {f'{ips:.1f}' if ips else '—'}{' (unstable)' if t.unstable else ''} | {sp} "
                f"| {_db(t.quick_psnr_db)} | {f'{drift:.3g}' if drift is not None else '—'} | {t.status}: {t.reason} |"
            )
        if withheld:
            lines += ["", "speed-ups withheld (a ratio is printed only when both sides hold):"]
            lines += [f"  {w}" for w in withheld]
        c = o.chosen
        lines += [
            "",
            f"chosen: {c.candidate.id} — {c.images_per_sec:.1f} img/s at batch {c.row['batch_size'] if c.row else '?'}; {c.reason}",
        ]
        conf = o.confirmation
        if conf:
            lines.append(confirmation_line(conf))
        if self.chosen_artifact:
            lines.append(f"artifact: {self.chosen_artifact} (+ sidecar with the search record)")
        spent = ", ".join(f"{k} {v:.0f} s" for k, v in o.seconds.items() if k != "total")
        lines.append(
            f"time: {o.seconds.get('total', 0):.0f} s ({spent})"
            + ("" if o.complete else "; the search stopped early (see the decisions)")
        )
        if o.resumed:
            lines.append("resumed from the journal of an earlier run")
        lines += [f"note: {n}" for n in o.notes]
        lines += [f"not offered here: {n}" for n in o.not_offered]
        lines += ["", "reproduce and re-measure:", *[f"  {cmd}" for cmd in self.commands]]
        lines.append("wrote " + ", ".join(str(p) for p in self.files.values()))
        return "\n".join(lines)


def mde_line(tried: Any) -> str | None:
    """What the quality verdict could detect at the N used, from the first judged build.

    ``quality verdict at N = 500 (paired test): accepts builds above 35.1 dB and rejects
    builds below 34.9 dB with 90 % power`` (None when no build's quality was judged).
    """
    import math

    def is_reference(t: Any) -> bool:
        return (getattr(t, "drift", None) or {}).get("drift_verdict") == "reference"

    for t in sorted(tried, key=is_reference):  # a candidate's spread first, the reference's last
        v = getattr(t, "verdict", None)
        if v is None or v.test not in ("paired", "distribution") or not math.isfinite(v.mde):
            continue
        if v.test == "paired":
            db = v.details.get("mde_db") or {}
            acc, rej = db.get("accept_above"), db.get("reject_below")
            acc_txt = (
                f"accepts builds above {acc:.1f} dB"
                if isinstance(acc, (int, float)) and math.isfinite(acc)
                else "cannot be sure to accept a build with any error"
            )
            rej_txt = f"rejects builds below {rej:.1f} dB" if isinstance(rej, (int, float)) else ""
            what = f"{acc_txt} and {rej_txt}" if rej_txt else acc_txt
            return (
                f"quality verdict at N = {v.n} (paired test, {v.details.get('margin_db', '?')} dB margin): "
                f"{what} with {v.power:.0%} power (MDE {v.mde:.3g} in per-image MSE)"
            )
        return (
            f"quality verdict at N = {v.n} (distribution test): detects a KID change x1e3 of "
            f"{v.mde * 1e3:.3g} from the margin with {v.power:.0%} power"
        )
    return None


def confirmation_line(conf: dict[str, Any]) -> str:
    """The interleaved confirmation in one line: the ratio with its interval, or why it is withheld."""
    head = f"confirmed interleaved with torch fp32 ({conf.get('rounds', '?')} rounds)"
    if conf.get("speedup") is None:
        return (
            f"{head}: {fmt_num(conf.get('chosen_images_per_sec'))} vs {fmt_num(conf.get('baseline_images_per_sec'))} img/s; "
            f"speed-up withheld: {conf.get('withheld') or 'the rounds do not hold'} (re-run on a quiet machine, or bench --vs)"
        )
    return f"{head}: {conf['speedup']:.2f}x [{conf['speedup_low']:.2f}, {conf['speedup_high']:.2f}]"


def candidate_records(outcome: Any) -> list[dict[str, Any]]:
    """Every candidate's record with its speed-up over the baseline, or why it is withheld."""
    out = []
    for t in outcome.tried:
        ratio, why = outcome.speedup(t)
        out.append({**t.to_dict(), "speedup_vs_torch_fp32": ratio, "speedup_withheld": why})
    return out


def _finite(obj: Any) -> Any:
    """Strict JSON: an infinite PSNR (identical outputs) becomes null."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _db(v: float | None) -> str:
    if v is None:
        return "—"
    return "inf" if v == float("inf") else f"{v:.1f} dB"


def optimize(
    generator: Any = None,
    options: OptimizeOptions | None = None,
    progress: Progress | None = None,
    *,
    started: float | None = None,
) -> OptimizeResult:
    """Find the fastest build whose quality drift stays within the budget; write it with its proof.

    Args:
        generator: Path, bundled name, :class:`LoadOptions` or torch :class:`Artifact`.
        options: :class:`OptimizeOptions`.
        progress: Called with a status line (candidates done / left, best so far).
        started: ``time.monotonic()`` when the time budget started (the command line passes
            its process's start); default: when this call starts.

    Returns:
        :class:`OptimizeResult`.

    Raises:
        InputError: Bad options, an ONNX input (the search needs the torch model), ``out``
            holding another search without ``force``.
        BackendUnavailableError: A backend named in ``backends`` cannot run here.
    """
    import time

    from accelkit.autotune.choice import Budget
    from accelkit.autotune.journal import Journal
    from accelkit.autotune.search import Clock, Search, search_key
    from accelkit.autotune.space import enumerate_candidates
    from accelkit.benchmark.plan import is_torchscript, resolve_device
    from accelkit.cache import cache_key
    from accelkit.files import folder_lock, sha256_file
    from accelkit.host import has_native_bf16
    from accelkit.quality.features import resolve_weights
    from accelkit.runners.base import available_backends, backend_names, runner_class

    if started is None:
        started = time.monotonic()  # the time budget covers the whole call
    opts = (options or OptimizeOptions()).validated()
    budget = Budget.parse(opts.budget)
    say = progress or (lambda m: None)
    device = resolve_device(opts.device)
    unknown = [b for b in opts.backends if b not in backend_names()]
    if unknown:
        raise InputError(
            f"--backend {','.join(unknown)} is unknown; choose from {', '.join(backend_names())}"
        )
    available = available_backends(device)
    for b in opts.backends:
        if b not in available:
            reason = runner_class(b).availability(device)
            raise BackendUnavailableError(
                f"--backend {b} cannot run on {device} here: {reason}; available here: {', '.join(available)}"
            )
    # only the backends asked for are searched; the FP32 torch baseline (the reference) always runs
    backends = [b for b in available if not opts.backends or b in opts.backends]
    weights = resolve_weights(opts.fid.weights)  # no FID weights: fail before any work
    from accelkit.loading import require_format

    diffusion = require_format(generator, ("torch", "diffusion"), "{source}") == "diffusion"
    opts = opts.for_kind(diffusion)  # --fid not given: the kind's default N
    if diffusion:
        return _optimize_pipeline(generator, opts, budget, device, say, started)
    require_format(
        generator,
        ("torch",),
        "optimize needs the torch generator (the FP32 reference and the model to accelerate), not an exported file",
    )
    say("loading the generator")
    art = resolve_artifact(generator)
    from accelkit.quality.features import check_weights_code

    check_weights_code(opts.fid.weights, trusts_code(generator))  # the extractor is code too
    if art.format != "torch":
        raise InputError(
            "optimize needs the torch generator (the FP32 reference and the model to accelerate), not an exported file"
        )
    threads = opts.threads.resolve(device)  # one policy: the baseline and every candidate
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    workdir = out / "artifacts"
    space = enumerate_candidates(
        device=device,
        backends=backends,
        native_bf16=has_native_bf16() and not device.startswith("cuda"),
        threads=threads,
        prune_ratios=opts.prune_ratios if opts.allow_prune else (),
        precisions=opts.precisions,
        scripted=is_torchscript(art),
        batch_range=(1, max(1, opts.batch), max(2, opts.batch)),
        cache_dir=str(workdir / "engines"),
    )
    with folder_lock(out, "a search"):
        workdir.mkdir(exist_ok=True)
        key_doc = {
            "generator_sha256": art.source_sha256,
            "spec": art.spec.to_dict() | {"inferred": None},
            **search_key(opts, budget, device, backends, space.candidates),
            # The FID extractor by content, not by path: a file replaced at the same path (or
            # another $ACCELKIT_FID_WEIGHTS) changes every FID the journal holds (issue 22).
            "fid_weights": sha256_file(weights),
        }
        journal = Journal(out / "journal.jsonl", cache_key(key_doc), key_doc, force=opts.force)
        outcome = Search(
            art,
            opts,
            budget=budget,
            device=device,
            threads=threads,
            space=space,
            workdir=workdir,
            journal=journal,
            clock=Clock(opts.time_budget_s, started),
            progress=say,
            trust_code=trusts_code(generator),
        ).run()
        return _write_outputs(
            art,
            opts,
            budget,
            outcome,
            out,
            generator if isinstance(generator, LoadOptions) else None,
        )


def _optimize_pipeline(
    generator: LoadOptions | str | Artifact,
    opts: OptimizeOptions,
    budget: Any,
    device: str,
    say: Progress,
    started: float,
) -> Any:
    """A diffusion pipeline: :func:`accelkit.pipelines.optimize_diffusion.optimize_diffusion`."""
    from accelkit.files import folder_lock
    from accelkit.pipelines.optimize_diffusion import optimize_diffusion

    if opts.allow_prune:
        raise InputError("--allow-prune does not apply to a diffusion pipeline; drop it")
    if opts.fid.n < 20:
        raise InputError(
            f"--fid {opts.fid.n}: a diffusion search judges steps and caches with the "
            "distribution-level test, which needs at least 20 images per set; give --fid 20 or more"
        )
    from accelkit.quality.features import check_weights_code

    check_weights_code(opts.fid.weights, trusts_code(generator))  # the extractor is code too
    say("loading the pipeline")
    art = resolve_artifact(generator)
    text = generator.generator if isinstance(generator, LoadOptions) else art.source
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    with folder_lock(out, "a search"):
        if (out / "optimize.json").exists() and not opts.force:
            raise InputError(f"{out} already holds a search; pass --force to replace it")
        return optimize_diffusion(art, opts, budget, device, out, str(text), say, started)


def _write_outputs(
    art: Artifact,
    opts: OptimizeOptions,
    budget: Any,
    outcome: Any,
    out: Path,
    load: LoadOptions | None = None,
) -> OptimizeResult:
    from accelkit.benchmark.plot import plot_pareto
    from accelkit.benchmark.report import BenchRow, Report
    from accelkit.files import write_text_atomic

    report = Report()
    report.settings["generator"] = Path(art.source).name if art.source else "in-memory"
    report.settings["generator_sha256"] = (art.source_sha256 or "")[:16]
    for t in outcome.tried:
        if t.row is None:
            continue
        row = BenchRow.from_dict(dict(t.row))
        row.variant = t.candidate.variant
        if t.drift:
            for k, v in t.drift.items():
                if hasattr(row, k):
                    setattr(row, k, v)
        row.extra = {
            **(row.extra or {}),
            "optimize": {"candidate": t.candidate.id, "status": t.status, "reason": t.reason},
        }
        report.add_row(row)
    if outcome.cpu_peak_gflops:
        report.settings["cpu_peak_gflops"] = outcome.cpu_peak_gflops
    report.compute_speedups()
    commands = reproduce_commands(art, opts, outcome.chosen.candidate, load)
    record = {
        "budget": budget.describe(),
        "chosen": outcome.chosen.to_dict(),
        "noise_floor_fid": outcome.noise_floor_fid,
        "threads": outcome.threads,
        "seconds": outcome.seconds,
        "complete": outcome.complete,
        "confirmation": outcome.confirmation,
        "candidates": candidate_records(outcome),
        "not_offered": outcome.not_offered,
        "commands": commands,
    }
    report.settings["optimize"] = record
    report.pictures = (
        False  # no sample grids here: the search keeps no images; pareto.png is its picture
    )
    files = report.write(out, plot=True)
    pts: list[tuple[str, float, float, str]] = [
        (t.candidate.id, float(fid), float(ips), t.status + (" unstable" if t.unstable else ""))
        for t in outcome.tried
        if t.drift
        and (fid := t.drift.get("fid_drift")) is not None
        and (ips := t.images_per_sec) is not None
    ]
    files["pareto"] = plot_pareto(
        pts,
        out / "pareto.png",
        budget_fid=budget.fid_line(outcome.noise_floor_fid),
        noise_floor=outcome.noise_floor_fid,
        title=f"batch {opts.batch}; budget: {budget.describe()}",
    )
    chosen_path = _save_chosen(art, outcome, record, out)
    result = OptimizeResult(outcome, report, files, chosen_path, commands, budget.describe())
    write_text_atomic(
        out / "optimize.json",
        json.dumps(_finite(result.to_dict()), indent=2, default=str, allow_nan=False) + "\n",
    )
    result.files["optimize"] = out / "optimize.json"
    return result


def _save_chosen(art: Artifact, outcome: Any, record: dict[str, Any], out: Path) -> Path | None:
    """Copy the chosen build's file into ``out`` with a sidecar holding the search record."""
    from accelkit.artifact import read_sidecar
    from accelkit.loading import load_generator

    chosen = outcome.chosen
    src = chosen.artifact
    if not src:
        return None  # the original torch model with runtime options: the commands say how to run it
    p = Path(src)
    dest = out / f"{art.name}.optimized{''.join(p.suffixes[-1:])}"
    built = load_generator(p) if p.suffix == ".onnx" else None
    side = read_sidecar(p) or {}
    base = (
        built
        if built is not None
        else Artifact(
            format="torch",
            spec=art.spec,
            path=p,
            source=art.source,
            source_sha256=art.source_sha256,
        )
    )
    meta = {**side.get("meta", {}), **(base.meta or {}), "optimize": record}
    chosen_art = base.derive(
        path=dest,
        meta=meta,
        passes=side.get("passes", base.passes)
        + [{"name": "optimize", "options": {"candidate": chosen.candidate.id}}],
    )

    def copy(tmp: Path) -> None:
        shutil.copyfile(p, tmp)

    chosen_art.save(copy, force=True)
    return dest


def reproduce_commands(
    art: Artifact, opts: OptimizeOptions, cand: Any, load: LoadOptions | None = None
) -> list[str]:
    """The ``accelkit`` commands that rebuild the chosen candidate and re-measure it on fresh latents (seed + 1).

    The loading flags the user gave (``--arch``, ``--input``, ``--output-range``...) are
    repeated where the generator is loaded; the re-measurement names the generator as
    ``--reference`` (with ``--reference-arch`` for weight-only files), so its drift is
    against the same FP32 torch model.
    """
    gen = _generator_arg(art)
    arch_flags, spec_flags = _load_flags(art, load)
    q = shlex.quote
    cmds: list[str] = []
    model, model_flags = gen, arch_flags + spec_flags
    if cand.prune_ratio:
        pruned = f"{art.name}.pruned{round(cand.prune_ratio * 100)}.pt"
        cmds.append(
            # the search distilled without a time limit and judges quality itself (the next command)
            f"accelkit prune {gen}{arch_flags}{spec_flags} --ratio {cand.prune_ratio:g} --distill-steps {opts.distill_steps} "
            f"--distill-time 0 --fid 0 --seed {opts.seed} -o {q(pruned)}"
        )
        model, model_flags = q(pruned), ""
    threads = f" --threads {opts.threads.count}" if opts.threads.count else ""
    fid = f" --fid {opts.fid.n} --seed {opts.seed + 1}" + (
        f" --fid-weights {q(str(opts.fid.weights))}" if opts.fid.weights else ""
    )
    ref = f" --reference {gen}" + arch_flags.replace(" --arch ", " --reference-arch ").replace(
        " --arch-kwargs ", " --reference-arch-kwargs "
    )
    if cand.source == "torch":
        flags = (" --compile" if cand.runner_options.get("compile") else "") + (
            " --channels-last" if cand.runner_options.get("channels_last") else ""
        )
        reference = ref if cand.prune_ratio else ""
        cmds.append(
            f"accelkit bench {model}{model_flags} --backend torch --precision {cand.precision} --batch {opts.batch}{flags}{threads}{fid}"
            f"{reference}{spec_flags if cand.prune_ratio else ''} --out remeasure"
        )
        return cmds
    name = f"{art.name}{f'.pruned{round(cand.prune_ratio * 100)}' if cand.prune_ratio else ''}.{cand.source.split('-')[1]}.onnx"
    export = f"accelkit export {model}{model_flags}"
    if cand.source == "onnx-fp16":
        export += " --fp16" + (
            f" --fp16-headroom {cand.fp16_headroom:g}" if cand.fp16_headroom is not None else ""
        )
    elif cand.source == "onnx-int8":
        export += f" --int8 --calib {opts.int8.calib}" + "".join(
            f" --exclude {q(p)}" for p in cand.exclude
        )
    from accelkit.autotune.search import search_recipe

    lo, mid, hi = search_recipe(opts).onnx.batch_range  # the recipe the search built with
    cmds.append(f"{export} --batch-range {lo}:{mid}:{hi} -o {q(name)}")
    cmds.append(
        f"accelkit bench {q(name)} --backend {cand.backend} --precision {cand.precision} --batch {opts.batch}{threads}{fid}{ref}{spec_flags} --out remeasure"
    )
    return cmds


def _generator_arg(art: Artifact) -> str:
    from accelkit.models import BUNDLED, bundled_path

    src = art.source or ""
    for name in BUNDLED:
        try:
            if Path(src).resolve() == bundled_path(name).resolve():
                return name
        except Exception:  # noqa: BLE001 - a bundled file that is missing is just not this one
            continue
    return shlex.quote(src)


def _load_flags(art: Artifact, load: LoadOptions | None = None) -> tuple[str, str]:
    """``(architecture flags, every other loading flag)`` that load the generator as the search did.

    From the artifact's load record (:func:`accelkit.loading.reproduce_flags`): every flag that
    shaped loading (``--arch``/``--arch-kwargs``, ``--input``, ``--output-range``,
    ``--output-shape``, ``--latent-dist``, ``--truncation``, ``--dynamic-hw``/``--hw-range``,
    ``--trust-code``), so a printed command needs nothing added.
    """
    from accelkit.loading import load_record, reproduce_flags, shell_join

    arch = load_record(art).arch_flags()
    rest = reproduce_flags(art)[len(arch) :]
    return (f" {shell_join(arch)}" if arch else ""), (f" {shell_join(rest)}" if rest else "")
