"""Triton model repository export: layout, config.pbtxt parsed with Triton's own ModelConfig protobuf."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from accelkit.artifact import Artifact, sidecar_path
from accelkit.errors import InputError
from accelkit.serving.options import TritonRepoOptions
from accelkit.serving.repository import build_config, write_model_repository
from tests.fixtures.generators import build, onnx_artifact

pb = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2",
    reason="the serve extra (tritonclient) provides Triton's ModelConfig protobuf",
)


def parse(path: Path):
    """Parse config.pbtxt the way Triton does: protobuf text format into ModelConfig."""
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), pb.ModelConfig())


@pytest.fixture(scope="module")
def dcgan_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled DCGAN exported once to fp32, fp16 and int8 ONNX (what `accelkit export` writes)."""
    from accelkit.pipelines.export import export_onnx
    from accelkit.pipelines.options import ExportOptions, Int8Options

    d = tmp_path_factory.mktemp("exports")
    out = {}
    for prec in ("fp32", "fp16", "int8"):
        dest = d / ("dcgan.onnx" if prec == "fp32" else f"dcgan.{prec}.onnx")
        export_onnx(
            "dcgan",
            ExportOptions(out=dest, precision=prec, int8=Int8Options(calib=16, calib_cache=False)),
        )
        out[prec] = dest
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_dcgan_repository_parses_with_triton_model_config(
    dcgan_exports: dict[str, Path], tmp_path: Path, precision: str
) -> None:
    from accelkit.loading import load_generator

    art = load_generator(str(dcgan_exports[precision]))
    repo = write_model_repository(art, tmp_path / "repo", TritonRepoOptions(name="dcgan"))
    assert repo.checked_with and "ModelConfig" in repo.checked_with
    cfg = parse(tmp_path / "repo" / "dcgan" / "config.pbtxt")
    assert cfg.name == "dcgan" and cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size == 64  # the export's batch range max
    assert [(i.name, pb.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input] == [
        ("z", "TYPE_FP32", [64])
    ]  # fp32 I/O also for fp16/int8 graphs
    assert [(o.name, pb.DataType.Name(o.data_type), list(o.dims)) for o in cfg.output] == [
        ("image", "TYPE_FP32", [3, 64, 64])
    ]
    assert (
        list(cfg.dynamic_batching.preferred_batch_size) == [8]
        and cfg.dynamic_batching.max_queue_delay_microseconds == 500
    )
    assert (
        cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
        and cfg.instance_group[0].count == 1
    )
    assert cfg.parameters["accelkit_precision"].string_value == precision
    model = tmp_path / "repo" / "dcgan" / "1" / "model.onnx"
    assert model.read_bytes() == dcgan_exports[precision].read_bytes()
    side = json.loads(sidecar_path(model).read_text())  # provenance travels with the file
    assert side == json.loads(sidecar_path(dcgan_exports[precision]).read_text())


def test_cli_export_writes_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from accelkit.cli import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["export", "dcgan", "--triton-repo", "repo"])
    assert res.exit_code == 0, res.output
    assert "wrote Triton model 'dcgan'" in res.stdout and "checked with tritonclient" in res.stdout
    cfg = parse(tmp_path / "repo" / "dcgan" / "config.pbtxt")
    assert (
        cfg.platform == "onnxruntime_onnx"
        and (tmp_path / "repo" / "dcgan" / "1" / "model.onnx").is_file()
    )
    again = CliRunner().invoke(
        app, ["triton-repo", "dcgan.onnx", "repo"]
    )  # never overwritten without --force
    assert again.exit_code == 2 and "already exists; pass --force" in again.stderr
    forced = CliRunner().invoke(
        app,
        [
            "triton-repo",
            "dcgan.onnx",
            "repo",
            "--force",
            "--instances",
            "2",
            "--preferred-batch",
            "4,16",
            "--threads",
            "1",
        ],
    )
    assert forced.exit_code == 0, forced.output
    cfg = parse(tmp_path / "repo" / "dcgan" / "config.pbtxt")
    assert cfg.instance_group[0].count == 2 and list(cfg.dynamic_batching.preferred_batch_size) == [
        4,
        16,
    ]
    assert cfg.parameters["intra_op_thread_count"].string_value == "1"


