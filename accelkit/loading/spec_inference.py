"""Spec inference: a torch generator's inputs, output shape and output range, by reading and probing it.

Inputs come from attributes (``z_dim``, ``num_classes``...), the forward signature and the
first layer; the output shape and the way to the image (a dict, a tuple, a flat vector:
:mod:`accelkit.loading.adapters`) from running the generator on seeded inputs; the output
range from an ``output_range`` attribute, a final Tanh/Sigmoid, or probing. Every probe
call is timed out (:func:`~accelkit.loading.safe_read.call_with_timeout`: a generator that
never returns is a one-line error) and repeated once, so an output whose shape changes
between calls is refused rather than measured.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from accelkit.errors import SpecError
from accelkit.loading.safe_read import call_with_timeout
from accelkit.spec import GeneratorSpec, InputSpec

_LATENT_ATTRS = (
    "z_dim",
    "nz",
    "latent_dim",
    "noise_dim",
    "dim_z",
    "latent_size",
    "nz_dim",
    "style_dim",
)
CLASS_ATTRS = ("num_classes", "n_classes", "c_dim", "num_labels", "n_class")
_LATENT_ARG_NAMES = ("z", "latent", "latents", "noise", "z_in", "input_z", "w", "x", "input")
_LABEL_ARG_NAMES = (
    "label",
    "labels",
    "y",
    "c",
    "class_label",
    "class_labels",
    "cls",
    "class_idx",
    "classes",
)
_IMAGE_ARG_NAMES = ("image", "img", "images", "x", "lr", "input", "src", "source", "inputs")


# --------------------------------------------------------------------- spec inference
def forward_arg_names(module: Any) -> list[str] | None:
    import inspect

    import torch

    adapted = getattr(
        module, "accelkit_input_names", None
    )  # an OutputAdapter(*inputs) keeps its inner names
    if adapted:
        return [str(n) for n in adapted]

    if isinstance(module, torch.jit.ScriptModule):
        try:
            args = module.forward.schema.arguments  # type: ignore[attr-defined]
            return [a.name for a in args if a.name != "self"]
        except (AttributeError, RuntimeError):
            return None
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return None
    names: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return names or None
        if p.default is not p.empty and names:
            continue  # optional extras (truncation_psi=..., noise_mode=...) are not inputs
        names.append(p.name)
    return names


def attr_of(module: Any, names: Sequence[str]) -> Any:
    for n in names:
        try:
            v = getattr(module, n)
        except (AttributeError, RuntimeError):
            continue
        if v is not None and not callable(v):
            return v
    return None


def _layer_kind(m: Any) -> str:
    """Class name of a layer, also for TorchScript submodules (which keep it as ``original_name``)."""
    import torch

    if isinstance(m, torch.jit.ScriptModule):
        return str(getattr(m, "original_name", type(m).__name__))
    return type(m).__name__


def _weight_shape(m: Any) -> tuple[int, ...] | None:
    w = getattr(m, "weight", None)
    shape = getattr(w, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def _first_layer(module: Any) -> tuple[str, tuple[int, ...]] | None:
    """``(kind, weight shape)`` of the first Linear / Conv2d / ConvTranspose2d (Embeddings skipped), eager or TorchScript."""
    for m in module.modules():
        kind = _layer_kind(m)
        if kind in ("Linear", "Conv2d", "ConvTranspose2d"):
            shape = _weight_shape(m)
            if shape is not None:
                return kind, shape
    return None


def _first_layer_channels(module: Any) -> int | None:
    """Input channels of the first layer when it is a Conv2d (an image or spatial-latent input)."""
    first = _first_layer(module)
    if first is None or first[0] != "Conv2d" or len(first[1]) != 4:
        return None
    return int(first[1][1])


def _output_range_guess(module: Any) -> tuple[tuple[float, float], str] | None:
    """The range a module declares (``output_range`` attribute) or its final Tanh/Sigmoid implies; None if neither."""
    rng = attr_of(module, ("output_range", "out_range", "value_range"))
    if rng is not None:
        try:
            lo, hi = (float(x) for x in rng)
            return (lo, hi), "attribute output_range"
        except (TypeError, ValueError):
            pass
    last = None
    for m in module.modules():
        if len(list(m.children())) == 0:
            last = m
    kind = _layer_kind(last) if last is not None else ""
    if kind == "Tanh":
        return (-1.0, 1.0), "final Tanh layer"
    if kind == "Sigmoid":
        return (0.0, 1.0), "final Sigmoid layer"
    return None


#: Slack around [0, 1] when reading a range from probe outputs (SR networks overshoot a little).
RANGE_TOLERANCE = 0.1
#: Slack around [-1, 1]: unclamped GAN generators (StyleGAN2) overshoot more.
SIGNED_RANGE_TOLERANCE = 0.25
RANGE_PROBE_SAMPLES = 8


def classify_range(
    lo: float, hi: float, tol: float = RANGE_TOLERANCE, signed_tol: float = SIGNED_RANGE_TOLERANCE
) -> tuple[float, float] | None:
    """``(0, 1)`` for values in [0, 1], ``(-1, 1)`` for values in [-1, 1] with clear negatives, else None.

    Args:
        lo, hi: Smallest and largest observed output value.
        tol: Slack around [0, 1]; values below ``-tol`` are clear negatives.
        signed_tol: Slack around [-1, 1].
    """
    if lo >= -tol and hi <= 1 + tol:
        return (0.0, 1.0)
    if lo < -tol and lo >= -1 - signed_tol and hi <= 1 + signed_tol:
        return (-1.0, 1.0)
    return None


def probe_output_range(
    run: Any, spec: GeneratorSpec, samples: int = RANGE_PROBE_SAMPLES, batch: int | None = None
) -> tuple[tuple[float, float], str]:
    """Infer the output range by running the generator on seeded inputs.

    Values observed in [0, 1] give ``(0, 1)``; in [-1, 1] with negatives, ``(-1, 1)``
    (with :data:`RANGE_TOLERANCE` and :data:`SIGNED_RANGE_TOLERANCE` slack). An image-to-image generator is probed with
    images in [0, 1] first (the convention of SR and restoration networks), then in
    [-1, 1]; its input range follows its output range.

    Args:
        run: ``run(feeds) -> NCHW float32 numpy array`` (torch module or ONNX session).
        spec: The generator's spec (inputs; its range is ignored).
        samples: Seeded samples per probe.
        batch: Batch size of each run (a program exported with a fixed batch needs its own).

    Returns:
        ``(range, how)``, ``how`` naming the observed extremes.

    Raises:
        SpecError: Outputs outside both ranges, or NaN/Inf: refuse to guess, ask for ``--output-range``.
    """
    import numpy as np

    from accelkit.sampler import LatentSampler

    has_image = any(i.kind == "image" for i in spec.inputs)
    tries = [(0.0, 1.0), (-1.0, 1.0)] if has_image else [spec.output_range]
    seen: list[tuple[float, float]] = []
    for in_range in tries:
        probe_spec = replace(spec, output_range=in_range)
        step = batch or min(samples, 4)
        sampler = LatentSampler(probe_spec, seed=987, batch_size=step)
        outs = []
        for feeds in sampler.batches(-(-samples // step) * step):
            out = np.asarray(
                call_with_timeout(functools.partial(run, feeds), "probed its output range")
            )
            if spec.output_shape and tuple(out.shape[1:]) != tuple(spec.output_shape):
                raise SpecError(
                    f"the generator's output shape changes between calls ({'x'.join(map(str, spec.output_shape))} per image "
                    f"when probed, then {'x'.join(map(str, out.shape[1:]))}); accelkit needs a generator whose output shape depends only on its inputs"
                )
            outs.append(out)
        arr = np.concatenate([o.reshape(o.shape[0], -1) for o in outs])
        if not np.isfinite(arr).all():
            raise SpecError(
                "the generator returned NaN/Inf on seeded inputs while accelkit probed its output range; give it with --output-range LOW,HIGH"
            )
        lo, hi = float(arr.min()), float(arr.max())
        seen.append((lo, hi))
        rng = classify_range(lo, hi)
        if rng is not None and (not has_image or rng == in_range):
            src = f" with input images in [{in_range[0]:g}, {in_range[1]:g}]" if has_image else ""
            return rng, f"probing {samples} seeded samples{src} (outputs in [{lo:.3g}, {hi:.3g}])"
    shown = "; ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in seen)
    raise SpecError(
        f"cannot tell the generator's output range: on seeded inputs it returned values in {shown}, not clearly [0, 1] or [-1, 1]; "
        "give it with --output-range LOW,HIGH (e.g. 0,1 or -1,1)"
    )


def torch_runner_fn(module: Any) -> Any:
    """``feeds -> numpy`` for a torch module taking the spec's inputs positionally (CPU, fp32)."""
    import numpy as np
    import torch

    def run(feeds: dict[str, Any], names: Sequence[str] | None = None) -> Any:
        args = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
        with torch.inference_mode():
            out = module(*args)
        return out.detach().float().cpu().numpy()

    return run


