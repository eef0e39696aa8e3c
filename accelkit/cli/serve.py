"""Serving commands: ``triton-repo``, ``serve``, ``loadtest``. Each parses flags, calls one pipeline, prints the result.

``serve`` is the one long-running command: Ctrl-C and SIGTERM ask it to stop the
server cleanly (one ``stopped`` line), then it exits 130 / 143 like every command.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from accelkit.cli.app import app, emit, handle_errors, progress_status
from accelkit.cli.params import force_option, generator_argument, int_csv, load_options
from accelkit.pipelines.options import LoadOptions
from accelkit.serving.options import (
    DEFAULT_MAX_REQUEST_BYTES,
    MIB,
    InstanceKind,
    LoadtestOptions,
    LoadTool,
    Protocol,
    ServeOptions,
    TritonRepoOptions,
    request_bytes,
)

_SERVER = "Server"
_LOAD = "Load"


def _preferred(values: list[str] | None) -> tuple[int, ...]:
    out: list[int] = []
    for v in values or ():
        out += int_csv(v, "--preferred-batch")
    return tuple(out)


def repo_options(
    name: str | None,
    max_batch: int | None,
    preferred: list[str] | None,
    bench_results: Path | None,
    max_queue_delay_us: int,
    instances: int,
    kind: str,
    threads: int | None,
    force: bool,
) -> TritonRepoOptions:
    """:class:`TritonRepoOptions` from the flags (shared with ``export --triton-repo``)."""
    return TritonRepoOptions(
        name=name,
        max_batch=max_batch,
        preferred_batches=_preferred(preferred),
        bench_results=bench_results,
        max_queue_delay_us=max_queue_delay_us,
        instances=instances,
        kind=kind,
        threads=threads,
        force=force,
    ).validated()


@app.command("triton-repo")
@handle_errors
@load_options(("input", "output_range"), generator_param="model")
def triton_repo(
    model: Path = typer.Argument(
        ..., help="ONNX model (fp32, fp16 or int8 Q/DQ) or TensorRT engine (.plan) to deploy."
    ),
    repository: Path = typer.Argument(
        ...,
        help="Triton model repository folder (created if missing; other models in it are kept).",
    ),
    name: str | None = typer.Option(
        None, "--name", help="Model name = folder under the repository (default: the file's stem)."
    ),
    max_batch: int | None = typer.Option(
        None,
        "--max-batch",
        help="max_batch_size (default: the max of the artifact's batch range, else 64).",
    ),
    preferred_batch: list[str] | None = typer.Option(
        None,
        "--preferred-batch",
        help="Dynamic-batching preferred batch sizes, e.g. 8 or 4,8 (default: the fastest batch of --bench-results, else the batch range's opt).",
    ),
    bench_results: Path | None = typer.Option(
        None,
        "--bench-results",
        help="results.json (or its folder) of accelkit bench: its fastest batch for this backend and precision becomes the preferred batch size.",
    ),
    max_queue_delay_us: int = typer.Option(
        500,
        "--max-queue-delay-us",
        help="How long Triton may hold a request to form a bigger batch, microseconds.",
    ),
    instances: int = typer.Option(1, "--instances", help="Model instances (instance_group count)."),
    kind: InstanceKind = typer.Option(
        InstanceKind.auto.value,
        "--kind",
        help="Instance kind: gpu for engines, cpu for ONNX by default.",
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="ONNX Runtime intra-op threads per instance (config parameter)."
    ),
    force: bool = force_option("an existing model folder"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    *,
    load: LoadOptions,
) -> None:
    """Write a Triton model repository entry (config.pbtxt + model + sidecar) for an ONNX or TensorRT artifact."""
    from accelkit.pipelines.serve import triton_repo as run_repo

    opts = repo_options(
        name,
        max_batch,
        preferred_batch,
        bench_results,
        max_queue_delay_us,
        instances,
        kind,
        threads,
        force,
    )
    emit(run_repo(load, repository, opts), as_json)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, why: dict[str, str]) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (and record which) instead of interrupting; handlers restored after."""

    def handler(signum: int, frame: Any) -> None:
        why["signal"] = signal.Signals(signum).name
        stop.set()

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def ready_line(info: Any) -> str:
    """The ``ready:`` line: the addresses actually bound, the request limits, and where to connect locally."""
    bind = info.bind or {}
    where = (
        f"HTTP {bind.get('http', info.http_url)}, gRPC {bind.get('grpc', info.grpc_url)}, "
        f"metrics http://{bind.get('metrics', info.metrics_url.rsplit('/', 1)[0])}/metrics"
    )
    if info.remote:
        where += f" (from this machine: HTTP {info.http_url}, gRPC {info.grpc_url})"
    limit = (
        f"; requests up to {info.max_request_bytes / MIB:g} MiB" if info.max_request_bytes else ""
    )
    return (
        f"ready: model {info.model!r} ({info.backend} {info.precision} on {info.device}, max batch {info.max_batch}, "
        f"queue delay {info.max_queue_delay_us} us, {info.instances} instance(s)) — {where}{limit}; "
        f"started in {info.startup_seconds:.1f} s; Ctrl-C or SIGTERM stops it"
    )


