"""One test, every registered runner: the same contract for torch, ort, trt (and any new one).

For each registered backend x device x configuration x tiny generator (unconditional,
class-conditional, image-to-image), the runner must:

* return NCHW float32 of shape ``(batch, *spec.output_shape)``, finite, inside
  ``spec.output_range`` (+ tolerance);
* agree with the plain-torch FP32 reference on identical :class:`LatentSampler` inputs,
  at batch 1 and 3, within the tolerance of its compute precision (:data:`ATOL`);
* refuse ``infer`` before ``activate``; ``activate``/``deactivate`` are idempotent and
  the runner can be re-activated.

Backends unavailable here are skipped with the reason their ``availability`` gives.
A backend registered without an artifact maker below fails, so a new runner cannot
slip past these checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from accelkit.artifact import Artifact
from accelkit.errors import AccelkitError
from accelkit.host import has_native_bf16
from accelkit.runners import RUNNERS, runner_class
from accelkit.sampler import LatentSampler
from tests.fixtures import generators as tg

#: Max abs error vs the torch FP32 reference, by compute precision (outputs lie in a
#: range of width 1 or 2). fp32: other kernels and summation order only (seen on CPU:
#: < 1e-7); on CUDA, convolutions may run in TF32 (torch's cuDNN default, TensorRT),
#: a 10-bit mantissa, hence :data:`ATOL_FP32_CUDA`. fp16: 10-bit mantissa over three
#: layers (seen: ~1e-4). bf16: 7-bit mantissa, 8x coarser than fp16 (seen: ~3e-3).
ATOL = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2}
ATOL_FP32_CUDA = 5e-3
#: How far outside spec.output_range an output may fall (rounding of tanh/sigmoid).
RANGE_TOL = {"fp32": 1e-5, "fp16": 1e-3, "bf16": 1e-2}

KINDS = tuple(tg.BUILDERS)
DEVICES = ("cpu", "cuda")

#: backend -> configurations: (id, runner options, artifact precision, devices it applies to)
CONFIGS: dict[str, list[tuple[str, dict[str, Any], str, tuple[str, ...]]]] = {
    "torch": [
        ("fp32", {}, "fp32", DEVICES),
        ("bf16", {"precision": "bf16"}, "fp32", DEVICES),
        ("fp16", {"precision": "fp16"}, "fp32", ("cuda",)),
        ("channels_last", {"channels_last": True}, "fp32", DEVICES),
        ("cuda_graphs", {"cuda_graphs": True}, "fp32", ("cuda",)),
    ],
    "ort": [
        ("fp32", {}, "fp32", DEVICES),
        ("fp16", {}, "fp16", DEVICES),
        ("trt_ep_fp16", {"provider": "tensorrt"}, "fp16", ("cuda",)),
    ],
    "openvino": [  # CPU only; bf16 only where the CPU has it natively (elsewhere OpenVINO would run f32)
        ("fp32", {}, "fp32", ("cpu",)),
        *([("bf16", {"precision": "bf16"}, "fp32", ("cpu",))] if has_native_bf16() else []),
        ("fp16", {}, "fp16", ("cpu",)),
    ],
    "trt": [
        ("fp32", {}, "fp32", ("cuda",)),
        ("fp16", {}, "fp16", ("cuda",)),
    ],
}


def _cases() -> list[Any]:
    cases = []
    for backend in sorted(RUNNERS):
        configs = CONFIGS.get(backend) or [("default", {}, "fp32", DEVICES)]
        for cid, opts, art_prec, devices in configs:
            for device in devices:
                for kind in KINDS:
                    marks = [pytest.mark.gpu] if device == "cuda" else []
                    if backend == "trt":
                        marks.append(pytest.mark.trt)
                    cases.append(
                        pytest.param(
                            backend,
                            device,
                            cid,
                            opts,
                            art_prec,
                            kind,
                            id=f"{backend}-{device}-{cid}-{kind}",
                            marks=marks,
                        )
                    )
    return cases


class _Artifacts:
    """Builds each artifact once per session: torch modules, fp32/fp16 ONNX, engines."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cache: dict[tuple[str, ...], Any] = {}

    def module(self, kind: str) -> Any:
        key = ("module", kind)
        if key not in self.cache:
            self.cache[key] = tg.build(kind)
        return self.cache[key]

    def torch(self, kind: str, precision: str, device: str) -> Artifact:
        module, spec = self.module(kind)
        return Artifact(format="torch", spec=spec, module=module, source=f"tiny-{kind}")

    def onnx(self, kind: str, precision: str, device: str) -> Artifact:
        key = ("onnx", kind, precision)
        if key not in self.cache:
            module, spec = self.module(kind)
            fp32 = self.folder / f"{kind}.onnx"
            if not fp32.exists():
                tg.export_tiny_onnx(module, spec, fp32)
            art = Artifact(
                format="onnx", spec=spec, path=fp32, precision="fp32", source=f"tiny-{kind}"
            )
            if precision == "fp16":
                try:
                    from accelkit.passes.fp16 import Fp16
                except ImportError as exc:  # pragma: no cover - the pass ships with accelkit
                    pytest.skip(f"accelkit.passes.fp16 is not importable ({exc})")
                art = Fp16(self.folder / f"{kind}.fp16.onnx", verify=False, force=True)(art)
                assert art.precision == "fp16"
            self.cache[key] = art
        return self.cache[key]  # type: ignore[no-any-return]

    def engine(self, kind: str, precision: str, device: str) -> Artifact:
        key = ("trt", kind, precision, device)
        if key not in self.cache:
            from accelkit.trt.build import EngineFromOnnx

            onnx_art = self.onnx(kind, precision, device)
            out = self.folder / f"{kind}.{precision}.plan"
            self.cache[key] = EngineFromOnnx(
                batch_range=(1, 3, 4), out=out, force=True, cache=False, device=device
            )(onnx_art)
        return self.cache[key]  # type: ignore[no-any-return]


