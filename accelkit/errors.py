"""The one exception tree of accelkit.

Every error a user can cause derives from :class:`AccelkitError`. Messages say what
was found, what was expected and how to fix it, on one line; the CLI prints them
as ``error: <message>`` and exits with :attr:`AccelkitError.exit_code` (2).
"""

from __future__ import annotations


class AccelkitError(Exception):
    """Root of every error accelkit raises on purpose."""

    exit_code: int = 2


class InputError(AccelkitError):
    """A flag, path or value given by the user is wrong."""


class LoadError(AccelkitError):
    """A generator file could not be loaded (missing, corrupt, unknown format)."""


class UntrustedCodeError(LoadError):
    """The file carries code (a pickle, a TorchScript or ``torch.export`` archive) outside
    accelkit's allow-list, and the user did not opt in with ``--trust-code``."""


class UntrustedPickleError(UntrustedCodeError):
    """The file needs arbitrary pickle execution and the user did not opt in."""


class SpecError(AccelkitError):
    """The generator's I/O spec could not be inferred or does not fit the model."""


class ExportError(AccelkitError):
    """ONNX export or conversion failed."""


class VerificationError(ExportError):
    """An exported model disagrees with its torch reference beyond the tolerance."""


class MissingDependencyError(AccelkitError):
    """An optional package is needed for this feature and is not installed."""


class BackendUnavailableError(AccelkitError):
    """A backend was requested that this machine cannot run."""


class StorageError(AccelkitError):
    """A file or folder could not be read or written (permission, disk full, missing)."""


class NonFiniteOutputError(AccelkitError):
    """A model produced NaN or Inf; that is a failure, never a number."""


def require(module: str, extra: str, feature: str) -> object:
    """Import an optional module or raise a one-line install hint.

    Args:
        module: Importable module name, e.g. ``"tensorrt"``.
        extra: The accelkit extra that provides it, e.g. ``"gpu"``.
        feature: What the user tried to do, for the message.

    Returns:
        The imported module.
    """
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module}', which is not importable "
            f"({exc.__class__.__name__}: {exc}); install it with: pip install 'accelkit[{extra}]'"
        ) from None
    if getattr(mod, "__file__", None) is None and "." not in module:
        # e.g. only `tensorrt-stubs` (.pyi files) is installed: an empty namespace package
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module}', but only type stubs (an empty namespace package) "
            f"are installed; install it with: pip install 'accelkit[{extra}]'"
        )
    return mod


def one_line(exc: BaseException, limit: int = 300) -> str:
    """One line describing ``exc``: its message for accelkit errors, ``Type: first line`` otherwise."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if (
        "TorchScript interpreter" in text and len(lines) > 1
    ):  # the real error is the last line: "builtins.X: message"
        text = lines[-1].removeprefix("builtins.")
    if isinstance(exc, AccelkitError):
        return (" ".join(lines) or type(exc).__name__)[:limit]
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:limit]


def interruption_in(exc: BaseException) -> BaseException | None:
    """A Ctrl-C / SIGTERM (a ``BaseException`` that is not an ``Exception``) in ``exc``'s cause chain.

    Some libraries (the torch exporters among them) wrap whatever stops them in their own
    ``Exception``; a caller that falls back on failure must re-raise the interruption
    instead, so Ctrl-C stops the command.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if not isinstance(cur, Exception):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None
