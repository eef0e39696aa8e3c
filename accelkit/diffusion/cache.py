"""Step caching for diffusion denoisers: DeepCache (UNets) and First-Block-Cache (DiTs).

Both skip work between nearby denoising steps by reusing what an earlier step computed:

* **DeepCache** (Ma et al., 2023; https://github.com/horseee/DeepCache) for diffusers'
  ``UNet2DModel`` and ``UNet2DConditionModel``. Every ``N``-th step runs the **full** UNet
  and also returns the *deep feature*: the input of the last ``depth`` up blocks. The
  steps in between run only the **shallow** branch (``conv_in``, the first ``depth`` down
  blocks, the last ``depth`` up blocks, ``conv_out``) with the cached deep feature in
  place of everything deeper. ``depth`` 1 is DeepCache's branch 0 at block granularity
  (the first down block + the last up block). The schedule is the uniform one of
  DeepCache: full at steps ``0, N, 2N, ...``. The shallow branch also runs the first
  ``depth`` down blocks' downsamplers, whose output only the skipped part would read
  (one strided convolution at half resolution; the branch stays one module call).
* **First-Block-Cache** (ParaAttention's FBCache, diffusers' ``apply_first_block_cache``)
  for ``DiTTransformer2DModel``. Each step runs the patch embedding and the first
  transformer block; if the first block's residual changed by less than ``T``
  (``mean|r - r_prev| / mean|r_prev|``, ``r_prev`` from the last step that ran the
  remaining blocks) the remaining blocks' residual cached at that step is added instead of
  running them; otherwise they run and refresh both caches. The decision is taken **per
  image** (its conditional and unconditional rows together under guidance), and the
  remaining blocks run on the images that need them only, so an image's output does not
  depend on which other images share its batch (diffusers decides per batch).

Each cached denoiser is two partial modules with tensor-only signatures and **one packed
output**, so every registered runner (torch, ONNX Runtime, OpenVINO, TensorRT) runs them
unchanged and they export through the existing ONNX path:

========== ================================================= =====================================
part       inputs                                            output (per row, flattened, concatenated)
========== ================================================= =====================================
full       the denoiser's (``sample, timestep[, cond]``)     ``eps | deep``
shallow    the denoiser's + ``deep`` (``C' x H' x W'``)       ``eps``
first      the denoiser's + ``tail`` (``T x D`` residual)      ``h1 | r1 | eps(h1 + tail)``
rest       ``hidden`` (``T x D``), ``timestep, class_labels``  ``eps | tail``
========== ================================================= =====================================

(``h1``: the first block's output; ``r1 = h1 - h0`` its residual; ``tail``: the remaining
blocks' residual; ``eps(h1 + tail)``: the output head on the cached approximation, used on
a cache hit, so a hit is one call and a miss two.) The full part's input names are the
plain denoiser's, so it takes the denoiser's place in :class:`DiffusionRunner`; the cache
policy (:class:`DeepCachePolicy`, :class:`FBCachePolicy`) holds the second part's runner.

With ``deepcache:1`` / ``fbcache:0`` every step is a full step and the sample equals the
uncached sampler's bit for bit on torch (the partial modules run the same operations in
the same order as diffusers' ``forward``; tests check it).

The spec grammar (:meth:`CacheSpec.parse`): ``none`` | ``deepcache:N[:depth]`` |
``fbcache:T``; its canonical string (``deepcache:3:1``, ``fbcache:0.05``, ``none``) is
what rows and sidecars record as ``cache``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import InputError
from accelkit.spec import GeneratorSpec, InputSpec

NONE, DEEPCACHE, FBCACHE = "none", "deepcache", "fbcache"
KINDS = (NONE, DEEPCACHE, FBCACHE)
#: Denoiser classes each method applies to.
DEEPCACHE_CLASSES = ("UNet2DModel", "UNet2DConditionModel")
FBCACHE_CLASSES = ("DiTTransformer2DModel",)
#: Names of the extra inputs of the partial graphs.
DEEP, TAIL, HIDDEN = "deep", "tail", "hidden"
_GRAMMAR = "give none, deepcache:N[:DEPTH] (N >= 1 steps between full passes) or fbcache:T (T >= 0)"


# ------------------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class CacheSpec:
    """A step-caching choice: a build knob recorded as ``cache`` in rows and sidecars.

    Attributes:
        kind: ``none``, ``deepcache`` or ``fbcache``.
        interval: DeepCache: a full UNet pass every ``interval`` steps (1: every step).
        depth: DeepCache: up/down blocks in the shallow branch (1: the outermost pair).
        threshold: FBCache: relative L1 change of the first block's residual below which
            the remaining blocks' cached residual is reused (0: never reused).
    """

    kind: str = NONE
    interval: int = 1
    depth: int = 1
    threshold: float = 0.0

    @classmethod
    def parse(cls, text: str | CacheSpec | None) -> CacheSpec:
        """Parse ``none`` | ``deepcache:N[:depth]`` | ``fbcache:T`` (case-insensitive).

        Raises:
            InputError: Anything else, N or depth < 1, T negative or not finite.
        """
        if isinstance(text, CacheSpec):
            return text
        if text is None:
            return cls()
        raw = str(text).strip()
        parts = raw.lower().split(":")
        kind = parts[0]
        try:
            if kind == NONE and len(parts) == 1:
                return cls()
            if kind == DEEPCACHE and len(parts) in (2, 3):
                n = int(parts[1])
                depth = int(parts[2]) if len(parts) == 3 else 1
                if n < 1 or depth < 1:
                    raise InputError(
                        f"--cache {raw}: N (steps between full passes) and DEPTH must be >= 1"
                    )
                return cls(DEEPCACHE, interval=n, depth=depth)
            if kind == FBCACHE and len(parts) == 2:
                t = float(parts[1])
                if not (math.isfinite(t) and t >= 0.0):
                    raise InputError(f"--cache {raw}: the threshold T must be a finite number >= 0")
                return cls(FBCACHE, threshold=t)
        except ValueError:
            pass
        raise InputError(f"--cache {raw!r} is not a cache setting; {_GRAMMAR}")

    @property
    def enabled(self) -> bool:
        """Whether any caching is asked for."""
        return self.kind != NONE

    @property
    def exact(self) -> bool:
        """Whether every step runs the whole denoiser (``deepcache:1``, ``fbcache:0``, ``none``)."""
        return self.kind == NONE or (
            self.interval == 1 if self.kind == DEEPCACHE else self.threshold == 0.0
        )

    def canonical(self) -> str:
        """``none``, ``deepcache:N:DEPTH`` or ``fbcache:T`` (the shortest float that round-trips)."""
        if self.kind == DEEPCACHE:
            return f"{DEEPCACHE}:{self.interval}:{self.depth}"
        if self.kind == FBCACHE:
            return f"{FBCACHE}:{self.threshold!r}"
        return NONE

    def __str__(self) -> str:
        return self.canonical()

    def check(self, model: Any) -> CacheSpec:
        """Self, if it applies to ``model``'s denoiser (a :class:`DiffusionModel`).

        Raises:
            InputError: DeepCache on a non-UNet, FBCache on a non-DiT, a depth the UNet does
                not have, or a UNet with skip-connection blocks (score-SDE style).
        """
        if not self.enabled:
            return self
        cls_name = str(model.denoiser.meta.get("diffusers_class", "?"))
        if self.kind == DEEPCACHE:
            if cls_name not in DEEPCACHE_CLASSES:
                raise InputError(
                    f"--cache {self}: DeepCache needs a UNet (UNet2DModel / UNet2DConditionModel), "
                    f"this denoiser is a {cls_name}; use fbcache:T for a DiT or none"
                )
            unet = model.denoiser.module.model
            ups = len(unet.up_blocks)
            if self.depth > ups - 1:
                raise InputError(
                    f"--cache {self}: this UNet has {ups} up blocks, so the shallow branch can "
                    f"hold at most {ups - 1} (give DEPTH 1..{ups - 1})"
                )
            if any(hasattr(b, "skip_conv") for b in (*unet.down_blocks, *unet.up_blocks)):
                raise InputError(
                    f"--cache {self}: this UNet2DModel uses skip-connection blocks (AttnSkip*/Skip*), "
                    "which DeepCache's branch split does not cover; use --cache none"
                )
        elif cls_name not in FBCACHE_CLASSES:
            raise InputError(
                f"--cache {self}: First-Block-Cache needs a DiT (DiTTransformer2DModel), this "
                f"denoiser is a {cls_name}; use deepcache:N for a UNet or none"
            )
        elif len(model.denoiser.module.model.transformer_blocks) < 2:
            raise InputError(f"--cache {self}: the DiT has one block, nothing to cache after it")
        return self


# ----------------------------------------------------------------------- torch modules
def _unet_embedding(unet: Any, sample: Any, timestep: Any, class_labels: Any) -> tuple[Any, Any]:
    """``(centred sample, time [+ class] embedding)`` exactly as the UNet's ``forward`` makes them."""
    import torch

    if unet.config.center_input_sample:
        sample = 2 * sample - 1.0
    if hasattr(unet, "get_time_embed"):  # UNet2DConditionModel
        emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)
        return sample, emb
    timesteps = timestep
    if len(timesteps.shape) == 0:
        timesteps = timesteps[None]
    timesteps = timesteps * torch.ones(
        sample.shape[0], dtype=timesteps.dtype, device=timesteps.device
    )
    emb = unet.time_embedding(unet.time_proj(timesteps).to(dtype=unet.dtype))
    if unet.class_embedding is not None:
        emb = emb + unet.class_embedding(class_labels).to(dtype=unet.dtype)
    return sample, emb


