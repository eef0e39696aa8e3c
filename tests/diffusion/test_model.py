"""Loading: the pipeline's spec, its components, sampling defaults and knobs, conditions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.diffusion import SamplerSettings, describe_pipeline, load_pipeline
from accelkit.errors import InputError
from accelkit.sampler import LatentSampler
from tests.fixtures.diffusion import SD_TOKENS


def test_pixel_spec_and_defaults(ddpm_model: Any) -> None:
    m = ddpm_model
    assert m.kind == "pixel" and m.conditioning == "none" and m.decoder is None
    assert [(i.name, i.kind, i.shape) for i in m.spec.inputs] == [("noise", "latent", (3, 8, 8))]
    assert m.spec.output_shape == (3, 8, 8) and m.spec.output_range == (-1.0, 1.0)
    assert m.denoiser.spec.input_names == ["sample", "timestep"]
    s = m.sampling()
    # DDPMPipeline's own defaults: its saved DDPMScheduler, 1000 steps, no guidance
    assert (s.scheduler, s.scheduler_class, s.steps, s.guidance) == (
        "ddpm",
        "DDPMScheduler",
        1000,
        1.0,
    )


def test_class_conditional_unet(class_ddpm_folder: Path) -> None:
    m = load_pipeline(class_ddpm_folder)
    assert m.spec.input_names == ["noise", "label"] and m.spec.num_classes == 3
    assert m.denoiser.spec.input_names == ["sample", "timestep", "class_labels"]
    assert m.null_class is None  # a UNet2DModel class table has no unconditional row
    s = m.sampling()
    assert (s.scheduler, s.steps, s.guidance) == ("ddim", 50, 1.0)  # DDIMPipeline's defaults
    with pytest.raises(InputError, match="no unconditional class embedding"):
        m.sampling(SamplerSettings(guidance=3.0))


def test_dit_spec_and_guidance_defaults(dit_model: Any) -> None:
    m = dit_model
    assert m.kind == "class-dit" and m.null_class == 1000
    assert m.spec.input_names == ["noise", "label"] and m.spec.num_classes == 1000
    assert m.spec.inputs[0].shape == (4, 4, 4) and m.spec.output_shape == (3, 8, 8)
    # the denoiser's label input includes the null class (guidance feeds it)
    assert m.denoiser.spec.inputs[2].num_classes == 1001
    assert m.decoder is not None and m.decoder.spec.inputs[0].shape == (4, 4, 4)
    s = m.sampling()
    assert (s.scheduler, s.steps, s.guidance, s.cfg) == ("ddim", 250, 4.0, True)


def test_text_conditioned_spec_random_and_fixed_condition(
    sd_folder: Path, sd_model: Any, tmp_path: Path
) -> None:
    m = sd_model
    assert m.conditioning == "text"
    assert m.spec.input_names == ["noise", "prompt_embeds"]
    assert m.spec.inputs[1].shape == (SD_TOKENS, 16)
    s = m.sampling()
    # StableDiffusionPipeline's defaults; PNDM has no short name
    assert (s.scheduler, s.scheduler_class, s.steps, s.guidance) == (
        "default",
        "PNDMScheduler",
        50,
        7.5,
    )
    cond = np.random.default_rng(0).standard_normal((1, 5, 16)).astype(np.float32)
    f = tmp_path / "cond.npy"
    np.save(f, cond)
    fixed = load_pipeline(sd_folder, condition=f)
    assert fixed.spec.input_names == ["noise"]  # the condition is part of the pipeline now
    assert fixed.denoiser.spec.inputs[2].shape == (5, 16)
    np.testing.assert_array_equal(fixed.condition, cond[0])
    np.testing.assert_array_equal(fixed.negative_condition, np.zeros((5, 16), np.float32))


def test_condition_errors(sd_folder: Path, ddpm_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"shape \(3, 8\); this model takes prompt embeddings of shape \(L, 16\)"
    ):
        load_pipeline(sd_folder, condition=np.zeros((3, 8), np.float32))
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a plain .npy array"):
        load_pipeline(sd_folder, condition=obj)
    with pytest.raises(InputError, match="does not exist"):
        load_pipeline(sd_folder, condition=tmp_path / "missing.npy")
    with pytest.raises(InputError, match="takes no condition"):
        load_pipeline(ddpm_folder, condition=np.zeros((4, 16), np.float32))
    with pytest.raises(InputError, match="same length"):
        load_pipeline(
            sd_folder,
            condition=np.zeros((4, 16), np.float32),
            negative_condition=np.zeros((5, 16), np.float32),
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SamplerSettings(scheduler="heun"), "--scheduler 'heun' is unknown"),
        (SamplerSettings(steps=0), "positive number of denoising steps"),
        (SamplerSettings(steps=1001), "trained with 1000 timesteps"),
        (SamplerSettings(guidance=0.5), "scale >= 1"),
        (SamplerSettings(guidance=2.0), "unconditional, so classifier-free guidance"),
        (SamplerSettings(eta=2.0), "eta is in"),
    ],
)
def test_sampler_settings_are_validated(
    ddpm_model: Any, settings: SamplerSettings, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        ddpm_model.sampling(settings)


def test_scheduler_knob_resolution(ddpm_model: Any) -> None:
    s = ddpm_model.sampling(SamplerSettings("DPM++", 20))
    assert (s.scheduler, s.scheduler_class) == ("dpm++", "DPMSolverMultistepScheduler")
    assert s.config["algorithm_type"] == "dpmsolver++" and s.config["num_train_timesteps"] == 1000
    sched = s.build()
    assert type(sched).__name__ == "DPMSolverMultistepScheduler" and sched.config.solver_order == 2
    e = ddpm_model.sampling(SamplerSettings("euler", 10, eta=0.5))
    assert e.eta == 0.0  # eta is DDIM's only
    assert ddpm_model.sampling(SamplerSettings("ddim", 10, eta=0.5)).label() == "ddim-10-eta0.5"


@pytest.mark.slow
def test_description_counts_flops_per_step_and_image(dit_model: Any) -> None:
    d = describe_pipeline(dit_model, SamplerSettings("ddim", 10))
    den, dec = d.components
    assert den.name == "denoiser" and dec.name == "decoder"
    assert den.flops_per_call and dec.flops_per_call
    assert d.flops_per_step == 2 * den.flops_per_call  # guidance: two passes per image per step
    assert d.flops_per_image == 10 * d.flops_per_step + dec.flops_per_call
    text = "\n".join(d.lines())
    assert "DiTPipeline (class-dit, conditioning: class)" in text
    assert "class_labels: label int64[scalar] (1001 classes)" in text
    assert d.to_dict()["sampler"]["steps"] == 10
    assert den.params == sum(p.numel() for p in dit_model.denoiser.module.parameters())


def test_pipeline_spec_drives_the_latent_sampler(dit_model: Any) -> None:
    """The same noise and labels for any batch split: the harness's pairing holds at image level."""
    a = LatentSampler(dit_model.spec, seed=4, batch_size=4).inputs(0, 4)
    b = LatentSampler(dit_model.spec, seed=4, batch_size=1).inputs(2, 1)
    np.testing.assert_array_equal(a["noise"][2], b["noise"][0])
    assert a["label"].dtype == np.int64 and (a["label"] < 1000).all()


