"""Errors of the serving steps (all :class:`~accelkit.errors.AccelkitError`: one line, exit 2)."""

from __future__ import annotations

from accelkit.errors import AccelkitError, InputError


class PortInUseError(InputError):
    """A port the server should bind is taken."""


class ServerStartError(AccelkitError):
    """The Triton server did not start, or its model did not load; the message carries the log's last error."""


class ServerUnreachableError(AccelkitError):
    """No Triton server answers at the URL a load test was given."""


class LoadtestError(AccelkitError):
    """Requests failed during a load test (the server answered with an error or timed out)."""


__all__ = ["LoadtestError", "PortInUseError", "ServerStartError", "ServerUnreachableError"]