def _candidate_inputs(module: Any) -> tuple[list[list[InputSpec]], str]:
    """Candidate input lists to probe, from attributes, the forward signature and the first layer."""
    from accelkit.spec import LATENT_NAMES

    names = forward_arg_names(module) or []
    z_dim = attr_of(module, _LATENT_ATTRS)
    n_cls = attr_of(module, CLASS_ATTRS)
    in_shape = attr_of(module, ("input_shape", "in_shape", "img_shape_in"))
    cands: list[list[InputSpec]] = []
    how = []
    label_name = next((n for n in names[1:] if n in _LABEL_ARG_NAMES), None)
    label: list[InputSpec] = []
    if isinstance(n_cls, int) and n_cls > 0:
        how.append("num_classes attribute")
    elif label_name is not None:
        n_cls = _first_embedding_rows(module)
        if n_cls:
            how.append("Embedding rows as class count")
    if isinstance(n_cls, int) and n_cls > 0:
        label = [
            InputSpec(
                label_name or (names[1] if len(names) > 1 else "label"),
                "label",
                (),
                "int64",
                int(n_cls),
            )
        ]
    first = names[0] if names else None
    if isinstance(in_shape, (tuple, list)) and len(in_shape) == 3:
        cands.append(
            [InputSpec(first or "image", "image", tuple(int(d) for d in in_shape))] + label
        )
        how.append("input_shape attribute")
    if isinstance(z_dim, int) and z_dim > 0:
        lname = first if first and first not in _IMAGE_ARG_NAMES[:4] else (first or "z")
        cands.append([InputSpec(lname, "latent", (int(z_dim),))] + label)
        cands.append([InputSpec(lname, "latent", (int(z_dim), 1, 1))] + label)
        how.append("z_dim-like attribute")
    if not cands:
        layer = _first_layer(module)
        name = first or "input"
        if layer is not None and layer[0] == "Conv2d" and len(layer[1]) == 4:
            ch = int(layer[1][1])
            latent_like = name.lower() in LATENT_NAMES or (
                ch not in (1, 3, 4) and name not in _IMAGE_ARG_NAMES
            )
            kind: Literal["latent", "label", "image"] = "latent" if latent_like else "image"
            for s in (32, 64):
                cands.append(
                    [
                        InputSpec(
                            name if first else ("latent" if latent_like else "image"),
                            kind,
                            (ch, s, s),
                        )
                    ]
                    + label
                )  # type: ignore[arg-type]
            how.append(
                f"first Conv2d takes {ch} channels ({kind}; size {cands[-2][0].shape[1]} assumed: override with --input)"
            )
        elif layer is not None and layer[0] == "Linear" and len(layer[1]) == 2:
            width = int(layer[1][1])
            cands.append([InputSpec(first or "z", "latent", (width,))] + label)
            emb = _first_embedding_width(module)
            if label and emb and width > emb:  # z concatenated with the label's embedding
                cands.append([InputSpec(first or "z", "latent", (width - emb,))] + label)
            how.append(
                f"first layer Linear({width}, ...)"
                + (f" less the {emb}-wide label embedding" if label and emb and width > emb else "")
            )
        elif layer is not None and layer[0] == "ConvTranspose2d" and len(layer[1]) == 4:
            cands.append([InputSpec(first or "z", "latent", (int(layer[1][0]), 1, 1))] + label)
            cands.append([InputSpec(first or "z", "latent", (int(layer[1][0]),))] + label)
            how.append(f"first ConvTranspose2d takes {layer[1][0]} channels")
    return cands, ", ".join(how)


