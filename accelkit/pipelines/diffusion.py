"""The ``diffusion`` generator kind in the commands: ``info``, ``export``, ``bench``, ``serve``.

A pipeline folder loads into an artifact of format ``diffusion``
(:mod:`accelkit.diffusion.kind`); ``info``/``export``/``bench`` hand such an artifact
(or an exported denoiser whose sidecar names its pipeline) to this module. Everything
else is shared with one-pass generators:

* **components are artifacts**: one :class:`~accelkit.passes.build.Builder` per component
  (``denoiser``, ``decoder``) makes its fp32/fp16/int8 ONNX with the run's one
  :class:`~accelkit.options.BuildRecipe`; INT8 calibrates on the component's inputs
  along real sampling trajectories (:class:`~accelkit.diffusion.calibration.TrajectoryData`);
* **backends need no change**: each backend is asked about the denoiser with the same
  :class:`~accelkit.runners.base.Ask` as any torch generator; its recipes plus the
  sampler knobs (:class:`~accelkit.options.DiffusionSettings`) make a pipeline-level
  bench target whose runner is the sampling loop
  (:class:`~accelkit.diffusion.sampler.DiffusionRunner`) over the component runners;
* **the reference** is the model's reference sampler (its ``accelkit.json`` sampler, else
  the folder's scheduler at the pipeline's default steps) in torch fp32, from the same
  noise and labels: speed-ups over it (``speedup_vs_reference``) and drift against it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact, sidecar_path
from accelkit.errors import AccelkitError, InputError, one_line
from accelkit.options import DEFAULT_BATCH_RANGE, BuildRecipe, DiffusionSettings
from accelkit.pipelines.results import Result

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

#: Per-call INT8 tolerance of a denoiser build: recorded only (see :func:`component_builders`).
INT8_PER_CALL_TOLERANCE = 1e9
#: Variant label of the reference row (torch fp32 at the reference sampler) when the
#: benched sampler differs from it.
REFERENCE_VARIANT = "reference"


# ----------------------------------------------------------------------------- knobs
def sampler_settings(knobs: DiffusionSettings | None) -> Any:
    """The :class:`~accelkit.diffusion.model.SamplerSettings` the flags ask for."""
    from accelkit.diffusion.model import SamplerSettings

    k = knobs or DiffusionSettings()
    return SamplerSettings(scheduler=k.scheduler, steps=k.steps, guidance=k.guidance).validated()


def is_pipeline(artifact: Artifact) -> bool:
    """``artifact`` is a loaded diffusion pipeline (format ``diffusion``)."""
    return artifact.format == "diffusion"


def is_component(artifact: Artifact) -> bool:
    """``artifact`` is a diffusion component accelkit exported (its sidecar names the pipeline)."""
    from accelkit.diffusion.kind import component_of

    return component_of(artifact) is not None


def refuse_knobs(knobs: DiffusionSettings | None, artifact: Artifact) -> None:
    """A one-pass generator given diffusion flags: one line naming them.

    Raises:
        InputError: Any diffusion flag was set.
    """
    if knobs is not None and not knobs.is_default:
        raise InputError(
            f"{', '.join(knobs.given_flags())} apply to diffusion pipelines; "
            f"{artifact.source or 'this generator'} is a one-pass generator (drop them)"
        )


def pipeline_of(artifact: Artifact, knobs: DiffusionSettings | None) -> Artifact:
    """The pipeline artifact (reloaded with ``--condition`` when given)."""
    from accelkit.diffusion.kind import with_condition

    return with_condition(artifact, (knobs or DiffusionSettings()).condition)


def knob_record(sampling: Any, knobs: DiffusionSettings | None) -> dict[str, Any]:
    """The knobs as recorded in rows and sidecars: the resolved sampler plus ``cache``
    (canonical, e.g. ``deepcache:3:1``; ``auto`` until :func:`resolve_cache` replaced it)."""
    from accelkit.diffusion.cache import CacheSpec

    k = knobs or DiffusionSettings()
    cache = k.cache if k.cache == AUTO_CACHE else CacheSpec.parse(k.cache).canonical()
    return {**sampling.to_dict(), "cache": cache}


#: ``--cache auto``: calibrate on the model's own trajectories.
AUTO_CACHE = "auto"
#: ``--cache auto``: images per candidate and the paired-PSNR budget against the uncached
#: sampler at the same settings (dB; DeepCache N=3 kept 29 dB on the bundled ddpm).
AUTO_CACHE_IMAGES = 4
AUTO_CACHE_PSNR_DB = 30.0


def resolve_cache(
    model: Any,
    knobs: DiffusionSettings | None,
    settings: Any,
    progress: Progress | None = None,
) -> tuple[DiffusionSettings, dict[str, Any] | None]:
    """The knobs with ``--cache`` parsed, checked against the model and made canonical.

    ``auto`` runs :func:`~accelkit.diffusion.cache.calibrate_cache` (torch, the run's
    sampler, :data:`AUTO_CACHE_IMAGES` images, :data:`AUTO_CACHE_PSNR_DB` dB against the
    uncached sampler) and returns what it measured beside the chosen spec.

    Raises:
        InputError: A malformed spec, or one that does not apply to the model.
    """
    from accelkit.diffusion.cache import CacheSpec, calibrate_cache

    k = knobs or DiffusionSettings()
    if str(k.cache).strip().lower() != AUTO_CACHE:
        return replace(k, cache=CacheSpec.parse(k.cache).check(model).canonical()), None
    (progress or (lambda m: None))("--cache auto: calibrating the step cache on the model")
    cal = calibrate_cache(
        model, settings, budget_psnr_db=AUTO_CACHE_PSNR_DB, n=AUTO_CACHE_IMAGES, seed=0
    )
    return replace(k, cache=cal.chosen.canonical()), {"auto": True, **cal.to_dict()}


# ------------------------------------------------------------------------------ info
@dataclass
class DiffusionInfoResult(Result):
    """``accelkit info`` of a pipeline folder: kind, components, inputs, sampler, FLOPs."""

    description: dict[str, Any]
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return self.description

    def to_text(self) -> str:
        """The description's lines."""
        return "\n".join(self.lines)


