"""Load a trained generator from any of the usual file formats into an :class:`Artifact`.

Formats: TorchScript archives, ``torch.export`` programs (``.pt2``), ONNX files,
``torch.save`` state_dicts or checkpoint dicts (generator under ``G_ema``, ``g_ema``,
``netG``, ``generator``, ``model``, ``state_dict``...) combined with an architecture,
safetensors files, and -- only with ``trust=True`` -- full pickled modules.

Security: ``torch.load`` always runs with ``weights_only=True`` unless the caller
passes ``trust=True``, also for the pickles nested inside a ``.pt2`` archive (sample
inputs, pickled weights or constants, which ``torch.export.load`` would otherwise unpickle
with ``weights_only=False``); a file that needs arbitrary pickle execution is refused
with a message saying how to opt in. An architecture comes only from the caller
(``arch=`` / ``--arch``): one named inside a file (``accelkit_arch`` / ``arch`` keys of a
checkpoint dict, ``accelkit.arch`` safetensors metadata) is used only when it is one of
accelkit's bundled architectures, and otherwise shown in the error as a hint, never
imported. Nothing in a file decides what code runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import math
import pickle
import re
import struct
import sys
import threading
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from accelkit.artifact import Artifact, read_sidecar
from accelkit.errors import (
    AccelkitError,
    InputError,
    LoadError,
    SpecError,
    UntrustedPickleError,
    one_line,
)
from accelkit.files import sha256_file, storage_error
from accelkit.spec import MAX_ELEMENTS, GeneratorSpec, InputSpec, apply_overrides

log = logging.getLogger(__name__)

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

_LATENT_ATTRS = (
    "z_dim",
    "nz",
    "latent_dim",
    "noise_dim",
    "dim_z",
    "latent_size",
    "nz_dim",
    "style_dim",
)
_CLASS_ATTRS = ("num_classes", "n_classes", "c_dim", "num_labels", "n_class")
_LATENT_ARG_NAMES = ("z", "latent", "latents", "noise", "z_in", "input_z", "w", "x", "input")
_LABEL_ARG_NAMES = (
    "label",
    "labels",
    "y",
    "c",
    "class_label",
    "class_labels",
    "cls",
    "class_idx",
    "classes",
)
_IMAGE_ARG_NAMES = ("image", "img", "images", "x", "lr", "input", "src", "source", "inputs")
_PICKLE_HINT = "load it only if you trust its origin, with --trust-pickle (trust=True)"


# --------------------------------------------------------------------------- formats
def detect_format(path: Path) -> str:
    """Guess a file's format from its bytes (and its suffix where bytes are ambiguous).

    Returns:
        One of ``onnx``, ``safetensors``, ``torchscript``, ``pt2``, ``torch_save``,
        ``torch_legacy``, ``diffusers`` (a folder).

    Raises:
        LoadError: The file is empty, truncated or not a model format accelkit knows.
    """
    if path.is_dir():
        return "diffusers"  # _resolve_path let only a diffusers VAE folder through
    size = path.stat().st_size
    if size == 0:
        raise LoadError(f"{path} is empty (0 bytes); re-save or re-download the model file")
    with open(path, "rb") as f:
        head = f.read(16)
    suffix = path.suffix.lower()
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            raise LoadError(
                f"{path} looks like a torch zip archive but is truncated or corrupt ({size} bytes); re-save or re-download it"
            )
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise LoadError(
                f"{path} is a corrupt zip archive ({exc}); re-save or re-download it"
            ) from None
        if bad is not None:
            raise LoadError(
                f"{path} is corrupt (member {bad} fails its checksum); re-save or re-download it"
            )
        if any(n.endswith(("/archive_format", "serialized_exported_program.json")) for n in names):
            return "pt2"
        if any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch_save"
        if suffix == ".pt2":
            return "pt2"
        raise LoadError(
            f"{path} is a zip archive but not a TorchScript, torch.export or torch.save file; export your generator with torch.save/torch.jit.save/torch.export.save"
        )
    if len(head) >= 8:
        (hlen,) = struct.unpack("<Q", head[:8])
        if 1 < hlen < min(size, 100_000_000) and head[8:9] == b"{":
            if 8 + hlen > size:
                raise LoadError(
                    f"{path} is a truncated safetensors file (header says {hlen} bytes, file has {size}); re-save it"
                )
            return "safetensors"
    if suffix == ".safetensors":
        raise LoadError(
            f"{path} has a .safetensors name but no valid safetensors header; re-save it with safetensors.torch.save_file"
        )
    if head[:1] == b"\x80" and suffix not in (".onnx",):
        return "torch_legacy"
    if suffix == ".onnx" or head[:1] == b"\x08":
        return "onnx"
    raise LoadError(
        f"{path} is not a model file accelkit can read (expected TorchScript, .pt2, ONNX, a torch.save checkpoint or safetensors)"
    )


def _resolve_path(path: str | Path | None) -> Path:
    from accelkit.models import BUNDLED, DEFAULT_GENERATOR, bundled_path

    if path is None:
        return bundled_path(DEFAULT_GENERATOR)
    p = Path(path).expanduser()
    if p.exists():
        if p.is_dir():
            from accelkit.loaders.diffusers_vae import vae_folder

            if vae_folder(p) is None:
                raise InputError(
                    f"{p} is a folder; give the generator file inside it (e.g. {p}/gen.pt), or a diffusers VAE folder (config.json + diffusion_pytorch_model.safetensors)"
                )
        return p
    if str(path) in BUNDLED:
        return bundled_path(str(path))
    if p.is_symlink():  # a dangling or looping link: say what the OS says
        try:
            p.stat()
        except OSError as exc:
            raise storage_error(exc, f"cannot read {p}") from None
    raise InputError(
        f"no such file: {p}; give the path of a generator file or a bundled name ({', '.join(BUNDLED)})"
    )


# ------------------------------------------------------------------- architectures
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


def _build_module(arch: str, arch_kwargs: Mapping[str, Any] | None) -> Any:
    cls = resolve_architecture(arch)
    try:
        return cls(**dict(arch_kwargs or {}))
    except TypeError as exc:
        raise InputError(
            f"--arch {arch}: constructing it failed ({exc}); pass the constructor arguments with --arch-kwargs '{{...}}'"
        ) from None


def stored_architecture(name: Any, path: Path, where: str) -> str:
    """An architecture named inside a file, allowed only when it is a bundled one.

    A file can name any importable callable (``os:system``, ``subprocess:Popen``,
    ``evil.py:Class``); importing it would run code the user never chose. Bundled
    architectures are accelkit's own code, so those names are safe to follow.

    Raises:
        InputError: The name is not a bundled architecture (the message shows it as a hint).
    """
    from accelkit.models import ARCHITECTURES

    if isinstance(name, str) and name in ARCHITECTURES:
        return name
    shown = repr(name)[:80]
    raise InputError(
        f"{path} holds only weights and names its architecture {shown} in {where}; accelkit never imports code named "
        f"inside a file: if you trust that code, pass it yourself with --arch (plus --arch-kwargs JSON)"
    )


_TORCH_LOAD_LOCK = threading.Lock()


@contextmanager
def weights_only_torch_load(path: Path) -> Iterator[None]:
    """Make every ``torch.load`` inside the body weights-only (for ``torch.export.load``).

    ``torch.export.load`` unpickles sample inputs, pickled weights and constants with
    ``weights_only=False`` (after a weights-only attempt, for sample inputs); any such
    call here raises :class:`UntrustedPickleError` instead, before a byte is unpickled.
    """
    import torch

    real = torch.load

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is False:
            raise UntrustedPickleError(
                f"{path} is a torch.export archive holding a pickle that needs code execution to load "
                f"(sample inputs, weights or constants); {_PICKLE_HINT}, or re-export it with plain tensors"
            )
        kwargs["weights_only"] = True
        return real(*args, **kwargs)

    with _TORCH_LOAD_LOCK:
        torch.load = guarded  # type: ignore[assignment]
        try:
            yield
        finally:
            torch.load = real  # type: ignore[assignment]


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


def _fit_state_dict(module: Any, sd: Mapping[str, Any], arch: str, path: Path) -> None:
    """Load ``sd`` into ``module`` strictly, stripping a common wrapper prefix if needed."""
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


#: Plain-data classes training scripts put in checkpoints (rosinality's StyleGAN2 saves its
#: ``args``); allowed in weights-only loading: unpickling them sets attributes, runs no code.
SAFE_CHECKPOINT_GLOBALS = ("argparse:Namespace",)


def _torch_load(path: Path, trust: bool) -> Any:
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
                f"re-save or re-download it, or {_PICKLE_HINT}"
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
                    f"{_PICKLE_HINT}, or re-save only the weights (torch.save(model.state_dict())) and pass --arch"
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


# --------------------------------------------------------------------- spec inference
def _forward_arg_names(module: Any) -> list[str] | None:
    import inspect

    import torch

    adapted = getattr(
        module, "accelkit_input_names", None
    )  # an OutputAdapter(*inputs) keeps its inner names
    if adapted:
        return [str(n) for n in adapted]

    if isinstance(module, torch.jit.ScriptModule):
        try:
            args = module.forward.schema.arguments  # type: ignore[attr-defined]
            return [a.name for a in args if a.name != "self"]
        except (AttributeError, RuntimeError):
            return None
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return None
    names: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return names or None
        if p.default is not p.empty and names:
            continue  # optional extras (truncation_psi=..., noise_mode=...) are not inputs
        names.append(p.name)
    return names


def _attr(module: Any, names: Sequence[str]) -> Any:
    for n in names:
        try:
            v = getattr(module, n)
        except (AttributeError, RuntimeError):
            continue
        if v is not None and not callable(v):
            return v
    return None


def _layer_kind(m: Any) -> str:
    """Class name of a layer, also for TorchScript submodules (which keep it as ``original_name``)."""
    import torch

    if isinstance(m, torch.jit.ScriptModule):
        return str(getattr(m, "original_name", type(m).__name__))
    return type(m).__name__


def _weight_shape(m: Any) -> tuple[int, ...] | None:
    w = getattr(m, "weight", None)
    shape = getattr(w, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def _first_layer(module: Any) -> tuple[str, tuple[int, ...]] | None:
    """``(kind, weight shape)`` of the first Linear / Conv2d / ConvTranspose2d (Embeddings skipped), eager or TorchScript."""
    for m in module.modules():
        kind = _layer_kind(m)
        if kind in ("Linear", "Conv2d", "ConvTranspose2d"):
            shape = _weight_shape(m)
            if shape is not None:
                return kind, shape
    return None


def _first_layer_channels(module: Any) -> int | None:
    """Input channels of the first layer when it is a Conv2d (an image or spatial-latent input)."""
    first = _first_layer(module)
    if first is None or first[0] != "Conv2d" or len(first[1]) != 4:
        return None
    return int(first[1][1])


def _output_range_guess(module: Any) -> tuple[tuple[float, float], str] | None:
    """The range a module declares (``output_range`` attribute) or its final Tanh/Sigmoid implies; None if neither."""
    rng = _attr(module, ("output_range", "out_range", "value_range"))
    if rng is not None:
        try:
            lo, hi = (float(x) for x in rng)
            return (lo, hi), "attribute output_range"
        except (TypeError, ValueError):
            pass
    last = None
    for m in module.modules():
        if len(list(m.children())) == 0:
            last = m
    kind = _layer_kind(last) if last is not None else ""
    if kind == "Tanh":
        return (-1.0, 1.0), "final Tanh layer"
    if kind == "Sigmoid":
        return (0.0, 1.0), "final Sigmoid layer"
    return None


#: Slack around [0, 1] when reading a range from probe outputs (SR networks overshoot a little).
RANGE_TOLERANCE = 0.1
#: Slack around [-1, 1]: unclamped GAN generators (StyleGAN2) overshoot more.
SIGNED_RANGE_TOLERANCE = 0.25
RANGE_PROBE_SAMPLES = 8


def classify_range(
    lo: float, hi: float, tol: float = RANGE_TOLERANCE, signed_tol: float = SIGNED_RANGE_TOLERANCE
) -> tuple[float, float] | None:
    """``(0, 1)`` for values in [0, 1], ``(-1, 1)`` for values in [-1, 1] with clear negatives, else None.

    Args:
        lo, hi: Smallest and largest observed output value.
        tol: Slack around [0, 1]; values below ``-tol`` are clear negatives.
        signed_tol: Slack around [-1, 1].
    """
    if lo >= -tol and hi <= 1 + tol:
        return (0.0, 1.0)
    if lo < -tol and lo >= -1 - signed_tol and hi <= 1 + signed_tol:
        return (-1.0, 1.0)
    return None


def probe_output_range(
    run: Any, spec: GeneratorSpec, samples: int = RANGE_PROBE_SAMPLES, batch: int | None = None
) -> tuple[tuple[float, float], str]:
    """Infer the output range by running the generator on seeded inputs.

    Values observed in [0, 1] give ``(0, 1)``; in [-1, 1] with negatives, ``(-1, 1)``
    (with :data:`RANGE_TOLERANCE` and :data:`SIGNED_RANGE_TOLERANCE` slack). An image-to-image generator is probed with
    images in [0, 1] first (the convention of SR and restoration networks), then in
    [-1, 1]; its input range follows its output range.

    Args:
        run: ``run(feeds) -> NCHW float32 numpy array`` (torch module or ONNX session).
        spec: The generator's spec (inputs; its range is ignored).
        samples: Seeded samples per probe.
        batch: Batch size of each run (a program exported with a fixed batch needs its own).

    Returns:
        ``(range, how)``, ``how`` naming the observed extremes.

    Raises:
        SpecError: Outputs outside both ranges, or NaN/Inf: refuse to guess, ask for ``--output-range``.
    """
    import numpy as np

    from accelkit.sampler import LatentSampler

    has_image = any(i.kind == "image" for i in spec.inputs)
    tries = [(0.0, 1.0), (-1.0, 1.0)] if has_image else [spec.output_range]
    seen: list[tuple[float, float]] = []
    for in_range in tries:
        probe_spec = replace(spec, output_range=in_range)
        step = batch or min(samples, 4)
        sampler = LatentSampler(probe_spec, seed=987, batch_size=step)
        outs = [np.asarray(run(feeds)) for feeds in sampler.batches(-(-samples // step) * step)]
        arr = np.concatenate([o.reshape(o.shape[0], -1) for o in outs])
        if not np.isfinite(arr).all():
            raise SpecError(
                "the generator returned NaN/Inf on seeded inputs while accelkit probed its output range; give it with --output-range LOW,HIGH"
            )
        lo, hi = float(arr.min()), float(arr.max())
        seen.append((lo, hi))
        rng = classify_range(lo, hi)
        if rng is not None and (not has_image or rng == in_range):
            src = f" with input images in [{in_range[0]:g}, {in_range[1]:g}]" if has_image else ""
            return rng, f"probing {samples} seeded samples{src} (outputs in [{lo:.3g}, {hi:.3g}])"
    shown = "; ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in seen)
    raise SpecError(
        f"cannot tell the generator's output range: on seeded inputs it returned values in {shown}, not clearly [0, 1] or [-1, 1]; "
        "give it with --output-range LOW,HIGH (e.g. 0,1 or -1,1)"
    )


def torch_runner_fn(module: Any) -> Any:
    """``feeds -> numpy`` for a torch module taking the spec's inputs positionally (CPU, fp32)."""
    import numpy as np
    import torch

    def run(feeds: dict[str, Any], names: Sequence[str] | None = None) -> Any:
        args = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
        with torch.inference_mode():
            out = module(*args)
        return out.detach().float().cpu().numpy()

    return run


