"""The ``serve`` extra: lazy imports with a one-line install hint, and the server's environment."""

from __future__ import annotations

import os
import sysconfig
from typing import Any

from accelkit.errors import MissingDependencyError

EXTRA_HINT = "pip install 'accelkit[serve]'"


def require_serve(module: str, feature: str) -> Any:
    """Import ``module`` from the ``serve`` extra or raise a one-line :class:`MissingDependencyError`.

    Args:
        module: ``pytriton.triton``, ``tritonclient.grpc``, ``tritonclient.http``...
        feature: What needs it, for the message (``accelkit serve``).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the serve extra (nvidia-pytriton, tritonclient), which is not installed "
            f"({module}: {exc.__class__.__name__}); install it with: {EXTRA_HINT}"
        ) from None


def python_library_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with this interpreter's ``LIBDIR`` first on ``LD_LIBRARY_PATH``.

    PyTriton's Python-backend stub links ``libpython3.X.so``; without this the dynamic
    loader may pick the system's copy of another patch release (Debian 3.11.2 beside a
    pyenv 3.11.7), and model load fails with
    ``'_thread.RLock' object has no attribute '_recursion_count'``. The server process
    inherits the returned environment.

    Args:
        environ: The environment to extend (default: ``os.environ``); not modified.

    Returns:
        A copy with ``LD_LIBRARY_PATH`` starting with the interpreter's library folder
        (unchanged when the interpreter has no shared ``libpython``).
    """
    env = dict(os.environ if environ is None else environ)
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir or not os.path.isdir(libdir):
        return env
    parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    if parts[:1] != [libdir]:
        env["LD_LIBRARY_PATH"] = ":".join([libdir, *[p for p in parts if p != libdir]])
    return env


__all__ = ["EXTRA_HINT", "python_library_env", "require_serve"]
