"""Schedulers as a build knob: short names for diffusers' scheduler classes.

``--scheduler ddpm|ddim|dpm++|euler`` picks one of diffusers' own classes
(:data:`SCHEDULERS`); ``default`` keeps the class the folder saved. Every one is built
from the folder's saved scheduler config (``from_config``, as diffusers users switch
schedulers: ``EulerDiscreteScheduler.from_config(pipe.scheduler.config)``), so the
training betas, ``prediction_type`` and ``timestep_spacing`` carry over; options a class
does not take are dropped by diffusers. Two overrides are made, both recorded:

* ``dpm++`` is DPM-Solver++ multistep (``algorithm_type="dpmsolver++"``, second order), the
  sampler most pipelines mean by that name;
* a ``learned``/``learned_range`` ``variance_type`` (DiT's DDPM config) becomes
  ``fixed_small``: accelkit's denoisers return the noise prediction only, as DiT's own
  pipeline passes it to the scheduler.

diffusers is imported only when a scheduler is built.
"""

from __future__ import annotations

import inspect
from typing import Any

from accelkit.errors import InputError, require

#: Short name -> diffusers scheduler class, and overrides applied to the saved config.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "dpm++": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
    ),
    "euler": ("EulerDiscreteScheduler", {}),
}
#: The value that keeps the folder's own scheduler class.
DEFAULT = "default"
NAMES = (*SCHEDULERS, DEFAULT)


def short_name(class_name: str) -> str | None:
    """``DDIMScheduler`` -> ``ddim``; None for a class without a short name."""
    for name, (cls, _) in SCHEDULERS.items():
        if cls == class_name:
            return name
    return None


def check_name(name: str) -> str:
    """Validate a ``--scheduler`` value (case-insensitive); returns its canonical form.

    Raises:
        InputError: Not one of :data:`NAMES`.
    """
    key = str(name).strip().lower()
    aliases = {"dpmpp": "dpm++", "dpm": "dpm++", "dpmsolver++": "dpm++"}
    key = aliases.get(key, key)
    if key not in NAMES:
        raise InputError(f"--scheduler {name!r} is unknown; choose one of {', '.join(NAMES)}")
    return key


def resolve(name: str, saved_class: str) -> tuple[str, str, dict[str, Any]]:
    """``(short name or 'default', diffusers class, config overrides)`` for a knob value."""
    key = check_name(name)
    if key == DEFAULT:
        short = short_name(saved_class)
        if short is not None:
            return short, saved_class, dict(SCHEDULERS[short][1])
        return DEFAULT, saved_class, {}
    cls, overrides = SCHEDULERS[key]
    return key, cls, dict(overrides)


def scheduler_config(saved: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The config a scheduler is built from: the saved one, minus private keys, plus overrides."""
    cfg = {k: v for k, v in saved.items() if not k.startswith("_")}
    if cfg.get("variance_type") in ("learned", "learned_range"):
        cfg["variance_type"] = "fixed_small"
    cfg.update(overrides)
    return cfg


def build_scheduler(class_name: str, config: dict[str, Any]) -> Any:
    """A fresh diffusers scheduler of ``class_name`` (from diffusers' own package) from ``config``.

    Raises:
        MissingDependencyError: diffusers is not installed.
        InputError: The config does not build that scheduler.
    """
    diffusers: Any = require("diffusers", "diffusion", "diffusion schedulers")
    cls = getattr(diffusers, class_name, None)
    if cls is None or not class_name.endswith("Scheduler"):
        raise InputError(f"diffusers {getattr(diffusers, '__version__', '?')} has no {class_name}")
    from accelkit.diffusion.components import quiet_diffusers

    try:
        with quiet_diffusers():
            return cls.from_config(config)
    except Exception as exc:  # noqa: BLE001 - diffusers validates configs with many error types
        raise InputError(
            f"the saved scheduler config does not build a {class_name} ({type(exc).__name__}: {str(exc)[:160]}); "
            "choose another --scheduler"
        ) from None


def accepts(scheduler: Any, parameter: str) -> bool:
    """Whether ``scheduler.step`` takes ``parameter`` (``generator``, ``eta``)."""
    try:
        return parameter in inspect.signature(scheduler.step).parameters
    except (TypeError, ValueError):
        return False


__all__ = [
    "DEFAULT",
    "NAMES",
    "SCHEDULERS",
    "accepts",
    "build_scheduler",
    "check_name",
    "resolve",
    "scheduler_config",
    "short_name",
]
