"""``export_onnx`` and ``quantize``: a generator to verified fp32/fp16/int8 ONNX."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact, sidecar_path
from accelkit.errors import InputError
from accelkit.pipelines.options import (
    ExportOptions,
    Precision,
    QuantizeOptions,
    resolve_artifact,
)
from accelkit.pipelines.results import Result, inferred_notes

Progress = Callable[[str], None]


def _int8_lines(art: Artifact) -> tuple[list[str], list[str]]:
    meta = art.meta.get("int8")
    if not meta:
        return [], []
    what = ", ".join(f"{k} {v}" for k, v in meta["quantized_nodes"].items()) or "nothing"
    cal = meta["calibration"]
    cache = {"hit": ", ranges from the cache", "miss": ", ranges cached"}.get(
        cal.get("cache", ""), ""
    )
    src = f" from {cal['images']['folder']}" if cal.get("images") else ""
    line = (
        f"quantized: {what}; kept in float: {len(meta['excluded_nodes'])} excluded nodes; "
        f"calibration: {cal['samples']} samples{src}, {cal['method']}, seed {cal['seed']}{cache}"
    )
    return [line], ([meta["warning"]] if meta.get("warning") else [])


@dataclass
class ExportResult(Result):
    """A written ONNX artifact (fp32, fp16 or int8) and how it was verified."""

    artifact: Artifact

    def to_dict(self) -> dict[str, Any]:
        """Path, precision, size and the artifact's verification record."""
        a = self.artifact
        assert a.path is not None
        return {
            "path": str(a.path),
            "sidecar": str(sidecar_path(a.path)),
            "precision": a.precision,
            "bytes": a.path.stat().st_size,
            "verification": a.meta.get("verification"),
            "fp16": a.meta.get("fp16"),
            "int8": a.meta.get("int8"),
        }

    def to_text(self) -> str:
        """What ``accelkit export`` prints."""
        out = self.artifact
        assert out.path is not None
        lines = [
            f"wrote {out.path} ({out.precision}, {out.path.stat().st_size / 1e6:.2f} MB) and {sidecar_path(out.path).name}"
        ]
        exp = next((p for p in out.passes if p.get("name") == "OnnxFromTorch"), {})
        if exp.get("exporter"):
            lines.append(
                f"exporter: {exp['exporter']}"
                + (
                    f" (dynamo failed: {exp['fallback_reason']})"
                    if exp.get("fallback_reason")
                    else ""
                )
            )
        v = out.meta.get("verification", {})
        if v:
            sizes = (
                f" and sizes {', '.join('x'.join(map(str, hw)) for hw in v['sizes'])}"
                if v.get("sizes")
                else ""
            )
            lines.append(
                f"verified vs {v.get('reference')} at batch {','.join(map(str, v['batch_sizes']))}{sizes}: "
                f"max abs error {v['max_abs_err']:.3g} (tolerance {v['tolerance']:g}), PSNR {v['psnr_db']:.1f} dB"
            )
        lines += inferred_notes(out.spec)
        lines += _int8_lines(out)[0]
        if out.precision == "fp16":
            kept = out.meta.get("fp16", {})
            names = [k["node"] for k in kept.get("kept_fp32", [])[:6]]
            more = "…" if kept.get("kept_fp32_count", 0) > 6 else ""
            lines.append(
                f"kept in float32: {kept.get('kept_fp32_count', 0)} nodes"
                + (f" ({', '.join(names)}{more})" if names else "")
            )
        lines += _next_command(out)
        return "\n".join(lines)


def _next_command(out: Artifact) -> list[str]:
    """``measure it: accelkit bench OUT --fid 500`` (+ the flags its reference needs), when the
    source this build was made from is still there; the loading flags travel in the sidecar."""
    from accelkit.loading import reference_flags, shell_join, source_record

    if out.path is None or source_record(out) is None:
        return []
    argv = [str(out.path), "--fid", "500", *reference_flags(out)]
    return [f"measure it: accelkit bench {shell_join(argv)}"]


