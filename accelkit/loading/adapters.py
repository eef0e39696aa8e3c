"""Output adapters: the image batch out of whatever a generator returns.

Runners, exporters and pruning expect ``forward(*inputs) -> Tensor[N, C, H, W]``. Real
generators also return a dict (diffusers' ``{"sample": ...}`` outputs), a tuple
(rosinality's StyleGAN2 returns ``(image, latents)``) or a flat vector with a known image
shape (an MLP generator's ``(N, 784)`` for ``1x28x28``). :func:`find_image` decides, from
one probe output, how to get the image; :class:`OutputAdapter` wraps the module so that
every later step sees a plain tensor. The choice is recorded (``describe()``) in the
spec's ``inferred`` notes and the sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelkit.errors import SpecError

#: Keys tried first in a dict output, in order.
IMAGE_KEYS = (
    "sample",
    "image",
    "images",
    "img",
    "imgs",
    "x",
    "out",
    "output",
    "pred",
    "prediction",
    "fake",
    "rgb",
)


@dataclass(frozen=True)
class OutputRule:
    """How to get the image batch out of a generator's output.

    Attributes:
        key: Dict key (or attribute of an output object) holding the image; None if not a dict.
        index: Position in a tuple/list output; None if not a sequence.
        shape: ``(C, H, W)`` to reshape a flat ``(N, C*H*W)`` output to; None if already NCHW.
        of: Length of the tuple output (for the description).
        attribute: ``key`` names an attribute (``out.sample``), not a dict key.
    """

    key: str | None = None
    index: int | None = None
    shape: tuple[int, ...] | None = None
    of: int = 0
    attribute: bool = False

    @property
    def identity(self) -> bool:
        """True when the output is already the image batch."""
        return self.key is None and self.index is None and self.shape is None

    def describe(self) -> str:
        """``dict key 'sample'``, ``item 0 of a 2-tuple``, ``flat (N, 784) reshaped to 1x28x28``."""
        parts = []
        if self.key is not None:
            parts.append(f"attribute .{self.key}" if self.attribute else f"dict key {self.key!r}")
        if self.index is not None:
            parts.append(f"item {self.index} of a {self.of}-tuple")
        if self.shape is not None:
            parts.append("flat output reshaped to " + "x".join(str(d) for d in self.shape))
        return ", ".join(parts) or "tensor"

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the sidecar."""
        return {
            "key": self.key,
            "index": self.index,
            "shape": list(self.shape) if self.shape else None,
            "of": self.of,
            "how": self.describe(),
        }


def _is_batch(t: Any, batch: int) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and t.dim() >= 1
        and t.shape[0] == batch
        and t.is_floating_point()
    )


def _reshape_rule(
    t: torch.Tensor, batch: int, shape: Sequence[int] | None, where: str
) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    if t.dim() == 4:
        if shape is not None and tuple(t.shape[1:]) != tuple(shape):
            raise SpecError(
                f"the generator's output {where}is {tuple(t.shape[1:])} per image, not --output-shape {'x'.join(map(str, shape))}; drop --output-shape or fix it"
            )
        return t, None
    per = int(t[0].numel()) if t.shape[0] else 0
    if shape is None:
        raise SpecError(
            f"the generator returned {tuple(t.shape)} {where}(not an NCHW image batch); if it is a flat image, "
            "give its shape with --output-shape CxHxW, e.g. --output-shape 1x28x28"
        )
    want = int(torch.tensor(list(shape)).prod().item())
    if want != per:
        raise SpecError(
            f"--output-shape {'x'.join(map(str, shape))} has {want} values per image but the generator returns {per} "
            f"(output {tuple(t.shape)}); fix --output-shape"
        )
    return t.reshape(batch, *shape), tuple(int(d) for d in shape)


