"""Step caching on torch: exactness, the number of full calls, the split itself, and drift.

* ``deepcache:1`` / ``fbcache:0`` equal the plain sampler **bit for bit** (every step runs
  the whole denoiser; the partial modules run diffusers' operations in the same order).
* The split is checked per call: the full part's prediction equals the plain denoiser's
  exactly, and the shallow branch fed the deep feature *of the same call* gives the same
  prediction exactly (it runs exactly the operations the full pass runs on the shallow
  path); FBCache's head on ``h1 + tail`` of the same call equals the full prediction up to
  the rounding of that sum (1e-5).
* With ``deepcache:3`` a 20-step sample makes 7 full calls (steps 0, 3, ..., 18) and 13
  shallow ones; FBCache counts per image.
* Drift bound: random-weight UNets are not smooth in the timestep (their sample-level
  drift under any cache is as large as an unrelated sample's), so the bound is stated on
  the tiny class-conditional UNet with its output layer scaled by 0.02 (a denoiser whose
  prediction moves slowly along the trajectory, as trained ones do): ``deepcache:N`` for
  N = 2, 3, 5 at DDIM-20 stays >= 20 dB PSNR from the uncached sample, while a sample from
  other noise is <= 10 dB away (measured 26-29 dB vs 4.6 dB). Trained-model numbers are
  in benchmarks/results/diffusion_cache_cpu.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
from accelkit.diffusion.cache import cached_denoiser, psnr_db
from accelkit.errors import InputError
from accelkit.sampler import LatentSampler

pytestmark = pytest.mark.slow


def _sample(
    model: Any, settings: SamplerSettings, cache: str | None, n: int = 3, seed: int = 0
) -> tuple[np.ndarray, Any]:
    feeds = LatentSampler(model.spec, seed=seed, batch_size=n).inputs(0, n)
    runner = create_diffusion_runner(model, "torch", settings=settings, cache=cache)
    with runner:
        out = runner.infer(feeds)
        desc = runner.describe()
    return out, desc


@pytest.fixture(scope="module")
def class_model(class_ddpm_folder: Path) -> Any:
    return load_pipeline(class_ddpm_folder)


@pytest.mark.parametrize(
    ("layout", "cache"),
    [
        ("ddpm", "deepcache:1"),
        ("class", "deepcache:1"),
        ("sd", "deepcache:1"),
        ("dit", "fbcache:0"),
    ],
)
def test_exact_settings_equal_the_plain_sampler_bit_for_bit(
    layout: str, cache: str, request: pytest.FixtureRequest
) -> None:
    fixture = {"ddpm": "ddpm_model", "class": "class_model", "sd": "sd_model", "dit": "dit_model"}
    model = request.getfixturevalue(fixture[layout])
    settings = SamplerSettings("ddim", 5)
    ref, plain = _sample(model, settings, None)
    out, desc = _sample(model, settings, cache)
    assert np.array_equal(out, ref)
    assert plain["cache"] == "none"
    assert desc["cache"] == cache + (":1" if cache.startswith("deepcache") else ".0")
    stats = desc["cache_detail"]["stats"]
    assert (
        stats["full_calls"] == 5 and stats["partial_calls"] == 0 and stats["full_fraction"] == 1.0
    )


@pytest.mark.parametrize("layout", ["class", "sd"])
def test_deepcache_split_is_exact_per_call(layout: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue({"class": "class_model", "sd": "sd_model"}[layout])
    cached = cached_denoiser(model, "deepcache:2")
    g = torch.Generator().manual_seed(0)
    args = []
    for i in model.denoiser.spec.inputs:
        if i.kind == "label":
            args.append(torch.randint(0, int(i.num_classes or 1), (3,), generator=g))
        elif i.name == "timestep":
            args.append(torch.tensor([999.0, 500.0, 3.0]))
        else:
            args.append(torch.randn((3, *i.shape), generator=g))
    with torch.inference_mode():
        plain = model.denoiser.module(*args)
        packed = cached.main.module(*args)
        n_eps = plain[0].numel()
        eps, deep = packed[:, :n_eps].reshape(plain.shape), packed[:, n_eps:]
        shallow = cached.second.module(*args, deep.reshape(3, *cached.feature_shape))
    assert torch.equal(eps, plain)
    assert torch.equal(shallow, plain)
    assert list(cached.second.spec.input_names) == [*model.denoiser.spec.input_names, "deep"]


def test_fbcache_head_on_the_cached_tail_is_the_full_prediction(dit_model: Any) -> None:
    cached = cached_denoiser(dit_model, "fbcache:0.1")
    g = torch.Generator().manual_seed(0)
    sample = torch.randn((2, *dit_model.denoiser.spec.inputs[0].shape), generator=g)
    t, labels = torch.tensor([900.0, 20.0]), torch.tensor([1, 7])
    feat = cached.feature_shape
    fn, en = int(np.prod(feat)), int(np.prod(cached.eps_shape))
    with torch.inference_mode():
        plain = dit_model.denoiser.module(sample, t, labels)
        first = cached.main.module(sample, t, labels, torch.zeros((2, *feat)))
        h1 = first[:, :fn].reshape(2, *feat)
        rest = cached.second.module(h1, t, labels)
        tail = rest[:, en:].reshape(2, *feat)
        again = cached.main.module(sample, t, labels, tail)
    assert torch.equal(rest[:, :en].reshape(plain.shape), plain)
    torch.testing.assert_close(again[:, 2 * fn :].reshape(plain.shape), plain, atol=1e-5, rtol=0)


def test_deepcache_counts_full_calls(class_model: Any) -> None:
    out, desc = _sample(class_model, SamplerSettings("ddim", 20), "deepcache:3")
    stats = desc["cache_detail"]["stats"]
    assert (stats["full_calls"], stats["partial_calls"]) == (7, 13)  # steps 0,3,...,18 run in full
    assert stats["full_image_steps"] == 7 * 3 and stats["image_steps"] == 20 * 3
    assert desc["timing"]["denoiser_calls"] == 20
    assert desc["cache_detail"]["second_runner"]["backend"] == "torch"
    assert np.isfinite(out).all()


def test_deepcache_drift_stays_within_the_stated_bound(class_ddpm_folder: Path) -> None:
    model = load_pipeline(class_ddpm_folder)
    with torch.no_grad():  # a denoiser whose prediction moves slowly (see the module docstring)
        model.denoiser.module.model.conv_out.weight.mul_(0.02)
        model.denoiser.module.model.conv_out.bias.mul_(0.02)
    settings = SamplerSettings("ddim", 20)
    ref, _ = _sample(model, settings, None, n=4)
    other, _ = _sample(model, settings, None, n=4, seed=1)
    assert psnr_db(ref, other) <= 10.0
    for n in (2, 3, 5):
        out, _ = _sample(model, settings, f"deepcache:{n}", n=4)
        assert not np.array_equal(out, ref)  # it does skip work
        assert psnr_db(ref, out) >= 20.0, n


def test_fbcache_decides_per_image(dit_model: Any) -> None:
    """An image's output does not depend on the other images of its batch (guidance on)."""
    settings = SamplerSettings("ddim", 8)
    feeds = LatentSampler(dit_model.spec, seed=3, batch_size=3).inputs(0, 3)
    runner = create_diffusion_runner(dit_model, "torch", settings=settings, cache="fbcache:0.2")
    with runner:
        batch = runner.infer(feeds)
        stats = runner.cache.stats.to_dict()
        single = np.concatenate(
            [runner.infer({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(3)]
        )
    assert 0.0 < stats["full_fraction"] < 1.0  # some images skipped some steps, not all
    np.testing.assert_allclose(batch, single, atol=1e-4, rtol=0)


def test_fbcache_large_threshold_runs_the_rest_once(dit_model: Any) -> None:
    out, desc = _sample(dit_model, SamplerSettings("ddim", 6), "fbcache:1000")
    stats = desc["cache_detail"]["stats"]
    assert (stats["full_calls"], stats["partial_calls"]) == (1, 5)
    assert np.isfinite(out).all()


def test_runner_refusals(dit_model: Any, ddpm_model: Any) -> None:
    with pytest.raises(InputError, match="export the cache's partial graphs first"):
        create_diffusion_runner(ddpm_model, "ort", cache="deepcache:2")
    with pytest.raises(InputError, match="either a denoiser artifact or a cache"):
        create_diffusion_runner(
            ddpm_model, "torch", denoiser=ddpm_model.denoiser, cache="deepcache:2"
        )
    with pytest.raises(InputError, match="DeepCache needs a UNet"):
        create_diffusion_runner(dit_model, "torch", cache="deepcache:2")
    with pytest.raises(InputError, match="no cached denoiser"):
        cached_denoiser(ddpm_model, "none")