def test_label_input_is_one_element_reshaped_to_scalar(tmp_path: Path) -> None:
    art, _ = onnx_artifact("cond", tmp_path)
    write_model_repository(
        art, tmp_path / "repo", TritonRepoOptions(name="cond", max_batch=16, preferred_batches=(8,))
    )
    cfg = parse(tmp_path / "repo" / "cond" / "config.pbtxt")
    label = next(i for i in cfg.input if i.name == "label")
    assert pb.DataType.Name(label.data_type) == "TYPE_INT64" and list(label.dims) == [1]
    assert label.HasField("reshape") and list(label.reshape.shape) == []
    assert cfg.max_batch_size == 16


def test_image_to_image_with_dynamic_height_width(tmp_path: Path) -> None:
    module, spec = build("img2img")
    path = tmp_path / "sr.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.zeros(2, 3, 16, 16),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["out_image"],
            dynamic_axes={
                "image": {0: "b", 2: "h", 3: "w"},
                "out_image": {0: "b", 2: "h2", 3: "w2"},
            },
            opset_version=18,
        )
    art = Artifact(format="onnx", spec=spec, path=path, precision="fp32", source="sr")
    write_model_repository(art, tmp_path / "repo", TritonRepoOptions())
    cfg = parse(tmp_path / "repo" / "sr" / "config.pbtxt")
    assert [list(i.dims) for i in cfg.input] == [[3, -1, -1]] and [
        list(o.dims) for o in cfg.output
    ] == [[3, -1, -1]]
    assert (
        cfg.max_batch_size == 64 and not cfg.dynamic_batching.preferred_batch_size
    )  # no recorded batch range: no preference


def test_tensorrt_engine_config_from_its_sidecar(tmp_path: Path) -> None:
    plan = tmp_path / "gen.fp16.plan"
    plan.write_bytes(b"not a real engine; the config is written from the sidecar")
    spec = build("uncond")[1]
    meta = {
        "batch_range": [1, 8, 32],
        "io_tensors": {
            "z": {"mode": "input", "dtype": "FLOAT", "shape": [-1, 16]},
            "image": {"mode": "output", "dtype": "FLOAT", "shape": [-1, 3, 16, 16]},
        },
    }
    art = Artifact(format="trt", spec=spec, path=plan, precision="fp16", source="gen", meta=meta)
    write_model_repository(art, tmp_path / "repo", TritonRepoOptions())
    cfg = parse(tmp_path / "repo" / "gen" / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 32
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert (tmp_path / "repo" / "gen" / "1" / "model.plan").read_bytes() == plan.read_bytes()
    with pytest.raises(InputError, match="exceeds the engine's profile max 32"):
        build_config(art, TritonRepoOptions(max_batch=64))
    with pytest.raises(InputError, match="GPU only"):
        build_config(art, TritonRepoOptions(kind="cpu"))


def test_refusals_are_one_line(tmp_path: Path) -> None:
    art, _ = onnx_artifact("uncond", tmp_path)
    with pytest.raises(InputError, match="export it first"):
        build_config(Artifact(format="torch", spec=art.spec, source="x"))
    with pytest.raises(InputError, match="not a Triton model name"):
        TritonRepoOptions(name="bad name").validated()
    with pytest.raises(InputError, match="exceeds --max-batch"):
        TritonRepoOptions(max_batch=4, preferred_batches=(8,)).validated()
    wrong = Artifact(
        format="onnx", spec=build("cond")[1], path=art.path, source="x"
    )  # the spec disagrees with the graph
    with pytest.raises(
        InputError, match=r"input 'z' has per-sample dims \[16\] in the model, the spec says \[8\]"
    ):
        build_config(wrong)
