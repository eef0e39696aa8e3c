"""One image path for every FID source: generator output, arrays and image folders.

Every image that reaches a feature extractor goes through the same three steps, so a
folder of PNGs written by a generator and the generator's in-memory output give the
same features:

1. **Quantize** (:func:`to_uint8`): float output in its value range ``[lo, hi]`` is
   mapped to ``[0, 255]``, rounded half up (``floor(v + 0.5)``) and clipped, exactly
   what saving a PNG does. Images loaded from files are already uint8.
2. **Resize** (:func:`resize_uint8`): the uint8 image, as float32 values in
   ``[0, 255]``, is resized to the extractor's square input with
   ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
   antialias=True)``, without re-quantizing. The mode is recorded as
   :data:`RESIZE_MODE` in every stats file. Images already at the input size are not
   touched.
3. **Scale** (:func:`to_extractor_range`): ``(x - 128) / 128``, i.e. ``[0, 255]`` ->
   ``[-1, 0.9921875]``, the preprocessing of the 2015-12-05 TensorFlow Inception graph
   that the standard FID network was converted from.

Folders are read sorted and recursively (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``,
``.webp``), converted to RGB; an unreadable file is a one-line :class:`InputError`
naming it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from accelkit.errors import InputError, NonFiniteOutputError

log = logging.getLogger(__name__)

#: The one resize used before feature extraction; recorded in every stats file.
RESIZE_MODE = "torch-bilinear-antialias-f32"
#: How uint8 values become extractor input; recorded in every stats file.
INPUT_TRANSFORM = "(x-128)/128"
#: File suffixes read from image folders (lower case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def check_finite(x: Any, what: str = "generator output") -> None:
    """Raise when ``x`` holds NaN or Inf (the one check for generator outputs, features and statistics).

    Args:
        x: numpy array or torch tensor (any device); integer data is always finite.
        what: Which run or value produced ``x``, for the message.

    Raises:
        NonFiniteOutputError: Some value is NaN or Inf; the one-line message counts
            them (``N non-finite values of T (a NaN, b Inf)``).
    """
    if _is_torch(x):
        import torch

        if not torch.is_floating_point(x):
            return
        bad = int((~torch.isfinite(x)).sum().item())
        n_nan = int(torch.isnan(x).sum().item()) if bad else 0
        total = x.numel()
    else:
        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.floating):
            return
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        n_nan = int(np.count_nonzero(np.isnan(arr))) if bad else 0
        total = arr.size
    if bad:
        raise NonFiniteOutputError(
            f"{what} produced {bad} non-finite values of {total} ({n_nan} NaN, {bad - n_nan} Inf); expected finite numbers, "
            "no NaN/Inf; an fp16/int8 overflow is the usual cause: keep the overflowing ops in FP32 or use fp32"
        )


def to_uint8(x: Any, value_range: tuple[float, float] = (-1.0, 1.0)) -> Any:
    """Quantize float images in ``value_range`` to uint8 like saving a PNG.

    ``u = clip(floor((x - lo) / (hi - lo) * 255 + 0.5), 0, 255)``. Layout is kept.

    Args:
        x: Float images (numpy array or torch tensor on any device), any layout.
            uint8 input is returned unchanged.
        value_range: ``(lo, hi)`` of the generator's output, e.g. ``(-1, 1)`` or ``(0, 1)``.

    Returns:
        uint8 array or tensor (same type, device and shape as ``x``).

    Raises:
        NonFiniteOutputError: ``x`` holds NaN or Inf.
        InputError: ``value_range`` is empty.
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise InputError(f"value range ({lo}, {hi}) is empty; expected lo < hi, e.g. (-1, 1) or (0, 1)")
    if _is_torch(x):
        import torch

        if x.dtype == torch.uint8:
            return x
        check_finite(x)
        v = (x.to(torch.float64) - lo) * (255.0 / (hi - lo))
        return torch.floor(v + 0.5).clamp_(0, 255).to(torch.uint8)
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        return arr
    check_finite(arr)
    v = (arr.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


def to_nchw3(x: Any) -> Any:
    """Bring a uint8 image batch to N x 3 x H x W (same array type).

    Accepts NCHW or NHWC with 1 or 3 channels (a single image without batch axis is
    also accepted). Grayscale is repeated to RGB. When both axis 1 and the last axis
    could be channels (e.g. 3x3 images), NCHW wins.

    Raises:
        InputError: The shape is not an image batch, or the dtype is not uint8.
    """
    shape = tuple(x.shape)
    dtype = str(x.dtype).replace("torch.", "")
    if dtype != "uint8":
        raise InputError(
            f"feature extraction got {dtype} images; expected uint8; "
            "quantize generator output first with accelkit.quality.images.to_uint8(x, value_range)"
        )
    if len(shape) == 3:
        x = x[None]
        shape = (1, *shape)
    if len(shape) != 4:
        raise InputError(f"feature extraction got images of shape {shape}; expected N x C x H x W or N x H x W x C")
    if shape[1] in (1, 3):
        out = x
    elif shape[3] in (1, 3):
        out = x.permute(0, 3, 1, 2) if _is_torch(x) else np.transpose(x, (0, 3, 1, 2))
    else:
        raise InputError(f"feature extraction got images of shape {shape}; expected 1 or 3 channels (NCHW or NHWC)")
    if out.shape[1] == 1:
        out = out.repeat(1, 3, 1, 1) if _is_torch(out) else np.repeat(out, 3, axis=1)
    return out


def resize_uint8(x: Any, size: int) -> Any:
    """Resize a uint8 N x 3 x H x W batch to ``size`` x ``size`` (:data:`RESIZE_MODE`).

    Args:
        x: uint8 numpy array or torch tensor (any device), NCHW with 3 channels.
        size: Output height and width in pixels.

    Returns:
        float32 torch tensor N x 3 x size x size, values in ``[0, 255]`` (not
        re-quantized), on ``x``'s device (CPU for numpy input).
    """
    import torch
    import torch.nn.functional as F

    t = x if _is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
    t = t.to(torch.float32)
    if t.shape[-2] == size and t.shape[-1] == size:
        return t
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def to_extractor_range(x: Any) -> Any:
    """``(x - 128) / 128``: float values in ``[0, 255]`` -> ``[-1, 0.9921875]``."""
    return (x - 128.0) / 128.0


def prepare_batch(images: Any, size: int) -> Any:
    """uint8 images (NCHW or NHWC, 1 or 3 channels) -> extractor input.

    Args:
        images: uint8 numpy array or torch tensor.
        size: Extractor input size in pixels.

    Returns:
        float32 torch tensor N x 3 x size x size in ``[-1, 0.9921875]`` on the
        images' device.
    """
    return to_extractor_range(resize_uint8(to_nchw3(images), size))


# ----------------------------------------------------------------------- folders
def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder``, recursive, sorted by relative path.

    Raises:
        InputError: ``folder`` is not a directory or holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"image folder {root} does not exist or is not a folder; expected a folder of PNG/JPG images")
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise InputError(
            f"image folder {root} holds no image file; expected files ending in {', '.join(IMAGE_SUFFIXES)}"
        )
    return files


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one image file as RGB uint8 H x W x 3.

    Raises:
        InputError: The file cannot be read or decoded (message names the file).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(
            f"cannot read image {path} ({reason}); expected a readable PNG/JPG; delete or replace the file"
        ) from None
    return np.asarray(rgb, dtype=np.uint8)