def info(
    artifact: Artifact, knobs: DiffusionSettings | None = None, progress: Progress | None = None
) -> DiffusionInfoResult:
    """Describe a pipeline: folder, components, denoiser inputs, sampler and FLOPs.

    Args:
        artifact: A ``diffusion`` artifact.
        knobs: Sampler flags (steps and guidance change the FLOPs per image).
        progress: Called with a short message per step.
    """
    from accelkit.diffusion.describe import describe_pipeline
    from accelkit.diffusion.kind import model_of

    say = progress or (lambda m: None)
    art = pipeline_of(artifact, knobs)
    model = model_of(art)
    say("counting FLOPs")
    desc = describe_pipeline(model, sampler_settings(knobs))
    ref = model.sampling(None)
    d = {
        "file": str(model.folder.path),
        "format": "diffusion",
        "artifact_format": "diffusion",
        "sha256": model.source_sha256,
        "reference_sampler": ref.to_dict(),
        "cache": (knobs or DiffusionSettings()).cache,
        **desc.to_dict(),
    }
    lines = [
        f"{'file':<12} {model.folder.path}",
        f"{'sha256':<12} {model.source_sha256}",
        f"{'format':<12} diffusion",
        *desc.lines(),
        f"reference sampler (quality and speed-ups): {ref.label()} in torch fp32",
    ]
    return DiffusionInfoResult(d, lines)


# ---------------------------------------------------------------------------- builds
def component_builders(
    model: Any,
    workdir: Path,
    recipe: BuildRecipe,
    sampling_settings: Any,
    *,
    strict: bool = False,
    progress: Progress | None = None,
    stem: str = "",
) -> tuple[Any, Any]:
    """One :class:`~accelkit.passes.build.Builder` per component: ``(denoiser, decoder or None)``.

    INT8 calibrates each component on its inputs along trajectories of the sampler the
    build will run (``sampling_settings``), not on random tensors.
    """
    from accelkit.diffusion.calibration import TrajectoryData
    from accelkit.passes.build import Builder

    # A denoiser predicts unit-variance noise, not an image, and the per-call check feeds it
    # seeded inputs no sampler gives it (random samples at random timesteps): INT8 errors of
    # ~2 there are normal (seen on ddpm: 2.16). The per-call error is recorded, not a gate;
    # the whole-sample check (export) and the drift against the reference (bench --fid) judge.
    tol = {"int8": INT8_PER_CALL_TOLERANCE}
    den = Builder(
        model.denoiser,
        workdir,
        recipe,
        stem=f"{stem}denoiser",
        component="denoiser",
        calibration=TrajectoryData(model, sampling_settings, component="denoiser"),
        tolerance=tol,
        strict=strict,
        progress=progress,
    )
    dec = None
    if model.decoder is not None:
        dec = Builder(
            model.decoder,
            workdir,
            recipe,
            stem=f"{stem}vae_decoder",
            component="decoder",
            calibration=TrajectoryData(model, sampling_settings, component="decoder"),
            strict=strict,
            progress=progress,
        )
    return den, dec


