"""What every bundled image generator sets up the same way."""

from __future__ import annotations

from typing import Any


def init_image_generator(
    module: Any, *, z_dim: int, num_classes: int, channels: int, img_size: int
) -> None:
    """Check ``img_size`` and set the attributes accelkit's spec inference reads.

    Sets ``z_dim`` and ``num_classes`` (ints), ``output_range`` ``(-1.0, 1.0)`` and
    ``output_shape`` ``(channels, img_size, img_size)``.

    Raises:
        ValueError: ``img_size`` is not a power of two of at least 8.
    """
    if img_size < 8 or img_size & (img_size - 1):
        raise ValueError(f"img_size must be a power of two >= 8, got {img_size}")
    module.z_dim = int(z_dim)
    module.num_classes = int(num_classes)
    module.output_range = (-1.0, 1.0)
    module.output_shape = (channels, img_size, img_size)
