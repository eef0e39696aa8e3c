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


class TrajectoryData:
    """A :class:`~accelkit.passes.int8.CalibrationData` provider: a component's inputs along
    real sampling trajectories, for the INT8 builder.

    ``batches(n, batch_size, input_names)`` samples as many trajectories as ``n`` feed rows
    need (a trajectory gives one row per kept step, twice that under guidance), spreads
    the rows over every kept timestep, and re-chunks them into batches of ``batch_size``.
    ``identity()`` records how (the sampler, seed, sample range, the folder's sha256), so
    two samplers never share cached calibration ranges.

    Args:
        model: The loaded pipeline.
        settings: The sampler the build will run (calibrate on its trajectories).
        component: ``denoiser`` or ``decoder``.
        seed: LatentSampler seed of the trajectories.
        batch_size: Images per sampling batch.
    """

    def __init__(
        self,
        model: DiffusionModel,
        settings: SamplerSettings | None = None,
        *,
        component: str = "denoiser",
        seed: int = 0,
        batch_size: int = 4,
    ) -> None:
        self.model = model
        self.settings = settings
        self.component = component
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.sampling = model.sampling(settings)

    def rows_per_trajectory(self) -> int:
        """Feed rows one sampled image contributes (all steps; doubled under guidance)."""
        if self.component == "decoder":
            return 1
        return self.sampling.steps * (2 if self.sampling.cfg else 1)

    def identity(self) -> dict[str, Any]:
        """What the samples are (recorded in the sidecar; keys the calibration cache)."""
        return {
            "kind": "diffusion-trajectories",
            "component": self.component,
            "sampler": self.sampling.to_dict(),
            "seed": self.seed,
            "first_sample": CALIB_FIRST_SAMPLE,
            "folder_sha256": self.model.source_sha256,
        }

    def batches(self, n: int, batch_size: int, input_names: Any) -> Iterator[dict[str, np.ndarray]]:
        """``n`` feed rows in batches of ``batch_size`` (graph input name -> array)."""
        per = self.rows_per_trajectory()
        images = max(1, -(-int(n) // per))
        feeds, _ = trajectory_feeds(
            self.model,
            self.settings,
            component=self.component,
            samples=images,
            batch_size=min(self.batch_size, images),
            seed=self.seed,
        )
        names = list(input_names)
        rows: list[dict[str, np.ndarray]] = []
        for f in feeds:
            k = len(next(iter(f.values())))
            rows.extend({name: f[name][i] for name in names} for i in range(k))
        if len(rows) > n:  # spread over every timestep instead of taking the first ones
            pick = np.linspace(0, len(rows) - 1, int(n)).round().astype(int)
            rows = [rows[i] for i in pick]
        for i in range(0, len(rows) - len(rows) % batch_size or len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            if not chunk:
                break
            yield {name: np.stack([r[name] for r in chunk]) for name in names}


__all__ = [
    "CALIB_FIRST_SAMPLE",
    "TrajectoryCalibration",
    "TrajectoryData",
    "TrajectoryReader",
    "trajectory_feeds",
]