def export_onnx(
    generator: Any = None, options: ExportOptions | None = None, progress: Progress | None = None
) -> ExportResult:
    """Export a generator to verified ONNX: fp32, or fp16/int8 converted from a temporary fp32 export.

    A generator already in ONNX (fp32) is converted to fp16/int8 directly.

    Args:
        generator: Path, bundled name, :class:`LoadOptions` or :class:`Artifact`.
        options: :class:`ExportOptions` (default: fp32 next to the input).
        progress: Called with a short message per step.

    Raises:
        InputError: Bad options, an existing output without ``force``, fp32 of an ONNX file.
        ExportError / VerificationError / NonFiniteOutputError: the export did not hold.
    """
    from accelkit.files import refuse_existing
    from accelkit.options import BuildRecipe
    from accelkit.passes.build import Builder
    from accelkit.passes.onnx_io import default_onnx_path
    from accelkit.pipelines import diffusion as dif
    from accelkit.vocab import onnx_source

    opts = (options or ExportOptions()).validated()
    say = progress or (lambda m: None)
    say("loading the generator")
    artifact = resolve_artifact(generator)
    if dif.is_pipeline(artifact):
        return dif.export(artifact, opts, opts.diffusion, progress)  # type: ignore[return-value]
    dif.refuse_knobs(opts.diffusion, artifact)
    precision = Precision(opts.precision).value
    dest = Path(opts.out) if opts.out is not None else default_onnx_path(artifact, precision)
    if dest.suffix.lower() != ".onnx":
        raise InputError(f"-o {dest}: the output must end in .onnx")
    refuse_existing(dest, opts.force)
    if artifact.format == "onnx" and precision == "fp32":
        raise InputError(
            f"{artifact.path} is already ONNX; use --fp16 or --int8 to convert it, or accelkit build for TensorRT"
        )
    if artifact.format not in ("torch", "onnx"):
        raise InputError(f"cannot export a {artifact.format} artifact to ONNX")
    recipe = BuildRecipe(onnx=opts.onnx, fp16=opts.fp16, int8=opts.int8)
    # one builder, the recipe bench and optimize use; an fp32 step in between goes to a temporary folder
    with tempfile.TemporaryDirectory(prefix="accelkit-fp32-") as tmp:
        builder = Builder(
            artifact,
            Path(tmp),
            recipe,
            stem=dest.name.split(".")[0],
            tolerance={precision: opts.tolerance} if opts.tolerance is not None else None,
            strict=True,
            progress=say,
        )
        why = builder.can_make(onnx_source(precision))
        if why is not None:
            raise InputError(f"{artifact.path or artifact.source}: {why}")
        out = builder.make(onnx_source(precision), dest=dest, force=opts.force)
    return ExportResult(out, warnings=_int8_lines(out)[1])


