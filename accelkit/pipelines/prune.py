"""``prune_and_distill``: structured pruning, data-free distillation, FID drift vs the teacher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.errors import InputError
from accelkit.loading.sidecars import shell_join
from accelkit.pipelines.options import PruneOptions, _value, resolve_artifact, trusts_code
from accelkit.pipelines.results import Result, fmt_flops

Progress = Callable[[str], None]


@dataclass
class PruneResult(Result):
    """The saved pruned generator, its size change, distillation and drift numbers.

    Attributes:
        artifact: The pruned TorchScript artifact (with its sidecar).
        distill_report: PSNR vs the teacher before/after distillation (None without it).
        drift: FID drift vs the teacher per stage (``pruned``, ``pruned+distilled``).
        teacher: What to pass as ``--reference`` to bench the pruned model against its teacher.
        distill_steps: Steps run.
        reference_arch: ``--reference-arch X [--reference-arch-kwargs J]`` when the teacher was
            loaded with a user architecture (never taken from the sidecar: the user names it).
    """

    artifact: Artifact
    distill_report: dict[str, Any] | None = None
    drift: dict[str, Any] = field(default_factory=dict)
    teacher: str = "dcgan"
    distill_steps: int = 0
    reference_arch: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Path, pruning numbers, distillation report and drift."""
        return {
            "path": str(self.artifact.path),
            "pruning": self.artifact.meta.get("pruning"),
            "distillation": self.distill_report,
            "quality_vs_teacher": self.artifact.meta.get("quality_vs_teacher"),
        }

    def to_text(self) -> str:
        """What ``accelkit prune`` prints."""
        a = self.artifact
        lines = [f"wrote {a.path} (TorchScript; load it like any generator)"]
        m = a.meta.get("pruning", {})
        if m:
            lines.append(
                f"parameters {m['params_before']:,} -> {m['params_after']:,} ({m['params_after'] / m['params_before']:.0%}); "
                f"FLOPs/image {fmt_flops(m['flops_before'])} -> {fmt_flops(m['flops_after'])}"
            )
        r = self.distill_report
        if r:
            lines.append(
                f"PSNR vs teacher: {r['psnr_before']:.2f} dB before distillation -> {r['psnr_after']:.2f} dB after {self.distill_steps} steps"
            )
        if self.drift:
            last = list(self.drift.values())[-1]
            parts = [
                f"{d.fid_drift:.2f} {'before distillation' if label == 'pruned' and r else label}"
                for label, d in self.drift.items()
            ]
            lines.append(
                f"FID drift vs teacher (N={last.n}): {' -> '.join(parts)} (noise floor {last.noise_floor_fid:.2f}; "
                f"old rule: {'within' if last.legacy_verdict == 'within floor' else 'outside'} the floor)"
            )
            if last.test_verdict is not None:
                lines.append(f"quality verdict: {last.verdict} ({last.test_verdict.reason})")
        lines.append(
            f"measure it: accelkit bench {shell_join([str(a.path), '--fid', '500', '--reference', self.teacher, *self.reference_arch])}"
        )
        return "\n".join(lines)


