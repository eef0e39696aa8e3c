"""Seeded inputs that are identical for every backend.

Sample ``i`` of a :class:`LatentSampler` depends only on ``(seed, i)``, never on the
batch size or on which backend asks, so paired comparisons (torch vs ONNX Runtime vs
TensorRT, fp32 vs fp16) see exactly the same latents, labels and images.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from accelkit.errors import InputError
from accelkit.spec import GeneratorSpec, InputSpec


def _smooth_image(
    rng: np.random.Generator, shape: tuple[int, ...], lo: float, hi: float
) -> np.ndarray:
    """A random low-frequency image in ``[lo, hi]``: coarse noise upsampled bilinearly."""
    c, h, w = shape
    ch, cw = max(2, h // 8), max(2, w // 8)
    coarse = rng.random((c, ch, cw), dtype=np.float32)
    ys = np.linspace(0, ch - 1, h, dtype=np.float32)
    xs = np.linspace(0, cw - 1, w, dtype=np.float32)
    y0 = np.floor(ys).astype(int).clip(0, ch - 2)
    x0 = np.floor(xs).astype(int).clip(0, cw - 2)
    fy = (ys - y0)[None, :, None]
    fx = (xs - x0)[None, None, :]
    a = coarse[:, y0][:, :, x0]
    b = coarse[:, y0][:, :, x0 + 1]
    c_ = coarse[:, y0 + 1][:, :, x0]
    d = coarse[:, y0 + 1][:, :, x0 + 1]
    img = (a * (1 - fx) + b * fx) * (1 - fy) + (c_ * (1 - fx) + d * fx) * fy
    img += 0.05 * rng.standard_normal(img.shape, dtype=np.float32)
    return (lo + (hi - lo) * img.clip(0.0, 1.0)).astype(np.float32)


class LatentSampler:
    """Deterministic generator inputs drawn from the spec's prior.

    Latents follow ``spec.latent_dist`` (standard normal, or uniform in [-1, 1]); with
    ``spec.truncation_psi`` set, normal latents are scaled by psi (truncation on z).
    Labels are uniform over the classes; image inputs are smooth random images in the
    spec's output range (the usual convention of image-to-image generators), or, with
    ``images``, real images: sample ``i`` is ``images[i % len(images)]``.

    Args:
        spec: The generator spec.
        seed: Base seed; sample ``i`` uses ``SeedSequence([seed, i])``.
        batch_size: Samples per batch in :meth:`batches`.
        images: float32 ``N x C x H x W`` in the spec's range for the (first) image input,
            e.g. from :func:`accelkit.quality.images.load_input_images` (``bench --images``).
    """

    def __init__(
        self,
        spec: GeneratorSpec,
        seed: int = 0,
        batch_size: int = 1,
        images: np.ndarray | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be >= 1")
        if int(seed) < 0:
            raise InputError(f"--seed {seed}: give a non-negative seed")
        self.spec = spec
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.images = images
        image_inputs = [i for i in spec.inputs if i.kind == "image"]
        self._image_input = image_inputs[0].name if images is not None and image_inputs else None
        if images is not None and (
            not image_inputs
            or tuple(images.shape[1:]) != tuple(image_inputs[0].shape)
            or len(images) == 0
        ):
            want = image_inputs[0].shape if image_inputs else "no image input"
            raise InputError(
                f"images of shape {tuple(images.shape)} do not fit the generator's image input ({want})"
            )

    def _one(self, inp: InputSpec, rng: np.random.Generator, k: int = 0) -> np.ndarray:
        if inp.kind == "label":
            return np.asarray(rng.integers(0, inp.num_classes or 1), dtype=np.int64)
        if inp.kind == "image":
            lo, hi = self.spec.output_range
            img = _smooth_image(
                rng, inp.shape, lo, hi
            )  # drawn either way: other inputs do not depend on ``images``
            if self.images is not None and inp.name == self._image_input:
                return np.asarray(self.images[k % len(self.images)], dtype=np.float32)
            return img
        if self.spec.latent_dist == "uniform":
            return rng.uniform(-1.0, 1.0, size=inp.shape).astype(np.float32)
        z = rng.standard_normal(size=inp.shape, dtype=np.float32)
        if self.spec.truncation_psi is not None:
            z = z * np.float32(self.spec.truncation_psi)
        return z

    def inputs(self, start: int, count: int) -> dict[str, np.ndarray]:
        """Samples ``start .. start+count-1`` stacked into a batch, keyed by input name."""
        cols: dict[str, list[np.ndarray]] = {i.name: [] for i in self.spec.inputs}
        for k in range(start, start + count):
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, k]))
            for inp in self.spec.inputs:
                cols[inp.name].append(self._one(inp, rng, k))
        return {name: np.stack(vals) for name, vals in cols.items()}

    def batches(self, n: int, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Yield ``n`` samples in batches of ``batch_size`` (the last may be smaller)."""
        done = 0
        while done < n:
            take = min(self.batch_size, n - done)
            yield self.inputs(start + done, take)
            done += take
