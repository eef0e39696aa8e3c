"""Loader of ``torch.save`` files: a state_dict or checkpoint dict plus an architecture.

The generator's weights are found under the usual checkpoint keys (:data:`GENERATOR_KEYS`);
its architecture is the user's ``--arch``, a bundled architecture the checkpoint names
(``accelkit_arch`` / ``arch``: nothing else is followed), or -- without either -- one that
spandrel recognises from the tensor names (super-resolution checkpoints). A full pickled
module loads only with ``--trust-code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelkit.errors import InputError, LoadError, UntrustedPickleError
from accelkit.loading.architectures import build_module, fit_state_dict, stored_architecture
from accelkit.loading.registry import LoadRequest, TorchModel
from accelkit.loading.safe_read import TRUST_HINT, torch_load
from accelkit.spec import GeneratorSpec

#: Checkpoint-dict keys that may hold the generator, in order of preference
#: (EMA weights first: they are what people ship).
GENERATOR_KEYS = (
    "G_ema",
    "g_ema",
    "generator_ema",
    "params_ema",
    "netG",
    "generator",
    "gen",
    "G",
    "g",
    "params",
    "model",
    "state_dict",
    "ema",
    "module",
)


def _is_state_dict(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def find_state_dict(obj: Any, path: Path) -> tuple[Any, str]:
    """Find the generator inside a loaded checkpoint.

    Returns:
        ``(state_dict_or_module, where)`` where ``where`` says which key held it.

    Raises:
        LoadError: No generator-like entry found.
    """
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj, "<module>"
    if _is_state_dict(obj):
        return obj, "<top level>"
    if isinstance(obj, Mapping):
        for key in GENERATOR_KEYS:
            if key in obj:
                val = obj[key]
                if isinstance(val, torch.nn.Module) or _is_state_dict(val):
                    return val, key
                if isinstance(val, Mapping):
                    inner, where = find_state_dict(val, path)
                    return inner, f"{key}.{where}" if where != "<top level>" else key
        keys = ", ".join(list(map(str, obj))[:12])
        raise LoadError(
            f"{path}: no generator weights found in the checkpoint (top-level keys: {keys}); expected one of "
            f"{', '.join(GENERATOR_KEYS)} or a plain state_dict"
        )
    raise LoadError(
        f"{path} holds a {type(obj).__name__}, not a generator, state_dict or checkpoint dict"
    )


def weights_without_arch(
    found: Mapping[str, Any], where: str, p: Path
) -> tuple[Any, GeneratorSpec, dict[str, Any]]:
    """A state_dict given without ``--arch``: spandrel may recognise a super-resolution network.

    Returns:
        ``(module, family spec, meta)``.

    Raises:
        InputError: Not recognised (or spandrel not importable): ask for ``--arch``.
    """
    from accelkit.errors import MissingDependencyError
    from accelkit.loading.spandrel_sr import load_sr

    try:
        return load_sr(found, p)  # type: ignore[no-any-return]
    except MissingDependencyError as exc:
        raise InputError(
            f"{p} holds only weights (a state_dict under {where}); say which architecture they belong to with "
            "--arch module:Class (plus --arch-kwargs JSON) or a bundled name (dcgan, stylegan2, sr4x); "
            f"super-resolution checkpoints (ESRGAN, Real-ESRGAN, SwinIR...) load without --arch once spandrel imports: {exc}"
        ) from None


def _stored_arch(obj: Any, p: Path) -> tuple[str | None, dict[str, Any]]:
    """A bundled architecture and its arguments named in a checkpoint dict (``accelkit_arch`` / ``arch``)."""
    if not isinstance(obj, Mapping):
        return None, {}
    key = (
        "accelkit_arch"
        if obj.get("accelkit_arch") is not None
        else "arch"
        if obj.get("arch") is not None
        else None
    )
    if key is None:
        return None, {}
    arch = stored_architecture(obj[key], p, f"its {key!r} entry")
    stored_kwargs = obj.get("accelkit_arch_kwargs") or obj.get("arch_kwargs") or {}
    if not isinstance(stored_kwargs, Mapping) or not all(isinstance(k, str) for k in stored_kwargs):
        raise InputError(
            f"{p}: the stored architecture arguments are not a dict of names; pass --arch-kwargs"
        )
    return arch, dict(stored_kwargs)


def load(req: LoadRequest) -> TorchModel:
    """Load a ``torch.save`` checkpoint (zip or legacy) as a generator module.

    Raises:
        UntrustedPickleError: A pickled module or a pickle needing code, without trust.
        InputError / LoadError: No architecture, weights that do not fit, a corrupt file.
    """
    import torch

    p = req.path
    obj = torch_load(p, req.trust)
    found, where = find_state_dict(obj, p)
    meta: dict[str, Any] = {"checkpoint_key": where}
    if isinstance(found, torch.nn.Module):
        if not req.trust:  # cannot happen with weights_only, but never rely on that
            raise UntrustedPickleError(f"{p} holds a pickled module; {TRUST_HINT}")
        return TorchModel(found, meta=meta)
    arch, kwargs = req.arch, dict(req.arch_kwargs or {})
    if not arch:
        arch, kwargs = _stored_arch(obj, p)
    if not arch:
        module, family, fam_meta = weights_without_arch(found, where, p)
        return TorchModel(module, family=family, meta={**meta, **fam_meta})
    module = build_module(arch, kwargs, req.arch_class if arch == req.arch else None)
    fit_state_dict(module, found, arch, p)
    return TorchModel(module, meta={**meta, "arch": arch, "arch_kwargs": kwargs})


__all__ = ["GENERATOR_KEYS", "find_state_dict", "load", "weights_without_arch"]
