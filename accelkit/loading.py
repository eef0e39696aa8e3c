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
import pickle
import re
import struct
import sys
import threading
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from accelkit.artifact import Artifact, read_sidecar
from accelkit.files import sha256_file
from accelkit.errors import AccelkitError, InputError, LoadError, SpecError, UntrustedPickleError
from accelkit.spec import GeneratorSpec, InputSpec, apply_overrides

log = logging.getLogger(__name__)

#: Checkpoint-dict keys that may hold the generator, in order of preference
#: (EMA weights first: they are what people ship).
GENERATOR_KEYS = ("G_ema", "g_ema", "generator_ema", "netG", "generator", "gen", "G", "model", "state_dict", "ema", "module")

_LATENT_ATTRS = ("z_dim", "nz", "latent_dim", "noise_dim", "dim_z", "latent_size", "nz_dim")
_CLASS_ATTRS = ("num_classes", "n_classes", "c_dim", "num_labels", "n_class")
_LATENT_ARG_NAMES = ("z", "latent", "latents", "noise", "z_in", "input_z", "w", "x", "input")
_LABEL_ARG_NAMES = ("label", "labels", "y", "c", "class_label", "class_labels", "cls", "class_idx", "classes")
_IMAGE_ARG_NAMES = ("image", "img", "images", "x", "lr", "input", "src", "source", "inputs")
_PICKLE_HINT = "load it only if you trust its origin, with --trust-pickle (trust=True)"


# --------------------------------------------------------------------------- formats
def detect_format(path: Path) -> str:
    """Guess a file's format from its bytes (and its suffix where bytes are ambiguous).

    Returns:
        One of ``onnx``, ``safetensors``, ``torchscript``, ``pt2``, ``torch_save``,
        ``torch_legacy``.

    Raises:
        LoadError: The file is empty, truncated or not a model format accelkit knows.
    """
    size = path.stat().st_size
    if size == 0:
        raise LoadError(f"{path} is empty (0 bytes); re-save or re-download the model file")
    with open(path, "rb") as f:
        head = f.read(16)
    suffix = path.suffix.lower()
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            raise LoadError(f"{path} looks like a torch zip archive but is truncated or corrupt ({size} bytes); re-save or re-download it")
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise LoadError(f"{path} is a corrupt zip archive ({exc}); re-save or re-download it") from None
        if bad is not None:
            raise LoadError(f"{path} is corrupt (member {bad} fails its checksum); re-save or re-download it")
        if any(n.endswith(("/archive_format", "serialized_exported_program.json")) for n in names):
            return "pt2"
        if any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch_save"
        if suffix == ".pt2":
            return "pt2"
        raise LoadError(f"{path} is a zip archive but not a TorchScript, torch.export or torch.save file; export your generator with torch.save/torch.jit.save/torch.export.save")
    if len(head) >= 8:
        (hlen,) = struct.unpack("<Q", head[:8])
        if 1 < hlen < min(size, 100_000_000) and head[8:9] == b"{":
            if 8 + hlen > size:
                raise LoadError(f"{path} is a truncated safetensors file (header says {hlen} bytes, file has {size}); re-save it")
            return "safetensors"
    if suffix == ".safetensors":
        raise LoadError(f"{path} has a .safetensors name but no valid safetensors header; re-save it with safetensors.torch.save_file")
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
            raise InputError(f"{p} is a folder; give the generator file inside it (e.g. {p}/gen.pt)")
        return p
    if str(path) in BUNDLED:
        return bundled_path(str(path))
    raise InputError(f"no such file: {p}; give the path of a generator file or a bundled name ({', '.join(BUNDLED)})")


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
        raise InputError(f"--arch {arch!r} is neither module:Class nor a bundled architecture ({', '.join(ARCHITECTURES)})")
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
    except Exception as exc:  # the user's module failed to import
        raise InputError(f"--arch {arch!r}: importing {mod_name} failed ({type(exc).__name__}: {exc}); check the module path and PYTHONPATH") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise InputError(f"--arch {arch!r}: module {mod_name} has no attribute {cls_name!r}")
    return cls  # type: ignore[no-any-return]


