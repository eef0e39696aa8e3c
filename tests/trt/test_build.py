"""accelkit.trt.build: the EngineFromOnnx pass, Polygraphy's loader chain, engine and timing caches.

Without TensorRT this runs for real: option checks, cache keys and entries, the loader
chain as constructed (inspected, not run), the timing-cache merge under the lock (with
a fake ``IBuilderConfig``), and the pass's orchestration around a fake build. Tests
marked ``trt`` build real engines and skip, with the reason, without TensorRT and a GPU.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit import cache as cache_mod
from accelkit.artifact import Artifact, read_sidecar
from accelkit.cache import Cache
from accelkit.errors import ExportError, InputError, MissingDependencyError, SpecError
from accelkit.files import sha256_file
from accelkit.spec import GeneratorSpec, InputSpec, parse_batch_range
from accelkit.trt import build as build_mod
from accelkit.trt.build import (
    EngineFromOnnx,
    ProgressTracker,
    check_network_inputs,
    engine_cache_key,
    engine_loaders,
    lookup_engine,
    make_progress_monitor,
    merge_timing_cache,
    onnx_fingerprint,
    profile_shapes,
    read_timing_cache,
    store_engine,
    timing_cache_path,
)
from accelkit.trt.platform import check_plan_trusted, tensorrt_import_problem
from tests.trt.helpers import (
    GPU,
    SPEC,
    SPEC_LABEL,
    TRT_VERSION,
    FakeConfig,
    fake_trt,
    onnx_artifact,
    read_fake_cache,
    run_threads,
    tiny_onnx,
)

needs_polygraphy = pytest.mark.skipif(
    __import__("importlib").util.find_spec("polygraphy") is None,
    reason="polygraphy is not installed (pip install 'accelkit[dev]' or 'polygraphy>=0.49')",
)


# --------------------------------------------------------------------------- batch range and options
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:8:64", (1, 8, 64)),
        ("8", (8, 8, 8)),
        (" 2:4:4 ", (2, 4, 4)),
        ("1:1:1", (1, 1, 1)),
        ("3 : 5 : 9", (3, 5, 9)),
    ],
)
def test_parse_batch_range_good(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_batch_range(text) == expected
    assert EngineFromOnnx(text).batch_range == expected


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
        EngineFromOnnx(text)
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
    with pytest.raises(InputError, match="workspace"):
        EngineFromOnnx(workspace=True)
    with pytest.raises(InputError, match="optimization level"):
        EngineFromOnnx(builder_optimization_level=9)
    with pytest.raises(InputError, match="not a CUDA device"):
        EngineFromOnnx(device="cpu")
    assert EngineFromOnnx(device="cuda:1").device_index == 1


def test_options_recorded_and_keyed() -> None:
    p = EngineFromOnnx(
        "1:2:4", workspace=1 << 28, builder_optimization_level=5, tf32=False, cache=False
    )
    assert p.options() == {
        "batch_range": [1, 2, 4],
        "workspace": 1 << 28,
        "builder_optimization_level": 5,
        "tf32": False,
        "strongly_typed": True,
        "cache": False,
    }
    assert p.key_options() == {
        "workspace": 1 << 28,
        "builder_optimization_level": 5,
        "tf32": False,
        "strongly_typed": True,
    }


# --------------------------------------------------------------------------- cache keys and folders
KEY_ARGS: dict[str, Any] = dict(
    onnx_sha256="ab" * 32,
    trt_version=TRT_VERSION,
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
    assert engine_cache_key(**{**KEY_ARGS, "batch_range": [1, 8, 64]}) == engine_cache_key(
        **KEY_ARGS
    )


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
        (
            "options",
            {"workspace": 1 << 31, "builder_optimization_level": None, "strongly_typed": True},
        ),
        (
            "options",
            {"workspace": 1 << 30, "builder_optimization_level": 5, "strongly_typed": True},
        ),
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
    data.unlink()
    assert onnx_fingerprint(path) not in (
        before,
        file_sha,
    )  # missing weights are a different model too


def test_onnx_fingerprint_plain_file_is_its_sha256(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx builds the test model")
    path = tiny_onnx(tmp_path / "g.onnx")
    assert onnx_fingerprint(path) == sha256_file(path)


def test_cache_folders_follow_the_cache_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(cache_mod.CACHE_ENV, str(tmp_path / "root"))
    assert EngineFromOnnx().engine_cache.folder == tmp_path / "root" / "engines"
    assert (
        timing_cache_path(TRT_VERSION, GPU)
        == tmp_path / "root" / "trt-timing" / "nvidia-h100-80gb-hbm3-sm9.0-trt10.13.0.35.cache"
    )
    assert EngineFromOnnx(cache_dir=tmp_path / "mine").engine_cache.folder == tmp_path / "mine"
    assert timing_cache_path(TRT_VERSION, GPU, tmp_path / "mine").parent == tmp_path / "mine"
    assert timing_cache_path(TRT_VERSION, GPU, tmp_path / "mine").name.startswith(
        "timing-nvidia-h100"
    )


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
    tr = ProgressTracker(lambda stage, frac: seen.append((stage, frac)))
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

    tr = ProgressTracker(bad)
    tr.phase_start("p", None, 3)
    assert tr.step_complete("p", 0) is True  # never cancels the build
    tr.phase_finish("p")
    assert calls == ["p"]  # disabled after the first failure
    assert "progress callback raised" in caplog.text
    ProgressTracker(None).emit("x", 0.5)  # no callback: nothing happens


def test_progress_monitor_subclasses_tensorrts_and_forwards() -> None:
    trt = fake_trt()
    seen: list[tuple[str, float | None]] = []
    monitor = make_progress_monitor(trt, ProgressTracker(lambda s, f: seen.append((s, f))))
    assert (
        isinstance(monitor, trt.IProgressMonitor) and monitor.initialised
    )  # the base __init__ ran
    monitor.phase_start("Building", None, 2)
    assert monitor.step_complete("Building", 0) is True
    monitor.phase_finish("Building")
    assert seen == [("Building", 0.0), ("Building", 0.5), ("Building", 1.0)]
    assert (
        make_progress_monitor(fake_trt(monitor=False), ProgressTracker(None)) is None
    )  # TensorRT < 10


# --------------------------------------------------------------------------- the loader chain
@needs_polygraphy
def test_loader_chain_is_strongly_typed_with_one_profile(tmp_path: Path) -> None:
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineBytesFromNetwork,
        NetworkFromOnnxPath,
        PostprocessNetwork,
    )

    trt = fake_trt()
    monitor = object()
    loaders = engine_loaders(
        trt,
        tmp_path / "g.onnx",
        SPEC_LABEL,
        (1, 8, 64),
        workspace=1 << 28,
        builder_optimization_level=4,
        timing_cache_data=b"saved tactics",
        progress_monitor=monitor,
    )
    net = loaders.network
    assert isinstance(net, NetworkFromOnnxPath) and net.path == str(tmp_path / "g.onnx")
    assert (
        net.strongly_typed is True
    )  # -> NetworkDefinitionCreationFlag.STRONGLY_TYPED on the network
    assert net.flags is None  # `flags` are ONNX *parser* flags: the network flag must not go there
    assert (
        isinstance(loaders.checked_network, PostprocessNetwork)
        and loaders.checked_network._network is net
    )
    cfg = loaders.config
    assert isinstance(cfg, CreateConfig)
    assert len(cfg.profiles) == 1
    prof = cfg.profiles[0]
    assert list(prof) == ["z", "label"]
    assert tuple(prof["z"]) == ((1, 8), (8, 8), (64, 8)) and tuple(prof["label"]) == (
        (1,),
        (8,),
        (64,),
    )
    assert cfg.memory_pool_limits == {trt.MemoryPoolType.WORKSPACE: 1 << 28}
    assert cfg.builder_optimization_level == 4
    assert (
        cfg.tf32 is True
    )  # tf32=None keeps TensorRT's default (allowed); Polygraphy's default is off
    assert (cfg.fp16, cfg.int8, cfg.bf16, cfg.fp8) == (
        False,
        False,
        False,
        False,
    )  # precision comes from the graph
    assert (
        isinstance(cfg.timing_cache_path, io.BytesIO)
        and cfg.timing_cache_path.getvalue() == b"saved tactics"
    )
    from polygraphy import util as pg_util

    assert (
        pg_util.load_file(cfg.timing_cache_path) == b"saved tactics"
    )  # how CreateConfig reads it (checks .mode)
    assert cfg.progress_monitor is monitor
    eb = loaders.engine_bytes
    assert isinstance(eb, EngineBytesFromNetwork) and eb._network is loaders.checked_network
    assert eb.timing_cache_path is None  # saved by merge_timing_cache under accelkit's lock instead
    assert callable(eb._config) and loaders.built_configs == []


@needs_polygraphy
@pytest.mark.parametrize(
    ("tf32", "has_flag", "want"),
    [(None, True, True), (True, True, True), (False, True, False), (None, False, False)],
)
def test_loader_chain_tf32(
    tf32: bool | None, has_flag: bool, want: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = engine_loaders(fake_trt(tf32=has_flag), "g.onnx", SPEC, (1, 1, 1), tf32=tf32).config
    assert cfg.tf32 is want  # never asks Polygraphy to set a flag this TensorRT lacks
    assert (
        capsys.readouterr().out == ""
    )  # Polygraphy's "TF32 is disabled" note goes to logging, not stdout


@needs_polygraphy
def test_loader_chain_on_tensorrt_without_the_strongly_typed_flag() -> None:
    """TensorRT 11 builds strongly typed always and dropped the flag: Polygraphy must not be asked for it."""
    loaders = engine_loaders(fake_trt(strongly_typed=False), "g.onnx", SPEC, (1, 2, 4))
    assert loaders.network.strongly_typed is False
    assert loaders.config.timing_cache_path is None and loaders.config.progress_monitor is None


@needs_polygraphy
def test_network_check_runs_inside_polygraphy_postprocess() -> None:
    """The check, called the way Polygraphy's PostprocessNetwork calls it (``func(network=...)``)."""
    from polygraphy.backend.trt import PostprocessNetwork

    class Tensor:
        def __init__(self, name: str, shape: list[int]) -> None:
            self.name, self.shape = name, shape

    class Network:
        def __init__(self, *inputs: Tensor) -> None:
            self.inputs = inputs
            self.num_inputs = len(inputs)

        def get_input(self, i: int) -> Tensor:
            return self.inputs[i]

    stages: list[str] = []
    loaders = engine_loaders(
        fake_trt(),
        "g.onnx",
        SPEC_LABEL,
        (1, 8, 64),
        tracker=ProgressTracker(lambda s, f: stages.append(s)),
    )
    good = Network(Tensor("z", [-1, 8]), Tensor("label", [-1]))
    builder, parser = object(), object()
    assert PostprocessNetwork((builder, good, parser), loaders.network_check)() == (
        builder,
        good,
        parser,
    )
    assert stages == ["building engine"]
    with pytest.raises(SpecError, match="per-sample shape"):
        PostprocessNetwork(
            (builder, Network(Tensor("z", [-1, 16]), Tensor("label", [-1])), parser),
            loaders.network_check,
        )()
    with pytest.raises(InputError, match="fixed batch of 2"):
        PostprocessNetwork(
            (builder, Network(Tensor("z", [2, 8]), Tensor("label", [2])), parser),
            loaders.network_check,
        )()


