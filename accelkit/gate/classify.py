"""The one regression rule both gates decide with, the verdicts and the exit codes they share.

:func:`classify` turns a ratio's bootstrap interval
(:class:`~accelkit.gate.stats.RatioEstimate`) into ``regression``, ``improved``,
``within-noise``, ``pass`` or ``unreliable`` against a reference ratio and a tolerance.
``accelkit compare`` calls it with the reference 1 (current / baseline images/sec of one
row) and ``--max-slowdown``; the in-run ratio gate with the committed ORT/torch ratio and
its tolerance. :func:`under_conditions` then says what the verdict is worth when the two
measurements were not made under the same conditions. The rule and why it is this one:
``docs/perf-regression.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accelkit.gate.stats import MIN_SAMPLES, RatioEstimate

#: Exit code: nothing regressed and every comparison could be made.
EXIT_PASS = 0
#: Exit code: a measured regression (or a failed row, or a gated metric that is missing).
EXIT_REGRESSION = 1
#: Exit code: the gate cannot tell (unreliable data, missing rows, another machine type,
#: nothing compared); ``--allow-unreliable`` accepts it (exit 0) where something was compared.
EXIT_UNRELIABLE = 3

#: What :func:`classify` can answer.
SPEED_VERDICTS = ("pass", "regression", "within-noise", "improved", "unreliable")
#: What a row of ``accelkit compare`` can be (see ``docs/perf-regression.md``).
VERDICTS = (
    "pass",
    "regression",
    "within-noise",
    "improved",
    "unreliable",
    "missing-metric",
    "missing-in-current",
    "new-in-current",
    "failed",
)
#: Row verdicts that fail the comparison (exit 1), whatever the flags say.
FAILING = ("regression", "failed", "missing-metric")
#: Row verdicts that leave the gate unable to tell (exit 3 unless ``--allow-unreliable``).
UNRELIABLE = ("unreliable", "missing-in-current")
#: Row verdicts that count as :data:`UNRELIABLE` only with ``--strict``.
STRICT_UNRELIABLE = ("new-in-current",)
#: When several findings judge one row (speed, FID drift, a quality test), the most severe
#: decides the row's verdict; this order, most severe first.
SEVERITY = (
    "failed",
    "regression",
    "missing-metric",
    "unreliable",
    "within-noise",
    "improved",
    "pass",
)


@dataclass(frozen=True)
class Call:
    """What an interval says about a ratio against its reference.

    Attributes:
        verdict: One of :data:`SPEED_VERDICTS`.
        detail: One line on why, naming the interval and the bound it was held to
            (callers prefix it with their numbers).
        unreliable: Why the interval cannot decide (short phrases); empty otherwise.
    """

    verdict: str
    detail: str
    unreliable: tuple[str, ...] = ()


def classify(
    est: RatioEstimate,
    *,
    tolerance: float,
    reference: float = 1.0,
    floor_label: str | None = None,
    ceiling_label: str | None = None,
) -> Call:
    """Decide a ratio against ``reference`` within ``tolerance``, beyond the measured noise.

    With ``floor = reference * (1 - tolerance)``, ``ceiling = reference * (1 + tolerance)``
    and the interval ``[low, high]``:

    * ``unreliable`` when a side has fewer than :data:`~accelkit.gate.stats.MIN_SAMPLES`
      samples (no noise estimate), or the interval reaches below the floor and its
      half-width is larger than ``tolerance`` (relative to ``reference``): the data
      cannot resolve a change the size of the tolerance;
    * ``regression`` when ``high < floor`` (the whole interval is below the floor);
    * ``improved`` when ``low > ceiling``;
    * ``within-noise`` when the point estimate is below the floor but the interval
      reaches it;
    * ``pass`` otherwise.

    Args:
        est: The ratio and its interval (dimensionless; e.g. current / baseline images/sec).
        tolerance: Allowed relative drop, a fraction in [0, 1).
        reference: The ratio expected when nothing changed (> 0).
        floor_label: How the floor reads in the detail (default ``"-5%"`` style).
        ceiling_label: How the ceiling reads in the detail (default ``"+5%"`` style).

    Returns:
        The :class:`Call`.
    """
    floor, ceiling = reference * (1.0 - tolerance), reference * (1.0 + tolerance)
    pct = f"{tolerance * 100:g}%"
    below = floor_label or f"the -{pct} threshold"
    above = ceiling_label or f"+{pct}"
    conf = f"{est.confidence * 100:g}%"
    half = (est.high - est.low) / 2.0 / reference
    if not est.noise_known:
        why = (
            f"no noise estimate ({est.n_denominator} and {est.n_numerator} repeats, "
            f"need >= {MIN_SAMPLES} on each side)"
        )
        return Call("unreliable", why, (why,))
    if est.high < floor:
        return Call("regression", f"the whole {conf} interval is below {below}")
    if est.low > ceiling:
        return Call("improved", f"the whole {conf} interval is above {above}")
    if est.low < floor and half > tolerance:
        why = f"{conf} interval ±{half * 100:.0f}% wider than the ±{pct} threshold"
        return Call("unreliable", f"the {why}", (why,))
    if est.ratio < floor:
        return Call(
            "within-noise",
            f"beyond {below}, but the {conf} interval reaches it: not separable from noise",
        )
    if est.ratio <= ceiling:
        return Call("pass", f"not below {below}")
    return Call("pass", "faster, not beyond noise")


@dataclass(frozen=True)
class Finding:
    """One metric's verdict on a row (speed; FID drift; a quality test can add its own).

    Attributes:
        metric: What was judged (``speed``, ``fid_drift``...).
        verdict: One of :data:`SEVERITY`.
        reason: One line with the numbers.
    """

    metric: str
    verdict: str
    reason: str


def combine(findings: Sequence[Finding]) -> tuple[str, str]:
    """A row's verdict and reason from its findings: the most severe one decides.

    The deciding finding's reason comes first, then the others as ``metric verdict: reason``.

    Raises:
        ValueError: No findings, or a verdict outside :data:`SEVERITY` (a bug).
    """
    if not findings:
        raise ValueError("a row needs at least one finding")
    decider = min(findings, key=lambda f: SEVERITY.index(f.verdict))
    others = [f for f in findings if f is not decider]
    reason = decider.reason + "".join(f"; {f.metric} {f.verdict}: {f.reason}" for f in others)
    return decider.verdict, reason


def under_conditions(
    call: Call, *, environment: Sequence[str] = (), doubts: Sequence[str] = ()
) -> tuple[str, str]:
    """What a :class:`Call` is worth when the two sides were not measured alike.

    Args:
        call: The interval's verdict.
        environment: Deterministic differences between the sides (tool versions, CPU
            model, cores, GPU, thread settings, another machine type's baseline). A build
            that got slower across them is still reported as a ``regression`` (an upgrade
            that slows the build is what a gate is for); any other verdict becomes
            ``unreliable``, since the environment, not the build, may explain it.
        doubts: What can explain any verdict, a regression included, so every verdict
            becomes ``unreliable``: differences in what else ran on the machine (load,
            other processes' busy cores, oversubscription), a report that does not
            record which generator it measured.

    Returns:
        ``(verdict, caveat)``: the verdict to report and a phrase saying why it is not the
        interval's own (empty when nothing differed).
    """
    if doubts:
        why = "; ".join([*doubts, *environment])
        return (
            "unreliable",
            f"{why}: the interval's verdict ({call.verdict}) may be the machine, not the build",
        )
    if not environment:
        return call.verdict, ""
    why = "; ".join(environment)
    if call.verdict == "regression":
        return (
            "regression",
            f"{why}: slower beyond the noise all the same (the build or the environment made it so)",
        )
    return (
        "unreliable",
        f"{why}: the interval's verdict ({call.verdict}) may be the environment, not the build",
    )


__all__ = [
    "EXIT_PASS",
    "EXIT_REGRESSION",
    "EXIT_UNRELIABLE",
    "FAILING",
    "SEVERITY",
    "SPEED_VERDICTS",
    "STRICT_UNRELIABLE",
    "UNRELIABLE",
    "VERDICTS",
    "Call",
    "Finding",
    "classify",
    "combine",
    "under_conditions",
]