def _candidate_inputs(module: Any) -> tuple[list[list[InputSpec]], str]:
    """Candidate input lists to probe, from attributes, the forward signature and the first layer."""
    from accelkit.spec import LATENT_NAMES

    names = _forward_arg_names(module) or []
    z_dim = _attr(module, _LATENT_ATTRS)
    n_cls = _attr(module, _CLASS_ATTRS)
    in_shape = _attr(module, ("input_shape", "in_shape", "img_shape_in"))
    cands: list[list[InputSpec]] = []
    how = []
    label_name = next((n for n in names[1:] if n in _LABEL_ARG_NAMES), None)
    label: list[InputSpec] = []
    if isinstance(n_cls, int) and n_cls > 0:
        how.append("num_classes attribute")
    elif label_name is not None:
        n_cls = _first_embedding_rows(module)
        if n_cls:
            how.append("Embedding rows as class count")
    if isinstance(n_cls, int) and n_cls > 0:
        label = [
            InputSpec(
                label_name or (names[1] if len(names) > 1 else "label"),
                "label",
                (),
                "int64",
                int(n_cls),
            )
        ]
    first = names[0] if names else None
    if isinstance(in_shape, (tuple, list)) and len(in_shape) == 3:
        cands.append(
            [InputSpec(first or "image", "image", tuple(int(d) for d in in_shape))] + label
        )
        how.append("input_shape attribute")
    if isinstance(z_dim, int) and z_dim > 0:
        lname = first if first and first not in _IMAGE_ARG_NAMES[:4] else (first or "z")
        cands.append([InputSpec(lname, "latent", (int(z_dim),))] + label)
        cands.append([InputSpec(lname, "latent", (int(z_dim), 1, 1))] + label)
        how.append("z_dim-like attribute")
    if not cands:
        layer = _first_layer(module)
        name = first or "input"
        if layer is not None and layer[0] == "Conv2d" and len(layer[1]) == 4:
            ch = int(layer[1][1])
            latent_like = name.lower() in LATENT_NAMES or (
                ch not in (1, 3, 4) and name not in _IMAGE_ARG_NAMES
            )
            kind: Literal["latent", "label", "image"] = "latent" if latent_like else "image"
            for s in (32, 64):
                cands.append(
                    [
                        InputSpec(
                            name if first else ("latent" if latent_like else "image"),
                            kind,
                            (ch, s, s),
                        )
                    ]
                    + label
                )  # type: ignore[arg-type]
            how.append(
                f"first Conv2d takes {ch} channels ({kind}; size {cands[-2][0].shape[1]} assumed: override with --input)"
            )
        elif layer is not None and layer[0] == "Linear" and len(layer[1]) == 2:
            width = int(layer[1][1])
            cands.append([InputSpec(first or "z", "latent", (width,))] + label)
            emb = _first_embedding_width(module)
            if label and emb and width > emb:  # z concatenated with the label's embedding
                cands.append([InputSpec(first or "z", "latent", (width - emb,))] + label)
            how.append(
                f"first layer Linear({width}, ...)"
                + (f" less the {emb}-wide label embedding" if label and emb and width > emb else "")
            )
        elif layer is not None and layer[0] == "ConvTranspose2d" and len(layer[1]) == 4:
            cands.append([InputSpec(first or "z", "latent", (int(layer[1][0]), 1, 1))] + label)
            cands.append([InputSpec(first or "z", "latent", (int(layer[1][0]),))] + label)
            how.append(f"first ConvTranspose2d takes {layer[1][0]} channels")
    return cands, ", ".join(how)


