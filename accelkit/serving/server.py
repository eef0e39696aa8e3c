"""A real Triton Inference Server (PyTriton) serving one generator through an accelkit runner.

PyTriton starts the ``tritonserver`` binary it ships (HTTP, gRPC and Prometheus
``/metrics`` endpoints, the dynamic batcher) with a Python-backend model whose requests
reach the inference callable of :class:`GeneratorServer` in this process: the batch
Triton formed is concatenated, run by the runner (``ort``, ``torch``, ``trt``,
``openvino``) and split back per request. Each model instance has its own runner and its
own Triton stub process.

What this module adds around PyTriton:

* the request guard (:mod:`accelkit.serving.guard`): clients reach the HTTP and gRPC
  endpoints of the guard, which checks each request's declared shapes, batch and size
  before anything is allocated and forwards it to ``tritonserver``, whose own HTTP and
  gRPC ports listen on 127.0.0.1 only (Triton 2.51 allocates what a request declares
  before checking it); ``/metrics`` is Triton's own, on the user's host;
* binding beyond loopback only with ``allow_remote`` (no authentication in front of
  inference), and the addresses actually bound in :class:`ServerInfo`;
* why the server died, when it does: its exit status or signal (SIGKILL: the
  out-of-memory killer), ``std::bad_alloc``, the log's last real error (not the CUDA
  noise every CPU start logs);
* the interpreter's ``libpython`` first on ``LD_LIBRARY_PATH`` (see
  :func:`accelkit.serving.deps.python_library_env`), without which the stub cannot load
  models on machines whose system Python is another patch release;
* ports checked before the start (a taken port is a one-line error naming the flag),
  ``0`` meaning a free port;
* a bounded start: if ``tritonserver`` exits or the model fails to load, the start
  fails at once with the last error line of the server log instead of waiting out
  PyTriton's two-minute timeout;
* a health check (server live + ready, model ready, one inference of seeded inputs
  whose output must be finite and of the spec's shape) before :meth:`start` returns;
* the server's own log in a file (PyTriton echoes it to stdout otherwise);
* :class:`ServerProcess`: the same server in a child process, for load tests whose
  client must not share the server's interpreter lock.

Endpoints other than health, metadata, inference and statistics (model repository
control, shared memory, trace, logging) keep PyTriton's access-token protection.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import AccelkitError, InputError
from accelkit.serving.deps import python_library_env, require_serve
from accelkit.serving.errors import ServerStartError
from accelkit.serving.options import MIB, ServeOptions, check_model_name

log = logging.getLogger(__name__)

#: Endpoints left open to clients without a token: what inference and load tests use.
OPEN_ENDPOINTS = ("health", "metadata", "inference", "statistics", "model-config")
RESTRICTED_ENDPOINTS = ["model-repository", "shared-memory", "trace", "logging"]


# --------------------------------------------------------------------------- ports
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int, flag: str) -> None:
    """Refuse a port that is taken, with the flag that changes it.

    Raises:
        PortInUseError: Something listens on ``host:port``.
        InputError: ``host`` is not an address of this machine.
    """
    from accelkit.serving.guard import bind_error

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            raise bind_error(exc, host, port, flag) from None


def check_ports(options: ServeOptions) -> None:
    """Refuse taken ``--http-port`` / ``--grpc-port`` / ``--metrics-port`` (0: a free one, not checked).

    Raises:
        PortInUseError / InputError: See :func:`check_port`.
    """
    for flag, port in (
        ("--http-port", options.http_port),
        ("--grpc-port", options.grpc_port),
        ("--metrics-port", options.metrics_port),
    ):
        if port:
            check_port(options.host, port, flag)


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    return (
        "127.0.0.1"
        if host in ("0.0.0.0", "")
        else ("[::1]" if host == "::" else (f"[{host}]" if ":" in host else host))
    )


# ---------------------------------------------------------------------- model I/O
@dataclass(frozen=True)
class ServedTensor:
    """One served input or output: name, numpy dtype, per-sample shape as Triton sees it.

    Attributes:
        name: Tensor name in requests and responses.
        dtype: numpy dtype name (``float32``, ``int64``).
        shape: Per-sample shape Triton checks (``(1,)`` for a scalar label; ``-1`` where dynamic).
        runner_shape: The per-sample shape the runner takes (``()`` for a label).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    runner_shape: tuple[int, ...]


