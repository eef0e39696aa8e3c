"""``triton_repo``, ``serve``, ``loadtest``: from an artifact to a Triton deployment and its numbers under load.

* :func:`triton_repo` writes a Triton model repository (``config.pbtxt`` + model file +
  sidecar) for an ONNX or TensorRT artifact (:mod:`accelkit.serving.repository`).
* :func:`serve` runs a Triton Inference Server (PyTriton) with an accelkit runner as
  the model until asked to stop (:mod:`accelkit.serving.server`).
* :func:`loadtest` sweeps concurrency levels against a server: a URL, or an artifact it
  serves itself in a child process, in which case the same runner is first measured
  in-process at the request batch size so every serving row carries its
  served/in-process ratio (:mod:`accelkit.serving.loadgen`). Rows go into the usual
  report folder with ``scenario: "serving"``.
"""

from __future__ import annotations

import functools
import json
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.benchmark.render import fmt_num
from accelkit.errors import InputError
from accelkit.options import Timing
from accelkit.pipelines.options import LoadOptions, resolve_artifact
from accelkit.pipelines.results import Result
from accelkit.serving.options import (
    LoadtestOptions,
    LoadTool,
    Protocol,
    ServeOptions,
    TritonRepoOptions,
)

Progress = Callable[[str], None]


# ------------------------------------------------------------------ servable build
def choose_backend(artifact: Artifact, backend: str | None) -> str:
    """The runner that serves ``artifact``: the one asked for, else ``trt`` for engines, ``ort`` for
    ONNX and (when ONNX Runtime is installed) torch generators, else ``torch``."""
    if backend:
        return backend
    if artifact.format == "trt":
        return "trt"
    if artifact.format == "onnx":
        return "ort"
    from accelkit.runners.ort_runner import OrtRunner

    return "ort" if OrtRunner.availability("cpu") is None else "torch"


def servable(
    artifact: Artifact, backend: str, workdir: Path, progress: Progress | None = None
) -> Artifact:
    """The artifact ``backend`` runs: a torch generator is exported to a verified fp32 ONNX in ``workdir`` for ``ort``/``openvino``.

    Raises:
        InputError: The backend cannot run this format (e.g. ``trt`` for a torch file).
    """
    if backend in ("ort", "openvino") and artifact.format == "torch":
        from accelkit.passes.export import OnnxFromTorch

        (progress or (lambda m: None))("exporting fp32 ONNX for the server")
        return OnnxFromTorch(workdir / f"{artifact.name}.onnx", force=True, progress=progress)(
            artifact
        )
    if backend == "trt" and artifact.format != "trt":
        raise InputError(
            f"--backend trt serves a TensorRT engine; build one first (accelkit build {artifact.source or 'MODEL.onnx'})"
        )
    if backend == "torch" and artifact.format != "torch":
        raise InputError(
            f"--backend torch serves a torch generator, got {artifact.format}; use --backend ort for ONNX files"
        )
    return artifact


# ------------------------------------------------------------------ triton-repo
@dataclass
class TritonRepoResult(Result):
    """A model written into a Triton model repository."""

    repository: Any

    def to_dict(self) -> dict[str, Any]:
        """Paths, the config text and what checked it."""
        r = self.repository
        return {
            "repository": str(r.repository),
            "model_dir": str(r.model_dir),
            "config": str(r.config_path),
            "model": str(r.model_path),
            "sidecar": str(r.sidecar) if r.sidecar else None,
            "config_text": r.config.to_pbtxt(),
            "checked_with": r.checked_with,
        }

    def to_text(self) -> str:
        """What ``accelkit triton-repo`` prints."""
        r = self.repository
        c = r.config

        def dims(ts):
            return ", ".join(
                f"{t.name} {t.data_type[5:].lower()}[{'x'.join(map(str, t.dims))}]" for t in ts
            )

        check = (
            f"checked with {r.checked_with}"
            if r.checked_with
            else f"not checked: tritonclient is not installed ({'pip install'} 'accelkit[serve]')"
        )
        return "\n".join(
            [
                f"wrote Triton model {c.name!r} into {r.repository}: {r.config_path.relative_to(r.repository)}, {r.model_path.relative_to(r.repository)}"
                + (f", {r.sidecar.name}" if r.sidecar else ""),
                f"platform {c.platform}, max_batch_size {c.max_batch_size}, preferred batch {c.preferred_batch_sizes or 'none'}, "
                f"queue delay {c.max_queue_delay_us} us, {c.instance_count} x {c.instance_kind}; inputs {dims(c.inputs)}; outputs {dims(c.outputs)}",
                f"config.pbtxt {check}",
                f"run it: tritonserver --model-repository {r.repository.resolve()}   (see docs/serving.md)",
            ]
        )


