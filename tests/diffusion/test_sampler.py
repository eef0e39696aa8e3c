"""The sampling loop equals diffusers' own pipelines on the same noise, for each scheduler.

References (torch, fp32, CPU):

* the DDPM layout: ``DDPMPipeline.from_pretrained(folder)`` with its scheduler replaced by
  ``<Class>.from_config(pipe.scheduler.config)`` (as diffusers users switch schedulers);
* the DiT layout: ``DiTPipeline.from_pretrained(folder)`` (guidance 4 with its null class);
* the Stable Diffusion layout: the denoising loop of ``StableDiffusionPipeline.__call__``
  (diffusers 0.42), copied below over diffusers' own ``UNet2DConditionModel`` and
  ``AutoencoderKL``, because the pipeline class itself needs ``transformers``.

Initial noise: diffusers draws sample ``i`` from ``generator[i]``; the same draws are given
to accelkit as its ``noise`` input. DDPM's per-step noise continues from those generators
in diffusers; accelkit seeds its own per-sample generators from the noise, so for that
comparison the test hands accelkit generators positioned as diffusers' are.

Tolerance: 1e-5 in image units ([-1, 1]): the same float32 operations in the same order,
up to diffusers' ``x / 2 + 0.5`` post-processing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from accelkit.diffusion import SamplerSettings, create_diffusion_runner
from accelkit.diffusion.sampler import DiffusionRunner, noise_seed
from accelkit.errors import InputError
from accelkit.sampler import LatentSampler

pytestmark = pytest.mark.slow
ATOL = 1e-5
SEEDS = (11, 12)


def _diffusers_scheduler(name: str, config: Any) -> Any:
    import diffusers

    from accelkit.diffusion.schedulers import SCHEDULERS

    cls, overrides = SCHEDULERS[name]
    return getattr(diffusers, cls).from_config(config, **overrides)


def _noise(shape: tuple[int, ...]) -> tuple[np.ndarray, list[torch.Generator]]:
    """diffusers' per-sample initial noise for SEEDS, and the generators positioned after it."""
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    noise = np.stack([torch.randn((1, *shape), generator=g)[0].numpy() for g in gens])
    return noise, gens


def _ours(model: Any, feeds: dict[str, np.ndarray], settings: SamplerSettings) -> np.ndarray:
    runner = create_diffusion_runner(model, "torch", settings=settings)
    with runner:
        return runner.infer(feeds)