def component_recipe(recipe: BuildRecipe, batch_sizes: tuple[int, ...], cfg: bool) -> BuildRecipe:
    """The recipe with an export batch range covering the runs (twice the batch under guidance)."""
    batches = tuple(b * (2 if cfg else 1) for b in batch_sizes)
    return replace(recipe, onnx=recipe.onnx.covering(batches))


@dataclass
class DiffusionExportResult(Result):
    """Exported, verified components of a pipeline and their manifest."""

    denoiser: Artifact
    decoder: Artifact | None
    verification: dict[str, Any]
    manifest: Path
    cached: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Paths, per-component precision and the whole-sample verification."""
        comps = {"denoiser": self.denoiser}
        if self.decoder is not None:
            comps["decoder"] = self.decoder
        return {
            "components": {
                k: {
                    "path": str(a.path),
                    "sidecar": str(sidecar_path(a.path)) if a.path else None,
                    "precision": a.precision,
                    "verification": a.meta.get("verification"),
                }
                for k, a in comps.items()
            },
            "sample_verification": self.verification,
            "manifest": str(self.manifest),
        }

    def to_text(self) -> str:
        """What ``accelkit export`` prints."""
        lines = []
        for name, a in (("denoiser", self.denoiser), ("decoder", self.decoder)):
            if a is None or a.path is None:
                continue
            v = a.meta.get("verification") or {}
            per_call = (
                f"; per call max abs error {v['max_abs_err']:.3g} (tolerance {v['tolerance']:g})"
                if "max_abs_err" in v and "tolerance" in v
                else ""
            )
            lines.append(
                f"wrote {a.path} ({name}, {a.precision}, {a.path.stat().st_size / 1e6:.2f} MB){per_call}"
            )
        v = self.verification
        lines.append(
            f"verified a {v['steps']}-step sample ({v['sampler']['scheduler']}) of {v['images']} images against torch fp32: "
            f"max abs error {v['max_abs_err']:.3g} (tolerance {v['tolerance']:g}), PSNR {v['psnr_db']:.1f} dB"
        )
        if self.cached is not None:
            for a in (self.cached.main, self.cached.second):
                lines.append(
                    f"wrote {a.path} (cache part {a.meta.get('cache_part')}, {a.precision})"
                )
            sv = self.cached.main.meta.get("diffusion_cache", {}).get("sample_verification") or {}
            if "psnr_db" in sv:
                lines.append(
                    f"verified a {self.cached.spec} sample through the partial graphs against torch: "
                    f"PSNR {sv['psnr_db']:.1f} dB"
                )
        lines.append(f"manifest {self.manifest}")
        lines.append(f"measure it: accelkit bench {self.denoiser.path}")
        return "\n".join(lines)


def export(
    artifact: Artifact,
    options: Any,
    knobs: DiffusionSettings | None = None,
    progress: Progress | None = None,
) -> DiffusionExportResult:
    """Export a pipeline's components to verified ONNX at their precisions.

    The denoiser takes ``options.precision`` (fp32, fp16, or int8 calibrated on its own
    trajectories), a latent model's decoder ``knobs.decoder_precision``; both through the
    builder (the files ``bench`` makes of the same pipeline, byte for byte). Each is
    verified per call against torch; then a short whole sample through the ONNX
    components is compared with torch's. The sidecars record the pipeline folder, the
    per-component precisions, the sampler and the sample verification, so ``bench
    denoiser.onnx`` runs the whole sampler with no flags.

    Args:
        artifact: A ``diffusion`` artifact.
        options: :class:`~accelkit.pipelines.options.ExportOptions`; ``out`` is a folder
            (default ``./<folder name>-onnx``).
        knobs: Sampler flags (the sampler INT8 calibrates on and the sample check runs);
            a ``cache`` other than ``none`` also exports its two partial graphs
            (:func:`~accelkit.passes.cache_export.export_cached`, verified per call and over
            a short cached sample) at the denoiser's precision (fp32/fp16; ``auto``
            calibrates first).
        progress: Called with a short message per step.

    Raises:
        InputError: An existing output without ``--force``; ``--cache`` with int8.
        ExportError / VerificationError / NonFiniteOutputError: the export did not hold.
    """
    from accelkit.diffusion.kind import model_of
    from accelkit.files import storage_error, write_text_atomic
    from accelkit.passes.diffusion_export import MANIFEST, VERIFY_STEPS, verify_sample
    from accelkit.vocab import onnx_source

    say = progress or (lambda m: None)
    k = knobs or DiffusionSettings()
    model = model_of(pipeline_of(artifact, k))
    settings = sampler_settings(k)
    sampling = model.sampling(settings)
    k, calibration = resolve_cache(model, k, settings, progress)
    den_prec0 = str(getattr(options.precision, "value", options.precision))
    if k.cache != "none" and den_prec0 not in CACHED_PART_PRECISIONS:
        raise InputError(
            f"--cache {k.cache} with {den_prec0}: the cached partial graphs export as fp32 or fp16 "
            "only; drop --int8 or use --cache none"
        )
    out = Path(options.out) if options.out is not None else Path(f"{model.folder.path.name}-onnx")
    if out.suffix == ".onnx":
        raise InputError(
            f"-o {out}: a pipeline exports one file per component; give a folder (e.g. {out.with_suffix('')})"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file; give a folder for the component files")
    if (out / MANIFEST).exists() and not options.force:
        raise InputError(f"{out} already holds an exported pipeline; pass --force to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"cannot create {out}") from None
    recipe = component_recipe(
        BuildRecipe(onnx=options.onnx, fp16=options.fp16, int8=options.int8),
        tuple(options.onnx.batch_range or DEFAULT_BATCH_RANGE),
        sampling.cfg,
    )
    den_b, dec_b = component_builders(model, out, recipe, settings, strict=True, progress=say)
    den_prec = str(getattr(options.precision, "value", options.precision))
    say(f"exporting the denoiser ({den_prec})")
    den = den_b.make(onnx_source(den_prec), dest=den_b.path(den_prec, None), force=options.force)
    dec = None
    if dec_b is not None:
        say(f"exporting the VAE decoder ({k.decoder_precision})")
        dec = dec_b.make(
            onnx_source(k.decoder_precision),
            dest=dec_b.path(k.decoder_precision, None),
            force=options.force,
        )
    say(f"verifying a {VERIFY_STEPS}-step sample through the ONNX components against torch")
    verification = verify_sample(model, den, dec, settings=settings, seed=0)
    cached = None
    if k.cache != "none":
        from accelkit.diffusion.cache import CacheSpec

        cached = cached_parts(
            model,
            CacheSpec.parse(k.cache),
            den_prec,
            out,
            recipe,
            say,
            {},
            folder=out,
            force=options.force,
        )
    precisions = {"denoiser": den.precision, **({"decoder": dec.precision} if dec else {})}
    for comp, art in (("denoiser", den), ("decoder", dec)):
        if art is None:
            continue
        art.meta["diffusion"] = {
            "component": comp,
            "folder": str(model.folder.path.resolve()),
            "folder_sha256": model.source_sha256,
            "pipeline": model.meta.get("pipeline_class"),
            "sampler": knob_record(sampling, k),
            "component_precisions": precisions,
            "decoder_file": dec.path.name if comp == "denoiser" and dec and dec.path else None,
            "sample_verification": verification,
        }
        art.save_sidecar()
    manifest = {
        "schema_version": 1,
        "source": str(model.folder.path.resolve()),
        "folder_sha256": model.source_sha256,
        "pipeline": {k2: v for k2, v in model.meta.items() if k2 != "denoiser_config"},
        "spec": model.spec.to_dict(),
        "sampler": knob_record(sampling, k),
        "components": {
            c: {"file": a.path.name if a.path else None, "precision": a.precision}
            for c, a in (("denoiser", den), ("decoder", dec))
            if a is not None
        },
        "component_precisions": precisions,
        "sample_verification": verification,
        "cache": k.cache,
        "cache_parts": None
        if cached is None
        else {
            "files": {
                a.meta.get("cache_part"): a.path.name if a.path else None
                for a in (cached.main, cached.second)
            },
            **cached.to_dict(),
        },
        "cache_calibration": calibration,
    }
    write_text_atomic(
        out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    )
    return DiffusionExportResult(den, dec, verification, out / MANIFEST, cached)


# ------------------------------------------------------------------------------ bench
def _given_components(
    given: Artifact | None, model: Any
) -> tuple[Artifact | None, Artifact | None]:
    """An exported denoiser given to ``bench`` and the decoder exported beside it (if any)."""
    if given is None:
        return None, None
    from accelkit.loading import load_generator

    rec = given.meta.get("diffusion") or {}
    dec = None
    name = rec.get("decoder_file")
    if name and given.path is not None and (given.path.parent / name).is_file():
        dec = load_generator(given.path.parent / name)
    elif model.decoder is not None:
        log.info("no exported decoder beside %s; the decoder runs in torch fp32", given.path)
    return given, dec


def plan(
    artifact: Artifact,
    cfg: Any,
    knobs: DiffusionSettings | None,
    device: str,
    workdir: Path,
    progress: Progress | None = None,
    *,
    threads: int | None = None,
    given: Artifact | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Pipeline-level bench targets: every backend x precision the registry offers for the
    denoiser, each the sampling loop over its component runners, plus the reference row.

    Args:
        artifact: The ``diffusion`` artifact.
        cfg: :class:`~accelkit.benchmark.plan.BenchOptions`.
        knobs: Sampler flags.
        device: The resolved device.
        workdir: Where the component builds go.
        progress: Called with a short message per step.
        threads: The run's CPU thread count.
        given: An exported denoiser (``bench denoiser.onnx``): the only build measured.

    Returns:
        ``(targets, record)``: the reference target first when the sampler differs from
        the reference; ``record`` holds the sampler knobs and the reference sampler.
    """
    from accelkit.benchmark.plan import (
        bench_ask,
        check_requested_backends,
        default_precisions,
        planned_recipes,
    )
    from accelkit.benchmark.suite import BenchTarget
    from accelkit.diffusion.cache import CacheSpec
    from accelkit.diffusion.kind import model_of
    from accelkit.diffusion.sampler import create_diffusion_runner
    from accelkit.passes.build import BuildFailed
    from accelkit.runners.base import Ask, offers
    from accelkit.vocab import onnx_source

    say = progress or (lambda m: None)
    k = knobs or DiffusionSettings()
    model = model_of(artifact)
    settings = sampler_settings(k)
    k, calibration = resolve_cache(model, k, settings, progress)
    cache = CacheSpec.parse(k.cache)
    sampling = model.sampling(settings)
    reference = model.sampling(None)
    thread_opts = {"threads": threads} if threads else {}
    record = {
        "sampler": knob_record(sampling, k),
        "reference_sampler": reference.to_dict(),
        "sampler_is_reference": sampling == reference and not cache.enabled,
    }
    if calibration is not None:
        record["cache_calibration"] = calibration
    targets: list[Any] = []

    def runner_factory(
        backend: str,
        den: Artifact | None,
        dec: Artifact | None,
        opts: dict[str, Any],
        s: Any,
        cached: Any = None,
    ) -> Callable[[], Any]:
        def make() -> Any:
            return create_diffusion_runner(
                model,
                backend,
                settings=s,
                device=device,
                denoiser=None if cached is not None or cache.enabled else den,
                decoder=dec,
                decoder_backend=backend if dec is not None else "torch",
                options=opts,
                decoder_options={**thread_opts, "precision": dec.precision}
                if dec is not None
                else {**thread_opts, "precision": "fp32"},
                cache=cache if cache.enabled else None,
                cached=cached,
            )

        return make

    if record["sampler_is_reference"] is False:
        targets.append(
            BenchTarget(
                "torch",
                artifact,
                {"precision": "fp32", **thread_opts},
                variant=REFERENCE_VARIANT,
                precision="fp32",
                make_runner=runner_factory(
                    "torch", None, None, {"precision": "fp32", **thread_opts}, None
                ),
            )
        )
    made: dict[tuple[str, str], Any] = {}
    if given is not None:
        if cache.enabled:
            raise InputError(
                f"--cache {cache} needs the pipeline folder (its partial graphs are exported from "
                f"the torch modules): bench {artifact.source} instead of the exported denoiser"
            )
        den, dec = _given_components(given, model)
        backends = check_requested_backends(cfg, device)
        for name in backends:
            ask = Ask(
                kind="onnx",
                precision=den.precision if den else "fp32",
                device=device,
                given_precision=den.precision if den else "fp32",
                threads=threads,
            )
            got = offers(name, ask)
            if isinstance(got, str):
                targets.append(BenchTarget(name, None, precision=ask.precision, skip_reason=got))
                continue
            for r in got:
                if r.variant is not None or r.source not in ("given", onnx_source(ask.precision)):
                    continue
                targets.append(
                    BenchTarget(
                        name,
                        artifact,
                        dict(r.options),
                        precision=ask.precision,
                        make_runner=runner_factory(name, den, dec, dict(r.options), settings),
                    )
                )
        return targets, record
    backends = check_requested_backends(cfg, device)
    precisions = tuple(cfg.precisions) or default_precisions(model.denoiser)
    recipe = component_recipe(cfg.build, tuple(cfg.batch_sizes), sampling.cfg)
    den_b, dec_b = component_builders(model, workdir, recipe, settings, progress=say)
    for name in backends:
        for p in precisions:
            got = planned_recipes(name, bench_ask(cfg, "torch", p, device, threads, workdir))
            if isinstance(got, str):
                targets.append(BenchTarget(name, None, precision=p, skip_reason=got))
                continue
            for r in got:
                reason = r.refused
                den = dec = cached = None
                if reason is None:
                    try:
                        if cache.enabled and r.source != "torch":
                            cached = cached_parts(model, cache, p, workdir, recipe, say, made)
                        else:
                            den = den_b.make(r.source)
                        if dec_b is not None and r.source != "torch":
                            dec = dec_b.make(onnx_source(k.decoder_precision))
                    except (BuildFailed, AccelkitError) as exc:
                        reason = one_line(exc)
                targets.append(
                    BenchTarget(
                        name,
                        artifact if reason is None else None,
                        dict(r.options),
                        variant=r.variant,
                        precision=p,
                        skip_reason=reason,
                        make_runner=None
                        if reason is not None
                        else runner_factory(
                            name,
                            None if r.source == "torch" else den,
                            dec,
                            dict(r.options),
                            settings,
                            cached,
                        ),
                    )
                )
    return targets, record


