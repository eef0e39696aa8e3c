"""calibrate_cache: measured drift on the model's own trajectories picks the parameters.

The tiny class-conditional UNet (output layer scaled by 0.02 so that its prediction moves
slowly along the trajectory, see test_cache_torch) at DDIM-12: DeepCache N makes
ceil(12 / N) full calls, so the full fractions are known exactly; the PSNRs are measured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
from accelkit.diffusion.cache import CacheSpec, calibrate_cache, default_candidates
from accelkit.errors import InputError

pytestmark = pytest.mark.slow
SETTINGS = SamplerSettings("ddim", 12)


@pytest.fixture(scope="module")
def slow_unet(class_ddpm_folder: Path) -> Any:
    model = load_pipeline(class_ddpm_folder)
    with torch.no_grad():
        model.denoiser.module.model.conv_out.weight.mul_(0.02)
        model.denoiser.module.model.conv_out.bias.mul_(0.02)
    return model


@pytest.fixture(scope="module")
def table(slow_unet: Any) -> Any:
    return calibrate_cache(slow_unet, SETTINGS, budget_psnr_db=0.0, n=2)


def test_every_candidate_is_measured(table: Any) -> None:
    assert [t.cache for t in table.trials] == [f"deepcache:{n}:1" for n in (2, 3, 4, 5, 6)]
    for t, n in zip(table.trials, (2, 3, 4, 5, 6)):
        assert t.full_fraction == pytest.approx(math.ceil(12 / n) / 12)
        assert 0.0 < t.psnr_db < math.inf  # they all differ from the uncached sample
    d = table.to_dict()
    assert d["sampler"]["steps"] == 12 and d["images"] == 2 and len(d["trials"]) == 5


def test_the_fastest_within_budget_wins(slow_unet: Any, table: Any) -> None:
    assert table.chosen == CacheSpec.parse("deepcache:6")  # budget 0 dB: everything meets it
    # a budget between the measured PSNRs: the choice meets it and nothing cheaper does
    psnrs = sorted(t.psnr_db for t in table.trials)
    budget = (psnrs[1] + psnrs[2]) / 2
    mid = calibrate_cache(slow_unet, SETTINGS, budget_psnr_db=budget, n=2)
    chosen = next(t for t in mid.trials if t.cache == mid.chosen.canonical())
    assert chosen.psnr_db >= budget and chosen.meets
    assert all(not t.meets for t in mid.trials if t.full_fraction < chosen.full_fraction)
    assert mid.chosen.canonical() in mid.reason


def test_no_candidate_within_budget_means_none(slow_unet: Any) -> None:
    calls: list[str] = []

    def factory(spec: CacheSpec) -> Any:
        calls.append(spec.canonical())
        return create_diffusion_runner(slow_unet, "torch", settings=SETTINGS, cache=spec)

    res = calibrate_cache(
        slow_unet, SETTINGS, factory, 200.0, n=1, candidates=["deepcache:2", "deepcache:4"]
    )
    assert calls == ["none", "deepcache:2:1", "deepcache:4:1"]  # the reference first
    assert not res.chosen.enabled and "no candidate meets the budget" in res.reason


def test_grid_by_family_and_bad_arguments(slow_unet: Any, dit_model: Any) -> None:
    assert all(c.kind == "fbcache" for c in default_candidates(dit_model))
    assert all(c.kind == "deepcache" for c in default_candidates(slow_unet))
    with pytest.raises(InputError, match="at least one image"):
        calibrate_cache(slow_unet, SETTINGS, n=0)
    with pytest.raises(InputError, match="First-Block-Cache needs a DiT"):
        calibrate_cache(slow_unet, SETTINGS, candidates=["fbcache:0.1"])