# --------------------------------------------------------------------------- timing cache
def _write_fake_cache(path: Path, entries: set[str], device: str = "H100") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"device": device, "entries": sorted(entries)}))


def test_timing_cache_merge_keeps_entries_already_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "t" / "timing.cache"
    assert merge_timing_cache(path, FakeConfig({"a"})) is True  # no file yet: created
    assert read_fake_cache(path) == {"a"}
    _write_fake_cache(path, {"a", "b"})  # another build added "b" meanwhile
    assert merge_timing_cache(path, FakeConfig({"c"})) is True
    assert read_fake_cache(path) == {"a", "b", "c"}
    assert read_timing_cache(path) == path.read_bytes()


def test_concurrent_merges_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "timing.cache"
    _write_fake_cache(path, {"old"})
    configs = [FakeConfig({f"build{i}"}, delay=0.15) for i in range(4)]
    run_threads([lambda c=c: merge_timing_cache(path, c) for c in configs])
    assert read_fake_cache(path) == {"old", "build0", "build1", "build2", "build3"}


def test_without_the_lock_concurrent_merges_would_lose_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control for the test above: the race it guards against is real with these fakes."""
    monkeypatch.setattr(build_mod, "file_lock", lambda p: contextlib.nullcontext())
    path = tmp_path / "timing.cache"
    _write_fake_cache(path, {"old"})
    configs = [FakeConfig({f"build{i}"}, delay=0.3) for i in range(4)]
    run_threads([lambda c=c: merge_timing_cache(path, c) for c in configs])
    assert len(read_fake_cache(path)) < 5


def test_timing_cache_from_another_device_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "timing.cache"
    _write_fake_cache(path, {"foreign"}, device="A100")
    with caplog.at_level(logging.WARNING):
        assert merge_timing_cache(path, FakeConfig({"ours"})) is True
    assert read_fake_cache(path) == {"ours"} and "from another TensorRT or GPU" in caplog.text


def test_unwritable_timing_cache_costs_a_warning_not_the_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        assert merge_timing_cache(blocker / "timing.cache", FakeConfig({"a"})) is False
        assert read_timing_cache(blocker / "timing.cache") is None
    assert "could not save timing cache" in caplog.text


def test_read_timing_cache_missing_or_empty_is_none(tmp_path: Path) -> None:
    assert read_timing_cache(tmp_path / "none.cache") is None
    (tmp_path / "empty.cache").write_bytes(b"")
    assert read_timing_cache(tmp_path / "empty.cache") is None


# --------------------------------------------------------------------------- engine cache entries
def test_engine_cache_entries_are_verified(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache("engines", folder=tmp_path / "engines")
    key = "f" * 64
    assert lookup_engine(cache, key) is None
    stored = store_engine(cache, key, b"PLAN", {"build_seconds": 1.5})
    assert stored is not None and stored.read_bytes() == b"PLAN"
    found = lookup_engine(cache, key)
    assert found is not None and found[0] == stored and found[1] == {"build_seconds": 1.5}
    stored.write_bytes(b"EVIL")  # swapped after it was stored
    with caplog.at_level(logging.WARNING):
        assert lookup_engine(cache, key) is None
    assert "corrupt" in caplog.text and not stored.exists()


# --------------------------------------------------------------------------- the pass, around a fake build
class _FakeBuilds:
    """Replaces TensorRT, the GPU and the real build; counts builds and records their arguments."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, Any]] = []
        monkeypatch.setattr(build_mod, "load_tensorrt", lambda feature: fake_trt())
        monkeypatch.setattr(build_mod, "load_polygraphy", lambda feature: None)
        monkeypatch.setattr(
            build_mod, "gpu_identity", lambda index: dict(GPU, memory_bytes=80 << 30)
        )
        monkeypatch.setattr(build_mod, "use_device", lambda index: contextlib.nullcontext())
        fakes = self

        def fake_build(
            self: EngineFromOnnx,
            trt: Any,
            onnx_path: Path,
            spec: GeneratorSpec,
            timing: Path | None,
        ) -> tuple[bytes, dict[str, Any]]:
            fakes.calls.append(
                {"onnx": onnx_path, "timing": timing, "batch_range": self.batch_range}
            )
            self.tracker.emit("building engine", None)
            return f"PLAN{len(fakes.calls)}".encode(), {
                "build_seconds": 0.25,
                "io_tensors": {"z": {"mode": "input"}},
            }

        monkeypatch.setattr(EngineFromOnnx, "_build", fake_build)