def iter_folder_batches(
    files: Sequence[Path], batch_size: int, size: int
) -> Iterator[Any]:
    """Load, resize and scale image files in batches, in the given order.

    Images may differ in size: each one is resized on its own (the resize is per image,
    so the result does not depend on the batch size).

    Args:
        files: Image paths (see :func:`list_images`).
        batch_size: Images per yielded batch.
        size: Extractor input size in pixels.

    Yields:
        float32 torch tensors B x 3 x size x size in the extractor's input range.
    """
    import torch

    if batch_size < 1:
        raise InputError(f"batch size {batch_size} is not positive; expected >= 1")
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        arrays = [load_image(p) for p in chunk]
        if all(a.shape == arrays[0].shape for a in arrays):
            yield prepare_batch(np.stack(arrays), size)
        else:
            yield torch.cat([prepare_batch(a[None], size) for a in arrays])


def load_input_images(files: Sequence[Path], shape: Sequence[int], value_range: tuple[float, float]) -> np.ndarray:
    """Image files as a generator's image input: float32 N x C x H x W in ``value_range``.

    Each file is read as RGB (grey for ``C == 1``), resized to ``H x W`` with the resize
    of :data:`RESIZE_MODE` (bilinear, antialiased, on float values in ``[0, 255]``) and
    mapped linearly from ``[0, 255]`` to ``value_range``.

    Raises:
        InputError: ``shape`` is not ``(1 or 3, H, W)``, or a file cannot be read.
    """
    import torch
    import torch.nn.functional as F

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise InputError(f"image input of shape {tuple(shape)} cannot be filled from image files; expected (1 or 3, H, W)")
    c, h, w = (int(d) for d in shape)
    lo, hi = value_range
    out = np.empty((len(files), c, h, w), dtype=np.float32)
    for k, path in enumerate(files):
        arr = load_image(path).astype(np.float32)  # H x W x 3 in [0, 255]
        if c == 1:
            arr = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
        if t.shape[-2:] != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out[k] = lo + (hi - lo) * (t[0].numpy().clip(0.0, 255.0) / 255.0)
    return out
