"""The decoder of a diffusers VAE folder (``AutoencoderKL.save_pretrained``), as a generator.

A folder with ``config.json`` (``"_class_name": "AutoencoderKL"``) and
``diffusion_pytorch_model.safetensors`` — or a whole pipeline folder with that inside
``vae/`` — loads as :class:`VaeDecoder`: a latent ``[C, H, W]`` in, an image
``[3, 8H, 8W]`` in ``[-1, 1]`` out, with the latent scaled as diffusers pipelines do
before decoding (``latent / scaling_factor + shift_factor``), so its input is the latent
a diffusion model produces (close to unit variance: the normal prior fits it).

The class comes from a fixed list of diffusers VAE classes (:data:`SUPPORTED`), never from
a name in the file; weights load from safetensors, or from a ``.bin`` with
``torch.load(weights_only=True)``; nothing is downloaded (``local_files_only``).
diffusers is the optional extra ``[vae]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from accelkit.errors import InputError, LoadError, require
from accelkit.loading.registry import LoadRequest, TorchModel
from accelkit.spec import GeneratorSpec, InputSpec

#: diffusers classes whose ``decode(latent).sample`` is an image, by ``_class_name``.
SUPPORTED = ("AutoencoderKL", "AutoencoderTiny", "AsymmetricAutoencoderKL")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def vae_folder(path: Path) -> Path | None:
    """The folder holding the VAE's ``config.json`` (``path`` itself or ``path/vae``), or None."""
    for folder in (path, path / "vae"):
        if (folder / "config.json").is_file():
            try:
                cfg = json.loads((folder / "config.json").read_text())
            except (OSError, ValueError, RecursionError):
                continue
            if isinstance(cfg, dict) and "_class_name" in cfg and "_diffusers_version" in cfg:
                return folder
    return None


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a diffusers model folder.

    Raises:
        LoadError: Unreadable, or a class accelkit does not load as a VAE decoder.
    """
    from accelkit.jsonio import read_json_object

    cfg = read_json_object(
        folder / "config.json", f"{folder}/config.json", "re-save the model with save_pretrained"
    )
    name = cfg.get("_class_name")
    if name not in SUPPORTED:
        raise InputError(
            f"{folder} is a diffusers {name!r} folder; accelkit loads the decoder of a VAE ({', '.join(SUPPORTED)}): "
            "give the VAE's folder (a pipeline's vae/)"
        )
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise LoadError(
            f"{folder} has a config.json but no {' or '.join(WEIGHT_FILES)}; re-save the model with save_pretrained"
        )
    return cfg  # type: ignore[no-any-return]


def latent_size(cfg: dict[str, Any]) -> int:
    """Nominal latent height/width: ``sample_size`` over the encoder's downsampling (8 for SD)."""
    size = cfg.get("sample_size") or 512
    if isinstance(size, (list, tuple)):
        size = size[0]
    blocks = cfg.get("block_out_channels") or cfg.get("decoder_block_out_channels") or (0, 0, 0, 0)
    down = 2 ** max(0, len(blocks) - 1)
    return max(1, int(size) // down)


def _decoder_class() -> type:
    import torch
    from torch import nn

    class VaeDecoder(nn.Module):
        """``latent -> vae.decode(latent / scaling_factor + shift_factor).sample`` (NCHW, ``[-1, 1]``).

        Args:
            vae: A diffusers VAE (``AutoencoderKL`` ...).
            scaling_factor: The VAE config's ``scaling_factor`` (0.18215 for SD 1.x).
            shift_factor: The config's ``shift_factor`` (SD3, Flux), 0 when absent.
        """

        def __init__(self, vae: Any, scaling_factor: float, shift_factor: float) -> None:
            super().__init__()
            self.vae = vae
            self.scaling_factor = float(scaling_factor)
            self.shift_factor = float(shift_factor)
            self.output_range = (-1.0, 1.0)

        def forward(self, latent: torch.Tensor) -> torch.Tensor:
            z = latent / self.scaling_factor + self.shift_factor
            return self.vae.decode(z, return_dict=False)[0]  # type: ignore[no-any-return]

    return VaeDecoder


def load_vae_decoder(path: Path) -> tuple[Any, GeneratorSpec, dict[str, Any]]:
    """Load the decoder of the diffusers VAE under ``path``.

    Returns:
        ``(module, spec, meta)``: the :class:`VaeDecoder` in eval mode (float32, CPU),
        its spec (latent ``[latent_channels, s, s]`` with ``s = sample_size / 2^(blocks-1)``,
        image output in ``[-1, 1]``) and what to record (class, scaling, config).

    Raises:
        MissingDependencyError: diffusers is not installed (extra ``[vae]``).
        InputError / LoadError: Not a VAE folder, or its weights do not load.
    """
    folder = vae_folder(path)
    if folder is None:
        raise InputError(
            f"{path} is a folder without a diffusers config.json (nor vae/config.json); give a generator file or a diffusers VAE folder"
        )
    cfg = read_config(folder)
    require("diffusers", "vae", "loading a diffusers VAE decoder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network for a local folder
    import diffusers
    import torch

    cls = getattr(diffusers, cfg["_class_name"])
    use_st = (folder / WEIGHT_FILES[0]).is_file()
    try:
        vae = cls.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=use_st, low_cpu_mem_usage=False
        )
    except Exception as exc:  # noqa: BLE001 - diffusers raises many types for bad folders
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise LoadError(
            f"{folder}: diffusers could not load the {cfg['_class_name']} ({type(exc).__name__}: {first}); re-save it with save_pretrained"
        ) from None
    vae = vae.eval().float()
    for part in (
        "encoder",
        "quant_conv",
    ):  # decode() never runs them: drop them from memory, exports and counts
        if isinstance(getattr(vae, part, None), torch.nn.Module):
            setattr(vae, part, None)
    scaling = float(cfg.get("scaling_factor") or 1.0)
    shift = float(cfg.get("shift_factor") or 0.0)
    module = _decoder_class()(vae, scaling, shift).eval()
    channels = int(cfg.get("latent_channels") or 4)
    s = latent_size(cfg)
    spec = GeneratorSpec(
        inputs=(InputSpec("latent", "latent", (channels, s, s)),),
        output_range=(-1.0, 1.0),
        inferred=(
            (
                "inputs",
                f"diffusers {cfg['_class_name']} config (latent_channels {channels}, sample_size {cfg.get('sample_size')})",
            ),
            ("output_range", "diffusers VAE convention (pipelines map images with x / 2 + 0.5)"),
            (
                "latent_scaling",
                f"the VAE config (latent / {scaling:g}"
                + (f" + {shift:g}" if shift else "")
                + " before decoding, as diffusers pipelines do)",
            ),
        ),
    )
    meta = {
        "arch": f"diffusers:{cfg['_class_name']}.decoder",
        "diffusers_config": {k: v for k, v in cfg.items() if not k.startswith("_")},
        "diffusers_version": getattr(diffusers, "__version__", None),
        "scaling_factor": scaling,
        "shift_factor": shift,
        "vae_folder": str(folder),
        "weights_file": WEIGHT_FILES[0] if use_st else WEIGHT_FILES[1],
    }
    return module, spec, meta


def is_vae_folder(path: Path) -> bool:
    """Detector of the registry: a folder holding a diffusers VAE (itself or its ``vae/``)."""
    return path.is_dir() and vae_folder(path) is not None


def load(req: LoadRequest) -> TorchModel:
    """Loader of the registry: the VAE's decoder as a generator (see :func:`load_vae_decoder`)."""
    module, spec, meta = load_vae_decoder(req.path)
    return TorchModel(module, family=spec, meta=meta)


__all__ = [
    "SUPPORTED",
    "is_vae_folder",
    "latent_size",
    "load",
    "load_vae_decoder",
    "read_config",
    "vae_folder",
]
