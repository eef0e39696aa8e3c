"""Check an ONNX file against a reference on seeded inputs.

Used by every pass that writes ONNX: the exported (or converted) model is run in ONNX
Runtime on :class:`~accelkit.sampler.LatentSampler` inputs at two batch sizes and
compared with the reference (the FP32 torch model when available). Errors are in the
output's own units; PSNR uses the output range width as peak.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import InputError, NonFiniteOutputError, VerificationError, require
from accelkit.sampler import LatentSampler
from accelkit.spec import GeneratorSpec

#: Default max-abs-error tolerances per precision, in output units (range width 2 for [-1, 1]).
DEFAULT_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "int8": 0.5}


def paired_error(
    ref: np.ndarray, out: np.ndarray, value_range: tuple[float, float]
) -> dict[str, float]:
    """Max/mean abs error, PSNR (dB, peak = range width) and changed uint8 share of ``out`` vs ``ref``.

    Raises:
        NonFiniteOutputError: ``out`` (or ``ref``) holds NaN or Inf.
    """
    from accelkit.quality.metrics import paired_metrics

    m = paired_metrics(ref, out, value_range)
    return {
        "max_abs_err": m.max_abs_error,
        "mean_abs_err": float(np.mean(np.abs(out.astype(np.float64) - ref.astype(np.float64)))),
        "psnr_db": m.psnr_db,
        "changed_uint8_fraction": m.changed_uint8_fraction,
    }


def torch_forward(artifact: Artifact, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run a torch artifact's module on numpy feeds (CPU, fp32); NCHW float32 out."""
    import torch

    args = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in artifact.spec.inputs]
    with torch.inference_mode():
        out = artifact.module(*args)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.detach().float().cpu().numpy()


def ort_session(model: str | Path | bytes, threads: int | None = None) -> Any:
    """A CPU ONNX Runtime session (verification is about numbers, not speed)."""
    ort: Any = require("onnxruntime", "cpu", "verifying an ONNX export")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


def verification_batches(
    batch_range: tuple[int, int, int], static_batch: int | None = None
) -> list[int]:
    """The two batch sizes to verify at: the profile's minimum and a larger one (<= 8)."""
    if static_batch is not None:
        return [static_batch]
    lo, opt, hi = batch_range
    second = min(hi, max(lo + 1, min(opt, 8)))
    return [lo, second] if second != lo else [lo]


