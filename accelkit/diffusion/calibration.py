"""INT8 calibration data from real sampling trajectories, not random tensors.

A denoiser sees very different inputs at different timesteps (almost pure noise early,
almost an image late), and a VAE decoder sees the sampler's final latents, not standard
normal noise. Calibrating them on random tensors (what a one-pass generator's prior
gives) sets the activation ranges for inputs the model never gets. Here the fp32 torch
pipeline samples from seeded noise and labels (a sample range disjoint from the one
verification uses) and every input of the chosen component is recorded on the way:
``(sample, timestep, class_labels | encoder_hidden_states)`` for the denoiser at each
step (guidance's doubled batch included), ``latent`` for the decoder.

:func:`trajectory_feeds` returns an iterator of feed dicts (numpy, the component's ONNX
input names), the form an INT8 builder's calibration-data hook takes;
:class:`TrajectoryReader` wraps the same feeds as an ONNX Runtime
``CalibrationDataReader`` (``get_next``/``rewind``). :class:`TrajectoryCalibration` is
the record of how the feeds were made (for a sidecar or a cache key).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from accelkit.diffusion.model import DiffusionModel, SamplerSettings
from accelkit.errors import InputError

#: First sample index of calibration trajectories (verification uses samples from 0).
CALIB_FIRST_SAMPLE = 1 << 20
COMPONENTS = ("denoiser", "decoder")


@dataclass(frozen=True)
class TrajectoryCalibration:
    """How calibration feeds are drawn (everything that shapes them).

    Attributes:
        component: ``denoiser`` or ``decoder``.
        samples: Trajectories (images) sampled.
        batch_size: Images per sampling batch (the denoiser feeds are twice as large under guidance).
        seed: LatentSampler seed.
        first_sample: Index of the first sample (disjoint from verification's).
        sampler: The resolved sampler (scheduler, steps, guidance, eta).
        every: Keep one step in ``every`` (1: all steps), always including the first and last.
        folder_sha256: The pipeline folder's identity.
    """

    component: str
    samples: int
    batch_size: int
    seed: int
    first_sample: int
    sampler: dict[str, Any]
    every: int
    folder_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return asdict(self)

    def feeds_per_batch(self) -> int:
        """Feed dicts yielded per sampling batch."""
        if self.component == "decoder":
            return 1
        steps = int(self.sampler["steps"])
        return len(_kept_steps(steps, self.every))


def _kept_steps(steps: int, every: int) -> list[int]:
    keep = set(range(0, steps, max(1, every)))
    keep.add(steps - 1)
    return sorted(keep)


def trajectory_feeds(
    model: DiffusionModel,
    settings: SamplerSettings | None = None,
    *,
    component: str = "denoiser",
    samples: int = 16,
    batch_size: int = 4,
    seed: int = 0,
    every: int = 1,
    first_sample: int = CALIB_FIRST_SAMPLE,
) -> tuple[Iterator[dict[str, np.ndarray]], TrajectoryCalibration]:
    """Feeds of ``component`` recorded while the fp32 torch pipeline samples.

    Args:
        model: The loaded pipeline.
        settings: Sampler settings of the trajectories (default: the model's defaults;
            calibrate with the sampler the build will run).
        component: ``denoiser`` or ``decoder``.
        samples: Trajectories (images) to sample.
        batch_size: Images per sampling batch.
        seed: LatentSampler seed.
        every: Keep the denoiser's inputs of one step in ``every`` (first and last always kept).
        first_sample: Index of the first sample.

    Returns:
        ``(feeds, record)``: a lazy iterator of feed dicts (numpy arrays keyed by the
        component's input names; the batches are sampled as the iterator is consumed)
        and the record of how they were made.

    Raises:
        InputError: Unknown component, a decoder asked of a pixel model, bad counts.
    """
    if component not in COMPONENTS:
        raise InputError(
            f"calibration component {component!r}: choose one of {', '.join(COMPONENTS)}"
        )
    if component == "decoder" and model.decoder is None:
        raise InputError("this model has no decoder to calibrate (it samples in pixel space)")
    if samples < 1 or batch_size < 1 or every < 1:
        raise InputError(
            f"calibration needs samples >= 1, batch >= 1 and every >= 1 (got {samples}, {batch_size}, {every})"
        )
    sampling = model.sampling(settings)
    record = TrajectoryCalibration(
        component=component,
        samples=int(samples),
        batch_size=int(batch_size),
        seed=int(seed),
        first_sample=int(first_sample),
        sampler=sampling.to_dict(),
        every=int(every),
        folder_sha256=model.source_sha256,
    )
    return _feeds(model, settings, record), record


def _feeds(
    model: DiffusionModel, settings: SamplerSettings | None, rec: TrajectoryCalibration
) -> Iterator[dict[str, np.ndarray]]:
    from accelkit.diffusion.sampler import create_diffusion_runner
    from accelkit.sampler import LatentSampler

    keep = set(_kept_steps(int(rec.sampler["steps"]), rec.every))
    runner = create_diffusion_runner(model, "torch", settings=settings)
    got: list[dict[str, np.ndarray]] = []
    step = [0]

    def tap(feeds: dict[str, Any]) -> None:
        if rec.component == "decoder" or step[0] in keep:
            got.append({k: np.array(v.detach().cpu().numpy(), copy=True) for k, v in feeds.items()})
        step[0] += 1

    runner.taps[rec.component] = tap
    sampler = LatentSampler(model.spec, seed=rec.seed, batch_size=rec.batch_size)
    with runner:
        for batch in sampler.batches(rec.samples, start=rec.first_sample):
            step[0] = 0
            runner.infer(batch)
            yield from got
            got.clear()


class TrajectoryReader:
    """ONNX Runtime ``CalibrationDataReader`` protocol over trajectory feeds (rewindable).

    The feeds are collected on first use and kept, so ``rewind`` (calibrators that read
    the data twice) does not sample again.

    Args:
        feeds: An iterator from :func:`trajectory_feeds`.
        input_names: Model input names to pass (others are dropped); None: all.
    """

    def __init__(
        self, feeds: Iterator[dict[str, np.ndarray]], input_names: list[str] | None = None
    ) -> None:
        self._source: Iterator[dict[str, np.ndarray]] | None = feeds
        self._cache: list[dict[str, np.ndarray]] = []
        self._pos = 0
        self.input_names = None if input_names is None else set(input_names)

    def _fill(self) -> None:
        if self._source is not None:
            for f in self._source:
                if self.input_names is not None:
                    f = {k: v for k, v in f.items() if k in self.input_names}
                self._cache.append(f)
            self._source = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed dict, or None at the end."""
        self._fill()
        if self._pos >= len(self._cache):
            return None
        self._pos += 1
        return self._cache[self._pos - 1]

    def rewind(self) -> None:
        """Start again from the first feed."""
        self._pos = 0

    def __len__(self) -> int:
        self._fill()
        return len(self._cache)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        self._fill()
        return iter(list(self._cache))


__all__ = [
    "CALIB_FIRST_SAMPLE",
    "TrajectoryCalibration",
    "TrajectoryReader",
    "trajectory_feeds",
]