def _build_module(arch: str, arch_kwargs: Mapping[str, Any] | None) -> Any:
    cls = resolve_architecture(arch)
    try:
        return cls(**dict(arch_kwargs or {}))
    except TypeError as exc:
        raise InputError(f"--arch {arch}: constructing it failed ({exc}); pass the constructor arguments with --arch-kwargs '{{...}}'") from None


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

    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(k, str) for k in obj) and all(
        isinstance(v, torch.Tensor) for v in obj.values()
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
    raise LoadError(f"{path} holds a {type(obj).__name__}, not a generator, state_dict or checkpoint dict")


def _fit_state_dict(module: Any, sd: Mapping[str, Any], arch: str, path: Path) -> None:
    """Load ``sd`` into ``module`` strictly, stripping a common wrapper prefix if needed."""
    want = set(module.state_dict().keys())
    keys = list(sd.keys())
    candidates = [""] + sorted({k.split(".")[0] + "." for k in keys}) + ["module.", "_orig_mod."]
    best = None
    for prefix in candidates:
        stripped = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
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
        detail = next((ln.strip() for ln in first if "size mismatch" in ln), first[0] if first else "")
        raise LoadError(f"{path}: weights do not fit --arch {arch} ({detail}); check --arch-kwargs") from None


def _torch_load(path: Path, trust: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Weights only load failed" in msg or "weights_only" in msg or "Unsupported global" in msg:
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
            except Exception as exc2:  # a trusted pickle can still fail to unpickle
                raise LoadError(f"{path}: unpickling failed ({type(exc2).__name__}: {exc2}); make sure the classes it needs are importable") from None
        raise LoadError(f"{path} is corrupt or truncated ({msg.splitlines()[0] if msg else 'unpickling failed'}); re-save or re-download it") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(f"{path} is corrupt or truncated ({first}); re-save or re-download it") from None


# --------------------------------------------------------------------- spec inference
def _forward_arg_names(module: Any) -> list[str] | None:
    import inspect

    import torch

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
    names = []
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


def _first_layer_channels(module: Any) -> int | None:
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            return int(m.in_channels)
        if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d, torch.nn.Embedding)):
            return None
    return None


def _output_range_guess(module: Any) -> tuple[tuple[float, float], str]:
    import torch

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
    kind = getattr(last, "original_name", type(last).__name__)  # ScriptModules keep the class name there
    if isinstance(last, torch.nn.Tanh) or kind == "Tanh":
        return (-1.0, 1.0), "final Tanh layer"
    if isinstance(last, torch.nn.Sigmoid) or kind == "Sigmoid":
        return (0.0, 1.0), "final Sigmoid layer"
    return (-1.0, 1.0), "default (override with --output-range 0,1 if needed)"


def _candidate_inputs(module: Any) -> tuple[list[list[InputSpec]], str]:
    """Candidate input lists to probe, from attributes and the forward signature."""
    names = _forward_arg_names(module) or []
    z_dim = _attr(module, _LATENT_ATTRS)
    n_cls = _attr(module, _CLASS_ATTRS)
    in_shape = _attr(module, ("input_shape", "in_shape", "img_shape_in"))
    cands: list[list[InputSpec]] = []
    how = []
    label_name = next((n for n in names[1:] if n in _LABEL_ARG_NAMES), None)
    label: list[InputSpec] = []
    if not isinstance(n_cls, int) and label_name is not None:
        n_cls = _first_embedding_rows(module)
        if n_cls:
            how.append("Embedding rows as class count")
    if isinstance(n_cls, int) and n_cls > 0:
        label = [InputSpec(label_name or (names[1] if len(names) > 1 else "label"), "label", (), "int64", int(n_cls))]
        how.append("num_classes attribute")
    first = names[0] if names else None
    if isinstance(in_shape, (tuple, list)) and len(in_shape) == 3:
        cands.append([InputSpec(first or "image", "image", tuple(int(d) for d in in_shape))] + label)
        how.append("input_shape attribute")
    if isinstance(z_dim, int) and z_dim > 0:
        lname = first if first and first not in _IMAGE_ARG_NAMES[:4] else (first or "z")
        cands.append([InputSpec(lname, "latent", (int(z_dim),))] + label)
        cands.append([InputSpec(lname, "latent", (int(z_dim), 1, 1))] + label)
        how.append("z_dim-like attribute")
    if not cands and first is not None:
        ch = _first_layer_channels(module)
        if ch is not None and first in _IMAGE_ARG_NAMES:
            for s in (32, 64):
                cands.append([InputSpec(first, "image", (ch, s, s))] + label)
            how.append("first Conv2d in_channels (image size assumed; override with --input)")
        lin = _first_latent_width(module)
        if lin is not None:
            cands.append([InputSpec(first, "latent", (lin,))] + label)
            cands.append([InputSpec(first, "latent", (lin, 1, 1))] + label)
            how.append("first layer width")
    return cands, ", ".join(how)


