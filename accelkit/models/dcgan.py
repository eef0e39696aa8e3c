"""DCGAN generator (Radford et al., 2015): the default demo generator of accelkit.

The bundled checkpoint (``models/weights/dcgan.safetensors``) is this class with its
default arguments, trained by ``models/train_dcgan.py`` on the procedural shapes data set.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from accelkit.models.common import init_image_generator


class DCGANGenerator(nn.Module):
    """DCGAN generator: latent vector to a ``3 x 64 x 64`` image in ``[-1, 1]``.

    Layout: ``ConvTranspose2d(z, 8*ngf, 4, 1, 0)`` to 4x4, then four
    ``ConvTranspose2d(4, 2, 1)`` stages (BatchNorm + ReLU between them) to 64x64 and a
    ``Tanh``. With ``ngf=32`` it has about 0.95 M parameters.

    Args:
        z_dim: Latent size; ``z`` is a flat ``(N, z_dim)`` float32 tensor, standard normal.
        ngf: Width of the last hidden stage (the first has ``8 * ngf`` channels).
        channels: Output channels.
        img_size: Output side in pixels; a power of two, at least 8 (64 for the bundled one).
        num_classes: Number of classes for conditional use (a learned embedding of the
            label is concatenated to ``z``); 0 (the bundled model) is unconditional.
            With ``num_classes > 0`` the object is a
            :class:`ConditionalDCGANGenerator` (a subclass) whose forward is
            ``forward(z, label)``; otherwise it is ``forward(z)``. Exact signatures keep
            ``None`` branches out of TorchScript and ONNX.
        embed_dim: Size of the label embedding when ``num_classes > 0``.
    """

    def __init__(
        self,
        z_dim: int = 64,
        ngf: int = 32,
        channels: int = 3,
        img_size: int = 64,
        num_classes: int = 0,
        embed_dim: int = 16,
    ) -> None:
        super().__init__()
        init_image_generator(
            self, z_dim=z_dim, num_classes=num_classes, channels=channels, img_size=img_size
        )
        self.embed: nn.Embedding | None = (
            nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        )
        in_dim = z_dim + (embed_dim if num_classes > 0 else 0)

        n_up = img_size.bit_length() - 1 - 2  # stride-2 stages from 4x4
        ch = ngf * 2 ** (n_up - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(n_up - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.reset_parameters()
        if num_classes > 0 and type(self) is DCGANGenerator:
            # Conditional instances get the forward(z, label) of the subclass. Done here rather
            # than in __new__ so copy/pickle (which recreate the object without arguments) work.
            self.__class__ = ConditionalDCGANGenerator

    def reset_parameters(self) -> None:
        """DCGAN initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02)."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, z: Tensor) -> Tensor:
        """Generate images (unconditional model).

        Args:
            z: float32 ``(N, z_dim)`` latents (standard normal).

        Returns:
            float32 ``(N, 3, img_size, img_size)`` in ``[-1, 1]``.
        """
        return self.net(z.unsqueeze(-1).unsqueeze(-1))


class ConditionalDCGANGenerator(DCGANGenerator):
    """:class:`DCGANGenerator` with ``num_classes > 0``: ``forward(z, label)``."""

    def forward(self, z: Tensor, label: Tensor) -> Tensor:  # type: ignore[override]
        """Generate images of the given classes.

        Args:
            z: float32 ``(N, z_dim)`` latents (standard normal).
            label: int64 ``(N,)`` class indices in ``[0, num_classes)``.

        Returns:
            float32 ``(N, 3, img_size, img_size)`` in ``[-1, 1]``.
        """
        embed = self.embed
        assert (
            embed is not None
        )  # always set when num_classes > 0; refines the type for TorchScript
        x = torch.cat([z, embed(label)], dim=1)
        return self.net(x.unsqueeze(-1).unsqueeze(-1))
