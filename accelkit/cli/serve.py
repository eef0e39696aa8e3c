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
from accelkit.cli.params import bind, generator_argument, load_options
from accelkit.pipelines.options import LoadOptions
from accelkit.serving.options import (
    MIB,
    LoadtestOptions,
    ServeOptions,
    TritonRepoOptions,
)

_SERVER = "Server"
_LOAD = "Load"


@app.command("triton-repo")
@handle_errors
@load_options(("input", "output_range"), generator_param="model")
@bind("opts", TritonRepoOptions)
def triton_repo(
    model: Path = typer.Argument(
        ..., help="ONNX model (fp32, fp16 or int8 Q/DQ) or TensorRT engine (.plan) to deploy."
    ),
    repository: Path = typer.Argument(
        ...,
        help="Triton model repository folder (created if missing; other models in it are kept).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    *,
    load: LoadOptions,
    opts: TritonRepoOptions,
) -> None:
    """Write a Triton model repository entry (config.pbtxt + model + sidecar) for an ONNX or TensorRT artifact."""
    from accelkit.pipelines.serve import triton_repo as run_repo

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


#: ``loadtest``'s words for the server flags it shares with ``serve`` (they apply to a generator target).
_TARGET_HELP = {
    "backend": "Generator target: runner serving it (default as for accelkit serve).",
    "threads": "Generator target: CPU threads per runner instance.",
    "max_batch": "Generator target: max_batch_size of the dynamic batcher.",
    "max_queue_delay_us": "Generator target: batching delay, microseconds.",
    "preferred_batches": "Generator target: preferred batch sizes.",
    "instances": "Generator target: model instances.",
}


@app.command()
@handle_errors
@load_options()
@bind(
    "opts",
    ServeOptions,
    panel=_SERVER,
    panels={"backend": None, "device": None, "threads": None, "name": None},
)
def serve(
    generator: str | None = generator_argument(),
    *,
    load: LoadOptions,
    opts: ServeOptions,
) -> None:
    """Serve a generator on Triton Inference Server (PyTriton): dynamic batching, HTTP, gRPC, /metrics. Ctrl-C or SIGTERM stops it.

    Every request is checked (model, input names, datatypes, shapes, batch <= --max-batch, size <= --max-request-mb,
    data matching the declared shape) before Triton sees it; a bad request gets a 4xx / gRPC error and the server stays up.
    """
    from accelkit.pipelines.serve import serve as run_serve

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
@bind("opts", LoadtestOptions, panel=_LOAD, panels={"out": None})
@bind("server", ServeOptions, only=tuple(_TARGET_HELP), panel=_SERVER, help=_TARGET_HELP)
def loadtest(
    target: str = typer.Argument(
        ...,
        help="A running Triton server (host:port, grpc://host:port, http://host:port) or a generator to serve for the test (path or bundled name).",
    ),
    in_process: bool = typer.Option(
        True,
        "--in-process/--no-in-process",
        help="Generator target: also measure the runner in-process at --batch (the served/in-process ratio).",
        rich_help_panel=_SERVER,
    ),
    *,
    load: LoadOptions,
    opts: LoadtestOptions,
    server: ServeOptions,
) -> None:
    """Concurrency sweep against a Triton server: images/s, latency p50/p90/p99, server queue vs compute; report + plot."""
    from accelkit.pipelines.serve import _looks_like_url
    from accelkit.pipelines.serve import loadtest as run_loadtest

    with progress_status() as progress:
        result = run_loadtest(
            target if _looks_like_url(target) else load,
            opts,
            server,
            progress,
            in_process=in_process,
        )
    emit(result)