def _first_embedding_width(module: Any) -> int | None:
    for m in module.modules():
        if _layer_kind(m) == "Embedding":
            shape = _weight_shape(m)
            if shape and len(shape) == 2:
                return int(shape[1])
    return None


def _first_embedding_rows(module: Any) -> int | None:
    for m in module.modules():
        if _layer_kind(m) == "Embedding":
            shape = _weight_shape(m)
            if shape:
                return int(shape[0])
    return None


def merge_inputs(inferred: Sequence[InputSpec], given: Sequence[InputSpec]) -> list[InputSpec]:
    """Inferred inputs with user-given ones replacing those of the same name (or position).

    A given input whose name matches none replaces the inferred input at its position
    when the user gave no more inputs than were inferred; otherwise it is appended.
    """
    new = list(inferred)
    for pos, inp in enumerate(given):
        idx = next((k for k, cur in enumerate(new) if cur.name == inp.name), None)
        if (
            idx is None
            and pos < len(new)
            and len(given) <= len(new)
            and new[pos].name not in {g.name for g in given}
        ):
            idx = pos
        if idx is None:
            new.append(inp)
        else:
            new[idx] = inp
    return new


def probe_output(
    module: Any,
    inputs: Sequence[InputSpec],
    batch: int = 2,
    output_shape: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], Any]:
    """Run the module twice on seeded inputs; return the per-sample image shape and how it was found.

    Each call is timed out (:func:`~accelkit.loading.safe_read.call_with_timeout`); the
    second call must give the same image shape as the first (a generator whose output
    shape changes between calls cannot be exported, benchmarked or compared).

    Args:
        module: The generator.
        inputs: Its inputs.
        batch: Probe batch size.
        output_shape: ``--output-shape`` for flat outputs.

    Returns:
        ``(shape, rule)``: ``(C, H, W)`` and the :class:`~accelkit.loading.adapters.OutputRule`.

    Raises:
        SpecError: The forward pass fails, hangs, returns no image batch, or changes shape.
    """
    import torch

    from accelkit.loading.adapters import find_image
    from accelkit.sampler import LatentSampler

    spec = GeneratorSpec(inputs=tuple(inputs))
    feeds = LatentSampler(spec, seed=0).inputs(0, batch)
    args = [torch.from_numpy(feeds[i.name]) for i in inputs]

    def forward() -> Any:
        with torch.inference_mode():
            return module(*args)

    shapes: list[tuple[int, ...]] = []
    rule: Any = None
    for _ in range(2):
        try:
            out = call_with_timeout(forward, "probed its output")
        except SpecError:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
            shown = ", ".join(f"{i.name}={(batch, *i.shape)}" for i in inputs)
            raise SpecError(
                f"the generator fails on inputs {shown} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); give its inputs with --input"
            ) from None
        img, rule = find_image(out, batch, output_shape)
        shapes.append(tuple(int(d) for d in img.shape[1:]))
    if shapes[0] != shapes[1]:
        raise SpecError(
            f"the generator's output shape changes between calls on the same inputs ({'x'.join(map(str, shapes[0]))}, "
            f"then {'x'.join(map(str, shapes[1]))} per image); accelkit needs a generator whose output shape depends only on its inputs"
        )
    return shapes[0], rule


