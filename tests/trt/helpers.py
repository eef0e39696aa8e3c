"""Shared pieces of the TensorRT tests: tiny ONNX models, plan files, fakes of TensorRT objects.

The fakes stand in for the few TensorRT members the code under test reads
(``DataType``, ``MemoryPoolType``, network flags, builder configs and timing caches), so
the parts that need no GPU run for real here.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.spec import GeneratorSpec, InputSpec

REPO = Path(__file__).resolve().parents[2]
Z = InputSpec("z", "latent", (8,))
LABEL = InputSpec("label", "label", (), "int64", 10)
SPEC = GeneratorSpec(inputs=(Z,), output_shape=(3, 4, 4))
SPEC_LABEL = GeneratorSpec(inputs=(Z, LABEL), output_shape=(3, 4, 4))
GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "driver": "12.4"}
TRT_VERSION = "10.13.0.35"


def tiny_onnx(path: Path, kind: str = "latent", external: bool = False) -> Path:
    """A 2-layer ONNX "generator": z[N,8] (+ label[N]) -> tanh(...) image[N,3,4,4].

    Args:
        kind: ``latent`` (fp32), ``label`` (fp32 + int64 class embedding) or ``fp16``
            (float16 tensors end to end, as an FP16 pass would write them).
        external: Store the weights in ``<path>.data`` (ONNX external data).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    ftype, np_f = (
        (TensorProto.FLOAT16, np.float16) if kind == "fp16" else (TensorProto.FLOAT, np.float32)
    )
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 48)) * 0.3).astype(np_f), "W"),
        numpy_helper.from_array(np.array([-1, 3, 4, 4], dtype=np.int64), "shape"),
    ]
    inputs = [helper.make_tensor_value_info("z", ftype, ["batch", 8])]
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"])]
    pre = "h"
    if kind == "label":
        inits.append(
            numpy_helper.from_array((rng.standard_normal((10, 48)) * 0.3).astype(np.float32), "E")
        )
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]))
        nodes += [
            helper.make_node("Gather", ["E", "label"], ["emb"], axis=0),
            helper.make_node("Add", ["h", "emb"], ["h2"]),
        ]
        pre = "h2"
    nodes += [
        helper.make_node("Reshape", [pre, "shape"], ["r"]),
        helper.make_node("Tanh", ["r"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        inputs,
        [helper.make_tensor_value_info("image", ftype, ["batch", 3, 4, 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=0,
        )
    else:
        onnx.save_model(model, str(path))
    return path


def onnx_artifact(path: Path, spec: GeneratorSpec = SPEC, precision: str = "fp32") -> Artifact:
    return Artifact(format="onnx", spec=spec, path=path, precision=precision, source=str(path))


def plan_sidecar(version: str = TRT_VERSION, gpu: dict[str, str] | None = None) -> dict[str, Any]:
    return {"format": "trt", "meta": {"tensorrt": {"version": version}, "gpu": dict(gpu or GPU)}}


def write_plan(
    folder: Path,
    data: bytes = b"not really a plan",
    *,
    version: str = TRT_VERSION,
    gpu: dict[str, str] | None = None,
    sidecar: bool = True,
    name: str = "g.plan",
) -> Artifact:
    """A ``.plan`` file plus the sidecar accelkit writes for it (through ``Artifact.save``)."""
    art = Artifact(format="trt", spec=SPEC, path=folder / name, source="g.onnx")
    art.meta.update(
        {
            "tensorrt": {"version": version, "strongly_typed": True},
            "tensorrt_version": version,
            "gpu": dict(gpu or GPU),
        }
    )
    art.save(lambda tmp: tmp.write_bytes(data), force=True)
    if not sidecar:
        from accelkit.artifact import sidecar_path

        sidecar_path(art.path).unlink()  # type: ignore[arg-type]
    return art


def fake_trt(
    *,
    strongly_typed: bool = True,
    tf32: bool = True,
    version: str = TRT_VERSION,
    monitor: bool = True,
) -> Any:
    """The members of the ``tensorrt`` module the loader construction reads."""
    flags = SimpleNamespace(**({"STRONGLY_TYPED": 5} if strongly_typed else {}))
    builder_flags = SimpleNamespace(**({"TF32": 7} if tf32 else {}))

    class IProgressMonitor:
        def __init__(self) -> None:
            self.initialised = True

    ns = SimpleNamespace(
        __version__=version,
        Builder=object,
        NetworkDefinitionCreationFlag=flags,
        BuilderFlag=builder_flags,
        MemoryPoolType=SimpleNamespace(WORKSPACE="MemoryPoolType.WORKSPACE"),
        DataType=SimpleNamespace(
            FLOAT="FLOAT",
            HALF="HALF",
            BF16="BF16",
            INT8="INT8",
            INT32="INT32",
            INT64="INT64",
            BOOL="BOOL",
            UINT8="UINT8",
            FP8="FP8",
        ),
    )
    if monitor:
        ns.IProgressMonitor = IProgressMonitor
    return ns


# --------------------------------------------------------------------------- timing cache fakes
class FakeTimingCache:
    """A set of tactic entries; serializes to JSON like a real cache serializes to bytes."""

    def __init__(self, entries: set[str] | None = None, device: str = "H100") -> None:
        self.entries = set(entries or ())
        self.device = device

    def combine(self, other: FakeTimingCache, ignore_mismatch: bool) -> bool:
        if other.device != self.device and not ignore_mismatch:
            return False
        self.entries |= other.entries
        return True

    def serialize(self) -> bytes:
        return json.dumps({"device": self.device, "entries": sorted(self.entries)}).encode()


class FakeConfig:
    """An ``IBuilderConfig`` holding a timing cache; ``create_timing_cache`` parses the fake format.

    ``delay`` seconds are spent inside ``create_timing_cache`` (after the file was read,
    before it is written back), to widen the window in which concurrent merges race.
    """

    def __init__(self, entries: set[str], device: str = "H100", delay: float = 0.0) -> None:
        self.cache = FakeTimingCache(entries, device)
        self.delay = delay

    def get_timing_cache(self) -> FakeTimingCache:
        return self.cache

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        if self.delay:
            time.sleep(self.delay)
        doc = json.loads(bytes(data).decode())
        return FakeTimingCache(set(doc["entries"]), doc["device"])


def read_fake_cache(path: Path) -> set[str]:
    return set(json.loads(path.read_text())["entries"])


def run_threads(targets: list[Any]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