#: ``--cache`` on ONNX backends: precisions of the exported partial graphs.
CACHED_PART_PRECISIONS = ("fp32", "fp16")


def cached_parts(
    model: Any,
    cache: Any,
    precision: str,
    workdir: Path,
    recipe: BuildRecipe,
    say: Progress,
    made: dict[tuple[str, str], Any],
    *,
    folder: Path | None = None,
    force: bool = False,
) -> Any:
    """The cache's two partial denoisers exported to ONNX at ``precision`` and verified
    (per call and over a whole short sample, :func:`~accelkit.passes.cache_export.export_cached`),
    made once per run in ``folder`` (default ``workdir/cache_<spec>``, the run's scratch
    folder, overwritten by a re-run; ``made`` holds the run's exports).

    Raises:
        InputError: ``int8`` (the partial graphs have no trajectory calibration yet).
        ExportError / VerificationError: The export or its verification failed.
    """
    from accelkit.passes.cache_export import export_cached
    from accelkit.spec import as_batch_range

    if precision not in CACHED_PART_PRECISIONS:
        raise InputError(
            f"--cache {cache} at {precision}: the cached partial graphs export as fp32 or fp16 "
            "only (int8 would need trajectory calibration of each part); use --precision fp32,fp16 "
            "with --cache, or --cache none for int8"
        )
    key = (cache.canonical(), precision)
    if key not in made:
        say(f"exporting the {cache} partial graphs ({precision}) and verifying them against torch")
        made[key] = export_cached(
            model,
            cache,
            folder or workdir / f"cache_{cache.canonical().replace(':', '-')}",
            precision=precision,
            force=force or folder is None,  # the run's own scratch folder: rebuilt freely
            opset=recipe.onnx.opset,
            batch_range=as_batch_range(recipe.onnx.batch_range or DEFAULT_BATCH_RANGE),
            progress=say,
        )
    return made[key]


