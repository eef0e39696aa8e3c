"""A diffusion pipeline loaded without code: components, sampling defaults, and its spec.

:func:`load_pipeline` turns a diffusers pipeline folder (see :mod:`accelkit.diffusion.folder`)
into a :class:`DiffusionModel`:

* ``denoiser`` and (latent models) ``decoder``: torch :class:`~accelkit.artifact.Artifact`
  objects whose modules have tensor-only signatures (:mod:`accelkit.diffusion.components`),
  each with its own :class:`~accelkit.spec.GeneratorSpec`, so every existing pass and
  runner takes them as they are;
* ``spec``: the whole pipeline as one generator. Its inputs are the initial noise
  ``noise`` (standard normal, the shape of the denoiser's sample; the sampler multiplies it
  by the scheduler's ``init_noise_sigma``) and, by kind, ``label`` (class index) or
  ``prompt_embeds`` (seeded random embeddings of the model's width, when no condition file
  is given); its output is the finished image in ``[-1, 1]``. So
  :class:`~accelkit.sampler.LatentSampler` draws the same ``x_T`` and labels for every
  backend, and the harness and drift meter work unchanged at image level;
* the sampling defaults: the folder's scheduler class, the pipeline's default step count
  and guidance scale (diffusers' own ``__call__`` defaults), overridable by
  :class:`SamplerSettings`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.diffusion import schedulers as sch
from accelkit.diffusion.folder import PipelineFolder, read_pipeline_folder
from accelkit.errors import InputError, LoadError
from accelkit.spec import GeneratorSpec, InputSpec

#: Sequence length of random prompt embeddings when no condition file is given (CLIP's 77).
DEFAULT_CONDITION_LENGTH = 77
#: Name of the pipeline-level inputs.
NOISE, LABEL, PROMPT = "noise", "label", "prompt_embeds"


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample: the build knobs of a diffusion model (recorded in every row and sidecar).

    Attributes:
        scheduler: ``ddpm``, ``ddim``, ``dpm++``, ``euler`` or ``default`` (the model's
            reference scheduler: its ``accelkit.json`` sampler, else the folder's own class).
        steps: Denoising steps (None: the pipeline's default, e.g. 50 for DDIM/SD, 250 for DiT).
        guidance: Classifier-free guidance scale; 1 turns guidance off (None: the
            pipeline's default, 4.0 for DiT, 7.5 for Stable Diffusion, 1 otherwise).
        eta: DDIM's eta (0: deterministic DDIM; None: the model's default, 0); ignored by
            other schedulers.
    """

    scheduler: str = sch.DEFAULT
    steps: int | None = None
    guidance: float | None = None
    eta: float | None = None

    def validated(self) -> SamplerSettings:
        """Self with a canonical scheduler name.

        Raises:
            InputError: Unknown scheduler, steps < 1, guidance < 1 or not finite, eta outside [0, 1].
        """
        name = sch.check_name(self.scheduler)
        if self.steps is not None and (
            isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1
        ):
            raise InputError(f"--steps {self.steps!r}: give a positive number of denoising steps")
        if self.guidance is not None and not (
            math.isfinite(float(self.guidance)) and float(self.guidance) >= 1.0
        ):
            raise InputError(
                f"--guidance {self.guidance!r}: give a scale >= 1 (1 turns classifier-free guidance off)"
            )
        if self.eta is not None and not (
            math.isfinite(float(self.eta)) and 0.0 <= float(self.eta) <= 1.0
        ):
            raise InputError(f"--eta {self.eta!r}: DDIM's eta is in [0, 1] (0: deterministic)")
        return replace(self, scheduler=name)


