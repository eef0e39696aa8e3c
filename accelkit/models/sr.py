"""A small SRResNet-style x4 super-resolution network: accelkit's image-to-image demo.

Fully convolutional: the default input is ``3 x 32 x 32`` (``input_shape``), giving
``3 x 128 x 128``, but any size works. Input and output are RGB in ``[0, 1]``.
The bundled checkpoint (``models/weights/sr4x.safetensors``) is trained briefly by
``models/make_sr.py`` on the procedural shapes data set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """conv3x3 - LeakyReLU(0.2) - conv3x3, scaled and added to the input (no BatchNorm, as in EDSR)."""

    def __init__(self, ch: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2)) * self.res_scale


class SRResNet4x(nn.Module):
    """x4 super-resolution: ``(N, 3, H, W)`` in ``[0, 1]`` to ``(N, 3, 4H, 4W)`` in ``[0, 1]``.

    Head conv, ``num_blocks`` residual blocks with a long skip, two
    ``conv -> PixelShuffle(2) -> LeakyReLU(0.2)`` upsampling stages (plain ReLUs died in
    training and left only the bilinear path), tail conv. The network predicts
    a residual over the bilinear x4 upsampling of the input; the sum is clamped to
    ``[0, 1]``. With the defaults it has about 0.16 M parameters.

    Args:
        channels: Image channels.
        features: Feature channels.
        num_blocks: Residual blocks.
        res_scale: Scale of each residual branch.
        in_size: Side of the default input (recorded as ``input_shape`` for spec inference;
            the network itself accepts any size).
    """

    def __init__(
        self,
        channels: int = 3,
        features: int = 32,
        num_blocks: int = 4,
        res_scale: float = 1.0,
        in_size: int = 32,
    ) -> None:
        super().__init__()
        self.input_shape: tuple[int, int, int] = (channels, in_size, in_size)
        self.output_shape: tuple[int, int, int] = (channels, in_size * 4, in_size * 4)
        self.output_range: tuple[float, float] = (0.0, 1.0)
        self.scale = 4
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(features, res_scale) for _ in range(num_blocks)])
        self.body_tail = nn.Conv2d(features, features, 3, padding=1)
        self.up = nn.Sequential(
            nn.Conv2d(features, features * 4, 3, padding=1),
            nn.PixelShuffle(2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(features, features * 4, 3, padding=1),
            nn.PixelShuffle(2),
            nn.LeakyReLU(0.2, True),
        )
        self.tail = nn.Conv2d(features, channels, 3, padding=1)
        with torch.no_grad():  # start as plain bilinear upsampling
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()  # type: ignore[union-attr]  # Conv2d has a bias here

    def forward(self, image: Tensor) -> Tensor:
        """Upscale ``image`` (float32 ``(N, C, H, W)`` in ``[0, 1]``) by 4.

        Returns:
            float32 ``(N, C, 4H, 4W)`` in ``[0, 1]``.
        """
        base = F.interpolate(image, scale_factor=4.0, mode="bilinear", align_corners=False)
        x = self.head(image)
        x = x + self.body_tail(self.body(x))
        return torch.clamp(base + self.tail(self.up(x)), 0.0, 1.0)