def _serve_options(
    backend: str | None,
    device: str,
    threads: int | None,
    name: str | None,
    max_batch: int,
    max_queue_delay_us: int,
    preferred: list[str] | None,
    instances: int,
    **kw: Any,
) -> ServeOptions:
    return ServeOptions(
        backend=backend,
        device=device,
        threads=threads,
        name=name,
        max_batch=max_batch,
        max_queue_delay_us=max_queue_delay_us,
        preferred_batches=_preferred(preferred),
        instances=instances,
        **kw,
    ).validated()


@app.command()
@handle_errors
@load_options()
def serve(
    generator: str | None = generator_argument(),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="Runner serving the model: ort, torch, trt, openvino (default: trt for engines, ort for ONNX and torch generators, exported to fp32 ONNX first).",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads per runner instance (default: the runner's)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Model name (default: the generator's stem)."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind (default: this machine only). Any other address (0.0.0.0: every interface) needs --allow-remote.",
        rich_help_panel=_SERVER,
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a --host other machines can reach. Triton's inference API has no authentication: "
        "anyone who reaches the ports can run the model; a warning says so.",
        rich_help_panel=_SERVER,
    ),
    max_request_mb: float = typer.Option(
        DEFAULT_MAX_REQUEST_BYTES / MIB,
        "--max-request-mb",
        help="Largest request accepted, MiB: the HTTP body or gRPC message, and the input tensors its shapes "
        "declare. Checked before anything is allocated; larger requests get a 413 / RESOURCE_EXHAUSTED reply.",
        rich_help_panel=_SERVER,
    ),
    http_port: int = typer.Option(
        8000, "--http-port", help="HTTP port (0: a free one).", rich_help_panel=_SERVER
    ),
    grpc_port: int = typer.Option(
        8001, "--grpc-port", help="gRPC port (0: a free one).", rich_help_panel=_SERVER
    ),
    metrics_port: int = typer.Option(
        8002,
        "--metrics-port",
        help="Prometheus /metrics port (0: a free one).",
        rich_help_panel=_SERVER,
    ),
    max_batch: int = typer.Option(
        32,
        "--max-batch",
        help="Largest batch the dynamic batcher forms (max_batch_size).",
        rich_help_panel=_SERVER,
    ),
    max_queue_delay_us: int = typer.Option(
        500,
        "--max-queue-delay-us",
        help="How long a request may wait to be batched, microseconds.",
        rich_help_panel=_SERVER,
    ),
    preferred_batch: list[str] | None = typer.Option(
        None,
        "--preferred-batch",
        help="Preferred batch sizes, e.g. 8 or 4,8 (default: --max-batch).",
        rich_help_panel=_SERVER,
    ),
    instances: int = typer.Option(
        1,
        "--instances",
        help="Model instances (each its own runner and Triton stub process).",
        rich_help_panel=_SERVER,
    ),
    exit_timeout: int = typer.Option(
        5,
        "--exit-timeout",
        help="Seconds Triton waits for in-flight requests when stopping.",
        rich_help_panel=_SERVER,
    ),
    startup_timeout: float = typer.Option(
        120.0,
        "--startup-timeout",
        help="Seconds to wait for the server and model to be ready.",
        rich_help_panel=_SERVER,
    ),
    *,
    load: LoadOptions,
) -> None:
    """Serve a generator on Triton Inference Server (PyTriton): dynamic batching, HTTP, gRPC, /metrics. Ctrl-C or SIGTERM stops it.

    Every request is checked (model, input names, datatypes, shapes, batch <= --max-batch, size <= --max-request-mb,
    data matching the declared shape) before Triton sees it; a bad request gets a 4xx / gRPC error and the server stays up.
    """
    from accelkit.pipelines.serve import serve as run_serve

    opts = _serve_options(
        backend,
        device,
        threads,
        name,
        max_batch,
        max_queue_delay_us,
        preferred_batch,
        instances,
        host=host,
        allow_remote=allow_remote,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        max_request_bytes=request_bytes(max_request_mb),
        exit_timeout_s=exit_timeout,
        startup_timeout_s=startup_timeout,
    )
    warning = opts.remote_warning()
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    stop = threading.Event()
    why: dict[str, str] = {}
    say: dict[str, Any] = {}

    def ready(info: Any) -> None:
        say["progress"]("serving (Ctrl-C or SIGTERM stops it)")
        typer.echo(ready_line(info))

    with _stop_on_signals(stop, why):
        with progress_status() as progress:
            say["progress"] = progress
            result = run_serve(
                load,
                opts,
                progress,
                on_ready=ready,
                stop=stop,
                stop_reason=lambda: why.get("signal", "stop requested"),
            )
    emit(result)


