"""measure_throughput on a fake runner with known sleeps; the output check it applies.

Tolerances are generous on purpose: sleeps only ever last *at least* their request, and
the machine is shared, so the checks bound latencies from below tightly and from above
loosely. No speed targets here (those live in benchmarks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.benchmark.harness import Latency, measure_throughput
from accelkit.errors import InputError, NonFiniteOutputError, SpecError
from accelkit.quality.images import check_finite
from accelkit.sampler import LatentSampler
from tests.benchmark.fakes import SPEC, SleepRunner
from tests.fixtures import generators as tg

# the TorchScript ONNX exporter used to build fixtures warns that it is deprecated
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _sampler(batch: int) -> LatentSampler:
    return LatentSampler(SPEC, seed=0, batch_size=batch)


# ----------------------------------------------------------------------- latency stats
def test_known_sleep_gives_known_latency_and_throughput() -> None:
    runner = SleepRunner(sleeps_s=[0.010])
    lat = measure_throughput(runner, _sampler(4), warmup=1, repeats=3, iters_per_repeat=5)
    assert len(lat.latencies_ms) == 15 and lat.iters_per_repeat == [5, 5, 5]
    assert len(lat.images_per_sec_samples) == 3 == lat.repeats
    p50 = lat.latency_ms["p50"]
    assert 10.0 <= p50 <= 40.0  # sleep never returns early; generous ceiling for a busy machine
    # throughput = batch / latency: 4 images per >= 10 ms -> at most 400 images/s
    assert 100.0 <= lat.images_per_sec <= 400.0
    for s, k in zip(lat.images_per_sec_samples, range(3)):
        chunk = lat.latencies_ms[5 * k : 5 * k + 5]
        assert s == pytest.approx(4 * 5 / (sum(chunk) / 1e3))
    assert lat.timer == "perf_counter" and lat.batch_size == 4 and lat.device == "cpu"


def test_percentiles_see_the_slow_tail() -> None:
    # 9 runs of 2 ms then one of 40 ms, repeating: p50 near 2 ms, p99 near 40 ms
    runner = SleepRunner(sleeps_s=[0.002] * 9 + [0.040])
    lat = measure_throughput(runner, _sampler(1), warmup=0, repeats=4, iters_per_repeat=10)
    summary = lat.latency_ms
    assert 2.0 <= summary["p50"] < 20.0
    assert summary["p99"] >= 40.0
    assert summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]
    assert summary["min"] >= 2.0


def test_warmup_is_excluded_from_timing() -> None:
    runner = SleepRunner(sleeps_s=[0.002], slow_first=2, slow_s=0.15)
    lat = measure_throughput(runner, _sampler(1), warmup=2, repeats=2, iters_per_repeat=5)
    assert max(lat.latencies_ms) < 100.0  # the two 150 ms runs were warm-up
    assert runner.runs == 2 + 10

    cold = SleepRunner(sleeps_s=[0.002], slow_first=2, slow_s=0.15)
    lat = measure_throughput(cold, _sampler(1), warmup=0, repeats=2, iters_per_repeat=5)
    assert max(lat.latencies_ms) >= 150.0  # without warm-up they are timed: the check can fail


def test_repeats_are_time_bounded() -> None:
    runner = SleepRunner(sleeps_s=[0.010])
    lat = measure_throughput(runner, _sampler(2), warmup=1, repeats=3, min_time_s=0.05)
    assert len(lat.iters_per_repeat) == 3
    start = 0
    for n in lat.iters_per_repeat:
        chunk = lat.latencies_ms[start : start + n]
        start += n
        assert 1 <= n <= 5  # each iteration >= 10 ms, stop once >= 50 ms
        assert sum(chunk) >= 50.0
        assert sum(chunk[:-1]) < 50.0  # stopped as soon as the repeat was long enough
    assert start == len(lat.latencies_ms)


def test_slow_iteration_still_runs_once_per_repeat() -> None:
    runner = SleepRunner(sleeps_s=[0.03])
    lat = measure_throughput(runner, _sampler(1), warmup=0, repeats=2, min_time_s=0.001)
    assert lat.iters_per_repeat == [1, 1]


def test_inputs_prepared_once_and_synchronized_every_iteration() -> None:
    runner = SleepRunner(sleeps_s=[0.001])
    measure_throughput(runner, _sampler(3), warmup=2, repeats=2, iters_per_repeat=4)
    assert runner.prepare_calls == 1
    assert len(runner.prepared_seen) == 1  # the same prepared batch every run
    assert runner.sync_calls == runner.runs == 2 + 8


def test_harness_activates_only_when_needed() -> None:
    runner = SleepRunner(sleeps_s=[0.001])
    measure_throughput(runner, _sampler(1), warmup=0, repeats=1, iters_per_repeat=1)
    assert runner.activations == 1 and runner.active is False  # activated and released
    with runner:
        measure_throughput(runner, _sampler(1), warmup=0, repeats=1, iters_per_repeat=1)
        assert runner.active is True  # left as found
    assert runner.activations == 2


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_output_raises(fill: float) -> None:
    runner = SleepRunner(sleeps_s=[0.001], fill=fill)
    with pytest.raises(NonFiniteOutputError, match="non-finite") as exc:
        measure_throughput(runner, _sampler(2), warmup=1, repeats=1, iters_per_repeat=1)
    assert "fake" in str(exc.value) and "batch 2" in str(exc.value) and "\n" not in str(exc.value)
    assert runner.active is False  # released even on failure


def test_non_finite_caught_without_warmup() -> None:
    runner = SleepRunner(sleeps_s=[0.001], fill=float("nan"))
    with pytest.raises(NonFiniteOutputError):
        measure_throughput(runner, _sampler(1), warmup=0, repeats=1, iters_per_repeat=1)


class _ShapeShiftingRunner(SleepRunner):
    """Drops the last output column on every third run (a generator that keeps state)."""

    def _run_impl(self, prepared: Any) -> Any:
        out = super()._run_impl(prepared)
        return out[..., :1] if self.runs % 3 == 0 else out


def test_an_output_shape_that_changes_between_calls_raises() -> None:
    runner = _ShapeShiftingRunner(sleeps_s=[0.0])
    with pytest.raises(
        SpecError, match=r"output shape changed between calls \(2x1x2x2, then 2x1x2x1\)"
    ):
        measure_throughput(runner, _sampler(2), warmup=1, repeats=2, iters_per_repeat=2)
    assert runner.runs == 3 and runner.active is False  # caught at the call it happened


@pytest.mark.parametrize(
    ("fill", "fails"), [(1.4, False), (-1.6, False), (2.5, True), (-1800.0, True)]
)
def test_outputs_far_outside_the_declared_range_raise(fill: float, fails: bool) -> None:
    runner = SleepRunner(sleeps_s=[0.0], fill=fill)  # declared [-1, 1]: ±2 allowed
    if not fails:
        measure_throughput(runner, _sampler(1), warmup=1, repeats=1, iters_per_repeat=1)
        return
    with pytest.raises(SpecError, match=r"far outside its declared output range \[-1, 1\]") as exc:
        measure_throughput(runner, _sampler(1), warmup=1, repeats=1, iters_per_repeat=1)
    assert "(warm-up)" in str(exc.value) and "\n" not in str(exc.value)


def test_check_finite_counts() -> None:
    check_finite(np.zeros((2, 3), np.float32), "ok")
    arr = np.array([0.0, np.nan, np.inf, 1.0], dtype=np.float16)
    with pytest.raises(NonFiniteOutputError, match=r"2 non-finite values of 4 \(1 NaN, 1 Inf\)"):
        check_finite(arr, "x")


@pytest.mark.parametrize(
    "kwargs", [{"warmup": -1}, {"repeats": 0}, {"min_time_s": -0.1}, {"iters_per_repeat": 0}]
)
def test_bad_settings_are_input_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError, match="bad measurement settings"):
        measure_throughput(SleepRunner(), _sampler(1), **kwargs)  # type: ignore[arg-type]


def test_memory_is_measured_on_cpu() -> None:
    lat = measure_throughput(
        SleepRunner(sleeps_s=[0.001]), _sampler(1), warmup=0, repeats=1, iters_per_repeat=2
    )
    assert lat.memory_kind in ("cpu_peak_rss_delta", "cpu_max_rss_delta")
    assert lat.peak_memory_mb is not None and lat.peak_memory_mb >= 0.0


class _AllocRunner(SleepRunner):
    """Touches ``mb`` megabytes on every run, then frees them."""

    mb = 64

    def _run_impl(self, prepared: object) -> object:
        buf = np.ones(self.mb * 2**20 // 8, dtype=np.float64)  # written, so resident
        out = super()._run_impl(prepared)
        del buf
        return out


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs"
)
def test_peak_memory_sees_a_transient_allocation() -> None:
    lat = measure_throughput(
        _AllocRunner(sleeps_s=[0.001]), _sampler(1), warmup=0, repeats=1, iters_per_repeat=2
    )
    assert lat.memory_kind == "cpu_peak_rss_delta"
    assert lat.peak_memory_mb is not None and lat.peak_memory_mb >= 0.8 * _AllocRunner.mb
    quiet = measure_throughput(
        SleepRunner(sleeps_s=[0.001]), _sampler(1), warmup=0, repeats=1, iters_per_repeat=2
    )
    assert quiet.peak_memory_mb is not None and quiet.peak_memory_mb < 0.5 * _AllocRunner.mb


def test_latency_summaries_from_known_samples() -> None:
    lat = Latency(
        batch_size=2,
        device="cpu",
        warmup=0,
        iters_per_repeat=[1] * 5,
        latencies_ms=[float(v) for v in range(1, 101)],
        images_per_sec_samples=[10.0, 20.0, 30.0, 40.0, 100.0],
    )
    assert lat.images_per_sec == 30.0
    assert lat.spread == {"p25": 20.0, "p75": 40.0, "iqr": 20.0, "min": 10.0, "max": 100.0}
    assert lat.latency_ms["p50"] == pytest.approx(50.5)
    assert lat.latency_ms["p99"] == pytest.approx(99.01)
    d = lat.to_dict()
    assert d["images_per_sec_samples"] == [10.0, 20.0, 30.0, 40.0, 100.0] and d["repeats"] == 5


def test_real_runners_measure_through_the_harness(tmp_path: Path) -> None:
    from accelkit.runners import create_runner

    for backend, art in (
        ("torch", tg.torch_artifact("cond")),
        ("ort", tg.onnx_artifact("cond", tmp_path)[0]),
    ):
        runner = create_runner(backend, art)
        lat = measure_throughput(
            runner,
            LatentSampler(art.spec, seed=0, batch_size=2),
            warmup=1,
            repeats=2,
            min_time_s=0.02,
        )
        assert lat.images_per_sec > 0 and all(s > 0 for s in lat.images_per_sec_samples)
        assert runner.active is False
