"""accelkit.trt.runner: the ``trt`` backend.

Without TensorRT this runs for real: availability reasons, cheap validating constructor,
the refusal of untrusted and incompatible plans *before* anything is deserialized, and
the whole runner (Polygraphy's ``EngineFromBytes``, shapes, binding, execution,
device buffers) on the fake TensorRT whose engine executes with ONNX Runtime. Tests
marked ``trt`` run real engines and skip, with the reason, without TensorRT and a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.artifact import Artifact, sidecar_path
from accelkit.device import gpu_identity
from accelkit.errors import BackendUnavailableError, InputError, LoadError
from accelkit.files import sha256_file
from accelkit.runners import create_runner, runner_class
from accelkit.spec import GeneratorSpec
from accelkit.trt import platform
from accelkit.trt import runner as runner_mod
from accelkit.trt.build import EngineFromOnnx
from accelkit.trt.platform import polygraphy_import_problem, tensorrt_import_problem
from accelkit.trt.runner import TrtRunner
from tests.trt.helpers import SPEC, SPEC_LABEL, onnx_artifact, tiny_onnx, write_plan


def feeds_for(spec: GeneratorSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {"z": rng.standard_normal((batch, 8)).astype(np.float32)}
    if any(i.name == "label" for i in spec.inputs):
        out["label"] = rng.integers(0, 10, size=(batch,)).astype(np.int64)
    return out


def ort_reference(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime gives the reference outputs")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, feeds)[0], dtype=np.float32)


# --------------------------------------------------------------------------- registry, availability, constructor
def test_registered_as_trt() -> None:
    assert runner_class("trt") is TrtRunner and TrtRunner.name == "trt"


def test_availability_on_cpu_device_names_cuda() -> None:
    reason = TrtRunner.availability("cpu")
    assert reason is not None and "GPU" in reason and "--device cuda" in reason


def test_availability_on_cuda_names_what_is_missing() -> None:
    reason = TrtRunner.availability("cuda")
    if reason is None:
        pytest.skip("TensorRT, Polygraphy and a CUDA GPU are all usable here; nothing is missing")
    low = reason.lower()
    if tensorrt_import_problem() is not None:
        assert "tensorrt is not importable" in low and "accelkit[gpu]" in reason
    if polygraphy_import_problem() is not None:
        assert "polygraphy is not importable" in low
    try:
        gpu_identity()
    except BackendUnavailableError:
        assert "no cuda gpu" in low
    assert "\n" not in reason
    assert "not a CUDA device" in (TrtRunner.availability("cuda:x") or "")


def test_runner_constructor_is_cheap_and_validates(tmp_path: Path) -> None:
    art = onnx_artifact(tmp_path / "g.onnx")
    runner = TrtRunner(
        art, device="cuda", batch_range="1:2:4", trust_engine=True
    )  # no import, no device work
    assert runner.options["batch_range"] == [1, 2, 4] and not runner.active and runner.trust_engine
    assert TrtRunner(art, device="cuda").trust_engine is False
    with pytest.raises(InputError, match="runs TensorRT plans or ONNX"):
        TrtRunner(Artifact(format="torch", spec=SPEC, module=object()), device="cuda")
    with pytest.raises(InputError, match="without a path"):
        TrtRunner(Artifact(format="trt", spec=SPEC), device="cuda")
    with pytest.raises(InputError, match="unknown trt runner option"):
        TrtRunner(art, device="cuda", threads=2)
    with pytest.raises(InputError, match="not a CUDA device"):
        TrtRunner(art, device="cpu")
    with pytest.raises(InputError, match="precision stored in its ONNX"):
        TrtRunner(art, device="cuda", precision="fp16")


def test_create_runner_refuses_here_with_reason(tmp_path: Path) -> None:
    if TrtRunner.availability("cuda") is None:
        pytest.skip("the trt backend is available here")
    with pytest.raises(BackendUnavailableError, match="backend 'trt' on cuda cannot run here"):
        create_runner("trt", onnx_artifact(tmp_path / "g.onnx"), device="cuda")


# --------------------------------------------------------------------------- refusals before any TensorRT work
@pytest.fixture
def no_tensorrt_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails the test if the runner imports TensorRT after the trust check refused."""
    called: list[str] = []

    def load(feature: str) -> Any:
        called.append(feature)
        raise AssertionError("TensorRT was loaded for a plan that should have been refused first")

    monkeypatch.setattr(platform, "load_tensorrt", load)
    return called


