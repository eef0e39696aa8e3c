"""FLOPs per generated image, GPU peak throughput and model FLOP utilisation (MFU).

Two counters, one convention (2 FLOPs per multiply-accumulate of Conv, ConvTranspose,
Gemm/Linear and MatMul; element-wise ops, normalisation and bias additions are not
counted, as usual for MFU figures):

* :func:`flops_per_image_onnx` reads an ONNX graph (shape inference at batch 1);
* :func:`count_flops` runs a torch module under ``torch.utils.flop_counter``.

:func:`mfu` divides achieved FLOP/s by a GPU's dense peak from :data:`GPU_PEAK_TFLOPS`.
``onnx`` and ``torch`` are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import InputError
from accelkit.spec import GeneratorSpec

log = logging.getLogger(__name__)


# ------------------------------------------------------------------- ONNX count
def _load_onnx_model(path_or_model: Any) -> Any:
    import onnx

    if isinstance(path_or_model, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(path_or_model)
        return m
    try:
        return onnx.load(str(path_or_model), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError, OSError...
        raise InputError(
            f"cannot read ONNX model {path_or_model} ({type(exc).__name__}); give a valid .onnx file"
        ) from None


def _fix_input_dims(model: Any, spec: GeneratorSpec | None) -> None:
    """Set the batch dim of every graph input to 1 and fill other free dims from the spec."""
    init_names = {i.name for i in model.graph.initializer}
    by_name = {i.name: i for i in spec.inputs} if spec is not None else {}
    for vi in model.graph.input:
        if vi.name in init_names or not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        want = by_name.get(vi.name)
        for k, d in enumerate(dims):
            if k == 0:
                d.Clear()
                d.dim_value = 1
            elif not d.HasField("dim_value") and want is not None and k - 1 < len(want.shape):
                d.Clear()
                d.dim_value = int(want.shape[k - 1])
    for vi in model.graph.output:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.shape.dim:
            d0 = vi.type.tensor_type.shape.dim[0]
            if not d0.HasField("dim_value"):
                d0.Clear()
                d0.dim_value = 1
    del model.graph.value_info[:]


def _shapes(model: Any) -> dict[str, list[int] | None]:
    out: dict[str, list[int] | None] = {}
    for init in model.graph.initializer:
        out[init.name] = [int(d) for d in init.dims]
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = [
            int(d.dim_value) if d.HasField("dim_value") else -1
            for d in vi.type.tensor_type.shape.dim
        ]
        out[vi.name] = None if any(d < 0 for d in dims) else dims
    for node in model.graph.node:  # Constant nodes hold weights in some exports
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value" and a.t is not None:
                    out[node.output[0]] = [int(d) for d in a.t.dims]
    return out


def _attr_int(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _node_macs(node: Any, shapes: dict[str, list[int] | None]) -> int | None:
    """Multiply-accumulates of one node, or None when a needed shape is unknown."""

    def shp(i: int, outputs: bool = False) -> list[int] | None:
        names = node.output if outputs else node.input
        if i >= len(names) or not names[i]:
            return None
        return shapes.get(names[i])

    op = node.op_type
    if op == "Conv":
        w, y = shp(1), shp(0, outputs=True)
        if w is None or y is None or len(w) < 3:
            return None
        # y: (N, M, *spatial); w: (M, C/g, *k)
        return int(np.prod(y, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
    if op == "ConvTranspose":
        x, w = shp(0), shp(1)
        if x is None or w is None or len(w) < 3:
            return None
        # x: (N, C, *spatial); w: (C, M/g, *k); each input element scatters M/g * prod(k) MACs
        return int(np.prod(x, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
    if op == "Gemm":
        a, y = shp(0), shp(0, outputs=True)
        if a is None or y is None or len(a) != 2:
            return None
        k = a[0] if _attr_int(node, "transA", 0) else a[1]
        return int(np.prod(y, dtype=np.int64)) * int(k)
    if op == "MatMul":
        a, y = shp(0), shp(0, outputs=True)
        if a is None or y is None or not a:
            return None
        return max(1, int(np.prod(y, dtype=np.int64))) * int(a[-1])
    return 0


COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def flops_per_image_onnx(
    path_or_model: str | Path | Any, spec: GeneratorSpec | None = None
) -> int | None:
    """FLOPs to generate one image: 2 x multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul.

    Shapes come from ONNX shape inference with the batch dimension fixed to 1 (other
    free input dimensions are taken from ``spec``). Element-wise ops, normalisation and
    bias additions are not counted, which is the usual convention for MFU.

    Args:
        path_or_model: ``.onnx`` path or an ``onnx.ModelProto`` (not modified).
        spec: The generator's spec (input shapes without batch), if known.

    Returns:
        FLOPs per image, or None when a counted op's shape cannot be inferred (a
        partial count would understate the work).

    Raises:
        InputError: The file is not a readable ONNX model.
    """
    import onnx

    model = _load_onnx_model(path_or_model)
    _fix_input_dims(model, spec)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - inference errors are informative only
        log.warning("ONNX shape inference failed (%s); FLOPs unknown", exc)
        return None
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            log.info("FLOPs unknown: no inferred shape around %s node %r", node.op_type, node.name)
            return None
        total += macs
    return 2 * total


# ------------------------------------------------------------------ torch count
def count_flops(module: Any, args: tuple[Any, ...]) -> int | None:
    """FLOPs of ``module(*args)`` counted by ``torch.utils.flop_counter`` (2 per MAC of
    matmul/conv/conv-transpose); None when the module cannot run under the counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            module(*args)
        return int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - some ScriptModules/GraphModules do not run under the mode
        return None


