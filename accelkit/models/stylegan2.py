"""A small StyleGAN2-style generator (Karras et al., 2020), written to export cleanly.

It keeps the parts of StyleGAN2 that matter for acceleration studies (mapping network,
class conditioning as in StyleGAN2-ADA, modulated/demodulated 3x3 convolutions, noise
injection, bilinear upsampling, skip-connected toRGB outputs) and drops the training-only
parts (equalised learning rate, style mixing, path-length regularisation).

Export-friendliness:

* Modulation uses the ``fused_modconv=False`` form: the input activations are scaled by
  the per-sample styles, convolved with the *shared* weight and multiplied by the
  per-sample demodulation coefficients. Every per-sample tensor is broadcast, never
  reshaped with the batch size, so the batch stays dynamic in ONNX / TensorRT.
* Noise is a fixed buffer per layer (saved in the checkpoint), scaled by a learned
  strength: outputs are a pure function of ``(z, label)``, as backend comparisons need.
* The output goes through ``tanh`` so it lies in ``[-1, 1]`` (StyleGAN2 itself clamps
  when converting to images; ``tanh`` keeps the function smooth).

The bundled checkpoint (``models/weights/stylegan2.safetensors``) is this class with its
default arguments and a seeded random initialisation (``models/make_stylegan2.py``): it is
not trained, but its outputs are smooth, varied and not saturated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from accelkit.models.common import init_image_generator


def _lrelu(x: Tensor) -> Tensor:
    """Leaky ReLU (slope 0.2) times sqrt(2), StyleGAN's variance-preserving activation."""
    return F.leaky_relu(x, 0.2) * 1.4142135623730951


def _normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """Prepared latent (normalised z, with the normalised label embedding concatenated
    when conditional, as in StyleGAN2-ADA) to the intermediate latent w.

    Args:
        z_dim: Latent size.
        w_dim: Intermediate latent size.
        num_classes: 0 for unconditional; otherwise ``embed`` holds the label embedding.
        num_layers: Fully connected layers (leaky ReLU 0.2, gain sqrt(2)).
    """

    def __init__(self, z_dim: int, w_dim: int, num_classes: int, num_layers: int) -> None:
        super().__init__()
        self.embed: nn.Embedding | None = (
            nn.Embedding(num_classes, w_dim) if num_classes > 0 else None
        )
        dims = [z_dim + (w_dim if num_classes > 0 else 0)] + [w_dim] * num_layers
        self.fcs = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(num_layers))

    def forward(self, x: Tensor) -> Tensor:
        for fc in self.fcs:
            x = _lrelu(fc(x))
        return x


