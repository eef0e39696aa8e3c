"""Loader of safetensors files: weights plus ``--arch``, a bundled architecture named in the
metadata (``accelkit.arch``), or an architecture spandrel recognises. Safetensors holds no
code; its metadata is a claim (only bundled names are followed)."""

from __future__ import annotations

import struct
from typing import Any

from accelkit.errors import LoadError
from accelkit.loading.architectures import build_module, fit_state_dict, stored_architecture
from accelkit.loading.checkpoint import weights_without_arch
from accelkit.loading.registry import LoadRequest, TorchModel
from accelkit.loading.safe_read import parse_json


def load(req: LoadRequest) -> TorchModel:
    """Load a safetensors file as a generator module.

    Raises:
        LoadError: Not a valid safetensors file, or metadata that is not JSON.
        InputError: No architecture (and spandrel does not recognise the weights).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors_bytes

    p = req.path
    fix = "re-save it with safetensors.torch.save_file"
    try:
        data = (
            p.read_bytes()
        )  # bytes, not a path: any file name works, and the header is parsed once
        (n,) = struct.unpack("<Q", data[:8])
        header = parse_json(data[8 : 8 + n], f"{p}: the safetensors header", fix)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        st_meta = header.get("__metadata__") or {}
        if not isinstance(st_meta, dict) or not all(isinstance(v, str) for v in st_meta.values()):
            raise ValueError("__metadata__ is not a map of strings")
        sd = load_safetensors_bytes(data)
    except (SafetensorError, OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise LoadError(f"{p} is not a valid safetensors file ({first}); {fix}") from None
    arch, arch_kwargs = req.arch, dict(req.arch_kwargs or {})
    if not arch and "accelkit.arch" in st_meta:
        arch = stored_architecture(
            st_meta["accelkit.arch"], p, "its safetensors metadata (accelkit.arch)"
        )
        if "accelkit.arch_kwargs" in st_meta:
            arch_kwargs = parse_json(
                st_meta["accelkit.arch_kwargs"],
                f"{p}: metadata accelkit.arch_kwargs",
                "pass --arch-kwargs",
                max_depth=32,
            )
            if not isinstance(arch_kwargs, dict):
                raise LoadError(
                    f"{p}: metadata accelkit.arch_kwargs is not a JSON object; pass --arch-kwargs"
                )
    if not arch:
        module, family, fam_meta = weights_without_arch(sd, "safetensors", p)
        return TorchModel(module, family=family, meta=fam_meta)
    module = build_module(arch, arch_kwargs, req.arch_class if arch == req.arch else None)
    fit_state_dict(module, sd, arch, p)
    stored: dict[str, Any] | None = None
    if "accelkit.spec" in st_meta:
        from accelkit.loading.sidecars import stored_spec_text

        stored = stored_spec_text(st_meta["accelkit.spec"], p, "its safetensors metadata")
    return TorchModel(
        module,
        stored_spec=stored,
        meta={"arch": arch, "arch_kwargs": dict(arch_kwargs), "safetensors_metadata": st_meta},
    )


__all__ = ["load"]
