"""TensorRT on this machine: the lazy import, the logger, and which plans may be loaded.

* :func:`load_tensorrt` imports the real ``tensorrt`` (an install of ``tensorrt-stubs``
  alone is an empty namespace package and counts as missing); :func:`load_polygraphy`
  imports NVIDIA's Polygraphy, whose loaders build and deserialize engines. Both raise
  :class:`~accelkit.errors.MissingDependencyError` naming the ``gpu`` extra.
* :func:`polygraphy_logging` routes Polygraphy's logger (which TensorRT's own log goes
  through: Polygraphy installs one process-wide ``trt.ILogger``) to Python ``logging``
  instead of stdout, and keeps the last error lines so exceptions can quote them.
* :func:`check_plan_trusted` refuses a plan accelkit did not build (deserializing a plan
  can run plugin code); :func:`check_plan_compatible` refuses a plan built for another
  TensorRT version or GPU.

Nothing here imports ``tensorrt`` or ``polygraphy`` at module import time.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelkit.artifact import read_sidecar, sidecar_path
from accelkit.errors import LoadError, MissingDependencyError, require
from accelkit.files import sha256_file

if TYPE_CHECKING:  # type-checking against tensorrt-stubs only; never imported at runtime here
    import tensorrt

log = logging.getLogger(__name__)
#: Where TensorRT's and Polygraphy's messages go (TensorRT INFO and chatter at DEBUG).
trt_log = logging.getLogger("accelkit.trt.tensorrt")

#: Oldest Polygraphy whose loaders accelkit uses (``CreateConfig(progress_monitor=...)``).
MIN_POLYGRAPHY = (0, 49)

_GPU_EXTRA_HINT = (
    "install it with: pip install 'accelkit[gpu]' (TensorRT wheels download from pypi.nvidia.com)"
)


# --------------------------------------------------------------------------- imports
def load_tensorrt(feature: str) -> Any:
    """Import the real ``tensorrt`` module.

    Args:
        feature: What the user tried to do (for the message).

    Raises:
        MissingDependencyError: Not importable, or only type stubs are installed.
    """
    mod = require("tensorrt", "gpu", feature)
    if not hasattr(mod, "Builder") or not hasattr(mod, "__version__"):
        where = list(getattr(mod, "__path__", []) or [])
        raise MissingDependencyError(
            f"{feature} needs the Python package 'tensorrt', but the importable 'tensorrt' "
            f"{'at ' + str(where[0]) + ' ' if where else ''}has no TensorRT in it (only type stubs?); {_GPU_EXTRA_HINT}"
        )
    return mod


def tensorrt_import_problem() -> str | None:
    """None when the real ``tensorrt`` module imports, else why it does not (one line)."""
    try:
        load_tensorrt("TensorRT")
    except MissingDependencyError as exc:
        return str(exc)
    return None


def tensorrt_version() -> str | None:
    """``tensorrt.__version__`` of the installed TensorRT, or None when it is not importable."""
    try:
        return str(load_tensorrt("TensorRT").__version__)
    except MissingDependencyError:
        return None


def load_polygraphy(feature: str) -> Any:
    """Import ``polygraphy`` (at least :data:`MIN_POLYGRAPHY`).

    Raises:
        MissingDependencyError: Not installed, or too old.
    """
    mod = require("polygraphy", "gpu", feature)
    version = str(getattr(mod, "__version__", "0"))
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if parts < MIN_POLYGRAPHY:
        want = ".".join(map(str, MIN_POLYGRAPHY))
        raise MissingDependencyError(
            f"{feature} needs polygraphy>={want}, found {version}; install it with: pip install -U 'polygraphy>={want}'"
        )
    return mod


def polygraphy_import_problem() -> str | None:
    """None when a recent enough Polygraphy imports, else why not (one line)."""
    try:
        load_polygraphy("TensorRT")
    except MissingDependencyError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- logging
_ERRORS: collections.deque[str] = collections.deque(maxlen=16)
_STATE_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: dict[str, Any] = {}
_PREFIX = re.compile(r"^\s*\[[A-Z!]\]\s*")


class _ForwardPolygraphy(logging.Handler):
    """Re-logs Polygraphy's records under ``accelkit.trt.tensorrt`` and keeps error lines.

    Polygraphy's INFO/START/FINISH chatter and TensorRT's INFO become DEBUG; warnings
    and errors keep their level.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = _PREFIX.sub("", record.getMessage()).strip()
        except Exception:  # noqa: BLE001 - a logging handler must not raise
            return
        level = record.levelno if record.levelno >= logging.WARNING else logging.DEBUG
        if record.levelno >= logging.ERROR:
            _ERRORS.append(" ".join(msg.split()))
        if trt_log.isEnabledFor(level):
            trt_log.log(level, "%s", msg)


