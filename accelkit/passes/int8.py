"""``Int8``: static INT8 quantization of an fp32 ONNX generator (explicit Q/DQ).

The output is an ONNX file with ``QuantizeLinear``/``DequantizeLinear`` pairs
(``QuantFormat.QDQ``), symmetric signed int8 for activations and weights (what
TensorRT's explicit-precision mode needs, and what ONNX Runtime CPU runs), weights
inline (one file) and float32 graph inputs and outputs.

Calibration uses the generator's own inputs: :class:`~accelkit.sampler.LatentSampler`
batches (latents from the prior with truncation, uniform labels, smooth images), drawn
from a sample range disjoint from the one verification uses. After quantizing, the
model is compared with the fp32 reference on the same seeded inputs (PSNR, max abs
error); a PSNR far below fp16 level is recorded as a ``warning`` in the sidecar (some
generators, StyleGAN-like ones in particular, collapse in INT8) but only NaN/Inf or an
error beyond the tolerance fails.

Every intermediate file (ORT's pre-processed and augmented models, external data)
lives in a temporary directory; nothing is written to the working directory.

Calibration ranges are cached (ONNX Runtime's ``calibration_cache_path`` JSON) under
:func:`default_calib_cache_dir`, keyed by everything that determines them (the fp32
graph's bytes, pre-processing, ONNX Runtime version, method, samples, batch, seed, op
types and the input spec) but not by ``exclude`` or ``per_channel``, which do not change
activation ranges: re-quantizing the same model with other exclusions (the sensitivity
report does it once per layer group) calibrates once.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from accelkit.artifact import Artifact
from accelkit.cache import Cache, cache_dir, cache_key
from accelkit.errors import ExportError, InputError, require
from accelkit.files import sha256_file
from accelkit.options import Int8Settings
from accelkit.passes.base import Pass, PassResult
from accelkit.passes.onnx_io import (
    check_graph,
    check_standard_ops,
    onnx_writer,
    quiet_exporters,
    set_metadata,
    short_error,
)
from accelkit.passes.verify import require_fp32_onnx, verify_converted
from accelkit.sampler import LatentSampler
from accelkit.spec import GeneratorSpec
from accelkit.vocab import CALIB_METHODS

log = logging.getLogger(__name__)


#: Op types quantized by default: the GEMM-like ops that carry the compute (and that
#: TensorRT runs in int8). Elementwise ops stay float: Q/DQ around them only adds error.
DEFAULT_INT8_OPS: tuple[str, ...] = ("Conv", "ConvTranspose", "Gemm", "MatMul")

#: Sample index where calibration inputs start; verification uses samples from 0, so
#: the two never overlap (sample ``i`` depends only on ``(seed, i)``).
CALIB_OFFSET = 1 << 20

#: PSNR (dB) under which the sidecar carries a warning; fp16 exports sit well above 40 dB.
WARN_PSNR_DB = 30.0

#: Bump when the meaning of the calibration cache key changes.
CALIB_CACHE_SCHEMA = 1


def default_calib_cache_dir() -> Path:
    """Calibration-range cache: ``$ACCELKIT_CACHE_DIR/calibration`` or ``~/.cache/accelkit/calibration``."""
    return cache_dir("calibration")


def calib_cache_key(
    model_sha256: str, spec: GeneratorSpec, options: dict[str, Any], ort_version: str
) -> str:
    """Stable key of one calibration: sha256 of a canonical JSON document (64 hex chars)."""
    doc = {
        "schema": CALIB_CACHE_SCHEMA,
        "model_sha256": model_sha256,
        "onnxruntime": ort_version,
        "first_sample": CALIB_OFFSET,
        "spec_inputs": spec.to_dict().get("inputs"),
        **options,
    }
    return cache_key(doc)


class SamplerDataReader:
    """An ONNX Runtime ``CalibrationDataReader`` over seeded generator inputs.

    Args:
        spec: Generator spec (inputs and prior).
        n: Number of samples in all.
        seed: LatentSampler seed.
        batch_size: Samples per batch.
        start: Index of the first sample.
        input_names: Model input names to feed (default: every spec input).
        images: Per-sample values of the ``image`` inputs (``N x C x H x W``, ``N >= n``),
            replacing the sampler's smooth random images (see :func:`load_calib_images`).
    """

    def __init__(
        self,
        spec: GeneratorSpec,
        n: int,
        seed: int = 0,
        batch_size: int = 8,
        start: int = CALIB_OFFSET,
        input_names: Sequence[str] | None = None,
        images: np.ndarray | None = None,
    ) -> None:
        self.spec = spec
        self.images = images
        self.n = int(n)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.start = int(start)
        self.input_names = set(input_names) if input_names is not None else None
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        sampler = LatentSampler(self.spec, seed=self.seed, batch_size=self.batch_size)
        pos = 0
        for feeds in sampler.batches(self.n, start=self.start):
            count = len(next(iter(feeds.values())))
            if self.images is not None:
                for inp in self.spec.inputs:
                    if inp.kind == "image":
                        feeds[inp.name] = np.ascontiguousarray(self.images[pos : pos + count])
            pos += count
            if self.input_names is not None:
                feeds = {k: v for k, v in feeds.items() if k in self.input_names}
            yield feeds

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self._batches()


def load_calib_images(
    spec: GeneratorSpec, folder: str | os.PathLike[str], n: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """The first ``n`` images of ``folder`` (sorted, recursive) as the image input of ``spec``.

    Values are mapped to the spec's output range (the convention image-to-image
    generators follow, as :class:`~accelkit.sampler.LatentSampler` does).

    Returns:
        ``(N x C x H x W float32, record)`` where N = min(n, files) and the record holds the
        folder, the count and a sha256 over the files' names and bytes (for the cache key).

    Raises:
        InputError: The generator has no image input, or the folder has no readable image.
    """
    from accelkit.quality.images import input_images

    arr, record = input_images(spec, folder, n, "--calib-images")
    if record["files"] < n:
        log.warning(
            "%s holds %d images; calibrating on those instead of %d", folder, record["files"], n
        )
    return arr, record


@runtime_checkable
class CalibrationData(Protocol):
    """A custom source of INT8 calibration inputs (e.g. a denoiser's inputs collected along
    real sampling trajectories), used instead of the generator's seeded prior.

    ``identity()`` says what the samples are (JSON: kind, seed, a sha256 of the data...); it
    is recorded in the sidecar and keys the calibration cache, so two providers that give
    other samples never share cached ranges. ``batches(n, batch_size, input_names)`` yields
    feeds (graph input name -> numpy batch) of ``n`` samples in all, every batch of
    ``batch_size``.
    """

    def identity(self) -> dict[str, Any]: ...

    def batches(
        self, n: int, batch_size: int, input_names: Sequence[str]
    ) -> Iterable[dict[str, np.ndarray]]: ...


class ProviderDataReader:
    """ONNX Runtime's ``CalibrationDataReader`` over a :class:`CalibrationData` provider."""

    def __init__(
        self, provider: CalibrationData, n: int, batch_size: int, input_names: Sequence[str]
    ) -> None:
        self.provider = provider
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.input_names = list(input_names)
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = iter(self.provider.batches(self.n, self.batch_size, self.input_names))
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def _calibration_reader_class() -> type:
    """:class:`SamplerDataReader` registered as ORT's abstract ``CalibrationDataReader``."""
    q: Any = require("onnxruntime.quantization", "cpu", "int8 quantization")
    q.CalibrationDataReader.register(SamplerDataReader)
    q.CalibrationDataReader.register(ProviderDataReader)
    return SamplerDataReader