def _unet_down(unet: Any, block: Any, x: Any, emb: Any, ehs: Any) -> tuple[Any, Any]:
    if getattr(block, "has_cross_attention", False):
        return block(hidden_states=x, temb=emb, encoder_hidden_states=ehs)  # type: ignore[no-any-return]
    return block(hidden_states=x, temb=emb)  # type: ignore[no-any-return]


def _unet_up(
    unet: Any, block: Any, x: Any, res: Any, emb: Any, ehs: Any, upsample_size: Any
) -> Any:
    if not hasattr(unet, "get_time_embed"):  # UNet2DModel: positional, no upsample size
        return block(x, res, emb)
    if getattr(block, "has_cross_attention", False):
        return block(
            hidden_states=x,
            temb=emb,
            res_hidden_states_tuple=res,
            encoder_hidden_states=ehs,
            upsample_size=upsample_size,
        )
    return block(
        hidden_states=x, temb=emb, res_hidden_states_tuple=res, upsample_size=upsample_size
    )


def _unet_out(unet: Any, x: Any, timestep: Any) -> Any:
    if getattr(unet, "conv_norm_out", None) is not None:
        x = unet.conv_norm_out(x)
        x = unet.conv_act(x)
    x = unet.conv_out(x)
    if getattr(unet.config, "time_embedding_type", None) == "fourier":
        t = timestep if len(timestep.shape) else timestep[None]
        x = x / t.reshape((x.shape[0], *([1] * len(x.shape[1:]))))
    return x