_HANDLER = _ForwardPolygraphy()


@contextlib.contextmanager
def polygraphy_logging() -> Iterator[None]:
    """While the body runs, Polygraphy (and TensorRT through it) logs to Python ``logging``.

    Polygraphy prints to stdout by default; a library must not. This switches its global
    logger to the ``logging`` system (uncoloured), forwards the records to
    ``accelkit.trt.tensorrt``, and keeps ERROR lines for :func:`last_trt_errors`. Nested
    and concurrent uses are counted; the last one out restores Polygraphy's settings.

    Raises:
        MissingDependencyError: Polygraphy is not installed.
    """
    load_polygraphy("TensorRT")
    from polygraphy.logger import G_LOGGER

    global _DEPTH
    with _STATE_LOCK:
        if _DEPTH == 0:
            plog = logging.getLogger("Polygraphy")
            _SAVED.update(
                python=G_LOGGER.use_python_logging_system,
                colors=G_LOGGER.colors,
                propagate=plog.propagate,
                level=plog.level,
            )
            G_LOGGER.use_python_logging_system = True
            G_LOGGER.colors = False
            plog.addHandler(_HANDLER)
            plog.propagate = False
            plog.setLevel(1)
        _DEPTH += 1
    try:
        yield
    finally:
        with _STATE_LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                plog = logging.getLogger("Polygraphy")
                plog.removeHandler(_HANDLER)
                plog.propagate = _SAVED["propagate"]
                plog.setLevel(_SAVED["level"])
                G_LOGGER.colors = _SAVED["colors"]
                G_LOGGER.use_python_logging_system = _SAVED["python"]


def trt_logger() -> tensorrt.ILogger:
    """The process-wide TensorRT logger (Polygraphy's, which every Polygraphy loader uses).

    TensorRT expects one logger per process; using Polygraphy's for our own
    ``trt.Runtime`` keeps it that way. Use it inside :func:`polygraphy_logging`.
    """
    from polygraphy.backend.trt import util as trt_util

    return trt_util.get_trt_logger()


def last_trt_errors() -> str:
    """The most recent TensorRT/Polygraphy error lines, joined on one line (empty if none)."""
    return " | ".join(list(_ERRORS)[-3:])


def clear_trt_errors() -> None:
    """Forget the kept error lines (call before a step whose errors you want to quote)."""
    _ERRORS.clear()


