"""INT8 sensitivity: which layer groups hurt the output most when quantized.

Each layer group (the quantizable nodes of one torch module scope, e.g. ``mapping.fcs``
or ``blocks.0``) is quantized **alone** with :class:`~accelkit.passes.int8.Int8` (every
other quantizable node excluded) and the result is compared with the fp32 ONNX model
on the same seeded :class:`~accelkit.sampler.LatentSampler` inputs (samples ``0 ..
n_eval-1``, disjoint from the calibration range). Groups are listed from most harmful
(lowest PSNR) to least. :func:`auto_exclude` then keeps in float the fewest of the most
harmful groups needed for the fully quantized model to reach a PSNR target.

Every quantized model lives in a temporary directory; nothing is written to the
working directory.
"""

from __future__ import annotations

import glob
import logging
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import ExportError, InputError, require
from accelkit.options import Int8Settings
from accelkit.passes.int8 import DEFAULT_INT8_OPS, Int8, match_nodes, node_scope
from accelkit.passes.onnx_io import quiet_exporters, short_error
from accelkit.passes.verify import ort_session, paired_error, require_fp32_onnx
from accelkit.sampler import LatentSampler

log = logging.getLogger(__name__)

#: Module-path components that name a group (``blocks.0.conv0.conv`` -> ``blocks.0``).
GROUP_DEPTH = 2
#: Calibration samples of each per-group quantization: a ranking needs fewer than the
#: INT8 recipe's count (callers cap it with :func:`sensitivity_calib`).
SENSITIVITY_CALIB = 64
#: Images each group's error is measured on.
SENSITIVITY_EVAL = 16
_DEFAULT_METHOD = Int8Settings().calib_method.value


def sensitivity_calib(recipe_calib: int) -> int:
    """Calibration samples of a sensitivity run for an INT8 recipe of ``recipe_calib``."""
    return min(int(recipe_calib), SENSITIVITY_CALIB)


#: Label of the row for the fully quantized model.
ALL_GROUPS = "(all quantized)"


@dataclass(frozen=True)
class GroupSensitivity:
    """How much quantizing one layer group (and nothing else) changes the output.

    Attributes:
        group: Group name (torch module path prefix, or the node name).
        nodes: Names of its quantizable nodes (as in the pre-processed graph).
        op_types: Op type -> count within the group.
        psnr_db: PSNR vs fp32 (dB, peak = output range width); ``inf`` when identical,
            ``None`` when the group could not be quantized alone (see ``note``).
        max_abs_err: Max abs error vs fp32, in output units (``None`` with ``psnr_db``).
        note: Why the measurement is missing, else ``""``.
    """

    group: str
    nodes: tuple[str, ...]
    op_types: dict[str, int]
    psnr_db: float | None
    max_abs_err: float | None
    note: str = ""

    @property
    def patterns(self) -> list[str]:
        """``--exclude`` patterns that match exactly this group's nodes."""
        return [glob.escape(n) for n in self.nodes]

    def to_dict(self) -> dict[str, Any]:
        psnr = self.psnr_db
        return {
            "group": self.group,
            "nodes": list(self.nodes),
            "op_types": dict(self.op_types),
            "psnr_db": None if psnr is None or math.isinf(psnr) else psnr,
            "max_abs_err": self.max_abs_err,
            "note": self.note,
        }


