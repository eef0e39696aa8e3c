"""How the gates' verdicts read: text, Markdown, JUnit XML and JSON, apart from how they are decided.

Every function takes a finished :class:`~accelkit.gate.compare.Comparison` (or
:class:`~accelkit.gate.ratio_gate.RatioGateResult`) and decides nothing: the verdicts,
the exit code and the reasons come from the object; this module only lays them out.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelkit.benchmark.render import fmt_num
from accelkit.errors import InputError
from accelkit.files import write_text_atomic
from accelkit.gate.classify import EXIT_UNRELIABLE, FAILING

if TYPE_CHECKING:
    from accelkit.gate.compare import Comparison, RowComparison
    from accelkit.gate.ratio_gate import RatioGateResult

ICONS = {
    "pass": "✅",
    "regression": "❌",
    "within-noise": "〰️",
    "improved": "🚀",
    "unreliable": "⚠️",
    "missing-metric": "❓",
    "missing-in-current": "❔",
    "new-in-current": "🆕",
    "failed": "💥",
}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:+.1f}%"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


# -------------------------------------------------------------------- status line
def status_word(comp: Comparison) -> str:
    """``PASS``, ``FAIL`` or ``UNRELIABLE (...)`` with what its exit code is and how to change it."""
    if comp.verdict == "fail":
        return "FAIL"
    if comp.verdict == "pass":
        return "PASS"
    if comp.accepted:
        return "UNRELIABLE (exit 0: --allow-unreliable)"
    if comp.cannot_compare:
        return f"UNRELIABLE (exit {EXIT_UNRELIABLE})"
    return f"UNRELIABLE (exit {EXIT_UNRELIABLE}; --allow-unreliable accepts it)"


def summary_line(comp: Comparison) -> str:
    """One line: the status, the verdict counts, and what the status rests on.

    Its counts always explain the status: ``FAIL`` comes with failing rows, ``UNRELIABLE``
    with unreliable or missing rows or a named reason, ``PASS`` with neither.
    """
    counts = ", ".join(f"{n} {v}" for v, n in comp.counts().items() if n) or "no rows"
    extra = ""
    if comp.env_mismatches and not comp.problems:
        extra = f"; {_plural(len(comp.env_mismatches), 'environment difference')}"
    status = status_word(comp)
    if comp.verdict == "fail":
        n = len(comp.failing_rows)
        also = (
            f"; {_plural(len(comp.undecided_rows), 'other row')} cannot be judged"
            if comp.undecided_rows
            else ""
        )
        return f"FAIL: {counts}{extra} — {_plural(n, 'failing row')}{also}"
    if comp.verdict == "unreliable":
        why = list(comp.problems)
        if comp.undecided_rows:
            why.append(
                f"no trustworthy speed verdict: {comp.unreliable_summary()}; {comp.remedy()}"
            )
        return f"{status}: {counts}{extra} — {'; '.join(why)}"
    return f"PASS: {counts}{extra}"


def rule_text(comp: Comparison) -> str:
    """The decision rule with this comparison's numbers, one sentence."""
    pct = f"{comp.max_slowdown * 100:g}%"
    conf = f"{comp.confidence * 100:g}%"
    text = (
        f"A row regresses when the whole {conf} bootstrap interval of current/baseline images/sec "
        f"(ratio of medians over the stored repeats, {comp.n_boot} resamples) lies below {1 - comp.max_slowdown:.3g} "
        f"(slower than the {pct} threshold beyond the measured noise); a slower point estimate whose interval "
        f"reaches the threshold is within-noise, or unreliable when the interval is wider than ±{pct}; a failed row always fails"
    )
    if not comp.interleaved:
        text += (
            "; across two runs a slower build is still a regression when versions, hardware or thread settings differ, "
            "but any verdict is unreliable when the loads differ or a machine was oversubscribed "
            "(the interval cannot see run-to-run changes)"
        )
    if comp.max_fid_drift is not None:
        text += f"; the FID drift may grow by at most {comp.max_fid_drift:g}"
    return (
        text
        + f"; exit 1 on a failing row, {EXIT_UNRELIABLE} when the gate cannot tell"
        + (" (accepted: --allow-unreliable)" if comp.allow_unreliable else "")
        + "."
    )