class _DeepCacheUNet:
    """The UNet forward of diffusers 0.42, split at the input of the last ``depth`` up blocks."""

    unet: Any
    depth: int

    def _forward(
        self, sample: Any, timestep: Any, cond: Any, deep: Any, want_deep: bool
    ) -> tuple[Any, Any]:
        unet, d = self.unet, self.depth
        text = hasattr(unet, "get_time_embed")
        ehs = cond if text else None
        if text:
            ehs = unet.process_encoder_hidden_states(
                encoder_hidden_states=ehs, added_cond_kwargs={}
            )
        labels = None if text else cond
        up_factor = 2 ** getattr(unet, "num_upsamplers", 0)
        forward_upsample_size = text and any(s % up_factor != 0 for s in sample.shape[-2:])
        sample, emb = _unet_embedding(unet, sample, timestep, labels)
        x = unet.conv_in(sample)
        res_all: tuple[Any, ...] = (x,)
        need = sum(len(b.resnets) for b in unet.up_blocks[-d:])
        n_down = len(unet.down_blocks) if deep is None else d
        for block in unet.down_blocks[:n_down]:
            x, res = _unet_down(unet, block, x, emb, ehs)
            res_all += res
        if deep is None:
            if unet.mid_block is not None:
                if getattr(unet.mid_block, "has_cross_attention", False):
                    x = unet.mid_block(x, emb, encoder_hidden_states=ehs)
                else:
                    x = unet.mid_block(x, emb)
            ups = list(enumerate(unet.up_blocks))
        else:
            res_all = res_all[:need]
            x = deep
            ups = list(enumerate(unet.up_blocks))[-d:]
        cached = None
        last = len(unet.up_blocks) - 1
        for i, block in ups:
            if i == len(unet.up_blocks) - d and want_deep:
                cached = x
            res = res_all[-len(block.resnets) :]
            res_all = res_all[: -len(block.resnets)]
            size = res_all[-1].shape[2:] if (i != last and forward_upsample_size) else None
            x = _unet_up(unet, block, x, res, emb, ehs, size)
        return _unet_out(unet, x, timestep), cached


def _pack(*parts: Any) -> Any:
    import torch

    return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1)


