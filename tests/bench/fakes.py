"""A fake runner with known latencies, for testing the harness without a model."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from accelkit.artifact import Artifact
from accelkit.runners.base import Runner
from accelkit.spec import GeneratorSpec, InputSpec

SPEC = GeneratorSpec(inputs=(InputSpec("z", "latent", (4,)),), output_shape=(1, 2, 2), output_range=(-1.0, 1.0))


def fake_artifact() -> Artifact:
    return Artifact(format="torch", spec=SPEC, module=object(), source="fake")


class SleepRunner(Runner):
    """Sleeps ``sleeps_s[i % len]`` seconds on its i-th run; outputs ``fill`` (NaN to test failures).

    Args:
        sleeps_s: Per-run sleep cycle, seconds.
        slow_first: Runs (counted from the first) that sleep ``slow_s`` instead.
        fill: Value of every output element.
    """

    name = "fake"

    def __init__(
        self,
        artifact: Artifact | None = None,
        device: str = "cpu",
        *,
        sleeps_s: Sequence[float] = (0.005,),
        slow_first: int = 0,
        slow_s: float = 0.2,
        fill: float = 0.0,
    ) -> None:
        super().__init__(artifact or fake_artifact(), device=device)
        self.sleeps_s = list(sleeps_s)
        self.slow_first = slow_first
        self.slow_s = slow_s
        self.fill = fill
        self.runs = 0
        self.prepare_calls = 0
        self.prepared_seen: set[int] = set()
        self.activations = 0
        self.sync_calls = 0

    def _activate_impl(self) -> None:
        self.activations += 1

    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> Any:
        self.prepare_calls += 1
        return {"batch": int(inputs["z"].shape[0])}

    def _run_impl(self, prepared: Any) -> Any:
        self.prepared_seen.add(id(prepared))
        delay = self.slow_s if self.runs < self.slow_first else self.sleeps_s[self.runs % len(self.sleeps_s)]
        self.runs += 1
        time.sleep(delay)
        return np.full((prepared["batch"], *SPEC.output_shape), self.fill, dtype=np.float32)

    def _synchronize_impl(self) -> None:
        self.sync_calls += 1

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        return np.asarray(output)
