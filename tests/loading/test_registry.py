"""The format registry: a new family is one module plus one registration, found before the general formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelkit.errors import InputError
from accelkit.loading import (
    FileFormat,
    LoadRequest,
    TorchModel,
    detect_format,
    formats,
    load_generator,
    register_format,
    require_format,
    unregister_format,
)


def is_fake_pipeline(path: Path) -> bool:
    """A diffusers-like pipeline folder: model_index.json and unet/ (what accelkit.diffusion will claim)."""
    return (path / "model_index.json").is_file() and (path / "unet").is_dir()


def load_fake_pipeline(req: LoadRequest) -> TorchModel:
    from tests.fixtures.generators import LatentGen, make

    return TorchModel(
        make(LatentGen), meta={"pipeline": json.loads((req.path / "model_index.json").read_text())}
    )


@pytest.fixture()
def fake_format():
    fmt = register_format(
        FileFormat(
            "fake_pipeline",
            f"{__name__}:is_fake_pipeline",  # strings: imported on first use, as a family in a higher package would
            f"{__name__}:load_fake_pipeline",
            folder=True,
            priority=40,
            description="a fake pipeline folder (model_index.json + unet/)",
        )
    )
    yield fmt
    unregister_format("fake_pipeline")


def _pipeline_folder(root: Path) -> Path:
    (root / "unet").mkdir(parents=True)
    (root / "vae").mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": "FakePipeline"}))
    # a VAE inside it, which the builtin diffusers format (priority 50) would also claim
    (root / "vae" / "config.json").write_text(
        json.dumps({"_class_name": "AutoencoderKL", "_diffusers_version": "0.42"})
    )
    return root


def test_a_registered_folder_format_wins_over_the_vae_inside_it(fake_format, tmp_path) -> None:
    folder = _pipeline_folder(tmp_path / "pipe")
    names = [f.name for f in formats(folder=True)]
    assert names.index("fake_pipeline") < names.index("diffusers")
    assert detect_format(folder) == "fake_pipeline"
    art = load_generator(folder)
    assert art.meta["loader"] == "fake_pipeline" and art.meta["pipeline"] == {
        "_class_name": "FakePipeline"
    }
    assert art.spec.output_shape == (3, 16, 16)  # accelkit's spec inference ran on the TorchModel


def test_without_the_registration_the_folder_is_the_vae_format(tmp_path) -> None:
    assert detect_format(_pipeline_folder(tmp_path / "pipe")) == "diffusers"


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_format(FileFormat("onnx", "x:y", "x:y"))


def test_a_folder_nobody_claims_lists_the_folder_formats(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        InputError, match="is a folder; give the generator file inside it.*diffusers VAE folder"
    ):
        load_generator(tmp_path / "empty")


def test_require_format_refuses_before_loading(gen_files, monkeypatch) -> None:
    import accelkit.loading.api as api

    monkeypatch.setattr(api, "load_generator", lambda *a, **k: pytest.fail("loaded"))
    assert require_format(gen_files["torchscript"], ("torch",), "x") == "torchscript"
    with pytest.raises(
        InputError,
        match=r"is a torch.export archive \(.pt2\), not ONNX; export it first: accelkit export",
    ):
        require_format(gen_files["pt2"], ("onnx",), "export it first: accelkit export {source}")


@pytest.mark.parametrize(
    ("command", "pattern"),
    [("build", "not ONNX"), ("quantize", "not ONNX"), ("triton-repo", "not ONNX")],
)
def test_onnx_only_commands_say_so_before_loading(
    command, pattern, gen_files, tmp_path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    import accelkit.loading.api as api
    from accelkit.cli import app

    monkeypatch.setattr(api, "get_format", lambda name: pytest.fail(f"{name} was loaded"))
    args = [command, str(gen_files["pt2"])] + (
        [str(tmp_path / "repo")] if command == "triton-repo" else []
    )
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and pattern in res.stderr, res.output