def annotate_rows(report: Any, record: dict[str, Any], flops: dict[str, int | None]) -> None:
    """Fill each row's diffusion fields from its runner's record, and the speed-up over the
    reference (torch fp32 at the reference sampler, same batch size and device; withheld
    like every ratio when a side is unstable)."""
    from accelkit.benchmark.stability import speedup_verdict

    peaks = report.settings.get("cpu_peak_gflops") if report.settings else None
    refs: dict[tuple[int, str], Any] = {}
    for r in report.rows:
        if r.status != "ok" or r.backend != "torch" or r.precision != "fp32":
            continue
        is_ref = r.variant == REFERENCE_VARIANT or (
            record["sampler_is_reference"] and r.variant is None
        )
        if is_ref:
            refs[(r.batch_size, r.device)] = r
    for r in report.rows:
        info = r.runner or {}
        sampler = info.get("sampler") or (
            record["reference_sampler"] if r.variant == REFERENCE_VARIANT else record["sampler"]
        )
        timing = info.get("timing") or {}
        r.steps = sampler.get("steps")
        r.scheduler = sampler.get("scheduler")
        r.cache = "none" if r.variant == REFERENCE_VARIANT else record["sampler"].get("cache")
        r.time_share = timing.get("share")
        # from the row's timed iterations (the sampler's own timing also saw the warm-up,
        # where a backend may compile for the batch's shapes): median batch time spent in the
        # denoiser and the scheduler, per step
        p50 = (r.latency_ms or {}).get("p50")
        if p50 and r.steps:
            dec = (r.time_share or {}).get("decoder", 0.0)
            r.ms_per_step = round(float(p50) * (1.0 - dec) / int(r.steps), 4)
        per_image = flops.get("reference" if r.variant == REFERENCE_VARIANT else "sampler")
        if r.flops_per_image is None and per_image:
            r.flops_per_image = per_image
        if r.status != "ok":
            continue
        base = refs.get((r.batch_size, r.device))
        if base is None:
            r.speedup_vs_reference_withheld = "no reference row measured at this batch size"
            continue
        r.speedup_vs_reference, r.speedup_vs_reference_withheld = speedup_verdict(
            r, base, peaks if isinstance(peaks, dict) else None
        )


