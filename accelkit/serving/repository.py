"""A standard Triton model repository for one accelkit artifact.

Layout (what ``tritonserver --model-repository DIR`` and the Triton containers load)::

    DIR/<name>/config.pbtxt
    DIR/<name>/1/model.onnx                     (platform onnxruntime_onnx)  or  model.plan (tensorrt_plan)
    DIR/<name>/1/model.onnx.accelkit.json       the artifact's sidecar: how the file was made

``config.pbtxt`` is Triton's ``ModelConfig`` protobuf in text form: inputs and outputs
with the graph's names, dtypes and per-sample dims (the batch dimension becomes
``max_batch_size``; a dynamic height/width becomes ``-1``; a per-sample scalar such as
a class label becomes ``dims: [ 1 ]`` with ``reshape: { shape: [ ] }``),
``dynamic_batching`` with preferred batch sizes, and ``instance_group``. The text is
written here without protobuf; when ``tritonclient`` is installed it is parsed with
Triton's own ``ModelConfig`` message before anything is written.

The model folder is built in a temporary folder beside it and renamed into place, so a
failed write never leaves half a model that Triton would try to load.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact, sidecar_path
from accelkit.errors import InputError, LoadError
from accelkit.files import storage_error
from accelkit.serving.options import InstanceKind, TritonRepoOptions, check_model_name

log = logging.getLogger(__name__)

#: ONNX TensorProto element type -> Triton data type.
ONNX_TO_TRITON: dict[int, str] = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}
#: TensorRT ``DataType`` name (as recorded in an engine's sidecar ``io_tensors``) -> Triton data type.
TRT_TO_TRITON: dict[str, str] = {
    "FLOAT": "TYPE_FP32",
    "HALF": "TYPE_FP16",
    "BF16": "TYPE_BF16",
    "INT8": "TYPE_INT8",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
}
#: Triton data type -> numpy dtype name.
TRITON_TO_NUMPY: dict[str, str] = {
    "TYPE_FP32": "float32",
    "TYPE_FP16": "float16",
    "TYPE_FP64": "float64",
    "TYPE_INT8": "int8",
    "TYPE_INT16": "int16",
    "TYPE_INT32": "int32",
    "TYPE_INT64": "int64",
    "TYPE_UINT8": "uint8",
    "TYPE_UINT16": "uint16",
    "TYPE_UINT32": "uint32",
    "TYPE_UINT64": "uint64",
    "TYPE_BOOL": "bool",
}
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "trt": ("tensorrt_plan", "model.plan")}
DEFAULT_MAX_BATCH = 64


@dataclass(frozen=True)
class TensorConfig:
    """One input or output of a Triton model config.

    Attributes:
        name: Tensor name in the model file.
        data_type: Triton type, e.g. ``TYPE_FP32``.
        dims: Per-sample dims (the batch dimension excluded); ``-1`` where dynamic.
        reshape: The shape the model sees when it differs from ``dims`` (``()`` for a
            per-sample scalar sent as ``dims: [ 1 ]``); None when equal.
    """

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None

    def pbtxt(self, indent: str = "  ") -> str:
        """The ``{ name: ... }`` block of ``input``/``output``."""
        lines = [
            f"{indent}{{",
            f'{indent}  name: "{self.name}"',
            f"{indent}  data_type: {self.data_type}",
            f"{indent}  dims: [ {', '.join(map(str, self.dims))} ]",
        ]
        if self.reshape is not None:
            lines.append(f"{indent}  reshape: {{ shape: [ {', '.join(map(str, self.reshape))} ] }}")
        lines.append(f"{indent}}}")
        return "\n".join(lines)


@dataclass
class ModelRepoConfig:
    """Everything ``config.pbtxt`` says.

    Attributes:
        name: Model name (the folder name).
        platform: ``onnxruntime_onnx`` or ``tensorrt_plan``.
        max_batch_size: Largest batch Triton sends to one execution.
        inputs, outputs: The tensors.
        preferred_batch_sizes: Sizes the dynamic batcher aims for.
        max_queue_delay_us: How long a request may wait to be batched, microseconds.
        instance_count: Model instances.
        instance_kind: ``KIND_CPU`` or ``KIND_GPU``.
        parameters: Backend parameters (string values), e.g. ORT's ``intra_op_thread_count``.
        comments: ``#`` lines written first (provenance).
    """

    name: str
    platform: str
    max_batch_size: int
    inputs: list[TensorConfig]
    outputs: list[TensorConfig]
    preferred_batch_sizes: list[int] = field(default_factory=list)
    max_queue_delay_us: int = 500
    instance_count: int = 1
    instance_kind: str = "KIND_CPU"
    parameters: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def to_pbtxt(self) -> str:
        """``config.pbtxt`` text (Triton's ``ModelConfig`` in protobuf text format)."""
        out = [f"# {c}" for c in self.comments]
        out += [
            f'name: "{self.name}"',
            f'platform: "{self.platform}"',
            f"max_batch_size: {self.max_batch_size}",
        ]
        out += ["input [", ",\n".join(t.pbtxt() for t in self.inputs), "]"]
        out += ["output [", ",\n".join(t.pbtxt() for t in self.outputs), "]"]
        out.append("dynamic_batching {")
        if self.preferred_batch_sizes:
            out.append(
                f"  preferred_batch_size: [ {', '.join(map(str, self.preferred_batch_sizes))} ]"
            )
        out += [f"  max_queue_delay_microseconds: {self.max_queue_delay_us}", "}"]
        out += [
            "instance_group [",
            "  {",
            f"    count: {self.instance_count}",
            f"    kind: {self.instance_kind}",
            "  }",
            "]",
        ]
        for k, v in sorted(self.parameters.items()):
            out.append(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}')
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- I/O
def _dims(values: Sequence[int | None], where: str) -> tuple[int, ...]:
    """Per-sample dims from a full shape: the batch dimension must be dynamic."""
    if not values:
        raise InputError(
            f"{where} is a scalar without a batch dimension; export with a dynamic batch (accelkit export)"
        )
    batch = values[0]
    if batch is not None and batch > 0:
        raise InputError(
            f"{where} has a fixed batch of {batch}; Triton batches requests along a dynamic first dimension, re-export with accelkit export"
        )
    return tuple(int(d) if d is not None and d > 0 else -1 for d in values[1:])


def _tensor(name: str, data_type: str, dims: tuple[int, ...]) -> TensorConfig:
    if not dims:  # a per-sample scalar (class label): Triton needs a non-empty shape
        return TensorConfig(name, data_type, (1,), reshape=())
    return TensorConfig(name, data_type, dims)


def onnx_io(path: Path) -> tuple[list[TensorConfig], list[TensorConfig]]:
    """Inputs and outputs of an ONNX graph (initializers excluded), as Triton tensors.

    Raises:
        LoadError: The file cannot be read as ONNX.
        InputError: A fixed batch dimension or an unsupported element type.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types
        raise LoadError(
            f"cannot read {path} as ONNX ({type(exc).__name__}); check the file with accelkit info"
        ) from None
    inits = {i.name for i in model.graph.initializer}

    def conv(vi: Any, kind: str) -> TensorConfig:
        tt = vi.type.tensor_type
        dtype = ONNX_TO_TRITON.get(tt.elem_type)
        if dtype is None:
            raise InputError(
                f"{path}: {kind} {vi.name!r} has ONNX element type {tt.elem_type}, which Triton cannot carry"
            )
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        return _tensor(vi.name, dtype, _dims(dims, f"{path}: {kind} {vi.name!r}"))

    return [conv(v, "input") for v in model.graph.input if v.name not in inits], [
        conv(v, "output") for v in model.graph.output
    ]


def engine_io(artifact: Artifact) -> tuple[list[TensorConfig], list[TensorConfig]]:
    """Inputs and outputs of a TensorRT engine from its sidecar (``meta.io_tensors``, recorded by ``accelkit build``).

    Raises:
        InputError: The sidecar does not record the engine's tensors.
    """
    io = artifact.meta.get("io_tensors")
    if not isinstance(io, dict) or not io:
        raise InputError(
            f"{artifact.path}: its sidecar does not record the engine's I/O tensors; rebuild it with accelkit build"
        )
    ins: list[TensorConfig] = []
    outs: list[TensorConfig] = []
    for name, t in io.items():
        dtype = TRT_TO_TRITON.get(str(t.get("dtype", "")).upper())
        if dtype is None:
            raise InputError(
                f"{artifact.path}: tensor {name!r} has TensorRT type {t.get('dtype')!r}, which Triton cannot carry"
            )
        shape = [int(d) if int(d) > 0 else None for d in t.get("shape", [])]
        (ins if t.get("mode") == "input" else outs).append(
            _tensor(name, dtype, _dims(shape, f"{artifact.path}: tensor {name!r}"))
        )
    return ins, outs


def _check_against_spec(artifact: Artifact, inputs: list[TensorConfig]) -> None:
    """The graph's inputs must be the spec's, with the same static per-sample shapes."""
    by_name = {t.name: t for t in inputs}
    for inp in artifact.spec.inputs:
        t = by_name.get(inp.name)
        if t is None:
            raise InputError(
                f"{artifact.path}: the model has no input {inp.name!r} (it has {sorted(by_name)}); give the model's input names with --input"
            )
        want = tuple(inp.shape) if inp.shape else (1,)
        if len(t.dims) != len(want) or any(d != -1 and d != w for d, w in zip(t.dims, want)):
            raise InputError(
                f"{artifact.path}: input {inp.name!r} has per-sample dims {list(t.dims)} in the model, the spec says {list(want)}; fix --input"
            )


# --------------------------------------------------------------------- the config
def batch_range_of(artifact: Artifact) -> tuple[int, int, int] | None:
    """The ``(min, opt, max)`` batch range recorded when the artifact was made, if any."""
    cand = artifact.meta.get("batch_range")
    if cand is None:
        for p in reversed(artifact.passes):
            cand = (p.get("options") or {}).get("batch_range") if isinstance(p, dict) else None
            if cand is not None:
                break
    try:
        lo, opt, hi = (int(x) for x in cand)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (lo, opt, hi)


def best_bench_batch(results: Path, backend: str, precision: str, max_batch: int) -> int:
    """The batch size with the highest median images/sec among ``results``' ok in-process rows of ``backend``/``precision``.

    Raises:
        InputError: The report has no such row (at or below ``max_batch``).
    """
    from accelkit.benchmark.report import Report

    report = Report.load(results)
    rows = [
        r
        for r in report.rows
        if r.status == "ok"
        and r.backend == backend
        and not r.variant
        and r.precision == precision
        and r.batch_size <= max_batch
        and getattr(r, "scenario", "in_process") == "in_process"
        and r.images_per_sec
    ]
    if not rows:
        raise InputError(
            f"{results} has no measured {backend} {precision} rows at batch <= {max_batch}; bench this artifact first or give --preferred-batch"
        )
    return max(rows, key=lambda r: r.images_per_sec or 0.0).batch_size


def build_config(artifact: Artifact, options: TritonRepoOptions | None = None) -> ModelRepoConfig:
    """The Triton model config of an ONNX or TensorRT artifact.

    Args:
        artifact: An ``onnx`` or ``trt`` artifact with a file.
        options: Name, batching and instance settings.

    Raises:
        InputError: A torch artifact (export it first), a fixed-batch graph, inputs that
            do not match the spec, a preferred batch above the max.
    """
    opts = (options or TritonRepoOptions()).validated()
    if artifact.format not in PLATFORMS or artifact.path is None:
        raise InputError(
            f"a Triton model repository holds ONNX or TensorRT files, got a {artifact.format} artifact; export it first (accelkit export GEN --triton-repo DIR)"
        )
    platform, _ = PLATFORMS[artifact.format]
    ins, outs = onnx_io(artifact.path) if artifact.format == "onnx" else engine_io(artifact)
    _check_against_spec(artifact, ins)
    name = opts.name or artifact.path.name.split(".")[0]
    check_model_name(name)
    br = batch_range_of(artifact)
    max_batch = opts.max_batch or (br[2] if br else DEFAULT_MAX_BATCH)
    if artifact.format == "trt" and br is not None and max_batch > br[2]:
        raise InputError(
            f"--max-batch {max_batch} exceeds the engine's profile max {br[2]}; lower it or rebuild with --batch-range"
        )
    backend = "trt" if artifact.format == "trt" else "ort"
    if opts.preferred_batches:
        preferred = sorted(set(opts.preferred_batches))
    elif opts.bench_results is not None:
        preferred = [best_bench_batch(opts.bench_results, backend, artifact.precision, max_batch)]
    else:
        preferred = [min(br[1], max_batch)] if br else []
    if any(b > max_batch for b in preferred):
        raise InputError(
            f"preferred batch sizes {preferred} exceed max_batch_size {max_batch}; raise --max-batch"
        )
    kind = InstanceKind(opts.kind)
    if kind == InstanceKind.auto:
        kind = InstanceKind.gpu if artifact.format == "trt" else InstanceKind.cpu
    if artifact.format == "trt" and kind != InstanceKind.gpu:
        raise InputError("a TensorRT engine runs on the GPU only; use --kind gpu (or auto)")
    params: dict[str, str] = {"accelkit_precision": artifact.precision}
    if opts.threads is not None and artifact.format == "onnx":
        params["intra_op_thread_count"] = str(opts.threads)
    sha = artifact.source_sha256 or "unknown"
    comments = [
        f"Triton model config written by accelkit for {artifact.path.name} ({artifact.format} {artifact.precision}).",
        f"Provenance: 1/{PLATFORMS[artifact.format][1]}{'.accelkit.json'} (source sha256 {sha[:16]}).",
    ]
    return ModelRepoConfig(
        name=name,
        platform=platform,
        max_batch_size=max_batch,
        inputs=ins,
        outputs=outs,
        preferred_batch_sizes=preferred,
        max_queue_delay_us=opts.max_queue_delay_us,
        instance_count=opts.instances,
        instance_kind="KIND_GPU" if kind == InstanceKind.gpu else "KIND_CPU",
        parameters=params,
        comments=comments,
    )


def parse_config(text: str) -> Any:
    """Parse ``config.pbtxt`` text with Triton's own ``ModelConfig`` protobuf (from ``tritonclient``).

    Returns:
        The ``ModelConfig`` message.

    Raises:
        MissingDependencyError: tritonclient is not installed (the ``serve`` extra).
        InputError: The text is not a valid ``ModelConfig``.
    """
    from google.protobuf import text_format

    from accelkit.serving.deps import require_serve

    pb = require_serve("tritonclient.grpc.model_config_pb2", "checking a Triton model config")
    msg = pb.ModelConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        raise InputError(
            f"the Triton model config does not parse as ModelConfig ({exc}); this is an accelkit bug, please report it"
        ) from None
    return msg


def _check_with_protobuf(text: str) -> str | None:
    """Parse with Triton's protobuf when tritonclient is installed; returns what checked it (None: not checked)."""
    try:
        import tritonclient.grpc.model_config_pb2  # noqa: F401
    except ImportError:
        return None
    parse_config(text)
    from importlib import metadata

    try:
        return f"tritonclient {metadata.version('tritonclient')} ModelConfig"
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "tritonclient ModelConfig"


# ----------------------------------------------------------------------- writing
@dataclass
class ModelRepository:
    """A model folder written into a Triton model repository.

    Attributes:
        repository: The repository folder (``--model-repository``).
        model_dir: ``repository/<name>``.
        config_path: Its ``config.pbtxt``.
        model_path: ``<name>/1/model.onnx`` or ``model.plan``.
        sidecar: The provenance copy beside the model file (None when the artifact had none).
        config: What the config says.
        checked_with: What parsed the config before it was written (None: tritonclient not installed).
    """

    repository: Path
    model_dir: Path
    config_path: Path
    model_path: Path
    sidecar: Path | None
    config: ModelRepoConfig
    checked_with: str | None


def _external_data(path: Path) -> list[Path]:
    """Files an ONNX model's initializers live in (``location`` of external data)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    locs = {
        e.value
        for t in model.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    return [path.parent / loc for loc in sorted(locs)]


def write_model_repository(
    artifact: Artifact, repository: str | os.PathLike[str], options: TritonRepoOptions | None = None
) -> ModelRepository:
    """Write ``repository/<name>/{config.pbtxt, 1/model.onnx|model.plan, 1/<model>.accelkit.json}``.

    The repository folder is created when missing; other models in it are left alone.
    The model folder appears whole or not at all (built beside it, then renamed).

    Args:
        artifact: An ONNX or TensorRT artifact with a file.
        repository: The model repository folder.
        options: :class:`TritonRepoOptions`.

    Returns:
        :class:`ModelRepository`.

    Raises:
        InputError: ``<name>`` exists and ``options.force`` is False, or see :func:`build_config`.
        StorageError: The folder cannot be written.
    """
    opts = (options or TritonRepoOptions()).validated()
    cfg = build_config(artifact, opts)
    text = cfg.to_pbtxt()
    checked = _check_with_protobuf(text)
    repo = Path(repository)
    if repo.exists() and not repo.is_dir():
        raise InputError(f"--triton-repo {repo} is a file; give a folder")
    model_dir = repo / cfg.name
    if model_dir.exists() and not opts.force:
        raise InputError(
            f"{model_dir} already exists; pass --force to replace it or --name to add another model"
        )
    assert artifact.path is not None
    src = artifact.path
    extra = _external_data(src) if artifact.format == "onnx" else []
    missing = [p for p in extra if not p.is_file()]
    if missing:
        raise LoadError(
            f"{src} refers to external data {missing[0].name} that is not beside it; keep the .onnx and its data files together"
        )
    filename = PLATFORMS[artifact.format][1]
    side_src = sidecar_path(src)
    try:
        repo.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.name}.", dir=repo))
    except OSError as exc:
        raise storage_error(exc, f"cannot write in {repo}") from None
    try:
        try:
            (tmp / "1").mkdir()
            shutil.copyfile(src, tmp / "1" / filename)
            for p in extra:
                shutil.copyfile(p, tmp / "1" / p.name)
            if side_src.is_file():
                shutil.copyfile(side_src, tmp / "1" / sidecar_path(filename).name)
            (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o755)
            old = None
            if model_dir.exists():
                old = repo / f".{cfg.name}.old-{os.getpid()}"
                os.replace(model_dir, old)
            os.replace(tmp, model_dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise storage_error(exc, f"cannot write {model_dir}") from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    log.info("wrote Triton model %s (%s) into %s", cfg.name, cfg.platform, repo)
    return ModelRepository(
        repository=repo,
        model_dir=model_dir,
        config_path=model_dir / "config.pbtxt",
        model_path=model_dir / "1" / filename,
        sidecar=(model_dir / "1" / sidecar_path(filename).name) if side_src.is_file() else None,
        config=cfg,
        checked_with=checked,
    )


__all__ = [
    "ModelRepoConfig",
    "ModelRepository",
    "TensorConfig",
    "batch_range_of",
    "best_bench_batch",
    "build_config",
    "engine_io",
    "onnx_io",
    "parse_config",
    "write_model_repository",
]