def triton_repo(
    generator: Any,
    repository: str | Path,
    options: TritonRepoOptions | None = None,
    progress: Progress | None = None,
) -> TritonRepoResult:
    """Write a Triton model repository entry for an ONNX or TensorRT artifact.

    Args:
        generator: Path, :class:`LoadOptions` or :class:`Artifact` (ONNX or engine).
        repository: The model repository folder.
        options: :class:`TritonRepoOptions`.
        progress: Called with a short message per step.

    Raises:
        InputError: A torch generator (export it first: ``accelkit export GEN --triton-repo DIR``),
            an existing model folder without ``force``, inputs that do not match the spec.
    """
    from accelkit.loading import require_format
    from accelkit.serving.repository import write_model_repository

    opts = (options or TritonRepoOptions()).validated()
    require_format(
        generator, ("onnx", "trt"), "export it first (accelkit export {source} --triton-repo DIR)"
    )
    (progress or (lambda m: None))("writing the Triton model repository")
    return TritonRepoResult(write_model_repository(resolve_artifact(generator), repository, opts))


# ------------------------------------------------------------------------- serve
#: The exit code of a server stopped by a signal: 128 + the signal's number, as for every command.
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class ServeResult(Result):
    """A server that ran and stopped.

    ``exit_code``: 1 when it stopped because tritonserver died; 130 when Ctrl-C (SIGINT)
    stopped it and 143 for SIGTERM, as for every accelkit command; 0 for a stop asked in code.
    """

    info: dict[str, Any]
    uptime_s: float
    requests: int | None
    stopped_by: str
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """1 when the server died, 130 / 143 when SIGINT / SIGTERM stopped it, else 0."""
        if self.error:
            return 1
        return SIGNAL_EXIT_CODES.get(self.stopped_by, 0)

    def to_dict(self) -> dict[str, Any]:
        """Where it served, for how long, how many requests, why it stopped."""
        return {
            "server": self.info,
            "uptime_s": self.uptime_s,
            "requests": self.requests,
            "stopped_by": self.stopped_by,
            "error": self.error,
        }

    def to_text(self) -> str:
        """The closing line of ``accelkit serve``."""
        if self.error:
            return (
                f"the Triton server stopped unexpectedly after {self.uptime_s:.0f} s: {self.error}"
            )
        n = f", {self.requests} inference requests served" if self.requests is not None else ""
        return f"stopped ({self.stopped_by}) after {self.uptime_s:.0f} s{n}"


