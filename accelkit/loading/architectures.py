"""Architectures for weight-only files: the user's ``--arch`` or a bundled name, never one a file names.

* :func:`resolve_architecture`: ``module:Class``, ``path/to/file.py:Class`` or a bundled
  name -> the class. Importing runs the named module's code: the user asked for it.
* :func:`stored_architecture`: an architecture named *inside* a file or sidecar
  (checkpoint keys, safetensors metadata, ``meta.arch`` of a sidecar) is honoured only when
  it is one of accelkit's bundled architectures; anything else is shown as a hint, never
  imported.
* :func:`build_module`: construct it, after estimating its size on the ``meta`` device
  (no memory) and refusing one larger than the memory available (a checkpoint whose
  stored arguments ask for 81.9 TB is a one-line error, not an out-of-memory kill).
* :func:`fit_state_dict`: load the weights strictly, stripping a wrapper prefix.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelkit.errors import AccelkitError, InputError, LoadError
from accelkit.loading.safe_read import check_memory

log = logging.getLogger(__name__)


def is_bundled_architecture(name: Any) -> bool:
    """Whether ``name`` is one of accelkit's bundled architectures (safe to follow from a file)."""
    from accelkit.models import ARCHITECTURES

    return isinstance(name, str) and name in ARCHITECTURES


def resolve_architecture(arch: str) -> type:
    """``module:Class``, ``path/to/file.py:Class`` or a bundled name -> the class.

    Importing the named module runs its code: the user asked for exactly that module.

    Raises:
        InputError: The module or class cannot be found.
    """
    from accelkit.models import ARCHITECTURES, architecture

    if arch in ARCHITECTURES:
        return architecture(arch)
    if ":" not in arch:
        raise InputError(
            f"--arch {arch!r} is neither module:Class nor a bundled architecture ({', '.join(ARCHITECTURES)})"
        )
    mod_name, _, cls_name = arch.rpartition(":")
    try:
        if mod_name.endswith(".py"):
            file = Path(mod_name).expanduser()
            if not file.is_file():
                raise InputError(f"--arch {arch!r}: no such file {file}")
            spec = importlib.util.spec_from_file_location(f"accelkit_user_arch_{file.stem}", file)
            if spec is None or spec.loader is None:
                raise InputError(f"--arch {arch!r}: cannot import {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except AccelkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import
        raise InputError(
            f"--arch {arch!r}: importing {mod_name} failed ({type(exc).__name__}: {exc}); check the module path and PYTHONPATH"
        ) from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise InputError(f"--arch {arch!r}: module {mod_name} has no attribute {cls_name!r}")
    return cls  # type: ignore[no-any-return]


def stored_architecture(name: Any, path: Path | str, where: str, flag: str = "--arch") -> str:
    """An architecture named inside a file or sidecar, allowed only when it is a bundled one.

    A file can name any importable callable (``os:system``, ``subprocess:Popen``,
    ``evil.py:Class``); importing it would run code the user never chose. Bundled
    architectures are accelkit's own code, so those names are safe to follow.

    Args:
        name: What the file says.
        path: The file, for the message.
        where: Where it says it (``its 'arch' entry``, ``its sidecar``).
        flag: The flag the user passes instead (``--arch``, ``--reference-arch``).

    Raises:
        InputError: The name is not a bundled architecture (the message shows it as a hint).
    """
    if is_bundled_architecture(name):
        return str(name)
    hint = repr(name)[:80]
    raise InputError(
        f"{path} holds only weights and names its architecture {hint} in {where}; accelkit never imports code named "
        f"inside a file: if you trust that code, pass it yourself with {flag} (plus {flag}-kwargs JSON)"
    )


def _meta_bytes(cls: type, kwargs: dict[str, Any], arch: str) -> int | None:
    """Bytes of parameters and buffers of ``cls(**kwargs)`` built on the meta device (no memory).

    None when the class cannot be built there (it reads values while constructing) or
    builds no module: the real build then goes ahead as before.

    Raises:
        InputError: The arguments do not fit the constructor, or ask for tensors whose
            size overflows (the real build would fail or exhaust memory).
    """
    import torch

    try:
        with torch.device("meta"):
            probe = cls(**kwargs)
    except TypeError as exc:
        raise InputError(
            f"--arch {arch}: constructing it failed ({exc}); pass the constructor arguments with --arch-kwargs '{{...}}'"
        ) from None
    except (RuntimeError, OverflowError, ValueError, MemoryError) as exc:
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        if "overflow" in text.lower() or isinstance(exc, (OverflowError, MemoryError)):
            raise InputError(
                f"--arch {arch} with arguments {_short(kwargs)} asks for tensors too large to exist ({text}); check the architecture arguments"
            ) from None
        log.debug("%s cannot be built on the meta device (%s); building it directly", arch, text)
        return None
    except Exception as exc:  # noqa: BLE001 - the real build below reports the user's error
        log.debug("%s cannot be built on the meta device (%s)", arch, exc)
        return None
    if not isinstance(probe, torch.nn.Module):
        return None
    tensors = list(probe.parameters()) + list(probe.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))