def _module_classes() -> dict[str, type]:
    """The torch module classes (defined lazily: importing this module needs no torch)."""
    from torch import nn

    class DeepCacheFull(nn.Module, _DeepCacheUNet):
        """``(sample, timestep[, cond]) -> eps | deep`` (packed, see the module docstring)."""

        def __init__(self, unet: Any, depth: int) -> None:
            super().__init__()
            self.unet, self.depth = unet, depth

        def forward(self, *args: Any) -> Any:
            cond = args[2] if len(args) > 2 else None
            eps, deep = self._forward(args[0], args[1], cond, None, True)
            return _pack(eps, deep)

    class DeepCacheShallow(nn.Module, _DeepCacheUNet):
        """``(sample, timestep[, cond], deep) -> eps``: the shallow branch on the cached feature."""

        def __init__(self, unet: Any, depth: int) -> None:
            super().__init__()
            self.unet, self.depth = unet, depth

        def forward(self, *args: Any) -> Any:
            cond = args[2] if len(args) > 3 else None
            return self._forward(args[0], args[1], cond, args[-1], False)[0]

    class FBCacheFirst(nn.Module):
        """``(sample, timestep, class_labels, tail) -> h1 | r1 | eps(h1 + tail)``."""

        def __init__(self, dit: Any, channels: int) -> None:
            super().__init__()
            self.dit, self.channels = dit, channels

        def forward(self, sample: Any, timestep: Any, class_labels: Any, tail: Any) -> Any:
            h0 = self.dit.pos_embed(sample)
            h1 = _dit_block(self.dit.transformer_blocks[0], h0, timestep, class_labels)
            eps = _dit_head(self.dit, h1 + tail, timestep, class_labels, self.channels)
            return _pack(h1, h1 - h0, eps)

    class FBCacheRest(nn.Module):
        """``(hidden, timestep, class_labels) -> eps | tail``: the remaining blocks and the head."""

        def __init__(self, dit: Any, channels: int) -> None:
            super().__init__()
            self.dit, self.channels = dit, channels

        def forward(self, hidden: Any, timestep: Any, class_labels: Any) -> Any:
            h = hidden
            for block in self.dit.transformer_blocks[1:]:
                h = _dit_block(block, h, timestep, class_labels)
            eps = _dit_head(self.dit, h, timestep, class_labels, self.channels)
            return _pack(eps, h - hidden)

    return {
        "full": DeepCacheFull,
        "shallow": DeepCacheShallow,
        "first": FBCacheFirst,
        "rest": FBCacheRest,
    }


def _dit_block(block: Any, h: Any, timestep: Any, class_labels: Any) -> Any:
    return block(
        h,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        timestep=timestep,
        cross_attention_kwargs=None,
        class_labels=class_labels,
    )


def _dit_head(dit: Any, h: Any, timestep: Any, class_labels: Any, channels: int) -> Any:
    """DiT's output head (diffusers 0.42 ``DiTTransformer2DModel.forward`` after the blocks)."""
    import torch
    import torch.nn.functional as F

    conditioning = dit.transformer_blocks[0].norm1.emb(timestep, class_labels, hidden_dtype=h.dtype)
    shift, scale = dit.proj_out_1(F.silu(conditioning)).chunk(2, dim=1)
    h = dit.norm_out(h) * (1 + scale[:, None]) + shift[:, None]
    h = dit.proj_out_2(h)
    p, c = dit.patch_size, dit.out_channels
    side = int(h.shape[1] ** 0.5)
    h = h.reshape(shape=(-1, side, side, p, p, c))
    h = torch.einsum("nhwpqc->nchpwq", h)
    return h.reshape(shape=(-1, c, side * p, side * p))[:, :channels]