def serve(
    generator: Any,
    options: ServeOptions | None = None,
    progress: Progress | None = None,
    *,
    on_ready: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
    stop_reason: Callable[[], str] | None = None,
) -> ServeResult:
    """Serve a generator on Triton until ``stop`` is set (the CLI sets it on Ctrl-C and SIGTERM).

    Args:
        generator: Path, bundled name, :class:`LoadOptions` or :class:`Artifact`.
        options: :class:`ServeOptions`.
        progress: Called with a short message per step.
        on_ready: Called once with the :class:`~accelkit.serving.server.ServerInfo` after the health check.
        stop: Set it to stop the server (None: serve until the server dies).
        stop_reason: What set ``stop``, for the result (e.g. ``SIGTERM``).

    Raises:
        MissingDependencyError: The ``serve`` extra is missing.
        PortInUseError / ServerStartError: See :class:`~accelkit.serving.server.GeneratorServer`.
    """
    from accelkit.serving.deps import require_serve
    from accelkit.serving.loadgen import connect, statistics
    from accelkit.serving.server import GeneratorServer, check_ports

    opts = (options or ServeOptions()).validated()
    say = progress or (lambda m: None)
    # before loading anything (a big generator takes a while): the extra is there, the ports are free
    require_serve("pytriton.triton", "accelkit serve")
    check_ports(opts)
    if opts.backend in ("trt", "torch"):  # the format it needs, before loading anything
        from accelkit.loading import require_format

        require_format(
            generator,
            (opts.backend,),
            "build an engine first (accelkit build MODEL.onnx)"
            if opts.backend == "trt"
            else "--backend torch serves a torch generator; use --backend ort for ONNX files",
        )
    say("loading the generator")
    artifact = resolve_artifact(generator)
    backend = choose_backend(artifact, opts.backend)
    stop = stop or threading.Event()
    with tempfile.TemporaryDirectory(prefix="accelkit-serve-") as tmp:
        make_runner = None
        if artifact.format == "diffusion":
            from accelkit.pipelines.diffusion import request_runner

            art, make_runner = request_runner(artifact, backend, opts.device, Path(tmp), say)
        else:
            art = servable(artifact, backend, Path(tmp), say)
        server = GeneratorServer(
            art,
            backend,
            replace(opts, name=opts.name or artifact.name),
            progress=say,
            make_runner=make_runner,
        )
        info = server.start()
        t0 = time.monotonic()
        error = None
        try:
            if on_ready is not None:
                on_ready(info)
            while not stop.wait(0.5):
                if not server.alive():
                    error = server.failure_reason()
                    break
            requests = None
            if error is None:
                try:
                    client = connect(info.http_url, "http", timeout_s=2.0)
                    stats = statistics(client, info.model)
                    client.close()
                    requests = stats["success_count"] if stats else None
                except Exception:  # noqa: BLE001 - a count for the closing line only
                    requests = None
        finally:
            server.stop()
    return ServeResult(
        info.to_dict(),
        round(time.monotonic() - t0, 1),
        requests if error is None else None,
        (stop_reason() if stop_reason else "stop requested") if error is None else "server exited",
        error,
    )


