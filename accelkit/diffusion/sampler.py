"""The sampling loop as a :class:`~accelkit.runners.base.Runner` over per-component runners.

:class:`DiffusionRunner` makes a whole diffusion pipeline look like a one-pass generator
to the harness: ``prepare`` places the initial noise (and labels / prompt embeddings) on
the device once; ``run`` executes every denoising step and the decode and leaves the
finished images on the device; ``synchronize`` and ``to_numpy`` behave as for any runner.
Images per second therefore count finished images (all steps plus decode).

The loop runs in the host process, as diffusers' pipelines do::

    x = noise * init_noise_sigma
    for t in timesteps:
        inp = scale_model_input(x, t)                      # Euler scales, DDIM does not
        eps = denoiser(cat([inp, inp]), t, cat([c, c0]))   # guidance: one batched call
        eps = eps0 + g * (eps_c - eps0)
        x = scheduler.step(eps, t, x).prev_sample
    image = decoder(x) if latent else x;  clamp to [-1, 1]

The denoiser and decoder are called through their own runners (torch, ort, openvino, trt),
so a component is accelerated exactly as a one-pass generator is. With the torch runner
the loop keeps tensors on the runner's device between steps (the prepared input buffers
are refilled in place: no host copies, CUDA graphs stay valid); with other runners each
call goes through the runner's public ``prepare``/``run``/``to_numpy`` (a host round trip
per step, which on the CPU is a memory copy of the sample).

Stochastic schedulers (DDPM, DDIM with eta > 0) draw their per-step noise from one
``torch.Generator`` per sample seeded by a hash of that sample's initial noise, so the
output stays a pure function of the inputs: every backend, batch size and repeat draws
the same noise for the same sample.

Time is recorded per part (denoiser, scheduler, decoder) for every run; see
:class:`SampleTiming`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from accelkit.artifact import Artifact
from accelkit.diffusion import schedulers as sch
from accelkit.diffusion.cache import (
    CachedDenoiser,
    CachePolicy,
    CacheSpec,
    cached_denoiser,
    make_policy,
)
from accelkit.diffusion.model import LABEL, NOISE, PROMPT, DiffusionModel, SamplerSettings, Sampling
from accelkit.errors import InputError
from accelkit.runners.base import Runner, create_runner


@dataclass
class SampleTiming:
    """Where the time of sampling went, summed over the runs since the last reset.

    Attributes:
        runs: Completed ``run`` calls.
        images: Images finished (batch size summed over runs).
        steps: Denoising steps (denoiser calls) per run, as the scheduler ran them (PNDM
            runs one more than asked).
        denoiser_s: Seconds in denoiser calls (including their host<->device copies).
        scheduler_s: Seconds in the scheduler (``scale_model_input``, ``step``, guidance mix,
            setting timesteps).
        decoder_s: Seconds in the decoder (0 for pixel models).
        denoiser_calls: Denoiser calls (one per step: guidance is batched into the same call).
    """

    runs: int = 0
    images: int = 0
    steps: int = 0
    denoiser_s: float = 0.0
    scheduler_s: float = 0.0
    decoder_s: float = 0.0
    denoiser_calls: int = 0

    @property
    def total_s(self) -> float:
        """Seconds in the three parts."""
        return self.denoiser_s + self.scheduler_s + self.decoder_s

    def ms_per_step(self) -> float | None:
        """Milliseconds per denoising step of one run (denoiser + scheduler), None before a run."""
        if not self.runs or not self.steps:
            return None
        return 1e3 * (self.denoiser_s + self.scheduler_s) / (self.runs * self.steps)

    def shares(self) -> dict[str, float] | None:
        """Fraction of the time in each part, None before a run."""
        total = self.total_s
        if total <= 0:
            return None
        return {
            "denoiser": self.denoiser_s / total,
            "scheduler": self.scheduler_s / total,
            "decoder": self.decoder_s / total,
        }

    def to_dict(self) -> dict[str, Any]:
        """Row fields: totals, ms per step and shares."""
        shares = self.shares()
        ms = self.ms_per_step()
        return {
            "runs": self.runs,
            "images": self.images,
            "steps": self.steps,
            "denoiser_calls": self.denoiser_calls,
            "denoiser_s": round(self.denoiser_s, 6),
            "scheduler_s": round(self.scheduler_s, 6),
            "decoder_s": round(self.decoder_s, 6),
            "ms_per_step": None if ms is None else round(ms, 4),
            "share": None if shares is None else {k: round(v, 4) for k, v in shares.items()},
        }


def noise_seed(noise: np.ndarray) -> int:
    """A 63-bit seed from one sample's initial noise (its float32 bytes), for per-step noise."""
    digest = hashlib.sha256(np.ascontiguousarray(noise, dtype=np.float32).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class _Call:
    """Calls one component runner with torch tensors on the loop's device."""

    def __init__(self, runner: Runner, device: Any) -> None:
        self.runner = runner
        self.device = device
        self.on_device = False

    def __call__(self, feeds: dict[str, Any]) -> Any:
        import torch

        np_feeds = {k: v.detach().cpu().numpy() for k, v in feeds.items()}
        out = self.runner.run(self.runner.prepare(np_feeds))
        self.runner.synchronize()
        return torch.from_numpy(self.runner.to_numpy(out)).to(self.device)


class _TorchCall(_Call):
    """The torch runner: prepared input tensors are refilled in place, outputs stay on the device."""

    def __init__(self, runner: Runner, device: Any) -> None:
        super().__init__(runner, device)
        self.on_device = True
        self._prepared: dict[tuple[tuple[int, ...], ...], Any] = {}

    def __call__(self, feeds: dict[str, Any]) -> Any:
        key = tuple(tuple(v.shape) for v in feeds.values())
        prepared = self._prepared.get(key)
        if prepared is None:
            zeros = {
                k: np.zeros(
                    tuple(v.shape), dtype=np.int64 if not v.is_floating_point() else np.float32
                )
                for k, v in feeds.items()
            }
            prepared = self.runner.prepare(zeros)
            self._prepared[key] = prepared
        args = getattr(prepared, "args", None)
        if args is None:  # not the torch runner's prepared batch: the public path
            return super().__call__(feeds)
        for dst, name in zip(args, self.runner.spec.input_names):
            dst.copy_(feeds[name])
        out = self.runner.run(prepared)
        if getattr(prepared, "graph", None) is not None:
            out = out.clone()  # a CUDA graph's static output is overwritten by the next replay
        return out.float()


def _call_for(runner: Runner, device: Any) -> _Call:
    if runner.name == "torch":
        return _TorchCall(runner, device)
    return _Call(runner, device)


@dataclass
class _Prepared:
    """A batch of initial noise (and labels / prompt embeddings) on the loop's device."""

    batch_size: int
    noise: Any
    labels: Any = None
    prompt: Any = None
    seeds: list[int] = field(default_factory=list)


class DiffusionRunner(Runner):
    """A diffusion pipeline as one generator: the sampling loop over component runners.

    Args:
        model: The loaded pipeline (its spec is this runner's spec).
        denoiser: Runner of the denoiser (any backend; its artifact's spec is the denoiser's).
        decoder: Runner of the VAE decoder; required for latent models, None for pixel ones.
        settings: Sampler settings (scheduler, steps, guidance, eta).
        device: Where the loop's tensors live (``cpu`` or ``cuda[:N]``); the torch
            component runners should use the same device.
        cache: Step caching (:mod:`accelkit.diffusion.cache`): then ``denoiser`` is the
            runner of the cache's main part and the policy holds the second part's runner.

    Raises:
        InputError: A decoder missing for a latent model (or given for a pixel one), a
            guidance the model cannot run, or components of another model.
    """

    name: ClassVar[str] = "diffusion"
    OPTIONS = ()

    def __init__(
        self,
        model: DiffusionModel,
        denoiser: Runner,
        decoder: Runner | None = None,
        settings: SamplerSettings | None = None,
        device: str = "cpu",
        cache: CachePolicy | None = None,
    ) -> None:
        super().__init__(model.pipeline_artifact(), device=device)
        self.model = model
        self.sampling: Sampling = model.sampling(settings)
        if (decoder is None) != (model.decoder is None):
            raise InputError(
                "this model "
                + (
                    "needs a decoder runner (it samples VAE latents)"
                    if model.decoder
                    else "has no decoder"
                )
            )
        want = (model.denoiser if cache is None else cache.cached.main).spec.input_names
        if denoiser.spec.input_names != want:
            raise InputError(
                f"the denoiser runner takes {denoiser.spec.input_names}, this model's denoiser "
                f"{want}; give the runner of this model's denoiser"
            )
        #: The step cache (None: every step calls ``denoiser``).
        self.cache = cache
        self.denoiser = denoiser
        self.decoder = decoder
        #: Timing of the runs at the batch size prepared last (a new batch size starts a new one).
        self.timing = SampleTiming()
        self._timing_batch = 0
        self._scheduler: Any = None
        self._calls: dict[str, _Call] = {}
        self._owned: list[Runner] = []
        self._cond: Any = None
        self._neg: Any = None
        self._step_io: dict[str, str] = {}
        #: Optional observers of component inputs, by component (``denoiser``, ``decoder``):
        #: called with the feeds (torch tensors on the loop's device) before each call;
        #: the trajectory calibration collector uses them. Not timed apart from the part.
        self.taps: dict[str, Callable[[dict[str, Any]], None]] = {}

    # ------------------------------------------------------------------- identity
    @property
    def backend(self) -> str:
        """The denoiser's backend name (what a row's backend column shows)."""
        return self.denoiser.name

    @property
    def precision(self) -> str:
        """The denoiser's precision (per-component precisions are in :meth:`describe`)."""
        return self.denoiser.precision

    def component_precisions(self) -> dict[str, str]:
        """``{"denoiser": ..., "decoder": ...}``: the per-component choice, as recorded."""
        out = {"denoiser": self.denoiser.precision}
        if self.decoder is not None:
            out["decoder"] = self.decoder.precision
        return out

    # ------------------------------------------------------------------ lifecycle
    def _activate_impl(self) -> None:
        import torch

        for r in (self.denoiser, self.decoder):
            if r is not None and not r.active:
                r.activate()
                self._owned.append(r)
        dev = torch.device(self.device)
        self._calls = {"denoiser": _call_for(self.denoiser, dev)}
        if self.decoder is not None:
            self._calls["decoder"] = _call_for(self.decoder, dev)
        self._step_io = {k: ("device" if c.on_device else "host") for k, c in self._calls.items()}
        if self.cache is not None:
            self.cache.activate(self._calls["denoiser"], lambda r: _call_for(r, dev))
        self._scheduler = self.sampling.build()
        if self.model.negative_condition is not None:
            self._neg = torch.from_numpy(self.model.negative_condition).to(dev)
        if self.model.condition is not None:
            self._cond = torch.from_numpy(self.model.condition).to(dev)

    def _deactivate_impl(self) -> None:
        if self.cache is not None:
            self.cache.deactivate()
        for r in reversed(self._owned):
            r.deactivate()
        self._owned.clear()
        self._calls.clear()
        self._scheduler = None

    def reset_timing(self) -> SampleTiming:
        """Return the timing so far and start a new one."""
        done, self.timing = self.timing, SampleTiming()
        return done

    # -------------------------------------------------------------------- running
    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> _Prepared:
        import torch

        dev = torch.device(self.device)
        noise = np.ascontiguousarray(inputs[NOISE], dtype=np.float32)
        prep = _Prepared(batch_size=int(noise.shape[0]), noise=torch.from_numpy(noise).to(dev))
        if prep.batch_size != self._timing_batch:
            self.timing = (
                SampleTiming()
            )  # a new batch size: its own timing (one row per batch size)
            self._timing_batch = prep.batch_size
        if LABEL in inputs:
            labels = np.asarray(inputs[LABEL], dtype=np.int64)
            n = self.model.spec.num_classes or 0
            if labels.size and (labels.min() < 0 or labels.max() >= n):
                raise InputError(f"labels must be in [0, {n}), got {labels.min()}..{labels.max()}")
            prep.labels = torch.from_numpy(labels).to(dev)
        if PROMPT in inputs:
            prep.prompt = torch.from_numpy(
                np.ascontiguousarray(inputs[PROMPT], dtype=np.float32)
            ).to(dev)
        if sch.accepts(self._scheduler, "generator"):
            prep.seeds = [noise_seed(n) for n in noise]
        return prep

    def _generators(self, prep: _Prepared) -> list[Any] | None:
        """One CPU generator per sample for the scheduler's per-step noise (see :func:`noise_seed`)."""
        import torch

        if not prep.seeds:
            return None
        return [torch.Generator().manual_seed(s) for s in prep.seeds]

    def _condition(self, prep: _Prepared) -> tuple[str, Any, Any] | None:
        """``(input name, conditional batch, unconditional batch)`` for the denoiser, or None."""
        import torch

        n = prep.batch_size
        if prep.labels is not None:
            null = self.model.null_class
            uncond = None if null is None else torch.full_like(prep.labels, int(null))
            return "class_labels", prep.labels, uncond
        if self.model.conditioning == "text":
            cond = prep.prompt if prep.prompt is not None else self._cond.expand(n, -1, -1)
            return "encoder_hidden_states", cond, self._neg.expand(n, -1, -1)
        return None

    def _run_impl(self, prepared: _Prepared) -> Any:
        import torch

        s = self.sampling
        sched = self._scheduler
        dev = torch.device(self.device)
        den = self._calls["denoiser"]
        sync = self._sync if self.device.startswith("cuda") else None
        n = prepared.batch_size
        t0 = time.perf_counter()
        sched.set_timesteps(s.steps, device=dev)
        generators = self._generators(prepared)
        kwargs: dict[str, Any] = {}
        if generators is not None:
            kwargs["generator"] = generators
        if sch.accepts(sched, "eta") and s.eta:
            kwargs["eta"] = s.eta
        cond = self._condition(prepared)
        cond_in = None
        if cond is not None:
            name, c, c0 = cond
            cond_in = (name, torch.cat([c, c0]) if s.cfg else c)
        x = prepared.noise * float(sched.init_noise_sigma)
        cache = self.cache
        if cache is not None:
            cache.start(n)
            calls0 = cache.stats.full_calls + cache.stats.partial_calls
        t_den = t_sched = 0.0
        t1 = time.perf_counter()
        t_sched += t1 - t0
        with torch.inference_mode():
            for i, t in enumerate(sched.timesteps):
                ta = time.perf_counter()
                inp = sched.scale_model_input(x, t)
                if s.cfg:
                    inp = torch.cat([inp, inp])
                feeds = {
                    "sample": inp,
                    "timestep": t.to(device=dev, dtype=torch.float32)
                    .reshape(1)
                    .expand(inp.shape[0]),
                }
                if cond_in is not None:
                    feeds[cond_in[0]] = cond_in[1]
                if "denoiser" in self.taps:
                    self.taps["denoiser"](feeds)
                if sync is not None:
                    sync()
                tb = time.perf_counter()
                eps = den(feeds) if cache is None else cache.step(i, feeds)
                if sync is not None:
                    sync()
                tc = time.perf_counter()
                if s.cfg:
                    eps_c, eps_u = eps[:n], eps[n:]
                    eps = eps_u + s.guidance * (eps_c - eps_u)
                x = sched.step(eps, t, x, **kwargs).prev_sample
                td = time.perf_counter()
                t_den += tc - tb
                t_sched += (tb - ta) + (td - tc)
            t_dec = 0.0
            if "decoder" in self._calls:
                if sync is not None:
                    sync()
                te = time.perf_counter()
                if "decoder" in self.taps:
                    self.taps["decoder"]({"latent": x})
                x = self._calls["decoder"]({"latent": x})
                if sync is not None:
                    sync()
                t_dec = time.perf_counter() - te
            out = x.clamp(-1.0, 1.0)
        iters = len(sched.timesteps)  # PNDM runs one more than asked
        tm = self.timing
        tm.runs += 1
        tm.images += n
        tm.steps = iters
        tm.denoiser_s += t_den
        tm.scheduler_s += t_sched
        tm.decoder_s += t_dec
        tm.denoiser_calls += (
            iters if cache is None else cache.stats.full_calls + cache.stats.partial_calls - calls0
        )
        return out

    def _sync(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)

    def _synchronize_impl(self) -> None:
        if self.device.startswith("cuda"):
            self._sync()

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        return output.detach().to("cpu").float().numpy()  # type: ignore[no-any-return]

    # --------------------------------------------------------------------- report
    def describe(self) -> dict[str, Any]:
        """Backend (the denoiser's), per-component runners and precisions, the sampler and its timing."""
        d: dict[str, Any] = {
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "kind": "diffusion",
            "sampler": self.sampling.to_dict(),
            "component_precisions": self.component_precisions(),
            "components": {"denoiser": self.denoiser.describe()},
            "step_io": dict(self._step_io),
            "timing": self.timing.to_dict(),
        }
        if self.decoder is not None:
            d["components"]["decoder"] = self.decoder.describe()
        d["cache"] = "none" if self.cache is None else self.cache.spec.canonical()
        if self.cache is not None:
            d["cache_detail"] = self.cache.describe()
        return d


def create_diffusion_runner(
    model: DiffusionModel,
    backend: str = "torch",
    *,
    settings: SamplerSettings | None = None,
    device: str = "cpu",
    denoiser: Artifact | None = None,
    decoder: Artifact | None = None,
    decoder_backend: str | None = None,
    options: dict[str, Any] | None = None,
    decoder_options: dict[str, Any] | None = None,
    cache: CacheSpec | str | None = None,
    cached: CachedDenoiser | None = None,
) -> DiffusionRunner:
    """A :class:`DiffusionRunner` whose components run on registered backends.

    Args:
        model: The loaded pipeline.
        backend: Backend of the denoiser (``torch``, ``ort``, ``openvino``, ``trt``).
        settings: Sampler settings.
        device: Device of the loop and the component runners.
        denoiser: The denoiser artifact to run (default: the model's torch denoiser; give
            the exported ONNX file's artifact for ``ort``/``openvino``).
        decoder: The decoder artifact (default: the model's torch decoder).
        decoder_backend: Backend of the decoder (default: ``backend`` when ``decoder`` is
            given, else ``torch``).
        options: Runner options of the denoiser (``threads``, ``precision``...).
        decoder_options: Runner options of the decoder (default: ``options``).
        cache: Step caching, ``none`` | ``deepcache:N[:depth]`` | ``fbcache:T`` or a
            :class:`~accelkit.diffusion.cache.CacheSpec` (default: none).
        cached: The cache's two partial denoisers to run (default: the torch modules;
            give their exports, :func:`accelkit.passes.cache_export.export_cached`, for
            ``ort``/``openvino``/``trt``). Both parts run on ``backend`` with ``options``.

    Raises:
        InputError / BackendUnavailableError: As :func:`~accelkit.runners.base.create_runner`;
            a cache that does not apply to the model; ``denoiser`` and a cache together;
            a non-torch backend without the exported parts.
    """
    opts = dict(options or {})
    spec = CacheSpec.parse(cached.spec if cached is not None else cache)
    policy = None
    if spec.enabled:
        if cached is not None and cache is not None and CacheSpec.parse(cache) != cached.spec:
            raise InputError(f"cache {cache} differs from the exported parts' {cached.spec}")
        if denoiser is not None:
            raise InputError(
                "give either a denoiser artifact or a cache (whose parts replace the denoiser)"
            )
        if cached is None:
            cached = cached_denoiser(model, spec)
        if cached.main.format == "torch" and backend != "torch":
            raise InputError(
                f"--cache {spec} on {backend}: export the cache's partial graphs first "
                "(accelkit.passes.cache_export.export_cached) and pass them as cached="
            )
        den = create_runner(backend, cached.main, device, **opts)
        policy = make_policy(cached, create_runner(backend, cached.second, device, **opts))
    else:
        den = create_runner(backend, denoiser or model.denoiser, device, **opts)
    dec = None
    if model.decoder is not None:
        dec_art = decoder or model.decoder
        dec_backend = decoder_backend or (backend if decoder is not None else "torch")
        dec_opts = dict(decoder_options if decoder_options is not None else opts)
        if dec_backend == "torch" and dec_art.format == "torch":
            dec_opts = {k: v for k, v in dec_opts.items() if k in ("threads", "precision")}
        dec = create_runner(dec_backend, dec_art, device, **dec_opts)
    if policy is not None:
        return DiffusionRunner(model, den, dec, settings=settings, device=device, cache=policy)
    return DiffusionRunner(model, den, dec, settings=settings, device=device)


#: Name of the request input that replaces the initial noise when serving.
SEED = "seed"
#: Largest request seed (seeds are drawn from ``[0, 2**31)``).
SEED_LIMIT = 2**31


def noise_from_seed(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The initial noise of one served image: standard normal float32 from ``numpy``'s
    ``default_rng(seed)`` (the same seed gives the same image on every backend)."""
    return np.random.default_rng(int(seed)).standard_normal(shape).astype(np.float32)


def request_spec(model: DiffusionModel) -> Any:
    """The served spec: a ``seed`` (int64) instead of the noise, plus the label (or prompt
    embeddings) as in :attr:`DiffusionModel.spec`."""
    from dataclasses import replace as _replace

    from accelkit.spec import InputSpec

    rest = tuple(i for i in model.spec.inputs if i.name != NOISE)
    return _replace(model.spec, inputs=(InputSpec(SEED, "label", (), "int64", SEED_LIMIT), *rest))


class SeededDiffusionRunner(Runner):
    """A :class:`DiffusionRunner` that takes a request's ``seed`` instead of its noise.

    What ``accelkit serve`` runs for a diffusion pipeline: a request is ``(seed, label)``
    (or ``(seed, prompt_embeds)``) and the answer is the finished image. The noise is
    :func:`noise_from_seed`, so a seed names one image.

    Args:
        inner: The sampling loop (any backend).
    """

    name: ClassVar[str] = "diffusion"
    OPTIONS = ()

    def __init__(self, inner: DiffusionRunner) -> None:
        art = inner.artifact.derive(spec=request_spec(inner.model))
        super().__init__(art, device=inner.device)
        self.inner = inner
        self.noise_shape = tuple(inner.model.spec.inputs[0].shape)

    @property
    def backend(self) -> str:
        """The denoiser's backend."""
        return self.inner.backend

    @property
    def precision(self) -> str:
        """The denoiser's precision."""
        return self.inner.precision

    def _activate_impl(self) -> None:
        self.inner.activate()

    def _deactivate_impl(self) -> None:
        self.inner.deactivate()

    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> Any:
        seeds = np.asarray(inputs[SEED], dtype=np.int64).reshape(-1)
        if seeds.size and (seeds.min() < 0 or seeds.max() >= SEED_LIMIT):
            raise InputError(
                f"seeds must be in [0, {SEED_LIMIT}), got {seeds.min()}..{seeds.max()}"
            )
        feeds = {k: v for k, v in inputs.items() if k != SEED}
        if LABEL in feeds:
            feeds[LABEL] = np.asarray(feeds[LABEL], dtype=np.int64).reshape(-1)
        feeds[NOISE] = np.stack([noise_from_seed(int(x), self.noise_shape) for x in seeds])
        return self.inner.prepare(feeds)

    def _run_impl(self, prepared: Any) -> Any:
        return self.inner.run(prepared)

    def _synchronize_impl(self) -> None:
        self.inner.synchronize()

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        return self.inner.to_numpy(output)

    def describe(self) -> dict[str, Any]:
        """The sampling loop's record, with the request form."""
        return {
            **self.inner.describe(),
            "request": "seed + "
            + ", ".join(i.name for i in self.artifact.spec.inputs if i.name != SEED)
            if len(self.artifact.spec.inputs) > 1
            else "seed",
        }


__all__ = [
    "SEED",
    "DiffusionRunner",
    "SampleTiming",
    "SeededDiffusionRunner",
    "create_diffusion_runner",
    "noise_from_seed",
    "noise_seed",
    "request_spec",
]