# -------------------------------------------------------------------------- table
def _cells(r: RowComparison) -> list[str]:
    conf = "—"
    if r.ci_low is not None and r.ci_high is not None:
        conf = f"{_pct(r.ci_low - 1)} … {_pct(r.ci_high - 1)}"
    fid = "—"
    if r.fid_baseline is not None or r.fid_current is not None:
        fid = f"{fmt_num(r.fid_baseline)} → {fmt_num(r.fid_current)}"
    return [
        f"{r.key.backend} {r.key.precision}",
        str(r.key.batch_size),
        r.key.device,
        fmt_num(r.baseline_ips),
        fmt_num(r.current_ips),
        _pct(r.change),
        conf,
        fid,
        r.verdict,
    ]


def _headers(comp: Comparison) -> list[str]:
    return [
        "row",
        "batch",
        "device",
        "baseline img/s",
        "current img/s",
        "change",
        f"{comp.confidence * 100:g}% CI of change",
        "FID drift",
        "verdict",
    ]


def _env_heading(comp: Comparison) -> str:
    if comp.strict:
        return "the gate cannot tell across them: --strict"
    return "a slower build across them is still a regression; other speed verdicts are unreliable"


def comparison_text(comp: Comparison) -> str:
    """A plain-text table for a terminal (no colour codes), then differences and the summary line."""
    headers = _headers(comp)
    body = [_cells(r) for r in comp.rows]
    widths = [
        max(len(h), *(len(row[i]) for row in body)) if body else len(h)
        for i, h in enumerate(headers)
    ]
    right = {1, 3, 4, 5}

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    lines = [
        f"baseline: {comp.baseline_name}"
        + (f" ({comp.baseline_created})" if comp.baseline_created else ""),
        f"current:  {comp.current_name}"
        + (f" ({comp.current_created})" if comp.current_created else ""),
        "",
        fmt(headers),
        "  ".join("-" * w for w in widths),
    ]
    lines.extend(fmt(c) for c in body)
    if not body:
        lines.append("(no rows to compare)")
    lines.append("")
    lines.extend(f"{r.verdict}: {r.key}: {r.reason}" for r in comp.rows if r.verdict != "pass")
    if comp.env_mismatches:
        lines.append(f"environment differences ({_env_heading(comp)}):")
        lines.extend(f"  {m}" for m in comp.env_mismatches)
    lines.extend(f"cannot tell: {p}" for p in comp.problems)
    lines.extend(f"note: {n}" for n in comp.notes)
    lines.append(rule_text(comp))
    lines.append(summary_line(comp))
    return "\n".join(lines) + "\n"


def comparison_markdown(comp: Comparison) -> str:
    """A Markdown summary for a CI job summary or a PR comment."""
    head = {
        "pass": "✅ no performance regression",
        "unreliable": "⚠️ unreliable: the gate cannot tell",
        "fail": "❌ performance regression",
    }[comp.verdict]
    lines = [f"## accelkit compare: {head}", "", f"**{summary_line(comp)}**", ""]
    lines.append(
        f"Baseline `{_md(comp.baseline_name)}`"
        + (f" ({comp.baseline_created})" if comp.baseline_created else "")
        + f" vs current `{_md(comp.current_name)}`"
        + (f" ({comp.current_created})" if comp.current_created else "")
        + "."
    )
    lines += ["", "| " + " | ".join(_headers(comp)) + " |"]
    lines.append(
        "|" + "|".join(["---", "---:", "---", "---:", "---:", "---:", "---", "---", "---"]) + "|"
    )
    for r in comp.rows:
        cells = _cells(r)
        cells[-1] = f"{ICONS.get(r.verdict, '')} {r.verdict}".strip()
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    if not comp.rows:
        lines.append("| (no rows) |  |  |  |  |  |  |  |  |")
    if comp.problems:
        lines += ["", "### Cannot tell", ""]
        lines += [f"- {_md(p)}" for p in comp.problems]
    details = [r for r in comp.rows if r.verdict != "pass"]
    if details:
        lines += ["", "### Details", ""]
        lines += [f"- **{_md(str(r.key))}** — {r.verdict}: {_md(r.reason)}" for r in details]
    if comp.env_mismatches:
        lines += ["", f"### Environment differences ({_md(_env_heading(comp))})", ""]
        lines += ["| what | baseline | current |", "|---|---|---|"]
        lines += [
            f"| {_md(m.field)} | {_md(m.baseline or '—')} | {_md(m.current or '—')} |"
            for m in comp.env_mismatches
        ]
    if comp.notes:
        lines += ["", "### Notes", ""]
        lines += [f"- {_md(n)}" for n in comp.notes]
    lines += ["", f"<sub>{_md(rule_text(comp))}</sub>", ""]
    return "\n".join(lines)