def _first_embedding_width(module: Any) -> int | None:
    for m in module.modules():
        if _layer_kind(m) == "Embedding":
            shape = _weight_shape(m)
            if shape and len(shape) == 2:
                return int(shape[1])
    return None


def _first_embedding_rows(module: Any) -> int | None:
    for m in module.modules():
        if _layer_kind(m) == "Embedding":
            shape = _weight_shape(m)
            if shape:
                return int(shape[0])
    return None


def merge_inputs(inferred: Sequence[InputSpec], given: Sequence[InputSpec]) -> list[InputSpec]:
    """Inferred inputs with user-given ones replacing those of the same name (or position).

    A given input whose name matches none replaces the inferred input at its position
    when the user gave no more inputs than were inferred; otherwise it is appended.
    """
    new = list(inferred)
    for pos, inp in enumerate(given):
        idx = next((k for k, cur in enumerate(new) if cur.name == inp.name), None)
        if (
            idx is None
            and pos < len(new)
            and len(given) <= len(new)
            and new[pos].name not in {g.name for g in given}
        ):
            idx = pos
        if idx is None:
            new.append(inp)
        else:
            new[idx] = inp
    return new


def probe_output(
    module: Any,
    inputs: Sequence[InputSpec],
    batch: int = 2,
    output_shape: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], Any]:
    """Run the module on seeded inputs; return the per-sample image shape and how it was found.

    Args:
        module: The generator.
        inputs: Its inputs.
        batch: Probe batch size.
        output_shape: ``--output-shape`` for flat outputs.

    Returns:
        ``(shape, rule)``: ``(C, H, W)`` and the :class:`~accelkit.loaders.adapters.OutputRule`.

    Raises:
        SpecError: The forward pass fails or returns no image batch.
    """
    import torch

    from accelkit.loaders.adapters import find_image
    from accelkit.sampler import LatentSampler

    spec = GeneratorSpec(inputs=tuple(inputs))
    feeds = LatentSampler(spec, seed=0).inputs(0, batch)
    args = [torch.from_numpy(feeds[i.name]) for i in inputs]
    try:
        with torch.inference_mode():
            out = module(*args)
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
        shapes = ", ".join(f"{i.name}={(batch, *i.shape)}" for i in inputs)
        raise SpecError(
            f"the generator fails on inputs {shapes} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); give its inputs with --input"
        ) from None
    img, rule = find_image(out, batch, output_shape)
    return tuple(int(d) for d in img.shape[1:]), rule