def test_untrusted_plans_are_refused_before_tensorrt_loads(
    tmp_path: Path, no_tensorrt_work: list[str]
) -> None:
    no_sidecar = write_plan(tmp_path, sidecar=False, name="a.plan")
    with pytest.raises(LoadError, match="has no sidecar") as info:
        TrtRunner(no_sidecar, device="cuda").activate()
    assert "--trust-engine" in str(info.value) and "accelkit build" in str(info.value)
    changed = write_plan(tmp_path, name="b.plan")
    changed.path.write_bytes(b"a plan from elsewhere")  # type: ignore[union-attr]
    runner = TrtRunner(changed, device="cuda")
    with pytest.raises(LoadError, match="sha256 differs"):
        runner.activate()
    assert not runner.active and no_tensorrt_work == []
    with pytest.raises(InputError, match="does not exist"):
        TrtRunner(
            Artifact(format="trt", spec=SPEC, path=tmp_path / "missing.plan"), device="cuda"
        ).activate()


def test_trusted_plan_goes_on_to_load_tensorrt(tmp_path: Path, no_tensorrt_work: list[str]) -> None:
    changed = write_plan(tmp_path)
    changed.path.write_bytes(b"a plan from elsewhere")  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="TensorRT was loaded"):
        TrtRunner(changed, device="cuda", trust_engine=True).activate()
    assert no_tensorrt_work == ["the trt backend"]
    plain = write_plan(tmp_path, name="ok.plan")
    with pytest.raises(AssertionError, match="TensorRT was loaded"):
        TrtRunner(plain, device="cuda").activate()  # trusted by its sidecar: passes the check