@dataclass
class QuantizeResult(Result):
    """An INT8 Q/DQ artifact, with the sensitivity report and auto-exclusion when asked for."""

    artifact: Artifact
    report_text: str | None = None
    report_path: Path | None = None
    auto_exclude: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Path, verification, int8 record, report path and auto-exclusion."""
        a = self.artifact
        assert a.path is not None
        return {
            "path": str(a.path),
            "verification": a.meta.get("verification"),
            "int8": a.meta.get("int8"),
            "report": str(self.report_path) if self.report_path else None,
            "auto_exclude": self.auto_exclude,
        }

    def to_text(self) -> str:
        """What ``accelkit quantize`` prints."""
        out = self.artifact
        assert out.path is not None
        lines: list[str] = []
        if self.report_text is not None:
            lines += [self.report_text, f"wrote {self.report_path}"]
        if self.auto_exclude is not None:
            ae = self.auto_exclude
            lines.append(
                f"auto-exclude: keeping {len(ae['groups'])} group(s) in float ({', '.join(ae['groups']) or 'none'}): "
                f"PSNR {ae['psnr_db']:.1f} dB >= {ae['target_db']:g} on the sensitivity samples"
            )
        lines.append(f"wrote {out.path} (int8 Q/DQ, {out.path.stat().st_size / 1e6:.2f} MB)")
        lines += _int8_lines(out)[0]
        v = out.meta.get("verification", {})
        if v:
            lines.append(
                f"vs {v.get('reference')}: PSNR {v['psnr_db']:.1f} dB, max abs error {v['max_abs_err']:.3g}"
            )
        return "\n".join(lines)


def quantize(
    model: Any, options: QuantizeOptions | None = None, progress: Progress | None = None
) -> QuantizeResult:
    """INT8 post-training quantization of an fp32 ONNX generator (explicit Q/DQ), verified.

    With ``report``, a per-layer-group sensitivity table is written next to the output
    (``<stem>.int8-sensitivity.md``); with ``auto_exclude_db``, the fewest most harmful
    groups needed to reach that PSNR are kept in float.

    Args:
        model: The fp32 ONNX file (path, :class:`LoadOptions` or :class:`Artifact`).
        options: :class:`QuantizeOptions`.
        progress: Called with a short message per step.

    Raises:
        InputError: Not ONNX, an existing output or report without ``force``, bad options.
    """
    from accelkit.files import refuse_existing, write_text_atomic
    from accelkit.passes.sensitivity import (
        auto_exclude,
        format_report,
        sensitivity,
        sensitivity_calib,
    )

    opts = (options or QuantizeOptions()).validated()
    say = progress or (lambda m: None)
    from accelkit.loading import require_format

    require_format(model, ("onnx",), "use accelkit export {source} --int8")
    art = resolve_artifact(model)
    if art.format != "onnx" or art.path is None:
        raise InputError(f"{art.source} is not ONNX; use accelkit export {art.source} --int8")
    src = art.path
    stem = src.name.split(".")[0]
    dest = Path(opts.out) if opts.out is not None else src.with_name(stem + ".int8.onnx")
    md = dest.with_name(stem + ".int8-sensitivity.md")
    refuse_existing(dest, opts.force)  # checked before the (long) sensitivity runs
    if opts.report:
        refuse_existing(md, opts.force)
    kw = opts.int8.pass_kwargs()
    report_text, auto = None, None
    if opts.report or opts.auto_exclude_db is not None:
        sens_kw = {
            k: v
            for k, v in kw.items()
            if k
            in ("calib_method", "per_channel", "exclude", "op_types", "calib_cache", "calib_images")
        }
        sens = sensitivity(
            art, calib_samples=sensitivity_calib(opts.int8.calib), progress=say, **sens_kw
        )
        if opts.report:
            report_text = format_report(sens, title=f"INT8 sensitivity: {src.name}")
            write_text_atomic(md, report_text, force=opts.force)
        if opts.auto_exclude_db is not None:
            chosen = auto_exclude(
                art,
                opts.auto_exclude_db,
                sens,
                calib_cache=kw.get("calib_cache"),
                calib_images=kw.get("calib_images"),
                progress=say,
            )
            if len(chosen.groups) >= len(sens):
                raise InputError(
                    f"reaching {opts.auto_exclude_db:g} dB needs every layer group in float, so nothing would be quantized; lower --auto-exclude (see --report)"
                )
            kw["exclude"] = tuple(kw["exclude"]) + tuple(chosen)
            auto = {
                "groups": list(chosen.groups),
                "psnr_db": chosen.psnr_db,
                "target_db": opts.auto_exclude_db,
            }
    from dataclasses import replace

    from accelkit.options import BuildRecipe
    from accelkit.passes.build import Builder

    recipe = BuildRecipe(int8=replace(opts.int8, exclude=tuple(kw["exclude"])))
    out = Builder(
        art,
        dest.parent,
        recipe,
        tolerance={"int8": opts.tolerance} if opts.tolerance is not None else None,
        strict=True,
        progress=say,
    ).make("onnx-int8", dest=dest, force=opts.force)
    return QuantizeResult(
        out, report_text, md if opts.report else None, auto, warnings=_int8_lines(out)[1]
    )