def infer_spec_and_rule(
    module: Any,
    given: Sequence[InputSpec] = (),
    batch: int = 2,
    output_shape: Sequence[int] | None = None,
    candidates: Sequence[Sequence[InputSpec]] | None = None,
    candidates_how: str = "",
) -> tuple[GeneratorSpec, Any]:
    """Inputs, output shape and output rule of a torch generator (no output range yet).

    Args:
        module: The generator in eval mode.
        given: User-given inputs (``--input``): each replaces the inferred input of its
            name; with nothing inferred they are the inputs.
        batch: Probe batch size.
        output_shape: ``--output-shape`` for flat outputs.
        candidates: Input lists to try instead of inferring them from the module.
        candidates_how: How ``candidates`` were found (recorded).

    Raises:
        SpecError: No candidate runs; the message says which ``--input`` to pass.
    """
    if candidates is not None:
        cands, how = [list(c) for c in candidates], candidates_how
    else:
        cands, how = _candidate_inputs(module)
    if given:
        merged = [merge_inputs(c, given) for c in cands]
        cands = [c for k, c in enumerate(merged) if c not in merged[:k]]
        if list(given) not in cands:
            cands.append(list(given))
        how = "--input" + (f" over {how}" if how and cands[0] != list(given) else "")
    if not cands:
        names = _forward_arg_names(module)
        raise SpecError(
            f"cannot infer the generator's inputs (forward arguments: {names}); "
            "pass them with --input, e.g. --input z:128 or --input label:int:10 or --input image:3x64x64"
        )
    errors: list[str] = []
    for cand in cands:
        unknown = [i.name for i in cand if i.kind == "label" and not i.num_classes]
        if unknown:
            errors.append(
                f"input {unknown[0]!r} is an integer label and the number of classes is unknown; pass --input {unknown[0]}:int:CLASSES"
            )
            continue
        try:
            out_shape, rule = probe_output(module, cand, batch, output_shape)
        except SpecError as exc:
            errors.append(str(exc))
            continue
        inferred = [("inputs", how or "--input"), ("output_shape", "probing")]
        if not rule.identity:
            inferred.append(("output", rule.describe()))
        return GeneratorSpec(
            inputs=tuple(cand), output_shape=out_shape, inferred=tuple(inferred)
        ), rule
    raise SpecError(
        errors[0] if errors else "cannot infer the generator's inputs; pass them with --input"
    )


