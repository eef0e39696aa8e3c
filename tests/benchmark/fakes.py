"""Test doubles for bench and gate tests: a fake runner with known latencies, and a sample report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.benchmark.harness import Latency
from accelkit.benchmark.report import Report
from accelkit.runners.base import Runner
from accelkit.spec import GeneratorSpec, InputSpec

SPEC = GeneratorSpec(
    inputs=(InputSpec("z", "latent", (4,)),), output_shape=(1, 2, 2), output_range=(-1.0, 1.0)
)


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
        delay = (
            self.slow_s
            if self.runs < self.slow_first
            else self.sleeps_s[self.runs % len(self.sleeps_s)]
        )
        self.runs += 1
        time.sleep(delay)
        return np.full((prepared["batch"], *SPEC.output_shape), self.fill, dtype=np.float32)

    def _synchronize_impl(self) -> None:
        self.sync_calls += 1

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        return np.asarray(output)


# ----------------------------------------------------------------------- reports
#: A fixed environment block, so report tests do not depend on the machine.
ENV = {
    "versions": {"torch": "2.13.0", "onnxruntime": "1.32.0"},
    "cpu": {"model": "Test CPU", "available_cores": 2},
    "gpus": [],
}


def fake_latency(batch: int, samples: list[float], p50: float = 1.0) -> Latency:
    """A measurement with the given images/sec samples and a constant per-batch latency ``p50`` ms."""
    return Latency(
        batch_size=batch,
        device="cpu",
        warmup=3,
        iters_per_repeat=[10] * len(samples),
        latencies_ms=[p50] * 10 * len(samples),
        images_per_sec_samples=samples,
        peak_memory_mb=1.5,
        memory_kind="cpu_max_rss_delta",
    )


def runner_info(backend: str, precision: str) -> dict[str, Any]:
    """What a CPU runner's ``describe()`` returns, reduced to what reports read."""
    return {"backend": backend, "device": "cpu", "precision": precision, "threads": 2}


def sample_report() -> Report:
    """Four ok rows (torch/ort fp32 and ort fp16 at batches 1 and 8), one failed and two skipped rows."""
    rep = Report(
        environment=dict(ENV), created="2025-01-01T00:00:00+00:00", settings={"repeats": 5}
    )
    rep.add_result(
        runner_info("torch", "fp32"), fake_latency(1, [90.0, 100.0, 110.0, 100.0, 95.0], p50=10.0)
    )
    rep.add_result(
        runner_info("torch", "fp32"), fake_latency(8, [400.0, 410.0, 390.0, 400.0, 405.0], p50=20.0)
    )
    rep.add_result(
        runner_info("ort", "fp32"),
        fake_latency(1, [300.0, 310.0, 290.0, 300.0, 305.0], p50=3.3),
        flops_per_image=1000,
    )
    rep.add_result(runner_info("ort", "fp16"), fake_latency(8, [200.0, 200.0, 200.0, 200.0, 200.0]))
    rep.add_failure(
        "ort",
        "fp16",
        1,
        "cpu",
        "ort fp16 on cpu at batch 1 produced 12 non-finite values of 48 (12 NaN, 0 Inf)",
    )
    rep.add_failure("trt", "fp16", 1, "cpu", "TensorRT needs an NVIDIA GPU", status="skipped")
    rep.add_failure("trt", "fp16", 8, "cpu", "TensorRT needs an NVIDIA GPU", status="skipped")
    return rep