@pytest.fixture
def fake_builds(monkeypatch: pytest.MonkeyPatch) -> _FakeBuilds:
    return _FakeBuilds(monkeypatch)


@pytest.fixture
def onnx_file(tmp_path: Path) -> Artifact:
    path = tmp_path / "g.onnx"
    path.write_bytes(b"an onnx model (not parsed: the build is faked)")
    return onnx_artifact(path)


def test_pass_builds_writes_plan_and_sidecar(
    fake_builds: _FakeBuilds, onnx_file: Artifact, tmp_path: Path
) -> None:
    stages: list[str] = []
    plan = EngineFromOnnx(
        "1:2:4", cache_dir=tmp_path / "cache", progress=lambda s, f: stages.append(s)
    )(onnx_file)
    assert (
        plan.format == "trt"
        and plan.path == tmp_path / "g.plan"
        and plan.path.read_bytes() == b"PLAN1"
    )
    side = read_sidecar(plan.path)
    assert side is not None and side["sha256"] == sha256_file(plan.path)
    meta = side["meta"]
    assert meta["tensorrt_version"] == TRT_VERSION and meta["tensorrt"] == {
        "version": TRT_VERSION,
        "strongly_typed": True,
    }
    assert meta["gpu"] == {"name": GPU["name"], "compute_capability": "9.0", "driver": "12.4"}
    assert (
        meta["engine_cache"] == "miss"
        and meta["batch_range"] == [1, 2, 4]
        and meta["build_seconds"] == 0.25
    )
    assert (
        meta["onnx_sha256"] == sha256_file(onnx_file.path) and len(meta["engine_cache_key"]) == 64
    )  # type: ignore[arg-type]
    assert (
        side["passes"][-1]["name"] == "EngineFromOnnx"
        and side["passes"][-1]["engine_cache"] == "miss"
    )
    assert side["passes"][-1]["options"]["batch_range"] == [1, 2, 4]
    assert check_plan_trusted(plan.path) is not None  # the runner will accept what the pass wrote
    assert (
        fake_builds.calls[0]["timing"]
        == tmp_path / "cache" / "timing-nvidia-h100-80gb-hbm3-sm9.0-trt10.13.0.35.cache"
    )
    assert stages == ["building engine", "engine written"]
    assert Path(meta["engine_cache_path"]).parent == tmp_path / "cache"