@app.command()
@handle_errors
@load_options(generator_param="target")
def loadtest(
    target: str = typer.Argument(
        ...,
        help="A running Triton server (host:port, grpc://host:port, http://host:port) or a generator to serve for the test (path or bundled name).",
    ),
    concurrency: str = typer.Option(
        "1,2,4,8,16",
        "--concurrency",
        help="In-flight requests per level, swept in order.",
        rich_help_panel=_LOAD,
    ),
    batch: int = typer.Option(1, "--batch", help="Images per request.", rich_help_panel=_LOAD),
    window: float = typer.Option(
        2.0, "--window", help="Seconds per measurement window.", rich_help_panel=_LOAD
    ),
    windows: int = typer.Option(
        3,
        "--windows",
        help="Measurement windows per level (one images/sec sample each).",
        rich_help_panel=_LOAD,
    ),
    warmup: float = typer.Option(
        0.5,
        "--warmup-time",
        help="Untimed seconds of load before each level (seconds; --warmup counts iterations in bench/optimize).",
        rich_help_panel=_LOAD,
    ),
    max_requests: int = typer.Option(
        100_000,
        "--max-requests",
        help="Requests per window at most (the loop also stops at --window).",
        rich_help_panel=_LOAD,
    ),
    request_timeout: float = typer.Option(
        60.0, "--request-timeout", help="Seconds one request may take.", rich_help_panel=_LOAD
    ),
    protocol: Protocol = typer.Option(
        Protocol.grpc.value, "--protocol", help="Client protocol.", rich_help_panel=_LOAD
    ),
    tool: LoadTool = typer.Option(
        LoadTool.auto.value,
        "--tool",
        help="Load generator: perf_analyzer (when on PATH; auto picks it), else a tritonclient closed loop.",
        rich_help_panel=_LOAD,
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model name on the server (default: its only model).",
        rich_help_panel=_LOAD,
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the request inputs.", rich_help_panel=_LOAD
    ),
    out: Path = typer.Option(
        Path("accelkit-serving"), "--out", help="Report folder: results.json/.md/.csv, serving.png."
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="Generator target: runner serving it (default as for accelkit serve).",
        rich_help_panel=_SERVER,
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="Generator target: CPU threads per runner instance.",
        rich_help_panel=_SERVER,
    ),
    max_batch: int = typer.Option(
        32,
        "--max-batch",
        help="Generator target: max_batch_size of the dynamic batcher.",
        rich_help_panel=_SERVER,
    ),
    max_queue_delay_us: int = typer.Option(
        500,
        "--max-queue-delay-us",
        help="Generator target: batching delay, microseconds.",
        rich_help_panel=_SERVER,
    ),
    preferred_batch: list[str] | None = typer.Option(
        None,
        "--preferred-batch",
        help="Generator target: preferred batch sizes.",
        rich_help_panel=_SERVER,
    ),
    instances: int = typer.Option(
        1, "--instances", help="Generator target: model instances.", rich_help_panel=_SERVER
    ),
    in_process: bool = typer.Option(
        True,
        "--in-process/--no-in-process",
        help="Generator target: also measure the runner in-process at --batch (the served/in-process ratio).",
        rich_help_panel=_SERVER,
    ),
    *,
    load: LoadOptions,
) -> None:
    """Concurrency sweep against a Triton server: images/s, latency p50/p90/p99, server queue vs compute; report + plot."""
    from accelkit.pipelines.serve import _looks_like_url
    from accelkit.pipelines.serve import loadtest as run_loadtest

    opts = LoadtestOptions(
        concurrency=tuple(int_csv(concurrency, "--concurrency")),
        batch_size=batch,
        window_s=window,
        windows=windows,
        warmup_s=warmup,
        max_requests=max_requests,
        request_timeout_s=request_timeout,
        protocol=protocol,
        tool=tool,
        model=model,
        seed=seed,
        out=out,
    ).validated()
    sopts = _serve_options(
        backend, "cpu", threads, None, max_batch, max_queue_delay_us, preferred_batch, instances
    )
    with progress_status() as progress:
        result = run_loadtest(
            target if _looks_like_url(target) else load,
            opts,
            sopts,
            progress,
            in_process=in_process,
        )
    emit(result)
