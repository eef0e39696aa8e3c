"""One image path for every FID source: generator output, arrays and image folders.

Every image that reaches a feature extractor goes through the same three steps, so a
folder of PNGs written by a generator and the generator's in-memory output give the
same features:

1. **Quantize** (:func:`to_uint8`): float output in its value range ``[lo, hi]`` is
   mapped to ``[0, 255]``, rounded half up (``floor(v + 0.5)``) and clipped, exactly
   what saving a PNG does. Images loaded from files are already uint8.
2. **Resize** (:func:`resize_uint8`): the uint8 image, as float32 values in
   ``[0, 255]``, is resized to the extractor's square input without re-quantizing, in
   one of the FID modes clean-fid defines (``--fid-mode``; recorded as ``resize_mode``
   in every FID's provenance; images already at the input size are not touched):

   * ``clean`` (default): PIL bicubic on each channel as a float32 ``F`` image, clipped
     to ``[0, 255]``: exactly clean-fid's ``clean`` resizer (``make_resizer("PIL",
     False, "bicubic", ...)``), the mode to compare absolute FIDs with papers that use it;
   * ``legacy-tensorflow``: the bilinear resize inside the TensorFlow FID graph (and
     NVIDIA's TorchScript port that clean-fid's ``legacy_tensorflow`` mode runs): output
     pixel ``j`` samples input position ``j * in / out`` (no half-pixel offset), edges
     clamped;
   * ``legacy-pytorch``: ``torch.nn.functional.interpolate(mode="bilinear",
     align_corners=False)`` without antialiasing, clipped: clean-fid's
     ``legacy_pytorch`` resizer (pytorch-fid's).

   Drift (FID between a build and its reference) works in any mode, as long as both
   sides use the same one.
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.errors import InputError, NonFiniteOutputError
from accelkit.vocab import FID_MODES

log = logging.getLogger(__name__)

# FID_MODES (clean-fid's names, with dashes: how images are resized for the extractor) is
# defined once in accelkit.vocab and re-exported here.
#: The default FID mode; recorded (as ``resize_mode``) in every stats file and drift.
RESIZE_MODE = "clean"
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


#: How far outside its declared range a generator's output may reach, as a fraction of the
#: range's width (0.5: ``[-1, 1]`` outputs must stay within ``[-2, 2]``). Generous on
#: purpose: a last layer without tanh/sigmoid, or fp16/int8 rounding, overshoots a little;
#: a wrong declaration (``[0, 255]`` or ``±1800`` declared ``[-1, 1]``) is far beyond it.
RANGE_TOLERANCE = 0.5


def check_range(x: Any, value_range: tuple[float, float], what: str = "generator output") -> None:
    """Raise when ``x`` reaches far outside the declared ``value_range`` (see :data:`RANGE_TOLERANCE`).

    Args:
        x: numpy array or torch tensor of finite values (any device).
        value_range: The spec's ``(low, high)`` output range.
        what: Which run produced ``x``, for the message.

    Raises:
        SpecError: The smallest or largest value lies more than ``RANGE_TOLERANCE`` x the
            range's width beyond it (one line, with the values seen and the fix).
    """
    from accelkit.errors import SpecError

    arr = x.detach().float().cpu().numpy() if _is_torch(x) else np.asarray(x)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
        return
    lo, hi = float(value_range[0]), float(value_range[1])
    slack = RANGE_TOLERANCE * (hi - lo)
    mn, mx = float(arr.min()), float(arr.max())
    if mn < lo - slack or mx > hi + slack:
        raise SpecError(
            f"{what} produced values in [{mn:.4g}, {mx:.4g}], far outside its declared output range [{lo:g}, {hi:g}] "
            f"(allowed: {RANGE_TOLERANCE:g} x its width beyond either end); declare the real range with --output-range, "
            "or fix the generator's last layer"
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
        raise InputError(
            f"value range ({lo}, {hi}) is empty; expected lo < hi, e.g. (-1, 1) or (0, 1)"
        )
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
        raise InputError(
            f"feature extraction got images of shape {shape}; expected N x C x H x W or N x H x W x C"
        )
    if shape[1] in (1, 3):
        out = x
    elif shape[3] in (1, 3):
        out = x.permute(0, 3, 1, 2) if _is_torch(x) else np.transpose(x, (0, 3, 1, 2))
    else:
        raise InputError(
            f"feature extraction got images of shape {shape}; expected 1 or 3 channels (NCHW or NHWC)"
        )
    if out.shape[1] == 1:
        out = out.repeat(1, 3, 1, 1) if _is_torch(out) else np.repeat(out, 3, axis=1)
    return out


def check_fid_mode(mode: str) -> str:
    """``mode`` when it is one of :data:`FID_MODES` (underscores accepted, as clean-fid spells them).

    Raises:
        InputError: Unknown mode.
    """
    m = str(mode).strip().lower().replace("_", "-")
    if m not in FID_MODES:
        raise InputError(
            f"--fid-mode {mode!r} is unknown; choose one of {', '.join(FID_MODES)} (clean-fid's modes)"
        )
    return m


def _resize_clean(t: Any, size: int) -> Any:
    """clean-fid ``clean``: PIL bicubic per channel on float32 ``F`` images, clipped to [0, 255]."""
    import torch
    from PIL import Image

    arr = t.detach().to("cpu", torch.float32).numpy()
    out = np.empty((arr.shape[0], arr.shape[1], size, size), dtype=np.float32)
    for i in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            img = Image.fromarray(
                np.ascontiguousarray(arr[i, c], dtype=np.float32)
            )  # 2-D float32 -> mode "F"
            out[i, c] = np.asarray(
                img.resize((size, size), resample=Image.Resampling.BICUBIC), dtype=np.float32
            ).clip(0, 255)
    return torch.from_numpy(out).to(t.device)


def _resize_legacy_tensorflow(t: Any, size: int) -> Any:
    """TensorFlow 1 ``resize_bilinear(align_corners=False)``: out pixel j reads input position j * in / out, edges clamped."""
    import torch

    def axis(n_in: int) -> tuple[Any, Any, Any]:
        pos = torch.arange(size, dtype=torch.float64, device=t.device) * (n_in / size)
        i0 = pos.floor().long().clamp(0, n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, (pos - i0).to(torch.float32)

    y0, y1, fy = axis(t.shape[-2])
    x0, x1, fx = axis(t.shape[-1])
    rows = t[..., y0, :] * (1 - fy)[:, None] + t[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def resize_uint8(x: Any, size: int, mode: str = RESIZE_MODE) -> Any:
    """Resize a uint8 N x 3 x H x W batch to ``size`` x ``size`` in FID mode ``mode``.

    Args:
        x: uint8 numpy array or torch tensor (any device), NCHW with 3 channels.
        size: Output height and width in pixels.
        mode: One of :data:`FID_MODES` (see the module docstring).

    Returns:
        float32 torch tensor N x 3 x size x size, values in ``[0, 255]`` (not
        re-quantized), on ``x``'s device (CPU for numpy input).

    Raises:
        InputError: Unknown mode.
    """
    import torch
    import torch.nn.functional as F

    mode = check_fid_mode(mode)
    t = x if _is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
    t = t.to(torch.float32)
    if t.shape[-2] == size and t.shape[-1] == size:
        return t
    if mode == "clean":
        return _resize_clean(t, size)
    if mode == "legacy-tensorflow":
        return _resize_legacy_tensorflow(t, size)
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False).clamp_(
        0.0, 255.0
    )


def to_extractor_range(x: Any) -> Any:
    """``(x - 128) / 128``: float values in ``[0, 255]`` -> ``[-1, 0.9921875]``."""
    return (x - 128.0) / 128.0


def prepare_batch(images: Any, size: int, mode: str = RESIZE_MODE) -> Any:
    """uint8 images (NCHW or NHWC, 1 or 3 channels) -> extractor input.

    Args:
        images: uint8 numpy array or torch tensor.
        size: Extractor input size in pixels.
        mode: FID mode of the resize (:data:`FID_MODES`).

    Returns:
        float32 torch tensor N x 3 x size x size in ``[-1, 0.9921875]`` on the
        images' device.
    """
    return to_extractor_range(resize_uint8(to_nchw3(images), size, mode))


# ----------------------------------------------------------------------- folders
def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder``, recursive, sorted by relative path.

    Raises:
        InputError: ``folder`` is not a directory or holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(
            f"image folder {root} does not exist or is not a folder; expected a folder of PNG/JPG images"
        )
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise InputError(
            f"image folder {root} holds no image file; expected files ending in {', '.join(IMAGE_SUFFIXES)}"
        )
    return files


#: The most pixels an image file may declare (8192 x 8192, 192 MiB as RGB uint8). A
#: generator's input or an FID set image is far smaller; a file declaring more is a
#: decompression bomb (a few KB of PNG that inflate to gigabytes) or the wrong file.
MAX_IMAGE_PIXELS = 8192 * 8192


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one image file as RGB uint8 H x W x 3.

    The size the file declares is checked against :data:`MAX_IMAGE_PIXELS` from its
    header, before any pixel is decoded.

    Raises:
        InputError: The file cannot be read or decoded, or declares more pixels than
            :data:`MAX_IMAGE_PIXELS` (message names the file).
    """
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            # PIL warns about, or refuses, huge images itself: both become the one-line error below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise _TooLarge(w, h)
                im.load()
                rgb = im.convert("RGB")
    except (_TooLarge, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = (
            f"{exc.width} x {exc.height} pixels"
            if isinstance(exc, _TooLarge)
            else "more pixels than PIL decodes safely"
        )
        raise InputError(
            f"image {path} declares {size}, more than accelkit decodes ({MAX_IMAGE_PIXELS:,} = 8192 x 8192): "
            "a decompression bomb or not an input image; remove it or downscale it"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(
            f"cannot read image {path} ({reason}); expected a readable PNG/JPG; delete or replace the file"
        ) from None
    return np.asarray(rgb, dtype=np.uint8)


class _TooLarge(Exception):
    def __init__(self, width: int, height: int) -> None:
        super().__init__(f"{width} x {height}")
        self.width, self.height = width, height


def iter_folder_batches(
    files: Sequence[Path], batch_size: int, size: int, mode: str = RESIZE_MODE
) -> Iterator[Any]:
    """Load, resize and scale image files in batches, in the given order.

    Images may differ in size: each one is resized on its own (the resize is per image,
    so the result does not depend on the batch size).

    Args:
        files: Image paths (see :func:`list_images`).
        batch_size: Images per yielded batch.
        size: Extractor input size in pixels.
        mode: FID mode of the resize (:data:`FID_MODES`).

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
            yield prepare_batch(np.stack(arrays), size, mode)
        else:
            yield torch.cat([prepare_batch(a[None], size, mode) for a in arrays])


#: How image files become a generator's image input; recorded with every use (calibration, bench --images).
INPUT_PREPROCESS = "center-crop to the input's aspect ratio, bilinear-antialias resize, [0, 255] mapped linearly to the input range"


def load_input_images(
    files: Sequence[Path], shape: Sequence[int], value_range: tuple[float, float]
) -> np.ndarray:
    """Image files as a generator's image input: float32 N x C x H x W in ``value_range``.

    Each file is read as RGB (grey for ``C == 1``), center-cropped to the input's aspect
    ratio, resized to ``H x W`` (bilinear, antialiased, on float values in ``[0, 255]``)
    and mapped linearly from ``[0, 255]`` to ``value_range`` (:data:`INPUT_PREPROCESS`).

    Raises:
        InputError: ``shape`` is not ``(1 or 3, H, W)``, or a file cannot be read.
    """
    import torch
    import torch.nn.functional as F

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise InputError(
            f"image input of shape {tuple(shape)} cannot be filled from image files; expected (1 or 3, H, W)"
        )
    c, h, w = (int(d) for d in shape)
    lo, hi = value_range
    out = np.empty((len(files), c, h, w), dtype=np.float32)
    for k, path in enumerate(files):
        arr = load_image(path).astype(np.float32)  # H x W x 3 in [0, 255]
        if c == 1:
            arr = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
        sh, sw = arr.shape[:2]
        if sh * w != sw * h:  # crop the largest centered region with the input's aspect ratio
            ch, cw = (
                (sh, max(1, round(sh * w / h)))
                if sw * h > sh * w
                else (max(1, round(sw * h / w)), sw)
            )
            top, left = (sh - ch) // 2, (sw - cw) // 2
            arr = arr[top : top + ch, left : left + cw]
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
        if t.shape[-2:] != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out[k] = lo + (hi - lo) * (t[0].numpy().clip(0.0, 255.0) / 255.0)
    return out


def input_images(
    spec: Any, folder: str | os.PathLike[str], n: int, flag: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The first ``n`` images of ``folder`` (sorted, recursive) as the image input of ``spec``.

    Args:
        spec: The generator's :class:`~accelkit.spec.GeneratorSpec` (its first image input
            gives the size, its output range the value range).
        folder: Image folder.
        n: Images wanted (fewer when the folder holds fewer).
        flag: The flag that asked (``--images``, ``--calib-images``), for messages.

    Returns:
        ``(N x C x H x W float32, record)``; the record holds the folder, the count, a
        sha256 over the files' names and bytes, and the preprocessing.

    Raises:
        InputError: The generator has no image input, or the folder has no readable image.
    """
    import hashlib

    images = [i for i in spec.inputs if i.kind == "image"]
    if not images:
        raise InputError(
            f"{flag} is for image-to-image generators; this one takes {', '.join(i.describe() for i in spec.inputs)} "
            f"and draws its inputs from its own prior (leave {flag} out)"
        )
    files = list_images(folder)[:n]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(folder).as_posix().encode() + b"\0" + f.read_bytes())
    arr = load_input_images(files, images[0].shape, spec.output_range)
    record = {
        "folder": str(folder),
        "files": len(files),
        "sha256": digest.hexdigest(),
        "preprocess": INPUT_PREPROCESS,
        "size": list(images[0].shape),
    }
    return arr, record