def infer_spec_and_rule(
    module: Any,
    given: Sequence[InputSpec] = (),
    batch: int = 2,
    output_shape: Sequence[int] | None = None,
    candidates: Sequence[Sequence[InputSpec]] | None = None,
    candidates_how: str = "",
) -> tuple[GeneratorSpec, Any]:
    """Inputs, output shape and output rule of a torch generator (no output range yet).

    Args:
        module: The generator in eval mode.
        given: User-given inputs (``--input``): each replaces the inferred input of its
            name; with nothing inferred they are the inputs.
        batch: Probe batch size.
        output_shape: ``--output-shape`` for flat outputs.
        candidates: Input lists to try instead of inferring them from the module.
        candidates_how: How ``candidates`` were found (recorded).

    Raises:
        SpecError: No candidate runs; the message says which ``--input`` to pass.
    """
    if candidates is not None:
        cands, how = [list(c) for c in candidates], candidates_how
    else:
        cands, how = _candidate_inputs(module)
    if given:
        merged = [merge_inputs(c, given) for c in cands]
        cands = [c for k, c in enumerate(merged) if c not in merged[:k]]
        if list(given) not in cands:
            cands.append(list(given))
        how = "--input" + (f" over {how}" if how and cands[0] != list(given) else "")
    if not cands:
        names = forward_arg_names(module)
        raise SpecError(
            f"cannot infer the generator's inputs (forward arguments: {names}); "
            "pass them with --input, e.g. --input z:128 or --input label:int:10 or --input image:3x64x64"
        )
    errors: list[str] = []
    for cand in cands:
        unknown = [i.name for i in cand if i.kind == "label" and not i.num_classes]
        if unknown:
            errors.append(
                f"input {unknown[0]!r} is an integer label and the number of classes is unknown; pass --input {unknown[0]}:int:CLASSES"
            )
            continue
        try:
            out_shape, rule = probe_output(module, cand, batch, output_shape)
        except SpecError as exc:
            errors.append(str(exc))
            continue
        inferred = [("inputs", how or "--input"), ("output_shape", "probing")]
        if not rule.identity:
            inferred.append(("output", rule.describe()))
        return GeneratorSpec(
            inputs=tuple(cand), output_shape=out_shape, inferred=tuple(inferred)
        ), rule
    raise SpecError(
        errors[0] if errors else "cannot infer the generator's inputs; pass them with --input"
    )