def drift_verdict_hook(drift: Any, sampler_changed: bool) -> dict[str, Any]:
    """The drift fields of a row.

    A row whose sampler differs from the reference (other steps or scheduler) or that
    caches steps changes trajectories: its drift is measured with the distribution-level
    test (:mod:`accelkit.quality.verdict`, chosen by the :class:`DriftPlan`'s ``test``),
    which decides its verdict; paired error is recorded beside it, informative only.
    """
    fields = drift.row_fields()
    if sampler_changed:
        q = dict(fields.get("quality") or {})
        q["verdict_basis"] = "distribution-level test; paired error is informative only"
        fields["quality"] = q
    return fields


def measure_quality(
    model_artifact: Artifact,
    targets: list[Any],
    report: Any,
    record: dict[str, Any],
    cfg: Any,
    device: str,
    out: Path,
    progress: Progress | None = None,
    session: Any = None,
) -> dict[str, Path]:
    """Drift of every measured row against the reference sampler in torch fp32 (same noise
    and labels), through :func:`accelkit.pipelines.bench.measure_quality` with this kind's
    :class:`~accelkit.pipelines.bench.DriftPlan` (``session``: a
    :class:`~accelkit.pipelines.bench.DriftSession` that keeps the prepared reference
    for the next call).

    Returns:
        Paths of the sample grids and the scatter written.
    """
    from accelkit.diffusion.kind import model_of
    from accelkit.diffusion.sampler import create_diffusion_runner
    from accelkit.pipelines.bench import DriftPlan
    from accelkit.pipelines.bench import measure_quality as measure
    from accelkit.quality.drift import reference_identity

    model = model_of(model_artifact)
    threads = cfg.threads.resolve(device)
    ref = record["reference_sampler"]
    changed = not record["sampler_is_reference"]

    def is_reference(t: Any) -> bool:
        return t.variant == REFERENCE_VARIANT or (
            not changed
            and t.backend == "torch"
            and t.precision_label() == "fp32"
            and t.variant is None
        )

    plan = DriftPlan(
        reference=lambda: create_diffusion_runner(
            model,
            "torch",
            device=device,
            options={"precision": "fp32", **({"threads": threads} if threads else {})},
        ),
        reference_id={**reference_identity(model_artifact), "sampler": ref},
        reference_label=f"torch fp32 {ref['scheduler']}-{ref['steps']} (the reference sampler)",
        is_reference=is_reference,
        fields=lambda drift, t: drift_verdict_hook(
            drift, changed and t.variant != REFERENCE_VARIANT
        ),
        label_suffix=lambda row: (
            f" {row.scheduler}-{row.steps}"
            + ("" if row.cache in (None, "none") else f" {row.cache}")
        ),
        test=lambda t: "distribution" if changed and t.variant != REFERENCE_VARIANT else "paired",
    )
    return measure(
        model_artifact, targets, report, cfg, device, out, progress, plan=plan, session=session
    )