def infer_torch_spec(
    module: Any,
    given: Sequence[InputSpec] = (),
    batch: int = 2,
    output_shape: Sequence[int] | None = None,
) -> GeneratorSpec:
    """Infer a torch generator's spec by attributes, signature, first layer and probing.

    The output range comes from an ``output_range`` attribute, a final Tanh/Sigmoid, or
    by probing (:func:`probe_output_range`).

    Args:
        module: The generator in eval mode (nn.Module, ScriptModule or GraphModule); its
            output must be an NCHW batch (see :mod:`accelkit.loaders.adapters` otherwise).
        given: User-given inputs (``--input``), merged over the inferred ones by name.
        batch: Batch size to probe with (a fixed-batch program needs its own).
        output_shape: ``--output-shape`` for flat outputs.

    Raises:
        SpecError: Nothing worked; the message says which ``--input`` (or ``--output-range``) to pass.
    """
    spec, _ = infer_spec_and_rule(module, given, batch, output_shape)
    return _with_inferred_range(module, spec)


def _with_inferred_range(
    module: Any, spec: GeneratorSpec, batch: int | None = None
) -> GeneratorSpec:
    guess = _output_range_guess(module)
    if guess is None:
        guess = probe_output_range(torch_runner_fn(module), spec, batch=batch)
    rng, how = guess
    return replace(
        spec,
        output_range=rng,
        inferred=tuple(k for k in spec.inferred if k[0] != "output_range")
        + (("output_range", how),),
    )


def spec_from_onnx(
    model: Any,
    path: Path,
    given: Sequence[InputSpec] = (),
    output_range: tuple[float, float] | None = None,
) -> GeneratorSpec:
    """Spec of an ONNX generator from its accelkit metadata, or from its graph I/O.

    Without metadata: inputs come from the graph (a dynamic height/width or an integer
    label needs ``--input``), the output shape from the graph or one ONNX Runtime run,
    and the output range from ``output_range`` or by probing in ONNX Runtime
    (:func:`probe_output_range`).

    Raises:
        SpecError: An input whose shape or meaning cannot be read (say ``--input``), or an
            output range that probing cannot tell (say ``--output-range``).
    """
    import onnx

    meta = {p.key: p.value for p in model.metadata_props}
    if "accelkit.spec" in meta:
        try:
            return GeneratorSpec.from_dict(json.loads(meta["accelkit.spec"]))
        except (json.JSONDecodeError, SpecError):
            log.warning("%s: ignoring unreadable accelkit.spec metadata", path)
    init_names = {i.name for i in model.graph.initializer}
    inputs: list[InputSpec] = []
    problems: dict[str, str] = {}
    dynamic_hw = False
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        per = dims[1:]
        if tt.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            problems[vi.name] = (
                f"{path}: input {vi.name!r} is an integer label and the number of classes is unknown; pass --input {vi.name}:int:CLASSES"
            )
            inputs.append(InputSpec(vi.name, "label", (), "int64", None))
            continue
        if not dims or any(d is None for d in per):
            dynamic_hw = dynamic_hw or (len(dims) == 4 and dims[1] is not None)
            problems[vi.name] = (
                f"{path}: input {vi.name!r} has shape {['?' if d is None else d for d in dims]}; give the size to run it at with "
                f"--input {vi.name}:{dims[1] if len(dims) == 4 and dims[1] else 'C'}xHxW"
            )
            inputs.append(InputSpec(vi.name, "latent", ()))
            continue
        shape = tuple(int(d) for d in per)  # type: ignore[arg-type]
        if math.prod(shape) > MAX_ELEMENTS:
            raise SpecError(
                f"{path}: input {vi.name!r} declares dimension {max(shape):,} ({math.prod(shape):,} values per sample); that is no generator input, check the file"
            )
        kind = "image" if len(shape) == 3 and shape[1] > 1 else "latent"
        inputs.append(InputSpec(vi.name, kind, shape))  # type: ignore[arg-type]
    if given:
        inputs = merge_inputs(inputs, given)
    for inp in inputs:
        if inp.name in problems and not any(g.name == inp.name for g in given):
            raise SpecError(problems[inp.name])
    inferred: list[tuple[str, str]] = [
        ("inputs", "ONNX graph inputs" + (" and --input" if given else ""))
    ]
    spec = GeneratorSpec(inputs=tuple(inputs))
    if dynamic_hw and spec.spatial_inputs:
        from accelkit.spec import default_hw_range

        h, w = spec.spatial_inputs[0].shape[1:]
        spec = replace(spec, hw_range=default_hw_range(max(h, w)))
        inferred.append(
            (
                "hw_range",
                "dynamic height/width in the ONNX graph (range assumed; set it with --hw-range)",
            )
        )
    outs = model.graph.output
    d = (
        [x.dim_value if x.HasField("dim_value") else 0 for x in outs[0].type.tensor_type.shape.dim]
        if outs
        else []
    )
    run = _onnx_run_fn(model)
    if len(d) == 4 and all(d[1:]) and not dynamic_hw:
        spec = replace(spec, output_shape=tuple(d[1:]))
        inferred.append(("output_shape", "ONNX graph output"))
    elif run is not None:
        from accelkit.sampler import LatentSampler

        out = run(LatentSampler(spec, seed=0).inputs(0, 1))
        spec = replace(spec, output_shape=tuple(int(x) for x in out.shape[1:]))
        inferred.append(("output_shape", "probing in ONNX Runtime"))
    if output_range is not None:
        spec = replace(spec, output_range=output_range)
    elif run is not None:
        rng, how = probe_output_range(run, spec)
        spec = replace(spec, output_range=rng)
        inferred.append(("output_range", how + " in ONNX Runtime"))
    else:
        inferred.append(
            (
                "output_range",
                "default [-1, 1]: onnxruntime is not installed to probe it (override with --output-range)",
            )
        )
    return replace(spec, inferred=tuple(inferred))


