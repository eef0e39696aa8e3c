"""The ``accelkit`` command line: parse flags, build typed options, call one pipeline, print its result.

Every command is thin (see :mod:`accelkit.cli.commands`): the work happens in
:mod:`accelkit.pipelines`. Errors a user can cause print as one line ``error: ...`` on
stderr and exit 2; a measured failure (a regression, a failed row) exits 1; Ctrl-C
exits 130 and SIGTERM 143. ``ACCELKIT_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

from accelkit.cli import commands as _commands  # noqa: F401  (registers the commands)
from accelkit.cli import optimize as _optimize  # noqa: F401  (registers optimize)
from accelkit.cli import serve as _serve  # noqa: F401  (registers triton-repo, serve, loadtest)
from accelkit.cli.app import app, main

__all__ = ["app", "main"]