def _short(kwargs: Mapping[str, Any]) -> str:
    text = repr(dict(kwargs))
    return text if len(text) <= 100 else text[:97] + "..."


def build_module(arch: str, arch_kwargs: Mapping[str, Any] | None, cls: type | None = None) -> Any:
    """Construct ``arch(**arch_kwargs)`` after checking that it fits in memory.

    Args:
        arch: ``module:Class``, ``file.py:Class`` or a bundled name.
        arch_kwargs: Constructor keyword arguments.
        cls: The class itself (a Python caller passed it); ``arch`` is then only its name.

    Raises:
        InputError: Unknown architecture, arguments that do not fit its constructor, or a
            model larger than the memory available now.
    """
    cls = cls if cls is not None else resolve_architecture(arch)
    kwargs = dict(arch_kwargs or {})
    nbytes = _meta_bytes(cls, kwargs, arch)
    if nbytes is not None:
        check_memory(
            nbytes,
            f"the architecture {arch} with arguments {_short(kwargs)}",
            "check the architecture arguments (--arch-kwargs, or those stored in the checkpoint)",
        )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(
            f"--arch {arch}: constructing it failed ({exc}); pass the constructor arguments with --arch-kwargs '{{...}}'"
        ) from None


def fit_state_dict(module: Any, sd: Mapping[str, Any], arch: str, path: Path) -> None:
    """Load ``sd`` into ``module`` strictly, stripping a common wrapper prefix if needed.

    Raises:
        LoadError: The weights do not fit (names or shapes), with the first differences.
    """
    want = set(module.state_dict().keys())
    keys = list(sd.keys())
    candidates = [""] + sorted({k.split(".")[0] + "." for k in keys}) + ["module.", "_orig_mod."]
    best = None
    for prefix in candidates:
        stripped = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if set(stripped) == want:
            best = stripped
            break
    if best is None:
        missing = sorted(want - set(keys))
        unexpected = sorted(set(keys) - want)
        raise LoadError(
            f"{path}: weights do not fit --arch {arch} ({len(missing)} missing e.g. {missing[:3]}, "
            f"{len(unexpected)} unexpected e.g. {unexpected[:3]}); check --arch and --arch-kwargs"
        )
    try:
        module.load_state_dict(best, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next(
            (ln.strip() for ln in first if "size mismatch" in ln), first[0] if first else ""
        )
        raise LoadError(
            f"{path}: weights do not fit --arch {arch} ({detail}); check --arch-kwargs"
        ) from None


__all__ = [
    "build_module",
    "fit_state_dict",
    "is_bundled_architecture",
    "resolve_architecture",
    "stored_architecture",
]