def test_incompatible_plan_is_refused_before_deserializing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write_plan(tmp_path, version="0.0.0-other")
    monkeypatch.setattr(
        platform, "load_tensorrt", lambda feature: type("trt", (), {"__version__": "10.13.0.35"})
    )
    monkeypatch.setattr(platform, "load_polygraphy", lambda feature: None)
    monkeypatch.setattr(
        platform, "polygraphy_logging", lambda: __import__("contextlib").nullcontext()
    )
    monkeypatch.setattr(
        runner_mod,
        "gpu_identity",
        lambda index: {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
    )
    monkeypatch.setattr(
        runner_mod, "use_device", lambda index: __import__("contextlib").nullcontext()
    )

    def no_load(self: TrtRunner, path: Path, data: bytes) -> None:
        raise AssertionError("an incompatible plan was deserialized")

    monkeypatch.setattr(TrtRunner, "_load_engine", no_load)
    with pytest.raises(
        LoadError, match="built with TensorRT 0.0.0-other but TensorRT 10.13.0.35 is installed"
    ) as info:
        TrtRunner(plan, device="cuda").activate()
    assert "accelkit build" in str(info.value)


# --------------------------------------------------------------------------- the whole runner on the fake TensorRT
def _build(
    folder: Path, kind: str = "latent", spec: GeneratorSpec = SPEC, batch: str = "1:4:8"
) -> Artifact:
    path = tiny_onnx(folder / f"{kind}.onnx", kind)
    art = onnx_artifact(path, spec, "fp16" if kind == "fp16" else "fp32")
    return EngineFromOnnx(batch, cache_dir=folder / "cache", out=folder / f"{kind}.plan")(art)


@pytest.mark.parametrize(
    ("kind", "spec", "atol"),
    [("latent", SPEC, 0.0), ("label", SPEC_LABEL, 0.0), ("fp16", SPEC, 1e-3)],
)
def test_runner_on_fake_tensorrt_matches_onnxruntime(
    fake_gpu: Any, tmp_path: Path, kind: str, spec: GeneratorSpec, atol: float
) -> None:
    plan = _build(tmp_path, kind, spec)
    assert plan.path is not None
    runner = TrtRunner(plan, device="cuda")
    with runner:
        for batch in (1, 5, 8):
            feeds = feeds_for(spec, batch, seed=batch)
            ref_feeds = {
                k: (v.astype(np.float16) if kind == "fp16" and k == "z" else v)
                for k, v in feeds.items()
            }
            got = runner.infer(feeds)
            assert got.dtype == np.float32 and got.shape == (batch, 3, 4, 4)
            np.testing.assert_allclose(
                got, ort_reference(tmp_path / f"{kind}.onnx", ref_feeds), atol=atol, rtol=0
            )
        info = runner.describe()
        assert fake_gpu.cudart.buffers  # buffers live while active
    assert (
        info["backend"] == "trt"
        and info["batch_range"] == [1, 4, 8]
        and info["buffers"] == "cuda-python"
    )
    assert (
        info["plan_sha256"] == sha256_file(plan.path)
        and info["plan_trusted_by"] == "sidecar sha256"
    )
    assert (
        info["tensorrt"] == "10.13.0.35"
        and info["gpu"] == "Fake GPU 80GB"
        and info["engine_cache"] == "miss"
    )
    assert info["io_dtypes"]["z"] == ("HALF" if kind == "fp16" else "FLOAT")
    assert (
        fake_gpu.cudart.buffers == {} and fake_gpu.cudart.streams == 0
    )  # everything freed on deactivate


def test_runner_keeps_outputs_on_the_device_until_asked(fake_gpu: Any, tmp_path: Path) -> None:
    plan = _build(tmp_path)
    with TrtRunner(plan, device="cuda") as runner:
        prepared = runner.prepare(feeds_for(SPEC, 3))
        executions = len(fake_gpu.record.executions)
        out = runner.run(prepared)
        out2 = runner.run(prepared)  # same prepared batch: no rebinding, output buffer reused
        assert out is out2 and len(fake_gpu.record.executions) == executions + 2
        assert out.ptr in fake_gpu.cudart.buffers  # a device address, not a host array
        runner.synchronize()
        assert runner.to_numpy(out).shape == (3, 3, 4, 4)
        with pytest.raises(InputError, match="outside the engine's profile 1..8"):
            runner.prepare(feeds_for(SPEC, 9))


def test_runner_builds_from_onnx_through_the_pass(fake_gpu: Any, tmp_path: Path) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    runner = TrtRunner(art, device="cuda", batch_range="1:2:4", cache_dir=str(tmp_path / "cache"))
    with runner:
        assert runner.infer(feeds_for(SPEC, 3)).shape == (3, 3, 4, 4)
        plan_path = Path(runner.describe()["plan"])
        assert plan_path.is_file() and runner.describe()["plan_trusted_by"] == "built now"
        assert runner.plan is not None and runner.plan.passes[-1]["name"] == "EngineFromOnnx"
    assert (
        not plan_path.exists() and not plan_path.parent.exists()
    )  # its temporary folder went with deactivate
    assert not (tmp_path / "g.plan").exists()  # nothing written next to the user's ONNX
    with TrtRunner(
        art, device="cuda", batch_range="1:2:4", cache_dir=str(tmp_path / "cache")
    ) as again:
        assert again.describe()["engine_cache"] == "hit"


def test_incompatible_plan_refused_or_rebuilt(fake_gpu: Any, tmp_path: Path) -> None:
    plan = _build(tmp_path)
    assert plan.path is not None
    side_file = sidecar_path(plan.path)
    side = json.loads(side_file.read_text())
    side["meta"]["tensorrt"]["version"] = "0.0.0-other"
    side_file.write_text(json.dumps(side))  # the plan's sha256 is unchanged: still trusted
    deserialized = fake_gpu.record.deserialized
    with pytest.raises(LoadError, match="built with TensorRT 0.0.0-other") as info:
        TrtRunner(plan, device="cuda").activate()
    assert "rebuild=True" in str(info.value) and fake_gpu.record.deserialized == deserialized
    with TrtRunner(plan, device="cuda", rebuild=True, cache_dir=str(tmp_path / "cache")) as runner:
        assert runner.infer(feeds_for(SPEC, 2)).shape == (2, 3, 4, 4)
        assert runner.describe()["plan_trusted_by"] == "built now"


def test_untrusted_plan_runs_only_with_trust_engine(fake_gpu: Any, tmp_path: Path) -> None:
    plan = _build(tmp_path)
    other = _build(tmp_path, "label", SPEC_LABEL)
    assert plan.path is not None and other.path is not None
    plan.path.write_bytes(
        other.path.read_bytes()
    )  # a valid plan, but not the one its sidecar recorded
    deserialized = fake_gpu.record.deserialized
    with pytest.raises(LoadError, match="sha256 differs"):
        TrtRunner(plan, device="cuda").activate()
    assert fake_gpu.record.deserialized == deserialized  # refused before deserialization
    from accelkit.errors import SpecError

    with pytest.raises(
        SpecError, match="do not match the generator spec"
    ):  # trusted, loaded, then the spec check
        TrtRunner(plan, device="cuda", trust_engine=True).activate()
    assert fake_gpu.record.deserialized == deserialized + 1


def test_deserialization_failure_is_one_line(fake_gpu: Any, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        b"not a plan at all",
        version="10.13.0.35",
        gpu={"name": "Fake GPU 80GB", "compute_capability": "9.0"},
    )
    with pytest.raises(LoadError) as info:
        TrtRunner(plan, device="cuda").activate()
    msg = str(info.value)
    assert "could not deserialize" in msg and "accelkit build" in msg and "\n" not in msg


# --------------------------------------------------------------------------- GPU: real engines
@pytest.fixture
def trt_gpu() -> None:
    for problem in (tensorrt_import_problem(), polygraphy_import_problem()):
        if problem is not None:
            pytest.skip(f"TensorRT is not usable here: {problem}")
    try:
        gpu_identity()
    except BackendUnavailableError as exc:
        pytest.skip(f"no CUDA GPU: {exc}")
    pytest.importorskip("onnx", reason="onnx builds the test models")


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize(
    ("kind", "spec", "atol"),
    [("latent", SPEC, 1e-4), ("label", SPEC_LABEL, 1e-4), ("fp16", SPEC, 2e-2)],
)
def test_engine_matches_onnxruntime(
    trt_gpu: None, tmp_path: Path, kind: str, spec: GeneratorSpec, atol: float
) -> None:
    path = tiny_onnx(tmp_path / f"{kind}.onnx", kind)
    stages: list[str] = []
    plan = EngineFromOnnx(
        "1:4:8", cache_dir=tmp_path / "cache", tf32=False, progress=lambda s, f: stages.append(s)
    )(onnx_artifact(path, spec, "fp16" if kind == "fp16" else "fp32"))
    assert plan.format == "trt" and plan.path is not None and plan.path.is_file()
    assert plan.meta["engine_cache"] == "miss" and plan.meta["batch_range"] == [1, 4, 8]
    assert plan.meta["tensorrt"]["strongly_typed"] is True and plan.meta["build_seconds"] > 0
    assert "parsing ONNX" in stages and "building engine" in stages
    assert plan.meta["gpu"]["compute_capability"] == gpu_identity()["compute_capability"]
    with TrtRunner(plan, device="cuda") as runner:
        for batch in (1, 5, 8):
            feeds = feeds_for(spec, batch, seed=batch)
            ref_feeds = {
                k: (v.astype(np.float16) if kind == "fp16" and k == "z" else v)
                for k, v in feeds.items()
            }
            got = runner.infer(feeds)
            assert got.dtype == np.float32 and got.shape == (batch, 3, 4, 4)
            np.testing.assert_allclose(got, ort_reference(path, ref_feeds), atol=atol, rtol=0)
        info = runner.describe()
    assert info["backend"] == "trt" and info["batch_range"] == [1, 4, 8]
    assert info["plan_sha256"] == sha256_file(plan.path) and info["tensorrt"]


@pytest.mark.trt
@pytest.mark.gpu
def test_runner_builds_from_onnx_and_checks_batch(trt_gpu: None, tmp_path: Path) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    with TrtRunner(
        art, device="cuda", batch_range="1:2:4", cache_dir=str(tmp_path / "cache")
    ) as runner:
        out = runner.infer(feeds_for(SPEC, 3))
        assert out.shape == (3, 3, 4, 4)
        with pytest.raises(InputError, match="outside the engine's profile 1..4"):
            runner.prepare(feeds_for(SPEC, 5))
        prepared = runner.prepare(feeds_for(SPEC, 2))
        first = runner.run(prepared)
        runner.synchronize()
        assert np.isfinite(runner.to_numpy(first)).all()


@pytest.mark.trt
@pytest.mark.gpu
def test_real_plan_trust_and_compatibility(trt_gpu: None, tmp_path: Path) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    plan = EngineFromOnnx("1:2:4", cache_dir=tmp_path / "cache", out=tmp_path / "g.plan")(art)
    assert plan.path is not None
    side_file = sidecar_path(plan.path)
    side = json.loads(side_file.read_text())
    side["meta"]["tensorrt"]["version"] = "0.0.0-other"
    side_file.write_text(json.dumps(side))
    with pytest.raises(LoadError, match="built with TensorRT 0.0.0-other"):
        TrtRunner(plan, device="cuda").activate()
    with TrtRunner(plan, device="cuda", rebuild=True, cache_dir=str(tmp_path / "cache")) as runner:
        assert runner.infer(feeds_for(SPEC, 2)).shape == (2, 3, 4, 4)
    side_file.unlink()
    with pytest.raises(LoadError, match="has no sidecar"):
        TrtRunner(plan, device="cuda").activate()
    with TrtRunner(plan, device="cuda", trust_engine=True) as runner:  # the user vouches for it
        assert runner.infer(feeds_for(SPEC, 2)).shape == (2, 3, 4, 4)
        assert runner.describe()["plan_trusted_by"] == "trust_engine"