def _first_embedding_rows(module: Any) -> int | None:
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.Embedding):
            return int(m.num_embeddings)
        if getattr(m, "original_name", "") == "Embedding" and hasattr(m, "weight"):
            return int(m.weight.shape[0])
    return None


def _first_latent_width(module: Any) -> int | None:
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            return int(m.in_features)
        if isinstance(m, torch.nn.ConvTranspose2d):
            return int(m.in_channels)
        if isinstance(m, torch.nn.Conv2d):
            return None
    return None


def probe_output(module: Any, inputs: Sequence[InputSpec], batch: int = 2) -> tuple[int, ...]:
    """Run the module on zeros-like seeded inputs; return the per-sample output shape.

    Raises:
        SpecError: The forward pass fails or returns something that is not an NCHW tensor.
    """
    import torch

    from accelkit.sampler import LatentSampler

    spec = GeneratorSpec(inputs=tuple(inputs))
    feeds = LatentSampler(spec, seed=0).inputs(0, batch)
    args = [torch.from_numpy(feeds[i.name]) for i in inputs]
    try:
        with torch.inference_mode():
            out = module(*args)
    except Exception as exc:
        shapes = ", ".join(f"{i.name}={(batch, *i.shape)}" for i in inputs)
        raise SpecError(f"the generator fails on inputs {shapes} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); give its inputs with --input") from None
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != batch:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SpecError(f"the generator returned {got}, expected an NCHW image batch of {batch}; accelkit handles image generators only")
    return tuple(int(d) for d in out.shape[1:])


def infer_torch_spec(module: Any, given: Sequence[InputSpec] = (), batch: int = 2) -> GeneratorSpec:
    """Infer a torch generator's spec by attributes, signature and probing.

    Args:
        module: The generator in eval mode (nn.Module, ScriptModule or GraphModule).
        given: User-given inputs (``--input``); when complete they are used as-is.
        batch: Batch size to probe with (a fixed-batch program needs its own).

    Raises:
        SpecError: Nothing worked; the message says which ``--input`` to pass.
    """
    inferred: list[tuple[str, str]] = []
    if given:
        cands = [list(given)]
        inferred.append(("inputs", "--input"))
    else:
        cands, how = _candidate_inputs(module)
        if not cands:
            names = _forward_arg_names(module)
            raise SpecError(
                f"cannot infer the generator's inputs (forward arguments: {names}); "
                "pass them with --input, e.g. --input z:128 or --input label:int:10 or --input image:3x64x64"
            )
        inferred.append(("inputs", how))
    errors: list[str] = []
    for cand in cands:
        try:
            out_shape = probe_output(module, cand, batch)
        except SpecError as exc:
            errors.append(str(exc))
            continue
        rng, rng_how = _output_range_guess(module)
        inferred.append(("output_range", rng_how))
        inferred.append(("output_shape", "probing"))
        return GeneratorSpec(inputs=tuple(cand), output_shape=out_shape, output_range=rng, inferred=tuple(inferred))
    raise SpecError(errors[0] if errors else "cannot infer the generator's inputs; pass them with --input")


