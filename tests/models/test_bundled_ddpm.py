"""The bundled ``ddpm``: a diffusers DDIMPipeline folder, its recorded training, and a short sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from accelkit.errors import InputError
from accelkit.models import bundled_pipeline_path

pytest.importorskip("diffusers", reason="the bundled ddpm needs diffusers (extra [diffusion])")

FOLDER = Path(__file__).resolve().parents[2] / "models" / "weights" / "ddpm"


def test_folder_layout_and_training_record() -> None:
    assert bundled_pipeline_path("ddpm") == FOLDER
    index = json.loads((FOLDER / "model_index.json").read_text())
    assert index["_class_name"] == "DDIMPipeline"
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == [
        "diffusers",
        "DDIMScheduler",
    ]
    cfg = json.loads((FOLDER / "unet" / "config.json").read_text())
    # three shapes plus the null class (label dropout in training: guidance)
    assert (cfg["sample_size"], cfg["in_channels"], cfg["num_class_embeds"]) == (32, 3, 4)
    with safe_open(str(FOLDER / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {"F16"}  # stored as float16 (half the file); loaded into float32
    hints = json.loads((FOLDER / "accelkit.json").read_text())
    assert hints["class_names"] == ["circle", "square", "triangle"] and hints["null_class"] == 3
    reference = {"scheduler": "ddim", "steps": 50, "guidance": 3.0, "eta": 0.0}
    assert hints["sampler"] == reference
    rec = json.loads((FOLDER / "training.json").read_text())
    assert rec["reference_sampler"] == reference
    assert 1_000_000 <= rec["params"] <= 3_000_000
    with pytest.raises(InputError, match="unknown bundled pipeline"):
        bundled_pipeline_path("sd")


@pytest.mark.slow
def test_loads_with_its_reference_sampler_and_samples() -> None:
    from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
    from accelkit.sampler import LatentSampler

    model = load_pipeline(FOLDER)
    assert model.spec.input_names == ["noise", "label"] and model.spec.num_classes == 3
    assert model.null_class == 3 and model.meta["class_names"] == ["circle", "square", "triangle"]
    assert model.spec.inputs[0].shape == (3, 32, 32) and model.spec.output_shape == (3, 32, 32)
    s = model.sampling()
    assert (s.scheduler, s.steps, s.guidance, s.eta) == ("ddim", 50, 3.0, 0.0)
    runner = create_diffusion_runner(model, "torch", settings=SamplerSettings(steps=3))
    with runner:
        out = runner.infer(LatentSampler(model.spec, seed=0, batch_size=2).inputs(0, 2))
    assert out.shape == (2, 3, 32, 32) and np.isfinite(out).all() and out.std() > 0.1