@dataclass(frozen=True)
class Sampling:
    """Sampler settings resolved against one model (nothing left to a default).

    Attributes:
        scheduler: Short name (``ddim``...) or ``default`` for a saved class without one.
        scheduler_class: The diffusers class.
        steps: Denoising steps.
        guidance: Guidance scale (1: off).
        eta: DDIM eta (0 for other schedulers).
        config: The config the scheduler is built from.
    """

    scheduler: str
    scheduler_class: str
    steps: int
    guidance: float
    eta: float
    config: dict[str, Any] = field(compare=False, repr=False)

    @property
    def cfg(self) -> bool:
        """Whether classifier-free guidance runs (two denoiser passes per step, batched into one call)."""
        return self.guidance > 1.0

    def to_dict(self) -> dict[str, Any]:
        """The knobs as recorded in rows and sidecars."""
        return {
            "scheduler": self.scheduler,
            "scheduler_class": self.scheduler_class,
            "steps": self.steps,
            "guidance": self.guidance,
            "eta": self.eta,
        }

    def label(self) -> str:
        """Short form, e.g. ``ddim-50`` or ``dpm++-20-cfg4``."""
        g = f"-cfg{self.guidance:g}" if self.cfg else ""
        e = f"-eta{self.eta:g}" if self.eta else ""
        return f"{self.scheduler}-{self.steps}{g}{e}"

    def build(self) -> Any:
        """A fresh diffusers scheduler for these settings (timesteps not set yet)."""
        return sch.build_scheduler(self.scheduler_class, self.config)


@dataclass
class DiffusionModel:
    """A loaded diffusion pipeline.

    Attributes:
        folder: The validated folder.
        denoiser: torch artifact of the denoiser wrapper (tensor-only signature).
        decoder: torch artifact of the VAE decoder wrapper, None for pixel-space models.
        spec: The pipeline as one generator (``noise`` [+ ``label`` | ``prompt_embeds``] -> image).
        null_class: Class index of the unconditional embedding (guidance), None if the model has none.
        condition: Fixed prompt embeddings ``L x D`` (float32) when a condition was given.
        negative_condition: Unconditional embeddings ``L x D`` used by guidance (zeros unless given).
        defaults: The pipeline's own sampling defaults.
        meta: What loading found (classes, configs, sizes), recorded in sidecars.
    """

    folder: PipelineFolder
    denoiser: Artifact
    decoder: Artifact | None
    spec: GeneratorSpec
    null_class: int | None = None
    condition: np.ndarray | None = None
    negative_condition: np.ndarray | None = None
    defaults: SamplerSettings = SamplerSettings()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``pixel``, ``class-dit`` or ``latent-text``."""
        return self.folder.layout.kind

    @property
    def source_sha256(self) -> str | None:
        """sha256 identity of the folder's files (see :meth:`PipelineFolder.sha256`)."""
        return self.denoiser.source_sha256

    @property
    def conditioning(self) -> str:
        """``none``, ``class`` or ``text`` (prompt embeddings)."""
        names = {i.name for i in self.denoiser.spec.inputs}
        if "class_labels" in names:
            return "class"
        if "encoder_hidden_states" in names:
            return "text"
        return "none"

    def sampling(self, settings: SamplerSettings | None = None) -> Sampling:
        """Resolve ``settings`` (None: the defaults) against this model.

        Raises:
            InputError: Guidance asked of a model without an unconditional class, or more
                steps than the model was trained with.
        """
        s = (settings or SamplerSettings()).validated()
        saved = self.folder.scheduler
        name = s.scheduler if s.scheduler != sch.DEFAULT else self.defaults.scheduler
        short, cls, overrides = sch.resolve(name, saved.class_name)
        steps = s.steps if s.steps is not None else self.defaults.steps
        guidance = s.guidance if s.guidance is not None else self.defaults.guidance
        assert steps is not None and guidance is not None  # defaults are resolved
        train_steps = int(saved.config.get("num_train_timesteps") or 1000)
        if steps > train_steps:
            raise InputError(
                f"--steps {steps}: this model was trained with {train_steps} timesteps; give at most {train_steps}"
            )
        if guidance > 1.0 and self.conditioning == "none":
            raise InputError(
                f"--guidance {guidance:g}: this model is unconditional, so classifier-free guidance has nothing to "
                "guide; use --guidance 1"
            )
        if guidance > 1.0 and self.conditioning == "class" and self.null_class is None:
            raise InputError(
                f"--guidance {guidance:g}: this model has no unconditional class embedding (it was not trained "
                "with label dropout), so it cannot run classifier-free guidance; use --guidance 1"
            )
        eta_given = s.eta if s.eta is not None else self.defaults.eta
        eta = float(eta_given or 0.0) if cls == "DDIMScheduler" else 0.0
        return Sampling(
            scheduler=short,
            scheduler_class=cls,
            steps=int(steps),
            guidance=float(guidance),
            eta=eta,
            config=sch.scheduler_config(saved.config, overrides),
        )

    def pipeline_artifact(self) -> Artifact:
        """The whole pipeline as an artifact (no file; its spec is :attr:`spec`)."""
        return Artifact(
            format="torch",
            spec=self.spec,
            source=str(self.folder.path),
            source_sha256=self.source_sha256,
            meta={"diffusion": self.meta},
        )


