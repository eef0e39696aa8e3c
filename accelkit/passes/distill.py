"""Data-free distillation of a pruned generator from its unpruned teacher.

:func:`distill` trains the pruned student to match the teacher on latents drawn from
the generator's own prior (no data set needed): a pixel loss (L1/L2), optionally a
feature loss on the pruned layers' outputs through learned 1x1 adapters, with
checkpoints and exact resume.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import InputError
from accelkit.files import atomic_path, write_serialized
from accelkit.passes.prune import HELD_OUT_START, check_eager_torch, out_width, prunable_layers
from accelkit.quality.metrics import psnr_from_mse
from accelkit.sampler import LatentSampler

DistillProgress = Callable[[int, int, float], None]


def psnr_vs(reference: Any, module: Any, batches: Sequence[tuple[Any, ...]], peak: float) -> float:
    """PSNR (dB) of ``module``'s outputs against ``reference``'s over ``batches`` (eval mode, fp32)."""
    import torch

    se, n = 0.0, 0
    with torch.no_grad():
        for args in batches:
            a = reference(*args).double()
            b = module(*args).double()
            se += float(((a - b) ** 2).sum())
            n += a.numel()
    return psnr_from_mse(se / max(n, 1), peak)


def teacher_identity(teacher: Artifact, module: Any) -> dict[str, Any]:
    """What makes a teacher this teacher: its file, architecture, I/O spec and weights.

    A checkpoint records it and is resumed only by a run whose teacher has the same one
    (:func:`_load_checkpoint`): a student distilled from another teacher is not this
    teacher's student, whatever its shapes say.

    Returns:
        ``source_sha256`` (the loaded file's sha256, None for an in-memory model),
        ``architecture`` (the module's class, ``module.Class``), ``spec`` (the I/O spec,
        without how it was inferred) and ``weights_sha256`` (over every parameter and
        buffer: name, dtype, shape, bytes; so an in-memory teacher is covered too).
    """
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    spec = teacher.spec.to_dict()
    spec.pop("inferred", None)
    cls = type(module)
    return {
        "source_sha256": teacher.source_sha256,
        "architecture": f"{cls.__module__}.{cls.__qualname__}",
        "spec": spec,
        "weights_sha256": digest.hexdigest(),
    }


def _save_checkpoint(
    path: Path, step: int, student: Any, opt: Any, config: dict[str, Any], adapters: Any = None
) -> None:
    import torch

    state = {
        "step": int(step),
        "student": student.state_dict(),
        "optimizer": opt.state_dict(),
        "config": config,
    }
    if adapters is not None:
        state["adapters"] = adapters.state_dict()
    with atomic_path(path, force=True) as tmp:
        write_serialized(tmp, lambda f: torch.save(state, f))


def _load_checkpoint(
    path: Path, student: Any, opt: Any, config: dict[str, Any], adapters: Any = None
) -> int:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch-pruning/torch raise many types; re-raised as one line
        raise InputError(
            f"distillation checkpoint {path} cannot be read ({type(exc).__name__}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or "student" not in state or "step" not in state:
        raise InputError(
            f"{path} is not an accelkit distillation checkpoint; delete it or choose another path"
        )
    stored = state.get("config", {})
    defaults = {
        "feature_loss": 0.0,
        "feature_layers": [],
    }  # checkpoints made before the feature loss existed
    for key in ("batch_size", "lr", "loss", "seed", "steps", "feature_loss", "feature_layers"):
        if stored.get(key, defaults.get(key)) != config[key]:
            raise InputError(
                f"checkpoint {path} was made with {key}={stored.get(key, defaults.get(key))!r}, this run has {config[key]!r}; "
                "use the same options, another checkpoint path, or resume=False"
            )
    made_from = stored.get("teacher")
    if not isinstance(made_from, dict):
        raise InputError(
            f"checkpoint {path} does not record which teacher it was distilled from (an older accelkit made it), "
            "so resuming it could make another teacher's student; delete it, choose another --checkpoint, or pass --no-resume"
        )
    for key, what in (
        ("weights_sha256", "weights"),
        ("source_sha256", "file"),
        ("architecture", "architecture"),
        ("spec", "I/O spec"),
    ):
        if made_from.get(key) != config["teacher"][key]:
            theirs, ours = made_from.get(key), config["teacher"][key]
            shown = (
                f" ({str(theirs)[:16]} vs {str(ours)[:16]})"
                if key in ("weights_sha256", "source_sha256", "architecture")
                else ""
            )
            raise InputError(
                f"checkpoint {path} was distilled from another teacher (its {what} differs{shown}); "
                "delete it, choose another --checkpoint, or pass --no-resume"
            )
    own = student.state_dict()
    ck = state["student"]
    if set(ck) != set(own) or any(tuple(ck[k].shape) != tuple(own[k].shape) for k in own):
        raise InputError(
            f"checkpoint {path} holds weights of a different (differently pruned) student; delete it or use resume=False"
        )
    student.load_state_dict(ck)
    if adapters is not None:
        adapters.load_state_dict(state["adapters"])
    opt.load_state_dict(state["optimizer"])
    return int(state["step"])


def match_feature_layers(
    teacher: Any, student: Any, patterns: Sequence[str] | None = None
) -> list[str]:
    """Layers whose outputs the feature loss matches: by default every conv / linear /
    modulated conv whose output width pruning changed; with ``patterns``, the layers
    present in both models whose names match (output shapes are checked when the
    adapters are built).

    Raises:
        InputError: A pattern matches no layer, or no layer was pruned.
    """
    t_layers = dict(prunable_layers(teacher))
    s_layers = dict(prunable_layers(student))
    both = [n for n in s_layers if n in t_layers]
    if patterns:
        names = []
        for pat in patterns:
            hits = [n for n in both if fnmatch.fnmatchcase(n, pat)]
            if not hits:
                raise InputError(
                    f"feature layer pattern {pat!r} matches no layer; layer names: {', '.join(both[:8])}{' ...' if len(both) > 8 else ''}"
                )
            names += hits
        return list(dict.fromkeys(names))
    names = [n for n in both if out_width(t_layers[n]) != out_width(s_layers[n])]
    if not names:
        raise InputError(
            "no layer of the student is narrower than the teacher's, so there is no feature to match; name layers with feature_layers"
        )
    return names


class _FeatureTap:
    """Forward hooks keeping the outputs of named layers (the latest call)."""

    def __init__(self, module: Any, names: Sequence[str]) -> None:
        named = dict(module.named_modules())
        self.out: dict[str, Any] = {}
        self.handles = [named[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str) -> Callable[..., None]:
        def keep(_m: Any, _inp: Any, out: Any) -> None:
            self.out[name] = out[0] if isinstance(out, (tuple, list)) else out

        return keep

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _adapters(t_feats: dict[str, Any], s_feats: dict[str, Any]) -> Any:
    """One learned 1x1 projection per matched layer, student width -> teacher width."""
    import torch
    from torch import nn

    mods = {}
    for name, t in t_feats.items():
        s = s_feats[name]
        if (
            t.ndim not in (2, 4)
            or t.ndim != s.ndim
            or t.shape[0] != s.shape[0]
            or t.shape[2:] != s.shape[2:]
        ):
            raise InputError(
                f"feature layer {name!r}: teacher output {tuple(t.shape)} and student output {tuple(s.shape)} are not "
                "(N, C) or (N, C, H, W) tensors differing only in C; choose other layers"
            )
        mods[name.replace(".", "__")] = (
            nn.Conv2d(s.shape[1], t.shape[1], 1, bias=False)
            if t.ndim == 4
            else nn.Linear(s.shape[1], t.shape[1], bias=False)
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(
            0
        )  # the adapters start the same in every run (resume equals an uninterrupted run)
        for m in mods.values():
            m.reset_parameters()
    return nn.ModuleDict(mods)


def distill(
    teacher: Artifact,
    student: Artifact,
    *,
    steps: int = 2000,
    batch_size: int = 16,
    lr: float = 1e-3,
    loss: str = "l1",
    feature_loss: float = 0.0,
    feature_layers: Sequence[str] | None = None,
    seed: int = 0,
    eval_samples: int = 64,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 200,
    resume: bool = True,
    progress: DistillProgress | None = None,
) -> tuple[Artifact, dict[str, Any]]:
    """Data-free distillation: train ``student`` to reproduce ``teacher`` on the latent prior.

    Step ``s`` uses samples ``s*batch_size .. (s+1)*batch_size-1`` of
    ``LatentSampler(spec, seed)``, so no training sample repeats; PSNR against the
    teacher is measured before and after on the fixed held-out samples
    ``1_000_000 .. 1_000_000+eval_samples-1``. The student trains in train mode
    (BatchNorm statistics update) with Adam and is returned in eval mode. Checkpoints
    (weights, optimizer state, step) are written atomically every ``checkpoint_every``
    steps and at the end; with ``resume`` an existing checkpoint is continued, and the
    result equals that of an uninterrupted run.

    Args:
        teacher: The unpruned torch artifact (left untouched).
        student: The pruned torch artifact (its module is copied, not modified).
        steps: Optimizer steps in total (including those done before a resume).
        batch_size: Latents per step.
        lr: Adam learning rate.
        loss: ``l1`` or ``l2`` pixel loss.
        feature_loss: Weight of the feature loss (0: pixels only). The loss then adds
            ``feature_loss`` times the mean over matched layers of
            ``mse(adapter(student_feature), teacher_feature)``, where each adapter is a
            learned 1x1 conv (or linear map) from the student's width to the teacher's,
            trained with the student and discarded after (the intermediate-feature
            distillation of GAN Compression, Li et al. 2020).
        feature_layers: Glob patterns of the layers to match (default: every layer
            whose output width pruning changed; see :func:`match_feature_layers`).
        seed: Seed of the latent sampler.
        eval_samples: Held-out samples for the PSNR report.
        checkpoint: Checkpoint file (None: no checkpoints).
        checkpoint_every: Steps between checkpoints.
        resume: Continue from ``checkpoint`` when it exists.
        progress: Called as ``progress(step, steps, loss)`` after every step.

    Returns:
        ``(trained student artifact, report)``; the report holds ``psnr_before``,
        ``psnr_after`` (dB), ``final_loss`` (total), ``final_feature_loss`` (weighted; 0
        without it), ``feature_layers``, ``steps``, ``resumed_from``.
    """
    import torch

    t_mod = check_eager_torch(teacher, "distillation")
    s_src = check_eager_torch(student, "distillation")
    if (
        teacher.spec.inputs != student.spec.inputs
        or teacher.spec.output_shape != student.spec.output_shape
    ):
        raise InputError(
            "teacher and student have different input/output specs; distill a student pruned from this teacher"
        )
    if loss not in ("l1", "l2"):
        raise InputError(f"unknown distillation loss {loss!r}; choose l1 or l2")
    if not (float(feature_loss) >= 0.0 and math.isfinite(float(feature_loss))):
        raise InputError(f"feature loss weight must be a finite number >= 0, got {feature_loss}")
    if steps < 0 or batch_size < 1 or checkpoint_every < 1 or eval_samples < 1:
        raise InputError("steps must be >= 0 and batch_size, checkpoint_every, eval_samples >= 1")
    if steps * batch_size > HELD_OUT_START:
        raise InputError(
            f"steps * batch_size must stay below {HELD_OUT_START} (the held-out samples start there)"
        )

    spec = teacher.spec
    lo, hi = spec.output_range
    peak = float(hi - lo)
    t_mod = t_mod.eval()
    s_mod = copy.deepcopy(s_src).float()
    for p in s_mod.parameters():
        p.requires_grad_(True)
    sampler = LatentSampler(spec, seed=seed)

    def batch(start: int, count: int) -> tuple[Any, ...]:
        feeds = sampler.inputs(start, count)
        return tuple(torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in spec.inputs)

    held = [
        batch(HELD_OUT_START + k, min(16, eval_samples - k)) for k in range(0, eval_samples, 16)
    ]
    s_mod.eval()
    psnr_before = psnr_vs(t_mod, s_mod, held, peak)

    fweight = float(feature_loss)
    layers = match_feature_layers(t_mod, s_mod, feature_layers) if fweight > 0 else []
    # The hooks sit on the caller's teacher module: every exit below removes them.
    t_tap = _FeatureTap(t_mod, layers) if layers else None
    s_tap = _FeatureTap(s_mod, layers) if layers else None
    try:
        adapters = None
        if layers:
            assert t_tap is not None and s_tap is not None
            with torch.no_grad():
                probe = batch(0, 2)
                t_mod(*probe)
                s_mod(*probe)
            adapters = _adapters(t_tap.out, s_tap.out)

        params = [p for p in s_mod.parameters() if p.requires_grad] + (
            list(adapters.parameters()) if adapters is not None else []
        )
        opt = torch.optim.Adam(params, lr=lr)
        config = {
            "steps": int(steps),
            "batch_size": int(batch_size),
            "lr": float(lr),
            "loss": loss,
            "seed": int(seed),
            "feature_loss": fweight,
            "feature_layers": list(layers),
            "teacher": teacher_identity(teacher, t_mod),
        }
        ck_path = Path(checkpoint) if checkpoint is not None else None
        start_step = 0
        if ck_path is not None and resume and ck_path.is_file():
            start_step = _load_checkpoint(ck_path, s_mod, opt, config, adapters)
        crit = torch.nn.functional.l1_loss if loss == "l1" else torch.nn.functional.mse_loss

        s_mod.train()
        last, last_feat = float("nan"), 0.0
        for step in range(start_step, steps):
            args = batch(step * batch_size, batch_size)
            with torch.no_grad():
                target = t_mod(*args)
            out = s_mod(*args)
            err = crit(out, target)
            if adapters is not None:
                assert t_tap is not None and s_tap is not None
                feat = sum(
                    torch.nn.functional.mse_loss(
                        adapters[n.replace(".", "__")](s_tap.out[n]), t_tap.out[n].detach()
                    )
                    for n in layers
                ) / len(layers)
                feat = fweight * feat
                err = err + feat
                last_feat = float(torch.as_tensor(feat).detach())
            opt.zero_grad(set_to_none=True)
            err.backward()
            opt.step()
            last = float(err.detach())
            if not math.isfinite(last):
                raise InputError(
                    f"distillation diverged at step {step + 1} (loss {last}); lower the learning rate"
                )
            done = step + 1
            if progress is not None:
                progress(done, steps, last)
            if ck_path is not None and (done % checkpoint_every == 0 or done == steps):
                _save_checkpoint(ck_path, done, s_mod, opt, config, adapters)
    finally:
        for tap in (t_tap, s_tap):
            if tap is not None:
                tap.close()
    s_mod.eval()
    for p in s_mod.parameters():
        p.requires_grad_(False)
    psnr_after = psnr_vs(t_mod, s_mod, held, peak)

    report = {
        "steps": int(steps),
        "resumed_from": start_step,
        "batch_size": int(batch_size),
        "lr": float(lr),
        "loss": loss,
        "seed": int(seed),
        "final_loss": last,
        "final_feature_loss": last_feat,
        "feature_loss": fweight,
        "feature_layers": list(layers),
        "eval_samples": int(eval_samples),
        "psnr_before": psnr_before,
        "psnr_after": psnr_after,
    }
    record = {
        "name": "Distill",
        "options": config,
        **{k: report[k] for k in ("psnr_before", "psnr_after", "final_loss", "eval_samples")},
    }
    out_art = student.derive(
        module=s_mod, path=None, passes=[*(dict(p) for p in student.passes), record]
    )
    return out_art, report