def comparison_junit(comp: Comparison) -> str:
    """JUnit XML: one ``testcase`` per row plus ``coverage`` and ``environment``.

    Failing rows (regression, failed, missing-metric) are ``failure`` elements; rows the
    gate cannot vouch for (unreliable, missing; new under ``strict``) are ``error``
    elements (``skipped`` when ``allow_unreliable`` accepts them), other new rows
    ``skipped``; when nothing was compared the ``coverage`` case is an ``error``;
    environment differences are an ``error`` of the ``environment`` case under ``strict``,
    else its output. So ``failures > 0`` exactly when the exit code is 1, and
    ``errors > 0`` when it is 3.
    """
    suite = ET.Element("testsuite", name="accelkit.compare")
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("baseline", comp.baseline_name),
        ("current", comp.current_name),
        ("max_slowdown", f"{comp.max_slowdown:g}"),
        ("max_fid_drift", "" if comp.max_fid_drift is None else f"{comp.max_fid_drift:g}"),
        ("confidence", f"{comp.confidence:g}"),
        ("strict", str(comp.strict).lower()),
        ("allow_unreliable", str(comp.allow_unreliable).lower()),
        ("exit_code", str(comp.exit_code)),
    ):
        ET.SubElement(props, "property", name=k, value=v)
    n = {"failure": 0, "error": 0, "skipped": 0}

    def mark(case: ET.Element, kind: str, message: str, kind_type: str, text: str = "") -> None:
        if kind == "error" and comp.accepted:
            kind = "skipped"
        n[kind] += 1
        el = ET.Element(kind, message=message)
        if kind != "skipped":
            el.set("type", kind_type)
            el.text = text or message
        case.insert(0, el)

    for r in comp.rows:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"accelkit.perf.{r.key.backend}.{r.key.precision}",
            name=f"batch {r.key.batch_size} on {r.key.device}",
            time="0",
        )
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(
            f"{k}: {v}" for k, v in r.to_dict().items() if v is not None and k != "findings"
        )
        if r.verdict in FAILING:
            mark(case, "failure", f"{r.verdict}: {r.reason}", r.verdict, r.reason)
        elif r.undecided(comp.strict):
            mark(case, "error", f"{r.verdict}: {r.reason}", r.verdict, r.reason)
        elif r.verdict == "new-in-current":
            n["skipped"] += 1
            case.insert(0, ET.Element("skipped", message=f"{r.verdict}: {r.reason}"))
    cov = ET.SubElement(suite, "testcase", classname="accelkit.perf", name="coverage", time="0")
    if comp.cannot_compare:
        n["error"] += 1
        err = ET.SubElement(cov, "error", message="; ".join(comp.cannot_compare), type="coverage")
        err.text = "\n".join(comp.cannot_compare)
    else:
        compared = sum(1 for r in comp.rows if r.compared)
        ET.SubElement(
            cov, "system-out"
        ).text = f"{compared} of {len(comp.rows)} rows compared on both sides"
    env = ET.SubElement(suite, "testcase", classname="accelkit.perf", name="environment", time="0")
    if comp.env_mismatches:
        text = "; ".join(str(m) for m in comp.env_mismatches)
        if comp.strict:
            mark(
                env,
                "error",
                f"environment differs: {text}",
                "environment",
                "\n".join(str(m) for m in comp.env_mismatches),
            )
        else:
            ET.SubElement(
                env, "system-out"
            ).text = f"environment differs ({_env_heading(comp)}): {text}"
    tests = len(comp.rows) + 2
    attrs = {
        "tests": str(tests),
        "failures": str(n["failure"]),
        "errors": str(n["error"]),
        "skipped": str(n["skipped"]),
        "time": "0",
    }
    for k, v in attrs.items():
        suite.set(k, v)
    root = ET.Element("testsuites", {"name": "accelkit compare", **attrs})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def comparison_dict(comp: Comparison) -> dict[str, Any]:
    """JSON-ready dict (for tools that want the verdicts as data)."""
    return {
        "exit_code": comp.exit_code,
        "verdict": comp.verdict,
        "accepted": comp.accepted,
        "summary": summary_line(comp),
        "counts": comp.counts(),
        "problems": comp.problems,
        "interleaved": comp.interleaved,
        "settings": {
            "max_slowdown": comp.max_slowdown,
            "max_fid_drift": comp.max_fid_drift,
            "confidence": comp.confidence,
            "n_boot": comp.n_boot,
            "seed": comp.seed,
            "strict": comp.strict,
            "allow_unreliable": comp.allow_unreliable,
        },
        "baseline": {"name": comp.baseline_name, "created": comp.baseline_created},
        "current": {"name": comp.current_name, "created": comp.current_created},
        "rows": [r.to_dict() for r in comp.rows],
        "environment_mismatches": [
            {"field": m.field, "baseline": m.baseline, "current": m.current}
            for m in comp.env_mismatches
        ],
        "notes": list(comp.notes),
    }


