"""The components of a diffusion pipeline as plain modules with tensor-only signatures.

Each wrapper holds one diffusers model and exposes a ``forward`` that takes and returns
tensors only (no ``return_dict``, no optional arguments, no Python branches on inputs), so
it runs under the torch runner, exports to ONNX with a dynamic batch through
:class:`~accelkit.passes.export.OnnxFromTorch`, and its argument names are the ONNX input
names:

* denoisers take ``sample`` (float32 ``N x C x H x W``), ``timestep`` (float32 ``N``: the
  scheduler's timestep for every sample; float because Euler's are fractional) and, by
  kind, ``class_labels`` (int64 ``N``) or ``encoder_hidden_states`` (float32
  ``N x L x D`` prompt embeddings); they return the model's prediction for ``sample``
  (noise, ``v`` or ``x0`` as the scheduler's ``prediction_type`` says), float32
  ``N x C x H x W`` (a DiT's learned-variance channels are dropped, as DiT's pipeline
  does before the scheduler step);
* the VAE decoder takes ``latent`` (the sampler's final latent, unscaled) and returns the
  image in ``[-1, 1]`` (``vae.decode(latent / scaling_factor + shift_factor)``, as
  diffusers' pipelines decode).

Models are built with ``from_config`` of the allow-listed diffusers class and their
weights read from safetensors (:func:`load_model`): ``from_pretrained``'s hub and
remote-code machinery is never involved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from accelkit.diffusion.folder import Component
from accelkit.errors import InputError, LoadError, require


@contextlib.contextmanager
def quiet_diffusers() -> Iterator[None]:
    """Silence diffusers' own warnings (ignored config keys, casts) for the block; restores the level."""
    try:
        from diffusers.utils import logging as dlog
    except ImportError:  # pragma: no cover - callers require diffusers first
        yield
        return
    level = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(level)


def load_model(component: Component) -> nn.Module:
    """Build ``component``'s diffusers model from its config and load its safetensors weights.

    The class is diffusers' own (``component.class_name`` passed the folder's allow-list);
    weights are copied into float32 parameters (float16 files included); the model is
    returned in eval mode on the CPU.

    Raises:
        MissingDependencyError: diffusers is not installed (extra ``[diffusion]``).
        LoadError: The config does not build the class, or the weights do not fit it.
    """
    diffusers: Any = require("diffusers", "diffusion", "loading a diffusers pipeline folder")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cls = getattr(diffusers, component.class_name)
    cfg = {k: v for k, v in component.config.items() if not k.startswith("_")}
    try:
        with quiet_diffusers():
            model = cls.from_config(cfg)
    except Exception as exc:  # noqa: BLE001 - diffusers raises many types for bad configs
        raise LoadError(
            f"{component.folder}/config.json does not build a {component.class_name} "
            f"({type(exc).__name__}: {str(exc)[:160]}); re-save the model with save_pretrained"
        ) from None
    state: dict[str, torch.Tensor] = {}
    for f in component.weights:
        try:
            state.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise LoadError(
                f"{f} is not a readable safetensors file ({type(exc).__name__}: {str(exc)[:120]}); re-save the model"
            ) from None
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[0]!r})")
        if result.unexpected_keys:
            parts.append(
                f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]!r})"
            )
        raise LoadError(
            f"the weights in {component.folder} do not fit its config.json's {component.class_name}: "
            + ", ".join(parts)
            + "; re-save the model with save_pretrained (old checkpoints need diffusers' conversion first)"
        )
    return model.float().eval()  # type: ignore[no-any-return]


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out  # type: ignore[no-any-return]


class UNetDenoiser(nn.Module):
    """An unconditional ``UNet2DModel``: ``(sample, timestep) -> prediction``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return _first(self.model(sample, timestep, return_dict=False))


class ClassUNetDenoiser(UNetDenoiser):
    """A class-conditional ``UNet2DModel``: ``(sample, timestep, class_labels) -> prediction``."""

    def forward(  # type: ignore[override]
        self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor
    ) -> torch.Tensor:
        return _first(self.model(sample, timestep, class_labels=class_labels, return_dict=False))


class DiTDenoiser(nn.Module):
    """A ``DiTTransformer2DModel``: ``(sample, timestep, class_labels) -> prediction``.

    Args:
        model: The transformer.
        channels: Channels of ``sample``; a learned-variance output (twice as many) is cut to them.
    """

    def __init__(self, model: nn.Module, channels: int) -> None:
        super().__init__()
        self.model = model
        self.channels = int(channels)

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor
    ) -> torch.Tensor:
        out = _first(
            self.model(sample, timestep=timestep, class_labels=class_labels, return_dict=False)
        )
        return out[:, : self.channels]


class TextUNetDenoiser(nn.Module):
    """A ``UNet2DConditionModel``: ``(sample, timestep, encoder_hidden_states) -> prediction``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        return _first(
            self.model(
                sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False
            )
        )


class LatentDecoder(nn.Module):
    """``latent -> vae.decode(latent / scaling_factor + shift_factor)``: an image in ``[-1, 1]``.

    The encoder half of the VAE is dropped (never run by sampling).

    Args:
        vae: A diffusers ``AutoencoderKL``.
        scaling_factor: The VAE config's ``scaling_factor``.
        shift_factor: The config's ``shift_factor`` (0 when absent).
    """

    def __init__(self, vae: nn.Module, scaling_factor: float, shift_factor: float = 0.0) -> None:
        super().__init__()
        for part in ("encoder", "quant_conv"):
            if isinstance(getattr(vae, part, None), nn.Module):
                setattr(vae, part, None)
        self.vae = vae
        self.scaling_factor = float(scaling_factor)
        self.shift_factor = float(shift_factor)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        z = latent / self.scaling_factor + self.shift_factor
        return _first(self.vae.decode(z, return_dict=False))  # type: ignore[operator]


def check_supported(class_name: str, config: dict[str, Any], where: str) -> None:
    """Refuse denoiser configs whose extra inputs accelkit does not feed.

    Raises:
        InputError: SDXL-style added conditions, LCM guidance embeddings, non-embedding class
            conditioning, or encoder projections.
    """
    unsupported = {
        "addition_embed_type": "added conditions (SDXL text_time, ...)",
        "time_cond_proj_dim": "a guidance embedding (LCM)",
        "encoder_hid_dim_type": "an encoder projection",
    }
    for key, what in unsupported.items():
        if config.get(key):
            raise InputError(
                f"{where}: this {class_name} takes {what} ({key}={config[key]!r}), an input accelkit does not feed yet; "
                "supported: unconditional or class-embedding UNet2DModel, DiT, and UNet2DConditionModel with prompt embeddings"
            )
    if config.get("class_embed_type") not in (None, "") or (
        class_name == "UNet2DConditionModel" and config.get("num_class_embeds")
    ):
        raise InputError(
            f"{where}: {class_name} with class_embed_type={config.get('class_embed_type')!r} / "
            f"num_class_embeds={config.get('num_class_embeds')!r} is not supported (only UNet2DModel's "
            "num_class_embeds class labels are)"
        )


__all__ = [
    "ClassUNetDenoiser",
    "DiTDenoiser",
    "LatentDecoder",
    "TextUNetDenoiser",
    "UNetDenoiser",
    "check_supported",
    "load_model",
    "quiet_diffusers",
]