def test_accelkit_json_declares_null_class_names_and_reference_sampler(
    class_ddpm_folder: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    from accelkit.diffusion import create_diffusion_runner

    d = tmp_path / "p"
    shutil.copytree(class_ddpm_folder, d)
    hints = {
        "schema_version": 1,
        "class_names": ["a", "b"],
        "null_class": 2,
        "sampler": {"scheduler": "ddim", "steps": 7, "guidance": 2.5},
    }
    (d / "accelkit.json").write_text(json.dumps(hints))
    m = load_pipeline(d)
    assert m.spec.num_classes == 2 and m.null_class == 2
    assert m.denoiser.spec.inputs[2].num_classes == 3  # the null row stays a valid denoiser input
    s = m.sampling()
    assert (s.scheduler, s.steps, s.guidance) == ("ddim", 7, 2.5)
    assert m.meta["class_names"] == ["a", "b"] and m.meta["defaults_from"] == "accelkit.json"
    runner = create_diffusion_runner(m, "torch", settings=SamplerSettings(steps=2))
    seen: list[Any] = []
    runner.taps["denoiser"] = lambda feeds: seen.append(feeds["class_labels"].tolist())
    with runner:
        out = runner.infer({"noise": np.zeros((2, 3, 8, 8), np.float32), "label": np.array([0, 1])})
    assert out.shape == (2, 3, 8, 8)
    assert seen == [[0, 1, 2, 2]] * 2  # guidance: conditional and null passes in one call per step
    for bad, message in (
        ({"null_class": 0}, "must be the last class row"),
        ({"class_names": ["a"]}, "names 1 classes, the model has 2"),
        ({"sampler": {"steps": "many"}}, "not a valid accelkit pipeline file"),
        ({"run": "evil_module.Evil"}, "unknown keys"),
    ):
        (d / "accelkit.json").write_text(json.dumps({**hints, **bad}))
        with pytest.raises(InputError, match=message):
            load_pipeline(d)
