"""Text renderings of a benchmark report: ``results.md``, ``results.csv`` and number formatting.

The report's data live in :mod:`accelkit.benchmark.report`; this module only reads them
(it never imports the report module, which calls it). :func:`fmt_num` is the one number
format for people, shared by the report and the gate's outputs.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import Any, Protocol


class ReportLike(Protocol):
    """What the renderers read from a :class:`~accelkit.benchmark.report.Report`."""

    rows: list[Any]
    environment: dict[str, Any]
    settings: dict[str, Any]
    created: str

    def compute_speedups(self) -> None: ...


# ------------------------------------------------------------------------ numbers
def fmt_num(v: float | None) -> str:
    """A number for people: thousands separators from 1,000, 1 decimal from 100, 2 from 1, else 3 significant digits; ``—`` for None."""
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def csv_num(v: float | None) -> str:
    """A number for ``results.csv``: 6 significant digits, empty for None."""
    return "" if v is None else f"{v:.6g}"


# ------------------------------------------------------------------------ markdown
def sorted_rows(report: ReportLike, rows: Iterable[Any]) -> list[Any]:
    """``rows`` ordered by batch size, then by where their (backend, precision) first appears in the report."""
    order: dict[tuple[str, str], int] = {}
    for r in report.rows:
        order.setdefault((r.label, r.precision), len(order))
    return sorted(rows, key=lambda r: (r.batch_size, order[(r.label, r.precision)]))


def to_markdown(report: ReportLike) -> str:
    """``results.md``: the table a person reads first, then skipped/failed rows with reasons.

    Fills the report's speed-ups first (:meth:`~accelkit.benchmark.report.Report.compute_speedups`).
    """
    report.compute_speedups()
    env = report.environment
    lines = ["# accelkit benchmark", ""]
    devices = sorted({r.device for r in report.rows}) or ["—"]
    cpu = env.get("cpu", {})
    gpus = ", ".join(g.get("name", "?") for g in env.get("gpus", [])) or "none"
    vers = env.get("versions", {})
    vtxt = ", ".join(
        f"{k} {v}"
        for k, v in vers.items()
        if v
        and k in ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "accelkit")
    )
    lines.append(
        f"Created {report.created} on {', '.join(devices)}. CPU: {cpu.get('model', '?')} ({cpu.get('available_cores', '?')} cores available); GPU: {gpus}."
    )
    if cpu.get("isa"):
        isa = cpu["isa"]
        flags = (
            ", ".join(k for k, v in (isa.get("flags") or {}).items() if v)
            or "none of avx2/avx512/amx"
        )
        lines.append(
            f"ISA: {isa.get('summary', '?')} ({flags}); affinity CPUs {cpu.get('affinity', '?')}; threads per row in results.json (`runner`)."
        )
    if vtxt:
        lines.append(f"Versions: {vtxt}.")
    if report.settings:
        # Structured settings (optimize's search record) get their own section; they are in results.json whole.
        flat = {k: v for k, v in report.settings.items() if not isinstance(v, (dict, list))}
        if flat:
            lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in flat.items()) + ".")
    loads = [r.load_average_1m for r in report.rows if r.load_average_1m is not None]
    cores = cpu.get("available_cores")
    if loads and isinstance(cores, int) and max(loads) > cores:
        lines.append(
            f"Note: the 1-minute load average reached {max(loads):.1f} on {cores} cores during the run; other processes "
            "competed for the CPU, so CPU numbers are pessimistic and noisy (re-run on a quiet machine for figures to quote)."
        )
    lines.append("")
    shown = sorted_rows(
        report,
        [
            r
            for r in report.rows
            if r.status != "skipped" and getattr(r, "scenario", "in_process") != "serving"
        ],
    )
    if shown:
        lines.append(
            "| backend | precision | batch | images/s | p50 ms | p99 ms | vs torch fp32 | status |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---|")
        for r in shown:
            if r.status == "ok" and r.images_per_sec is not None:
                half_iqr = (r.images_per_sec_spread or {}).get("iqr", 0.0) / 2
                ips = f"{fmt_num(r.images_per_sec)} ± {fmt_num(half_iqr)}"
                p50 = fmt_num((r.latency_ms or {}).get("p50"))
                p99 = fmt_num((r.latency_ms or {}).get("p99"))
                sp = (
                    f"{r.speedup_vs_torch_fp32:.2f}×"
                    if r.speedup_vs_torch_fp32 is not None
                    else "—"
                )
                if r.unstable:
                    sp = "unstable"
                elif r.speedup_vs_torch_fp32 is None and getattr(r, "speedup_withheld", None):
                    sp = "withheld"
            else:
                ips = p50 = p99 = sp = "—"
            status = f"**unstable**: {r.unstable_reason}" if r.unstable else r.status
            lines.append(
                f"| {r.label} | {r.precision} | {r.batch_size} | {ips} | {p50} | {p99} | {sp} | {status} |"
            )
        n_rep = sorted({len(r.images_per_sec_samples) for r in shown if r.status == "ok"})
        lines.append("")
        lines.append(
            f"images/s is the median over {'/'.join(map(str, n_rep)) or 'the'} timed repeats, ± half the interquartile range of those repeats; "
            "p50/p99 are per-batch latencies; 'vs torch fp32' divides by plain torch fp32 at the same batch size on the same device."
        )
        withheld = [r for r in shown if not r.unstable and getattr(r, "speedup_withheld", None)]
        if withheld:
            lines.append("")
            lines.append("Speed-ups withheld (a ratio is shown only when both sides hold):")
            for r in withheld:
                lines.append(
                    f"- {r.label} {r.precision} batch {r.batch_size}: {r.speedup_withheld}"
                )
        if any(r.unstable for r in shown):
            lines.append("")
            lines.append(
                "**unstable** rows: their repeats disagree (coefficient of variation above the threshold) or other processes kept "
                "the cores busy while they ran (threads + busy cores > cores); their images/s is what was measured, but it is not a "
                "number to quote, and no speed-up is computed from it. Re-run on a quiet machine, or with fewer --threads."
            )
    elif not any(getattr(r, "scenario", "in_process") == "serving" for r in report.rows):
        lines.append("No measurements.")  # a load test's rows are in the serving section below
    lines += diffusion_markdown(report)
    lines += quality_markdown(report)
    lines += serving_markdown(report)
    lines += optimize_markdown(report)
    for status, title in (("failed", "Failed"), ("skipped", "Skipped")):
        groups: dict[tuple[str, str, str, str], list[int]] = {}
        for r in report.rows:
            if r.status == status:
                groups.setdefault(
                    (r.label, r.precision, r.device, r.reason or "no reason given"), []
                ).append(r.batch_size)
        if groups:
            lines += ["", f"## {title}", ""]
            for (label, prec, dev, reason), batches in groups.items():
                bs = ", ".join(str(b) for b in sorted(set(batches)))
                lines.append(f"- **{label} {prec}** on {dev} (batch {bs}): {reason}")
    return "\n".join(lines) + "\n"


def diffusion_markdown(report: ReportLike) -> list[str]:
    """The sampler section of ``results.md`` for a diffusion pipeline (no lines otherwise):
    steps, scheduler, cache, ms per step, time shares and the speed-up over the reference sampler."""
    rows = [r for r in report.rows if getattr(r, "steps", None) is not None and r.status == "ok"]
    if not rows:
        return []
    rec = (report.settings or {}).get("diffusion") or {}
    ref = rec.get("reference_sampler") or {}
    lines = [
        "",
        "## Sampler (diffusion)",
        "",
        f"Each image is a whole sample: every denoising step plus the decode. The reference is torch fp32 at the "
        f"model's reference sampler ({ref.get('scheduler', '?')}, {ref.get('steps', '?')} steps), measured in this run "
        "from the same noise and labels.",
        "",
        "| backend | precision | batch | scheduler | steps | cache | ms/step | denoiser / scheduler / decoder | vs reference |",
        "|---|---|---:|---|---:|---|---:|---|---:|",
    ]
    for r in sorted_rows(report, rows):
        share = r.time_share or {}
        shares = (
            " / ".join(
                f"{100 * share.get(k, 0.0):.0f}%" for k in ("denoiser", "scheduler", "decoder")
            )
            if share
            else "—"
        )
        if r.speedup_vs_reference is not None:
            vs = f"{r.speedup_vs_reference:.2f}×"
        else:
            vs = "withheld" if r.speedup_vs_reference_withheld else "—"
        lines.append(
            f"| {r.label} | {r.precision} | {r.batch_size} | {r.scheduler} | {r.steps} | {r.cache} | "
            f"{fmt_num(r.ms_per_step)} | {shares} | {vs} |"
        )
    held = [r for r in rows if r.speedup_vs_reference is None and r.speedup_vs_reference_withheld]
    if held:
        lines += ["", "Speed-ups over the reference withheld:"]
        lines += [
            f"- {r.label} {r.precision} batch {r.batch_size}: {r.speedup_vs_reference_withheld}"
            for r in held
        ]
    return lines


def optimize_markdown(report: ReportLike) -> list[str]:
    """The search section of ``results.md`` written by ``accelkit optimize``: budget, choice, time, every candidate and its verdict."""
    rec = report.settings.get("optimize") if report.settings else None
    if not isinstance(rec, dict):
        return []
    chosen = rec.get("chosen") or {}
    cand = (chosen.get("candidate") or {}).get("id", "?")
    lines = [
        "",
        "## Search (accelkit optimize)",
        "",
        f"Budget: {rec.get('budget', '?')}. Chosen: **{cand}** ({chosen.get('reason', '')}).",
    ]
    conf = rec.get("confirmation") or {}
    if conf.get("speedup") is not None:
        lines.append(
            f"Confirmation, {conf.get('rounds', '?')} interleaved rounds against torch fp32 at the same batch: "
            f"{conf['speedup']:.2f}× (range {fmt_num(conf.get('speedup_low'))}–{fmt_num(conf.get('speedup_high'))})."
        )
    elif conf:
        lines.append(
            f"Confirmation, {conf.get('rounds', '?')} interleaved rounds against torch fp32 at the same batch: "
            f"{fmt_num(conf.get('chosen_images_per_sec'))} vs {fmt_num(conf.get('baseline_images_per_sec'))} images/s; "
            f"**speed-up withheld**: {conf.get('withheld') or 'the rounds do not hold'}; re-run on a quiet machine before quoting one."
        )
    secs = rec.get("seconds") or {}
    if secs:
        parts = ", ".join(
            f"{k} {v:.0f} s"
            for k, v in secs.items()
            if k != "total" and isinstance(v, (int, float))
        )
        total = secs.get("total")
        lines.append(
            f"Time: {fmt_num(total)} s in all ({parts}){'' if rec.get('complete', True) else '; stopped at the time budget'}."
        )
    lines += [
        "",
        "| candidate | images/s | vs torch fp32 | quick PSNR dB | FID drift | status | why |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for t in rec.get("candidates") or []:
        c = t.get("candidate") or {}
        psnr = t.get("quick_psnr_db")
        ptxt = "∞" if isinstance(psnr, float) and math.isinf(psnr) else fmt_num(psnr)
        sp = t.get("speedup_vs_torch_fp32")
        stxt = (
            f"{sp:.2f}×"
            if isinstance(sp, (int, float))
            else ("withheld" if t.get("speedup_withheld") else "—")
        )
        why = str(t.get("reason", ""))
        if t.get("speedup_withheld"):
            why += f" (speed-up withheld: {t['speedup_withheld']})"
        ips = fmt_num(t.get("images_per_sec")) + (" (unstable)" if t.get("unstable") else "")
        lines.append(
            f"| {c.get('id', '?')} | {ips} | {stxt} | {ptxt} | {fmt_num(t.get('fid_drift'))} | "
            f"{t.get('status', '?')} | {why.replace('|', '/')} |"
        )
    if rec.get("not_offered"):
        lines += ["", *[f"- not offered here: {n}" for n in rec["not_offered"]]]
    cmds = rec.get("commands") or []
    if cmds:
        lines += [
            "",
            "Reproduce the chosen build and re-measure it on fresh latents:",
            "",
            "```",
            *cmds,
            "```",
        ]
    lines += [
        "",
        "Speed vs drift of every candidate whose quality was measured: [pareto.png](pareto.png).",
    ]
    return lines


def serving_markdown(report: ReportLike) -> list[str]:
    """The serving section of ``results.md`` (``accelkit loadtest``): one line per concurrency level; no lines without serving rows."""
    rows = [
        r
        for r in report.rows
        if getattr(r, "scenario", "in_process") == "serving" and r.status == "ok"
    ]
    if not rows:
        return []
    lines = [
        "",
        "## Serving (Triton Inference Server)",
        "",
        "| served build | batch/request | concurrency | images/s | p50 ms | p90 ms | p99 ms | server queue ms | server compute ms | images/batch | vs in-process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(
        rows,
        key=lambda r: (r.backend, r.variant or "", r.precision, r.batch_size, r.concurrency or 0),
    ):
        lat = r.latency_ms or {}
        srv = r.server_latency_ms or {}
        compute = sum(v for k, v in srv.items() if k.startswith("compute_")) if srv else None
        half_iqr = (r.images_per_sec_spread or {}).get("iqr", 0.0) / 2
        ratio = r.extra.get("vs_in_process")
        base = r.backend if not r.variant else f"{r.backend}:{r.variant}"
        lines.append(
            f"| {base} {r.precision} | {r.batch_size} | {r.concurrency} | {fmt_num(r.images_per_sec)} ± {fmt_num(half_iqr)} | "
            f"{fmt_num(lat.get('p50'))} | {fmt_num(lat.get('p90'))} | {fmt_num(lat.get('p99'))} | {fmt_num(srv.get('queue'))} | "
            f"{fmt_num(compute)} | {fmt_num(r.extra.get('avg_server_batch'))} | {f'{ratio:.2f}×' if ratio else '—'} |"
        )
    lines += [
        "",
        "images/s: median over the measurement windows (± half their IQR), images completed per second at the client; p50/p90/p99: "
        "client latency per request (send to decoded response). Server queue/compute: Triton's own statistics, average per request "
        "(compute = input + infer + output; infer includes PyTriton's hop to the runner). images/batch: what the dynamic batcher formed. "
        "vs in-process: images/s over the same runner's in-process images/s at the request batch size, measured in the same run "
        "(— when not measured). Plot: [serving.png](serving.png).",
    ]
    return lines


def _db(v: Any) -> str:
    if v is None:
        return "∞"
    return "∞" if isinstance(v, float) and math.isinf(v) else f"{float(v):.1f}"


def quality_cells(r: Any) -> tuple[str, str, str]:
    """``(measured, interval, decides)`` cells of a row's quality verdict for people.

    Paired test: the excess error in dB with its interval and the PSNR band the test
    resolves at this N; distribution test: the KID delta x1e3 with its interval and MDE.
    """
    d = r.drift_detail or {}
    det = d.get("details") or {}
    iv = d.get("interval") or [None, None]
    if d.get("test") == "paired":
        idb = det.get("interval_db") or [None, None]
        mde = det.get("mde_db") or {}
        decides = (
            f"accepts > {_db(mde.get('accept_above'))}, rejects < {_db(mde.get('reject_below'))} dB"
        )
        if r.drift_verdict == "reference":
            return ("—", "—", decides)
        return (f"{_db(det.get('psnr_db'))} dB", f"[{_db(idb[0])}, {_db(idb[1])}] dB", decides)
    if d.get("test") == "distribution":
        k = 1e3

        def kid(v: Any) -> str:
            return "—" if v is None else f"{float(v) * k:.3g}"

        return (
            f"KID Δ×1e3 {kid(d.get('estimate'))}",
            f"[{kid(iv[0])}, {kid(iv[1])}] (margin {kid(d.get('margin'))})",
            f"MDE ×1e3 {kid(d.get('mde'))}",
        )
    return ("—", "—", "—")


def quality_markdown(report: ReportLike) -> list[str]:
    """The quality section of ``results.md`` (one line per backend+precision); no lines when not measured."""
    seen: dict[tuple[str, str], Any] = {}
    for r in report.rows:
        if r.fid_drift is not None:
            seen.setdefault((r.label, r.precision), r)
    if not seen:
        return []
    q = next(iter(seen.values())).quality or {}
    vs = (report.settings.get("fid") or {}).get("verdict_settings") or {}
    noise = (report.settings.get("fid") or {}).get("numerical_noise")
    margin = vs.get("margin_db", 35.0)
    lines = [
        "",
        "## Quality vs FP32 torch",
        "",
        f"N = {q.get('n', '?')} images per set, seed {q.get('seed', '?')}, extractor {q.get('extractor_name', '?')} "
        f"(sha256 {str(q.get('extractor_sha256', '?'))[:12]}…, resize {q.get('resize_mode', '?')}). "
        f"**Verdict**: the paired test, per image on the same latents: the build's error beyond the reference's own "
        f"numerical noise ({noise or 'not measured'}) must stay inside the {margin:g} dB visibility margin "
        f"({int(round(100 * vs.get('level', 0.9)))} % bootstrap interval; rejected also when more than "
        f"{100 * vs.get('tail_share', 0.01):g} % of images are detectably beyond it). `inconclusive`: this N cannot tell; "
        "the last column says what it resolves. See docs/quality.md.",
        "",
        "| backend | precision | verdict | test | error beyond noise | 90 % interval | at this N | worst image dB | "
        "FID drift (paired) / floor | old rule | KID drift | max abs err | uint8 changed | pictures |",
        "|---|---|---|---|---:|---|---|---:|---|---|---:|---:|---:|---|",
    ]
    pictures = getattr(report, "pictures", True)
    for (label, prec), r in seen.items():
        stem = f"{label.replace(':', '-')}_{prec}"
        pics = "—"
        if pictures:
            pics = f"[grid](grid_{stem}.png)" + (
                f", [diff](diff_{stem}.png)" if r.drift_verdict not in (None, "reference") else ""
            )
        measured, interval, decides = quality_cells(r)
        worst = ((r.drift_detail or {}).get("details") or {}).get("worst_image_db")
        lines.append(
            f"| {label} | {prec} | {r.drift_verdict or '—'} | {r.drift_test or '—'} | {measured} | {interval} | {decides} | "
            f"{_db(worst) if r.drift_detail else '—'} | {fmt_num(r.fid_drift)} / {fmt_num(r.noise_floor_fid)} | "
            f"{r.legacy_verdict or '—'} | {fmt_num(r.kid_drift)} | {fmt_num(r.max_abs_err)} | "
            f"{100 * (r.changed_uint8_fraction or 0):.2f}% | {pics} |"
        )
    reasons = [
        f"- {label} {prec}: {r.drift_reason}"
        for (label, prec), r in seen.items()
        if r.drift_reason and r.drift_verdict not in ("reference",)
    ]
    if reasons:
        lines += ["", *reasons]
    if pictures:
        lines += [
            "",
            "Pictures: [all backends on the same latents](samples_grid.png), [speed vs drift](speed_vs_drift.png); "
            "each `diff` grid shows |build − reference| × k on the same latents (k printed on the image; black = identical).",
        ]
    return lines


# ----------------------------------------------------------------------------- csv
#: Columns of ``results.csv``, in order.
CSV_COLUMNS = (
    "backend",
    "variant",
    "precision",
    "batch_size",
    "device",
    "status",
    "reason",
    "images_per_sec",
    "images_per_sec_p25",
    "images_per_sec_p75",
    "images_per_sec_min",
    "images_per_sec_max",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "peak_memory_mb",
    "memory_kind",
    "model_size_mb",
    "build_seconds",
    "flops_per_image",
    "mfu",
    "speedup_vs_torch_fp32",
    "repeats",
    "images_per_sec_samples",
    "artifact",
    "fid_drift",
    "noise_floor_fid",
    "drift_verdict",
    "kid_drift",
    "psnr_db",
    "max_abs_err",
    "changed_uint8_fraction",
    "legacy_verdict",
    "drift_test",
    "drift_interval_low",
    "drift_interval_high",
    "min_detectable_effect",
    "unstable",
    "unstable_reason",
    "cv",
    "busy_cores_others",
    "threads",
    "scenario",
    "concurrency",
    "server_queue_ms",
    "server_compute_infer_ms",
    "speedup_withheld",
    "steps",
    "scheduler",
    "cache",
    "ms_per_step",
    "speedup_vs_reference",
    "speedup_vs_reference_withheld",
)


def to_csv(report: ReportLike) -> str:
    """``results.csv``: one line per row, flat columns (:data:`CSV_COLUMNS`)."""
    report.compute_speedups()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in sorted_rows(report, report.rows):
        sp = r.images_per_sec_spread or {}
        lat = r.latency_ms or {}
        st = r.stability or {}
        w.writerow(
            [
                r.backend,
                r.variant or "",
                r.precision,
                r.batch_size,
                r.device,
                r.status,
                r.reason or "",
                csv_num(r.images_per_sec),
                csv_num(sp.get("p25")),
                csv_num(sp.get("p75")),
                csv_num(sp.get("min")),
                csv_num(sp.get("max")),
                csv_num(lat.get("p50")),
                csv_num(lat.get("p90")),
                csv_num(lat.get("p99")),
                csv_num(r.peak_memory_mb),
                r.memory_kind or "",
                csv_num(r.model_size_mb),
                csv_num(r.build_seconds),
                r.flops_per_image if r.flops_per_image is not None else "",
                csv_num(r.mfu),
                csv_num(r.speedup_vs_torch_fp32),
                len(r.images_per_sec_samples),
                ";".join(f"{s:.6g}" for s in r.images_per_sec_samples),
                r.artifact or "",
                csv_num(r.fid_drift),
                csv_num(r.noise_floor_fid),
                r.drift_verdict or "",
                csv_num(r.kid_drift),
                csv_num(r.psnr_db),
                csv_num(r.max_abs_err),
                csv_num(r.changed_uint8_fraction),
                r.legacy_verdict or "",
                r.drift_test or "",
                csv_num((r.drift_interval or [None, None])[0]),
                csv_num((r.drift_interval or [None, None])[1]),
                csv_num(r.min_detectable_effect),
                "true" if r.unstable else ("false" if r.status == "ok" else ""),
                r.unstable_reason or "",
                csv_num(st.get("cv")),
                csv_num(st.get("busy_cores_others")),
                st.get("threads") if st.get("threads") is not None else "",
                r.scenario,
                r.concurrency if r.concurrency is not None else "",
                csv_num((r.server_latency_ms or {}).get("queue")),
                csv_num((r.server_latency_ms or {}).get("compute_infer")),
                r.speedup_withheld or "",
                r.steps if r.steps is not None else "",
                r.scheduler or "",
                r.cache or "",
                csv_num(r.ms_per_step),
                csv_num(r.speedup_vs_reference),
                r.speedup_vs_reference_withheld or "",
            ]
        )
    return buf.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "ReportLike",
    "csv_num",
    "fmt_num",
    "quality_markdown",
    "serving_markdown",
    "sorted_rows",
    "to_csv",
    "to_markdown",
]