def bench(
    artifact: Artifact,
    cfg: Any,
    knobs: DiffusionSettings | None,
    device: str,
    out: Path,
    progress: Progress | None = None,
) -> Any:
    """``accelkit bench`` of a pipeline folder, or of an exported denoiser (its pipeline from the sidecar).

    Rows count finished images (all steps plus decode) and carry ``steps``,
    ``scheduler``, ``cache``, ``ms_per_step``, ``time_share`` (denoiser / scheduler /
    decoder) and ``speedup_vs_reference``; with ``--fid N`` each gets drift against the
    reference sampler in torch fp32 from the same noise and labels.

    Returns:
        :class:`~accelkit.pipelines.bench.BenchResult`.
    """
    from accelkit.benchmark.report import Report
    from accelkit.benchmark.suite import run_benchmark
    from accelkit.diffusion.describe import describe_pipeline
    from accelkit.diffusion.kind import model_of, source_pipeline
    from accelkit.errors import one_line
    from accelkit.files import storage_error
    from accelkit.pipelines.bench import BenchResult, record_cpu_peaks

    say = progress or (lambda m: None)
    given = None
    k = knobs or DiffusionSettings()
    if not is_pipeline(artifact):
        given = artifact
        artifact = source_pipeline(artifact)
        rec = (given.meta.get("diffusion") or {}).get("sampler") or {}
        if k == DiffusionSettings() and rec:
            k = replace(
                k,
                scheduler=rec.get("scheduler") or "default",
                steps=rec.get("steps"),
                guidance=rec.get("guidance"),
            )
        say(f"pipeline: {artifact.source} (from {given.path}'s sidecar)")
    artifact = pipeline_of(artifact, k)
    model = model_of(artifact)
    workdir = out / "artifacts"
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"cannot write in {out}") from None
    threads = cfg.threads.resolve(device)
    targets, record = plan(
        artifact, cfg, k, device, workdir, progress, threads=threads, given=given
    )
    report = Report()
    record_cpu_peaks(report, device, threads, {"fp32", *(t.precision_label() for t in targets)})
    report.settings["generator"] = Path(str(artifact.source)).name
    report.settings["generator_sha256"] = (artifact.source_sha256 or "")[:16]
    report.settings["kind"] = "diffusion"
    report.settings["diffusion"] = record
    say("counting FLOPs")
    flops = {
        "sampler": describe_pipeline(model, sampler_settings(k)).flops_per_image,
        "reference": describe_pipeline(model, None).flops_per_image,
    }
    report = run_benchmark(
        targets,
        cfg.batch_sizes,
        device=device,
        warmup=cfg.timing.warmup,
        repeats=cfg.timing.repeats,
        min_time_s=cfg.timing.min_time_s,
        seed=cfg.seed,
        report=report,
        progress=progress,
    )
    annotate_rows(report, record, flops)
    files: dict[str, Path] = {}
    warnings: list[str] = []
    if cfg.fid.n:
        try:
            files = measure_quality(artifact, targets, report, record, cfg, device, out, progress)
        except Exception as exc:  # noqa: BLE001 - the speed rows that ran are still reported
            for r in report.rows:
                if r.status == "ok" and r.fid_drift is None:
                    r.status, r.reason = "failed", f"quality: {one_line(exc)}"
            warnings.append(
                f"quality drift was not measured ({one_line(exc)}); the speed rows are in the report"
            )
    written = report.write(out, plot=cfg.plot)
    return BenchResult(report, {**written, **files}, warnings=warnings)


