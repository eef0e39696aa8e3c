"""Bundled generator architectures and their demo checkpoints.

Architectures are registered by short name (usable as ``--arch NAME``); the bundled
checkpoints (made by the scripts in the repository's ``models/`` folder) are found by
:func:`bundled_path`. ``dcgan`` is the default generator of every command.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from accelkit.errors import InputError

#: name -> "module:Class"
ARCHITECTURES: dict[str, str] = {
    "dcgan": "accelkit.models.dcgan:DCGANGenerator",
    "stylegan2": "accelkit.models.stylegan2:StyleGAN2Generator",
    "sr4x": "accelkit.models.sr:SRResNet4x",
}

#: bundled checkpoint name -> file name under models/weights/
BUNDLED: dict[str, str] = {
    "dcgan": "dcgan.safetensors",
    "stylegan2": "stylegan2.safetensors",
    "sr4x": "sr4x.safetensors",
}

#: bundled diffusion pipeline name -> folder under models/weights/ (diffusers save_pretrained layout,
#: loaded by :func:`accelkit.diffusion.load_pipeline`).
BUNDLED_PIPELINES: dict[str, str] = {
    "ddpm": "ddpm",
}

DEFAULT_GENERATOR = "dcgan"


def architecture(name: str) -> type:
    """The ``nn.Module`` class registered as ``name``.

    Raises:
        InputError: Unknown name.
    """
    target = ARCHITECTURES.get(name)
    if target is None:
        raise InputError(
            f"unknown bundled architecture {name!r}; choose one of {', '.join(ARCHITECTURES)} or give module:Class"
        )
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)  # type: ignore[no-any-return]


def build(name: str, **kwargs: Any) -> Any:
    """Instantiate a registered architecture with ``kwargs``."""
    return architecture(name)(**kwargs)


def _weights_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here.parent / "_bundled", here.parents[1] / "models" / "weights"]


def bundled_path(name: str = DEFAULT_GENERATOR) -> Path:
    """Path of a bundled checkpoint (``dcgan``, ``stylegan2``, ``sr4x``).

    Raises:
        InputError: Unknown name, or the checkpoint file is missing from this install.
    """
    fname = BUNDLED.get(name)
    if fname is None:
        raise InputError(f"unknown bundled generator {name!r}; choose one of {', '.join(BUNDLED)}")
    for d in _weights_dirs():
        if (d / fname).is_file():
            return d / fname
    raise InputError(
        f"bundled checkpoint {fname} is missing from this install; regenerate it with "
        f"'python models/make_all.py' in the accelkit repository"
    )


def bundled_pipeline_path(name: str) -> Path:
    """Folder of a bundled diffusion pipeline (``ddpm``).

    Raises:
        InputError: Unknown name, or the folder is missing from this install.
    """
    folder = BUNDLED_PIPELINES.get(name)
    if folder is None:
        raise InputError(
            f"unknown bundled pipeline {name!r}; choose one of {', '.join(BUNDLED_PIPELINES)}"
        )
    for d in _weights_dirs():
        if (d / folder / "model_index.json").is_file():
            return d / folder
    raise InputError(
        f"bundled pipeline {folder}/ is missing from this install; regenerate it with "
        f"'python models/train_ddpm.py' in the accelkit repository"
    )