# ----------------------------------------------------------------------------- loading
def _load_condition(value: Any, what: str, width: int) -> np.ndarray | None:
    """``L x D`` float32 embeddings from an array or a ``.npy`` file (never a pickle)."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        try:
            arr = np.load(p, allow_pickle=False)
        except FileNotFoundError:
            raise InputError(
                f"{what} {p} does not exist; give a .npy file of prompt embeddings"
            ) from None
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{what} {p} is not a plain .npy array ({str(exc)[:100]}); save it with numpy.save (no pickles)"
            ) from None
    else:
        arr = np.asarray(value)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] != width or arr.shape[0] < 1:
        raise InputError(
            f"{what} has shape {tuple(arr.shape)}; this model takes prompt embeddings of shape (L, {width}) "
            f"or (1, L, {width}) (L tokens of width {width})"
        )
    if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise InputError(f"{what} must hold finite floating-point values")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _null_class(module: Any, num_classes: int) -> int | None:
    """The unconditional class index of a class embedding table with one extra row, else None."""
    for m in module.modules():
        table = getattr(m, "embedding_table", None)
        if table is not None and hasattr(table, "num_embeddings"):
            return num_classes if int(table.num_embeddings) > num_classes else None
    return None


def _sample_shape(cfg: dict[str, Any], channels_key: str = "in_channels") -> tuple[int, int, int]:
    size = cfg.get("sample_size")
    if isinstance(size, (list, tuple)):
        h, w = int(size[0]), int(size[1])
    elif isinstance(size, int) and size > 0:
        h = w = int(size)
    else:
        raise LoadError(f"the denoiser config has no usable sample_size ({size!r}); re-save it")
    return (int(cfg.get(channels_key) or 4), h, w)


def load_pipeline(
    path: str | os.PathLike[str],
    *,
    condition: str | os.PathLike[str] | np.ndarray | None = None,
    negative_condition: str | os.PathLike[str] | np.ndarray | None = None,
    condition_length: int = DEFAULT_CONDITION_LENGTH,
) -> DiffusionModel:
    """Load a diffusers pipeline folder without running code it names.

    Args:
        path: A folder written by ``DDPMPipeline``/``DDIMPipeline``/``DiTPipeline``/
            ``StableDiffusionPipeline.save_pretrained`` (text encoder and tokenizer not needed).
        condition: Text-conditioned models: prompt embeddings ``(L, D)`` or ``(1, L, D)``
            (an array or a ``.npy`` file) used for every sample. None: the pipeline takes
            seeded random embeddings ``(condition_length, D)`` as its ``prompt_embeds`` input.
        negative_condition: Embeddings of the unconditional branch of guidance (same
            shape as the condition); default all zeros.
        condition_length: Tokens of the random embeddings when no condition is given.

    Returns:
        The :class:`DiffusionModel` (modules in eval mode, float32, CPU).

    Raises:
        InputError: A folder accelkit refuses (see :func:`read_pipeline_folder`), an
            unsupported denoiser input, or a condition of the wrong shape.
        LoadError: Unreadable configs or weights.
        MissingDependencyError: diffusers is not installed.
    """
    from accelkit.diffusion import components as comp

    folder = read_pipeline_folder(Path(path))
    layout = folder.layout
    dcfg = folder.denoiser.config
    comp.check_supported(folder.denoiser.class_name, dcfg, str(folder.denoiser.folder))
    if layout.kind != "latent-text" and (condition is not None or negative_condition is not None):
        raise InputError(
            f"a condition (prompt embeddings) was given, but {folder.pipeline_class} takes "
            + (
                "class labels"
                if layout.kind == "class-dit" or dcfg.get("num_class_embeds")
                else "no condition"
            )
            + "; drop --condition"
        )
    model = comp.load_model(folder.denoiser)
    sha = folder.sha256()
    sample = _sample_shape(dcfg)
    inferred: list[tuple[str, str]] = []
    null_class = None
    cond = neg = None
    num_classes = None
    den_inputs = [
        InputSpec("sample", "latent", sample),
        InputSpec("timestep", "latent", ()),
    ]
    pipe_inputs = [InputSpec(NOISE, "latent", sample)]
    hints = folder.hints
    if layout.kind == "pixel":
        if dcfg.get("num_class_embeds"):
            rows = int(dcfg["num_class_embeds"])
            num_classes = rows
            if hints.get("null_class") is not None:
                if int(hints["null_class"]) != rows - 1:
                    raise InputError(
                        f"{folder.path}/accelkit.json: null_class {hints['null_class']} must be the last class row ({rows - 1})"
                    )
                null_class, num_classes = rows - 1, rows - 1
                inferred.append(
                    (
                        LABEL,
                        f"{num_classes} classes; class {null_class} is the null class (accelkit.json)",
                    )
                )
            module: Any = comp.ClassUNetDenoiser(model)
        else:
            module = comp.UNetDenoiser(model)
    elif layout.kind == "class-dit":
        num_classes = int(dcfg.get("num_embeds_ada_norm") or 1000)
        null_class = _null_class(model, num_classes)
        module = comp.DiTDenoiser(model, sample[0])
    else:
        width = int(dcfg.get("cross_attention_dim") or 768)
        if isinstance(dcfg.get("cross_attention_dim"), (list, tuple)):
            raise InputError(
                "per-block cross_attention_dim values are not supported; give a UNet with one prompt-embedding width"
            )
        cond = _load_condition(condition, "--condition", width)
        length = cond.shape[0] if cond is not None else int(condition_length)
        if length < 1:
            raise InputError(f"condition length {length} must be >= 1")
        neg = _load_condition(negative_condition, "--negative-condition", width)
        if neg is None:
            neg = np.zeros((length, width), dtype=np.float32)
        elif neg.shape[0] != length:
            raise InputError(
                f"--negative-condition has {neg.shape[0]} tokens, the condition {length}; give the same length"
            )
        module = comp.TextUNetDenoiser(model)
        den_inputs.append(InputSpec("encoder_hidden_states", "latent", (length, width)))
        if cond is None:
            pipe_inputs.append(InputSpec(PROMPT, "latent", (length, width)))
            inferred.append(
                (
                    PROMPT,
                    f"seeded standard-normal embeddings of {length} tokens x {width} (no condition file given)",
                )
            )
        else:
            inferred.append((PROMPT, f"fixed condition {length} x {width} for every sample"))
    if num_classes is not None:
        rows = num_classes + (1 if null_class is not None else 0)
        den_inputs.append(InputSpec("class_labels", "label", (), "int64", rows))
        pipe_inputs.append(InputSpec(LABEL, "label", (), "int64", num_classes))
    module = module.eval()
    den_spec = GeneratorSpec(
        inputs=tuple(den_inputs),
        output_shape=sample,
        output_range=(-1.0, 1.0),
        inferred=(
            (
                "output_range",
                "nominal: a noise/v prediction of about unit variance, not a bounded image",
            ),
        ),
    )
    denoiser = Artifact(
        format="torch",
        spec=den_spec,
        module=module,
        source=str(folder.denoiser.folder),
        source_sha256=sha,
        meta={"component": "denoiser", "diffusers_class": folder.denoiser.class_name},
    )
    decoder = None
    out_shape: tuple[int, ...] = sample
    if folder.decoder is not None:
        vcfg = folder.decoder.config
        vae = comp.load_model(folder.decoder)
        scaling = float(vcfg.get("scaling_factor") or 1.0)
        shift = float(vcfg.get("shift_factor") or 0.0)
        if int(vcfg.get("latent_channels") or 4) != sample[0]:
            raise LoadError(
                f"the VAE's latent_channels ({vcfg.get('latent_channels')}) differ from the denoiser's channels ({sample[0]}); "
                "the folder mixes components of different models"
            )
        dec_module = comp.LatentDecoder(vae, scaling, shift).eval()
        factor = 2 ** max(0, len(vcfg.get("block_out_channels") or (0,)) - 1)
        out_shape = (int(vcfg.get("out_channels") or 3), sample[1] * factor, sample[2] * factor)
        decoder = Artifact(
            format="torch",
            spec=GeneratorSpec(
                inputs=(InputSpec("latent", "latent", sample),),
                output_shape=out_shape,
                output_range=(-1.0, 1.0),
            ),
            module=dec_module,
            source=str(folder.decoder.folder),
            source_sha256=sha,
            meta={
                "component": "decoder",
                "diffusers_class": folder.decoder.class_name,
                "scaling_factor": scaling,
                "shift_factor": shift,
            },
        )
    elif sample[0] not in (1, 3):
        raise LoadError(
            f"{folder.pipeline_class} without a VAE must denoise images (1 or 3 channels), got {sample[0]}"
        )
    inferred.insert(
        0,
        (
            NOISE,
            "the denoiser's sample shape; standard normal, scaled by the scheduler's init_noise_sigma",
        ),
    )
    spec = GeneratorSpec(
        inputs=tuple(pipe_inputs),
        output_shape=out_shape,
        output_range=(-1.0, 1.0),
        inferred=tuple(inferred),
    )
    guidance = layout.default_guidance
    if layout.kind == "class-dit" and null_class is None:
        guidance = 1.0
    defaults = SamplerSettings(
        scheduler=sch.DEFAULT, steps=layout.default_steps, guidance=guidance, eta=0.0
    )
    if hints.get("sampler"):
        defaults = replace(defaults, **hints["sampler"]).validated()
    names = hints.get("class_names")
    if names is not None and len(names) != (num_classes or 0):
        raise InputError(
            f"{folder.path}/accelkit.json names {len(names)} classes, the model has {num_classes or 0}; fix or delete it"
        )
    meta = {
        "pipeline_class": folder.pipeline_class,
        "kind": layout.kind,
        "components": {
            c.name: c.class_name
            for c in (folder.denoiser, folder.decoder, folder.scheduler)
            if c is not None
        },
        "ignored_components": list(folder.ignored),
        "denoiser_config": {k: v for k, v in dcfg.items() if not k.startswith("_")},
        "scheduler_config": {
            k: v for k, v in folder.scheduler.config.items() if not k.startswith("_")
        },
        "diffusers_version": folder.index.get("_diffusers_version"),
        "folder_sha256": sha,
        "class_names": names,
        "null_class": null_class,
        "defaults_from": "accelkit.json"
        if hints.get("sampler")
        else f"{folder.pipeline_class} defaults",
        "condition": None
        if cond is None
        else {"tokens": int(cond.shape[0]), "width": int(cond.shape[1])},
    }
    return DiffusionModel(
        folder=folder,
        denoiser=denoiser,
        decoder=decoder,
        spec=spec,
        null_class=null_class,
        condition=cond,
        negative_condition=neg,
        defaults=defaults,
        meta=meta,
    )


__all__ = [
    "DEFAULT_CONDITION_LENGTH",
    "DiffusionModel",
    "SamplerSettings",
    "Sampling",
    "load_pipeline",
]