def verify_onnx(
    onnx_path: str | Path,
    spec: GeneratorSpec,
    reference: Callable[[dict[str, np.ndarray]], np.ndarray],
    *,
    batch_sizes: Sequence[int],
    tolerance: float,
    precision: str,
    seed: int = 0,
) -> dict[str, Any]:
    """Run ``onnx_path`` in ONNX Runtime and compare with ``reference`` on seeded inputs.

    Args:
        onnx_path: The model to check.
        spec: Its generator spec (inputs, output range).
        reference: Function feeds -> reference NCHW float32 output.
        batch_sizes: Batch sizes to check (each with fresh samples).
        tolerance: Max allowed absolute error, in output units.
        precision: For the message (``fp32``/``fp16``/``int8``).
        seed: LatentSampler seed.

    Returns:
        ``{"batch_sizes", "seed", "tolerance", "max_abs_err", "mean_abs_err", "psnr_db", "per_batch"}``.

    Raises:
        NonFiniteOutputError: NaN/Inf in the ONNX outputs.
        VerificationError: The error exceeds ``tolerance`` (message holds the numbers).
    """
    sess = ort_session(onnx_path)
    out_name = sess.get_outputs()[0].name
    sampler = LatentSampler(spec, seed=seed)
    per_batch = []
    start = 0
    for b in batch_sizes:
        feeds = sampler.inputs(start, b)
        start += b
        ref = reference(feeds)
        try:
            got = sess.run([out_name], feeds)[0]
        except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
            raise VerificationError(
                f"ONNX Runtime failed to run the {precision} model at batch {b} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
        if got.shape != ref.shape:
            raise VerificationError(
                f"ONNX output shape {got.shape} differs from torch {ref.shape} at batch {b}; the export is wrong"
            )
        try:
            m = paired_error(ref, got.astype(np.float32), spec.output_range)
        except NonFiniteOutputError as exc:
            raise NonFiniteOutputError(
                f"the {precision} ONNX model produced NaN/Inf at batch {b} ({exc}); keep more ops in float32 or export fp32"
            ) from None
        per_batch.append({"batch_size": b, **m})
    result: dict[str, Any] = {
        "batch_sizes": list(batch_sizes),
        "seed": seed,
        "tolerance": tolerance,
        "max_abs_err": max(r["max_abs_err"] for r in per_batch),
        "mean_abs_err": float(np.mean([r["mean_abs_err"] for r in per_batch])),
        "psnr_db": min(r["psnr_db"] for r in per_batch),
        "per_batch": per_batch,
    }
    if result["max_abs_err"] > tolerance:
        raise VerificationError(
            f"{precision} ONNX output differs from the reference: max abs error {result['max_abs_err']:.3g} > tolerance {tolerance:g} "
            f"(PSNR {result['psnr_db']:.1f} dB, batches {list(batch_sizes)}); raise --tolerance if this is expected"
        )
    return result


def second_size(spec: GeneratorSpec) -> tuple[int, int] | None:
    """A second height x width to verify a dynamic-H/W model at (None when the size is fixed).

    Half the nominal size (doubled when that leaves the range), kept a multiple of the
    nominal size's power-of-two factor (up to 8) so window- and pixel-shuffle-based
    networks still accept it.
    """
    if spec.hw_range is None or not spec.spatial_inputs:
        return None
    lo, _, hi = spec.hw_range

    def other(n: int) -> int:
        m = 1
        while m < 8 and n % (m * 2) == 0:
            m *= 2
        for cand in (n // 2, n * 2, n - m, n + m):
            cand = max(m, cand // m * m)
            if cand != n and lo <= cand <= hi:
                return cand
        return n

    h, w = spec.spatial_inputs[0].shape[1:]
    size = (other(h), other(w))
    return None if size == (h, w) else size


def verify_sizes(
    onnx_path: str | Path,
    spec: GeneratorSpec,
    reference: Callable[[dict[str, np.ndarray]], np.ndarray],
    *,
    batch_sizes: Sequence[int],
    tolerance: float,
    precision: str,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`verify_onnx` at the spec's size and, for a dynamic-H/W spec, at a second size too.

    Returns:
        :func:`verify_onnx`'s record; with a second size, its numbers cover both sizes and
        ``sizes`` lists ``[[h, w], ...]`` with ``per_size`` records.
    """
    res = verify_onnx(
        onnx_path,
        spec,
        reference,
        batch_sizes=batch_sizes,
        tolerance=tolerance,
        precision=precision,
        seed=seed,
    )
    size = second_size(spec)
    if size is None:
        return res
    other = verify_onnx(
        onnx_path,
        spec.at_size(*size),
        reference,
        batch_sizes=batch_sizes[:1],
        tolerance=tolerance,
        precision=precision,
        seed=seed + 1,
    )
    h, w = spec.spatial_inputs[0].shape[1:]
    return {
        **res,
        "max_abs_err": max(res["max_abs_err"], other["max_abs_err"]),
        "mean_abs_err": float(np.mean([res["mean_abs_err"], other["mean_abs_err"]])),
        "psnr_db": min(res["psnr_db"], other["psnr_db"]),
        "sizes": [[h, w], list(size)],
        "per_size": [
            {"size": [h, w], **{k: res[k] for k in ("max_abs_err", "psnr_db")}},
            {"size": list(size), **{k: other[k] for k in ("max_abs_err", "psnr_db")}},
        ],
    }


def require_fp32_onnx(artifact: Artifact, what: str, remedy: str) -> None:
    """Refuse anything but an fp32 ONNX artifact, in one line.

    Args:
        artifact: The input of a conversion.
        what: Who needs it, e.g. ``"Int8"``.
        remedy: What to do instead, e.g. ``"quantize from the fp32 ONNX model"``.

    Raises:
        InputError: Not ONNX (or no file), or not fp32.
    """
    if artifact.format != "onnx" or artifact.path is None:
        raise InputError(
            f"{what} needs an ONNX model, got a {artifact.format} artifact; export it first"
        )
    if artifact.precision != "fp32":
        raise InputError(f"{artifact.path} is already {artifact.precision}; {remedy}")


def verify_converted(
    converted: Any,
    artifact: Artifact,
    precision: str,
    *,
    tolerance: float | None,
    batch_range: Sequence[int] | None,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Verify an in-memory converted graph (fp16, int8) against the fp32 reference.

    The reference is the torch model when the fp32 ONNX artifact carries it (made in this
    process), else the fp32 ONNX file in ONNX Runtime; the result says which.
    """
    import tempfile

    import onnx

    br = batch_range or tuple(artifact.meta.get("batch_range", (1, 8, 64)))
    static = next((p.get("static_batch") for p in artifact.passes if p.get("static_batch")), None)
    if artifact.module is not None:
        ref_name = "torch fp32 (cpu)"

        def reference(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return torch_forward(artifact, feeds)
    else:
        ref_name = "onnx fp32 (onnxruntime cpu)"
        sess = ort_session(artifact.path)  # type: ignore[arg-type]
        out_name = sess.get_outputs()[0].name

        def reference(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return np.asarray(sess.run([out_name], feeds)[0], dtype=np.float32)

    if progress is not None:
        progress(f"verifying {precision} ONNX against the fp32 reference")
    with tempfile.TemporaryDirectory(prefix=f"accelkit-{precision}-") as tmp:
        path = Path(tmp) / f"{precision}.onnx"
        onnx.save_model(converted, str(path))
        res = verify_sizes(
            path,
            artifact.spec,
            reference,
            batch_sizes=verification_batches(br, static),  # type: ignore[arg-type]
            tolerance=tolerance if tolerance is not None else DEFAULT_TOLERANCE[precision],
            precision=precision,
            seed=seed,
        )
    res["reference"] = ref_name
    return res