# ------------------------------------------------------------------------------ serve
def request_runner(
    artifact: Artifact,
    backend: str,
    device: str,
    workdir: Path,
    progress: Progress | None = None,
    knobs: DiffusionSettings | None = None,
    threads: int | None = None,
) -> tuple[Artifact, Callable[[], Any]]:
    """What ``accelkit serve`` runs for a pipeline: the served artifact (inputs ``seed`` +
    label / prompt embeddings, output the finished image) and a factory of its runner.

    ``ort``/``openvino`` run the fp32 denoiser (and decoder) ONNX the builder makes in
    ``workdir``; ``torch`` runs the folder's modules.
    """
    from accelkit.diffusion.kind import model_of
    from accelkit.diffusion.sampler import SeededDiffusionRunner, create_diffusion_runner
    from accelkit.vocab import onnx_source

    k = knobs or DiffusionSettings()
    model = model_of(pipeline_of(artifact, k))
    settings = sampler_settings(k)
    den = dec = None
    if backend != "torch":
        den_b, dec_b = component_builders(
            model, workdir, BuildRecipe(), settings, strict=True, progress=progress
        )
        den = den_b.make(onnx_source("fp32"))
        dec = dec_b.make(onnx_source(k.decoder_precision)) if dec_b is not None else None
    opts: dict[str, Any] = {"threads": threads} if threads else {}

    def make() -> Any:
        return SeededDiffusionRunner(
            create_diffusion_runner(
                model,
                backend,
                settings=settings,
                device=device,
                denoiser=den,
                decoder=dec,
                decoder_backend=backend if dec is not None else "torch",
                options=opts,
            )
        )

    probe = make()
    return probe.artifact, make


__all__ = [
    "REFERENCE_VARIANT",
    "DiffusionExportResult",
    "DiffusionInfoResult",
    "annotate_rows",
    "bench",
    "component_builders",
    "drift_verdict_hook",
    "export",
    "info",
    "is_component",
    "is_pipeline",
    "plan",
    "refuse_knobs",
    "request_runner",
    "sampler_settings",
]