def write(
    comp: Comparison,
    *,
    markdown: str | os.PathLike[str] | None = None,
    junit: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Write the Markdown summary and/or the JUnit XML, each atomically (temp file + rename).

    Args:
        comp: The comparison.
        markdown: Destination of :func:`comparison_markdown` (``--markdown FILE``), or None.
        junit: Destination of :func:`comparison_junit` (``--junit FILE``), or None.

    Returns:
        ``{"markdown": path, "junit": path}`` for what was written.

    Raises:
        InputError: A destination cannot be written (one line).
    """
    written: dict[str, Path] = {}
    for kind, dest, text in (
        ("markdown", markdown, comparison_markdown),
        ("junit", junit, comparison_junit),
    ):
        if dest is None:
            continue
        p = Path(dest)
        try:
            if p.parent != Path(""):
                p.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(p, text(comp))
        except OSError as exc:
            raise InputError(
                f"cannot write --{kind} {p} ({exc.strerror or exc}); choose a writable path"
            ) from None
        written[kind] = p
    return written


# ---------------------------------------------------------------------- ratio gate
def ratio_gate_status(res: RatioGateResult) -> str:
    """The ratio gate's last line: PASS, FAIL or UNRELIABLE with its exit code."""
    if res.verdict == "pass":
        return "PASS"
    if res.verdict == "fail":
        return "FAIL"
    n = sum(1 for v in res.verdicts if v.verdict == "unreliable")
    exit_part = (
        "exit 0: allow_unreliable"
        if res.allow_unreliable
        else f"exit {EXIT_UNRELIABLE}; allow_unreliable accepts it"
    )
    return f"UNRELIABLE ({exit_part}): {n} of {len(res.verdicts)} batch sizes cannot be judged against this baseline"


def ratio_gate_text(res: RatioGateResult) -> str:
    """A short plain-text report: one line per batch size, notes, then the status line."""
    lines = [
        f"ratio gate: ort fp32 / torch fp32 images/sec, same run; tolerance {res.tolerance * 100:g}%, "
        f"{res.confidence * 100:g}% bootstrap CI"
    ]
    lines += [f"  batch {v.batch_size}: {v.verdict}: {v.reason}" for v in res.verdicts]
    lines += [f"  note: {n}" for n in res.notes]
    lines.append(ratio_gate_status(res))
    return "\n".join(lines) + "\n"


def ratio_gate_dict(res: RatioGateResult) -> dict[str, Any]:
    """The ratio gate's verdicts as a JSON-ready dict."""
    return {
        "exit_code": res.exit_code,
        "verdict": res.verdict,
        "allow_unreliable": res.allow_unreliable,
        "tolerance": res.tolerance,
        "confidence": res.confidence,
        "verdicts": [vars(v).copy() for v in res.verdicts],
        "notes": list(res.notes),
    }


__all__ = [
    "comparison_dict",
    "comparison_junit",
    "comparison_markdown",
    "comparison_text",
    "fmt_num",
    "ratio_gate_dict",
    "ratio_gate_status",
    "ratio_gate_text",
    "rule_text",
    "status_word",
    "summary_line",
    "write",
]