def prune_and_distill(
    generator: Any = None, options: PruneOptions | None = None, progress: Progress | None = None
) -> PruneResult:
    """Prune channels of a torch generator, optionally distill it from the original, save it.

    The result is saved as TorchScript (loads without pickle) with a sidecar recording
    the pruning, the distillation and, with ``fid``, the FID drift vs the teacher before
    and after distillation.

    Args:
        generator: Path, bundled name, :class:`LoadOptions` or torch :class:`Artifact`.
        options: :class:`PruneOptions`.
        progress: Called with a short message per step.

    Raises:
        InputError: Not a torch generator, bad options, an existing output without ``force``.
    """
    from accelkit.files import refuse_existing
    from accelkit.passes.distill import distill
    from accelkit.passes.onnx_io import default_onnx_path
    from accelkit.passes.prune import Prune, save_pruned

    opts = (options or PruneOptions()).validated()
    say = progress or (lambda m: None)
    if opts.threads.count is not None:
        import torch

        torch.set_num_threads(opts.threads.count)
    say("loading the generator")
    art = resolve_artifact(generator)
    if opts.fid.n:
        from accelkit.quality.features import check_weights_code

        check_weights_code(opts.fid.weights, trusts_code(generator))  # the extractor is code too
    if art.format != "torch":
        raise InputError(
            "pruning needs the torch generator, not ONNX; give the .pt/.pt2/TorchScript file"
        )
    dest = (
        Path(opts.out)
        if opts.out is not None
        else default_onnx_path(art, "pruned").with_suffix(".pt")
    )
    refuse_existing(dest, opts.force)
    say(f"pruning {opts.ratio:.0%} of channels ({_value(opts.importance)})")
    pruned = Prune(
        opts.ratio,
        importance=_value(opts.importance),
        global_pruning=opts.global_pruning,
        keep=opts.keep,
        round_to=opts.round_to,
        seed=opts.seed,
    )(art)
    report = None
    undistilled = pruned
    if opts.distill_steps:
        pruned, report = distill(
            art,
            pruned,
            steps=opts.distill_steps,
            batch_size=opts.distill_batch,
            lr=opts.lr,
            loss=_value(opts.loss),
            seed=opts.seed,
            feature_loss=opts.feature_loss,
            feature_layers=list(opts.feature_layers) or None,
            checkpoint=opts.checkpoint or dest.with_suffix(".distill.ckpt"),
            resume=opts.resume,
            progress=lambda step, total, value: say(
                f"distilling: step {step}/{total}, loss {value:.4f}"
            ),
        )
    drifts: dict[str, Any] = {}
    if opts.fid.n:
        from accelkit.pipelines.bench import drift_vs_reference

        cands = [("pruned", undistilled)] + ([("pruned+distilled", pruned)] if report else [])
        drifts = drift_vs_reference(
            art,
            cands,
            opts.fid.n,
            seed=opts.seed,
            fid_weights=opts.fid.weights,
            threads=opts.threads.count,
            progress=say,
            trust_code=trusts_code(generator),
        )
        pruned.meta["quality_vs_teacher"] = {
            "n": opts.fid.n,
            "seed": opts.seed,
            "noise_floor_fid": next(iter(drifts.values())).noise_floor_fid,
            **{
                label: {
                    "fid_drift": d.fid_drift,
                    "kid_drift": d.kid_drift,
                    "psnr_db": d.psnr_db,
                    "verdict": d.verdict,
                    "legacy_verdict": d.legacy_verdict,
                }
                for label, d in drifts.items()
            },
        }
    pruned.meta["teacher"] = teacher_record(art)
    saved = save_pruned(pruned, dest, force=opts.force)
    teacher = (
        art.source
        if art.source and not _is_bundled(art)
        else (Path(art.source).name.split(".")[0] if art.source else "dcgan")
    )
    from accelkit.loading import is_bundled_architecture, load_record

    rec = load_record(art)
    ref_arch = [] if is_bundled_architecture(rec.arch) else rec.arch_flags("--reference-arch")
    return PruneResult(
        saved,
        report,
        drifts,
        teacher=teacher,
        distill_steps=opts.distill_steps,
        reference_arch=ref_arch,
    )


def teacher_record(art: Artifact) -> dict[str, Any]:
    """What ``bench --reference TEACHER`` needs to load the teacher again with no loading flags.

    Its file (path, sha256) and every loading flag it was loaded with
    (:class:`~accelkit.loading.LoadRecord`: ``--arch``, ``--output-shape``, ``--input``...);
    its inputs and range are also the pruned model's own (pruning keeps the I/O spec). A
    user architecture recorded here is a hint, never imported: ``bench`` asks for
    ``--reference-arch`` (see :func:`accelkit.pipelines.bench.teacher_reference`).
    """
    from accelkit.loading import load_record

    rec = load_record(art).to_dict()
    rec.setdefault("arch", None)
    rec.setdefault("arch_kwargs", None)
    rec.setdefault("output_shape", None)
    return {"source": art.source, "sha256": art.source_sha256, **rec}


def _is_bundled(art: Artifact) -> bool:
    from accelkit.models import _weights_dirs

    src = Path(art.source) if art.source else None
    return src is not None and any(src.resolve().parent == d.resolve() for d in _weights_dirs())
