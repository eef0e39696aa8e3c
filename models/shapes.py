"""Procedural "shapes" dataset: the offline training data of the bundled demo models.

Each image is an RGB picture of 1-3 filled, anti-aliased shapes (circle, square rotated
by a random angle, triangle) with random colours, sizes and positions, drawn over a
smooth colour gradient (bilinear blend of four random corner colours). numpy only,
seeded; about 1.2 ms per 64x64 image on one idle core (12k images: 11-23 s measured on
the shared 2-core development machine), about 3 ms per 128x128 image.

Usage::

    from shapes import make_shapes
    x = make_shapes(1000, size=64, seed=0)   # float32 (1000, 3, 64, 64) in [0, 1]

    python models/shapes.py --n 64 --out grid.png   # look at a grid

It also holds the small helpers the checkpoint scripts of this folder share
(:func:`save_grid`, :func:`save_checkpoint`, :func:`ema_update`, the ``WEIGHTS``/``DOCS``
paths).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WEIGHTS = HERE / "weights"
DOCS = REPO / "docs"

# The scripts in this folder import this module first; let them use accelkit from a
# source checkout without installing it.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHAPES = ("circle", "square", "triangle")


def _coverage(sdf: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage of a signed distance field (negative inside), one pixel wide."""
    return np.clip(0.5 - sdf / px, 0.0, 1.0)


def _paint_shape(
    img: np.ndarray,
    rng: np.random.Generator,
    kind: str,
    yy: np.ndarray,
    xx: np.ndarray,
    px: float,
    radius: tuple[float, float] = (0.15, 0.28),
) -> np.ndarray:
    """Paint one filled, anti-aliased shape of ``kind`` over ``img`` (size, size, 3).

    ``radius`` is the range of the shape's "radius" as a fraction of the image side.
    """
    r = float(rng.uniform(*radius))
    cy, cx = rng.uniform(r * 0.6, 1 - r * 0.6, size=2)
    colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        sdf = np.sqrt(dy * dy + dx * dx) - r
    else:
        a = float(rng.uniform(0.0, 2 * math.pi))
        c, s = math.cos(a), math.sin(a)
        u, v = c * dx + s * dy, -s * dx + c * dy
        if kind == "square":
            h = r * 0.85
            sdf = np.maximum(np.abs(u), np.abs(v)) - h
        else:
            # Equilateral triangle as the intersection of three half-planes
            # (max of the signed distances to its edges: exact inside, close outside).
            sdf = np.full_like(u, -np.inf)
            for k in range(3):
                a_k = 2 * math.pi * k / 3 + math.pi / 2
                nx, ny = math.cos(a_k), math.sin(a_k)
                sdf = np.maximum(sdf, nx * u + ny * v - r * 0.6)
    cov = _coverage(sdf.astype(np.float32), px)[..., None]
    return img * (1 - cov) + colour * cov


def _background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Bilinear blend of four random corner colours: a smooth random gradient."""
    corners = rng.uniform(0.0, 1.0, size=(4, 3)).astype(np.float32)
    return (
        corners[0] * ((1 - yy) * (1 - xx))[..., None]
        + corners[1] * ((1 - yy) * xx)[..., None]
        + corners[2] * (yy * (1 - xx))[..., None]
        + corners[3] * (yy * xx)[..., None]
    )


def _draw_one(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """One image, float32 (size, size, 3) in [0, 1]. Coordinates are in [0, 1]."""
    img = _background(rng, yy, xx)
    for _ in range(int(rng.integers(1, 4))):
        kind = SHAPES[int(rng.integers(0, len(SHAPES)))]
        img = _paint_shape(img, rng, kind, yy, xx, 1.0 / size)
    return img


def make_shapes(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Generate ``n`` shape images.

    Args:
        n: Number of images.
        size: Side in pixels (square images).
        seed: Seed; the same (n, size, seed) always gives the same images.

    Returns:
        float32 array (n, 3, size, size) in [0, 1].
    """
    rng = np.random.default_rng(seed)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        out[i] = _draw_one(rng, size, yy, xx)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def make_labeled_shapes(
    n: int,
    size: int = 32,
    seed: int = 0,
    max_count: int = 1,
    radius: tuple[float, float] = (0.22, 0.34),
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` images whose label is the kind of shape they show.

    Each image holds 1 to ``max_count`` shapes (default one), all of one kind (``SHAPES[label]``: 0 circle,
    1 square, 2 triangle), drawn exactly like :func:`make_shapes` draws a shape over the same
    kind of gradient, a little larger by default (``radius``, a fraction of the side) so a
    triangle stays a triangle at 32x32. This is the class-conditional data of the bundled
    ``ddpm``.

    Args:
        n: Number of images.
        size: Side in pixels (square images).
        seed: Seed; the same arguments always give the same images and labels.
        max_count: Most shapes per image (at least 1).
        radius: Range of a shape's "radius" as a fraction of the image side.

    Returns:
        ``(images, labels)``: float32 (n, 3, size, size) in [0, 1] and int64 (n,) in
        [0, len(SHAPES)).
    """
    rng = np.random.default_rng(seed)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    out = np.empty((n, size, size, 3), dtype=np.float32)
    labels = rng.integers(0, len(SHAPES), size=n).astype(np.int64)
    for i in range(n):
        img = _background(rng, yy, xx)
        for _ in range(int(rng.integers(1, max_count + 1))):
            img = _paint_shape(img, rng, SHAPES[int(labels[i])], yy, xx, 1.0 / size, radius)
        out[i] = img
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)), labels


def save_grid(
    images: np.ndarray,
    path: str,
    nrow: int = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
    pad: int = 2,
) -> None:
    """Write an (N, 3, H, W) float array as an ``nrow``-wide PNG grid."""
    from PIL import Image

    lo, hi = value_range
    x = np.clip((images - lo) / (hi - lo), 0.0, 1.0)
    n, c, h, w = x.shape
    ncol = nrow
    nr = math.ceil(n / ncol)
    grid = np.ones((nr * (h + pad) + pad, ncol * (w + pad) + pad, 3), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + q * (w + pad) : pad + q * (w + pad) + w,
        ] = x[i].transpose(1, 2, 0)
    Image.fromarray((grid * 255.0 + 0.5).astype(np.uint8)).save(path)


def save_checkpoint(model, path: str | os.PathLike, arch: str, kwargs: dict, **info: object) -> int:
    """Write ``model.state_dict()`` as safetensors with accelkit's metadata, atomically.

    Shared by the checkpoint scripts of this folder.

    Args:
        model: The module, saved as is (put it in eval mode first).
        path: Destination file.
        arch: Registry name in ``accelkit.models.ARCHITECTURES``.
        kwargs: Constructor keyword arguments (JSON-serialisable).
        **info: Extra metadata, stored as ``accelkit.<key>`` with ``str`` values.

    Returns:
        The file size in bytes.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"accelkit.arch": arch, "accelkit.arch_kwargs": json.dumps(kwargs, sort_keys=True)}
    meta.update(
        {k if k.startswith("accelkit.") else f"accelkit.{k}": str(v) for k, v in info.items()}
    )
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(sd, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path.stat().st_size


def ema_update(ema, model, beta: float) -> None:
    """``ema <- beta * ema + (1 - beta) * model``, parameter by parameter (no gradients)."""
    import torch

    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1.0 - beta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="shapes_grid.png")
    a = p.parse_args()
    save_grid(make_shapes(a.n, a.size, a.seed), a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