def flops_per_image_torch(artifact: Artifact) -> int | None:
    """FLOPs of one forward pass at batch 1, counted by ``torch.utils.flop_counter``.

    Counts matmul/conv/conv-transpose FLOPs (2 per MAC), as usual for MFU figures.
    Returns None when the module cannot be traced by the counter.
    """
    import torch

    from accelkit.sampler import LatentSampler

    feeds = LatentSampler(artifact.spec, seed=0).inputs(0, 1)
    return count_flops(
        artifact.module, tuple(torch.from_numpy(feeds[i.name]) for i in artifact.spec.inputs)
    )


def flops_per_image(artifact: Artifact) -> int | None:
    """FLOPs per generated image for a torch or ONNX artifact (None if unknown)."""
    if artifact.format == "torch" and artifact.module is not None:
        return flops_per_image_torch(artifact)
    if artifact.format == "onnx" and artifact.path is not None:
        return flops_per_image_onnx(artifact.path, artifact.spec)
    return None


# --------------------------------------------------------------------------- MFU
#: Dense (no sparsity) peak throughput per GPU, TFLOP/s (TOPS for int8), from NVIDIA
#: data sheets. fp32 is the CUDA-core FP32 peak; with TF32 convolutions enabled (torch's
#: default for cuDNN) an fp32 row can exceed it, so MFU above 1 is possible there.
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200 NVL": {
        "fp16": 835.5,
        "bf16": 835.5,
        "fp32": 60.0,
        "tf32": 417.5,
        "int8": 1670.5,
        "fp8": 1670.5,
    },
    "H200": {
        "fp16": 989.4,
        "bf16": 989.4,
        "fp32": 66.9,
        "tf32": 494.7,
        "int8": 1978.9,
        "fp8": 1978.9,
    },
    "H100 NVL": {
        "fp16": 835.5,
        "bf16": 835.5,
        "fp32": 60.0,
        "tf32": 417.5,
        "int8": 1670.5,
        "fp8": 1670.5,
    },
    "H100 PCIe": {
        "fp16": 756.5,
        "bf16": 756.5,
        "fp32": 51.2,
        "tf32": 378.0,
        "int8": 1513.0,
        "fp8": 1513.0,
    },
    "H100 SXM": {
        "fp16": 989.4,
        "bf16": 989.4,
        "fp32": 66.9,
        "tf32": 494.7,
        "int8": 1978.9,
        "fp8": 1978.9,
    },
    "A100": {"fp16": 312.0, "bf16": 312.0, "fp32": 19.5, "tf32": 156.0, "int8": 624.0},
    "L4": {"fp16": 121.0, "bf16": 121.0, "fp32": 30.3, "tf32": 60.0, "int8": 242.5, "fp8": 242.5},
    "T4": {"fp16": 65.0, "fp32": 8.1, "int8": 130.0},
}


def gpu_key(device_name: str | None) -> str | None:
    """Map a CUDA device name (``torch.cuda.get_device_name``) to a :data:`GPU_PEAK_TFLOPS` key."""
    if not device_name:
        return None
    n = device_name.lower()
    if "h200" in n:
        return "H200 NVL" if "nvl" in n else "H200"
    if "h100" in n:
        if "nvl" in n:
            return "H100 NVL"
        return "H100 PCIe" if "pcie" in n else "H100 SXM"
    if "a100" in n:
        return "A100"
    if re.search(r"(^|[^a-z0-9])l4($|[^0-9a-z])", n):
        return "L4"
    if re.search(r"(^|[^a-z0-9])t4($|[^0-9a-z])", n):
        return "T4"
    return None