# ----------------------------------------------------------------------- the artifacts
@dataclass
class CachedDenoiser:
    """The two partial denoisers of one cache spec (torch artifacts, or their exports).

    Attributes:
        spec: The cache spec.
        main: The part called every step: DeepCache's ``full`` (the plain denoiser's
            inputs) or FBCache's ``first``.
        second: DeepCache's ``shallow`` or FBCache's ``rest``.
        eps_shape: The prediction per row, ``(C, H, W)``.
        feature_shape: DeepCache's deep feature ``(C', H', W')``; FBCache's hidden states
            ``(T, D)`` (tokens x width).
    """

    spec: CacheSpec
    main: Artifact
    second: Artifact
    eps_shape: tuple[int, ...]
    feature_shape: tuple[int, ...]

    def with_parts(self, main: Artifact, second: Artifact) -> CachedDenoiser:
        """The same cache over other artifacts of the two parts (e.g. their ONNX exports)."""
        return CachedDenoiser(self.spec, main, second, self.eps_shape, self.feature_shape)

    def to_dict(self) -> dict[str, Any]:
        """What sidecars record."""
        return {
            "cache": self.spec.canonical(),
            "parts": {
                "main": self.main.meta.get("cache_part"),
                "second": self.second.meta.get("cache_part"),
            },
            "eps_shape": list(self.eps_shape),
            "feature_shape": list(self.feature_shape),
        }


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def cached_denoiser(model: Any, spec: CacheSpec | str) -> CachedDenoiser:
    """The torch partial denoisers of ``model`` (a :class:`DiffusionModel`) for ``spec``.

    The modules share the denoiser's parameters (no copy).

    Raises:
        InputError: ``spec`` is ``none`` or does not apply to the model (see :meth:`CacheSpec.check`).
    """
    import torch

    spec = CacheSpec.parse(spec).check(model)
    if not spec.enabled:
        raise InputError("--cache none: there is no cached denoiser to build")
    den: Artifact = model.denoiser
    classes = _module_classes()
    eps_shape = tuple(den.spec.output_shape)
    base_inputs = tuple(den.spec.inputs)
    if spec.kind == DEEPCACHE:
        unet = den.module.model
        full = classes["full"](unet, spec.depth).eval()
        shallow = classes["shallow"](unet, spec.depth).eval()
        probe = [
            torch.zeros((1, *i.shape), dtype=torch.int64 if i.kind == "label" else torch.float32)
            for i in base_inputs
        ]
        with torch.inference_mode():
            _, deep = full._forward(
                probe[0], probe[1], probe[2] if len(probe) > 2 else None, None, True
            )
        feature = tuple(int(s) for s in deep.shape[1:])
        main_mod, second_mod = full, shallow
        main_inputs = base_inputs
        second_inputs = (*base_inputs, InputSpec(DEEP, "latent", feature))
        main_out: tuple[int, ...] = (_size(eps_shape) + _size(feature),)
        second_out: tuple[int, ...] = eps_shape
        parts = ("full", "shallow")
    else:
        dit = den.module.model
        channels = int(eps_shape[0])
        tokens = (int(eps_shape[1]) // dit.patch_size) * (int(eps_shape[2]) // dit.patch_size)
        feature = (tokens, int(dit.inner_dim))
        main_mod = classes["first"](dit, channels).eval()
        second_mod = classes["rest"](dit, channels).eval()
        by_name = {i.name: i for i in base_inputs}
        main_inputs = (*base_inputs, InputSpec(TAIL, "latent", feature))
        second_inputs = (
            InputSpec(HIDDEN, "latent", feature),
            by_name["timestep"],
            by_name["class_labels"],
        )
        main_out = (2 * _size(feature) + _size(eps_shape),)
        second_out = (_size(eps_shape) + _size(feature),)
        parts = ("first", "rest")

    def art(
        module: Any, inputs: tuple[InputSpec, ...], out: tuple[int, ...], part: str
    ) -> Artifact:
        return den.derive(
            module=module,
            spec=GeneratorSpec(
                inputs=inputs,
                output_shape=out,
                output_range=den.spec.output_range,
                inferred=(("output_range", "nominal: packed prediction and cached features"),),
            ),
            meta={
                **den.meta,
                "component": f"denoiser_{part}",
                "cache_part": part,
                "cache": spec.canonical(),
            },
        )

    return CachedDenoiser(
        spec=spec,
        main=art(main_mod, main_inputs, main_out, parts[0]),
        second=art(second_mod, second_inputs, second_out, parts[1]),
        eps_shape=eps_shape,
        feature_shape=feature,
    )


# ------------------------------------------------------------------------- the policies
@dataclass
class CacheStats:
    """What the cache did, summed over runs since the last reset.

    Attributes:
        runs: Sampling runs.
        steps: Denoising steps (over all runs).
        full_calls: Calls that ran the whole denoiser (DeepCache's full part; FBCache's
            ``rest`` part, on any subset of the batch).
        partial_calls: Calls of the cheap part only (DeepCache's shallow; FBCache's
            ``first`` on a step where no image needed the rest).
        image_steps: Image-steps (images x steps).
        full_image_steps: Image-steps that ran the whole denoiser.
    """

    runs: int = 0
    steps: int = 0
    full_calls: int = 0
    partial_calls: int = 0
    image_steps: int = 0
    full_image_steps: int = 0

    @property
    def full_fraction(self) -> float | None:
        """Share of image-steps that ran the whole denoiser (1.0 without caching)."""
        return self.full_image_steps / self.image_steps if self.image_steps else None

    def to_dict(self) -> dict[str, Any]:
        """Row fields."""
        frac = self.full_fraction
        return {
            "runs": self.runs,
            "steps": self.steps,
            "full_calls": self.full_calls,
            "partial_calls": self.partial_calls,
            "image_steps": self.image_steps,
            "full_image_steps": self.full_image_steps,
            "full_fraction": None if frac is None else round(frac, 4),
        }


class CachePolicy:
    """Calls the partial denoisers for one step; held by :class:`DiffusionRunner`.

    The runner calls the ``main`` part through its own denoiser call (the main part's
    artifact is the runner's ``denoiser``); the policy owns the ``second`` part's runner.
    Lifecycle: :meth:`activate` (with the runner's call of the main part and a maker of
    calls), :meth:`start` before each run, :meth:`step` per step, :meth:`deactivate`.
    """

    def __init__(self, cached: CachedDenoiser, second: Any) -> None:
        self.cached = cached
        self.spec = cached.spec
        self.second_runner = second
        self.stats = CacheStats()
        self._main: Callable[[dict[str, Any]], Any] | None = None
        self._second: Callable[[dict[str, Any]], Any] | None = None
        self._owned = False
        self.second_s = 0.0

    def activate(
        self, main_call: Callable[[dict[str, Any]], Any], make_call: Callable[[Any], Any]
    ) -> None:
        """Bind the runner's call of the main part; activate the second part's runner."""
        if not self.second_runner.active:
            self.second_runner.activate()
            self._owned = True
        self._main = main_call
        self._second = make_call(self.second_runner)

    def deactivate(self) -> None:
        """Release the second part's runner (if this policy activated it)."""
        if self._owned:
            self.second_runner.deactivate()
            self._owned = False
        self._main = self._second = None

    def start(self, images: int) -> None:
        """Forget the caches before a run of ``images`` images."""
        self.images = images
        self.stats.runs += 1

    def step(self, index: int, feeds: dict[str, Any]) -> Any:
        """The denoiser's prediction for step ``index`` (0-based) of the current run."""
        raise NotImplementedError

    def reset_stats(self) -> CacheStats:
        """Return the stats so far and start new ones."""
        done, self.stats = self.stats, CacheStats()
        return done

    def describe(self) -> dict[str, Any]:
        """The cache as recorded: spec, parts, second part's runner, stats."""
        return {
            **self.cached.to_dict(),
            "second_runner": self.second_runner.describe(),
            "stats": self.stats.to_dict(),
        }

    def _count(self, rows: int, full_rows: int, full_call: bool, partial_call: bool) -> None:
        st = self.stats
        st.steps += 1
        per = max(1, rows // max(1, self.images))
        st.image_steps += rows // per
        st.full_image_steps += full_rows // per
        st.full_calls += int(full_call)
        st.partial_calls += int(partial_call)


class DeepCachePolicy(CachePolicy):
    """Full UNet at steps ``0, N, 2N, ...`` (caching the deep feature), the shallow branch between."""

    def start(self, images: int) -> None:
        super().start(images)
        self._deep: Any = None

    def step(self, index: int, feeds: dict[str, Any]) -> Any:
        assert self._main is not None and self._second is not None
        rows = int(feeds["sample"].shape[0])
        eps_n = _size(self.cached.eps_shape)
        if index % self.spec.interval == 0 or self._deep is None:
            packed = self._main(feeds)
            self._deep = packed[:, eps_n:].reshape(rows, *self.cached.feature_shape)
            self._count(rows, rows, True, False)
            return packed[:, :eps_n].reshape(rows, *self.cached.eps_shape)
        self._count(rows, 0, False, True)
        return self._second({**feeds, DEEP: self._deep})


class FBCachePolicy(CachePolicy):
    """First block every step; the remaining blocks only for images whose first-block residual moved."""

    def start(self, images: int) -> None:
        super().start(images)
        self._prev_r1: Any = None
        self._tail: Any = None

    def step(self, index: int, feeds: dict[str, Any]) -> Any:
        import torch

        assert self._main is not None and self._second is not None
        rows = int(feeds["sample"].shape[0])
        feat = self.cached.feature_shape
        fn, en = _size(feat), _size(self.cached.eps_shape)
        tail = self._tail
        if tail is None:
            tail = torch.zeros(
                (rows, *feat), dtype=feeds["sample"].dtype, device=feeds["sample"].device
            )
        packed = self._main({**feeds, TAIL: tail})
        h1 = packed[:, :fn].reshape(rows, *feat)
        r1 = packed[:, fn : 2 * fn].reshape(rows, *feat)
        eps = packed[:, 2 * fn :].reshape(rows, *self.cached.eps_shape)
        run = self._needs_rest(r1, rows)
        if not bool(run.any()):
            self._count(rows, 0, False, True)
            return eps
        idx = None if bool(run.all()) else torch.nonzero(run).flatten()
        sub = {k: v for k, v in feeds.items() if k != "sample"}
        sub[HIDDEN] = h1
        if idx is not None:
            sub = {k: v.index_select(0, idx) for k, v in sub.items()}
        out = self._second(sub)
        eps_new = out[:, :en].reshape(-1, *self.cached.eps_shape)
        tail_new = out[:, en:].reshape(-1, *feat)
        if idx is None:
            self._prev_r1, self._tail = r1, tail_new
            self._count(rows, rows, True, False)
            return eps_new
        assert self._prev_r1 is not None and self._tail is not None
        self._prev_r1 = self._prev_r1.clone()
        self._prev_r1[idx] = r1.index_select(0, idx)
        self._tail = self._tail.clone()
        self._tail[idx] = tail_new
        eps = eps.clone()
        eps[idx] = eps_new
        self._count(rows, int(idx.numel()), True, False)
        return eps

    def _needs_rest(self, r1: Any, rows: int) -> Any:
        """Per row: whether the remaining blocks must run (rows of one image decide together)."""
        import torch

        if self._prev_r1 is None or self._prev_r1.shape[0] != rows:
            return torch.ones(rows, dtype=torch.bool, device=r1.device)
        n = max(1, self.images)
        per = rows // n
        diff = (r1 - self._prev_r1).abs().reshape(per, n, -1).sum(dim=(0, 2))
        ref = self._prev_r1.abs().reshape(per, n, -1).sum(dim=(0, 2))
        rel = diff / ref.clamp_min(torch.finfo(ref.dtype).tiny)
        hit = rel < self.spec.threshold
        return (~hit).repeat(per)


def make_policy(cached: CachedDenoiser, second_runner: Any) -> CachePolicy:
    """The policy of ``cached``'s kind over the runner of its second part."""
    cls = DeepCachePolicy if cached.spec.kind == DEEPCACHE else FBCachePolicy
    return cls(cached, second_runner)


# ------------------------------------------------------------------------- calibration
@dataclass
class CacheTrial:
    """One candidate measured by :func:`calibrate_cache`.

    Attributes:
        cache: Canonical cache string.
        psnr_db: Paired PSNR (dB, peak = range width 2) against the uncached sampler on
            the same noise and labels (``inf`` when equal).
        full_fraction: Share of image-steps that ran the whole denoiser.
        seconds: Wall time of the run (informative only: the choice uses ``full_fraction``).
        meets: Whether ``psnr_db >= budget``.
    """

    cache: str
    psnr_db: float
    full_fraction: float
    seconds: float
    meets: bool

    def to_dict(self) -> dict[str, Any]:
        """Table row."""
        return {
            "cache": self.cache,
            "psnr_db": None if math.isinf(self.psnr_db) else round(self.psnr_db, 3),
            "full_fraction": round(self.full_fraction, 4),
            "seconds": round(self.seconds, 4),
            "meets": self.meets,
        }


@dataclass
class CacheCalibration:
    """The result of :func:`calibrate_cache`.

    Attributes:
        chosen: The fastest candidate meeting the budget (``none`` when none does).
        budget_psnr_db: The budget (minimum paired PSNR, dB).
        trials: Every candidate measured, in the order tried.
        images: Images per candidate.
        sampler: The sampler settings measured (``Sampling.to_dict()``).
        reason: One line: why ``chosen`` won.
    """

    chosen: CacheSpec
    budget_psnr_db: float
    trials: list[CacheTrial] = field(default_factory=list)
    images: int = 0
    sampler: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """What a report or sidecar records."""
        return {
            "chosen": self.chosen.canonical(),
            "budget_psnr_db": self.budget_psnr_db,
            "images": self.images,
            "sampler": self.sampler,
            "reason": self.reason,
            "trials": [t.to_dict() for t in self.trials],
        }


#: Candidates tried by default.
DEEPCACHE_INTERVALS = (2, 3, 4, 5, 6)
FBCACHE_THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3)


def default_candidates(model: Any) -> list[CacheSpec]:
    """The calibration grid of ``model``'s kind: DeepCache N in 2..6 or FBCache T in a small grid."""
    cls_name = str(model.denoiser.meta.get("diffusers_class", ""))
    if cls_name in DEEPCACHE_CLASSES:
        return [CacheSpec(DEEPCACHE, interval=n) for n in DEEPCACHE_INTERVALS]
    if cls_name in FBCACHE_CLASSES:
        return [CacheSpec(FBCACHE, threshold=t) for t in FBCACHE_THRESHOLDS]
    return []


def psnr_db(
    ref: np.ndarray, out: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)
) -> float:
    """Paired PSNR in dB with peak = the range width (``inf`` for equal arrays)."""
    mse = float(np.mean((np.asarray(out, np.float64) - np.asarray(ref, np.float64)) ** 2))
    peak = float(value_range[1] - value_range[0])
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