def infer_torch_spec(
    module: Any,
    given: Sequence[InputSpec] = (),
    batch: int = 2,
    output_shape: Sequence[int] | None = None,
) -> GeneratorSpec:
    """Infer a torch generator's spec by attributes, signature, first layer and probing.

    The output range comes from an ``output_range`` attribute, a final Tanh/Sigmoid, or
    by probing (:func:`probe_output_range`).

    Args:
        module: The generator in eval mode (nn.Module, ScriptModule or GraphModule); its
            output must be an NCHW batch (see :mod:`accelkit.loading.adapters` otherwise).
        given: User-given inputs (``--input``), merged over the inferred ones by name.
        batch: Batch size to probe with (a fixed-batch program needs its own).
        output_shape: ``--output-shape`` for flat outputs.

    Raises:
        SpecError: Nothing worked; the message says which ``--input`` (or ``--output-range``) to pass.
    """
    spec, _ = infer_spec_and_rule(module, given, batch, output_shape)
    return with_inferred_range(module, spec)


def with_inferred_range(
    module: Any, spec: GeneratorSpec, batch: int | None = None
) -> GeneratorSpec:
    guess = _output_range_guess(module)
    if guess is None:
        guess = probe_output_range(torch_runner_fn(module), spec, batch=batch)
    rng, how = guess
    return replace(
        spec,
        output_range=rng,
        inferred=tuple(k for k in spec.inferred if k[0] != "output_range")
        + (("output_range", how),),
    )
