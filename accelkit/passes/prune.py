"""Structured channel pruning (torch-pruning / DepGraph).

:class:`Prune` removes whole channels from a torch generator and returns a real, smaller,
dense model (convolutions with fewer channels), exportable like any other.
:func:`accelkit.passes.distill.distill` then trains the pruned student to match the
unpruned teacher. :func:`save_pruned` writes the pruned module as TorchScript, which accelkit loads without
pickle (a state_dict would not fit the original architecture's channel counts any more).

torch-pruning is imported lazily (extra ``prune``: ``pip install torch-pruning``).
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import InputError, require
from accelkit.sampler import LatentSampler

DistillProgress = Callable[[int, int, float], None]
IMPORTANCES = ("l2", "l1", "random")
HELD_OUT_START = 1_000_000  # distillation never trains on samples at or above this index

# Leaf modules torch-pruning knows how to slice. Other modules may own parameters
# directly only in layouts whose channel axis is known (see _bare_parameters); modulated
# convolutions (see is_modulated_conv) get a pruner of their own.
_SUPPORTED_PARAM_TYPES = (
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Linear",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "Embedding",
    "PReLU",
)


def _tp() -> Any:
    return require("torch_pruning", "prune", "structured pruning")


def check_eager_torch(artifact: Artifact, what: str) -> Any:
    import torch

    if artifact.format != "torch" or not isinstance(artifact.module, torch.nn.Module):
        raise InputError(
            f"{what} needs a torch artifact with a module, got format {artifact.format!r}; load the .pt file, not an export"
        )
    if artifact.program is not None or isinstance(artifact.module, torch.jit.ScriptModule):
        raise InputError(
            f"{what} needs an eager nn.Module, but this one is TorchScript or torch.export; load the weights with "
            "their architecture (--arch) instead"
        )
    return artifact.module


def example_inputs(
    artifact: Artifact, batch: int = 1, seed: int = 0, start: int = 0
) -> tuple[Any, ...]:
    """Positional torch inputs for ``artifact``'s module, drawn by :class:`LatentSampler`."""
    import torch

    feeds = LatentSampler(artifact.spec, seed=seed).inputs(start, batch)
    return tuple(
        torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in artifact.spec.inputs
    )


def count_params_flops(module: Any, inputs: tuple[Any, ...]) -> tuple[int, int]:
    """(parameters, FLOPs per batch of ``inputs``), FLOPs counted like ``accelkit info`` and
    bench (``torch.utils.flop_counter``: 2 per multiply-accumulate of conv/matmul), so the
    numbers before and after pruning compare with every other report."""
    from accelkit.flops import count_flops

    params = sum(int(p.numel()) for p in module.parameters())
    return params, int(count_flops(module, inputs) or 0)


def is_modulated_conv(m: Any) -> bool:
    """A StyleGAN2-style modulated convolution: a module owning a 4-D ``weight``
    ``(out, in, k, k)`` and a child ``affine`` :class:`torch.nn.Linear` that maps the style
    vector to ``in`` per-input-channel scales (optionally a 1-D ``bias`` of size ``out``).

    Its output channels are ``weight`` rows; its input channels are ``weight`` columns
    *and* ``affine`` rows, which :class:`Prune` removes together.
    """
    from torch import nn

    w = m._parameters.get("weight") if hasattr(m, "_parameters") else None
    affine = m._modules.get("affine") if hasattr(m, "_modules") else None
    return (
        w is not None
        and w.ndim == 4
        and isinstance(affine, nn.Linear)
        and affine.out_features == w.shape[1]
        and not isinstance(m, nn.modules.conv._ConvNd)
    )


def prunable_layers(module: Any) -> list[tuple[str, Any]]:
    from torch import nn

    layers = [
        (n, m)
        for n, m in module.named_modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) or is_modulated_conv(m)
    ]
    inner = [n for n, m in layers if is_modulated_conv(m)]  # their affine Linear is theirs to slice
    return [(n, m) for n, m in layers if not any(n.startswith(k + ".") for k in inner)]