class SensitivityReport(list):
    """``list[GroupSensitivity]``, most harmful first, plus the fully quantized model's error.

    Attributes:
        all_psnr_db: PSNR of the model with every group quantized.
        all_max_abs_err: Its max abs error.
        options: The options the measurement used (calibration, evaluation samples, seed).
    """

    def __init__(
        self,
        rows: Sequence[GroupSensitivity] = (),
        *,
        all_psnr_db: float | None = None,
        all_max_abs_err: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(rows)
        self.all_psnr_db = all_psnr_db
        self.all_max_abs_err = all_max_abs_err
        self.options = dict(options or {})

    def to_dict(self) -> dict[str, Any]:
        psnr = self.all_psnr_db
        return {
            "options": self.options,
            "all_quantized": {
                "psnr_db": None if psnr is None or math.isinf(psnr) else psnr,
                "max_abs_err": self.all_max_abs_err,
            },
            "groups": [r.to_dict() for r in self],
        }


class AutoExclusion(list):
    """``list[str]`` of exclude patterns chosen by :func:`auto_exclude`, with what was measured.

    Attributes:
        groups: Names of the groups kept in float, most harmful first.
        psnr_db: Measured PSNR of the model quantized with these exclusions.
        max_abs_err: Its max abs error.
    """

    def __init__(
        self, patterns: Sequence[str], *, groups: Sequence[str], psnr_db: float, max_abs_err: float
    ) -> None:
        super().__init__(patterns)
        self.groups = list(groups)
        self.psnr_db = psnr_db
        self.max_abs_err = max_abs_err


def _path_of(node: Any, scopes: Mapping[str, str]) -> list[str]:
    """Module path components of a node: the dynamo scope, else a TorchScript-style name."""
    scope = scopes.get(node.name) or node_scope(node)
    if scope:
        return scope.split(".")
    name = node.name
    if name.startswith("/") and name.count("/") >= 2:  # /body/0/Conv -> body, 0
        parts = [p for p in name.split("/")[:-1] if p]
        if parts:
            return parts
    return []


def layer_groups(
    model: Any,
    op_types: Sequence[str] | None = None,
    *,
    scopes: Mapping[str, str] | None = None,
    depth: int = GROUP_DEPTH,
) -> dict[str, list[str]]:
    """Group the quantizable nodes of ``model`` by torch module scope.

    Args:
        model: An ``onnx.ModelProto``.
        op_types: Op types that count (default :data:`DEFAULT_INT8_OPS`; empty: all).
        scopes: Node name -> torch module path (default: read from the nodes' metadata,
            which the dynamo exporter writes; pass the original graph's when ``model``
            went through ORT pre-processing, which drops it).
        depth: Path components that name a group (``blocks.0`` for depth 2).

    Returns:
        Group name -> node names, in graph order. A node without a module path
        (dynamo scope, or a TorchScript-exporter name like ``/body/0/Conv``) is a
        group of its own.
    """
    ops = tuple(DEFAULT_INT8_OPS if op_types is None else op_types)
    scopes = scopes or {}
    groups: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or (
            ops and node.op_type not in ops
        ):
            continue
        parts = _path_of(node, scopes)
        key = (
            ".".join(parts[: max(1, depth)])
            if parts
            else (node.name or f"{node.op_type}#{len(groups)}")
        )
        groups.setdefault(key, []).append(node.name)
    return groups


def _prepared(artifact: Artifact, preprocess: bool) -> tuple[Any, dict[str, str]]:
    """The graph Int8 quantizes (after ORT pre-processing, as Int8 does) and the original scopes."""
    import onnx

    original = onnx.load(str(artifact.path), load_external_data=True)
    scopes = {n.name: node_scope(n) for n in original.graph.node}
    if not preprocess:
        return original, scopes
    q: Any = require("onnxruntime.quantization", "cpu", "int8 quantization")
    with tempfile.TemporaryDirectory(prefix="accelkit-sens-") as tmp:
        src, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        onnx.save_model(original, str(src))
        try:
            with quiet_exporters():
                q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            return onnx.load(str(pre), load_external_data=True), scopes
        except Exception as exc:  # noqa: BLE001 - best effort, like Int8
            log.warning(
                "quant_pre_process failed (%s); grouping the graph as exported", short_error(exc)
            )
            return original, scopes


class _Evaluator:
    """Runs models on fixed seeded inputs and compares them with the fp32 outputs."""

    def __init__(self, artifact: Artifact, n_eval: int, seed: int) -> None:
        static = next(
            (p.get("static_batch") for p in artifact.passes if p.get("static_batch")), None
        )
        batch = int(static) if static else min(8, n_eval)
        sampler = LatentSampler(artifact.spec, seed=seed)
        count = -(-n_eval // batch) * batch
        self.feeds = [sampler.inputs(s, batch) for s in range(0, count, batch)]
        self.value_range = artifact.spec.output_range
        self.ref = self._run(artifact.path)

    def _run(self, path: Any) -> np.ndarray:
        sess = ort_session(path)
        names = {i.name for i in sess.get_inputs()}
        out = sess.get_outputs()[0].name
        return np.concatenate(
            [
                np.asarray(
                    sess.run([out], {k: v for k, v in f.items() if k in names})[0], dtype=np.float32
                )
                for f in self.feeds
            ]
        )

    def error(self, path: Any) -> tuple[float, float]:
        m = paired_error(self.ref, self._run(path), self.value_range)
        return float(m["psnr_db"]), float(m["max_abs_err"])


@dataclass
class _Setup:
    artifact: Artifact
    groups: dict[str, list[str]]
    quantizable: list[str]
    evaluator: _Evaluator
    int8_kw: dict[str, Any] = field(default_factory=dict)
    base: set[str] = field(default_factory=set)
    kinds: dict[str, str] = field(default_factory=dict)

    def measure(self, exclude: Sequence[str]) -> tuple[float, float]:
        """Quantize with ``exclude`` (node names) kept float, return (PSNR, max abs err)."""
        patterns = sorted({glob.escape(n) for n in exclude})
        if set(exclude) >= set(self.quantizable):
            return math.inf, 0.0  # nothing quantized: the fp32 model itself
        with tempfile.TemporaryDirectory(prefix="accelkit-sens-") as tmp:
            out = Int8(Path(tmp) / "q.int8.onnx", exclude=patterns, verify=False, **self.int8_kw)(
                self.artifact
            )
            return self.evaluator.error(out.path)


def _setup(
    artifact: Artifact,
    *,
    groups: Mapping[str, Sequence[str]] | None,
    calib_samples: int,
    n_eval: int,
    seed: int,
    calib_method: str,
    per_channel: bool,
    op_types: Sequence[str] | None,
    exclude: Sequence[str],
    preprocess: bool,
    calib_cache: Any = None,
    calib_images: Any = None,
) -> _Setup:
    require_fp32_onnx(
        artifact, "the sensitivity report", "run the sensitivity report on the fp32 ONNX model"
    )
    if int(n_eval) < 1:
        raise InputError(f"n_eval {n_eval}: need at least one evaluation sample")
    ops = tuple(DEFAULT_INT8_OPS if op_types is None else op_types)
    model, scopes = _prepared(artifact, preprocess)
    all_groups = {
        k: list(v)
        for k, v in (
            groups if groups is not None else layer_groups(model, ops, scopes=scopes)
        ).items()
    }
    quantizable = [n for names in layer_groups(model, ops, scopes=scopes).values() for n in names]
    if groups is not None:
        known = set(quantizable)
        for g, names in all_groups.items():
            bad = [n for n in names if n not in known]
            if bad:
                raise InputError(
                    f"group {g!r}: node {bad[0]!r} is not a quantizable node of {artifact.path}"
                )
    if exclude:  # the user's own exclusions stay float everywhere and are not groups
        hits = match_nodes(model, list(exclude), scopes)
        missing = [p for p, names in hits.items() if not names]
        if missing:
            raise InputError(f"--exclude {missing[0]!r} matches no node")
        fixed = {n for names in hits.values() for n in names}
        all_groups = {g: [n for n in names if n not in fixed] for g, names in all_groups.items()}
        all_groups = {g: names for g, names in all_groups.items() if names}
        quantizable = [n for n in quantizable if n not in fixed]
        base = fixed
    else:
        base = set()
    if not all_groups:
        raise InputError(
            f"{artifact.path} has no quantizable node (op types {list(ops)}) left to measure"
        )
    kw = {
        "calib_samples": int(calib_samples),
        "calib_method": calib_method,
        "per_channel": per_channel,
        "op_types": ops,
        "preprocess": preprocess,
        "seed": int(seed),
        "calib_cache": calib_cache,
        "calib_images": calib_images,
    }
    kinds = {n.name: n.op_type for n in model.graph.node}
    return _Setup(
        artifact,
        all_groups,
        quantizable,
        _Evaluator(artifact, int(n_eval), int(seed)),
        kw,
        base,
        kinds,
    )


def _op_counts(model_ops: Mapping[str, str], names: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(model_ops.get(n, "?") for n in names).items()))


def sensitivity(
    fp32_artifact: Artifact,
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    calib_samples: int = SENSITIVITY_CALIB,
    n_eval: int = SENSITIVITY_EVAL,
    seed: int = 0,
    calib_method: str = _DEFAULT_METHOD,
    per_channel: bool = False,
    op_types: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    preprocess: bool = True,
    calib_cache: Any = None,
    calib_images: Any = None,
    progress: Callable[[str], None] | None = None,
) -> SensitivityReport:
    """Quantize one layer group at a time and rank the groups by the error each causes.

    Args:
        fp32_artifact: fp32 ONNX artifact (with its spec).
        groups: Group name -> node names (default :func:`layer_groups` of the graph Int8 quantizes).
        calib_samples: Calibration samples per quantization (as ``Int8``).
        n_eval: Seeded samples (``0 .. n_eval-1``) compared with fp32.
        seed: Seed of calibration and evaluation inputs.
        calib_method, per_channel, op_types, preprocess, calib_cache, calib_images: As ``Int8`` (the
            calibration is cached once and reused by every group's quantization).
        exclude: Patterns kept in float in every measurement (not measured as groups).
        progress: Called with a short message per step.

    Returns:
        A :class:`SensitivityReport` (a list of :class:`GroupSensitivity`), lowest PSNR
        first; groups that could not be quantized alone come last. Its ``all_psnr_db``
        is the PSNR with every group quantized.

    Raises:
        InputError: Not an fp32 ONNX artifact, bad ``groups``/``exclude``, no quantizable node.
        NonFiniteOutputError: A quantized model produced NaN/Inf.
    """
    say = progress or (lambda msg: None)
    s = _setup(
        fp32_artifact,
        groups=groups,
        calib_samples=calib_samples,
        n_eval=n_eval,
        seed=seed,
        calib_method=calib_method,
        per_channel=per_channel,
        op_types=op_types,
        exclude=exclude,
        preprocess=preprocess,
        calib_cache=calib_cache,
        calib_images=calib_images,
    )
    kinds, base = s.kinds, s.base
    rows: list[GroupSensitivity] = []
    total = len(s.groups)
    for i, (name, nodes) in enumerate(s.groups.items(), 1):
        say(f"sensitivity {i}/{total}: quantizing only {name} ({len(nodes)} nodes)")
        others = [n for n in s.quantizable if n not in set(nodes)]
        try:
            psnr, err = s.measure(sorted(base | set(others)))
            note = ""
        except ExportError as exc:  # e.g. ORT leaves the group unquantized on its own
            psnr, err, note = None, None, short_error(exc)
        rows.append(GroupSensitivity(name, tuple(nodes), _op_counts(kinds, nodes), psnr, err, note))
    say(f"sensitivity: quantizing all {total} groups")
    all_psnr, all_err = s.measure(sorted(base))
    rows.sort(
        key=lambda r: (
            r.psnr_db is None,
            r.psnr_db if r.psnr_db is not None else 0.0,
            -(r.max_abs_err or 0.0),
        )
    )
    options = {
        "calib_samples": int(calib_samples),
        "calib_method": calib_method,
        "per_channel": per_channel,
        "op_types": list(s.int8_kw["op_types"]),
        "exclude": list(exclude),
        "n_eval": int(n_eval),
        "seed": int(seed),
        "eval_samples": [0, len(s.evaluator.ref)],
    }
    return SensitivityReport(rows, all_psnr_db=all_psnr, all_max_abs_err=all_err, options=options)


def auto_exclude(
    fp32_artifact: Artifact,
    target_psnr_db: float,
    report: SensitivityReport | Sequence[GroupSensitivity] | None = None,
    *,
    calib_samples: int | None = None,
    n_eval: int | None = None,
    seed: int | None = None,
    calib_method: str | None = None,
    per_channel: bool | None = None,
    op_types: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    preprocess: bool = True,
    calib_cache: Any = None,
    calib_images: Any = None,
    progress: Callable[[str], None] | None = None,
) -> AutoExclusion:
    """The fewest of the most harmful groups to keep in float so the full model reaches ``target_psnr_db``.

    Greedy: starting from everything quantized, groups are excluded in the report's order
    (most harmful first) and the full model is re-quantized and re-measured after each,
    until its PSNR (same seeded inputs as the report) is >= the target.

    Args:
        fp32_artifact: The fp32 ONNX artifact the report was measured on.
        target_psnr_db: PSNR (dB) to reach; must be positive.
        report: From :func:`sensitivity` (computed here when ``None``).
        calib_samples, n_eval, seed, calib_method, per_channel, op_types, exclude, calib_cache, calib_images:
            Default to the options the report used (``sensitivity``'s defaults otherwise).
        progress: Called with a short message per step.

    Returns:
        :class:`AutoExclusion`: exclude patterns (escaped node names; empty when the
        fully quantized model already meets the target) with the groups and the PSNR measured.

    Raises:
        InputError: Non-positive target, or the target is unreachable.
    """
    target = float(target_psnr_db)
    if not target > 0 or math.isnan(target):
        raise InputError(
            f"--auto-exclude {target_psnr_db}: give a positive PSNR target in dB, e.g. 35"
        )
    say = progress or (lambda msg: None)
    opts = dict(getattr(report, "options", {}) or {})

    def pick(val: Any, key: str, default: Any) -> Any:
        return val if val is not None else opts.get(key, default)

    kw: dict[str, Any] = {
        "calib_samples": pick(calib_samples, "calib_samples", SENSITIVITY_CALIB),
        "n_eval": pick(n_eval, "n_eval", SENSITIVITY_EVAL),
        "seed": pick(seed, "seed", 0),
        "calib_method": pick(calib_method, "calib_method", _DEFAULT_METHOD),
        "per_channel": pick(per_channel, "per_channel", False),
        "op_types": pick(op_types, "op_types", None),
        "exclude": tuple(pick(exclude, "exclude", ())),
        "preprocess": preprocess,
        "calib_cache": calib_cache,
        "calib_images": calib_images,
    }
    if report is None:
        report = sensitivity(fp32_artifact, progress=progress, **kw)
    order = [r for r in report if r.psnr_db is not None] + [r for r in report if r.psnr_db is None]
    s = _setup(fp32_artifact, groups={r.group: list(r.nodes) for r in order}, **kw)
    base = s.base
    all_psnr = getattr(report, "all_psnr_db", None)
    all_err = getattr(report, "all_max_abs_err", None)
    if all_psnr is None:
        all_psnr, all_err = s.measure(sorted(base))
    if all_psnr >= target:
        say(f"auto-exclude: fully quantized PSNR {all_psnr:.1f} dB already >= {target:g} dB")
        return AutoExclusion([], groups=[], psnr_db=all_psnr, max_abs_err=float(all_err or 0.0))
    kept: list[str] = []
    names: list[str] = []
    for k, row in enumerate(order, 1):
        kept += list(row.nodes)
        names.append(row.group)
        say(f"auto-exclude: keeping {k} group(s) in float ({row.group} added)")
        psnr, err = s.measure(sorted(base | set(kept)))
        if psnr >= target:
            return AutoExclusion(
                [glob.escape(n) for n in kept], groups=names, psnr_db=psnr, max_abs_err=err
            )
    raise InputError(
        f"--auto-exclude {target:g}: even with every measured group in float the PSNR stays below target; check the report"
    )


def _fmt_psnr(v: float | None) -> str:
    if v is None:
        return "n/a"
    return "inf" if math.isinf(v) else f"{v:.1f}"


def format_report(results: Sequence[GroupSensitivity], *, title: str | None = None) -> str:
    """A Markdown table (readable in a terminal): group, nodes, op types, PSNR dB, max abs err.

    Rows keep the order of ``results`` (most harmful first from :func:`sensitivity`);
    a :class:`SensitivityReport` adds a last row for the fully quantized model.
    """
    rows = [["#", "group", "nodes", "op types", "PSNR dB", "max abs err"]]
    for i, r in enumerate(results, 1):
        ops = ", ".join(f"{k} {v}" for k, v in r.op_types.items())
        err = "n/a" if r.max_abs_err is None else f"{r.max_abs_err:.3g}"
        rows.append(
            [
                str(i),
                r.group + (f" ({r.note})" if r.note else ""),
                str(len(r.nodes)),
                ops,
                _fmt_psnr(r.psnr_db),
                err,
            ]
        )
    all_psnr = getattr(results, "all_psnr_db", None)
    if all_psnr is not None:
        all_err = getattr(results, "all_max_abs_err", None)
        rows.append(
            [
                "",
                ALL_GROUPS,
                str(sum(len(r.nodes) for r in results)),
                "",
                _fmt_psnr(all_psnr),
                "n/a" if all_err is None else f"{all_err:.3g}",
            ]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    right = {0, 2, 4, 5}

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.rjust(w) if j in right else c.ljust(w)
                for j, (c, w) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if j in right else ("-" * (w + 2)) for j, w in enumerate(widths)
        )
        + "|"
    )
    out = [f"## {title}", ""] if title else []
    out += [line(rows[0]), sep] + [line(r) for r in rows[1:]]
    opts = getattr(results, "options", None)
    if opts:
        note = (
            f"Each group quantized alone (int8 Q/DQ, {opts.get('calib_method')}, {opts.get('calib_samples')} calibration samples); "
            f"PSNR vs fp32 on seeded samples {opts['eval_samples'][0]}..{opts['eval_samples'][1] - 1} (seed {opts.get('seed')}); "
            "most harmful first."
        )
        out += ["", note]
    return "\n".join(out) + "\n"
