"""One builder makes every derived artifact: fp32/fp16/int8 ONNX, from one recipe.

``bench``, ``optimize``, ``export`` and ``quantize`` ask a :class:`Builder` for a *source*
by name (``onnx-fp32``, ``onnx-fp16``, ``onnx-int8``; ``torch`` and ``given`` are the
generator itself): the name a backend's :class:`~accelkit.runners.base.Recipe` says it
needs. Every build follows the same :class:`~accelkit.options.BuildRecipe` (export
opset and batch range, fp16 headroom, the one INT8 calibration recipe), so the build
``optimize`` chose is the file ``bench`` makes of the same generator, byte for byte.

Builds are remembered in the process and on disk: a file is reused when its sidecar
records the same build key -- a hash of everything that shapes it: the input (the
generator's sha256, its spec and how it was loaded, or the input file's sha256), the
recipe, the parent build's key and the tool versions -- and the file still has the
sha256 its sidecar records. The key and the recipe are recorded in the sidecar
(``meta.build``). A failed build is remembered with its one-line reason.

Extending it: :func:`register_source` adds a derived artifact (a diffusion module can
register per-component sources); a :class:`~accelkit.passes.int8.CalibrationData`
provider replaces the seeded prior as INT8 calibration input (a denoiser calibrated on
inputs collected along real sampling trajectories); one builder per component artifact
gives per-component builds (``component`` names them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact, read_sidecar, tool_versions
from accelkit.cache import cache_key
from accelkit.errors import AccelkitError, InputError, StorageError, VerificationError, one_line
from accelkit.files import sha256_file
from accelkit.options import BuildRecipe
from accelkit.passes.int8 import CalibrationData
from accelkit.vocab import SOURCE_TORCH, onnx_source

log = logging.getLogger(__name__)

#: Bump when the meaning of a build key changes (older files are then rebuilt).
BUILD_SCHEMA = 1
#: The source that stands for "the file as the user gave it" (a TensorRT plan...).
SOURCE_GIVEN = "given"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """Where one build goes.

    Attributes:
        tag: Extra part of the file name (``keep2``: ``gen.int8.keep2.onnx``).
        dest: An explicit destination (``export -o``; never reused), None: the work folder.
        force: With ``dest``: overwrite an existing file.
    """

    tag: str | None = None
    dest: Path | None = None
    force: bool = False


#: A source maker: (builder, recipe, target) -> the artifact.
SourceMaker = Callable[["Builder", BuildRecipe, Target], Artifact]


class BuildFailed(AccelkitError):
    """A derived artifact could not be made; the message is the one-line reason."""


class Builder:
    """Makes the derived artifacts of one generator (or one component of it).

    Args:
        original: What the user gave: a torch generator, an ONNX file or a TensorRT plan.
        workdir: Folder the builds are written to (and reused from).
        recipe: The build defaults (:class:`~accelkit.options.BuildRecipe`).
        stem: File stem of the builds (default: the generator's name, plus ``component``).
        component: Name of the component this builder makes (a diffusion pipeline's
            ``unet``, ``vae_decoder``...), recorded in the sidecar; None for a whole generator.
        calibration: INT8 calibration inputs (default: seeded samples of the prior).
        tolerance: Precision -> max abs error a build may have against its reference
            (None for a precision: the pass's default). A search judges quality itself and
            passes a huge value; a reused file is held to the same bar.
        strict: Raise a failed build's own error (``export``/``quantize``: the user asked for
            that one file); otherwise (planners) a :class:`BuildFailed` with the one-line
            reason, remembered so every row that needs it says the same.
        progress: Called with a short message at each step.
    """

    def __init__(
        self,
        original: Artifact,
        workdir: Path,
        recipe: BuildRecipe | None = None,
        *,
        stem: str | None = None,
        component: str | None = None,
        calibration: CalibrationData | None = None,
        tolerance: dict[str, float] | None = None,
        strict: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.original = original
        self.strict = strict
        self.workdir = Path(workdir)
        self.recipe = (recipe or BuildRecipe()).validated()
        self.component = component
        self.stem = stem or (original.name + (f".{component}" if component else ""))
        self.calibration = calibration
        self.tolerance = dict(tolerance or {})
        self.say: Progress = progress or (lambda m: None)
        self._made: dict[str, Artifact | str] = {}
        self.seconds = 0.0

    # ------------------------------------------------------------------ public
    def can_make(self, source: str) -> str | None:
        """None when ``source`` can be made from the original, else the reason (nothing is built)."""
        if source in (SOURCE_TORCH, SOURCE_GIVEN) or source in SOURCES:
            return _why_not(self.original, source)
        return f"no builder knows the source {source!r}; known: {', '.join(sources())}"

    def make(
        self,
        source: str,
        recipe: BuildRecipe | None = None,
        *,
        tag: str | None = None,
        dest: Path | None = None,
        force: bool = False,
    ) -> Artifact:
        """The artifact ``source`` names, built once (in this process and on disk).

        Args:
            source: ``torch``, ``given``, or a registered derived source (``onnx-int8``...).
            recipe: This build's recipe when it differs from the builder's (an INT8 retry
                with layer groups kept in float, an fp16 one with a lower headroom).
            tag: Extra part of the file name for such a build (``keep2``: ``gen.int8.keep2.onnx``).
            dest: Write the result here instead of the work folder (``export -o``); never reused.
            force: With ``dest``: overwrite an existing file.

        Raises:
            BuildFailed: It cannot be made, or its build failed (the one-line reason).
        """
        why = self.can_make(source)
        if why is not None:
            raise BuildFailed(why)
        if source in (SOURCE_TORCH, SOURCE_GIVEN):
            return self.original
        rec = (recipe or self.recipe).validated()
        memo = self._memo(source, rec, tag, dest)
        made = self._made.get(memo)
        if isinstance(made, Artifact):
            return made
        if isinstance(made, str):
            raise BuildFailed(made)
        target = Target(tag, Path(dest) if dest is not None else None, force)
        if dest is None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        if self.strict:
            art = SOURCES[source](self, rec, target)
            self._made[memo] = art
            return art
        try:
            art = SOURCES[source](self, rec, target)
        except BuildFailed as exc:
            self._made[memo] = str(exc)
            raise
        except StorageError:
            raise  # a full disk stops the run: no row could be written, and none should read "skipped"
        except Exception as exc:  # noqa: BLE001 - a build that breaks fails its rows, not the run
            what, msg = f"{_WHAT.get(source, f'building {source}')} failed", one_line(exc)
            self._made[memo] = msg if msg.startswith(what) else f"{what}: {msg}"
            raise BuildFailed(self._made[memo]) from None
        self._made[memo] = art
        return art

    def made(self, source: str, recipe: BuildRecipe | None = None, tag: str | None = None) -> bool:
        """``source`` (with this recipe and tag) was already made in this process."""
        if source in (SOURCE_TORCH, SOURCE_GIVEN):
            return True
        memo = self._memo(source, recipe or self.recipe, tag, None)
        return isinstance(self._made.get(memo), Artifact)

    @staticmethod
    def _memo(source: str, recipe: BuildRecipe, tag: str | None, dest: Path | None) -> str:
        return f"{source}|{tag}|{cache_key(_recipe_doc(source, recipe))}|{dest}"

    def fp32_onnx(self) -> Artifact | None:
        """The fp32 ONNX made (or given) so far, if any: what FLOPs are counted on."""
        if self.original.format == "onnx" and self.original.precision == "fp32":
            return self.original
        for key, made in self._made.items():
            if key.startswith(onnx_source("fp32") + "|") and isinstance(made, Artifact):
                return made
        return None

    def key(self, source: str, recipe: BuildRecipe | None = None) -> str | None:
        """The build key of ``source`` (None when the input has no stable identity, e.g. a
        torch module built in memory: such builds are never reused from disk)."""
        ident = _input_identity(self.original)
        if ident is None:
            return None
        rec = recipe or self.recipe
        chain = [source]
        parent = _PARENTS.get(source)
        while parent is not None and not _given_is(self.original, parent):
            chain.append(parent)
            parent = _PARENTS.get(parent)
        return cache_key(
            {
                "schema": BUILD_SCHEMA,
                "input": ident,
                "component": self.component,
                "chain": [{"source": s, "recipe": _recipe_doc(s, rec)} for s in chain],
                "calibration": self.calibration.identity() if self.calibration else None,
                "versions": {
                    k: v for k, v in tool_versions().items() if k not in ("python", "accelkit")
                },
            }
        )

    # ------------------------------------------------------------------ helpers
    def path(self, precision: str, tag: str | None) -> Path:
        """``<workdir>/<stem>[.<precision>][.<tag>].onnx``."""
        mid = "" if precision == "fp32" else f".{precision}"
        return self.workdir / f"{self.stem}{mid}{f'.{tag}' if tag else ''}.onnx"

    def reuse(self, dest: Path, key: str | None, precision: str) -> Artifact | None:
        """The file at ``dest`` when its sidecar records ``key`` and the file its sha256 (else None)."""
        if key is None or not dest.is_file():
            return None
        try:
            side = read_sidecar(dest) or {}
            if (side.get("meta") or {}).get("build", {}).get("key") != key:
                return None
            if side.get("sha256") != sha256_file(dest):
                log.warning("%s does not match its sidecar's sha256; rebuilding it", dest)
                return None
            from accelkit.loading import load_generator

            art = load_generator(dest)
        except AccelkitError as exc:
            log.warning("cannot reuse %s (%s); rebuilding it", dest, one_line(exc))
            return None
        self._check_tolerance(art, precision)
        self.say(f"reusing {dest.name} (same build key)")
        if self.original.module is not None:  # keep the torch model as the verification reference
            art = art.derive(module=self.original.module)
        return art

    def _check_tolerance(self, art: Artifact, precision: str) -> None:
        tol = self.tolerance.get(precision)
        err = (art.meta.get("verification") or {}).get("max_abs_err")
        if tol is not None and isinstance(err, (int, float)) and err > tol:
            raise VerificationError(
                f"{precision} build {art.path}: max abs error {err:.3g} > tolerance {tol:g}"
            )

    def record(self, art: Artifact, source: str, recipe: BuildRecipe, key: str | None) -> None:
        """Put the build record in ``art``'s sidecar metadata (before the pass writes it)."""
        art.meta["build"] = {
            "source": source,
            "key": key,
            "recipe": _recipe_doc(source, recipe),
            "component": self.component,
            "calibration": self.calibration.identity() if self.calibration else None,
        }


# ---------------------------------------------------------------------- sources
def _given_is(original: Artifact, source: str) -> bool:
    """The original *is* the ``source`` (an fp32 ONNX file given for ``onnx-fp32``)."""
    return original.format == "onnx" and source == onnx_source(original.precision)


def _why_not(original: Artifact, source: str) -> str | None:
    """Why ``source`` cannot be made from ``original`` (None: it can)."""
    kind = original.format
    if source == SOURCE_GIVEN:
        return None
    if source == SOURCE_TORCH:
        return (
            None
            if kind == "torch"
            else f"the generator was given as {kind}; this needs the torch model"
        )
    if kind == "trt":
        return f"the generator was given as a TensorRT plan; {source} is made from the torch model or an fp32 ONNX file"
    if kind == "onnx" and not _given_is(original, source) and original.precision != "fp32":
        return f"the ONNX file is {original.precision}; {source} is made from the fp32 ONNX or the torch model"
    if kind == "onnx" and original.path is None:
        return "the ONNX artifact has no file"
    return None


def _recipe_doc(source: str, recipe: BuildRecipe) -> dict[str, Any]:
    """The part of the recipe that shapes ``source`` (its own step only)."""
    if source == onnx_source("fp32"):
        return recipe.onnx.recipe()
    if source == onnx_source("fp16"):
        return recipe.fp16.recipe()
    if source == onnx_source("int8"):
        return recipe.int8.recipe()
    return {}


def _input_identity(original: Artifact) -> dict[str, Any] | None:
    """What identifies the input of a build chain: the generator file's sha256, spec and
    load options (a torch module), or the given file's sha256."""
    if original.format == "torch":
        if not original.source_sha256:
            return None
        load = [p for p in original.passes if p.get("name") != "optimize"]
        return {
            "source_sha256": original.source_sha256,
            "spec": original.spec.to_dict() | {"inferred": None},
            "passes": load,
        }
    if original.path is None or not Path(original.path).is_file():
        return None
    return {"file_sha256": sha256_file(original.path)}


def _destination(
    b: Builder, precision: str, recipe: BuildRecipe, t: Target
) -> tuple[Path, str | None, Artifact | None]:
    """``(path, build key, reusable artifact or None)`` of one build."""
    key = b.key(onnx_source(precision), recipe)
    if t.dest is not None:
        return t.dest, key, None
    out = b.path(precision, t.tag)
    return out, key, b.reuse(out, key, precision)


def _base_fp32(b: Builder, recipe: BuildRecipe) -> Artifact:
    """The fp32 ONNX a conversion starts from (built with the same ONNX recipe)."""
    base_recipe = replace(b.recipe, onnx=recipe.onnx)
    return b.make(onnx_source("fp32"), base_recipe)


def _export_pass(b: Builder, recipe: BuildRecipe, out: Path, force: bool) -> Any:
    from accelkit.passes.export import OnnxFromTorch

    b.say(f"exporting {b.stem} to fp32 ONNX")
    return OnnxFromTorch(
        out,
        opset=recipe.onnx.opset,
        batch_range=recipe.onnx.batch_range,
        exporter=recipe.onnx.exporter.value,
        force=force,
        tolerance=b.tolerance.get("fp32"),
        progress=b.say,
    )


def _fp16_pass(b: Builder, recipe: BuildRecipe, out: Path, force: bool) -> Any:
    from accelkit.passes.fp16 import Fp16

    b.say(f"converting to fp16 ONNX (headroom {recipe.fp16.headroom:g})")
    return Fp16(
        out,
        force=force,
        keep_nodes=recipe.fp16.keep_nodes,
        calib_samples=recipe.fp16.calib_samples,
        headroom=recipe.fp16.headroom,
        tolerance=b.tolerance.get("fp16"),
        batch_range=recipe.onnx.batch_range,
        progress=b.say,
    )


def _int8_pass(b: Builder, recipe: BuildRecipe, out: Path, force: bool) -> Any:
    from accelkit.passes.int8 import Int8

    kept = len(recipe.int8.exclude)
    b.say(
        f"quantizing to int8 ONNX ({recipe.int8.calib} calibration samples"
        + (f", {kept} exclusion pattern(s) kept in float)" if kept else ")")
    )
    return Int8(
        out,
        force=force,
        tolerance=b.tolerance.get("int8"),
        batch_range=recipe.onnx.batch_range,
        calib_data=b.calibration,
        progress=b.say,
        **recipe.int8.pass_kwargs(),
    )


def onnx_maker(
    precision: str, make_pass: Callable[[Builder, BuildRecipe, Path, bool], Any]
) -> SourceMaker:
    """The maker of ``onnx-<precision>``: the given file when it is that source, else a file
    reused by its build key, else ``make_pass``'s pass run on the torch model (fp32) or on the
    fp32 ONNX of the same recipe (conversions)."""

    def make(b: Builder, recipe: BuildRecipe, t: Target) -> Artifact:
        src = onnx_source(precision)
        if _given_is(b.original, src):
            return b.original
        out, key, again = _destination(b, precision, recipe, t)
        if again is not None:
            return again
        base = b.original if precision == "fp32" else _base_fp32(b, recipe)
        p = make_pass(b, recipe, out, t.dest is None or t.force)
        return _run_with_record(b, p, base, src, recipe, key)

    return make


def _run_with_record(
    b: Builder, p: Any, base: Artifact, source: str, recipe: BuildRecipe, key: str | None
) -> Artifact:
    """Run a pass whose output sidecar records the build (the record rides in ``base.meta``)."""
    import time

    t0 = time.monotonic()
    staged = base.derive(meta={**base.meta})
    b.record(staged, source, recipe, key)
    try:
        return p(staged)  # type: ignore[no-any-return]
    finally:
        b.seconds += time.monotonic() - t0


#: Derived source name -> its maker. Extend with :func:`register_source`.
SOURCES: dict[str, SourceMaker] = {
    onnx_source("fp32"): onnx_maker("fp32", _export_pass),
    onnx_source("fp16"): onnx_maker("fp16", _fp16_pass),
    onnx_source("int8"): onnx_maker("int8", _int8_pass),
}
#: How a failed build of a source is named in a row's reason.
_WHAT = {
    onnx_source("fp32"): "ONNX export",
    onnx_source("fp16"): "fp16 conversion",
    onnx_source("int8"): "int8 quantization",
}
#: Derived source -> the source it is made from (for the build key's chain).
_PARENTS: dict[str, str] = {
    onnx_source("fp16"): onnx_source("fp32"),
    onnx_source("int8"): onnx_source("fp32"),
}


def register_source(name: str, maker: SourceMaker, parent: str | None = None) -> None:
    """Register a derived artifact ``name`` (what a backend's recipe may ask for).

    Args:
        name: The source name (``onnx-int8``-like).
        maker: ``(builder, recipe, dest) -> Artifact``; use :meth:`Builder.make` for the
            sources it starts from, :meth:`Builder.key` / :meth:`Builder.reuse` to be cached.
        parent: The source it is made from (part of its build key).

    Raises:
        InputError: The name is taken.
    """
    if name in SOURCES or name in (SOURCE_TORCH, SOURCE_GIVEN):
        raise InputError(f"build source {name!r} is already registered")
    SOURCES[name] = maker
    if parent is not None:
        _PARENTS[name] = parent


def sources() -> tuple[str, ...]:
    """Every source name a recipe may ask for."""
    return (SOURCE_TORCH, SOURCE_GIVEN, *SOURCES)


__all__ = [
    "BUILD_SCHEMA",
    "SOURCES",
    "SOURCE_GIVEN",
    "BuildFailed",
    "Builder",
    "Target",
    "register_source",
    "onnx_maker",
    "sources",
]