def out_width(m: Any) -> int | None:
    if is_modulated_conv(m):
        return int(m.weight.shape[0])
    return getattr(m, "out_channels", getattr(m, "out_features", None))


def default_ignored(module: Any, out_channels: int, keep: Sequence[str] = ()) -> list[str]:
    """Names of layers whose output channels must not change.

    The last conv/linear layer (it writes the RGB output), every layer producing
    ``out_channels`` whose name or class contains ``rgb`` (StyleGAN-like toRGB layers),
    convolutions feeding a ``PixelShuffle`` (their channels are interleaved with space),
    and every module whose name matches a ``keep`` glob.
    """
    from torch import nn

    layers = prunable_layers(module)
    names: list[str] = []
    if layers:
        names.append(layers[-1][0])
    for n, m in layers:
        if ("rgb" in n.lower() or "rgb" in type(m).__name__.lower()) and out_width(
            m
        ) == out_channels:
            names.append(n)
    for n, m in module.named_modules():  # conv -> PixelShuffle inside a Sequential
        if isinstance(m, nn.Sequential):
            kids = list(m.named_children())
            for (n1, m1), (_, m2) in itertools.pairwise(kids):
                if isinstance(m1, nn.modules.conv._ConvNd) and isinstance(m2, nn.PixelShuffle):
                    names.append(f"{n}.{n1}" if n else n1)
    for n, _m in module.named_modules():
        if (
            n
            and any(fnmatch.fnmatchcase(n, g) for g in keep)
            and not any(n.startswith(k + ".") for k in names)
        ):
            names.append(n)
    return list(dict.fromkeys(names))


def norm_round_to(module: Any, round_to: int | None) -> int | None:
    """``round_to`` raised to a multiple of every GroupNorm's group count (a VAE decoder's 32).

    GroupNorm splits its channels into ``num_groups`` equal groups; a channel count that
    is not a multiple of it cannot be normalised, so pruned counts stay multiples of it.
    """
    import math

    from torch import nn

    groups = [int(m.num_groups) for m in module.modules() if isinstance(m, nn.GroupNorm)]
    if not groups:
        return round_to
    return math.lcm(round_to or 1, *groups)


