"""Reading a diffusers pipeline folder without running any code it names.

diffusers saves a pipeline as a folder: ``model_index.json`` (the pipeline class and, per
component, ``[library, class]``) and one sub-folder per component with its own
``config.json`` (models) or ``scheduler_config.json`` (schedulers) and weights. diffusers'
own ``from_pretrained`` imports whatever classes those files name (custom pipelines,
``auto_map`` entries, hub modules). This module never does: a folder is accepted only
when its pipeline class is one of :data:`PIPELINES` and every component accelkit loads is
``["diffusers", <a class from that layout's allow-list>]``. Components accelkit does not
use (a text encoder, a tokenizer, a safety checker) are never opened, but a component
entry naming a library other than diffusers' own and ``transformers`` (a custom module)
refuses the folder, as do ``auto_map`` / ``custom_pipeline`` entries. Weights are read
from ``.safetensors`` files only (no pickles, no ``.bin``).

Everything here is JSON and file-system work: no torch, no diffusers import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelkit.errors import InputError, LoadError
from accelkit.files import sha256_file

INDEX = "model_index.json"
#: Optional accelkit data beside ``model_index.json`` (diffusers ignores it): class names,
#: the null class of a class-conditional UNet, the reference sampler. See :func:`read_hints`.
HINTS = "accelkit.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX = "diffusion_pytorch_model.safetensors.index.json"
#: Weight files diffusers may write that accelkit refuses (pickles).
PICKLE_WEIGHTS = ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.ckpt")


@dataclass(frozen=True)
class Layout:
    """What accelkit knows about one diffusers pipeline class.

    Attributes:
        kind: ``pixel`` (a UNet on images), ``class-dit`` (a class-conditional DiT on VAE
            latents) or ``latent-text`` (a text-conditioned UNet on VAE latents, condition
            given as prompt embeddings).
        denoiser: Component name of the denoiser (``unet`` or ``transformer``).
        denoiser_classes: diffusers classes accepted for it.
        decoder: Component name of the VAE (``vae``), None for pixel-space models.
        decoder_required: Whether the pipeline cannot work without the VAE.
        default_steps: The pipeline's default ``num_inference_steps`` in diffusers.
        default_guidance: The pipeline's default ``guidance_scale`` (1: no guidance).
    """

    kind: str
    denoiser: str
    denoiser_classes: tuple[str, ...]
    decoder: str | None = None
    decoder_required: bool = False
    default_steps: int = 50
    default_guidance: float = 1.0


#: diffusers pipeline class -> layout. Defaults are diffusers' own ``__call__`` defaults.
PIPELINES: dict[str, Layout] = {
    "DDPMPipeline": Layout("pixel", "unet", ("UNet2DModel",), default_steps=1000),
    "DDIMPipeline": Layout("pixel", "unet", ("UNet2DModel",), default_steps=50),
    "DiTPipeline": Layout(
        "class-dit",
        "transformer",
        ("DiTTransformer2DModel",),
        decoder="vae",
        decoder_required=True,
        default_steps=250,
        default_guidance=4.0,
    ),
    "StableDiffusionPipeline": Layout(
        "latent-text",
        "unet",
        ("UNet2DConditionModel",),
        decoder="vae",
        decoder_required=True,
        default_steps=50,
        default_guidance=7.5,
    ),
}

#: VAE classes whose ``decode(z).sample`` is an image.
DECODER_CLASSES = ("AutoencoderKL",)

#: diffusers scheduler classes a folder may name (all ship with diffusers; none is imported
#: until it is used, and only from the ``diffusers`` package).
SCHEDULER_CLASSES = (
    "DDPMScheduler",
    "DDIMScheduler",
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler",
    "PNDMScheduler",
    "LMSDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "UniPCMultistepScheduler",
    "DEISMultistepScheduler",
)

#: Libraries a component entry of ``model_index.json`` may name. Components accelkit does
#: not load (text encoders, tokenizers, safety checkers) are never imported; a library
#: outside this set is a custom module, so the folder is refused.
KNOWN_LIBRARIES = ("diffusers", "transformers", "stable_diffusion", None)

#: Keys that make diffusers import code from the folder or the hub.
CODE_KEYS = ("auto_map", "custom_pipeline", "_custom_pipeline", "trust_remote_code")


@dataclass(frozen=True)
class Component:
    """One component sub-folder accelkit loads.

    Attributes:
        name: Its key in ``model_index.json`` (``unet``, ``transformer``, ``vae``, ``scheduler``).
        class_name: The diffusers class (from the allow-list).
        folder: The sub-folder.
        config: Its ``config.json`` / ``scheduler_config.json`` (JSON data only).
        weights: Its safetensors files (empty for a scheduler).
    """

    name: str
    class_name: str
    folder: Path
    config: dict[str, Any]
    weights: tuple[Path, ...] = ()


@dataclass(frozen=True)
class PipelineFolder:
    """A validated diffusers pipeline folder (nothing loaded yet).

    Attributes:
        path: The folder.
        pipeline_class: ``_class_name`` of ``model_index.json``.
        layout: What accelkit knows about that class.
        denoiser: The denoiser component.
        scheduler: The scheduler component.
        decoder: The VAE component, None for pixel-space models.
        index: ``model_index.json`` as read.
        ignored: Components present in the index that accelkit does not load.
    """

    path: Path
    pipeline_class: str
    layout: Layout
    denoiser: Component
    scheduler: Component
    decoder: Component | None
    index: dict[str, Any]
    ignored: tuple[str, ...] = field(default=())
    hints: dict[str, Any] = field(default_factory=dict)

    def files(self) -> list[Path]:
        """Every file accelkit reads from the folder (index, configs, weights), sorted."""
        out = [self.path / INDEX]
        if (self.path / HINTS).is_file():
            out.append(self.path / HINTS)
        for comp in (self.denoiser, self.scheduler, self.decoder):
            if comp is None:
                continue
            cfg = "scheduler_config.json" if comp.name == "scheduler" else "config.json"
            out.append(comp.folder / cfg)
            out.extend(comp.weights)
        return sorted(out)

    def sha256(self) -> str:
        """sha256 over the relative names and sha256s of :meth:`files` (the folder's identity)."""
        import hashlib

        h = hashlib.sha256()
        for f in self.files():
            h.update(f"{f.relative_to(self.path).as_posix()}\0{sha256_file(f)}\n".encode())
        return h.hexdigest()


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoadError(
            f"{path} is missing; {what} needs it (re-save the pipeline with save_pretrained)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(
            f"{path} is not readable JSON ({type(exc).__name__}); re-save the pipeline with save_pretrained"
        ) from None
    if not isinstance(data, dict):
        raise LoadError(f"{path} is not a JSON object; re-save the pipeline with save_pretrained")
    return data


def is_pipeline_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder with a diffusers ``model_index.json``.

    A cheap test for format detection: it reads only ``model_index.json`` and looks for
    diffusers' ``_class_name``/``_diffusers_version`` keys; :func:`read_pipeline_folder`
    validates the rest (and says why a folder it cannot load is refused).
    """
    p = Path(path)
    index = p / INDEX
    if not (p.is_dir() and index.is_file()):
        return False
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "_class_name" in data and "_diffusers_version" in data


def _refuse_code(data: dict[str, Any], where: Path) -> None:
    for key in CODE_KEYS:
        if key in data:
            raise InputError(
                f"{where} has {key!r}, which asks for code from the folder or the hub; accelkit never runs such code: "
                "give a folder saved by one of diffusers' own pipelines"
            )


def _entry(index: dict[str, Any], name: str, where: Path) -> tuple[Any, Any] | None:
    value = index.get(name)
    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise InputError(
            f"{where}: component {name!r} is {value!r}, not [library, class]; re-save the pipeline with save_pretrained"
        )
    return value[0], value[1]


def _component(
    root: Path, index: dict[str, Any], name: str, allowed: tuple[str, ...], required: bool
) -> Component | None:
    where = root / INDEX
    entry = _entry(index, name, where)
    if entry is None or entry == (None, None):
        if required:
            raise LoadError(
                f"{where} has no {name!r} component; a {index.get('_class_name')} needs one ({' or '.join(allowed)})"
            )
        return None
    lib, cls = entry
    if lib != "diffusers" or cls not in allowed:
        raise InputError(
            f"{where}: component {name!r} is {[lib, cls]}; accelkit loads only diffusers' own "
            f"{' or '.join(allowed)} there and never imports another class"
        )
    folder = root / name
    is_sched = name == "scheduler"
    cfg = _read_json(folder / ("scheduler_config.json" if is_sched else "config.json"), name)
    _refuse_code(cfg, folder)
    got = cfg.get("_class_name")
    if got != cls:
        raise InputError(
            f"{folder}: its config names class {got!r} but {INDEX} says {cls!r}; re-save the pipeline with save_pretrained"
        )
    weights: tuple[Path, ...] = ()
    if not is_sched:
        weights = _weight_files(folder)
    return Component(name=name, class_name=cls, folder=folder, config=cfg, weights=weights)


def _weight_files(folder: Path) -> tuple[Path, ...]:
    """The safetensors files of a model sub-folder (one file, or the shards an index lists)."""
    single = folder / WEIGHTS
    if single.is_file():
        return (single,)
    index = folder / WEIGHTS_INDEX
    if index.is_file():
        data = _read_json(index, "the sharded weights")
        shards = sorted(set((data.get("weight_map") or {}).values()))
        if not shards or not all(isinstance(s, str) for s in shards):
            raise LoadError(
                f"{index} lists no weight shards; re-save the model with save_pretrained"
            )
        paths = []
        for s in shards:
            p = (folder / s).resolve()
            if p.parent != folder.resolve() or not p.name.endswith(".safetensors"):
                raise InputError(
                    f"{index} names {s!r}, which is not a .safetensors file in {folder}; accelkit reads only safetensors shards beside the index"
                )
            if not p.is_file():
                raise LoadError(f"{index} names {s}, which is missing")
            paths.append(p)
        return tuple(paths)
    variants = sorted(folder.glob("diffusion_pytorch_model.*.safetensors"))
    if len(variants) == 1:
        return (variants[0],)
    pickles = [f for f in PICKLE_WEIGHTS if (folder / f).is_file()]
    if pickles:
        raise InputError(
            f"{folder} holds only {pickles[0]} (a pickle, which can run code when read); accelkit loads diffusers "
            "weights from safetensors only: re-save the model with save_pretrained(safe_serialization=True)"
        )
    raise LoadError(
        f"{folder} has no {WEIGHTS}"
        + (f" (several variants: {[v.name for v in variants]})" if variants else "")
        + "; re-save the model with save_pretrained"
    )


_SAMPLER_KEYS: dict[str, Any] = {
    "scheduler": str,
    "steps": int,
    "guidance": (int, float),
    "eta": (int, float),
}


def read_hints(root: Path) -> dict[str, Any]:
    """``accelkit.json`` of a pipeline folder, validated (an empty dict when absent).

    Keys (all optional): ``class_names`` (list of strings, one per class), ``null_class``
    (int: the class-embedding row a class-conditional ``UNet2DModel`` was trained to use
    for "no label", which makes classifier-free guidance possible; it must be the last
    row), ``sampler`` (the reference sampler: ``scheduler``, ``steps``, ``guidance``,
    ``eta``), ``schema_version`` (1). Data only: nothing in it names code.

    Raises:
        InputError: Malformed file or values of the wrong type.
    """
    path = root / HINTS
    if not path.is_file():
        return {}
    data = _read_json(path, "the pipeline")
    bad = sorted(set(data) - {"schema_version", "class_names", "null_class", "sampler"})
    names = data.get("class_names")
    null = data.get("null_class")
    sampler = data.get("sampler", {})
    if (
        bad
        or data.get("schema_version", 1) != 1
        or (
            names is not None
            and not (isinstance(names, list) and all(isinstance(n, str) for n in names))
        )
        or (null is not None and (isinstance(null, bool) or not isinstance(null, int) or null < 0))
        or not isinstance(sampler, dict)
        or any(
            k not in _SAMPLER_KEYS or isinstance(v, bool) or not isinstance(v, _SAMPLER_KEYS[k])
            for k, v in sampler.items()
        )
    ):
        raise InputError(
            f"{path} is not a valid accelkit pipeline file (schema_version 1; class_names: [str], null_class: int, "
            f"sampler: {{scheduler, steps, guidance, eta}}{'; unknown keys ' + str(bad) if bad else ''}); fix or delete it"
        )
    return data


def read_pipeline_folder(path: str | Path) -> PipelineFolder:
    """Validate a diffusers pipeline folder and describe its components (no code runs).

    Args:
        path: The folder ``save_pretrained`` wrote (``model_index.json`` inside).

    Returns:
        The :class:`PipelineFolder`.

    Raises:
        InputError: Not a pipeline folder, a pipeline class accelkit does not know, a
            component class outside the allow-list, a custom module or ``auto_map``, or
            pickled weights only.
        LoadError: A config or weight file is missing or unreadable.
    """
    root = Path(path)
    if not is_pipeline_folder(root):
        raise InputError(
            f"{root} is not a diffusers pipeline folder (no model_index.json with _class_name); "
            "give the folder a pipeline's save_pretrained wrote"
        )
    index = _read_json(root / INDEX, "the pipeline")
    _refuse_code(index, root / INDEX)
    cls = index.get("_class_name")
    if not isinstance(cls, str) or cls not in PIPELINES:
        raise InputError(
            f"{root / INDEX} names pipeline {cls!r}; accelkit loads diffusers' {', '.join(PIPELINES)} folders "
            "and never imports another (custom) pipeline class"
        )
    layout = PIPELINES[cls]
    for key, value in index.items():
        if key.startswith("_") or not isinstance(value, (list, tuple)):
            continue
        if len(value) == 2 and value[0] not in KNOWN_LIBRARIES:
            raise InputError(
                f"{root / INDEX}: component {key!r} comes from {value[0]!r}, a custom module; accelkit never "
                "imports code a folder names: give a folder saved by one of diffusers' own pipelines"
            )
    denoiser = _component(root, index, layout.denoiser, layout.denoiser_classes, True)
    scheduler = _component(root, index, "scheduler", SCHEDULER_CLASSES, True)
    decoder = None
    if layout.decoder is not None:
        decoder = _component(root, index, layout.decoder, DECODER_CLASSES, layout.decoder_required)
    assert denoiser is not None and scheduler is not None  # required=True
    used = {layout.denoiser, "scheduler", layout.decoder}
    ignored = tuple(
        sorted(
            k
            for k, v in index.items()
            if not k.startswith("_")
            and k not in used
            and isinstance(v, (list, tuple))
            and list(v) != [None, None]
        )
    )
    return PipelineFolder(
        path=root,
        pipeline_class=cls,
        layout=layout,
        denoiser=denoiser,
        scheduler=scheduler,
        decoder=decoder,
        index=index,
        ignored=ignored,
        hints=read_hints(root),
    )


__all__ = [
    "DECODER_CLASSES",
    "PIPELINES",
    "SCHEDULER_CLASSES",
    "Component",
    "Layout",
    "PipelineFolder",
    "is_pipeline_folder",
    "read_hints",
    "read_pipeline_folder",
]
