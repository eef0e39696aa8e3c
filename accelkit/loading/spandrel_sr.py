"""Super-resolution / restoration state_dicts whose architecture spandrel detects.

ESRGAN, Real-ESRGAN (RRDBNet, ``params_ema``), SwinIR, HAT, DAT, SPAN, ... checkpoints are
plain ``.pth`` / ``.safetensors`` state_dicts; users never have their architecture as
code. spandrel (optional extra ``[sr]``) recognises the architecture from the tensor
names and shapes, among its own fixed registry, and builds it: no code named in the
file is imported. The generator's spec follows spandrel's conventions: an image
``[C, H, W]`` in ``[0, 1]`` in, ``[C', s*H, s*W]`` in ``[0, 1]`` out, with H and W a
nominal 64 pixels rounded to what the architecture needs (``--input`` changes it,
``--dynamic-hw`` makes it free).

spandrel 0.4 imports torchvision at import time, which needs the torch build it was made
for; when it cannot be imported, the error says why and how to install it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelkit.errors import InputError, LoadError, MissingDependencyError
from accelkit.spec import GeneratorSpec, InputSpec

#: Nominal input height/width (pixels) before the architecture's size requirements.
NOMINAL_SIZE = 64
INSTALL = 'pip install "accelkit[sr]" (spandrel; it needs torchvision built for your torch, e.g. torch==2.14.1 with torchvision==0.29.1)'


def import_spandrel() -> Any:
    """``spandrel``, or :class:`MissingDependencyError` saying why it cannot be imported and how to install it."""
    try:
        import spandrel
    except ImportError as exc:
        raise MissingDependencyError(
            f"spandrel is not installed ({exc}); install it with: {INSTALL}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torchvision built for another torch fails with RuntimeError at import
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise MissingDependencyError(
            f"spandrel is installed but cannot be imported ({type(exc).__name__}: {first}); torchvision must match torch: {INSTALL}"
        ) from None
    return spandrel


def spandrel_available() -> str | None:
    """None when spandrel imports here, else the reason it does not."""
    try:
        import_spandrel()
    except MissingDependencyError as exc:
        return str(exc)
    return None


def nominal_size(minimum: int, multiple_of: int, size: int = NOMINAL_SIZE) -> int:
    """``size`` raised to at least ``minimum`` and rounded up to a multiple of ``multiple_of``."""
    n = max(size, minimum)
    m = max(1, multiple_of)
    return -(-n // m) * m


def load_sr(state_dict: Mapping[str, Any], path: Path) -> tuple[Any, GeneratorSpec, dict[str, Any]]:
    """Build the SR / restoration network spandrel detects in ``state_dict``.

    Returns:
        ``(module, spec, meta)``: the network in eval mode (float32, CPU), its spec
        (image in and out in ``[0, 1]``) and what to record (architecture, scale, tags).

    Raises:
        MissingDependencyError: spandrel cannot be imported (the message says why).
        InputError: spandrel does not recognise the weights, or they are not an
            image-to-image model accelkit can feed (an inpainting model needs a mask).
    """
    spandrel = import_spandrel()
    try:
        desc = spandrel.ModelLoader(device="cpu").load_from_state_dict(dict(state_dict))
    except spandrel.UnsupportedModelError:
        raise InputError(
            f"{path} holds only weights and spandrel does not recognise their architecture; give it with --arch module:Class "
            "(plus --arch-kwargs JSON)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a recognised architecture whose weights do not fit
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise LoadError(
            f"{path}: spandrel could not build the network ({type(exc).__name__}: {first}); give the architecture with --arch"
        ) from None
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise InputError(
            f"{path} is a {desc.architecture.name} {desc.purpose} model ({type(desc).__name__}); accelkit runs image-to-image "
            "models with one image input (an inpainting model also needs a mask)"
        )
    req = desc.size_requirements
    s = nominal_size(int(req.minimum), int(req.multiple_of))
    module = desc.model.eval().float()
    for p in module.parameters():
        p.requires_grad_(False)
    arch = desc.architecture
    name = getattr(arch, "name", str(arch))
    spec = GeneratorSpec(
        inputs=(InputSpec("image", "image", (int(desc.input_channels), s, s)),),
        output_range=(0.0, 1.0),
        inferred=(
            (
                "inputs",
                f"spandrel {name} (x{desc.scale}, {desc.input_channels} channels; image size {s} nominal: override with --input image:{desc.input_channels}xHxW)",
            ),
            ("output_range", "spandrel convention: images in [0, 1]"),
        ),
    )
    meta = {
        "arch": f"spandrel:{getattr(arch, 'id', name)}",
        "spandrel": {
            "architecture": name,
            "id": getattr(arch, "id", name),
            "purpose": str(desc.purpose),
            "scale": int(desc.scale),
            "tags": list(desc.tags),
            "size_requirements": {
                "minimum": int(req.minimum),
                "multiple_of": int(req.multiple_of),
                "square": bool(req.square),
            },
            "version": getattr(spandrel, "__version__", None),
        },
    }
    return module, spec, meta


__all__ = ["import_spandrel", "load_sr", "nominal_size", "spandrel_available"]