def served_io(artifact: Artifact) -> tuple[list[ServedTensor], ServedTensor]:
    """Inputs and the output as served: the spec's inputs (labels as ``[1]``), the image output.

    ONNX artifacts keep their graph's names (the same names a Triton model repository
    of the file uses); dynamic dims are ``-1``.
    """
    ins: list[ServedTensor] = []
    graph_dims: dict[str, tuple[int, ...]] = {}
    out_name, out_dims = "image", tuple(artifact.spec.output_shape) or (-1, -1, -1)
    if artifact.format == "onnx" and artifact.path is not None:
        from accelkit.serving.repository import onnx_io

        gins, gouts = onnx_io(artifact.path)
        graph_dims = {t.name: t.dims for t in gins}
        out_name, out_dims = gouts[0].name, gouts[0].dims
    for inp in artifact.spec.inputs:
        shape = graph_dims.get(inp.name, tuple(inp.shape) or (1,))
        ins.append(
            ServedTensor(
                inp.name,
                "int64" if inp.kind == "label" else "float32",
                tuple(shape) or (1,),
                tuple(inp.shape),
            )
        )
    return ins, ServedTensor(out_name, "float32", tuple(out_dims), tuple(out_dims))


# -------------------------------------------------------------------------- server
@dataclass
class ServerInfo:
    """Where a started server answers.

    Attributes:
        model: Model name.
        http_url, grpc_url, metrics_url: ``host:port`` for clients on this machine
            (tritonclient form; the metrics URL has ``/metrics``).
        bind: Endpoint (``http``, ``grpc``, ``metrics``) -> the ``host:port`` actually
            bound (``0.0.0.0:8000`` when serving every interface).
        max_request_bytes: The largest request the guard accepts, bytes.
        upstream: ``http`` / ``grpc`` -> Triton's own loopback address behind the guard
            (for diagnostics and the guard's overhead benchmark; clients use the URLs above).
        backend: The runner serving the model.
        precision: Its precision.
        device: Its device.
        max_batch: ``max_batch_size``.
        max_queue_delay_us: The batcher's delay, microseconds.
        preferred_batches: Preferred batch sizes.
        instances: Model instances.
        startup_seconds: From :meth:`GeneratorServer.start` to ready.
        runner: The first runner's ``describe()``.
        log_file: The server log (removed on a clean stop).
    """

    model: str
    http_url: str
    grpc_url: str
    metrics_url: str
    backend: str
    precision: str
    device: str
    max_batch: int
    max_queue_delay_us: int
    preferred_batches: list[int]
    instances: int
    bind: dict[str, str] = field(default_factory=dict)
    max_request_bytes: int = 0
    upstream: dict[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0
    runner: dict[str, Any] = field(default_factory=dict)
    log_file: str | None = None

    @property
    def remote(self) -> bool:
        """True when an endpoint is bound beyond loopback."""
        from accelkit.serving.options import is_loopback

        return any(not is_loopback(a.rsplit(":", 1)[0]) for a in self.bind.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        from dataclasses import asdict

        return asdict(self)


#: Error lines every PyTriton start logs; never the reason a start failed.
_BENIGN = (
    "model_config_content_name_ is empty",
    "Failed to initialize NVML",
    "Unable to find shared library libnvidia-ml",
    "CudaDriverHelper has not been initialized",
    "Unable to allocate pinned system memory",
    "CUDA driver version is insufficient",
)

#: What the server's own output says when memory ran out.
_OOM_MARKS = ("std::bad_alloc", "out of memory", "Cannot allocate memory")


def death_message(exit_code: int | None, output: str, log_path: Path | None) -> str:
    """Why ``tritonserver`` stopped, in one line: its exit status, memory exhaustion, the log's last real error.

    Args:
        exit_code: The process's exit code (negative: killed by that signal), None when unknown.
        output: What the process wrote to stdout/stderr (``terminate called after
            throwing an instance of 'std::bad_alloc'`` goes there, not to the log).
        log_path: The server log.
    """
    if exit_code is not None and exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        what = f"tritonserver was killed by {name}"
        if -exit_code == signal.SIGKILL:
            what += (
                " (on Linux the out-of-memory killer does this when memory runs out; dmesg says)"
            )
    elif exit_code is not None:
        what = f"tritonserver exited with code {exit_code}"
    else:
        what = "tritonserver stopped"
    if any(m in output for m in _OOM_MARKS):
        what += "; it ran out of memory"
    return f"{what}; server log: {_log_tail(log_path)}"


def _log_tail(path: Path | None, n: int = 400) -> str:
    """The last error line of the server log (else its last line), shortened, one line."""
    if path is None or not path.is_file():
        return "no server log"
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "server log unreadable"
    errs = [
        ln
        for ln in lines
        if (ln.startswith("E") or "error" in ln.lower() or "failed" in ln.lower())
        and not any(b in ln for b in _BENIGN)
    ]
    pick = (errs or lines or ["empty server log"])[-1]
    return " ".join(pick.split())[:n]


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Any:
    """Temporarily replace ``os.environ`` (the server process inherits it when it starts)."""
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


def _quiet_triton_class(triton_mod: Any) -> Any:
    """PyTriton's ``Triton`` with the server's output kept in its log file instead of echoed to stdout."""

    class QuietTriton(triton_mod.Triton):  # type: ignore[misc,name-defined]
        def _initialize_server(self) -> None:
            super()._initialize_server()
            srv = getattr(self, "_triton_server", None)
            if srv is not None and hasattr(srv, "_verbose"):
                srv._verbose = False

    return QuietTriton


def request_limits(
    name: str,
    artifact: Artifact,
    inputs: list[ServedTensor],
    output: ServedTensor,
    options: ServeOptions,
) -> Any:
    """The :class:`~accelkit.serving.limits.RequestLimits` of a served artifact.

    Raises:
        InputError: ``max_request_bytes`` is below one image's inputs (nothing could be served).
    """
    from accelkit.serving.limits import RequestLimits

    classes = {i.name: i.num_classes for i in artifact.spec.inputs if i.kind == "label"}
    hw = artifact.spec.hw_range
    limits = RequestLimits.for_served(
        name,
        inputs,
        output,
        options.max_batch,
        options.max_request_bytes,
        (hw[0], hw[2]) if hw else None,
        classes,
    )
    one = limits.sample_bytes()
    if one is not None and one > options.max_request_bytes:
        raise InputError(
            f"--max-request-mb {options.max_request_bytes / MIB:g} is below one image's inputs "
            f"({one} bytes); raise it"
        )
    return limits


class GeneratorServer:
    """Serve one artifact on Triton Inference Server through PyTriton; a context manager.

    Args:
        artifact: What the runner executes (ONNX for ``ort``/``openvino``, an engine for
            ``trt``, a torch generator for ``torch``).
        backend: Runner name.
        options: Ports, batching, instances (:class:`ServeOptions`).
        runner_options: Extra runner options (e.g. ``{"threads": 2}``).
        progress: Called with a short message per step.
        make_runner: Builds one instance's runner instead of ``create_runner(backend,
            artifact)`` (a diffusion pipeline: the sampling loop over its component
            runners, taking a seed per request); ``artifact`` then gives the served spec.

    Example::

        with GeneratorServer(artifact, "ort", ServeOptions(http_port=0, grpc_port=0, metrics_port=0)) as srv:
            print(srv.info.grpc_url)
    """

    def __init__(
        self,
        artifact: Artifact,
        backend: str,
        options: ServeOptions | None = None,
        runner_options: dict[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
        make_runner: Callable[[], Any] | None = None,
    ) -> None:
        self.artifact = artifact
        self.make_runner = make_runner
        self.backend = backend
        self.options = (options or ServeOptions()).validated()
        self.runner_options = dict(runner_options or {})
        if self.options.threads is not None:
            self.runner_options.setdefault("threads", self.options.threads)
        self.name = self.options.name or artifact.name
        check_model_name(self.name)
        self._say = progress or (lambda m: None)
        self.inputs, self.output = served_io(artifact)
        self.limits = request_limits(self.name, artifact, self.inputs, self.output, self.options)
        self._runners: list[Any] = []
        self._triton: Any = None
        self._guard: Any = None
        self._logdir: Path | None = None
        self._stopped = True
        self._ports: dict[str, int] = {}
        self._process: Any = None
        self.info: ServerInfo | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> GeneratorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServerInfo:
        """Create the runners, start Triton, load the model, check health; returns where it answers.

        Raises:
            MissingDependencyError: The ``serve`` extra is not installed.
            PortInUseError: A port is taken.
            ServerStartError: Triton exited, the model did not load, or the health check failed.
            BackendUnavailableError / InputError: The runner cannot run here.
        """
        from accelkit.runners.base import create_runner

        triton_mod = require_serve("pytriton.triton", "accelkit serve")
        mc = require_serve("pytriton.model_config", "accelkit serve")
        o = self.options
        host = o.host
        check_ports(o)
        # Triton's HTTP and gRPC listen on loopback only; clients reach the guard on the user's ports.
        # /metrics (read-only) is Triton's own, on the user's host.
        ports = {
            "upstream-http": free_port("127.0.0.1"),
            "upstream-grpc": free_port("127.0.0.1"),
            "--metrics-port": o.metrics_port
            or free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1"),
        }
        self._ports = ports
        t0 = time.perf_counter()
        self._say(f"loading {o.instances} {self.backend} runner(s)")
        try:
            for _ in range(o.instances):
                self._runners.append(
                    (
                        self.make_runner()
                        if self.make_runner is not None
                        else create_runner(
                            self.backend, self.artifact, device=o.device, **self.runner_options
                        )
                    ).activate()
                )
            self._logdir = Path(tempfile.mkdtemp(prefix="accelkit-triton-log-"))
            preferred = sorted(set(o.preferred_batches)) or [o.max_batch]
            cfg = triton_mod.TritonConfig(
                http_address="127.0.0.1",
                http_port=ports["upstream-http"],
                grpc_address="127.0.0.1",
                grpc_port=ports["upstream-grpc"],
                metrics_address=host.strip("[]"),
                metrics_port=ports["--metrics-port"],
                allow_metrics=True,
                allow_gpu_metrics=o.device.startswith("cuda"),
                log_file=self._logdir / "tritonserver.log",
                exit_timeout_secs=int(o.exit_timeout_s),
                log_verbose=0,
            )
            security = triton_mod.TritonSecurityConfig(
                restricted_endpoints=list(RESTRICTED_ENDPOINTS)
            )
            self._triton = _quiet_triton_class(triton_mod)(config=cfg, security_config=security)
            self._triton.bind(
                model_name=self.name,
                infer_func=[self._make_infer(r) for r in self._runners],
                inputs=[
                    mc.Tensor(name=t.name, dtype=np.dtype(t.dtype), shape=t.shape)
                    for t in self.inputs
                ],
                outputs=[
                    mc.Tensor(
                        name=self.output.name,
                        dtype=np.dtype(self.output.dtype),
                        shape=self.output.shape,
                    )
                ],
                config=mc.ModelConfig(
                    batching=True,
                    max_batch_size=o.max_batch,
                    batcher=mc.DynamicBatcher(
                        max_queue_delay_microseconds=o.max_queue_delay_us,
                        preferred_batch_size=preferred,
                    ),
                ),
                strict=False,
            )
            self._advertise(
                {
                    "accelkit_backend": self.backend,
                    "accelkit_precision": str(self._runners[0].precision),
                }
            )
            self._stopped = False
            self._say("starting Triton Inference Server")
            self._run_bounded(t0)
            from accelkit.serving.guard import RequestGuard, show_address

            self._guard = RequestGuard(
                host,
                o.http_port,
                o.grpc_port,
                ports["upstream-http"],
                ports["upstream-grpc"],
                self.limits,
            ).start()
            http_port = int(self._guard.http_address.rsplit(":", 1)[1])
            grpc_port = int(self._guard.grpc_address.rsplit(":", 1)[1])
            client_host = _client_host(host)
            self.info = ServerInfo(
                model=self.name,
                http_url=f"{client_host}:{http_port}",
                grpc_url=f"{client_host}:{grpc_port}",
                metrics_url=f"{client_host}:{ports['--metrics-port']}/metrics",
                backend=self.backend,
                precision=self._runners[0].precision,
                device=o.device,
                max_batch=o.max_batch,
                max_queue_delay_us=o.max_queue_delay_us,
                preferred_batches=preferred,
                instances=o.instances,
                bind={
                    "http": self._guard.http_address,
                    "grpc": self._guard.grpc_address,
                    "metrics": show_address(host, ports["--metrics-port"]),
                },
                max_request_bytes=o.max_request_bytes,
                upstream={
                    "http": f"127.0.0.1:{ports['upstream-http']}",
                    "grpc": f"127.0.0.1:{ports['upstream-grpc']}",
                },
                runner=self._runners[0].describe(),
                log_file=str(self._logdir / "tritonserver.log"),
            )
            self._say("health check")
            self._health_check()
            self.info.startup_seconds = round(time.perf_counter() - t0, 3)
        except BaseException:
            self.stop(keep_log=True)
            raise
        return self.info

    def _run_bounded(self, t0: float) -> None:
        """Start tritonserver, wait (bounded) until it answers, then load the model.

        The process is started from this thread on purpose: PyTriton starts it with
        ``PR_SET_PDEATHSIG``, which signals the server when the *thread* that started it
        ends. Waiting is done here, polling the process, so a server that exits (a port
        taken after the check, a broken install) fails the start within a second
        instead of after PyTriton's two-minute readiness timeout.
        """
        http = require_serve("tritonclient.http", "accelkit serve")
        logf = self._log_path()
        with _environ(python_library_env()):
            starter = getattr(self._triton, "_run_server", None)
            if starter is None:  # another PyTriton than the 0.7 series: its own (unbounded) start
                self._triton.run()
                return
            starter()
            # kept: PyTriton drops its handle when the process exits, and the exit status says why
            self._process = getattr(self._triton, "_triton_server", None)
            url = f"127.0.0.1:{self._ports['upstream-http']}"
            client = http.InferenceServerClient(url, connection_timeout=2.0, network_timeout=5.0)
            try:
                while True:
                    if not self._server_process_alive():
                        raise ServerStartError(
                            f"the Triton server exited while starting: {self._death_message()}"
                        )
                    with contextlib.suppress(Exception):
                        if client.is_server_live():
                            break
                    if time.perf_counter() - t0 > self.options.startup_timeout_s:
                        raise ServerStartError(
                            f"the Triton server was not live after {self.options.startup_timeout_s:g} s: {_log_tail(logf)}; raise --startup-timeout"
                        )
                    time.sleep(0.1)
            finally:
                client.close()
            try:
                self._triton.connect()  # loads the model (PyTriton's model store -> Triton's load API)
            except AccelkitError:
                raise
            except Exception as exc:  # noqa: BLE001 - PyTriton raises its own types
                raise ServerStartError(
                    f"the model did not load ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); server log: {_log_tail(logf)}"
                ) from None

    def _server_process_alive(self) -> bool:
        srv = self._process or getattr(self._triton, "_triton_server", None)
        return srv is None or bool(srv.is_alive())

    def _exit_code(self, wait_s: float = 2.0) -> int | None:
        """tritonserver's exit code (negative: the signal that killed it), None while unknown."""
        cmd = getattr(self._process, "_tritonserver_running_cmd", None)
        deadline = time.monotonic() + wait_s
        while True:
            code = getattr(getattr(cmd, "process", None), "exit_code", None)
            if code is not None or time.monotonic() > deadline:
                return None if code is None else int(code)
            time.sleep(0.05)

    def _death_message(self) -> str:
        output = ""
        with contextlib.suppress(Exception):
            output = str(self._process.logs()) if self._process is not None else ""
        return death_message(self._exit_code(), output, self._log_path())

    def _advertise(self, params: dict[str, str]) -> None:
        """Add accelkit's facts (runner, precision) to the model config Triton serves, so a load
        test of the URL can name them. PyTriton 0.7 builds the config when the model loads;
        another PyTriton leaves the config as it is."""
        manager = getattr(self._triton, "_model_manager", None)
        for model in getattr(manager, "models", ()):
            with contextlib.suppress(Exception):
                model._get_triton_model_config().backend_parameters.update(params)

    def _health_check(self) -> None:
        """Server live and ready, model ready, one seeded inference with a finite output of the right shape."""
        from accelkit.sampler import LatentSampler

        assert self.info is not None
        http = require_serve("tritonclient.http", "accelkit serve")
        client = http.InferenceServerClient(
            self.info.http_url, connection_timeout=10.0, network_timeout=60.0
        )
        try:
            if not (
                client.is_server_live()
                and client.is_server_ready()
                and client.is_model_ready(self.name)
            ):
                raise ServerStartError(
                    f"the Triton server at {self.info.http_url} started but is not ready: {_log_tail(self._log_path())}"
                )
            feeds = LatentSampler(self.artifact.spec, seed=0).inputs(0, 1)
            out = client.infer(self.name, request_inputs(http, self.inputs, feeds)).as_numpy(
                self.output.name
            )
        except AccelkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - tritonclient raises its own types
            raise ServerStartError(
                f"the health check against {self.info.http_url} failed ({' '.join(str(exc).split())[:200]}); server log: {_log_tail(self._log_path())}"
            ) from None
        finally:
            client.close()
        want = self.artifact.spec.output_shape
        if (
            out is None
            or out.ndim != 4
            or (want and tuple(out.shape[1:]) != tuple(want))
            or not np.isfinite(out).all()
        ):
            raise ServerStartError(
                f"the health-check inference returned {None if out is None else out.shape} (want finite [1, {', '.join(map(str, want))}]); check the model with accelkit bench"
            )

    def _log_path(self) -> Path | None:
        return self._logdir / "tritonserver.log" if self._logdir else None

    def server_pid(self) -> int | None:
        """The ``tritonserver`` process id (None when not started)."""
        try:
            return int(self._process._tritonserver_running_cmd.pid)
        except (AttributeError, TypeError, ValueError):
            return None

    def alive(self) -> bool:
        """True while tritonserver and the model's stub processes run."""
        return self._triton is not None and not self._stopped and bool(self._triton.is_alive())

    def failure_reason(self) -> str:
        """Why the server stopped serving, one line: tritonserver's exit status and memory
        exhaustion when it died, else the log's last error (a model stub that stopped)."""
        if not self._server_process_alive():
            return self._death_message()
        return f"the model's Triton stub stopped; server log: {_log_tail(self._log_path())}"

    def stop(self, keep_log: bool = False) -> None:
        """Stop the guard and Triton (waits up to ``exit_timeout_s`` for in-flight requests), release the runners. Idempotent."""
        if self._guard is not None:
            try:
                self._guard.stop()
            except Exception as exc:  # noqa: BLE001 - stopping must not raise over the real error
                log.warning("stopping the request guard: %s", exc)
            self._guard = None
        if self._triton is not None and not self._stopped:
            self._stopped = True
            try:
                self._triton.stop()
            except Exception as exc:  # noqa: BLE001 - stopping must not raise over the real error
                log.warning("stopping Triton: %s", exc)
        self._stopped = True
        for r in self._runners:
            with contextlib.suppress(Exception):
                r.deactivate()
        self._runners.clear()
        if self._logdir is not None and not keep_log:
            shutil.rmtree(self._logdir, ignore_errors=True)
            self._logdir = None

    # ------------------------------------------------------------------ inference
    def _make_infer(self, runner: Any) -> Callable[[list[Any]], list[dict[str, np.ndarray]]]:
        """The callable PyTriton runs for one instance: concatenate the batch Triton formed, run, split."""
        inputs = self.inputs
        out_name = self.output.name

        def infer(requests: list[Any]) -> list[dict[str, np.ndarray]]:
            sizes = [int(req[inputs[0].name].shape[0]) for req in requests]
            feeds = {}
            for t in inputs:
                arr = (
                    np.concatenate([req[t.name] for req in requests])
                    if len(requests) > 1
                    else requests[0][t.name]
                )
                feeds[t.name] = (
                    arr.reshape((arr.shape[0], *t.runner_shape))
                    if t.runner_shape != t.shape and -1 not in t.shape
                    else arr
                )
            out = runner.infer(feeds)
            splits = np.cumsum(sizes)[:-1]
            return [{out_name: part} for part in np.split(out, splits)]

        return infer


def request_inputs(
    client_mod: Any, tensors: list[ServedTensor], feeds: dict[str, np.ndarray]
) -> list[Any]:
    """tritonclient ``InferInput`` objects for a batch of sampler inputs (labels sent as ``[N, 1]``).

    Args:
        client_mod: ``tritonclient.http`` or ``tritonclient.grpc``.
        tensors: The served inputs.
        feeds: Input name -> batch from :class:`~accelkit.sampler.LatentSampler`.
    """
    from tritonclient.utils import np_to_triton_dtype

    out = []
    for t in tensors:
        arr = np.ascontiguousarray(feeds[t.name], dtype=t.dtype)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        inp = client_mod.InferInput(t.name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        inp.set_data_from_numpy(arr)
        out.append(inp)
    return out


# ----------------------------------------------------------------- child process
def _child_main(
    conn: Any,
    loader: Callable[[], Artifact],
    backend: str,
    options: ServeOptions,
    runner_options: dict[str, Any],
) -> None:
    """Run a :class:`GeneratorServer` until the parent says ``stop`` or goes away."""
    logging.basicConfig(level=logging.WARNING)
    server = None
    try:
        server = GeneratorServer(loader(), backend, options, runner_options)
        info = server.start()
        conn.send(("ready", info.to_dict()))
        while True:
            if conn.poll(0.5):
                msg = conn.recv()
                if msg == "stop":
                    break
            if not server.alive():
                conn.send(("died", server.failure_reason()))
                break
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    except AccelkitError as exc:
        with contextlib.suppress(Exception):
            conn.send(("error", type(exc).__name__, str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        with contextlib.suppress(Exception):
            conn.send(
                (
                    "error",
                    "ServerStartError",
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                )
            )
    finally:
        if server is not None:
            server.stop()
        with contextlib.suppress(Exception):
            conn.send(("stopped",))
        conn.close()


class ServerProcess:
    """A :class:`GeneratorServer` in a child process (spawned), so a load generator in this
    process does not compete with the server's Python threads for one interpreter lock.

    Args:
        loader: A picklable callable returning the artifact (e.g. ``functools.partial(load_generator, path)``).
        backend, options, runner_options: As for :class:`GeneratorServer`.
    """

    def __init__(
        self,
        loader: Callable[[], Artifact],
        backend: str,
        options: ServeOptions,
        runner_options: dict[str, Any] | None = None,
    ) -> None:
        self.loader = loader
        self.backend = backend
        self.options = options.validated()
        self.runner_options = dict(runner_options or {})
        self.info: ServerInfo | None = None
        self._proc: Any = None
        self._conn: Any = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServerInfo:
        """Spawn the child and wait until its server passed the health check.

        Raises:
            The child's error class (PortInUseError, ServerStartError, ...) with its message.
        """
        from accelkit.serving import errors as serr

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child_main,
            args=(child, self.loader, self.backend, self.options, self.runner_options),
            name="accelkit-serve",
        )
        self._proc.start()
        child.close()
        self._conn = parent
        deadline = time.monotonic() + self.options.startup_timeout_s + 120.0
        while time.monotonic() < deadline:
            if parent.poll(0.5):
                try:
                    msg = parent.recv()
                except EOFError:
                    break
                if msg[0] == "ready":
                    self.info = ServerInfo(**msg[1])
                    return self.info
                if msg[0] == "error":
                    self._join()
                    import accelkit.errors as aerr

                    cls = (
                        getattr(serr, msg[1], None)
                        or getattr(aerr, msg[1], None)
                        or ServerStartError
                    )
                    raise cls(msg[2])
                break
            if not self._proc.is_alive():
                break
        self.stop()
        raise ServerStartError(
            "the server process ended before it was ready; run accelkit serve with -v to see why"
        )

    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc is not None and self._proc.is_alive()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the child to stop its server and wait for it (killed after ``timeout_s``). Idempotent."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.send("stop")
        self._join(timeout_s)

    def _join(self, timeout_s: float = 60.0) -> None:
        if self._proc is not None:
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(10)
            self._proc = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


__all__ = [
    "GeneratorServer",
    "death_message",
    "request_limits",
    "ServerInfo",
    "ServerProcess",
    "ServedTensor",
    "check_port",
    "check_ports",
    "free_port",
    "request_inputs",
    "served_io",
]