# ---------------------------------------------------------------------- loadtest
@dataclass
class LoadtestResult(Result):
    """A concurrency sweep written as a report folder.

    ``exit_code`` is 0 (a load test measures; it does not gate).
    """

    report: Any
    levels: list[Any]
    server: dict[str, Any]
    in_process: dict[int, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    preface: str | None = None

    def best(self) -> Any:
        """The level with the highest median images/sec."""
        return max(self.levels, key=lambda lv: lv.images_per_sec)

    def summary(self) -> dict[str, Any]:
        """Best level, served/in-process ratio, per-request overhead at concurrency 1 (ms)."""
        best = self.best()
        ref = self.in_process.get(best.batch_size)
        out: dict[str, Any] = {
            "best_concurrency": best.concurrency,
            "best_images_per_sec": best.images_per_sec,
            "batch_size": best.batch_size,
        }
        if ref:
            out["in_process_images_per_sec"] = ref["images_per_sec"]
            out["served_vs_in_process"] = best.images_per_sec / ref["images_per_sec"]
            c1 = next((lv for lv in self.levels if lv.concurrency == 1), None)
            if c1 is not None and c1.latency_ms.get("p50") is not None:
                out["overhead_ms_at_c1"] = c1.latency_ms["p50"] - ref["latency_ms"]["p50"]
                out["in_process_p50_ms"] = ref["latency_ms"]["p50"]
                out["served_p50_ms_at_c1"] = c1.latency_ms["p50"]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Levels, server, summary, files."""
        return {
            "levels": [lv.to_dict() for lv in self.levels],
            "server": self.server,
            "summary": self.summary(),
            "in_process": {str(k): v for k, v in self.in_process.items()},
            "files": {k: str(v) for k, v in self.files.items()},
        }

    def to_text(self) -> str:
        """The concurrency table, the summary line and the files written."""
        lines = [self.preface.rstrip("\n"), ""] if self.preface else []
        lines += [
            f"Triton load test: model {self.server.get('model')} at {self.server.get('url')} ({self.levels[0].tool}, {self.server.get('protocol')})",
            "",
        ]
        lines.append(
            "| concurrency | images/s | p50 ms | p90 ms | p99 ms | server queue ms | server compute ms | images/batch |"
        )
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for lv in self.levels:
            lat, srv = lv.latency_ms, lv.server_ms or {}
            comp = sum(v for k, v in srv.items() if k.startswith("compute_")) if srv else None
            lines.append(
                f"| {lv.concurrency} | {fmt_num(lv.images_per_sec)} | {fmt_num(lat.get('p50'))} | {fmt_num(lat.get('p90'))} | "
                f"{fmt_num(lat.get('p99'))} | {fmt_num(srv.get('queue'))} | {fmt_num(comp)} | {fmt_num(lv.avg_server_batch)} |"
            )
        s = self.summary()
        lines.append("")
        msg = f"best: concurrency {s['best_concurrency']}, {fmt_num(s['best_images_per_sec'])} images/s at batch {s['batch_size']} per request"
        if "served_vs_in_process" in s:
            msg += f" = {s['served_vs_in_process']:.2f}x the in-process runner ({fmt_num(s['in_process_images_per_sec'])} images/s, same artifact and batch)"
        lines.append(msg)
        if "overhead_ms_at_c1" in s:
            lines.append(
                f"per-request overhead at concurrency 1: {s['overhead_ms_at_c1']:.2f} ms (served p50 {s['served_p50_ms_at_c1']:.2f} ms vs in-process p50 {s['in_process_p50_ms']:.2f} ms)"
            )
        if self.files:
            lines.append("wrote " + ", ".join(str(p) for p in self.files.values()))
        return "\n".join(lines)


def _looks_like_url(target: Any) -> bool:
    if not isinstance(target, str):
        return False
    if target.startswith(("grpc://", "http://", "https://")):
        return True
    host, _, port = target.rpartition(":")
    return bool(host) and port.isdigit() and not Path(target).exists()


def _model_name(client: Any, asked: str | None) -> str:
    """The model to load-test: the one asked for, else the only ready model on the server."""
    if asked:
        return asked
    try:
        index = client.get_model_repository_index()
        names = [
            m["name"] if isinstance(m, dict) else m.name
            for m in (index if isinstance(index, list) else index.models)
        ]
    except Exception:  # noqa: BLE001 - restricted (PyTriton protects it): the statistics of every model name them too
        names = []
    if not names:
        try:
            raw = (
                client.get_inference_statistics(as_json=True)
                if "grpc" in type(client).__module__
                else client.get_inference_statistics()
            )
            raw = json.loads(raw) if isinstance(raw, str) else raw
            names = sorted({m["name"] for m in raw.get("model_stats", raw.get("modelStats", []))})
        except Exception:  # noqa: BLE001 - ask for --model below
            names = []
    if len(names) == 1:
        return str(names[0])
    raise InputError(
        f"name the model to load-test with --model ({'the server has ' + ', '.join(map(str, names)) if names else 'the server does not list its models'})"
    )


def _remote_io(
    client: Any, model: str, protocol: str
) -> tuple[list[Any], Any, dict[str, Any], Any]:
    """Served tensors, output, config facts and a spec of a model on a running server (from its config)."""
    from accelkit.serving.repository import TRITON_TO_NUMPY
    from accelkit.serving.server import ServedTensor
    from accelkit.spec import GeneratorSpec, InputSpec

    try:
        cfg = (
            client.get_model_config(model, as_json=True)
            if protocol == "grpc"
            else client.get_model_config(model)
        )
    except Exception as exc:  # noqa: BLE001
        raise InputError(
            f"the server has no model {model!r} ({' '.join(str(exc).split())[:120]}); check --model"
        ) from None
    cfg = cfg.get("config", cfg)

    def norm(k):
        return (
            k
            if k in cfg
            else "".join(w.capitalize() if i else w for i, w in enumerate(k.split("_")))
        )

    tensors, inputs = [], []
    for t in cfg.get("input", []):
        dtype = TRITON_TO_NUMPY.get(t.get("data_type", t.get("dataType", "TYPE_FP32")), "float32")
        dims = tuple(int(d) for d in t.get("dims", []))
        reshape = t.get("reshape", {}).get("shape") if isinstance(t.get("reshape"), dict) else None
        runner_shape = tuple(int(d) for d in reshape) if reshape is not None else dims
        if -1 in dims:
            raise InputError(
                f"input {t['name']!r} of {model} has dynamic dims {list(dims)}; the load test needs fixed request shapes (use an artifact target)"
            )
        tensors.append(ServedTensor(t["name"], dtype, dims, runner_shape))
        is_label = dtype.startswith("int")
        inputs.append(
            InputSpec(
                t["name"],
                "label" if is_label else ("image" if len(dims) == 3 else "latent"),
                () if is_label else dims,
                "int64" if is_label else "float32",
                2 if is_label else None,
            )
        )
    out = cfg.get("output", [{}])[0]
    out_t = ServedTensor(
        out.get("name", "image"), "float32", tuple(int(d) for d in out.get("dims", [])), ()
    )
    params = cfg.get("parameters", {}) or {}

    def param(key: str) -> str | None:
        value = params.get(key) if isinstance(params, dict) else None
        got = (
            value.get("string_value", value.get("stringValue")) if isinstance(value, dict) else None
        )
        return str(got) if got else None

    prec = param("accelkit_precision") or "unknown"
    facts = {
        # accelkit serve names its runner (ort, torch, ...); a plain Triton model its platform
        "platform": param("accelkit_backend") or cfg.get("platform") or cfg.get("backend"),
        "max_batch": int(cfg.get(norm("max_batch_size"), 0) or 0),
        "precision": prec,
    }
    return tensors, out_t, facts, GeneratorSpec(inputs=tuple(inputs), output_shape=out_t.shape)


def loadtest(
    target: Any,
    options: LoadtestOptions | None = None,
    serve_options: ServeOptions | None = None,
    progress: Progress | None = None,
    *,
    in_process: bool = True,
    report: Any = None,
) -> LoadtestResult:
    """Sweep concurrency levels against a Triton server and write the report folder.

    Args:
        target: A server URL (``host:port``, ``grpc://host:port``) or a generator
            (path, bundled name, :class:`LoadOptions`): then it is served here, in a child
            process on free loopback ports, for the duration of the test.
        options: :class:`LoadtestOptions`.
        serve_options: How to serve a generator target (backend, threads, batching);
            ports are always free loopback ports.
        progress: Called with a short message per step.
        in_process: For a generator target, first measure the same runner in-process at
            the request batch size (the served/in-process ratio).
        report: A :class:`~accelkit.benchmark.report.Report` to add the rows to (``bench --serve``).

    Returns:
        :class:`LoadtestResult` (report files: results.json/.md/.csv, throughput.png, serving.png).

    Raises:
        ServerUnreachableError: Nothing answers at the URL.
        LoadtestError: Requests failed.
        MissingDependencyError: The ``serve`` extra is missing.
    """
    from accelkit.benchmark.report import Report
    from accelkit.serving.deps import require_serve

    opts = (options or LoadtestOptions()).validated()
    say = progress or (lambda m: None)
    require_serve("tritonclient.grpc", "accelkit loadtest")
    rep = report if report is not None else Report()
    if _looks_like_url(target):
        from accelkit.serving.loadgen import connect

        url = str(target)
        client = connect(url, Protocol(opts.protocol).value)
        try:
            model = _model_name(client, opts.model)
            tensors, out_t, facts, spec = _remote_io(client, model, Protocol(opts.protocol).value)
        finally:
            client.close()
        if facts["max_batch"] and opts.batch_size > facts["max_batch"]:
            raise InputError(
                f"--batch {opts.batch_size} exceeds the model's max_batch_size {facts['max_batch']}"
            )
        server = {
            "url": url,
            "model": model,
            "protocol": Protocol(opts.protocol).value,
            "backend": facts["platform"] or "triton",
            "variant": None,
            "precision": facts["precision"],
            "device": "remote",
            "started_here": False,
        }
        levels = _sweep(url, model, tensors, out_t, spec, opts, say)
        artifact = None
    else:
        with tempfile.TemporaryDirectory(prefix="accelkit-loadtest-") as tmp:
            sopts = (serve_options or ServeOptions()).validated()
            say("loading the generator")
            lo = target if isinstance(target, LoadOptions) else None
            artifact = resolve_artifact(target)
            backend = choose_backend(artifact, sopts.backend)
            art = servable(artifact, backend, Path(tmp), say)
            if in_process:
                _measure_in_process(art, backend, sopts, opts, rep, say)
            loader = _loader(art, lo, artifact)
            from accelkit.serving.server import ServerProcess, served_io

            sopts = replace(
                sopts,
                name=sopts.name or artifact.name,
                host="127.0.0.1",
                http_port=0,
                grpc_port=0,
                metrics_port=0,
            )
            say(f"starting Triton ({backend}) in a child process")
            with ServerProcess(loader, backend, sopts) as proc:
                assert proc.info is not None
                info = proc.info
                url = info.grpc_url if Protocol(opts.protocol) == Protocol.grpc else info.http_url
                tensors, out_t = served_io(art)
                server = {
                    "url": url,
                    "model": info.model,
                    "protocol": Protocol(opts.protocol).value,
                    "backend": backend,
                    "variant": None,
                    "precision": info.precision,
                    "device": info.device,
                    "started_here": True,
                    **info.to_dict(),
                }
                levels = _sweep(url, info.model, tensors, out_t, art.spec, opts, say)
    ip = in_process_refs(rep, server)
    _add_rows(rep, levels, server, opts, ip, artifact)
    rep.settings.setdefault(
        "serving",
        {
            k: server.get(k)
            for k in (
                "url",
                "model",
                "protocol",
                "backend",
                "max_batch",
                "max_queue_delay_us",
                "preferred_batches",
                "instances",
            )
        },
    )
    rep.settings["serving"].update(
        {
            "tool": levels[0].tool,
            "window_s": opts.window_s,
            "windows": opts.windows,
            "warmup_s": opts.warmup_s,
            "seed": opts.seed,
        }
    )
    files = rep.write(opts.out) if report is None else {}
    return LoadtestResult(rep, levels, server, ip, files)


def _loader(art: Artifact, lo: LoadOptions | None, original: Artifact) -> Callable[[], Artifact]:
    """A picklable way for the server's child process to load what it serves."""
    from accelkit.loading import load_generator

    if art.format in ("onnx", "trt") and art.path is not None:
        return functools.partial(load_generator, str(art.path))
    if lo is not None:
        return lo.load
    if original.source:
        return functools.partial(load_generator, str(original.source))
    raise InputError(
        "an in-memory torch generator cannot be served in a child process; save it first or pass its path"
    )


def in_process_refs(rep: Any, server: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Batch size -> the report's in-process numbers of the runner the server used (same backend, precision, device; no variant)."""
    out: dict[int, dict[str, Any]] = {}
    for r in rep.rows:
        if (
            r.scenario == "in_process"
            and r.status == "ok"
            and r.images_per_sec
            and not r.variant
            and r.backend == server.get("backend")
            and r.precision == server.get("precision")
            and r.device == server.get("device")
        ):
            out[r.batch_size] = {
                "images_per_sec": r.images_per_sec,
                "latency_ms": dict(r.latency_ms or {}),
                "samples": list(r.images_per_sec_samples),
            }
    return out


def _measure_in_process(
    art: Artifact, backend: str, sopts: ServeOptions, opts: LoadtestOptions, rep: Any, say: Progress
) -> None:
    """The same runner measured in-process at the request batch size (the ratio's denominator); adds its row."""
    from accelkit.benchmark.harness import measure_throughput
    from accelkit.runners.base import create_runner
    from accelkit.sampler import LatentSampler

    say(f"in-process {backend} at batch {opts.batch_size}")
    ropts: dict[str, Any] = {"threads": sopts.threads} if sopts.threads else {}
    with create_runner(backend, art, device=sopts.device, **ropts) as runner:
        lat = measure_throughput(
            runner,
            LatentSampler(art.spec, opts.seed, opts.batch_size),
            warmup=Timing().warmup,
            repeats=max(3, opts.windows),
            min_time_s=min(opts.window_s, 1.0),
        )
        rep.add_result(runner.describe(), lat, artifact=art)


def _sweep(
    url: str,
    model: str,
    tensors: list[Any],
    out_t: Any,
    spec: Any,
    opts: LoadtestOptions,
    say: Progress,
) -> list[Any]:
    """Every concurrency level with the chosen tool."""
    from accelkit.sampler import LatentSampler
    from accelkit.serving.errors import LoadtestError
    from accelkit.serving.loadgen import closed_loop, perf_analyzer_level, perf_analyzer_path

    sampler = LatentSampler(spec, opts.seed, opts.batch_size)
    tool = LoadTool(opts.tool)
    pa = perf_analyzer_path() if tool in (LoadTool.auto, LoadTool.perf_analyzer) else None
    if tool == LoadTool.perf_analyzer and pa is None:
        raise LoadtestError(
            "--tool perf_analyzer: no perf_analyzer binary on PATH (the PyPI placeholder 0.1.0 has none); use the Triton SDK container, or --tool tritonclient"
        )
    levels = []
    proto = Protocol(opts.protocol).value
    for c in opts.concurrency:
        say(f"concurrency {c}: {opts.windows} x {opts.window_s:g} s")
        if pa is not None:
            feeds = [
                sampler.inputs(k * opts.batch_size, opts.batch_size) for k in range(max(16, c))
            ]
            levels.append(
                perf_analyzer_level(
                    pa,
                    url,
                    proto,
                    model,
                    tensors,
                    feeds,
                    c,
                    opts.batch_size,
                    window_s=opts.window_s,
                    windows=opts.windows,
                )
            )
        else:
            levels.append(
                closed_loop(
                    url,
                    proto,
                    model,
                    tensors,
                    out_t.name,
                    lambda k: sampler.inputs(k * opts.batch_size, opts.batch_size),
                    c,
                    opts.batch_size,
                    window_s=opts.window_s,
                    windows=opts.windows,
                    warmup_s=opts.warmup_s,
                    max_requests=opts.max_requests,
                    request_timeout_s=opts.request_timeout_s,
                )
            )
    return levels


def _add_rows(
    rep: Any,
    levels: list[Any],
    server: dict[str, Any],
    opts: LoadtestOptions,
    ip: dict[int, dict[str, Any]],
    artifact: Artifact | None,
) -> None:
    """One ``serving`` row per level."""
    from accelkit.benchmark.report import BenchRow
    from accelkit.stats import quantile

    art_id = (
        rep.add_artifact(artifact) if artifact is not None and artifact.path is not None else None
    )
    for lv in levels:
        s = lv.images_per_sec_samples
        p25, p75 = quantile(s, 0.25), quantile(s, 0.75)
        ref = ip.get(lv.batch_size)
        extra: dict[str, Any] = {
            "tool": lv.tool,
            "requests_per_window": lv.requests_per_window,
            "window_s": lv.window_s,
            "server_requests": lv.server_requests,
            "server_executions": lv.server_executions,
            "avg_server_batch": lv.avg_server_batch,
            **{k: v for k, v in lv.extra.items() if k != "latency_ms"},
        }
        if ref:
            extra["vs_in_process"] = lv.images_per_sec / ref["images_per_sec"]
            extra["in_process_images_per_sec"] = ref["images_per_sec"]
        lat = lv.latency_ms
        rep.add_row(
            BenchRow(
                backend=str(server.get("backend")),
                precision=str(server.get("precision") or "unknown"),
                batch_size=lv.batch_size,
                device=str(server.get("device") or "cpu"),
                variant=server.get("variant"),
                images_per_sec=lv.images_per_sec,
                images_per_sec_samples=list(s),
                images_per_sec_spread={
                    "p25": p25,
                    "p75": p75,
                    "iqr": p75 - p25,
                    "min": float(min(s)),
                    "max": float(max(s)),
                },
                latency_ms={k: lat[k] for k in ("p50", "p90", "p99", "mean") if k in lat} or None,
                iters_per_repeat=list(lv.requests_per_window),
                warmup=None,
                timer="perf_counter",
                artifact=art_id,
                scenario="serving",
                concurrency=lv.concurrency,
                server_latency_ms=lv.server_ms,
                runner={
                    k: server.get(k)
                    for k in (
                        "url",
                        "model",
                        "protocol",
                        "backend",
                        "max_batch",
                        "max_queue_delay_us",
                        "preferred_batches",
                        "instances",
                        "runner",
                    )
                    if k in server
                },
                extra=extra,
            )
        )


def bench_serve(
    generator: Any,
    bench_options: Any,
    loadtest_options: LoadtestOptions | None = None,
    serve_options: ServeOptions | None = None,
    progress: Progress | None = None,
) -> LoadtestResult:
    """``accelkit bench --serve``: the in-process benchmark, then the same build served on Triton under a concurrency sweep, one report.

    The serving rows' ``vs_in_process`` ratio uses the bench's own rows of the served
    runner at the request batch size. The report folder is ``bench_options.out``.
    """
    from accelkit.pipelines.bench import bench as run_bench

    say = progress or (lambda m: None)
    load = (
        generator
        if isinstance(generator, (LoadOptions, Artifact))
        else LoadOptions(generator=None if generator is None else str(generator))
    )
    if not isinstance(load, Artifact):
        from accelkit.loading import require_format

        if require_format(load, ("torch", "onnx", "trt", "diffusion"), "{source}") == "diffusion":
            raise InputError(
                "bench --serve does not load-test diffusion pipelines yet; run accelkit serve PIPELINE and "
                "accelkit loadtest URL"
            )
    res = run_bench(load, bench_options, progress)
    preface = (
        res.report.to_markdown()
    )  # the in-process table, before the serving rows join the report
    lt = replace(loadtest_options or LoadtestOptions(), out=Path(bench_options.out))
    sopts = serve_options or ServeOptions()
    if sopts.backend is None and bench_options.backends:
        sopts = replace(
            sopts,
            backend=[b for b in bench_options.backends if b != "torch"][0]
            if any(b != "torch" for b in bench_options.backends)
            else "torch",
        )
    if sopts.threads is None and bench_options.threads.count:
        sopts = replace(sopts, threads=bench_options.threads.count)
    result = loadtest(load, lt, sopts, say, in_process=False, report=res.report)
    result.files = {
        **res.files,
        **res.report.write(Path(bench_options.out), plot=bench_options.plot),
    }
    result.preface = preface
    return result


__all__ = [
    "LoadtestResult",
    "ServeResult",
    "TritonRepoResult",
    "bench_serve",
    "choose_backend",
    "in_process_refs",
    "loadtest",
    "serve",
    "servable",
    "triton_repo",
]