#: backend -> how to make the artifact it runs
MAKERS: dict[str, Callable[[_Artifacts, str, str, str], Artifact]] = {
    "torch": _Artifacts.torch,
    "ort": _Artifacts.onnx,
    "openvino": _Artifacts.onnx,
    "trt": _Artifacts.engine,
}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> _Artifacts:
    return _Artifacts(tmp_path_factory.mktemp("conformance"))


def _reference(module: Any, spec: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Plain torch FP32 on CPU: the reference every backend is compared with."""
    args = [torch.from_numpy(feeds[i.name]) for i in spec.inputs]
    with torch.inference_mode():
        return module(*args).float().numpy()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("backend", "device", "config", "options", "art_precision", "kind"), _cases()
)
def test_runner_conformance(
    artifacts: _Artifacts,
    backend: str,
    device: str,
    config: str,
    options: dict[str, Any],
    art_precision: str,
    kind: str,
) -> None:
    try:
        cls = runner_class(backend)
    except ImportError as exc:
        pytest.skip(f"{backend}: its runner module is not importable here ({exc})")
    provider = options.get("provider")
    reason = cls.availability(device, provider) if provider else cls.availability(device)  # type: ignore[call-arg]
    if reason is not None:
        pytest.skip(f"{backend} on {device}: {reason}")
    maker = MAKERS.get(backend)
    if maker is None:
        pytest.fail(
            f"backend {backend!r} is registered but has no artifact maker; add one to MAKERS in {__file__}"
        )

    module, spec = artifacts.module(kind)
    art = maker(artifacts, kind, art_precision, device)
    compute = str(options.get("precision") or art.precision)
    atol, range_tol = ATOL[compute], RANGE_TOL[compute]
    if compute == "fp32" and device.startswith("cuda"):
        atol = ATOL_FP32_CUDA

    runner = cls(art, device=device, **options)
    assert runner.active is False
    feeds1 = LatentSampler(spec, seed=7, batch_size=1).inputs(0, 1)

    # infer before activate is refused
    with pytest.raises(AccelkitError, match="not active"):
        runner.infer(feeds1)

    # activate is idempotent and returns the runner
    assert runner.activate() is runner
    assert runner.activate() is runner
    assert runner.active is True
    try:
        outs = {}
        for batch in (1, 3):
            feeds = LatentSampler(spec, seed=7, batch_size=batch).inputs(0, batch)
            out = runner.infer(feeds)
            assert isinstance(out, np.ndarray)
            assert out.shape == (batch, *spec.output_shape), f"NCHW shape: got {out.shape}"
            assert out.dtype == np.float32
            assert out.flags.c_contiguous
            assert np.isfinite(out).all(), "non-finite output"
            lo, hi = spec.output_range
            assert out.min() >= lo - range_tol and out.max() <= hi + range_tol, (
                f"output range [{out.min()}, {out.max()}] outside {spec.output_range}"
            )
            ref = _reference(module, spec, feeds)
            err = float(np.abs(out - ref).max())
            assert err <= atol, f"max abs error vs torch fp32 {err:.3g} > {atol} ({compute})"
            if (
                compute != "fp32"
            ):  # a reduced precision that matches fp32 bit for bit was not applied
                assert err > 0, (
                    f"{compute} output is identical to fp32: the precision was not applied"
                )
            outs[batch] = out
        # a sample does not depend on the batch it is computed in
        np.testing.assert_allclose(outs[3][0], outs[1][0], atol=atol, rtol=0)
        info = runner.describe()
        assert (
            info["backend"] == backend and info["device"] == device and info["precision"] == compute
        )
        json.dumps(info)  # goes into results.json
    finally:
        runner.deactivate()
    assert runner.active is False
    runner.deactivate()  # idempotent
    assert runner.active is False
    with pytest.raises(AccelkitError, match="not active"):
        runner.infer(feeds1)

    # can come back after deactivate, with the same numbers
    with runner:
        again = runner.infer(feeds1)
    assert runner.active is False
    np.testing.assert_allclose(again, outs[1], atol=atol if compute != "fp32" else 1e-6, rtol=0)
