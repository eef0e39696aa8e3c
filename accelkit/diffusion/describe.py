"""What ``accelkit info`` says about a diffusion pipeline, as a result object.

:func:`describe_pipeline` returns a :class:`PipelineDescription`: the kind, the components
(class, parameters, inputs, FLOPs per call), the denoiser's inputs, the scheduler and the
default sampler, FLOPs per step and per image, and the pipeline's generator spec. It
renders itself as text lines (:meth:`~PipelineDescription.lines`) and as a dict.

FLOPs follow :mod:`accelkit.flops` (2 per multiply-accumulate of conv/matmul, counted by
``torch.utils.flop_counter`` at batch 1). Per step counts the denoiser once per image, or
twice under classifier-free guidance (the conditional and unconditional passes); per image
is ``steps x per step + decoder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accelkit.artifact import Artifact
from accelkit.diffusion.model import DiffusionModel, SamplerSettings


@dataclass(frozen=True)
class ComponentInfo:
    """One component.

    Attributes:
        name: ``denoiser`` or ``decoder``.
        diffusers_class: Its diffusers class.
        params: Parameters (the decoder half only, for a VAE).
        inputs: ``name: kind dtype[shape]`` lines of its tensor-only signature.
        output: Output shape without batch.
        flops_per_call: FLOPs of one call at batch 1 (None if not counted).
    """

    name: str
    diffusers_class: str
    params: int
    inputs: tuple[str, ...]
    output: tuple[int, ...]
    flops_per_call: int | None


@dataclass(frozen=True)
class PipelineDescription:
    """A diffusion pipeline as ``accelkit info`` shows it.

    Attributes:
        kind: ``pixel``, ``class-dit`` or ``latent-text``.
        pipeline_class: The diffusers pipeline class of the folder.
        conditioning: ``none``, ``class`` or ``text``.
        components: The denoiser and (latent models) the decoder.
        scheduler_class: The folder's scheduler class.
        sampler: The sampler described (defaults unless settings were given).
        flops_per_step: FLOPs per image per denoising step (None if not counted).
        flops_per_image: FLOPs per finished image (None if not counted).
        spec: The pipeline's generator spec, as a dict.
        spec_lines: The spec's own description lines.
        ignored: Components of the folder accelkit does not load.
    """

    kind: str
    pipeline_class: str
    conditioning: str
    components: tuple[ComponentInfo, ...]
    scheduler_class: str
    sampler: dict[str, Any]
    flops_per_step: int | None
    flops_per_image: int | None
    spec: dict[str, Any]
    spec_lines: tuple[str, ...] = field(default=())
    ignored: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "pipeline_class": self.pipeline_class,
            "conditioning": self.conditioning,
            "components": [
                vars(c) | {"inputs": list(c.inputs), "output": list(c.output)}
                for c in self.components
            ],
            "scheduler_class": self.scheduler_class,
            "sampler": self.sampler,
            "flops_per_step": self.flops_per_step,
            "flops_per_image": self.flops_per_image,
            "spec": self.spec,
            "ignored_components": list(self.ignored),
        }

    def lines(self) -> list[str]:
        """Human-readable lines."""

        def gf(v: int | None) -> str:
            return "?" if v is None else f"{v / 1e9:.3g} GFLOP"

        s = self.sampler
        out = [
            f"diffusion pipeline: {self.pipeline_class} ({self.kind}, conditioning: {self.conditioning})",
            f"scheduler: {self.scheduler_class} saved; sampler {s['scheduler']} ({s['scheduler_class']}), "
            f"{s['steps']} steps, guidance {s['guidance']:g}"
            + (f", eta {s['eta']:g}" if s.get("eta") else ""),
        ]
        for c in self.components:
            out.append(
                f"component {c.name}: {c.diffusers_class}, {c.params:,} params, {gf(c.flops_per_call)} per call"
            )
            out.extend(f"  input  {line}" for line in c.inputs)
            out.append(f"  output float32[{'x'.join(str(d) for d in c.output)}]")
        out.append(
            f"FLOPs: {gf(self.flops_per_step)} per step, {gf(self.flops_per_image)} per image"
        )
        out.extend(f"pipeline {line}" for line in self.spec_lines)
        if self.ignored:
            out.append(f"not loaded (not needed): {', '.join(self.ignored)}")
        return out


def _component(name: str, art: Artifact, flops: bool) -> ComponentInfo:
    import torch

    from accelkit.flops import count_flops
    from accelkit.sampler import LatentSampler

    module = art.module
    count = None
    if flops:
        feeds = LatentSampler(art.spec, seed=0).inputs(0, 1)
        count = count_flops(module, tuple(torch.from_numpy(feeds[i.name]) for i in art.spec.inputs))
    return ComponentInfo(
        name=name,
        diffusers_class=str(art.meta.get("diffusers_class")),
        params=sum(int(p.numel()) for p in module.parameters()),
        inputs=tuple(i.describe() for i in art.spec.inputs),
        output=tuple(art.spec.output_shape),
        flops_per_call=count,
    )


def describe_pipeline(
    model: DiffusionModel, settings: SamplerSettings | None = None, *, flops: bool = True
) -> PipelineDescription:
    """Describe ``model`` (with ``settings``' sampler, default: the model's defaults).

    Args:
        model: The loaded pipeline.
        settings: Sampler settings to describe (steps and guidance change the FLOPs per image).
        flops: Count FLOPs (runs each component once at batch 1 under the counter).
    """
    sampling = model.sampling(settings)
    comps = [_component("denoiser", model.denoiser, flops)]
    if model.decoder is not None:
        comps.append(_component("decoder", model.decoder, flops))
    den = comps[0].flops_per_call
    per_step = None if den is None else den * (2 if sampling.cfg else 1)
    per_image = None
    if per_step is not None:
        dec = comps[1].flops_per_call if len(comps) > 1 else 0
        per_image = None if dec is None else per_step * sampling.steps + dec
    return PipelineDescription(
        kind=model.kind,
        pipeline_class=model.folder.pipeline_class,
        conditioning=model.conditioning,
        components=tuple(comps),
        scheduler_class=model.folder.scheduler.class_name,
        sampler=sampling.to_dict(),
        flops_per_step=per_step,
        flops_per_image=per_image,
        spec=model.spec.to_dict(),
        spec_lines=tuple(model.spec.describe()),
        ignored=model.folder.ignored,
    )


__all__ = ["ComponentInfo", "PipelineDescription", "describe_pipeline"]