def _onnx_run_fn(model: Any) -> Any:
    """``feeds -> output`` through ONNX Runtime on CPU, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(
            model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - an ONNX file ORT cannot open: say so where it is run
        log.warning(
            "ONNX Runtime cannot open the model to probe it (%s)",
            str(exc).splitlines()[0][:160] if str(exc) else exc,
        )
        return None
    out_name = sess.get_outputs()[0].name
    feed_names = {i.name for i in sess.get_inputs()}

    def run(feeds: dict[str, Any]) -> Any:
        return sess.run([out_name], {k: v for k, v in feeds.items() if k in feed_names})[0]

    return run


def onnx_precision(model: Any) -> str:
    """``int8`` when the graph has QuantizeLinear nodes, ``fp16`` with float16 weights, else ``fp32``."""
    import onnx

    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


# ----------------------------------------------------------------------- public API
#: Name of the spec stored inside TorchScript and ``.pt2`` archives that accelkit writes
#: (``_extra_files`` / ``extra_files``): the next command needs no ``--input`` flags.
SPEC_EXTRA_FILE = "accelkit_spec.json"


def spec_extra_files(spec: GeneratorSpec) -> dict[str, str]:
    """``{SPEC_EXTRA_FILE: spec JSON}`` for ``torch.jit.save(..., _extra_files=...)`` / ``torch.export.save(..., extra_files=...)``."""
    return {SPEC_EXTRA_FILE: spec.to_json()}


def _stored_spec_text(text: str | bytes | None, path: Path, where: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        GeneratorSpec.from_dict(data)
    except (json.JSONDecodeError, SpecError, TypeError, UnicodeDecodeError):
        log.warning("%s: ignoring an unreadable spec in %s", path, where)
        return None
    return data  # type: ignore[no-any-return]


def _matching_sidecar(path: Path, sha: str) -> dict[str, Any] | None:
    """The sidecar of ``path`` when it describes exactly this file (same sha256), else None."""
    try:
        side = read_sidecar(path)
    except LoadError:
        return None
    if side and side.get("sha256") == sha and isinstance(side.get("spec"), dict):
        return side
    return None


def load_generator(
    path: str | Path | None = None,
    *,
    arch: str | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    inputs: Sequence[InputSpec] = (),
    output_range: tuple[float, float] | None = None,
    latent_dist: str | None = None,
    truncation_psi: float | None = None,
    output_shape: Sequence[int] | None = None,
    hw_range: tuple[int, int, int] | None = None,
    trust: bool = False,
) -> Artifact:
    """Load a generator file into an artifact with an inferred (or given) spec.

    Args:
        path: The file; a diffusers VAE folder (``config.json`` +
            ``diffusion_pytorch_model.safetensors``, or a pipeline folder with ``vae/``);
            None for the bundled DCGAN demo generator; a bundled name (``dcgan``,
            ``stylegan2``, ``sr4x``) also works.
        arch: Architecture for weight-only files: ``module:Class``, ``file.py:Class``
            or a bundled architecture name. Without it, a super-resolution state_dict is
            given to spandrel (extra ``[sr]``) to detect.
        arch_kwargs: Constructor keyword arguments for ``arch``.
        inputs: User-given inputs (``--input``); each replaces the inferred input of its name.
        output_range: User-given output range (``--output-range``); else read from the
            model (attribute, final Tanh/Sigmoid, family convention) or probed.
        latent_dist: ``normal`` or ``uniform``.
        truncation_psi: Truncation for latents.
        output_shape: ``(C, H, W)`` of a flat output (``--output-shape``).
        hw_range: ``(min, opt, max)`` height/width of spatial inputs for a generator that
            runs at any size (``--hw-range``); ``(0, 0, 0)``: a default range around the
            input size (``--dynamic-hw``).
        trust: Allow full pickle loading (runs code from the file).

    Returns:
        A ``torch`` artifact (module in eval mode on CPU, float32; a dict, tuple or flat
        output wrapped by :class:`~accelkit.loaders.adapters.OutputAdapter`) or an ``onnx`` one.

    Raises:
        InputError, LoadError, UntrustedPickleError, SpecError, MissingDependencyError:
        one-line explanations.
    """
    import torch

    p = _resolve_path(path)
    fmt = detect_format(p)
    sha = sha256_file(p) if p.is_file() else _folder_sha256(p)
    meta: dict[str, Any] = {
        "loader": fmt,
        "file_bytes": p.stat().st_size if p.is_file() else _folder_bytes(p),
    }
    load_opts: dict[str, Any] = {"path": str(p), "format": fmt, "trust_pickle": trust}
    if arch:
        load_opts.update(arch=arch, arch_kwargs=dict(arch_kwargs or {}))
    if output_shape:
        load_opts["output_shape"] = list(output_shape)

    if fmt == "onnx":
        art = _load_onnx(p, sha, meta, load_opts, inputs, output_range)
        art.spec = (
            apply_overrides(art.spec, inputs, output_range, latent_dist, truncation_psi, hw_range)  # type: ignore[arg-type]
            or art.spec
        )
        return art

    module: Any = None
    program: Any = None
    stored_spec: dict[str, Any] | None = None
    family: GeneratorSpec | None = (
        None  # a family loader's spec (inputs and range by its convention)
    )
    sidecar: dict[str, Any] | None = None
    if fmt == "diffusers":
        from accelkit.loaders.diffusers_vae import load_vae_decoder

        module, family, fam_meta = load_vae_decoder(p)
        meta.update(fam_meta)
    elif fmt == "torchscript":
        extra = {SPEC_EXTRA_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", DeprecationWarning
                )  # TorchScript is deprecated but users have such files
                with open(p, "rb") as fh:  # a file object: paths that are not valid UTF-8 work too
                    module = torch.jit.load(fh, map_location="cpu", _extra_files=extra)
        except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
            raise LoadError(
                f"{p} is a TorchScript archive that fails to load ({str(exc).splitlines()[0][:160]}); re-save it with torch.jit.save"
            ) from None
        stored_spec = _stored_spec_text(extra.get(SPEC_EXTRA_FILE), p, "the TorchScript archive")
    elif fmt == "pt2":
        extra = {SPEC_EXTRA_FILE: ""}
        try:
            with open(p, "rb") as fh:  # a file object: paths that are not valid UTF-8 work too
                if trust:
                    program = torch.export.load(fh, extra_files=extra)
                else:
                    with weights_only_torch_load(p):
                        program = torch.export.load(fh, extra_files=extra)
        except AccelkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
            raise LoadError(
                f"{p} is a torch.export archive that fails to load ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); re-save it with torch.export.save"
            ) from None
        module = program.module()
        stored_spec = _stored_spec_text(extra.get(SPEC_EXTRA_FILE), p, "the torch.export archive")
    elif fmt == "safetensors":
        module, stored_spec, family = _load_safetensors(p, arch, arch_kwargs, meta)
    else:  # torch_save / torch_legacy
        obj = _torch_load(p, trust)
        found, where = find_state_dict(obj, p)
        meta["checkpoint_key"] = where
        if isinstance(found, torch.nn.Module):
            if not trust:  # cannot happen with weights_only, but never rely on that
                raise UntrustedPickleError(f"{p} holds a pickled module; {_PICKLE_HINT}")
            module = found
        else:
            use_arch = arch
            if not use_arch and isinstance(obj, Mapping):
                key = (
                    "accelkit_arch"
                    if obj.get("accelkit_arch") is not None
                    else "arch"
                    if obj.get("arch") is not None
                    else None
                )
                if key is not None:
                    use_arch = stored_architecture(obj[key], p, f"its {key!r} entry")
                    stored_kwargs = obj.get("accelkit_arch_kwargs") or obj.get("arch_kwargs") or {}
                    if not isinstance(stored_kwargs, Mapping) or not all(
                        isinstance(k, str) for k in stored_kwargs
                    ):
                        raise InputError(
                            f"{p}: the stored architecture arguments are not a dict of names; pass --arch-kwargs"
                        )
                    arch_kwargs = dict(stored_kwargs)
            if not use_arch:
                module, family = _weights_without_arch(found, where, p, meta)
            else:
                module = _build_module(use_arch, arch_kwargs)
                _fit_state_dict(module, found, use_arch, p)
                meta["arch"] = use_arch
                meta["arch_kwargs"] = dict(arch_kwargs or {})
    if not isinstance(module, torch.nn.Module):
        raise LoadError(f"{p} did not yield a torch module (got {type(module).__name__})")
    if (
        program is None
    ):  # an unlifted torch.export module refuses .eval(); it is frozen in its export mode
        module = module.eval().float()
    for prm in module.parameters():
        prm.requires_grad_(False)
    meta["parameters"] = int(sum(prm.numel() for prm in module.parameters()))
    if fmt in (
        "torchscript",
        "pt2",
    ):  # a file accelkit wrote (a pruned model): its record comes back with it
        found_side = _matching_sidecar(p, sha)
        if found_side is not None:
            meta.update(
                {
                    k: v
                    for k, v in (found_side.get("meta") or {}).items()
                    if k not in meta and k not in ("loader", "file_bytes", "parameters")
                }
            )
            if stored_spec is None:
                stored_spec, sidecar = found_side["spec"], found_side

    batch = 2
    if program is not None:
        meta["static_batch"] = _program_static_batch(program)
        batch = meta["static_batch"] or 2
    rule = None
    if stored_spec is not None and not inputs and not output_shape:
        spec = GeneratorSpec.from_dict(stored_spec)
        spec = replace(
            spec,
            inferred=(
                (
                    "spec",
                    "stored by accelkit with the file"
                    if sidecar is None
                    else "the file's sidecar (same sha256)",
                ),
            ),
        )
    else:
        if stored_spec is not None:
            family = GeneratorSpec.from_dict(stored_spec)
        cands: list[list[InputSpec]] | None = None
        how = ""
        if family is not None:
            cands, how = [list(family.inputs)], dict(family.inferred).get("inputs", "the file")
        elif program is not None:
            prog_inputs, problems = _program_inputs(program, module)
            unresolved = [n for n in problems if not any(g.name == n for g in inputs)]
            if unresolved:
                raise SpecError(problems[unresolved[0]])
            cands, how = [prog_inputs], "torch.export signature"
        spec, rule = infer_spec_and_rule(
            module,
            inputs,
            batch=batch,
            output_shape=output_shape,
            candidates=cands,
            candidates_how=how,
        )
        if rule is not None and not rule.identity:
            from accelkit.loaders.adapters import adapt

            module = adapt(module, rule, spec.input_names)
            meta["output_adapter"] = rule.to_dict()
        if family is not None:
            kept = tuple((k, v) for k, v in family.inferred if k != "inputs")
            spec = replace(
                spec,
                output_range=family.output_range,
                latent_dist=family.latent_dist,
                hw_range=family.hw_range,
                inferred=spec.inferred + kept,
            )
        elif output_range is None:
            spec = _with_inferred_range(module, spec, batch=meta.get("static_batch"))
    spec = apply_overrides(spec, (), output_range, latent_dist, truncation_psi, hw_range) or spec  # type: ignore[arg-type]
    return Artifact(
        format="torch",
        spec=spec,
        path=None,
        module=module,
        program=program if rule is None or rule.identity else None,
        source=str(p),
        source_sha256=sha,
        passes=[{"name": "load", "options": load_opts}],
        meta=meta,
    )


def _weights_without_arch(
    found: Mapping[str, Any], where: str, p: Path, meta: dict[str, Any]
) -> tuple[Any, GeneratorSpec]:
    """A state_dict given without ``--arch``: spandrel may recognise a super-resolution network.

    Raises:
        InputError: Not recognised (or spandrel not importable): ask for ``--arch``.
    """
    from accelkit.errors import MissingDependencyError
    from accelkit.loaders.spandrel_sr import load_sr

    try:
        module, spec, fam_meta = load_sr(found, p)
    except MissingDependencyError as exc:
        raise InputError(
            f"{p} holds only weights (a state_dict under {where}); say which architecture they belong to with "
            "--arch module:Class (plus --arch-kwargs JSON) or a bundled name (dcgan, stylegan2, sr4x); "
            f"super-resolution checkpoints (ESRGAN, Real-ESRGAN, SwinIR...) load without --arch once spandrel imports: {exc}"
        ) from None
    meta.update(fam_meta)
    return module, spec


def _folder_sha256(folder: Path) -> str:
    """sha256 over a model folder's config and weight files (names and bytes), sorted."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(
        q
        for q in folder.rglob("*")
        if q.is_file() and q.suffix in (".json", ".safetensors", ".bin")
    ):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def _folder_bytes(folder: Path) -> int:
    return sum(q.stat().st_size for q in folder.rglob("*") if q.is_file())


