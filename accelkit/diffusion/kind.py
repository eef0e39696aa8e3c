"""The ``diffusion`` generator kind: how a pipeline folder enters the format registry.

A diffusers pipeline folder loads (:func:`load`, registered in
:mod:`accelkit.loading.registry` by name, imported on first use) into an
:class:`~accelkit.artifact.Artifact` of format ``diffusion``: its ``spec`` is the whole
pipeline as one generator (noise [+ label | prompt embeddings] -> image) and its
``module`` is the :class:`~accelkit.diffusion.model.DiffusionModel`. Commands that meet
such an artifact hand it to :mod:`accelkit.pipelines.diffusion`, which plans its
components through the runner registry and the builder like any generator.

An ONNX component accelkit exported records its pipeline in its sidecar
(``meta.diffusion``); :func:`component_of` reads that claim and :func:`source_pipeline`
reloads the folder it names only while the folder's sha256 still matches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from accelkit.artifact import Artifact
from accelkit.diffusion.folder import is_pipeline_folder
from accelkit.diffusion.model import DiffusionModel, load_pipeline
from accelkit.errors import InputError

#: The artifact format (and registered generator kind) of a loaded pipeline.
KIND: Final = "diffusion"


def detect(path: Path) -> bool:
    """Detector of the format registry: a folder with a diffusers ``model_index.json``."""
    return is_pipeline_folder(path)


def as_artifact(model: DiffusionModel) -> Artifact:
    """The pipeline as an artifact of format ``diffusion`` (``module`` is the model)."""
    return Artifact(
        format=KIND,
        spec=model.spec,
        module=model,
        source=str(model.folder.path),
        source_sha256=model.source_sha256,
        meta={"diffusion": model.meta, "kind": KIND},
    )


def load(req: Any) -> Artifact:
    """Loader of the format registry (a :class:`~accelkit.loading.registry.LoadRequest`).

    Loading flags of one-pass generators (``--arch``, ``--input``...) do not apply to a
    pipeline folder and are refused by name.

    Raises:
        InputError: A loading flag was given, or the folder is refused (see
            :func:`~accelkit.diffusion.model.load_pipeline`).
    """
    given = [
        name
        for name, value in (
            ("--arch", req.arch),
            ("--input", req.inputs),
            ("--output-range", req.output_range),
            ("--latent-dist", req.latent_dist),
            ("--truncation", req.truncation_psi),
            ("--output-shape", req.output_shape),
            ("--hw-range", req.hw_range),
        )
        if value
    ]
    if given:
        raise InputError(
            f"{', '.join(given)} describe one-pass generators; a diffusion pipeline folder states its own "
            "inputs (drop them; use --steps/--scheduler/--guidance/--condition for the sampler)"
        )
    return as_artifact(load_pipeline(req.path))


def model_of(artifact: Artifact) -> DiffusionModel:
    """The :class:`DiffusionModel` of a ``diffusion`` artifact."""
    if artifact.format != KIND or not isinstance(artifact.module, DiffusionModel):
        raise InputError(f"{artifact.source or 'this generator'} is not a diffusion pipeline")
    return artifact.module


def with_condition(artifact: Artifact, condition: str | os.PathLike[str] | None) -> Artifact:
    """The pipeline reloaded with fixed prompt embeddings (``--condition``); unchanged when None."""
    if condition is None:
        return artifact
    model = model_of(artifact)
    return as_artifact(load_pipeline(model.folder.path, condition=condition))


def component_of(artifact: Artifact) -> dict[str, Any] | None:
    """The pipeline record of an exported component (its sidecar's ``meta.diffusion``), else None."""
    if artifact.format == KIND:
        return None
    rec = artifact.meta.get("diffusion")
    if (
        isinstance(rec, dict)
        and rec.get("component") in ("denoiser", "decoder")
        and rec.get("folder")
    ):
        return rec
    return None


def source_pipeline(artifact: Artifact) -> Artifact:
    """The pipeline an exported component came from, loaded from the folder its sidecar names.

    Raises:
        InputError: The folder is gone or changed since the export (its sha256 differs).
    """
    rec = component_of(artifact)
    if rec is None:
        raise InputError(f"{artifact.path} is not a diffusion component accelkit exported")
    folder = Path(str(rec["folder"]))
    if not is_pipeline_folder(folder):
        raise InputError(
            f"{artifact.path} is the {rec['component']} of the pipeline {folder}, which no longer exists; "
            "bench the pipeline folder itself"
        )
    model = load_pipeline(folder)
    if model.source_sha256 != rec.get("folder_sha256"):
        raise InputError(
            f"{artifact.path} was exported from {folder}, whose files changed since (sha256 differs); "
            "re-export it from the folder"
        )
    return as_artifact(model)


__all__ = [
    "KIND",
    "as_artifact",
    "component_of",
    "detect",
    "load",
    "model_of",
    "source_pipeline",
    "with_condition",
]
