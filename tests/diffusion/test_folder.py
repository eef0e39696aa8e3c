"""Pipeline folders: detection, validation, and folders that ask for code run none of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accelkit.diffusion.folder import is_pipeline_folder, read_pipeline_folder
from accelkit.errors import InputError, LoadError

ROOT = Path(__file__).resolve().parents[2]


def test_each_layout_is_detected_and_read(
    ddpm_folder: Path, dit_folder: Path, sd_folder: Path
) -> None:
    for folder, cls, kind, den, dec in (
        (ddpm_folder, "DDPMPipeline", "pixel", "UNet2DModel", None),
        (dit_folder, "DiTPipeline", "class-dit", "DiTTransformer2DModel", "AutoencoderKL"),
        (
            sd_folder,
            "StableDiffusionPipeline",
            "latent-text",
            "UNet2DConditionModel",
            "AutoencoderKL",
        ),
    ):
        assert is_pipeline_folder(folder)
        f = read_pipeline_folder(folder)
        assert (f.pipeline_class, f.layout.kind, f.denoiser.class_name) == (cls, kind, den)
        assert (f.decoder.class_name if f.decoder else None) == dec
        assert all(w.suffix == ".safetensors" for w in f.denoiser.weights)
        assert len(f.sha256()) == 64
    # the SD folder names a text encoder and tokenizer (transformers) that are never opened
    assert read_pipeline_folder(sd_folder).ignored == (
        "feature_extractor",
        "text_encoder",
        "tokenizer",
    )


def test_not_a_pipeline_folder(tmp_path: Path, ddpm_folder: Path) -> None:
    assert not is_pipeline_folder(tmp_path)
    assert not is_pipeline_folder(ddpm_folder / "unet")  # a model folder, not a pipeline
    (tmp_path / "model_index.json").write_text("{not json")
    assert not is_pipeline_folder(tmp_path)
    with pytest.raises(InputError, match="not a diffusers pipeline folder"):
        read_pipeline_folder(tmp_path)


def test_sharded_and_missing_weights(tmp_path: Path, ddpm_folder: Path) -> None:
    d = tmp_path / "p"
    shutil.copytree(ddpm_folder, d)
    weights = d / "unet" / "diffusion_pytorch_model.safetensors"
    shard = d / "unet" / "diffusion_pytorch_model-00001-of-00001.safetensors"
    weights.rename(shard)
    index = d / "unet" / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": shard.name}}))
    assert read_pipeline_folder(d).denoiser.weights == (shard.resolve(),)
    index.write_text(json.dumps({"weight_map": {"a": "../../../etc/passwd"}}))
    with pytest.raises(InputError, match="not a .safetensors file"):
        read_pipeline_folder(d)
    index.unlink()
    shard.unlink()
    with pytest.raises(LoadError, match="has no diffusion_pytorch_model.safetensors"):
        read_pipeline_folder(d)


def test_unknown_pipeline_and_component_classes(tmp_path: Path, ddpm_folder: Path) -> None:
    d = tmp_path / "p"
    shutil.copytree(ddpm_folder, d)
    idx = d / "model_index.json"
    data = json.loads(idx.read_text())
    idx.write_text(json.dumps({**data, "_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(InputError, match="names pipeline 'StableDiffusionXLPipeline'"):
        read_pipeline_folder(d)
    idx.write_text(
        json.dumps({**data, "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]})
    )
    with pytest.raises(InputError, match="component 'scheduler'"):
        read_pipeline_folder(d)
    idx.write_text(json.dumps(data))
    cfg = d / "unet" / "config.json"
    cfg.write_text(
        json.dumps({**json.loads(cfg.read_text()), "_class_name": "UNet2DConditionModel"})
    )
    with pytest.raises(InputError, match="its config names class 'UNet2DConditionModel'"):
        read_pipeline_folder(d)


_PROBE = """
import os, sys
from accelkit.diffusion import load_pipeline
from accelkit.errors import AccelkitError
for folder in sys.argv[1:]:
    os.chdir(folder)
    sys.path.insert(0, folder)  # an import by name would find the folder's payload modules
    try:
        load_pipeline(folder)
        print("LOADED", folder)
    except AccelkitError as exc:
        print("REFUSED", os.path.basename(folder), "::", exc)
    sys.path.remove(folder)
"""


@pytest.mark.slow
def test_hostile_folders_are_refused_and_run_no_code(tmp_path: Path, ddpm_folder: Path) -> None:
    """Each folder would import a payload module or unpickle a payload; none may run.

    Loaded in a fresh interpreter whose working directory and ``sys.path`` hold the
    folder, so an import of a module the folder names would find the payload.
    """
    from tests.fixtures.diffusion import write_hostile_folders

    marker = tmp_path / "PWNED"
    folders = write_hostile_folders(tmp_path / "hostile", ddpm_folder, marker)
    expected = {
        "custom_pipeline": "names pipeline",
        "custom_component": "comes from 'evil_module', a custom module",
        "auto_map": "has 'auto_map'",
        "wrong_class": "accelkit loads only diffusers' own UNet2DModel",
        "pickle_weights": "a pickle, which can run code",
    }
    assert set(folders) == set(expected)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *(str(f) for f in folders.values())],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(ln.split(" :: ", 1) for ln in proc.stdout.splitlines() if ln.startswith("REFUSED"))
    for name, message in expected.items():
        assert message in lines.get(f"REFUSED {name}", ""), (name, proc.stdout)
    assert "LOADED" not in proc.stdout
    assert not marker.exists(), "a payload ran"