# --------------------------------------------------------------------------- which plans may run
def check_plan_trusted(
    plan: str | os.PathLike[str], trust: bool = False, sha256: str | None = None
) -> dict[str, Any] | None:
    """Refuse a TensorRT plan accelkit did not build, before anything deserializes it.

    Deserializing a plan can run code (plugins, and the host code of version-compatible
    plans), so a plan file is loaded only when its sidecar exists and records the sha256
    the file still has: the plan is then the one accelkit wrote. This proves the file
    was not changed after the build; it cannot prove who wrote the pair, so plans from
    elsewhere should be rebuilt, not trusted.

    Args:
        plan: The ``.plan`` file.
        trust: Load it anyway (``trust_engine=True`` / ``--trust-engine``); a warning is logged.
        sha256: The sha256 of the bytes that will be deserialized, when the caller has
            already read them (default: hash the file).

    Returns:
        The plan's sidecar (None only when ``trust`` and it has none or it is unreadable).

    Raises:
        LoadError: The plan is not trusted (one line naming the fix).
    """
    plan = Path(plan)
    side: dict[str, Any] | None = None
    try:
        side = read_sidecar(plan)
    except LoadError as exc:
        problem = f"its sidecar is unreadable ({exc})"
    else:
        if side is None:
            problem = (
                f"it has no sidecar ({sidecar_path(plan).name}), so nothing shows accelkit built it"
            )
        elif side.get("format") not in (None, "trt"):
            problem = (
                f"its sidecar describes a {side.get('format')!r} artifact, not a TensorRT plan"
            )
        elif not side.get("sha256"):
            problem = "its sidecar records no sha256 of the plan"
        elif side["sha256"] != (sha256 or sha256_file(plan)):
            problem = "its sha256 differs from the one its sidecar recorded (the file changed after accelkit built it)"
        else:
            return side
    if trust:
        log.warning(
            "loading TensorRT plan %s although %s, because trust_engine=True", plan, problem
        )
        return side
    raise LoadError(
        f"refusing to load TensorRT plan {plan}: {problem}; deserializing a plan can run plugin code, so only plans "
        "accelkit built are loaded: rebuild it from its ONNX file with `accelkit build MODEL.onnx`, or pass "
        "trust_engine=True (CLI: --trust-engine) if you trust where it came from"
    )


def plan_build_info(sidecar: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """TensorRT version and GPU recorded in a plan's sidecar (None where absent)."""
    meta = sidecar.get("meta") or {}
    trt_info = meta.get("tensorrt") or {}
    version = trt_info.get("version") if isinstance(trt_info, Mapping) else None
    if not version:
        version = meta.get("tensorrt_version") or (sidecar.get("versions") or {}).get("tensorrt")
    gpu = meta.get("gpu")
    return (str(version) if version else None), (dict(gpu) if isinstance(gpu, Mapping) else None)


def check_plan_compatible(
    sidecar: Mapping[str, Any], trt_version: str, gpu: Mapping[str, Any]
) -> str | None:
    """Why a plan cannot run here, or None when it can.

    TensorRT plans are, by default, bound to the exact TensorRT version that built them
    and are not portable across GPU models; a mismatching plan may fail to deserialize
    or run with wrong tactics. It must be rebuilt or refused, never run.

    Args:
        sidecar: The plan's sidecar (``read_sidecar(plan)``).
        trt_version: The installed ``tensorrt.__version__``.
        gpu: This machine's :func:`accelkit.device.gpu_identity` (``name``, ``compute_capability``).

    Returns:
        A one-line reason naming what differs, or None.
    """
    if sidecar.get("format") not in (None, "trt"):
        return f"the sidecar describes a {sidecar.get('format')!r} artifact, not a TensorRT plan"
    built_version, built_gpu = plan_build_info(sidecar)
    if built_version is None:
        return "the sidecar does not record which TensorRT version built the plan"
    if built_version != str(trt_version):
        return f"the plan was built with TensorRT {built_version} but TensorRT {trt_version} is installed"
    if built_gpu is None:
        return "the sidecar does not record the GPU the plan was built for"
    b_cc, h_cc = str(built_gpu.get("compute_capability")), str(gpu.get("compute_capability"))
    if b_cc != h_cc:
        return (
            f"the plan was built for {built_gpu.get('name')} (compute capability {b_cc}) "
            f"but this GPU is {gpu.get('name')} (compute capability {h_cc})"
        )
    if str(built_gpu.get("name")) != str(gpu.get("name")):
        return (
            f"the plan was built on a {built_gpu.get('name')} but this GPU is a {gpu.get('name')}"
        )
    return None


def dims(d: tensorrt.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple of ints (``-1`` for a dynamic dimension)."""
    return tuple(int(d[i]) for i in range(len(d)))


__all__ = [
    "check_plan_compatible",
    "check_plan_trusted",
    "clear_trt_errors",
    "dims",
    "last_trt_errors",
    "load_polygraphy",
    "load_tensorrt",
    "plan_build_info",
    "polygraphy_import_problem",
    "polygraphy_logging",
    "tensorrt_import_problem",
    "tensorrt_version",
    "trt_logger",
]