def spec_from_onnx(model: Any, path: Path) -> GeneratorSpec:
    """Spec of an ONNX generator from its accelkit metadata or its graph I/O.

    Raises:
        SpecError: An input whose shape or meaning cannot be read; say ``--input``.
    """
    import onnx

    meta = {p.key: p.value for p in model.metadata_props}
    if "accelkit.spec" in meta:
        try:
            return GeneratorSpec.from_dict(json.loads(meta["accelkit.spec"]))
        except (json.JSONDecodeError, SpecError):
            log.warning("%s: ignoring unreadable accelkit.spec metadata", path)
    init_names = {i.name for i in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        per = dims[1:]
        if not dims or any(d is None for d in per):
            raise SpecError(f"{path}: input {vi.name!r} has shape {dims}; only the batch (first) dimension may be dynamic — give it with --input")
        elem = tt.elem_type
        if elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            raise SpecError(f"{path}: input {vi.name!r} is an integer label and the number of classes is unknown; pass --input {vi.name}:int:CLASSES")
        shape = tuple(int(d) for d in per)  # type: ignore[arg-type]
        kind = "image" if len(shape) == 3 and shape[1] > 1 else "latent"
        inputs.append(InputSpec(vi.name, kind, shape))  # type: ignore[arg-type]
    outs = model.graph.output
    out_shape: tuple[int, ...] = ()
    if outs:
        d = [x.dim_value if x.HasField("dim_value") else 0 for x in outs[0].type.tensor_type.shape.dim]
        if len(d) == 4 and all(d[1:]):
            out_shape = tuple(d[1:])
    return GeneratorSpec(
        inputs=tuple(inputs),
        output_shape=out_shape,
        inferred=(("inputs", "ONNX graph inputs"), ("output_range", "default (override with --output-range)")),
    )


def onnx_precision(model: Any) -> str:
    """``int8`` when the graph has QuantizeLinear nodes, ``fp16`` with float16 weights, else ``fp32``."""
    import onnx

    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


# ----------------------------------------------------------------------- public API
def load_generator(
    path: str | Path | None = None,
    *,
    arch: str | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    inputs: Sequence[InputSpec] = (),
    output_range: tuple[float, float] | None = None,
    latent_dist: str | None = None,
    truncation_psi: float | None = None,
    trust: bool = False,
) -> Artifact:
    """Load a generator file into an artifact with an inferred (or given) spec.

    Args:
        path: The file; None for the bundled DCGAN demo generator; a bundled name
            (``dcgan``, ``stylegan2``, ``sr4x``) also works.
        arch: Architecture for weight-only files: ``module:Class``, ``file.py:Class``
            or a bundled architecture name.
        arch_kwargs: Constructor keyword arguments for ``arch``.
        inputs: User-given inputs (``--input``), overriding inference.
        output_range: User-given output range (``--output-range``).
        latent_dist: ``normal`` or ``uniform``.
        truncation_psi: Truncation for latents.
        trust: Allow full pickle loading (runs code from the file).

    Returns:
        A ``torch`` artifact (module in eval mode on CPU, float32) or an ``onnx`` one.

    Raises:
        InputError, LoadError, UntrustedPickleError, SpecError: one-line explanations.
    """
    import torch

    p = _resolve_path(path)
    fmt = detect_format(p)
    sha = sha256_file(p)
    meta: dict[str, Any] = {"loader": fmt, "file_bytes": p.stat().st_size}
    load_opts: dict[str, Any] = {"path": str(p), "format": fmt, "trust_pickle": trust}
    if arch:
        load_opts.update(arch=arch, arch_kwargs=dict(arch_kwargs or {}))

    if fmt == "onnx":
        art = _load_onnx(p, sha, meta, load_opts)
        art.spec = apply_overrides(art.spec, inputs, output_range, latent_dist, truncation_psi) or art.spec  # type: ignore[arg-type]
        return art

    module: Any = None
    program: Any = None
    stored_spec: dict[str, Any] | None = None
    if fmt == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated but users have such files
                module = torch.jit.load(str(p), map_location="cpu")
        except Exception as exc:
            raise LoadError(f"{p} is a TorchScript archive that fails to load ({str(exc).splitlines()[0][:160]}); re-save it with torch.jit.save") from None
    elif fmt == "pt2":
        try:
            if trust:
                program = torch.export.load(str(p))
            else:
                with weights_only_torch_load(p):
                    program = torch.export.load(str(p))
        except AccelkitError:
            raise
        except Exception as exc:
            raise LoadError(f"{p} is a torch.export archive that fails to load ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); re-save it with torch.export.save") from None
        module = program.module()
    elif fmt == "safetensors":
        module, stored_spec = _load_safetensors(p, arch, arch_kwargs, meta)
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
                key = "accelkit_arch" if obj.get("accelkit_arch") is not None else "arch" if obj.get("arch") is not None else None
                if key is not None:
                    use_arch = stored_architecture(obj[key], p, f"its {key!r} entry")
                    stored_kwargs = obj.get("accelkit_arch_kwargs") or obj.get("arch_kwargs") or {}
                    if not isinstance(stored_kwargs, Mapping) or not all(isinstance(k, str) for k in stored_kwargs):
                        raise InputError(f"{p}: the stored architecture arguments are not a dict of names; pass --arch-kwargs")
                    arch_kwargs = dict(stored_kwargs)
            if not use_arch:
                raise InputError(
                    f"{p} holds only weights (a state_dict under {where}); say which architecture they belong to with "
                    "--arch module:Class (plus --arch-kwargs JSON) or a bundled name (dcgan, stylegan2, sr4x)"
                )
            module = _build_module(use_arch, arch_kwargs)
            _fit_state_dict(module, found, use_arch, p)
            meta["arch"] = use_arch
            meta["arch_kwargs"] = dict(arch_kwargs or {})
    if not isinstance(module, torch.nn.Module):
        raise LoadError(f"{p} did not yield a torch module (got {type(module).__name__})")
    if program is None:  # an unlifted torch.export module refuses .eval(); it is frozen in its export mode
        module = module.eval().float()
    for prm in module.parameters():
        prm.requires_grad_(False)
    meta["parameters"] = int(sum(prm.numel() for prm in module.parameters()))

    if stored_spec is not None and not inputs:
        spec = GeneratorSpec.from_dict(stored_spec)
    elif program is not None:
        meta["static_batch"] = _program_static_batch(program)
        spec = infer_torch_spec(module, inputs or _program_inputs(program, module), batch=meta["static_batch"] or 2)
        if not inputs:
            spec = GeneratorSpec(spec.inputs, spec.output_shape, spec.output_range, inferred=(("inputs", "torch.export signature"),) + spec.inferred[1:])
    else:
        spec = infer_torch_spec(module, inputs)
    spec = apply_overrides(spec, (), output_range, latent_dist, truncation_psi) or spec  # type: ignore[arg-type]
    return Artifact(
        format="torch",
        spec=spec,
        path=None,
        module=module,
        program=program,
        source=str(p),
        source_sha256=sha,
        passes=[{"name": "load", "options": load_opts}],
        meta=meta,
    )


def _load_onnx(p: Path, sha: str, meta: dict[str, Any], load_opts: dict[str, Any]) -> Artifact:
    import onnx

    try:
        model = onnx.load(str(p), load_external_data=True)
    except Exception as exc:
        raise LoadError(f"{p} is not a readable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); re-export it") from None
    if not model.graph.node:
        raise LoadError(f"{p} parses as ONNX but has an empty graph; it is not a model (truncated or wrong file?)")
    side = read_sidecar(p)
    spec = spec_from_onnx(model, p)
    passes = [{"name": "load", "options": load_opts}]
    if side:
        passes = list(side.get("passes", [])) or passes
        meta.update({k: v for k, v in side.get("meta", {}).items() if k not in meta})
    meta["opset"] = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
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


def _load_safetensors(p: Path, arch: str | None, arch_kwargs: Mapping[str, Any] | None, meta: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            st_meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise LoadError(f"{p} is a corrupt or truncated safetensors file ({exc}); re-save it") from None
    use_arch = arch
    if not use_arch and "accelkit.arch" in st_meta:
        use_arch = stored_architecture(st_meta["accelkit.arch"], p, "its safetensors metadata (accelkit.arch)")
    if not use_arch:
        raise InputError(f"{p} holds only weights (safetensors); say which architecture they belong to with --arch module:Class or a bundled name")
    if not arch and "accelkit.arch_kwargs" in st_meta:
        try:
            arch_kwargs = json.loads(st_meta["accelkit.arch_kwargs"])
        except json.JSONDecodeError:
            raise LoadError(f"{p}: metadata accelkit.arch_kwargs is not JSON; pass --arch-kwargs") from None
    module = _build_module(use_arch, arch_kwargs)
    _fit_state_dict(module, sd, use_arch, p)
    meta.update(arch=use_arch, arch_kwargs=dict(arch_kwargs or {}), safetensors_metadata=st_meta)
    stored = None
    if "accelkit.spec" in st_meta:
        try:
            stored = json.loads(st_meta["accelkit.spec"])
        except json.JSONDecodeError:
            stored = None
    return module, stored


def _program_inputs(program: Any, module: Any) -> list[InputSpec]:
    """Inputs of a torch.export program from its placeholder fake tensors."""
    import torch

    sig = program.graph_signature
    user = list(sig.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    names = _forward_arg_names(module) or []
    out: list[InputSpec] = []
    n_cls = None
    for k, name in enumerate(user):
        node = placeholders.get(name)
        val = node.meta.get("val") if node is not None else None
        if val is None or not hasattr(val, "shape"):
            raise SpecError(f"torch.export program input {name!r} has no recorded shape; give inputs with --input")
        shape = tuple(val.shape)[1:]
        try:
            per = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise SpecError(f"torch.export program input {name!r} has symbolic non-batch dims {shape}; give inputs with --input") from None
        arg_name = names[k] if k < len(names) else name
        if val.dtype in (torch.int64, torch.int32):
            n_cls = n_cls or _attr(module, _CLASS_ATTRS)
            if not isinstance(n_cls, int):
                raise SpecError(f"input {arg_name!r} is an integer label and the number of classes is unknown; pass --input {arg_name}:int:CLASSES")
            out.append(InputSpec(arg_name, "label", (), "int64", int(n_cls)))
        else:
            kind = "image" if len(per) == 3 and per[1] > 1 else "latent"
            out.append(InputSpec(arg_name, kind, per))  # type: ignore[arg-type]
    return out


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