def gpu_peak_flops(device_name: str | None, precision: str) -> float | None:
    """Dense peak FLOP/s of a known GPU at ``precision``; None for an unknown GPU or precision."""
    key = gpu_key(device_name)
    if key is None:
        return None
    tflops = GPU_PEAK_TFLOPS[key].get(precision)
    return None if tflops is None else tflops * 1e12


def mfu(
    images_per_sec: float | None,
    flops_per_image: int | None,
    device_name: str | None,
    precision: str,
) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s divided by the GPU's dense peak.

    Args:
        images_per_sec: Measured throughput, images/second.
        flops_per_image: From :func:`flops_per_image_onnx`.
        device_name: CUDA device name; None (CPU) or an unknown GPU gives None.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8`` (selects the peak).

    Returns:
        A fraction (0.25 means 25 % of peak), or None when not computable.
    """
    if not images_per_sec or not flops_per_image:
        return None
    peak = gpu_peak_flops(device_name, precision)
    if peak is None:
        return None
    return float(images_per_sec) * float(flops_per_image) / peak


# --------------------------------------------------------------- CPU peak
#: Best GEMM FLOP/s of int8 over fp32 at the same vector width: VNNI does 4 int8
#: multiply-accumulates per fp32 one; AMX tiles do 16x AVX-512 fp32 (Intel's data sheets).
#: Without either, int8 is no faster than fp32 in practice.
INT8_OVER_FP32 = {"amx": 16.0, "vnni": 4.0, "none": 1.0}
#: GEMM size of the peak probe (large enough to leave the cache-bound regime).
_PEAK_N = 512
_PEAKS: dict[tuple[int, str], float] = {}


def cpu_peak_gflops(threads: int, precision: str) -> float | None:
    """This CPU's measured dense GEMM peak at ``precision`` with ``threads`` threads, GFLOP/s.

    fp32 and (on a native-bf16 CPU) bf16 are measured once per process with a torch matmul
    (best of a few short runs, so a busy moment does not lower it much); fp16 files compute
    in f32 on a CPU (fp32's peak); int8 is fp32's peak times :data:`INT8_OVER_FP32` for the
    CPU's int8 instructions. None where torch cannot run the probe.

    This is the bound :func:`accelkit.benchmark.stability.speedup_verdict` holds a CPU row
    to: a row whose FLOPs per image times images/sec exceed it did not compute what it
    claims (or was timed wrong), so no ratio is printed from it.
    """
    from accelkit.host import has_native_bf16, isa_flags

    prec = "fp32" if precision == "fp16" else precision
    if prec == "int8":
        base = cpu_peak_gflops(threads, "fp32")
        flags = isa_flags()
        isa = (
            "amx"
            if flags.get("amx_int8")
            else "vnni"
            if flags.get("avx512_vnni") or flags.get("avx_vnni")
            else "none"
        )
        return None if base is None else base * INT8_OVER_FP32[isa]
    if prec == "bf16" and not has_native_bf16():
        return cpu_peak_gflops(threads, "fp32")
    if prec not in ("fp32", "bf16"):
        return None
    key = (int(threads), prec)
    if key not in _PEAKS:
        try:
            _PEAKS[key] = _measure_gemm(int(threads), prec)
        except Exception as exc:  # noqa: BLE001 - no probe: no bound, never a crash
            log.info("CPU peak probe failed: %s", exc)
            return None
    return _PEAKS[key]


def _measure_gemm(threads: int, precision: str) -> float:
    import time

    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        dt = torch.float32 if precision == "fp32" else torch.bfloat16
        a = torch.randn(_PEAK_N, _PEAK_N, dtype=dt)
        b = torch.randn(_PEAK_N, _PEAK_N, dtype=dt)
        for _ in range(2):
            a @ b
        best = 0.0
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(4):
                a @ b
            sec = time.perf_counter() - t0
            best = max(best, 4 * 2 * _PEAK_N**3 / sec / 1e9)
        return best
    finally:
        torch.set_num_threads(old)


__all__ = [
    "COUNTED_OPS",
    "INT8_OVER_FP32",
    "cpu_peak_gflops",
    "GPU_PEAK_TFLOPS",
    "count_flops",
    "flops_per_image",
    "flops_per_image_onnx",
    "flops_per_image_torch",
    "gpu_key",
    "gpu_peak_flops",
    "mfu",
]