def _load_onnx(
    p: Path,
    sha: str,
    meta: dict[str, Any],
    load_opts: dict[str, Any],
    inputs: Sequence[InputSpec] = (),
    output_range: tuple[float, float] | None = None,
) -> Artifact:
    import onnx

    try:
        model = onnx.load(str(p), load_external_data=True)
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
        why = one_line(exc)
        if p.suffix.lower() != ".onnx":  # only its first byte looked like ONNX
            raise LoadError(
                f"{p} is not a model file accelkit can read (expected TorchScript, .pt2, ONNX, a torch.save checkpoint or safetensors; "
                f"it does not parse as ONNX either: {why})"
            ) from None
        raise LoadError(f"{p} is not a readable ONNX model ({why}); re-export it") from None
    if not model.graph.node:
        raise LoadError(
            f"{p} parses as ONNX but has an empty graph; it is not a model (truncated or wrong file?)"
        )
    side = read_sidecar(p)
    spec = spec_from_onnx(model, p, inputs, output_range)
    passes = [{"name": "load", "options": load_opts}]
    if side:
        passes = list(side.get("passes", [])) or passes
        meta.update({k: v for k, v in side.get("meta", {}).items() if k not in meta})
    meta["opset"] = max(
        (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None
    )
    return Artifact(
        format="onnx",
        spec=spec,
        path=p,
        precision=onnx_precision(model),
        source=(side or {}).get("source") or str(p),
        source_sha256=(side or {}).get("source_sha256") or sha,
        passes=passes,
        meta=meta,
    )


def _load_safetensors(
    p: Path, arch: str | None, arch_kwargs: Mapping[str, Any] | None, meta: dict[str, Any]
) -> tuple[Any, dict[str, Any] | None, GeneratorSpec | None]:
    """``(module, stored spec dict, family spec)`` of a safetensors file (weights + ``--arch``, or spandrel)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors_bytes

    try:
        data = (
            p.read_bytes()
        )  # bytes, not a path: any file name works, and the header is parsed once
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        st_meta = header.get("__metadata__") or {}
        if not isinstance(st_meta, dict) or not all(isinstance(v, str) for v in st_meta.values()):
            raise ValueError("__metadata__ is not a map of strings")
        sd = load_safetensors_bytes(data)
    except (SafetensorError, OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise LoadError(
            f"{p} is not a valid safetensors file ({first}); re-save it with safetensors.torch.save_file"
        ) from None
    use_arch = arch
    if not use_arch and "accelkit.arch" in st_meta:
        use_arch = stored_architecture(
            st_meta["accelkit.arch"], p, "its safetensors metadata (accelkit.arch)"
        )
    if not use_arch:
        module, family = _weights_without_arch(sd, "safetensors", p, meta)
        return module, None, family
    if not arch and "accelkit.arch_kwargs" in st_meta:
        try:
            arch_kwargs = json.loads(st_meta["accelkit.arch_kwargs"])
        except json.JSONDecodeError:
            raise LoadError(
                f"{p}: metadata accelkit.arch_kwargs is not JSON; pass --arch-kwargs"
            ) from None
    module = _build_module(use_arch, arch_kwargs)
    _fit_state_dict(module, sd, use_arch, p)
    meta.update(arch=use_arch, arch_kwargs=dict(arch_kwargs or {}), safetensors_metadata=st_meta)
    stored = None
    if "accelkit.spec" in st_meta:
        try:
            stored = json.loads(st_meta["accelkit.spec"])
        except json.JSONDecodeError:
            stored = None
    return module, stored, None


def _embedding_rows(program: Any, node: Any) -> int | None:
    """Rows of the embedding table an integer program input indexes (its number of classes), if any."""
    for user in node.users:
        if "embedding" in str(user.target) and len(user.args) >= 2 and user.args[1] is node:
            weight = user.args[0]
            val = getattr(weight, "meta", {}).get("val")
            if val is not None and getattr(val, "dim", lambda: 0)() == 2:
                try:
                    return int(val.shape[0])
                except (TypeError, ValueError):
                    return None
    return None


def _program_inputs(program: Any, module: Any) -> tuple[list[InputSpec], dict[str, str]]:
    """Inputs of a torch.export program from its placeholder fake tensors.

    Returns:
        ``(inputs, problems)``: an input whose shape or class count cannot be read is
        listed with an empty shape (and no classes), and ``problems`` maps its name to
        the message telling which ``--input`` gives it.
    """
    import torch

    sig = program.graph_signature
    user = list(sig.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    names = _forward_arg_names(module) or []
    out: list[InputSpec] = []
    problems: dict[str, str] = {}
    for k, name in enumerate(user):
        node = placeholders.get(name)
        val = node.meta.get("val") if node is not None else None
        arg_name = names[k] if k < len(names) else name
        if val is None or not hasattr(val, "shape"):
            problems[arg_name] = (
                f"torch.export program input {arg_name!r} has no recorded shape; give it with --input"
            )
            out.append(InputSpec(arg_name, "latent", ()))
            continue
        if val.dtype in (torch.int64, torch.int32):
            n_cls = _embedding_rows(program, node) or _attr(module, _CLASS_ATTRS)
            if not isinstance(n_cls, int):
                problems[arg_name] = (
                    f"input {arg_name!r} is an integer label and the number of classes is unknown; pass --input {arg_name}:int:CLASSES"
                )
                out.append(InputSpec(arg_name, "label", (), "int64", None))
            else:
                out.append(InputSpec(arg_name, "label", (), "int64", int(n_cls)))
            continue
        shape = tuple(val.shape)[1:]
        try:
            per = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            problems[arg_name] = (
                f"torch.export program input {arg_name!r} has symbolic non-batch dims {shape}; give its size with --input"
            )
            out.append(InputSpec(arg_name, "latent", ()))
            continue
        kind = (
            "image"
            if len(per) == 3
            and per[1] > 1
            and arg_name.lower() not in ("z", "latent", "latents", "noise")
            else "latent"
        )
        out.append(InputSpec(arg_name, kind, per))  # type: ignore[arg-type]
    return out, problems


def _program_static_batch(program: Any) -> int | None:
    """The batch size baked into a torch.export program, or None if it is symbolic."""
    import torch

    for n in program.graph.nodes:
        if n.op == "placeholder" and n.name in set(program.graph_signature.user_inputs):
            val = n.meta.get("val")
            if val is not None and val.dim() > 0:
                dim = val.shape[0]
                return None if isinstance(dim, torch.SymInt) else int(dim)
    return None