def _to_nchw_pm1(images_nhwc01: np.ndarray) -> np.ndarray:
    return np.asarray(images_nhwc01, dtype=np.float32).transpose(0, 3, 1, 2) * 2.0 - 1.0


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "dpm++"])
def test_ddpm_layout_equals_diffusers_pipeline(
    ddpm_folder: Path, ddpm_model: Any, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import DDPMPipeline

    pipe = DDPMPipeline.from_pretrained(str(ddpm_folder))
    pipe.scheduler = _diffusers_scheduler(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        batch_size=2,
        generator=[torch.Generator().manual_seed(s) for s in SEEDS],
        num_inference_steps=4,
        output_type="np",
    ).images
    noise, gens = _noise((3, 8, 8))
    # DDPM's per-step noise: the generators diffusers continues with, instead of accelkit's own.
    monkeypatch.setattr(DiffusionRunner, "_generators", lambda self, prep: gens)
    got = _ours(ddpm_model, {"noise": noise}, SamplerSettings(scheduler, 4))
    np.testing.assert_allclose(got, _to_nchw_pm1(ref), atol=ATOL)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++"])
def test_dit_layout_with_guidance_equals_diffusers_pipeline(
    dit_folder: Path, dit_model: Any, scheduler: str
) -> None:
    from diffusers import DiTPipeline

    pipe = DiTPipeline.from_pretrained(str(dit_folder))
    pipe.scheduler = _diffusers_scheduler(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    labels = [3, 997]
    ref = pipe(
        class_labels=labels,
        guidance_scale=4.0,
        generator=[torch.Generator().manual_seed(s) for s in SEEDS],
        num_inference_steps=4,
        output_type="np",
    ).images
    noise, _ = _noise((4, 4, 4))
    runner = create_diffusion_runner(dit_model, "torch", settings=SamplerSettings(scheduler, 4))
    with runner:
        got = runner.infer({"noise": noise, "label": np.array(labels, dtype=np.int64)})
        calls = runner.timing.denoiser_calls
    assert runner.sampling.guidance == 4.0 and dit_model.null_class == 1000
    assert calls == 4  # guidance batched: one denoiser call per step, not two
    np.testing.assert_allclose(got, _to_nchw_pm1(ref), atol=2 * ATOL)


def _sd_reference(
    folder: Path, scheduler: Any, noise: np.ndarray, cond: np.ndarray, steps: int, guidance: float
) -> np.ndarray:
    """StableDiffusionPipeline.__call__'s loop (diffusers 0.42), negative prompt embeddings = zeros."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet")).eval()
    vae = AutoencoderKL.from_pretrained(str(folder / "vae")).eval()
    prompt_embeds = torch.from_numpy(cond)
    negative = torch.zeros_like(prompt_embeds)
    prompt_embeds = torch.cat([negative, prompt_embeds])
    with torch.no_grad():
        scheduler.set_timesteps(steps)
        latents = torch.from_numpy(noise) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            latent_model_input = torch.cat([latents] * 2)
            latent_model_input = scheduler.scale_model_input(latent_model_input, t)
            noise_pred = unet(latent_model_input, t, encoder_hidden_states=prompt_embeds).sample
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
            noise_pred = noise_pred_uncond + guidance * (noise_pred_text - noise_pred_uncond)
            latents = scheduler.step(noise_pred, t, latents).prev_sample
        image = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    return image.clamp(-1, 1).numpy()  # type: ignore[no-any-return]


@pytest.mark.parametrize("scheduler", ["default", "euler", "ddim"])
def test_sd_layout_equals_stable_diffusion_loop(
    sd_folder: Path, sd_model: Any, scheduler: str
) -> None:
    from diffusers import PNDMScheduler

    saved = PNDMScheduler.from_pretrained(str(sd_folder / "scheduler"))
    sched = saved if scheduler == "default" else _diffusers_scheduler(scheduler, saved.config)
    feeds = LatentSampler(sd_model.spec, seed=5, batch_size=2).inputs(0, 2)
    ref = _sd_reference(sd_folder, sched, feeds["noise"], feeds["prompt_embeds"], 4, 7.5)
    got = _ours(sd_model, feeds, SamplerSettings(scheduler, 4))
    np.testing.assert_allclose(got, ref, atol=ATOL)


def test_ddpm_noise_depends_only_on_the_sample(ddpm_model: Any) -> None:
    """Stochastic DDPM: a sample comes out the same alone, in a batch, and on a second run."""
    feeds = LatentSampler(ddpm_model.spec, seed=1, batch_size=3).inputs(0, 3)
    runner = create_diffusion_runner(ddpm_model, "torch", settings=SamplerSettings("ddpm", 3))
    with runner:
        batch = runner.infer(feeds)
        again = runner.infer(feeds)
        alone = runner.infer({"noise": feeds["noise"][1:2]})
    np.testing.assert_array_equal(batch, again)
    np.testing.assert_allclose(alone[0], batch[1], atol=ATOL)  # batch-size-dependent kernels
    assert noise_seed(feeds["noise"][0]) != noise_seed(feeds["noise"][1])
    assert not np.allclose(batch[0], batch[1])


def test_timing_parts_and_description(dit_model: Any) -> None:
    runner = create_diffusion_runner(dit_model, "torch", settings=SamplerSettings("ddim", 3, 2.0))
    feeds = LatentSampler(dit_model.spec, seed=0, batch_size=2).inputs(0, 2)
    with runner:
        runner.infer(feeds)
        runner.infer(feeds)
    t = runner.timing
    assert (t.runs, t.images, t.steps, t.denoiser_calls) == (2, 4, 3, 6)
    assert t.denoiser_s > 0 and t.scheduler_s > 0 and t.decoder_s > 0
    shares = t.shares()
    assert shares is not None and abs(sum(shares.values()) - 1.0) < 1e-9
    ms = t.ms_per_step()
    assert ms is not None and ms == pytest.approx(1e3 * (t.denoiser_s + t.scheduler_s) / 6)
    d = runner.describe()
    assert d["backend"] == "torch" and d["kind"] == "diffusion"
    assert d["sampler"] == {
        "scheduler": "ddim",
        "scheduler_class": "DDIMScheduler",
        "steps": 3,
        "guidance": 2.0,
        "eta": 0.0,
    }
    assert d["component_precisions"] == {"denoiser": "fp32", "decoder": "fp32"}
    assert d["step_io"] == {"denoiser": "device", "decoder": "device"}
    assert d["timing"]["ms_per_step"] == pytest.approx(ms, rel=1e-3)


def test_bad_labels_and_missing_decoder_are_input_errors(dit_model: Any, ddpm_model: Any) -> None:
    runner = create_diffusion_runner(dit_model, "torch", settings=SamplerSettings("ddim", 2))
    noise = np.zeros((1, 4, 4, 4), np.float32)
    with runner, pytest.raises(InputError, match=r"labels must be in \[0, 1000\)"):
        runner.infer({"noise": noise, "label": np.array([1000])})
    from accelkit.runners import create_runner

    den = create_runner("torch", dit_model.denoiser)
    with pytest.raises(InputError, match="needs a decoder runner"):
        DiffusionRunner(dit_model, den, None)
    with pytest.raises(InputError, match="takes .* this model's denoiser"):
        DiffusionRunner(ddpm_model, den, None)


def test_harness_and_drift_meter_take_the_pipeline_unchanged(
    ddpm_model: Any, tiny_weights: Path
) -> None:
    """images/sec counts finished images; drift compares finished images of two samplers."""
    from accelkit.benchmark.harness import measure_throughput
    from accelkit.quality.drift import measure_drift
    from accelkit.quality.features import FeatureExtractor

    sampler = LatentSampler(ddpm_model.spec, seed=0, batch_size=2)
    fast = create_diffusion_runner(ddpm_model, "torch", settings=SamplerSettings("ddim", 2))
    lat = measure_throughput(fast, sampler, warmup=1, repeats=2, iters_per_repeat=1)
    assert lat.batch_size == 2 and lat.images_per_sec > 0 and len(lat.latencies_ms) == 2
    assert fast.timing.runs == 3 and fast.timing.images == 6  # warm-up + 2 timed, whole samples
    ref = create_diffusion_runner(ddpm_model, "torch", settings=SamplerSettings("ddim", 8))
    with fast, ref:
        drift = measure_drift(
            fast,
            ref,
            sampler,
            4,
            extractor=FeatureExtractor(tiny_weights),
            reference_id="ddpm-ddim8",
        )
    # 2 vs 8 DDIM steps: related but different images from the same noise
    assert drift.n == 4 and 0 < drift.max_abs_err <= 2.0 and drift.psnr_db > 0
    assert drift.verdict in ("accepted", "rejected", "inconclusive") and drift.fid_drift >= 0