def calibration_batch(n: int, limit: int) -> int:
    """The largest batch size <= ``limit`` that divides ``n``.

    ORT's histogram calibrators (entropy, percentile) stack per-batch outputs and fail
    on a shorter last batch, so every calibration batch has the same size.
    """
    return next(b for b in range(max(1, min(limit, n)), 0, -1) if n % b == 0)


def node_scope(node: Any) -> str:
    """The torch module path of a node exported by the dynamo exporter (``mapping.fcs.0``), else ``""``."""
    import ast

    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [s for s in ast.literal_eval(p.value) if s]
            except (ValueError, SyntaxError):
                return ""
            return scopes[-2] if len(scopes) >= 2 else ""
    return ""


def match_nodes(
    model: Any, patterns: Sequence[str], scopes: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Pattern -> names of the nodes it matches (fnmatch, case-sensitive).

    A pattern is tried on the node name (``/mapping/fc0/Gemm`` from the TorchScript
    exporter, ``node_linear_3`` from dynamo) and on the torch module path recorded by
    the dynamo exporter (``mapping.fcs.0``), so ``mapping.*`` and ``/mapping/*`` both work.
    """
    scopes = scopes if scopes is not None else {n.name: node_scope(n) for n in model.graph.node}
    hits: dict[str, list[str]] = {p: [] for p in patterns}
    for node in model.graph.node:
        scope = scopes.get(node.name) or node_scope(node)
        cands = [node.name] + ([scope, f"{scope}.{node.name}"] if scope else [])
        for p in patterns:
            if any(fnmatch.fnmatchcase(c, p) for c in cands):
                hits[p].append(node.name)
    return hits


def quantized_nodes(model: Any, op_types: Sequence[str] = ()) -> dict[str, int]:
    """Op type -> count of nodes whose data input comes from a ``DequantizeLinear`` (run in int8).

    Only op types in ``op_types`` count (all when empty): an elementwise op that merely
    reads a quantized conv's re-quantized output is not itself quantized.
    """
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: Counter[str] = Counter()
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") or (
            op_types and n.op_type not in op_types
        ):
            continue
        if n.input and n.input[0] in dq_out:
            counts[n.op_type] += 1
    return dict(sorted(counts.items()))


#: The one INT8 recipe's defaults (:class:`~accelkit.options.Int8Settings` owns them).
_RECIPE = Int8Settings()


class Int8(Pass):
    """Quantize an fp32 ONNX artifact to INT8 Q/DQ, verify it, write it with its sidecar.

    Args:
        out: Destination ``.onnx`` path.
        force: Overwrite an existing file.
        calib_samples: Seeded generator inputs used for calibration.
        calib_method: ``minmax``, ``entropy`` or ``percentile`` (ORT's entropy calibrator, with
            the histogram size quantize_static leaves at its default, picks the minmax range).
        calib_batch: Batch size of the calibration runs.
        per_channel: Per-output-channel weight scales (better accuracy, same TensorRT support).
        op_types: Op types to quantize (default :data:`DEFAULT_INT8_OPS`); an empty
            sequence means every op type ONNX Runtime can quantize.
        include: fnmatch patterns (as ``exclude``) of the only nodes that may be quantized
            (ORT's ``nodes_to_quantize``; still limited to ``op_types``). Empty: all.
        exclude: fnmatch patterns of nodes kept in float (node names or torch module
            paths, see :func:`match_nodes`). A pattern that matches nothing is an error.
        preprocess: Run ONNX Runtime's ``quant_pre_process`` (shape inference and
            graph optimisation) first; skipped with a logged reason when it fails.
        verify: Compare with the reference (the torch model when the artifact carries it,
            else the fp32 ONNX in ONNX Runtime).
        tolerance: Max abs error allowed (output units); default ``DEFAULT_TOLERANCE["int8"]``.
        warn_psnr_db: PSNR under which the sidecar records a warning.
        batch_range: Batch sizes to verify at (min and a larger one).
        seed: Seed of calibration and verification inputs.
        calib_images: Folder of images for the image input of an image-to-image
            generator (the first ``calib_samples`` files, sorted); default: the
            sampler's smooth random images.
        calib_cache: Folder of the calibration-range cache (default
            :func:`default_calib_cache_dir`); ``False`` calibrates every time.
        calib_data: A :class:`CalibrationData` provider of the calibration inputs (default:
            seeded samples of the generator's prior, or ``calib_images``).
        progress: Called with a short message at each step.
    """

    name = "Int8"

    def __init__(
        self,
        out: str | Path,
        *,
        force: bool = False,
        calib_samples: int = _RECIPE.calib,
        calib_method: str = _RECIPE.calib_method.value,
        calib_batch: int = _RECIPE.calib_batch,
        per_channel: bool = False,
        op_types: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        include: Sequence[str] = (),
        preprocess: bool = True,
        verify: bool = True,
        tolerance: float | None = None,
        warn_psnr_db: float = WARN_PSNR_DB,
        batch_range: tuple[int, int, int] | None = None,
        seed: int = 0,
        calib_images: str | os.PathLike[str] | None = None,
        calib_cache: str | os.PathLike[str] | bool | None = None,
        calib_data: CalibrationData | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if calib_data is not None and calib_images is not None:
            raise InputError("give calibration images or a calibration-data provider, not both")
        if calib_method not in CALIB_METHODS:
            raise InputError(
                f"calibration method {calib_method!r} is not one of {', '.join(CALIB_METHODS)}"
            )
        if int(calib_samples) < 1:
            raise InputError(f"--calib {calib_samples}: need at least one calibration sample")
        if int(calib_batch) < 1:
            raise InputError(f"calibration batch size {calib_batch} must be >= 1")
        super().__init__(out, force=force, progress=progress)
        self.calib_samples = int(calib_samples)
        self.calib_method = calib_method
        self.calib_batch = int(calib_batch)
        self.per_channel = bool(per_channel)
        self.op_types = tuple(DEFAULT_INT8_OPS if op_types is None else op_types)
        self.exclude = tuple(exclude)
        self.include = tuple(include)
        self.preprocess = preprocess
        self.verify = verify
        self.tolerance = tolerance
        self.warn_psnr_db = warn_psnr_db
        self.batch_range = batch_range
        self.seed = int(seed)
        self.calib_images = Path(calib_images) if calib_images is not None else None
        self.calib_data = calib_data
        if calib_cache is False:
            self.calib_cache: Path | None = None
        elif calib_cache is None or calib_cache is True:
            self.calib_cache = default_calib_cache_dir()
        else:
            self.calib_cache = Path(calib_cache).expanduser()

    def options(self) -> dict[str, Any]:
        """The options as recorded in the sidecar."""
        return {
            "calib_samples": self.calib_samples,
            "calib_method": self.calib_method,
            "calib_batch": self.calib_batch,
            "per_channel": self.per_channel,
            "op_types": list(self.op_types),
            "exclude": list(self.exclude),
            "include": list(self.include),
            "preprocess": self.preprocess,
            "tolerance": self.tolerance,
            "seed": self.seed,
            "calib_cache": str(self.calib_cache) if self.calib_cache is not None else None,
            "calib_images": str(self.calib_images) if self.calib_images is not None else None,
            "calib_data": self.calib_data.identity() if self.calib_data is not None else None,
        }

    def check(self, artifact: Artifact) -> None:
        """Refuse anything but an fp32 ONNX artifact."""
        require_fp32_onnx(artifact, "Int8", "quantize from the fp32 ONNX model")

    def _run_impl(self, artifact: Artifact, dest: Path) -> PassResult:
        """Calibrate, quantize, check and verify.

        Raises:
            InputError: An exclude/include pattern matches no node.
            ExportError: Quantization fails.
            NonFiniteOutputError: int8 outputs hold NaN/Inf.
            VerificationError: Error beyond the tolerance.
        """
        import onnx

        q: Any = require("onnxruntime.quantization", "cpu", "int8 quantization")
        reader_cls = _calibration_reader_class()
        images, images_rec = (None, None)
        if self.calib_images is not None:
            self.progress(f"loading calibration images from {self.calib_images}")
            images, images_rec = load_calib_images(
                artifact.spec, self.calib_images, self.calib_samples
            )
        n_calib = len(images) if images is not None else self.calib_samples
        original = onnx.load(str(artifact.path), load_external_data=True)
        check_standard_ops(original, str(artifact.path))
        scopes = {n.name: node_scope(n) for n in original.graph.node}
        method = {
            "minmax": q.CalibrationMethod.MinMax,
            "entropy": q.CalibrationMethod.Entropy,
            "percentile": q.CalibrationMethod.Percentile,
        }[self.calib_method]

        with tempfile.TemporaryDirectory(prefix="accelkit-int8-") as tmp_dir:
            tmp = Path(tmp_dir)
            src = tmp / "fp32.onnx"
            onnx.save_model(original, str(src))
            model_in, pre_note = src, "ok"
            if self.preprocess:
                self.progress("pre-processing the fp32 graph (shape inference, graph optimisation)")
                pre = tmp / "pre.onnx"
                try:
                    with quiet_exporters():
                        q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
                    model_in = pre
                except Exception as exc:  # noqa: BLE001 - ORT's pre-processing is best effort
                    pre_note = f"skipped: {short_error(exc)}"
                    log.warning(
                        "quant_pre_process failed (%s); quantizing the graph as exported",
                        short_error(exc),
                    )
            else:
                pre_note = "disabled"
            prepared = onnx.load(str(model_in), load_external_data=True)
            excluded = self._matched(prepared, scopes, self.exclude, "--exclude")
            included = self._matched(prepared, scopes, self.include, "--include")
            inputs = [i.name for i in prepared.graph.input]
            batch = calibration_batch(n_calib, self.calib_batch)
            reader: Any
            if self.calib_data is not None:
                reader = ProviderDataReader(self.calib_data, n_calib, batch, inputs)
            else:
                reader = reader_cls(
                    artifact.spec,
                    n_calib,
                    seed=self.seed,
                    batch_size=batch,
                    input_names=inputs,
                    images=images,
                )
            cache_key, cached, cache_arg = self._cache_lookup(
                q, src, pre_note, batch, artifact.spec, tmp, images_rec
            )
            if cached is not None:
                self.progress(f"int8 ranges from the calibration cache ({cached.name})")
            else:
                what = (
                    f"images from {self.calib_images}"
                    if images_rec
                    else "samples from the calibration-data provider"
                    if self.calib_data is not None
                    else "seeded samples"
                )
                self.progress(f"calibrating int8 ranges ({self.calib_method}) on {n_calib} {what}")
            qout = tmp / "int8.onnx"
            try:
                with quiet_exporters():
                    q.quantize_static(
                        str(model_in),
                        str(qout),
                        reader,
                        quant_format=q.QuantFormat.QDQ,
                        op_types_to_quantize=list(self.op_types) or None,
                        per_channel=self.per_channel,
                        activation_type=q.QuantType.QInt8,
                        weight_type=q.QuantType.QInt8,
                        nodes_to_exclude=sorted(excluded),
                        nodes_to_quantize=sorted(included) or None,
                        calibrate_method=method,
                        use_external_data_format=False,
                        calibration_providers=["CPUExecutionProvider"],
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
                        **cache_arg,
                    )
            except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
                raise ExportError(
                    f"int8 quantization failed ({short_error(exc)}); exclude the failing node with --exclude PATTERN or use --calib-method minmax"
                ) from None
            converted = onnx.load(str(qout), load_external_data=True)
            cache_note = self._cache_store(cache_key, cached, cache_arg)

        del converted.graph.value_info[:]
        set_metadata(converted, artifact, "int8")
        check_graph(converted, "the int8 graph")
        counts = quantized_nodes(converted, self.op_types)
        if not counts:
            raise ExportError(
                f"no node was quantized (op types {list(self.op_types)}, {len(excluded)} excluded); check --op-types/--include/--exclude"
            )

        verification = self._verify(converted, artifact) if self.verify else None
        meta: dict[str, Any] = {}
        block: dict[str, Any] = {
            "format": "QDQ",
            "activation_type": "int8 symmetric",
            "weight_type": "int8 symmetric",
            "calibration": {
                "seed": self.seed,
                "samples": n_calib,
                "images": images_rec,
                "provider": self.calib_data.identity() if self.calib_data is not None else None,
                "first_sample": CALIB_OFFSET,
                "batch_size": batch,
                "method": self.calib_method,
                "cache": cache_note,
                "cache_key": cache_key,
            },
            "per_channel": self.per_channel,
            "op_types": list(self.op_types),
            "preprocess": pre_note,
            "quantized_nodes": counts,
            "quantized_node_count": sum(counts.values()),
            "qdq_pairs": sum(1 for n in converted.graph.node if n.op_type == "DequantizeLinear"),
            "excluded_nodes": sorted(excluded),
            "included_nodes": sorted(included),
            "psnr_db": None,
            "max_abs_err": None,
            "warning": None,
        }
        if verification is not None:
            psnr = verification["psnr_db"]
            block["psnr_db"] = psnr
            block["max_abs_err"] = verification["max_abs_err"]
            if psnr < self.warn_psnr_db:
                block["warning"] = (
                    f"INT8 output PSNR {psnr:.1f} dB vs fp32 is far below fp16 level (< {self.warn_psnr_db:g} dB); "
                    f"images may visibly degrade: check FID, try --per-channel, --calib-method entropy/percentile, "
                    f"or --exclude the sensitive layers (e.g. the mapping network)"
                )
                log.warning("%s", block["warning"])
            meta["verification"] = verification
        meta["int8"] = block
        return PassResult(onnx_writer(converted), "onnx", "int8", meta=meta)

    def _cache_lookup(
        self,
        q: Any,
        src: Path,
        pre_note: str,
        batch: int,
        spec: GeneratorSpec,
        tmp: Path,
        images: dict[str, Any] | None = None,
    ) -> tuple[str | None, Path | None, dict[str, Any]]:
        """(cache key, verified cached file or None, extra quantize_static arguments).

        A miss calibrates into a temporary JSON that :meth:`_cache_store` then stores in
        the cache (with its sha256); a hit hands ONNX Runtime the cached file, verified
        against its recorded key and content hash (a corrupt or edited entry is removed
        and recalibrated). Without ``calibration_cache_path`` in this ONNX Runtime
        (older than 1.23) there is no cache.
        """
        import inspect

        import onnxruntime

        if (
            self.calib_cache is None
            or "calibration_cache_path" not in inspect.signature(q.quantize_static).parameters
        ):
            return None, None, {}
        opts = {
            "method": self.calib_method,
            "samples": self.calib_samples,
            "batch": batch,
            "seed": self.seed,
            "op_types": sorted(self.op_types),
            "preprocess": pre_note,
            "images_sha256": images["sha256"] if images else None,
            "images_count": images["files"] if images else None,
            "images_preprocess": images.get("preprocess") if images else None,
        }
        if self.calib_data is not None:  # keyed only when present: existing entries stay valid
            opts["provider"] = self.calib_data.identity()
        key = calib_cache_key(sha256_file(src), spec, opts, onnxruntime.__version__)
        entry = Cache("calibration", self.calib_cache).lookup(key, ".json")
        if entry is not None:
            try:
                doc = json.loads(entry.read_text())
                if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
                    raise ValueError("no 'data' object")
                return key, entry, {"calibration_cache_path": str(entry)}
            except (OSError, ValueError) as exc:
                log.warning(
                    "calibration cache entry %s is unreadable (%s); calibrating again", entry, exc
                )
        return key, None, {"calibration_cache_path": str(tmp / "calibration.json")}

    def _cache_store(self, key: str | None, cached: Path | None, cache_arg: dict[str, Any]) -> str:
        if key is None or self.calib_cache is None:
            return "off"
        if cached is not None:
            return "hit"
        written = Path(cache_arg["calibration_cache_path"])
        stored = Cache("calibration", self.calib_cache).store_file(
            key, ".json", written, {"what": "onnxruntime calibration ranges"}
        )
        return "miss" if stored is not None else "miss (not stored)"

    def _matched(
        self, model: Any, scopes: dict[str, str], patterns: Sequence[str], flag: str
    ) -> set[str]:
        if not patterns:
            return set()
        hits = match_nodes(model, patterns, scopes)
        missing = [p for p, names in hits.items() if not names]
        if missing:
            sample = ", ".join(n.name for n in list(model.graph.node)[:5])
            raise InputError(
                f"{flag} {missing[0]!r} matches no node (node names look like: {sample}; dynamo exports also match module paths such as 'mapping.*')"
            )
        return {n for names in hits.values() for n in names}

    def _verify(self, converted: Any, artifact: Artifact) -> dict[str, Any]:
        return verify_converted(
            converted,
            artifact,
            "int8",
            tolerance=self.tolerance,
            batch_range=self.batch_range,
            seed=self.seed,
            progress=self.progress,
        )
