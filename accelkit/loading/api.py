"""``load_generator``: resolve -> detect -> the format's loader -> spec inference -> adapters -> Artifact."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.errors import InputError, LoadError, SpecError
from accelkit.loading.detect import detect_format, resolve_path
from accelkit.loading.registry import LoadRequest, TorchModel, get_format
from accelkit.loading.sidecars import path_bytes, path_sha256
from accelkit.spec import GeneratorSpec, InputSpec, apply_overrides


# ----------------------------------------------------------------- argument checks
def _as_inputs(inputs: Any) -> tuple[InputSpec, ...]:
    """``--input`` texts or :class:`InputSpec` objects (one of either alone also works)."""
    from accelkit.spec import parse_input_flag

    if inputs is None:
        return ()
    if isinstance(inputs, (str, InputSpec)):
        inputs = [inputs]
    if not isinstance(inputs, Sequence):
        raise InputError(
            f"inputs must be a list of InputSpec or --input texts such as 'z:128', got {type(inputs).__name__}"
        )
    out: list[InputSpec] = []
    for item in inputs:
        if isinstance(item, InputSpec):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_input_flag(item))
        else:
            raise InputError(
                f"inputs must be InputSpec objects or --input texts such as 'z:128', 'label:int:10', 'image:3x64x64'; got {item!r:.60}"
            )
    return tuple(out)


def _as_pair(value: Any, name: str) -> tuple[float, float] | None:
    from accelkit.spec import parse_output_range

    if value is None:
        return None
    if isinstance(value, str):
        return parse_output_range(value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be (low, high) or 'low,high', e.g. (-1, 1); got {value!r:.60}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(
            f"{name} {lo:g},{hi:g} must be two finite numbers low < high; use -1,1 or 0,1"
        )
    return (lo, hi)


def _as_shape(value: Any) -> tuple[int, ...] | None:
    from accelkit.spec import parse_output_shape

    if value is None:
        return None
    if isinstance(value, str):
        return parse_output_shape(value)
    try:
        dims = tuple(value)
        if len(dims) != 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims
        ):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(
            f"output_shape must be (C, H, W) or 'CxHxW', e.g. (1, 28, 28); got {value!r:.60}"
        ) from None
    return dims


def _as_hw(value: Any) -> tuple[int, int, int] | None:
    from accelkit.spec import parse_hw_range

    if value is None:
        return None
    if isinstance(value, str):
        return parse_hw_range(value)
    try:
        lo, opt, hi = (int(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(
            f"hw_range must be (min, opt, max) or 'MIN:OPT:MAX'; got {value!r:.60}"
        ) from None
    if (lo, opt, hi) != (0, 0, 0) and not 1 <= lo <= opt <= hi:
        raise InputError(f"hw_range {lo}:{opt}:{hi}: need 1 <= min <= opt <= max, e.g. 16:64:256")
    return (lo, opt, hi)


def _check_request(
    arch: Any, arch_kwargs: Any, latent_dist: Any, truncation_psi: Any, trust: Any
) -> tuple[str | None, dict[str, Any], str | None, float | None]:
    if isinstance(arch, type):
        arch = f"{arch.__module__}:{arch.__qualname__}"
    if arch is not None and not isinstance(arch, str):
        raise InputError(
            f"arch must be a class, 'module:Class', 'file.py:Class' or a bundled name; got {arch!r:.60}"
        )
    if arch_kwargs is None:
        kwargs: dict[str, Any] = {}
    elif isinstance(arch_kwargs, str):
        from accelkit.loading.safe_read import parse_arch_kwargs

        kwargs = parse_arch_kwargs(arch_kwargs, "arch_kwargs")
    elif isinstance(arch_kwargs, Mapping) and all(isinstance(k, str) for k in arch_kwargs):
        kwargs = dict(arch_kwargs)
    else:
        raise InputError(
            f"arch_kwargs must be a dict of constructor arguments; got {arch_kwargs!r:.60}"
        )
    dist = getattr(latent_dist, "value", latent_dist)
    if dist is not None and dist not in ("normal", "uniform"):
        raise InputError(f"latent_dist {dist!r:.40} is unknown; use normal or uniform")
    psi: float | None = None
    if truncation_psi is not None:
        try:
            psi = float(truncation_psi)
        except (TypeError, ValueError):
            raise InputError(
                f"truncation_psi must be a number > 0; got {truncation_psi!r:.40}"
            ) from None
        if not math.isfinite(psi) or psi <= 0:
            raise InputError(f"truncation_psi {psi:g} is out of range; use a finite value > 0")
    if not isinstance(trust, bool):
        raise InputError(f"trust must be True or False; got {trust!r:.40}")
    return arch or None, kwargs, dist, psi


# ------------------------------------------------------------------------ loading
def load_generator(
    path: Any = None,
    *,
    arch: str | type | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    inputs: Sequence[InputSpec | str] | None = (),
    output_range: tuple[float, float] | str | None = None,
    latent_dist: str | None = None,
    truncation_psi: float | None = None,
    output_shape: Sequence[int] | str | None = None,
    hw_range: tuple[int, int, int] | str | None = None,
    trust: bool = False,
) -> Artifact:
    """Load a generator file into an artifact with an inferred (or given) spec.

    Example::

        from accelkit.loading import load_generator
        gen = load_generator("G.pth", arch="mygan.py:Generator", inputs=["z:100"],
                             output_shape="1x28x28")
        gen.spec.describe()

    Args:
        path: The file; a diffusers VAE folder (``config.json`` +
            ``diffusion_pytorch_model.safetensors``, or a pipeline folder with ``vae/``);
            None for the bundled DCGAN demo generator; a bundled name (``dcgan``,
            ``stylegan2``, ``sr4x``); or a ``LoadOptions`` object (then no other argument).
        arch: Architecture for weight-only files: the class itself (Python), or
            ``module:Class``, ``file.py:Class`` or a bundled architecture name (as
            ``--arch``). Without it, a super-resolution state_dict is given to spandrel
            (extra ``[sr]``) to detect.
        arch_kwargs: Constructor keyword arguments for ``arch`` (a dict, or JSON text).
        inputs: User-given inputs: :class:`InputSpec` objects or ``--input`` texts
            (``"z:128"``, ``"label:int:10"``, ``"image:3x64x64"``); each replaces the
            inferred input of its name.
        output_range: ``(low, high)`` or ``"-1,1"``; else read from the model (attribute,
            final Tanh/Sigmoid, family convention) or probed.
        latent_dist: ``normal`` or ``uniform``.
        truncation_psi: Truncation for latents (> 0).
        output_shape: ``(C, H, W)`` or ``"CxHxW"`` of a flat output (``--output-shape``).
        hw_range: ``(min, opt, max)`` or ``"MIN:OPT:MAX"`` height/width of spatial inputs
            for a generator that runs at any size (``--hw-range``); ``(0, 0, 0)``: a
            default range around the input size (``--dynamic-hw``).
        trust: ``--trust-code``: allow code the file carries (full pickles, TorchScript and
            ``torch.export`` archives outside accelkit's allow-list of pure tensor ops).

    Returns:
        A ``torch`` artifact (module in eval mode on CPU, float32; a dict, tuple or flat
        output wrapped by :class:`~accelkit.loading.adapters.OutputAdapter`) or an ``onnx`` one.

    Raises:
        InputError, LoadError, UntrustedCodeError, SpecError, MissingDependencyError:
        one-line explanations (a bad argument included).
    """
    if hasattr(path, "load") and hasattr(path, "generator"):  # a LoadOptions (pipelines layer)
        given = [
            arch,
            arch_kwargs,
            output_range,
            latent_dist,
            truncation_psi,
            output_shape,
            hw_range,
        ]
        if any(v is not None for v in given) or inputs or trust:
            raise InputError(
                "give either a LoadOptions object or keyword options to load_generator, not both"
            )
        return path.load()  # type: ignore[no-any-return]
    if path is not None and not isinstance(path, (str, Path)):
        raise InputError(
            f"load_generator takes a path, a bundled name or LoadOptions; got {type(path).__name__}"
        )
    arch_class = arch if isinstance(arch, type) else None
    arch, kwargs, dist, psi = _check_request(arch, arch_kwargs, latent_dist, truncation_psi, trust)
    p = resolve_path(path)
    fmt = detect_format(p)
    req = LoadRequest(
        path=p,
        format=fmt,
        sha256=path_sha256(p),
        arch=arch,
        arch_kwargs=kwargs,
        inputs=_as_inputs(inputs),
        output_range=_as_pair(output_range, "output_range"),
        latent_dist=dist,
        truncation_psi=psi,
        output_shape=_as_shape(output_shape),
        hw_range=_as_hw(hw_range),
        trust=trust,
        arch_class=arch_class,
    )
    loaded = get_format(fmt).loader()(req)
    base = {"loader": fmt, "file_bytes": path_bytes(p)}
    if isinstance(loaded, Artifact):
        loaded.meta = {**loaded.meta, **base}
        return loaded
    if not isinstance(loaded, TorchModel):
        raise LoadError(f"{p}: the {fmt} loader returned {type(loaded).__name__}, not a model")
    return _finish_torch(req, loaded, base)


def _finish_torch(req: LoadRequest, tm: TorchModel, base: dict[str, Any]) -> Artifact:
    """Spec inference, output adapter and the torch artifact for what a torch-format loader returned."""
    import torch

    from accelkit.loading.sidecars import load_pass_options, matching_sidecar
    from accelkit.loading.spec_inference import infer_spec_and_rule, with_inferred_range

    p = req.path
    module, program = tm.module, tm.program
    meta: dict[str, Any] = {**base, **tm.meta}
    if not isinstance(module, torch.nn.Module):
        raise LoadError(f"{p} did not yield a torch module (got {type(module).__name__})")
    if (
        program is None
    ):  # an unlifted torch.export module refuses .eval(); it is frozen in its export mode
        module = module.eval().float()
    for prm in module.parameters():
        prm.requires_grad_(False)
    meta["parameters"] = int(sum(prm.numel() for prm in module.parameters()))
    stored_spec, from_sidecar = tm.stored_spec, tm.from_sidecar
    if req.format in (
        "torchscript",
        "pt2",
    ):  # a file accelkit wrote (a pruned model): its record comes back
        side = matching_sidecar(p, req.sha256)
        if side is not None:
            raw_meta = side.get("meta")
            side_meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
            meta.update(
                {
                    k: v
                    for k, v in side_meta.items()
                    if k not in meta and k not in ("loader", "file_bytes", "parameters")
                }
            )
            if stored_spec is None:
                stored_spec, from_sidecar = side["spec"], True
    family = tm.family
    batch = 2
    if program is not None:
        from accelkit.loading.pt2 import program_static_batch

        meta["static_batch"] = program_static_batch(program)
        batch = meta["static_batch"] or 2
    rule = None
    if stored_spec is not None and not req.inputs and not req.output_shape:
        spec = GeneratorSpec.from_dict(stored_spec)
        how = (
            "the file's sidecar (same sha256)"
            if from_sidecar
            else "stored by accelkit with the file"
        )
        spec = replace(spec, inferred=(("spec", how),))
    else:
        if stored_spec is not None:
            family = GeneratorSpec.from_dict(stored_spec)
        cands: list[list[InputSpec]] | None = None
        how = ""
        if family is not None:
            cands, how = [list(family.inputs)], dict(family.inferred).get("inputs", "the file")
        elif program is not None:
            from accelkit.loading.pt2 import program_inputs

            prog_inputs, problems = program_inputs(program, module)
            unresolved = [n for n in problems if not any(g.name == n for g in req.inputs)]
            if unresolved:
                raise SpecError(problems[unresolved[0]])
            cands, how = [prog_inputs], "torch.export signature"
        spec, rule = infer_spec_and_rule(
            module,
            req.inputs,
            batch=batch,
            output_shape=req.output_shape,
            candidates=cands,
            candidates_how=how,
        )
        if rule is not None and not rule.identity:
            from accelkit.loading.adapters import adapt

            module = adapt(module, rule, spec.input_names)
            meta["output_adapter"] = rule.to_dict()
        if family is not None:
            kept = tuple((k, v) for k, v in family.inferred if k != "inputs")
            spec = replace(
                spec,
                output_range=family.output_range,
                latent_dist=family.latent_dist,
                hw_range=family.hw_range,
                inferred=spec.inferred + kept,
            )
        elif req.output_range is None:
            spec = with_inferred_range(module, spec, batch=meta.get("static_batch"))
    spec = (
        apply_overrides(
            spec,
            (),
            req.output_range,
            req.latent_dist,  # type: ignore[arg-type]
            req.truncation_psi,
            req.hw_range,
        )
        or spec
    )
    return Artifact(
        format="torch",
        spec=spec,
        path=None,
        module=module,
        program=program if rule is None or rule.identity else None,
        source=str(p),
        source_sha256=req.sha256,
        passes=[{"name": "load", "options": load_pass_options(req)}],
        meta=meta,
    )


__all__ = ["load_generator"]