class ModulatedConv2d(nn.Module):
    """Modulated convolution with optional demodulation, batch-size agnostic.

    ``y = demod * conv2d(x * style, weight)`` where ``style = affine(w)`` has shape
    ``(N, in_ch)`` and ``demod = rsqrt(sum_{i,k} (weight_{o,i,k} * style_i)^2 + eps)``
    has shape ``(N, out_ch)``; both broadcast over the spatial dimensions.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        w_dim: int,
        kernel: int,
        demodulate: bool = True,
        style_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.affine = nn.Linear(w_dim, in_ch)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.demodulate = demodulate
        self.padding = kernel // 2
        nn.init.normal_(self.affine.weight, 0.0, 1.0 / math.sqrt(w_dim))
        # StyleGAN2 starts styles around 1 (bias 1); an untrained model then renders
        # nearly the same image for every z, so this one starts them around 0.
        nn.init.constant_(self.affine.bias, style_bias)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        style = self.affine(w)  # (N, in)
        x = x * style.unsqueeze(-1).unsqueeze(-1)
        x = F.conv2d(x, self.weight, padding=self.padding)
        if self.demodulate:
            wsq = self.weight.square().sum(dim=[2, 3])  # (out, in)
            demod = (style.square() @ wsq.t() + 1e-8).rsqrt()  # (N, out)
            x = x * demod.unsqueeze(-1).unsqueeze(-1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally after x2 upsampling), fixed noise, bias, leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.conv = ModulatedConv2d(in_ch, out_ch, w_dim, 3)
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        x = x + self.noise_const * self.noise_strength  # type: ignore[operator]
        x = x + self.bias.view(1, -1, 1, 1)
        return _lrelu(x)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias."""

    def __init__(self, in_ch: int, w_dim: int, channels: int, gain: float) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, channels, w_dim, 1, demodulate=False)
        with torch.no_grad():
            self.conv.weight.mul_(gain / math.sqrt(in_ch))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """One resolution: upsample + two modulated convs + toRGB added to the upsampled skip image."""

    def __init__(
        self, in_ch: int, out_ch: int, w_dim: int, resolution: int, channels: int, rgb_gain: float
    ) -> None:
        super().__init__()
        self.conv0 = SynthesisLayer(in_ch, out_ch, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_ch, out_ch, w_dim, resolution, up=False)
        self.torgb = ToRGB(out_ch, w_dim, channels, rgb_gain)

    def forward(self, x: Tensor, img: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv1(self.conv0(x, w), w)
        img = F.interpolate(
            img, scale_factor=2.0, mode="bilinear", align_corners=False
        ) + self.torgb(x, w)
        return x, img


class StyleGAN2Generator(nn.Module):
    """StyleGAN2-style generator: ``z`` (and ``label``) to a ``3 x 64 x 64`` image in ``[-1, 1]``.

    Bundled configuration: z_dim = w_dim = 128, 4 mapping layers, conditional on 4
    classes, channels 128 at 4-16 px, 64 at 32 px, 32 at 64 px; about 1.1 M parameters.

    The forward signature is exact: ``forward(z)`` when unconditional, ``forward(z, label)``
    when ``num_classes > 0`` (the object is then a :class:`ConditionalStyleGAN2Generator`,
    a subclass). No ``Optional`` argument means no
    ``None`` branch in TorchScript, so ``torch.jit.script`` output exports to ONNX with
    ``dynamo=False`` and a dynamic batch.

    Args:
        z_dim: Latent size; ``z`` is ``(N, z_dim)`` float32, standard normal.
        w_dim: Intermediate latent (style) size.
        num_classes: Number of classes (``label`` is int64 ``(N,)``); 0 = unconditional.
        img_size: Output side, a power of two >= 8.
        channels: Output channels.
        channel_base: Feature channels at resolution r are ``min(channel_max, channel_base // r)``.
        channel_max: Cap on feature channels.
        mapping_layers: Fully connected layers of the mapping network.
        rgb_gain: Initial scale of the toRGB weights at 4x4, multiplied by 0.7 at each higher
            resolution so the coarse levels dominate a randomly initialised model (smooth,
            image-like outputs with some texture). Only affects initialisation.
    """

    def __init__(
        self,
        z_dim: int = 128,
        w_dim: int = 128,
        num_classes: int = 4,
        img_size: int = 64,
        channels: int = 3,
        channel_base: int = 2048,
        channel_max: int = 128,
        mapping_layers: int = 4,
        rgb_gain: float = 4.0,
    ) -> None:
        super().__init__()
        init_image_generator(
            self, z_dim=z_dim, num_classes=num_classes, channels=channels, img_size=img_size
        )
        self.w_dim = int(w_dim)

        def ch(res: int) -> int:
            return min(channel_max, channel_base // res)

        self.mapping = MappingNetwork(z_dim, w_dim, num_classes, mapping_layers)
        self.const = nn.Parameter(torch.randn(1, ch(4), 4, 4))
        self.conv4 = SynthesisLayer(ch(4), ch(4), w_dim, 4, up=False)
        self.torgb4 = ToRGB(ch(4), w_dim, channels, rgb_gain)
        blocks = []
        res, gain = 8, rgb_gain
        while res <= img_size:
            gain *= 0.7
            blocks.append(SynthesisBlock(ch(res // 2), ch(res), w_dim, res, channels, gain))
            res *= 2
        self.blocks = nn.ModuleList(blocks)
        if num_classes > 0 and type(self) is StyleGAN2Generator:
            # Conditional instances get the forward(z, label) of the subclass. Done here rather
            # than in __new__ so copy/pickle (which recreate the object without arguments) work.
            self.__class__ = ConditionalStyleGAN2Generator

    def synthesize(self, w: Tensor) -> Tensor:
        """Synthesis network: ``(N, w_dim)`` styles to ``(N, 3, H, W)`` images in ``[-1, 1]``."""
        # The learned constant broadcasts against the per-sample styles inside conv4.
        x = self.conv4(self.const, w)
        img = self.torgb4(x, w)
        for block in self.blocks:
            x, img = block(x, img, w)
        return torch.tanh(img)

    def forward(self, z: Tensor) -> Tensor:
        """Generate images (unconditional model).

        Args:
            z: float32 ``(N, z_dim)`` latents (standard normal).

        Returns:
            float32 ``(N, 3, img_size, img_size)`` in ``[-1, 1]``.
        """
        return self.synthesize(self.mapping(_normalize_2nd_moment(z)))


class ConditionalStyleGAN2Generator(StyleGAN2Generator):
    """:class:`StyleGAN2Generator` with ``num_classes > 0``: ``forward(z, label)``."""

    def forward(self, z: Tensor, label: Tensor) -> Tensor:  # type: ignore[override]
        """Generate images of the given classes.

        Args:
            z: float32 ``(N, z_dim)`` latents (standard normal).
            label: int64 ``(N,)`` class indices in ``[0, num_classes)``.

        Returns:
            float32 ``(N, 3, img_size, img_size)`` in ``[-1, 1]``.
        """
        embed = self.mapping.embed
        assert (
            embed is not None
        )  # always set when num_classes > 0; refines the type for TorchScript
        x = torch.cat([_normalize_2nd_moment(z), _normalize_2nd_moment(embed(label))], dim=1)
        return self.synthesize(self.mapping(x))
