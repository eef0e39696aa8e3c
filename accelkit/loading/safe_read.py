"""Safe reading: weights-only unpickling, bounded JSON, memory estimates, timed probe calls.

Every byte accelkit reads from a user's file goes through one of these before it can
allocate memory or run code:

* :func:`torch_load`: ``torch.load(weights_only=True)`` (only ``argparse.Namespace``
  beyond tensors and containers) unless the user trusts the file;
* :func:`weights_only_torch_load`: the same rule for every ``torch.load`` a library makes
  on our behalf (``torch.export.load`` unpickles sample inputs and constants);
* :func:`parse_json`: JSON with a nesting bound (a 100,000-deep sidecar is a one-line
  error, not a ``RecursionError``);
* :func:`check_memory`: a declared size checked against the memory available now,
  before anything is allocated;
* :func:`call_with_timeout`: a probe call (running the generator on seeded inputs while
  its spec is inferred) that cannot hang a command.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from accelkit.errors import InputError, LoadError, SpecError, UntrustedPickleError
from accelkit.jsonio import MAX_JSON_DEPTH, json_depth, parse_json, read_json_object

__all__ = ["MAX_JSON_DEPTH", "json_depth", "parse_json", "read_json_object"]  # re-exported

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How to opt in to code a file carries; every refusal ends with it.
TRUST_HINT = "load it only if you trust its origin, with --trust-code (trust=True)"
#: Seconds one probe call (a forward pass on seeded inputs while inferring the spec) may take.
PROBE_TIMEOUT_S = 300.0
#: Environment variable overriding :data:`PROBE_TIMEOUT_S` (seconds).
PROBE_TIMEOUT_ENV = "ACCELKIT_PROBE_TIMEOUT"


def parse_arch_kwargs(text: str, flag: str = "--arch-kwargs") -> dict[str, Any]:
    """The JSON object of ``--arch-kwargs`` (constructor keyword arguments).

    Raises:
        InputError: Not JSON, too deep, or not an object.
    """
    example = "use e.g. '{\"z_dim\": 128}'"
    data = parse_json(text, flag, example, error=InputError, max_depth=32)
    if not isinstance(data, dict):
        raise InputError(f"{flag} must be a JSON object, e.g. '{{\"z_dim\": 128}}'")
    return data


# ----------------------------------------------------------------------- memory
def _gb(n: float) -> str:
    if n >= 1e12:
        return f"{n / 1e12:,.1f} TB"
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def check_memory(nbytes: int, what: str, fix: str) -> None:
    """Refuse an allocation of ``nbytes`` that cannot fit in the memory available now.

    Raises:
        InputError: ``nbytes`` exceeds the available memory (one line with both sizes).
    """
    from accelkit.host import available_memory_bytes

    avail = available_memory_bytes()
    if avail is not None and nbytes > avail:
        raise InputError(
            f"{what} needs {_gb(nbytes)} but only {_gb(avail)} of memory is available; {fix}"
        )


# ----------------------------------------------------------------------- probes
def probe_timeout_s() -> float:
    """Seconds a probe call may take (``ACCELKIT_PROBE_TIMEOUT`` overrides the default)."""
    text = os.environ.get(PROBE_TIMEOUT_ENV)
    if text:
        try:
            value = float(text)
        except ValueError:
            raise InputError(
                f"{PROBE_TIMEOUT_ENV}={text!r} is not a number of seconds; unset it or give e.g. 600"
            ) from None
        if value > 0:
            return value
    return PROBE_TIMEOUT_S


def call_with_timeout(fn: Callable[[], T], what: str, timeout_s: float | None = None) -> T:
    """``fn()`` in a worker thread, given at most ``timeout_s`` seconds.

    A generator that never returns (an endless loop, a sleep) would hang ``info`` and
    ``bench`` while accelkit probes its output. The call runs in a daemon thread; when it
    does not finish in time the command stops with one line (the thread is abandoned
    and ends with the process).

    Raises:
        SpecError: The call did not return in time.
        BaseException: Whatever ``fn`` raised.
    """
    limit = probe_timeout_s() if timeout_s is None else timeout_s
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="accelkit-probe", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise SpecError(
            f"the generator did not return within {limit:g} s while accelkit {what}; a forward pass that never "
            f"ends cannot be measured (set {PROBE_TIMEOUT_ENV}=SECONDS if it is just slow)"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- pickles
_TORCH_LOAD_LOCK = threading.Lock()


@contextmanager
def weights_only_torch_load(path: Path) -> Iterator[None]:
    """Make every ``torch.load`` inside the body weights-only (for ``torch.export.load``).

    ``torch.export.load`` unpickles sample inputs, pickled weights and constants with
    ``weights_only=False`` (after a weights-only attempt, for sample inputs); any such
    call here raises :class:`UntrustedPickleError` instead, before a byte is unpickled.
    A second line of defence: :mod:`accelkit.loading.pt2` refuses such archives first.
    """
    import torch

    real = torch.load

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is False:
            raise UntrustedPickleError(
                f"{path} is a torch.export archive holding a pickle that needs code execution to load "
                f"(sample inputs, weights or constants); {TRUST_HINT}, or re-export it with plain tensors"
            )
        kwargs["weights_only"] = True
        return real(*args, **kwargs)

    with _TORCH_LOAD_LOCK:
        torch.load = guarded  # type: ignore[assignment]
        try:
            yield
        finally:
            torch.load = real  # type: ignore[assignment]


#: Plain-data classes training scripts put in checkpoints (rosinality's StyleGAN2 saves its
#: ``args``); allowed in weights-only loading: unpickling them sets attributes, runs no code.
SAFE_CHECKPOINT_GLOBALS = ("argparse:Namespace",)


def torch_load(path: Path, trust: bool) -> Any:
    """``torch.load`` of a checkpoint: weights-only unless ``trust``.

    Raises:
        UntrustedPickleError: The pickle needs code execution and ``trust`` is False.
        LoadError: Corrupt, truncated or not a pickle.
    """
    import argparse

    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol"
            )  # noise about protocol 4/5, not the user's concern
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        opcode = re.search(r"Unsupported operand (\d+)", msg)
        if (
            opcode and not trust and "GLOBAL" not in msg
        ):  # no class named: garbage, or a pickle opcode the safe loader lacks
            raise LoadError(
                f"{path} is not a model file accelkit can read safely (the weights-only unpickler stops at pickle opcode "
                f"{opcode.group(1)}: a corrupt or non-model file, or a pickle with instructions only a full unpickler runs); "
                f"re-save or re-download it, or {TRUST_HINT}"
            ) from None
        if (
            "Weights only load failed" in msg
            or "weights_only" in msg
            or "Unsupported global" in msg
        ):
            if not trust:
                found = re.search(r"GLOBAL ([\w.]+)", msg)
                glob = f" (it references {found.group(1)})" if found else ""
                raise UntrustedPickleError(
                    f"{path} is a pickle that needs code execution to load{glob}; "
                    f"{TRUST_HINT}, or re-save only the weights (torch.save(model.state_dict())) and pass --arch"
                ) from None
            log.warning("loading %s with weights_only=False because trust=True was given", path)
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except Exception as exc2:  # noqa: BLE001 - a trusted pickle can still fail to unpickle
                raise LoadError(
                    f"{path}: unpickling failed ({type(exc2).__name__}: {exc2}); make sure the classes it needs are importable"
                ) from None
        raise LoadError(
            f"{path} is corrupt or truncated ({msg.splitlines()[0] if msg else 'unpickling failed'}); re-save or re-download it"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(
            f"{path} is corrupt or truncated ({first}); re-save or re-download it"
        ) from None


__all__ = [
    "MAX_JSON_DEPTH",
    "PROBE_TIMEOUT_ENV",
    "PROBE_TIMEOUT_S",
    "SAFE_CHECKPOINT_GLOBALS",
    "TRUST_HINT",
    "call_with_timeout",
    "check_memory",
    "json_depth",
    "parse_arch_kwargs",
    "parse_json",
    "probe_timeout_s",
    "read_json_object",
    "torch_load",
    "weights_only_torch_load",
]
