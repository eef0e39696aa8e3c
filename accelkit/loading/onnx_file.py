"""Loader of ONNX files: the graph is data (no code runs), its spec comes from accelkit's metadata or the graph.

A file accelkit exported carries its spec in its metadata (``accelkit.spec``) and its
provenance in its sidecar; the sidecar is used only when its sha256 is the file's own
(:func:`~accelkit.loading.sidecars.bound_sidecar`). An ONNX file from elsewhere gets its
inputs from the graph and its output shape and range by probing in ONNX Runtime (timed out).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.errors import LoadError, SpecError, one_line
from accelkit.loading.registry import LoadRequest
from accelkit.loading.safe_read import call_with_timeout
from accelkit.loading.spec_inference import merge_inputs, probe_output_range
from accelkit.spec import MAX_ELEMENTS, GeneratorSpec, InputSpec, apply_overrides

log = logging.getLogger(__name__)


def spec_from_onnx(
    model: Any,
    path: Path,
    given: Sequence[InputSpec] = (),
    output_range: tuple[float, float] | None = None,
) -> GeneratorSpec:
    """Spec of an ONNX generator from its accelkit metadata, or from its graph I/O.

    Without metadata: inputs come from the graph (a dynamic height/width or an integer
    label needs ``--input``), the output shape from the graph or one ONNX Runtime run,
    and the output range from ``output_range`` or by probing in ONNX Runtime
    (:func:`probe_output_range`).

    Raises:
        SpecError: An input whose shape or meaning cannot be read (say ``--input``), or an
            output range that probing cannot tell (say ``--output-range``).
    """
    import onnx

    from accelkit.loading.sidecars import stored_spec_text

    meta = {p.key: p.value for p in model.metadata_props}
    if "accelkit.spec" in meta:
        stored = stored_spec_text(meta["accelkit.spec"], path, "its accelkit.spec metadata")
        if stored is not None:
            return GeneratorSpec.from_dict(stored)
    init_names = {i.name for i in model.graph.initializer}
    inputs: list[InputSpec] = []
    problems: dict[str, str] = {}
    dynamic_hw = False
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        per = dims[1:]
        if tt.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            problems[vi.name] = (
                f"{path}: input {vi.name!r} is an integer label and the number of classes is unknown; pass --input {vi.name}:int:CLASSES"
            )
            inputs.append(InputSpec(vi.name, "label", (), "int64", None))
            continue
        if not dims or any(d is None for d in per):
            dynamic_hw = dynamic_hw or (len(dims) == 4 and dims[1] is not None)
            problems[vi.name] = (
                f"{path}: input {vi.name!r} has shape {['?' if d is None else d for d in dims]}; give the size to run it at with "
                f"--input {vi.name}:{dims[1] if len(dims) == 4 and dims[1] else 'C'}xHxW"
            )
            inputs.append(InputSpec(vi.name, "latent", ()))
            continue
        shape = tuple(int(d) for d in per)  # type: ignore[arg-type]
        if math.prod(shape) > MAX_ELEMENTS:
            raise SpecError(
                f"{path}: input {vi.name!r} declares dimension {max(shape):,} ({math.prod(shape):,} values per sample); that is no generator input, check the file"
            )
        kind = "image" if len(shape) == 3 and shape[1] > 1 else "latent"
        inputs.append(InputSpec(vi.name, kind, shape))  # type: ignore[arg-type]
    if given:
        inputs = merge_inputs(inputs, given)
    for inp in inputs:
        if inp.name in problems and not any(g.name == inp.name for g in given):
            raise SpecError(problems[inp.name])
    inferred: list[tuple[str, str]] = [
        ("inputs", "ONNX graph inputs" + (" and --input" if given else ""))
    ]
    spec = GeneratorSpec(inputs=tuple(inputs))
    if dynamic_hw and spec.spatial_inputs:
        from accelkit.spec import default_hw_range

        h, w = spec.spatial_inputs[0].shape[1:]
        spec = replace(spec, hw_range=default_hw_range(max(h, w)))
        inferred.append(
            (
                "hw_range",
                "dynamic height/width in the ONNX graph (range assumed; set it with --hw-range)",
            )
        )
    outs = model.graph.output
    d = (
        [x.dim_value if x.HasField("dim_value") else 0 for x in outs[0].type.tensor_type.shape.dim]
        if outs
        else []
    )
    run = _onnx_run_fn(model)
    if len(d) == 4 and all(d[1:]) and not dynamic_hw:
        spec = replace(spec, output_shape=tuple(d[1:]))
        inferred.append(("output_shape", "ONNX graph output"))
    elif run is not None:
        from accelkit.sampler import LatentSampler

        feeds = LatentSampler(spec, seed=0).inputs(0, 1)
        out = call_with_timeout(lambda: run(feeds), "probed its output in ONNX Runtime")
        spec = replace(spec, output_shape=tuple(int(x) for x in out.shape[1:]))
        inferred.append(("output_shape", "probing in ONNX Runtime"))
    if output_range is not None:
        spec = replace(spec, output_range=output_range)
    elif run is not None:
        rng, how = probe_output_range(run, spec)
        spec = replace(spec, output_range=rng)
        inferred.append(("output_range", how + " in ONNX Runtime"))
    else:
        inferred.append(
            (
                "output_range",
                "default [-1, 1]: onnxruntime is not installed to probe it (override with --output-range)",
            )
        )
    return replace(spec, inferred=tuple(inferred))


def _onnx_run_fn(model: Any) -> Any:
    """``feeds -> output`` through ONNX Runtime on CPU, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(
            model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - an ONNX file ORT cannot open: say so where it is run
        log.warning(
            "ONNX Runtime cannot open the model to probe it (%s)",
            str(exc).splitlines()[0][:160] if str(exc) else exc,
        )
        return None
    out_name = sess.get_outputs()[0].name
    feed_names = {i.name for i in sess.get_inputs()}

    def run(feeds: dict[str, Any]) -> Any:
        return sess.run([out_name], {k: v for k, v in feeds.items() if k in feed_names})[0]

    return run


def onnx_precision(model: Any) -> str:
    """``int8`` when the graph has QuantizeLinear nodes, ``fp16`` with float16 weights, else ``fp32``."""
    import onnx

    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def load(req: LoadRequest) -> Artifact:
    """Load an ONNX file as an ``onnx`` artifact (spec from its metadata, the graph, or probing).

    Raises:
        LoadError: Not a readable ONNX model, or an empty graph.
        SpecError: Inputs or range that cannot be read (the message names the flag).
    """
    import onnx

    from accelkit.loading.sidecars import bound_sidecar, load_pass_options

    p = req.path
    try:
        model = onnx.load(str(p), load_external_data=True)
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
        why = one_line(exc)
        if p.suffix.lower() != ".onnx":  # only its first byte looked like ONNX
            raise LoadError(
                f"{p} is not a model file accelkit can read (expected TorchScript, .pt2, ONNX, a torch.save checkpoint or safetensors; "
                f"it does not parse as ONNX either: {why})"
            ) from None
        raise LoadError(f"{p} is not a readable ONNX model ({why}); re-export it") from None
    if not model.graph.node:
        raise LoadError(
            f"{p} parses as ONNX but has an empty graph; it is not a model (truncated or wrong file?)"
        )
    side = bound_sidecar(p, req.sha256)
    spec = spec_from_onnx(model, p, req.inputs, req.output_range)
    passes: list[dict[str, Any]] = [{"name": "load", "options": load_pass_options(req)}]
    meta: dict[str, Any] = {}
    if side:
        recorded = side.get("passes")
        passes = (
            [dict(x) for x in recorded if isinstance(x, dict)] if isinstance(recorded, list) else []
        )
        passes = passes or [{"name": "load", "options": load_pass_options(req)}]
        side_meta = side.get("meta")
        meta.update(side_meta if isinstance(side_meta, dict) else {})
    meta["opset"] = max(
        (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None
    )
    spec = (
        apply_overrides(
            spec,
            req.inputs,
            req.output_range,
            req.latent_dist,  # type: ignore[arg-type]
            req.truncation_psi,
            req.hw_range,
        )
        or spec
    )
    source = side.get("source") if side else None
    source_sha = side.get("source_sha256") if side else None
    return Artifact(
        format="onnx",
        spec=spec,
        path=p,
        precision=onnx_precision(model),
        source=source if isinstance(source, str) and source else str(p),
        source_sha256=source_sha if isinstance(source_sha, str) and source_sha else req.sha256,
        passes=passes,
        meta=meta,
    )


__all__ = ["load", "onnx_precision", "spec_from_onnx"]