def trace_layers(module: Any, inputs: tuple[Any, ...]) -> tuple[list[str], list[str]]:
    """Run the model once: conv/linear layers in execution order, and those whose output reaches a pixel (un)shuffle.

    The execution order gives the layer that writes the output (the last one run, not the
    last one registered: a diffusers VAE registers ``post_quant_conv`` after its decoder).

    A pixel shuffle interleaves channels with space: the layer feeding it cannot lose
    channels one by one (torch-pruning fails with an IndexError). Layers are found
    wherever they sit (a ``Sequential`` or not, ``nn.PixelShuffle`` or
    ``F.pixel_shuffle``): each layer's output is tagged, tags follow shape-keeping ops
    (activations, scaling, residual adds), and a pixel (un)shuffle reports the tag of its input.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    source: dict[int, str] = {}
    alive: list[Any] = []  # keep tagged tensors alive so their ids stay unique during the run
    hits: list[str] = []
    order: list[str] = []

    class Tracker(TorchFunctionMode):
        def __torch_function__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            out = func(*args, **(kwargs or {}))
            name = getattr(func, "__name__", "")
            first = args[0] if args else None
            if name in ("pixel_shuffle", "pixel_unshuffle"):
                if isinstance(first, torch.Tensor) and id(first) in source:
                    hits.append(source[id(first)])
            elif (
                isinstance(out, torch.Tensor)
                and isinstance(first, torch.Tensor)
                and id(first) in source
                and out.shape == first.shape
            ):
                source[id(out)] = source[id(first)]
                alive.append(out)
            return out

    def tag(name: str) -> Any:
        def hook(_m: Any, _inp: Any, out: Any) -> None:
            order.append(name)
            if isinstance(out, torch.Tensor):
                source[id(out)] = name
                alive.append(out)

        return hook

    handles = [m.register_forward_hook(tag(n)) for n, m in prunable_layers(module)]
    try:
        with torch.no_grad(), Tracker():
            module(*inputs)
    except Exception:  # noqa: BLE001 - a model the tracker cannot follow: torch-pruning reports it later
        return [], []
    finally:
        for h in handles:
            h.remove()
    return list(dict.fromkeys(order)), list(dict.fromkeys(hits))


def _modulated(module: Any) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in module.named_modules() if is_modulated_conv(m)]


def _bare_parameters(
    module: Any, ignored: Sequence[str]
) -> tuple[list[tuple[Any, int]], list[str]]:
    """Parameters owned by modules torch-pruning has no pruner for, with their channel axis.

    A scalar is left alone (a gain, a noise strength); a 1-D parameter is a per-channel
    vector (a bias; axis 0); a parameter of shape ``(1, C, ...)`` is a broadcast NCHW
    tensor (a learned constant input; axis 1). Anything else has no known channel axis:
    returned as unsupported (torch-pruning would otherwise slice "the last non-singleton
    dimension", a guess). Modulated convolutions slice their own ``weight`` / ``bias``.

    Returns:
        ``([(parameter, axis), ...], ["name (Type)", ...] unsupported)``
    """
    pairs: list[tuple[Any, int]] = []
    bad: list[str] = []
    for n, m in module.named_modules():
        if type(m).__name__ in _SUPPORTED_PARAM_TYPES or any(
            n == k or n.startswith(k + ".") for k in ignored
        ):
            continue
        modulated = is_modulated_conv(m)
        for pn, p in m._parameters.items():
            if p is None or (modulated and pn == "weight"):
                continue
            if modulated and pn == "bias" and p.ndim == 1 and p.shape[0] == m.weight.shape[0]:
                continue
            if modulated and p.ndim != 0:
                bad.append(f"{n}.{pn} ({type(m).__name__})")
            elif p.ndim == 1:
                pairs.append((p, 0))
            elif p.ndim >= 2 and p.shape[0] == 1:
                pairs.append((p, 1))
            elif p.ndim != 0:
                bad.append(
                    f"{n + '.' if n else ''}{pn} ({type(m).__name__}, shape {tuple(p.shape)})"
                )
    return pairs, bad


def _modulated_pruner() -> Any:
    """A torch-pruning pruner for :func:`is_modulated_conv` modules (built lazily: torch-pruning is optional)."""
    import torch
    from torch import nn

    tp = _tp()

    def keep(n: int, idxs: Sequence[int]) -> Any:
        drop = set(int(i) for i in idxs)
        return torch.tensor([i for i in range(n) if i not in drop], dtype=torch.long)

    class ModulatedConvPruner(tp.pruner.BasePruningFunc):  # type: ignore[misc,name-defined]
        TARGET_MODULES = None

        def prune_out_channels(self, layer: Any, idxs: Sequence[int]) -> Any:
            k = keep(layer.weight.shape[0], idxs)
            layer.weight = nn.Parameter(
                layer.weight.data.index_select(0, k).clone(),
                requires_grad=layer.weight.requires_grad,
            )
            bias = layer._parameters.get("bias")
            if bias is not None:
                layer.bias = nn.Parameter(
                    bias.data.index_select(0, k).clone(), requires_grad=bias.requires_grad
                )
            return layer

        def prune_in_channels(self, layer: Any, idxs: Sequence[int]) -> Any:
            k = keep(layer.weight.shape[1], idxs)
            layer.weight = nn.Parameter(
                layer.weight.data.index_select(1, k).clone(),
                requires_grad=layer.weight.requires_grad,
            )
            tp.prune_linear_out_channels(layer.affine, list(idxs))  # one style per input channel
            return layer

        def get_out_channels(self, layer: Any) -> int:
            return int(layer.weight.shape[0])

        def get_in_channels(self, layer: Any) -> int:
            return int(layer.weight.shape[1])

    return ModulatedConvPruner()


def _modulated_importance(p: int, types: tuple[type, ...]) -> Any:
    """Group magnitude importance (torch-pruning's mean-reduced, mean-normalised L``p``),
    extended to modulated convolutions: output channel = ``weight`` row, input channel =
    ``weight`` column, as for a plain conv."""
    import torch

    tp = _tp()
    fn = tp.pruner.function

    class ModulatedMagnitudeImportance(tp.importance.GroupMagnitudeImportance):  # type: ignore[misc,name-defined]
        @torch.no_grad()
        def __call__(self, group: Any) -> Any:
            imps: list[Any] = []
            roots: list[Any] = []
            for i, (dep, idxs) in enumerate(group):
                layer: Any = dep.layer
                handler = dep.pruning_fn
                name = getattr(handler, "__name__", "")
                if isinstance(dep.layer, types) and name in (
                    "prune_out_channels",
                    "prune_in_channels",
                ):
                    w = (
                        layer.weight.data
                        if name == "prune_out_channels"
                        else layer.weight.data.transpose(0, 1)
                    )
                    imps.append(w[idxs].flatten(1).abs().pow(self.p).sum(1))
                elif handler in (fn.prune_conv_out_channels, fn.prune_linear_out_channels):
                    w = (
                        layer.weight.data.transpose(1, 0)
                        if getattr(layer, "transposed", False)
                        else layer.weight.data
                    )
                    imps.append(w[idxs].flatten(1).abs().pow(self.p).sum(1))
                elif (
                    handler in (fn.prune_conv_in_channels, fn.prune_linear_in_channels)
                    and getattr(layer, "groups", 1) == 1
                ):
                    w = (
                        layer.weight.data
                        if getattr(layer, "transposed", False)
                        else layer.weight.data.transpose(0, 1)
                    )
                    imps.append(w[idxs].flatten(1).abs().pow(self.p).sum(1))
                elif handler == fn.prune_batchnorm_out_channels and layer.affine:
                    imps.append(layer.weight.data[idxs].abs().pow(self.p))
                else:
                    continue
                roots.append(group[i].root_idxs)
            if not imps:
                return None
            return self._normalize(self._reduce(imps, roots), self.normalizer)

    return ModulatedMagnitudeImportance(p=p)


class _StylesDetached:
    """While tracing, call each modulated conv with its style arguments detached.

    DepGraph follows autograd edges; the style path (``w -> affine -> x * style``) would
    otherwise tie the mapping network's ``w_dim`` channels to every layer's input
    channels. Detached, the mapping network is left whole and each modulated conv is
    one node whose channels the pruner slices.
    """

    def __init__(self, mods: Sequence[Any]) -> None:
        self.mods = list(mods)

    def __enter__(self) -> None:
        import torch

        for m in self.mods:

            def fwd(x: Any, *rest: Any, _f: Any = type(m).forward, _m: Any = m, **kw: Any) -> Any:
                return _f(
                    _m, x, *[r.detach() if isinstance(r, torch.Tensor) else r for r in rest], **kw
                )

            m.forward = fwd

    def __exit__(self, *exc: object) -> None:
        for m in self.mods:
            m.__dict__.pop("forward", None)


def _importance(name: str, modulated: tuple[type, ...] = ()) -> Any:
    tp = _tp()
    if name in ("l1", "l2"):
        p = 2 if name == "l2" else 1
        return (
            _modulated_importance(p, modulated)
            if modulated
            else tp.importance.MagnitudeImportance(p=p)
        )
    if name == "random":
        return tp.importance.RandomImportance()
    raise InputError(f"unknown importance {name!r}; choose one of {', '.join(IMPORTANCES)}")


class Prune:
    """Structured channel pruning of a torch generator with torch-pruning (DepGraph).

    Coupled channels (BatchNorm after a conv, the input channels of the next layer,
    residual skips that add two tensors) are removed together, so the result is a dense
    model with fewer channels. Input widths never change (the latent/label/image fed to
    the first layer stays as it is; only that layer's output channels are pruned), and
    the output shape never changes (see :func:`default_ignored`).

    Modulated convolutions (StyleGAN2; see :func:`is_modulated_conv`) are pruned too:
    output channels are ``weight`` rows (and ``bias``), input channels are ``weight``
    columns together with the ``affine`` rows that make their styles. The style inputs
    are detached while torch-pruning traces the model, so the mapping network is left
    whole. Parameters owned outside standard layers are pruned along a known axis only
    (1-D: axis 0, ``(1, C, ...)``: axis 1, scalars untouched); any other is refused.

    Args:
        ratio: Fraction of channels to remove (0 <= ratio < 1), per layer or, with
            ``global_pruning``, over the whole network.
        importance: ``l2`` or ``l1`` weight magnitude, or ``random`` (a baseline).
        global_pruning: Rank channels across layers instead of within each layer.
        keep: Glob patterns of module names never pruned (e.g. ``"net.0"``, ``"head*"``).
        per_layer: Glob pattern -> ratio, overriding ``ratio`` for matching layers.
        round_to: Keep channel counts a multiple of this (e.g. 8 for tensor cores).
        seed: Seed of the example inputs and of ``random`` importance.

    Raises:
        InputError: Bad options, a parameter whose channel axis is unknown (owned
            outside standard layers, not 1-D and not ``(1, C, ...)``), or a pruned model
            whose output shape changed.
        MissingDependencyError: torch-pruning is not installed.
    """

    name = "Prune"

    def __init__(
        self,
        ratio: float = 0.5,
        *,
        importance: str = "l2",
        global_pruning: bool = False,
        keep: Sequence[str] = (),
        per_layer: Mapping[str, float] | None = None,
        round_to: int | None = None,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= float(ratio) < 1.0:
            raise InputError(f"pruning ratio must be in [0, 1), got {ratio}")
        if importance not in IMPORTANCES:
            raise InputError(
                f"unknown importance {importance!r}; choose one of {', '.join(IMPORTANCES)}"
            )
        for pat, r in (per_layer or {}).items():
            if not 0.0 <= float(r) < 1.0:
                raise InputError(f"per-layer ratio for {pat!r} must be in [0, 1), got {r}")
        self.ratio = float(ratio)
        self.importance = importance
        self.global_pruning = bool(global_pruning)
        self.keep = tuple(keep)
        self.per_layer = {str(k): float(v) for k, v in (per_layer or {}).items()}
        self.round_to = round_to
        self.seed = int(seed)

    def options(self) -> dict[str, Any]:
        """The options as recorded in the artifact's pass chain."""
        return {
            "ratio": self.ratio,
            "importance": self.importance,
            "global_pruning": self.global_pruning,
            "keep": list(self.keep),
            "per_layer": dict(self.per_layer),
            "round_to": self.round_to,
            "seed": self.seed,
        }

    def __call__(self, artifact: Artifact) -> Artifact:
        import torch

        tp = _tp()
        teacher = check_eager_torch(artifact, "pruning")
        model = copy.deepcopy(teacher).float().eval()  # the input artifact is never touched
        inputs = example_inputs(artifact, batch=1, seed=self.seed)
        params_before, flops_before = count_params_flops(model, inputs)

        round_to = norm_round_to(model, self.round_to)
        ignored_names = default_ignored(model, artifact.spec.output_shape[0], self.keep)
        order, feeders = trace_layers(model, inputs)
        if order and order[-1] not in ignored_names:  # the layer that really writes the output
            ignored_names.append(order[-1])
        shuffled = [n for n in feeders if n not in ignored_names]
        ignored_names += shuffled
        bare, bad = _bare_parameters(model, ignored_names)
        if bad:
            raise InputError(
                "structured pruning does not know the channel axis of these parameters owned outside standard layers: "
                f"{', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}; keep their modules with --keep or leave this generator unpruned"
            )
        modulated = _modulated(model)
        mod_types = tuple(dict.fromkeys(type(m) for _, m in modulated))
        named = dict(model.named_modules())
        ignored = [named[n] for n in ignored_names]
        ratio_dict: dict[Any, float] = {}
        for n, m in prunable_layers(model):
            for pat, r in self.per_layer.items():
                if fnmatch.fnmatchcase(n, pat):
                    ratio_dict[m] = r
        if self.per_layer and not ratio_dict:
            raise InputError(
                f"no layer matches the per-layer patterns {sorted(self.per_layer)}; layer names: {', '.join(n for n, _ in prunable_layers(model))}"
            )

        grads = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(True)  # DepGraph traces the autograd graph
        try:
            with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.manual_seed(self.seed)
                mod_pruner = _modulated_pruner() if mod_types else None
                mod_ratio = {m: r for m, r in ratio_dict.items() if is_modulated_conv(m)}
                with _StylesDetached([m for _, m in modulated]):
                    pruner = tp.pruner.MetaPruner(
                        model,
                        inputs,
                        importance=_importance(self.importance, mod_types),
                        pruning_ratio=self.ratio,
                        pruning_ratio_dict={
                            m: r for m, r in ratio_dict.items() if m not in mod_ratio
                        }
                        or None,
                        global_pruning=self.global_pruning,
                        ignored_layers=ignored,
                        round_to=round_to,
                        customized_pruners={t: mod_pruner for t in mod_types} or None,
                        unwrapped_parameters=bare,
                        root_module_types=[
                            tp.ops.TORCH_CONV,
                            tp.ops.TORCH_LINEAR,
                            tp.ops.TORCH_LSTM,
                            *mod_types,
                        ],
                    )
                # MetaPruner files pruning_ratio_dict entries only for its built-in layer
                # types; per-layer ratios of modulated convs are filed here the same way.
                for i, (m, r) in enumerate(mod_ratio.items()):
                    pruner.pruning_ratio_dict[m] = pruner.iterative_pruning_ratio_scheduler(
                        r, pruner.iterative_steps
                    )
                    pruner._layer_to_scope[m] = (
                        "accelkit_modulated" + ("" if self.global_pruning else f"_{i}"),
                        [m],
                    )
                for group in pruner.step(interactive=True):
                    root = _group_root(pruner, group)
                    try:
                        group.prune()
                    except Exception as exc:  # noqa: BLE001 - named below, with the layer that failed
                        raise _GroupFailed(root, exc) from None
        except InputError:
            raise
        except _GroupFailed as failed:
            cause = failed.exc
            raise InputError(
                f"torch-pruning could not prune the channels of layer {failed.layer!r} ({type(cause).__name__}: "
                f"{str(cause).splitlines()[0][:160] if str(cause) else ''}); keep it with --keep {failed.layer!r} "
                "(keep=[...]) or leave this generator unpruned"
            ) from None
        except Exception as exc:  # noqa: BLE001 - torch-pruning/torch raise many types; re-raised as one line
            raise InputError(
                f"torch-pruning could not trace this generator ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                "keep the layers it fails on with --keep NAME (keep=[...]) or leave it unpruned"
            ) from None
        finally:
            for p, g in zip(model.parameters(), grads):
                p.requires_grad_(g)
        model.eval()

        want = (2, *artifact.spec.output_shape)
        try:
            with torch.no_grad():
                out = model(*example_inputs(artifact, batch=2, seed=self.seed))
            got = tuple((out[0] if isinstance(out, (tuple, list)) else out).shape)
        except Exception as exc:  # noqa: BLE001 - torch-pruning/torch raise many types; re-raised as one line
            raise InputError(
                f"the pruned generator fails to run ({type(exc).__name__}: {str(exc)[:160]}); keep more layers with --keep"
            ) from None
        if got != want:
            raise InputError(
                f"pruning changed the output shape from {want} to {got}; keep the output layers with --keep"
            )

        params_after, flops_after = count_params_flops(model, inputs)
        record = {
            "name": self.name,
            "options": self.options(),
            "ignored_layers": ignored_names,
            "pixel_shuffle_inputs_kept": shuffled,
            "round_to_used": round_to,
            "params_before": params_before,
            "params_after": params_after,
            "flops_before": flops_before,
            "flops_after": flops_after,
            "flops_batch": 1,
            "torch_pruning": getattr(tp, "__version__", None),
        }
        meta = dict(artifact.meta)
        meta["parameters"] = params_after
        meta["pruning"] = {
            k: record[k] for k in ("params_before", "params_after", "flops_before", "flops_after")
        }
        return artifact.derive(
            module=model, path=None, passes=[*(dict(p) for p in artifact.passes), record], meta=meta
        )


class _GroupFailed(Exception):
    """torch-pruning failed on the group rooted at ``layer``."""

    def __init__(self, layer: str, exc: BaseException) -> None:
        super().__init__(layer)
        self.layer = layer
        self.exc = exc


def _group_root(pruner: Any, group: Any) -> str:
    """Name of the layer a torch-pruning group is rooted at (``?`` when unknown)."""
    try:
        mod = group[0].dep.target.module
        return str(pruner.DG._module2name.get(mod, type(mod).__name__))
    except Exception:  # noqa: BLE001 - naming is best effort, never the failure itself
        return "?"


# ----------------------------------------------------------------------- saving
def save_pruned(
    artifact: Artifact, path: str | os.PathLike[str], *, force: bool = False
) -> Artifact:
    """Save a (pruned) torch artifact as a TorchScript archive plus its sidecar.

    ``torch.jit.script`` is tried first, ``torch.jit.trace`` (on sampler inputs) second.
    The generator's spec is stored inside the archive (``accelkit_spec.json``), so the
    file loads with :func:`accelkit.loading.load_generator` without ``--trust-code`` (its
    ops are in the TorchScript allow-list) and without ``--input`` flags.

    Returns:
        The artifact with ``path`` set.

    Raises:
        InputError: The destination exists (without ``force``) or the module can be
            neither scripted nor traced.
    """
    import torch

    module = check_eager_torch(artifact, "saving a pruned generator").eval()
    how = "script"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ts = torch.jit.script(module)
        except Exception:  # noqa: BLE001 - torch-pruning/torch raise many types; re-raised as one line
            how = "trace"
            try:
                ts = torch.jit.trace(module, example_inputs(artifact, batch=2), check_trace=False)
            except Exception as exc:  # noqa: BLE001 - torch-pruning/torch raise many types; re-raised as one line
                raise InputError(
                    f"the pruned generator can be neither scripted nor traced ({type(exc).__name__}: {str(exc)[:160]})"
                ) from None
    from accelkit.files import write_serialized
    from accelkit.loading import spec_extra_files

    meta = dict(artifact.meta)
    meta["torchscript"] = how
    extra = spec_extra_files(
        artifact.spec
    )  # the spec travels inside the archive: the next command needs no --input
    return artifact.derive(path=Path(path), meta=meta).save(
        lambda tmp: write_serialized(tmp, lambda f: torch.jit.save(ts, f, _extra_files=extra)),
        force=force,
    )


__all__ = [
    "Prune",
    "count_params_flops",
    "default_ignored",
    "example_inputs",
    "is_modulated_conv",
    "save_pruned",
]
