"""``Fp16``: ONNX-level float16 conversion with an FP32 fallback list.

Precision lives in the graph (TensorRT 11 has no FP16 builder flag): weights and
activations become float16, graph inputs and outputs stay float32 by default, and the
ops that overflow or lose too much in half precision stay float32:

* by op type: normalisations, reductions, exp/log/pow/sqrt/reciprocal, softmax;
* by calibration: every node whose output magnitude on the generator's own seeded
  inputs exceeds ``headroom * 65504`` (the fp16 maximum).

The kept list (op types and node names, with the reason) is recorded in the sidecar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import ExportError, require
from accelkit.options import Fp16Settings
from accelkit.passes.base import Pass, PassResult
from accelkit.passes.onnx_io import (
    check_graph,
    check_standard_ops,
    onnx_writer,
    set_metadata,
    short_error,
)
from accelkit.passes.verify import ort_session, require_fp32_onnx, verify_converted
from accelkit.sampler import LatentSampler

log = logging.getLogger(__name__)

FP16_MAX = 65504.0

#: Op types kept in float32: normalisations, reductions, and exp/pow-like ops whose
#: intermediate values overflow or lose precision in fp16.
DEFAULT_KEEP_FP32_OPS: tuple[str, ...] = (
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "LpNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceProd",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Softmax",
    "LogSoftmax",
    "Erf",
)


def activation_peaks(model: Any, spec: Any, n: int = 16, seed: int = 0) -> dict[str, float]:
    """Max |value| of every float32 tensor (graph inputs and node outputs) over ``n`` seeded samples.

    Returns:
        Tensor name -> peak absolute value (``inf`` when it already overflows in fp32).
    """
    import onnx

    m = onnx.shape_inference.infer_shapes(model)
    known = {o.name for o in m.graph.output}
    vi = {v.name: v for v in m.graph.value_info}
    for node in m.graph.node:
        for o in node.output:
            if (
                o in vi
                and o not in known
                and vi[o].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            ):
                m.graph.output.append(vi[o])
                known.add(o)
    sess = ort_session(m.SerializeToString())
    names = [o.name for o in sess.get_outputs()]
    peaks: dict[str, float] = {}
    sampler = LatentSampler(spec, seed=seed, batch_size=min(n, 8))
    for feeds in sampler.batches(n):
        outs = sess.run(names, feeds)
        for name, val in list(zip(names, outs)) + list(feeds.items()):
            arr = np.asarray(val)
            if not np.issubdtype(arr.dtype, np.floating) or arr.size == 0:
                continue
            peak = float(np.max(np.abs(arr))) if np.isfinite(arr).all() else float("inf")
            peaks[name] = max(peaks.get(name, 0.0), peak)
    return peaks


def overflowing_nodes(model: Any, peaks: dict[str, float], limit: float) -> dict[str, float]:
    """Nodes that read or write a tensor whose peak exceeds ``limit`` -> that peak.

    Both sides count: the float16 converter casts a kept node's output back to fp16
    for its consumers, so a consumer of an overflowing tensor must stay fp32 too.
    """
    hits: dict[str, float] = {}
    for node in model.graph.node:
        peak = max((peaks.get(t, 0.0) for t in list(node.input) + list(node.output)), default=0.0)
        if peak > limit:
            hits[node.name] = peak
    return hits


def collapse_cast_round_trips(graph: Any) -> int:
    """Remove ``Cast(fp32->fp16) -> Cast(fp16->fp32)`` pairs between two fp32 nodes.

    The float16 converter casts every kept node's output to fp16 and back for the next
    kept node; that round trip overflows exactly the values the node was kept for.

    Returns:
        How many fp16->fp32 casts were bypassed.
    """
    import onnx

    def cast_to(node: Any) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    drop: set[int] = set()
    for a in graph.node:
        if cast_to(a) != onnx.TensorProto.FLOAT16:
            continue
        users = consumers.get(a.output[0], [])
        backs = [b for b in users if cast_to(b) == onnx.TensorProto.FLOAT]
        for b in backs:
            if b.output[0] in outputs:
                continue
            rename[b.output[0]] = a.input[0]
            drop.add(id(b))
        if (
            len(backs) == len(users)
            and all(id(b) in drop for b in backs)
            and a.output[0] not in outputs
        ):
            drop.add(id(a))
    if not rename:
        return 0
    keep = []
    for node in graph.node:
        if id(node) in drop:
            continue
        copy = type(node)()
        copy.CopyFrom(node)
        for k, name in enumerate(copy.input):
            if name in rename:
                copy.input[k] = rename[name]
        keep.append(copy)
    del graph.node[:]
    graph.node.extend(keep)
    return len(rename)


def toposort(graph: Any) -> None:
    """Sort ``graph.node`` topologically in place (the float16 converter appends its
    input casts at the end, which onnx.checker rejects).

    Raises:
        ExportError: The graph has a cycle.
    """
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in available})[:3]
            raise ExportError(
                f"the converted graph has unresolved inputs {missing}; report this model to accelkit"
            )
        pending = rest
    copies = [type(n)() for n in ordered]
    for dst, src in zip(copies, ordered):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(copies)


#: The fp16 recipe's defaults (:class:`~accelkit.options.Fp16Settings` owns them).
_RECIPE = Fp16Settings()


class Fp16(Pass):
    """Convert an fp32 ONNX artifact to float16, verify it, write it with its sidecar.

    Args:
        out: Destination ``.onnx`` path.
        force: Overwrite an existing file.
        keep_io_types: Keep graph inputs/outputs float32 (default) so callers need no casts.
        keep_ops: Op types kept in float32 (default :data:`DEFAULT_KEEP_FP32_OPS`).
        keep_nodes: Extra node names kept in float32.
        calibrate: Keep nodes whose seeded activations exceed ``headroom * 65504``.
        calib_samples: Samples used for that calibration.
        headroom: Fraction of the fp16 maximum allowed before a node is kept in fp32.
        verify: Compare with the reference (the torch model when the artifact carries
            it, else the fp32 ONNX in ONNX Runtime).
        tolerance: Max abs error allowed (output units); default for fp16.
        batch_range: Batch sizes to verify at (min and a larger one).
        seed: Seed of calibration and verification inputs.
        progress: Called with a short message at each step.
    """

    name = "Fp16"

    def __init__(
        self,
        out: str | Path,
        *,
        force: bool = False,
        keep_io_types: bool = True,
        keep_ops: Sequence[str] | None = None,
        keep_nodes: Sequence[str] = (),
        calibrate: bool = True,
        calib_samples: int = _RECIPE.calib_samples,
        headroom: float = _RECIPE.headroom,
        verify: bool = True,
        tolerance: float | None = None,
        batch_range: tuple[int, int, int] | None = None,
        seed: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(out, force=force, progress=progress)
        self.keep_io_types = keep_io_types
        self.keep_ops = tuple(DEFAULT_KEEP_FP32_OPS if keep_ops is None else keep_ops)
        self.keep_nodes = tuple(keep_nodes)
        self.calibrate = calibrate
        self.calib_samples = calib_samples
        self.headroom = headroom
        self.verify = verify
        self.tolerance = tolerance
        self.batch_range = batch_range
        self.seed = seed

    def options(self) -> dict[str, Any]:
        """The options as recorded in the sidecar."""
        return {
            "keep_io_types": self.keep_io_types,
            "keep_ops": list(self.keep_ops),
            "keep_nodes": list(self.keep_nodes),
            "calibrate": self.calibrate,
            "calib_samples": self.calib_samples,
            "headroom": self.headroom,
            "tolerance": self.tolerance,
            "seed": self.seed,
        }

    def check(self, artifact: Artifact) -> None:
        """Refuse anything but an fp32 ONNX artifact."""
        require_fp32_onnx(artifact, "Fp16", "convert from the fp32 ONNX model")

    def _run_impl(self, artifact: Artifact, dest: Path) -> PassResult:
        """Convert, check and verify.

        Raises:
            ExportError: The conversion fails.
            NonFiniteOutputError: fp16 outputs hold NaN/Inf.
            VerificationError: Error beyond the tolerance.
        """
        import onnx

        f16: Any = require("onnxruntime.transformers.float16", "cpu", "fp16 conversion")
        model = onnx.load(str(artifact.path), load_external_data=True)
        check_standard_ops(model, str(artifact.path))

        kept: dict[str, str] = {}
        for node in model.graph.node:
            if node.op_type in self.keep_ops:
                kept[node.name] = f"op type {node.op_type}"
        for name in self.keep_nodes:
            kept[name] = "requested"
        peaks: dict[str, float] = {}
        if self.calibrate:
            self.progress(f"calibrating fp16 ranges on {self.calib_samples} seeded samples")
            peaks = activation_peaks(model, artifact.spec, self.calib_samples, self.seed)
            limit = self.headroom * FP16_MAX
            for node, peak in overflowing_nodes(model, peaks, limit).items():
                kept.setdefault(node, f"activation peak {peak:.3g} > {limit:.3g}")
        self.progress(f"converting to float16 ({len(kept)} nodes kept in float32)")
        try:
            converted = f16.convert_float_to_float16(
                model,
                keep_io_types=self.keep_io_types,
                op_block_list=list(
                    dict.fromkeys(list(f16.DEFAULT_OP_BLOCK_LIST) + list(self.keep_ops))
                ),
                node_block_list=sorted(kept),
            )
        except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
            raise ExportError(
                f"float16 conversion failed ({short_error(exc)}); keep the failing node in fp32 with --fp16-keep-node NAME"
            ) from None
        collapse_cast_round_trips(converted.graph)
        toposort(converted.graph)
        del converted.graph.value_info[
            :
        ]  # stale types from before the conversion; re-inferred on load
        set_metadata(converted, artifact, "fp16")
        check_graph(converted, "the fp16 graph")
        meta: dict[str, Any] = {
            "fp16": {
                "kept_fp32": [{"node": n, "reason": r} for n, r in sorted(kept.items())],
                "kept_fp32_count": len(kept),
                "fp16_nodes": sum(
                    1 for n in converted.graph.node if n.name not in kept and n.op_type != "Cast"
                ),
                "peak_activation": max(peaks.values()) if peaks else None,
            }
        }
        if self.verify:
            meta["verification"] = self._verify(converted, artifact)
        return PassResult(onnx_writer(converted), "onnx", "fp16", meta=meta)

    def _verify(self, converted: Any, artifact: Artifact) -> dict[str, Any]:
        return verify_converted(
            converted,
            artifact,
            "fp16",
            tolerance=self.tolerance,
            batch_range=self.batch_range,
            seed=self.seed,
            progress=self.progress,
        )