def test_pass_uses_the_engine_cache(
    fake_builds: _FakeBuilds, onnx_file: Artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    first = EngineFromOnnx("1:2:4", cache_dir=cache, out=tmp_path / "a.plan")(onnx_file)
    stages: list[str] = []
    second = EngineFromOnnx(
        "1:2:4", cache_dir=cache, out=tmp_path / "b.plan", progress=lambda s, f: stages.append(s)
    )(onnx_file)
    assert (
        len(fake_builds.calls) == 1
        and second.meta["engine_cache"] == "hit"
        and "engine cache hit" in stages
    )
    assert second.path.read_bytes() == first.path.read_bytes() == b"PLAN1"  # type: ignore[union-attr]
    assert (
        second.meta["engine_cache_key"] == first.meta["engine_cache_key"]
        and second.meta["build_seconds"] == 0.25
    )
    other = EngineFromOnnx("1:2:8", cache_dir=cache, out=tmp_path / "c.plan")(
        onnx_file
    )  # another profile: another key
    assert other.meta["engine_cache"] == "miss" and len(fake_builds.calls) == 2
    Path(first.meta["engine_cache_path"]).write_bytes(
        b"tampered"
    )  # a damaged cache entry is rebuilt
    with caplog.at_level(logging.WARNING):
        again = EngineFromOnnx("1:2:4", cache_dir=cache, out=tmp_path / "d.plan")(onnx_file)
    assert (
        again.meta["engine_cache"] == "miss"
        and again.path.read_bytes() == b"PLAN3"
        and "corrupt" in caplog.text
    )  # type: ignore[union-attr]
    forced = EngineFromOnnx("1:2:4", cache_dir=cache, out=tmp_path / "e.plan", rebuild=True)(
        onnx_file
    )
    assert forced.meta["engine_cache"] == "miss" and len(fake_builds.calls) == 4


def test_pass_without_cache(
    fake_builds: _FakeBuilds, onnx_file: Artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache_mod.CACHE_ENV, str(tmp_path / "root"))
    plan = EngineFromOnnx("1:2:4", cache=False)(onnx_file)
    assert plan.meta["engine_cache"] == "off" and plan.meta["engine_cache_path"] is None
    assert fake_builds.calls[0]["timing"] is None  # no shared timing cache either
    assert not (tmp_path / "root").exists()
    timed = EngineFromOnnx(
        "1:2:4", cache=False, out=tmp_path / "t.plan", timing_cache=tmp_path / "my.cache"
    )(onnx_file)
    assert (
        fake_builds.calls[1]["timing"] == tmp_path / "my.cache"
        and timed.meta["engine_cache"] == "off"
    )


def test_pass_default_caches_live_under_the_root(
    fake_builds: _FakeBuilds, onnx_file: Artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache_mod.CACHE_ENV, str(tmp_path / "root"))
    plan = EngineFromOnnx("1:2:4")(onnx_file)
    assert Path(plan.meta["engine_cache_path"]).parent == tmp_path / "root" / "engines"
    assert fake_builds.calls[0]["timing"].parent == tmp_path / "root" / "trt-timing"


def test_pass_refuses_before_any_work(
    fake_builds: _FakeBuilds, onnx_file: Artifact, tmp_path: Path
) -> None:
    out = tmp_path / "exists.plan"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        EngineFromOnnx(out=out)(onnx_file)
    assert out.read_bytes() == b"old" and fake_builds.calls == []
    EngineFromOnnx(out=out, force=True, cache_dir=tmp_path / "c")(onnx_file)
    assert out.read_bytes() == b"PLAN1"


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
    assert not (tmp_path / "g.plan").exists()


# --------------------------------------------------------------------------- GPU: real engines
@pytest.fixture
def trt_gpu() -> None:
    from accelkit.device import gpu_identity
    from accelkit.errors import BackendUnavailableError
    from accelkit.trt.platform import polygraphy_import_problem

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
def test_engine_cache_hit_and_timing_cache(trt_gpu: None, tmp_path: Path) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    stages: list[str] = []
    first = EngineFromOnnx(
        "1:2:4",
        cache_dir=tmp_path / "cache",
        out=tmp_path / "a.plan",
        progress=lambda s, f: stages.append(s),
    )(art)
    second = EngineFromOnnx("1:2:4", cache_dir=tmp_path / "cache", out=tmp_path / "b.plan")(art)
    assert "parsing ONNX" in stages and "building engine" in stages and "engine written" in stages
    assert first.meta["engine_cache"] == "miss" and second.meta["engine_cache"] == "hit"
    assert first.meta["engine_cache_key"] == second.meta["engine_cache_key"]
    assert sha256_file(first.path) == sha256_file(second.path)  # type: ignore[arg-type]
    timing = list((tmp_path / "cache").glob("timing-*.cache"))
    assert len(timing) == 1 and timing[0].stat().st_size > 0
    io_tensors = first.meta["io_tensors"]
    assert io_tensors["z"]["mode"] == "input" and io_tensors["image"]["mode"] == "output"
    other = EngineFromOnnx("1:2:8", cache_dir=tmp_path / "cache", out=tmp_path / "c.plan")(art)
    assert other.meta["engine_cache"] == "miss"


@pytest.mark.trt
@pytest.mark.gpu
def test_engine_build_refuses_spec_mismatch(trt_gpu: None, tmp_path: Path) -> None:
    art = onnx_artifact(
        tiny_onnx(tmp_path / "g.onnx"),
        spec=GeneratorSpec(inputs=(InputSpec("z", "latent", (16,)),), output_shape=(3, 4, 4)),
    )
    with pytest.raises(SpecError, match="per-sample shape"):
        EngineFromOnnx("1:2:4", cache=False)(art)
    assert not (tmp_path / "g.plan").exists()


@pytest.mark.trt
@pytest.mark.gpu
def test_engine_fp16_io_types_recorded(trt_gpu: None, tmp_path: Path) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "h.onnx", "fp16"), precision="fp16")
    plan = EngineFromOnnx("1:2:4", cache=False, tf32=False)(art)
    assert plan.precision == "fp16" and plan.meta["io_tensors"]["z"]["dtype"] == "HALF"
    assert np.isfinite(plan.meta["build_seconds"])


