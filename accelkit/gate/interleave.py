"""Two builds measured in one process, interleaved round by round: what ``accelkit bench --vs`` gates on.

Across two runs, a machine that is busier during one of them shifts every repeat of that
run alike, and no interval computed from the repeats can see it
(:mod:`accelkit.gate.compare`, "Reliability"). Measuring both builds in the same seconds
removes that: in each of ``rounds`` rounds, per batch size and per matched pair of
targets, the candidate and the baseline run back to back (alternating which goes first),
one timed repeat each. Each side's rounds are merged so that every row holds one sample
per round, in round order; sample *i* of both sides was measured in the same round, and
:func:`~accelkit.gate.compare.compare_reports` resamples whole rounds (a paired
bootstrap) so that what a round's load did to both sides cancels.

Both reports carry the same ``settings.interleaved_run`` (a random id), by which
``compare_reports`` (and ``accelkit compare`` on the two ``results.json`` files) knows
they are one interleaved run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from accelkit.benchmark.report import Report
from accelkit.options import Timing

Progress = Callable[[str], None]
#: Warm-up and repeat length: the shared :class:`~accelkit.options.Timing` defaults.
_TIMING = Timing()


def measure_interleaved(
    pairs: Sequence[tuple[Any, Any]],
    batch_sizes: Sequence[int],
    *,
    rounds: int,
    device: str = "cpu",
    warmup: int = _TIMING.warmup,
    min_time_s: float = _TIMING.min_time_s,
    seed: int = 0,
    flops_model: Any = None,
    environment: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> tuple[Report, Report]:
    """Measure (candidate, baseline) target pairs in interleaved rounds.

    Args:
        pairs: ``(candidate, baseline)`` :class:`~accelkit.benchmark.suite.BenchTarget`
            pairs that make the same rows (backend, variant, precision).
        batch_sizes: Images per iteration, each measured for every pair in every round.
        rounds: Interleaved rounds: samples per row and side (>= 3 for a noise estimate).
        device: ``cpu`` or ``cuda[:N]``.
        warmup: Untimed iterations before each timed repeat.
        min_time_s: Seconds each timed repeat runs at least.
        seed: Latent seed (both sides get the same inputs).
        flops_model: Passed to :func:`~accelkit.benchmark.suite.run_benchmark` for FLOPs.
        environment: The ``environment`` block of both reports (collected once when None).
        progress: Called with a short message per measurement.

    Returns:
        ``(candidate_report, baseline_report)``, merged over rounds (one sample per
        round per ``ok`` row; a row that failed in any round stays failed), both with
        ``settings.interleaved_run`` and ``settings.interleaved_rounds``. With no pairs,
        two reports without rows (which :func:`~accelkit.gate.compare.compare_reports`
        fails: nothing compared).
    """
    from accelkit.benchmark.environment import collect_environment
    from accelkit.benchmark.suite import run_benchmark
    from accelkit.gate.ratio_gate import merge_reports

    env = environment if environment is not None else collect_environment()
    parts: dict[str, list[Report]] = {"candidate": [], "baseline": []}
    for rnd in range(rounds):
        for j, b in enumerate(batch_sizes):
            for i, (ct, bt) in enumerate(pairs):
                order = [("candidate", ct), ("baseline", bt)]
                for side, t in order if (rnd + j + i) % 2 == 0 else order[::-1]:
                    if progress:
                        progress(f"round {rnd + 1}/{rounds}: {side} {t.backend} batch {b}")
                    rep = Report(environment=env)
                    parts[side].append(
                        run_benchmark(
                            [t],
                            [b],
                            device=device,
                            warmup=warmup,
                            repeats=1,
                            min_time_s=min_time_s,
                            seed=seed,
                            flops_model=flops_model,
                            report=rep,
                        )
                    )
    run_id = uuid.uuid4().hex
    out: list[Report] = []
    for side in ("candidate", "baseline"):
        rep = merge_reports(parts[side]) if parts[side] else Report(environment=env)
        rep.settings.update({"interleaved_run": run_id, "interleaved_rounds": rounds})
        out.append(rep)
    return out[0], out[1]


__all__ = ["measure_interleaved"]
