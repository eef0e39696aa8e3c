"""The choice rules of ``accelkit optimize`` as pure functions: what the search accepts,
which build it chooses, what it checks next and what it skips when time runs short.

Nothing here measures, builds or reads a file: the functions take what the search has
learnt (:class:`Seen`: a build's speed, its drift, its status) and return decisions, so
each rule is tested on a table of cases (``tests/autotune/test_choice.py``).

The rules:

* **Budget** (:class:`Budget`, :func:`judge`): a build is accepted when its drift is
  within the user's budget (the noise floor, a max FID drift, or a min paired PSNR).
* **Ties** (:func:`best`): builds within ``tie_margin`` of the fastest accepted one are as
  fast as timing noise can tell; of those, the one with the least drift is chosen.
* **What can still win** (:func:`cannot_win`): a build slower than the fastest accepted
  one beyond the tie margin is never quality-checked.
* **Order** (:func:`quality_order`): quality checks run fastest first.
* **Rescue** (:func:`int8_rescue_sizes`): a rejected INT8 build is retried keeping its
  1, 2, 4... most sensitive layer groups in float, never all of them.
* **Time** (:func:`affordable`, :func:`next_action`): a phase starts only when its
  estimated cost fits the time left; when time is short, the quality check of a build
  that ties with the fastest accepted one comes before timing a new candidate, so a
  short budget never changes which build the rule picks among those measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from accelkit.errors import InputError


@dataclass(frozen=True)
class Budget:
    """What quality the user accepts.

    Attributes:
        kind: ``floor`` (FID drift within the noise floor), ``fid`` (FID drift at most
            ``value``) or ``psnr`` (paired PSNR at least ``value`` dB).
        value: The threshold for ``fid`` / ``psnr``.
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str | float) -> Budget:
        """``floor``, a number (max FID drift) or ``psnr:DB``.

        Raises:
            InputError: Anything else, or a non-finite / negative threshold.
        """
        raw = str(text).strip().lower()
        if raw == "floor":
            return cls("floor")
        kind, num = ("psnr", raw.split(":", 1)[1]) if raw.startswith("psnr:") else ("fid", raw)
        try:
            value = float(num)
        except ValueError:
            raise InputError(
                f"--budget {text!r} is not floor, a max FID drift (e.g. 2.5) or psnr:DB (e.g. psnr:35)"
            ) from None
        if not math.isfinite(value) or value < 0 or (kind == "psnr" and value == 0):
            raise InputError(f"--budget {text!r}: the threshold must be a finite positive number")
        return cls(kind, value)

    def describe(self) -> str:
        """``FID drift within the noise floor`` style."""
        if self.kind == "floor":
            return "FID drift within the noise floor"
        if self.kind == "fid":
            return f"FID drift <= {self.value:g}"
        return f"paired PSNR >= {self.value:g} dB"

    def judge(self, drift: Any) -> tuple[bool, str]:
        """``(accepted, why)`` for a :class:`~accelkit.quality.drift.Drift`."""
        if drift.fid_drift is None or not math.isfinite(drift.fid_drift):
            return False, "FID drift could not be measured"
        if self.kind == "floor":
            ok = drift.fid_drift <= drift.noise_floor_fid
            return (
                ok,
                f"FID drift {drift.fid_drift:.3g} {'<=' if ok else '>'} noise floor {drift.noise_floor_fid:.3g}",
            )
        if self.kind == "fid":
            ok = drift.fid_drift <= (self.value or 0.0)
            return (
                ok,
                f"FID drift {drift.fid_drift:.3g} {'<=' if ok else '>'} budget {self.value:g}",
            )
        ok = drift.psnr_db >= (self.value or 0.0)
        return ok, f"PSNR {drift.psnr_db:.1f} dB {'>=' if ok else '<'} budget {self.value:g} dB"

    def fid_line(self, noise_floor: float | None) -> float | None:
        """The FID drift the Pareto plot draws as the budget line (None for a PSNR budget)."""
        if self.kind == "floor":
            return noise_floor
        return self.value if self.kind == "fid" else None


def judge(drift: Any, budget: Budget) -> tuple[bool, str]:
    """``(accepted, why)``: the one place the search judges a measured drift against the budget.

    Args:
        drift: A :class:`~accelkit.quality.drift.Drift` (its ``fid_drift``,
            ``noise_floor_fid`` and ``psnr_db``).
        budget: The user's budget.
    """
    return budget.judge(drift)
