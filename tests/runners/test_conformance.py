"""One test, every registered runner: the same contract for torch, ort, trt (and any new one).

For each registered backend x device x configuration x tiny generator (unconditional,
class-conditional, image-to-image), the runner must:

* return NCHW float32 of shape ``(batch, *spec.output_shape)``, finite, inside
  ``spec.output_range`` (+ tolerance);
* agree with the plain-torch FP32 reference on identical :class:`LatentSampler` inputs,
  at batch 1 and 3, within the tolerance of its compute precision (:data:`ATOL`);
* refuse ``infer`` before ``activate``; ``activate``/``deactivate`` are idempotent and
  the runner can be re-activated.

The cases come from the registry: every registered backend's declared recipes
(:meth:`~accelkit.runners.base.Runner.recipes`) for every precision and device, variants
included; nothing here lists backends. Backends unavailable here are skipped with the
reason their ``availability`` gives. A recipe whose source has no artifact maker below
fails, so a new runner cannot slip past these checks.
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
from accelkit.runners.base import backend_names, runner_class
from accelkit.sampler import LatentSampler
from accelkit.vocab import PRECISIONS
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

#: Recipes the registry offers that this elementwise check does not judge, and why.
NOT_JUDGED_HERE = {
    "int8": "int8 is judged by drift against fp32 (tests/passes/test_int8.py, optimize), not by an elementwise tolerance",
    "compile": "torch.compile is checked against eager by the runner on its first batch "
    "(COMPILE_CHECK_RTOL; tests/runners/test_torch_runner.py) and costs tens of seconds per case",
}


def _offered(backend: str, device: str) -> list[Any]:
    """What ``backend`` declares for every precision on ``device`` (its plain recipes and
    variants, with and without its optional toggles), deduplicated; a backend that offers a
    cell nowhere yields nothing."""
    from accelkit.runners.base import Ask

    cls = runner_class(backend)
    seen: dict[str, Any] = {}
    toggles = [frozenset(), frozenset({"cuda_graphs"})] if device == "cuda" else [frozenset()]
    for p in PRECISIONS:
        for wants in toggles:
            ask = Ask(
                kind="torch",
                precision=p,
                device=device,
                native_bf16=has_native_bf16(),
                wants=wants,
                batch_range=(1, 3, 4),
            )
            got = cls.recipes(ask)
            if isinstance(got, str):
                continue
            for r in got:
                if r.refused:
                    continue
                cid = r.label.split("-", 1)[1] + (
                    "+cuda_graphs" if r.options.get("cuda_graphs") else ""
                )
                seen.setdefault(cid, r)
    return list(seen.items())


def _cases() -> list[Any]:
    cases = []
    for backend in sorted(backend_names()):
        try:
            offered = [(d, cid, r) for d in DEVICES for cid, r in _offered(backend, d)]
        except ImportError as exc:
            skip = pytest.mark.skip(reason=f"{backend}: its runner module does not import ({exc})")
            cases.append(pytest.param(backend, "cpu", "import", None, "", marks=[skip]))
            continue
        for device, cid, recipe in offered:
            for kind in KINDS:
                marks = [pytest.mark.gpu] if device == "cuda" else []
                if backend == "trt":
                    marks.append(pytest.mark.trt)
                if recipe.precision in NOT_JUDGED_HERE or recipe.variant in NOT_JUDGED_HERE:
                    continue
                cases.append(
                    pytest.param(
                        backend,
                        device,
                        cid,
                        recipe,
                        kind,
                        id=f"{backend}-{device}-{cid}-{kind}",
                        marks=marks,
                    )
                )
    return cases


class _Artifacts:
    """Builds each artifact once per session: torch modules, fp32/fp16 ONNX."""

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


#: recipe source -> how to make the artifact it names (a source without a maker fails the test)
MAKERS: dict[str, Callable[[_Artifacts, str, str], Artifact]] = {
    "torch": lambda a, kind, device: a.torch(kind, "fp32", device),
    "onnx-fp32": lambda a, kind, device: a.onnx(kind, "fp32", device),
    "onnx-fp16": lambda a, kind, device: a.onnx(kind, "fp16", device),
}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> _Artifacts:
    return _Artifacts(tmp_path_factory.mktemp("conformance"))


def _reference(module: Any, spec: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Plain torch FP32 on CPU: the reference every backend is compared with."""
    args = [torch.from_numpy(feeds[i.name]) for i in spec.inputs]
    with torch.inference_mode():
        return module(*args).float().numpy()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("backend", "device", "config", "recipe", "kind"), _cases())
def test_runner_conformance(
    artifacts: _Artifacts,
    backend: str,
    device: str,
    config: str,
    recipe: Any,
    kind: str,
) -> None:
    cls = runner_class(backend)
    reason = cls.availability(device) or cls.recipe_availability(recipe, device)
    if reason is not None:
        pytest.skip(f"{backend} on {device}: {reason}")
    maker = MAKERS.get(recipe.source)
    if maker is None:
        pytest.fail(
            f"backend {backend!r} asks for the source {recipe.source!r}, which has no artifact maker; add one to MAKERS in {__file__}"
        )

    module, spec = artifacts.module(kind)
    art = maker(artifacts, kind, device)
    options = dict(recipe.options)
    compute = recipe.precision
    atol, range_tol = ATOL[compute], RANGE_TOL[compute]
    if compute == "fp32" and device.startswith("cuda"):
        atol = ATOL_FP32_CUDA

    runner = cls(art, device=device, **options)
    assert runner.precision == compute, (runner.precision, compute)
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