def find_image(
    out: Any, batch: int, output_shape: Sequence[int] | None = None
) -> tuple[torch.Tensor, OutputRule]:
    """The image batch inside one probe output, and the rule that found it.

    Args:
        out: What ``module(*inputs)`` returned for a batch of ``batch``.
        batch: The probe's batch size.
        output_shape: ``--output-shape`` (C, H, W) for flat outputs; None to require NCHW.

    Raises:
        SpecError: No image batch found (the message says what was returned and which flag helps).
    """
    if isinstance(out, torch.Tensor):
        img, shape = _reshape_rule(out, batch, output_shape, "")
        return img, OutputRule(shape=shape)
    if isinstance(out, Mapping) or (hasattr(out, "keys") and hasattr(out, "__getitem__")):
        keys = [k for k in out.keys() if isinstance(k, str)]
        cands = [k for k in IMAGE_KEYS if k in keys and _is_batch(out[k], batch)]
        cands += [
            k for k in keys if k not in cands and _is_batch(out[k], batch) and out[k].dim() == 4
        ]
        if not cands:
            shapes = {
                k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                for k, v in out.items()
            }
            raise SpecError(
                f"the generator returned a dict {shapes} with no image batch of {batch}; accelkit handles image generators only"
            )
        img, shape = _reshape_rule(out[cands[0]], batch, output_shape, f"under key {cands[0]!r} ")
        return img, OutputRule(key=cands[0], shape=shape)
    if isinstance(out, (tuple, list)):
        idx = [i for i, v in enumerate(out) if _is_batch(v, batch) and v.dim() == 4]
        if not idx:
            idx = [i for i, v in enumerate(out) if _is_batch(v, batch)]
        if not idx:
            kinds = [
                tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in out
            ]
            raise SpecError(
                f"the generator returned a {len(out)}-tuple {kinds} with no image batch of {batch}; accelkit handles image generators only"
            )
        img, shape = _reshape_rule(out[idx[0]], batch, output_shape, f"at item {idx[0]} ")
        return img, OutputRule(index=idx[0], shape=shape, of=len(out))
    sample = getattr(out, "sample", None)
    if isinstance(sample, torch.Tensor) and _is_batch(sample, batch):
        img, shape = _reshape_rule(sample, batch, output_shape, "in .sample ")
        return img, OutputRule(key="sample", shape=shape, attribute=True)
    raise SpecError(
        f"the generator returned a {type(out).__name__}, expected an NCHW image batch of {batch}; accelkit handles image generators only"
    )


class OutputAdapter(nn.Module):
    """``inner(*inputs)`` followed by :class:`OutputRule`: a module returning the NCHW image batch.

    Args:
        inner: The generator.
        rule: How to get its image (see :func:`find_image`).
        input_names: The inner module's input names (kept for the exporter and for
            spec inference, which read ``forward``'s signature).
    """

    def __init__(self, inner: nn.Module, rule: OutputRule, input_names: Sequence[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        self.key = rule.key
        self.attribute = rule.attribute
        self.index = rule.index
        self.shape = list(rule.shape) if rule.shape else []
        self.accelkit_input_names = list(input_names)

    def train(self, mode: bool = True) -> OutputAdapter:
        """Set the mode; a ``torch.export`` module inside stays in the mode it was exported in (it refuses ``train``)."""
        self.training = mode
        try:
            self.inner.train(mode)
        except NotImplementedError:
            pass
        return self

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out: Any = self.inner(*inputs)
        if self.key is not None:
            out = getattr(out, self.key) if self.attribute else out[self.key]
        if self.index is not None:
            out = out[self.index]
        if self.shape:
            out = out.reshape(out.shape[0], *self.shape)
        return out  # type: ignore[no-any-return]


def adapt(module: nn.Module, rule: OutputRule, input_names: Sequence[str] = ()) -> nn.Module:
    """``module`` itself when its output is already the image, else an :class:`OutputAdapter`."""
    if rule.identity:
        return module
    return OutputAdapter(module, rule, input_names).eval()


__all__ = ["IMAGE_KEYS", "OutputAdapter", "OutputRule", "adapt", "find_image"]