RunnerFactory = Callable[[CacheSpec], Any]


def calibrate_cache(
    model: Any,
    settings: Any,
    runner_factory: RunnerFactory | None = None,
    budget_psnr_db: float = 30.0,
    *,
    n: int = 8,
    seed: int = 0,
    candidates: Sequence[CacheSpec | str] | None = None,
    batch_size: int | None = None,
) -> CacheCalibration:
    """Pick cache parameters from measured drift on the model's own trajectories.

    Every candidate samples the same ``n`` images (same noise and labels, from
    :class:`~accelkit.sampler.LatentSampler` at ``seed``) as the uncached sampler at the
    same settings; the drift is the paired PSNR against it, the cost the share of
    image-steps that ran the whole denoiser (counted, not timed: a machine-independent
    proxy of speed; the seconds are recorded beside it). The chosen candidate is the one
    with the lowest full fraction among those with ``psnr_db >= budget_psnr_db`` (ties:
    the higher PSNR); ``none`` when no candidate meets the budget.

    Args:
        model: The :class:`DiffusionModel`.
        settings: The :class:`SamplerSettings` the cache will be used with (caching is
            tuned per sampler: fewer steps leave less to skip).
        runner_factory: ``spec -> DiffusionRunner`` (not yet active); default: torch on the
            CPU via :func:`~accelkit.diffusion.sampler.create_diffusion_runner`.
        budget_psnr_db: Minimum paired PSNR against the uncached sampler (dB).
        n: Images per candidate.
        seed: Seed of the noise and labels.
        candidates: Specs to try (default: :func:`default_candidates`).
        batch_size: Images per runner call (default ``n``).

    Returns:
        The :class:`CacheCalibration` with the table of every trial.

    Raises:
        InputError: ``n`` < 1, a non-finite budget, or a candidate that does not apply.
    """
    from accelkit.sampler import LatentSampler

    if n < 1:
        raise InputError(f"calibration needs at least one image, got n={n}")
    if not math.isfinite(float(budget_psnr_db)):
        raise InputError(f"the PSNR budget must be a finite number of dB, got {budget_psnr_db!r}")
    specs = [CacheSpec.parse(c).check(model) for c in (candidates or default_candidates(model))]
    if runner_factory is None:
        from accelkit.diffusion.sampler import create_diffusion_runner

        def runner_factory(spec: CacheSpec) -> Any:
            return create_diffusion_runner(model, "torch", settings=settings, cache=spec)

    bs = batch_size or n
    feeds = LatentSampler(model.spec, seed=seed, batch_size=bs).inputs(0, n)

    def sample(spec: CacheSpec) -> tuple[np.ndarray, float, float]:
        runner = runner_factory(spec)
        outs = []
        t0 = time.perf_counter()
        with runner:
            for lo in range(0, n, bs):
                outs.append(runner.infer({k: v[lo : lo + bs] for k, v in feeds.items()}))
            policy = getattr(runner, "cache", None)
            frac = 1.0 if policy is None else (policy.stats.full_fraction or 1.0)
        return np.concatenate(outs), frac, time.perf_counter() - t0

    ref, _, _ = sample(CacheSpec())
    result = CacheCalibration(
        chosen=CacheSpec(),
        budget_psnr_db=float(budget_psnr_db),
        images=n,
        sampler=model.sampling(settings).to_dict(),
    )
    for spec in specs:
        out, frac, secs = sample(spec)
        p = psnr_db(ref, out, model.spec.output_range)
        result.trials.append(CacheTrial(spec.canonical(), p, frac, secs, p >= budget_psnr_db))
    ok = [(t, s) for t, s in zip(result.trials, specs) if t.meets]
    if ok:
        best, spec = min(ok, key=lambda ts: (ts[0].full_fraction, -ts[0].psnr_db))
        result.chosen = spec
        result.reason = (
            f"{best.cache}: {best.full_fraction:.0%} of the image-steps run the whole denoiser at "
            f"{best.psnr_db:.1f} dB >= {budget_psnr_db:g} dB, the fewest of {len(ok)} candidates within budget"
        )
    else:
        worst = max(result.trials, key=lambda t: t.psnr_db, default=None)
        result.reason = "no candidate meets the budget" + (
            f" (best {worst.cache} at {worst.psnr_db:.1f} dB < {budget_psnr_db:g} dB)"
            if worst
            else ""
        )
    return result


__all__ = [
    "DEEPCACHE",
    "FBCACHE",
    "NONE",
    "CacheCalibration",
    "CachePolicy",
    "CacheSpec",
    "CacheStats",
    "CacheTrial",
    "CachedDenoiser",
    "DeepCachePolicy",
    "FBCachePolicy",
    "cached_denoiser",
    "calibrate_cache",
    "default_candidates",
    "make_policy",
    "psnr_db",
]
