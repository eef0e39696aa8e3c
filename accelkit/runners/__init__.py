"""Backends: one :class:`~accelkit.runners.base.Runner` per engine, registered by short name."""

from accelkit.runners.base import RUNNERS, Runner, available_backends, create_runner, runner_class

__all__ = ["RUNNERS", "Runner", "available_backends", "create_runner", "runner_class"]