# --------------------------------------------------------------------------- the real loader chain on a fake TensorRT
FAKE_GPU = {"name": "Fake GPU 80GB", "compute_capability": "9.0"}


def test_build_through_polygraphy_on_fake_tensorrt(
    fake_gpu: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Polygraphy's real loaders drive the fake TensorRT: flags, profile, pools, monitor, timing cache, sidecar."""
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx", "label"), SPEC_LABEL)
    stages: list[tuple[str, float | None]] = []
    plan = EngineFromOnnx(
        "1:4:8",
        workspace=1 << 28,
        builder_optimization_level=2,
        cache_dir=tmp_path / "cache",
        progress=lambda s, f: stages.append((s, f)),
    )(art)
    rec = fake_gpu.record
    strongly = 1 << int(fake_gpu.trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert rec.network_flags == [
        strongly
    ]  # the network flag, set by Polygraphy from strongly_typed=True
    (b,) = rec.builds
    assert b["strongly_typed"] is True and b["tf32"] is True and b["precision_flags"] == []
    assert b["workspace"] == 1 << 28 and b["level"] == 2
    assert b["profiles"] == [{"z": ((1, 8), (4, 8), (8, 8)), "label": ((1,), (4,), (8,))}]
    assert b["monitor"] is not None and b["timing_cache_in"] == []
    names = [s for s, _ in stages]
    assert names[:2] == ["parsing ONNX", "building engine"] and names[-1] == "engine written"
    assert ("Building engine", 0.5) in stages and (
        "Building engine",
        1.0,
    ) in stages  # from the IProgressMonitor
    assert rec.deserialized == 1  # the plan was loaded once to record its I/O
    io = plan.meta["io_tensors"]
    assert (
        io["z"] == {"mode": "input", "dtype": "FLOAT", "shape": [-1, 8]}
        and io["label"]["dtype"] == "INT64"
    )
    assert io["image"]["mode"] == "output"
    assert plan.meta["gpu"] == {**FAKE_GPU, "driver": "13.0"} and plan.meta["polygraphy"]
    timing = tmp_path / "cache" / "timing-fake-gpu-80gb-sm9.0-trt10.13.0.35.cache"
    assert json.loads(timing.read_text()) == ["tactic-for-g.onnx-0"]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # Polygraphy's chatter went to logging


def test_second_build_starts_from_and_extends_the_timing_cache(
    fake_gpu: Any, tmp_path: Path
) -> None:
    a = onnx_artifact(tiny_onnx(tmp_path / "a.onnx"))
    b = onnx_artifact(tiny_onnx(tmp_path / "b.onnx", "label"), SPEC_LABEL)
    EngineFromOnnx("1:2:4", cache_dir=tmp_path / "cache")(a)
    EngineFromOnnx("1:2:4", cache_dir=tmp_path / "cache", tf32=False)(b)
    first, second = fake_gpu.record.builds
    assert second["timing_cache_in"] == [
        "tactic-for-a.onnx-0"
    ]  # loaded through CreateConfig(load_timing_cache=...)
    assert second["tf32"] is False
    (timing,) = (tmp_path / "cache").glob("timing-*.cache")
    assert json.loads(timing.read_text()) == ["tactic-for-a.onnx-0", "tactic-for-b.onnx-1"]


def test_damaged_timing_cache_is_built_around(
    fake_gpu: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"))
    timing = tmp_path / "t.cache"
    timing.write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING):
        plan = EngineFromOnnx("1:2:4", cache=False, timing_cache=timing)(art)
    assert plan.path is not None and plan.path.is_file() and "unusable" in caplog.text
    assert json.loads(timing.read_text()) == ["tactic-for-g.onnx-0"]  # replaced by this build's


def test_spec_mismatch_stops_the_real_chain(fake_gpu: Any, tmp_path: Path) -> None:
    spec16 = GeneratorSpec(inputs=(InputSpec("z", "latent", (16,)),), output_shape=(3, 4, 4))
    art = onnx_artifact(tiny_onnx(tmp_path / "g.onnx"), spec16)
    with pytest.raises(SpecError, match="per-sample shape"):
        EngineFromOnnx("1:2:4", cache=False)(art)
    assert fake_gpu.record.builds == [] and not (tmp_path / "g.plan").exists()


def test_parser_failure_is_one_line(
    fake_gpu: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "g.onnx"
    bad.write_bytes(b"this is not protobuf")
    with pytest.raises(ExportError) as info:
        EngineFromOnnx("1:2:4", cache=False)(onnx_artifact(bad))
    msg = str(info.value)
    assert (
        "could not build an engine from g.onnx" in msg
        and "could not read" in msg
        and "\n" not in msg
    )
    assert capsys.readouterr().out == ""
