"""TensorRT engine pass and runner.

Everything that needs no GPU runs everywhere: batch-range parsing, engine cache keys,
plan compatibility checks, availability reasons, lazy imports, input validation,
progress accounting. Tests marked ``trt`` build real engines from tiny ONNX models and
compare them with ONNX Runtime; they skip, with the reason, where TensorRT or a CUDA
GPU is missing.

``pytest.importorskip("tensorrt")`` is not enough here: the ``tensorrt-stubs`` package
installs a ``tensorrt/`` folder of ``.pyi`` files that Python imports as an empty
namespace package, so the skip uses :func:`tensorrt_import_problem` instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.artifact import Artifact, read_sidecar, sidecar_path
from accelkit.files import sha256_file
from accelkit.errors import (
    BackendUnavailableError,
    InputError,
    LoadError,
    MissingDependencyError,
    SpecError,
)
from accelkit.passes.engine import (
    CACHE_ENV,
    EngineFromOnnx,
    _ProgressTracker,
    check_network_inputs,
    check_plan_compatible,
    default_cache_dir,
    engine_cache_key,
    gpu_identity,
    onnx_fingerprint,
    parse_batch_range,
    profile_shapes,
    tensorrt_import_problem,
)
from accelkit.runners.trt_runner import TrtRunner
from accelkit.spec import GeneratorSpec, InputSpec

REPO = Path(__file__).resolve().parents[2]
Z = InputSpec("z", "latent", (8,))
LABEL = InputSpec("label", "label", (), "int64", 10)
SPEC = GeneratorSpec(inputs=(Z,), output_shape=(3, 4, 4))
SPEC_LABEL = GeneratorSpec(inputs=(Z, LABEL), output_shape=(3, 4, 4))


# --------------------------------------------------------------------------- fixtures
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
    ftype, np_f = (TensorProto.FLOAT16, np.float16) if kind == "fp16" else (TensorProto.FLOAT, np.float32)
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 48)) * 0.3).astype(np_f), "W"),
        numpy_helper.from_array(np.array([-1, 3, 4, 4], dtype=np.int64), "shape"),
    ]
    inputs = [helper.make_tensor_value_info("z", ftype, ["batch", 8])]
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"])]
    pre = "h"
    if kind == "label":
        inits.append(numpy_helper.from_array((rng.standard_normal((10, 48)) * 0.3).astype(np.float32), "E"))
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]))
        nodes += [helper.make_node("Gather", ["E", "label"], ["emb"], axis=0), helper.make_node("Add", ["h", "emb"], ["h2"])]
        pre = "h2"
    nodes += [helper.make_node("Reshape", [pre, "shape"], ["r"]), helper.make_node("Tanh", ["r"], ["image"])]
    graph = helper.make_graph(
        nodes, "tiny", inputs, [helper.make_tensor_value_info("image", ftype, ["batch", 3, 4, 4])], initializer=inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path


def onnx_artifact(path: Path, spec: GeneratorSpec = SPEC, precision: str = "fp32") -> Artifact:
    return Artifact(format="onnx", spec=spec, path=path, precision=precision, source=str(path))


GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "driver": "12.4"}


def plan_sidecar(version: str = "10.13.0.35", gpu: dict[str, str] | None = None) -> dict[str, Any]:
    return {"format": "trt", "meta": {"tensorrt": {"version": version}, "gpu": dict(gpu or GPU)}}


# --------------------------------------------------------------------------- batch range
@pytest.mark.parametrize(
    ("text", "expected"),
    [("1:8:64", (1, 8, 64)), ("8", (8, 8, 8)), (" 2:4:4 ", (2, 4, 4)), ("1:1:1", (1, 1, 1)), ("3 : 5 : 9", (3, 5, 9))],
)
def test_parse_batch_range_good(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_batch_range(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not MIN:OPT:MAX"),
        ("a:b:c", "is not MIN:OPT:MAX"),
        ("1:8", "is not MIN:OPT:MAX"),
        ("1:2:3:4", "is not MIN:OPT:MAX"),
        ("1.5:2:3", "is not MIN:OPT:MAX"),
        ("0:1:2", "positive"),
        ("-1:2:3", "positive"),
        ("0", "positive"),
        ("8:4:16", "MIN <= OPT <= MAX"),
        ("1:64:8", "MIN <= OPT <= MAX"),
    ],
)
def test_parse_batch_range_bad(text: str, says: str) -> None:
    with pytest.raises(InputError) as info:
        parse_batch_range(text)
    msg = str(info.value)
    assert says in msg
    assert "e.g. 1:8:64" in msg and "single N" in msg  # the fix hint
    assert "\n" not in msg


def test_engine_pass_validates_options_cheaply() -> None:
    assert EngineFromOnnx("2:4:8").batch_range == (2, 4, 8)
    assert EngineFromOnnx((1, 2, 3)).batch_range == (1, 2, 3)
    with pytest.raises(InputError, match="MIN <= OPT <= MAX"):
        EngineFromOnnx("4:2:1")
    with pytest.raises(InputError, match="workspace"):
        EngineFromOnnx(workspace=0)
    with pytest.raises(InputError, match="optimization level"):
        EngineFromOnnx(builder_optimization_level=9)
    with pytest.raises(InputError, match="not a CUDA device"):
        EngineFromOnnx(device="cpu")


# --------------------------------------------------------------------------- cache keys
KEY_ARGS: dict[str, Any] = dict(
    onnx_sha256="ab" * 32,
    trt_version="10.13.0.35",
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability="9.0",
    batch_range=(1, 8, 64),
    input_shapes={"z": [512], "label": []},
    options={"workspace": 1 << 30, "builder_optimization_level": None, "strongly_typed": True},
)


def test_cache_key_is_stable_hex() -> None:
    a = engine_cache_key(**KEY_ARGS)
    assert a == engine_cache_key(**KEY_ARGS)
    assert len(a) == 64 and int(a, 16) >= 0


def test_cache_key_ignores_option_and_input_order() -> None:
    reordered = dict(KEY_ARGS)
    reordered["options"] = dict(reversed(list(KEY_ARGS["options"].items())))
    reordered["input_shapes"] = {"label": [], "z": [512]}
    assert engine_cache_key(**reordered) == engine_cache_key(**KEY_ARGS)
    assert engine_cache_key(**{**KEY_ARGS, "batch_range": [1, 8, 64]}) == engine_cache_key(**KEY_ARGS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("onnx_sha256", "cd" * 32),
        ("trt_version", "10.13.0.36"),
        ("gpu_name", "NVIDIA H200"),
        ("compute_capability", "8.9"),
        ("batch_range", (1, 8, 32)),
        ("input_shapes", {"z": [256], "label": []}),
        ("input_shapes", {"z": [512]}),
        ("options", {"workspace": 1 << 31, "builder_optimization_level": None, "strongly_typed": True}),
        ("options", {"workspace": 1 << 30, "builder_optimization_level": 5, "strongly_typed": True}),
        ("options", None),
    ],
)
def test_cache_key_changes_with_every_component(field: str, value: Any) -> None:
    assert engine_cache_key(**{**KEY_ARGS, field: value}) != engine_cache_key(**KEY_ARGS)


def test_onnx_fingerprint_covers_external_data(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx builds the test model")
    path = tiny_onnx(tmp_path / "g.onnx", external=True)
    data = tmp_path / "g.onnx.data"
    assert data.is_file()
    before, file_sha = onnx_fingerprint(path), sha256_file(path)
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert sha256_file(path) == file_sha  # the .onnx itself did not change...
    assert onnx_fingerprint(path) != before  # ...but the fingerprint sees the weights


def test_onnx_fingerprint_plain_file_is_its_sha256(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx builds the test model")
    path = tiny_onnx(tmp_path / "g.onnx")
    assert onnx_fingerprint(path) == sha256_file(path)


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert EngineFromOnnx().cache_dir == tmp_path / "c"
    assert EngineFromOnnx(cache_dir=tmp_path / "d").cache_dir == tmp_path / "d"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir() == Path("~/.cache/accelkit/engines").expanduser()


# --------------------------------------------------------------------------- compatibility
def test_plan_compatible_when_everything_matches() -> None:
    assert check_plan_compatible(plan_sidecar(), "10.13.0.35", GPU) is None


def test_plan_incompatible_tensorrt_version() -> None:
    reason = check_plan_compatible(plan_sidecar("10.12.0.36"), "10.13.0.35", GPU)
    assert reason is not None and "10.12.0.36" in reason and "10.13.0.35" in reason and "TensorRT" in reason


def test_plan_incompatible_compute_capability() -> None:
    other = {"name": "NVIDIA L4", "compute_capability": "8.9"}
    reason = check_plan_compatible(plan_sidecar(), "10.13.0.35", other)
    assert reason is not None and "9.0" in reason and "8.9" in reason and "compute capability" in reason


def test_plan_incompatible_gpu_model_same_capability() -> None:
    other = {"name": "NVIDIA H100 PCIe", "compute_capability": "9.0"}
    reason = check_plan_compatible(plan_sidecar(), "10.13.0.35", other)
    assert reason is not None and "NVIDIA H100 PCIe" in reason


@pytest.mark.parametrize(
    ("sidecar", "says"),
    [
        ({"format": "trt", "meta": {}}, "TensorRT version"),
        ({"format": "trt", "meta": {"tensorrt": {"version": "10.13.0.35"}}}, "GPU"),
        ({"format": "onnx", "meta": {}}, "not a TensorRT plan"),
    ],
)
def test_plan_incompatible_when_sidecar_lacks_facts(sidecar: dict[str, Any], says: str) -> None:
    reason = check_plan_compatible(sidecar, "10.13.0.35", GPU)
    assert reason is not None and says in reason


def test_plan_version_falls_back_to_sidecar_versions() -> None:
    side = {"format": "trt", "versions": {"tensorrt": "10.13.0.35"}, "meta": {"gpu": GPU}}
    assert check_plan_compatible(side, "10.13.0.35", GPU) is None


# --------------------------------------------------------------------------- network checks
def test_profile_shapes_per_input() -> None:
    shapes = profile_shapes(SPEC_LABEL, (1, 8, 64))
    assert shapes == {"z": ((1, 8), (8, 8), (64, 8)), "label": ((1,), (8,), (64,))}


def test_check_network_inputs() -> None:
    check_network_inputs({"z": [-1, 8], "label": [-1]}, SPEC_LABEL, (1, 8, 64))
    check_network_inputs({"z": [4, 8]}, SPEC, (4, 4, 4))  # fixed batch, fixed range
    with pytest.raises(SpecError, match="do not match"):
        check_network_inputs({"x": [-1, 8]}, SPEC, (1, 8, 64))
    with pytest.raises(SpecError, match="per-sample shape"):
        check_network_inputs({"z": [-1, 16]}, SPEC, (1, 8, 64))
    with pytest.raises(SpecError, match="rank"):
        check_network_inputs({"z": [-1, 8, 1]}, SPEC, (1, 8, 64))
    with pytest.raises(InputError, match="fixed batch of 4"):
        check_network_inputs({"z": [4, 8]}, SPEC, (1, 8, 64))


# --------------------------------------------------------------------------- progress
def test_progress_tracker_reports_nested_phases() -> None:
    seen: list[tuple[str, float | None]] = []
    tr = _ProgressTracker(lambda stage, frac: seen.append((stage, frac)))
    tr.phase_start("Building engine", None, 2)
    tr.phase_start("Tactics", "Building engine", 4)
    assert tr.step_complete("Tactics", 1) is True
    tr.phase_finish("Tactics")
    assert tr.step_complete("Building engine", 1) is True
    tr.phase_finish("Building engine")
    assert seen == [
        ("Building engine", 0.0),
        ("Building engine > Tactics", 0.0),
        ("Building engine > Tactics", 0.5),
        ("Building engine > Tactics", 1.0),
        ("Building engine", 1.0),
        ("Building engine", 1.0),
    ]


def test_progress_tracker_survives_a_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def bad(stage: str, frac: float | None) -> None:
        calls.append(stage)
        raise RuntimeError("boom")

    tr = _ProgressTracker(bad)
    tr.phase_start("p", None, 3)
    assert tr.step_complete("p", 0) is True  # never cancels the build
    tr.phase_finish("p")
    assert calls == ["p"]  # disabled after the first failure
    assert "progress callback raised" in caplog.text
    _ProgressTracker(None).emit("x", 0.5)  # no callback: nothing happens


# --------------------------------------------------------------------------- availability & imports
def test_availability_on_cpu_device_names_cuda() -> None:
    reason = TrtRunner.availability("cpu")
    assert reason is not None and "GPU" in reason and "--device cuda" in reason


def test_availability_on_cuda_names_what_is_missing() -> None:
    reason = TrtRunner.availability("cuda")
    if reason is None:
        pytest.skip("TensorRT and a CUDA GPU are both usable here; nothing is missing")
    low = reason.lower()
    problem = tensorrt_import_problem()
    if problem is not None:
        assert "tensorrt is not importable" in low and "accelkit[gpu]" in reason
    try:
        gpu_identity()
    except BackendUnavailableError:
        assert "no cuda gpu" in low
    assert "\n" not in reason


def test_gpu_identity_raises_or_describes() -> None:
    try:
        ident = gpu_identity()
    except BackendUnavailableError as exc:
        assert "no CUDA GPU" in str(exc) and "torch" in str(exc)
        return
    assert set(ident) >= {"name", "compute_capability", "driver"}
    major, minor = ident["compute_capability"].split(".")
    assert major.isdigit() and minor.isdigit()


def test_stub_only_tensorrt_counts_as_missing(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "tensorrt"
    fake.mkdir(parents=True)
    (fake / "__init__.pyi").write_text("__version__: str\n")  # what tensorrt-stubs installs
    code = (
        "import sys; sys.path[:0] = [%r, %r]\n"
        "from accelkit.passes.engine import tensorrt_import_problem\n"
        "import tensorrt; print('namespace' if tensorrt.__file__ is None else 'real')\n"
        "print(tensorrt_import_problem())\n"
    ) % (str(tmp_path / "site"), str(REPO))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "namespace"
    assert "only type stubs" in lines[1] and "accelkit[gpu]" in lines[1]


def test_import_does_not_load_tensorrt_or_cuda_libraries() -> None:
    code = (
        "import sys\n"
        "import accelkit.runners.trt_runner, accelkit.passes.engine\n"
        "from accelkit.runners import runner_class\n"
        "runner_class('trt')\n"
        "print(','.join(m for m in ('tensorrt', 'tensorrt_bindings', 'pycuda', 'cuda', 'torch', 'onnxruntime') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------- input errors (no GPU needed)
def test_engine_pass_refuses_non_onnx_artifact() -> None:
    art = Artifact(format="torch", spec=SPEC, module=object())
    with pytest.raises(InputError, match="needs an ONNX artifact"):
        EngineFromOnnx()(art)


def test_engine_pass_refuses_missing_onnx_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        EngineFromOnnx()(onnx_artifact(tmp_path / "missing.onnx"))


def test_engine_pass_refuses_existing_out_without_force(tmp_path: Path) -> None:
    (tmp_path / "g.onnx").write_bytes(b"not checked before the out test")
    out = tmp_path / "g.plan"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        EngineFromOnnx(out=out)(onnx_artifact(tmp_path / "g.onnx"))


def test_engine_pass_without_tensorrt_names_the_extra(tmp_path: Path) -> None:
    if tensorrt_import_problem() is None:
        pytest.skip("tensorrt is importable here")
    pytest.importorskip("onnx", reason="onnx builds the test model")
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    with pytest.raises(MissingDependencyError, match=r"accelkit\[gpu\]"):
        EngineFromOnnx(cache_dir=tmp_path / "cache")(art)


def test_runner_constructor_is_cheap_and_validates(tmp_path: Path) -> None:
    plan = onnx_artifact(tmp_path / "g.onnx")
    runner = TrtRunner(plan, device="cuda", batch_range="1:2:4")  # no import, no device work
    assert runner.options["batch_range"] == [1, 2, 4] and not runner.active
    with pytest.raises(InputError, match="runs TensorRT plans or ONNX"):
        TrtRunner(Artifact(format="torch", spec=SPEC, module=object()), device="cuda")
    with pytest.raises(InputError, match="unknown trt runner option"):
        TrtRunner(plan, device="cuda", threads=2)
    with pytest.raises(InputError, match="not a CUDA device"):
        TrtRunner(plan, device="cpu")
    with pytest.raises(InputError, match="precision stored in its ONNX"):
        TrtRunner(plan, device="cuda", precision="fp16")


def test_create_runner_refuses_here_with_reason(tmp_path: Path) -> None:
    from accelkit.runners import create_runner

    if TrtRunner.availability("cuda") is None:
        pytest.skip("the trt backend is available here")
    with pytest.raises(BackendUnavailableError, match="backend 'trt' on cuda cannot run here"):
        create_runner("trt", onnx_artifact(tmp_path / "g.onnx"), device="cuda")


# --------------------------------------------------------------------------- GPU: real engines
@pytest.fixture
def trt_gpu() -> None:
    problem = tensorrt_import_problem()
    if problem is not None:
        pytest.skip(f"TensorRT is not usable here: {problem}")
    try:
        gpu_identity()
    except BackendUnavailableError as exc:
        pytest.skip(f"no CUDA GPU: {exc}")
    pytest.importorskip("onnx", reason="onnx builds the test models")


def ort_reference(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime gives the reference outputs")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, feeds)[0], dtype=np.float32)


def feeds_for(spec: GeneratorSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {"z": rng.standard_normal((batch, 8)).astype(np.float32)}
    if any(i.name == "label" for i in spec.inputs):
        out["label"] = rng.integers(0, 10, size=(batch,)).astype(np.int64)
    return out


@pytest.mark.trt
@pytest.mark.parametrize(("kind", "spec", "atol"), [("latent", SPEC, 1e-4), ("label", SPEC_LABEL, 1e-4), ("fp16", SPEC, 2e-2)])
def test_engine_matches_onnxruntime(trt_gpu: None, tmp_path: Path, kind: str, spec: GeneratorSpec, atol: float) -> None:
    path = tiny_onnx(tmp_path / f"{kind}.onnx", kind)
    stages: list[str] = []
    plan = EngineFromOnnx(
        "1:4:8", cache_dir=tmp_path / "cache", tf32=False, progress=lambda s, f: stages.append(s)
    )(onnx_artifact(path, spec, "fp16" if kind == "fp16" else "fp32"))
    assert plan.format == "trt" and plan.path is not None and plan.path.is_file()
    assert plan.meta["engine_cache"] == "miss" and plan.meta["batch_range"] == [1, 4, 8]
    assert plan.meta["tensorrt"]["strongly_typed"] is True and plan.meta["build_seconds"] > 0
    assert "parsing ONNX" in stages and "building engine" in stages
    side = read_sidecar(plan.path)
    assert side is not None and side["format"] == "trt" and side["sha256"] == sha256_file(plan.path)
    assert side["meta"]["gpu"]["compute_capability"] == gpu_identity()["compute_capability"]
    with TrtRunner(plan, device="cuda") as runner:
        for batch in (1, 5, 8):
            feeds = feeds_for(spec, batch, seed=batch)
            ref_feeds = {k: (v.astype(np.float16) if kind == "fp16" and k == "z" else v) for k, v in feeds.items()}
            got = runner.infer(feeds)
            assert got.dtype == np.float32 and got.shape == (batch, 3, 4, 4)
            np.testing.assert_allclose(got, ort_reference(path, ref_feeds), atol=atol, rtol=0)
        info = runner.describe()
    assert info["backend"] == "trt" and info["batch_range"] == [1, 4, 8]
    assert info["plan_sha256"] == sha256_file(plan.path) and info["tensorrt"]


@pytest.mark.trt
def test_engine_cache_hit_and_timing_cache(trt_gpu: None, tmp_path: Path) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    first = EngineFromOnnx("1:2:4", cache_dir=tmp_path / "cache")(art)
    second = EngineFromOnnx("1:2:4", cache_dir=tmp_path / "cache")(art)
    assert first.meta["engine_cache"] == "miss" and second.meta["engine_cache"] == "hit"
    assert first.path is not None and first.path == second.path and first.meta["engine_cache_key"] == second.meta["engine_cache_key"]
    assert list((tmp_path / "cache").glob("timing-*.cache"))
    other = EngineFromOnnx("1:2:8", cache_dir=tmp_path / "cache")(art)
    assert other.meta["engine_cache"] == "miss" and other.path != first.path
    out = EngineFromOnnx("1:2:4", cache_dir=tmp_path / "cache", out=tmp_path / "g.plan")(art)
    assert out.path == tmp_path / "g.plan" and sidecar_path(out.path).is_file()
    assert sha256_file(out.path) == sha256_file(first.path)


@pytest.mark.trt
def test_runner_builds_from_onnx_and_checks_batch(trt_gpu: None, tmp_path: Path) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    with TrtRunner(art, device="cuda", batch_range="1:2:4", cache_dir=str(tmp_path / "cache")) as runner:
        out = runner.infer(feeds_for(SPEC, 3))
        assert out.shape == (3, 3, 4, 4)
        with pytest.raises(InputError, match="outside the engine's profile 1..4"):
            runner.prepare(feeds_for(SPEC, 5))
        prepared = runner.prepare(feeds_for(SPEC, 2))
        first = runner.run(prepared)
        runner.synchronize()
        assert np.isfinite(runner.to_numpy(first)).all()


@pytest.mark.trt
def test_incompatible_plan_is_refused_or_rebuilt(trt_gpu: None, tmp_path: Path) -> None:
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
