"""Typed options of the serving steps: Triton model repository, PyTriton server, load test.

Frozen dataclasses with enums for every choice, validated once in ``validated()`` with
the same one-line messages whether the values came from flags or from code (the
pattern of :mod:`accelkit.pipelines.options`, which re-exports these). The enums are the
vocabularies of :mod:`accelkit.vocab`; enum values are checked by the one
:func:`accelkit.options.enum_value`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit.errors import InputError
from accelkit.options import Threads, flag, parse_batches, parse_int_list
from accelkit.options import enum_value as _enum
from accelkit.vocab import InstanceKind, LoadTool, Protocol

#: Triton model names: what Triton and PyTriton accept in a repository folder name and a URL.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


#: Default request size limit, bytes: Triton's own default for ``--http-max-input-size``
#: (added in Triton 2.59; the 2.51 server PyTriton 0.7 ships has no limit at all).
DEFAULT_MAX_REQUEST_BYTES = 64 * 2**20
#: The largest request limit: a gRPC message is at most 2 GiB - 1 byte.
MAX_REQUEST_BYTES_CEILING = 2047 * 2**20
MIB = 2**20
#: How long Triton may hold a request to form a bigger batch by default, microseconds.
DEFAULT_MAX_QUEUE_DELAY_US = 500


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``).

    Any other name or address (``0.0.0.0``, ``::``, an interface address, a host name)
    may be reachable from other machines.
    """
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _request_size_error(shown: str) -> InputError:
    return InputError(
        f"--max-request-mb {shown}: give a size between 0.001 and {MAX_REQUEST_BYTES_CEILING // MIB} MiB "
        "(a gRPC message is at most 2 GiB), e.g. 64"
    )


def request_bytes(mib: float) -> int:
    """``--max-request-mb`` (MiB) in bytes.

    Raises:
        InputError: Not a number between 1 KiB and the 2047 MiB ceiling.
    """
    if not (math.isfinite(mib) and 1024 <= mib * MIB <= MAX_REQUEST_BYTES_CEILING):
        raise _request_size_error(f"{mib:g}")
    return int(mib * MIB)


def _mib(value: Any) -> str:
    try:
        return f"{float(value) / MIB:g}"
    except (TypeError, ValueError):
        return repr(value)


def preferred_batches(values: Sequence[str] | None) -> tuple[int, ...]:
    """``--preferred-batch`` values (repeatable, each ``8`` or ``4,8``) as batch sizes."""
    out: list[int] = []
    for v in values or ():
        out += parse_int_list(v, "--preferred-batch")
    return tuple(out)


def _positive(value: int | None, flag: str, example: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InputError(f"{flag} {value!r}: give a positive integer, e.g. {example}")


def _port(value: int, flag: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise InputError(f"{flag} {value!r} is not a TCP port; give 1..65535, or 0 for a free one")


def check_model_name(name: str | None) -> None:
    """Refuse a name Triton cannot use as a model folder and URL path segment.

    Raises:
        InputError: Names the allowed characters.
    """
    if name is not None and not MODEL_NAME_RE.match(name):
        raise InputError(
            f"--name {name!r} is not a Triton model name; use letters, digits, '.', '_' and '-' (e.g. dcgan)"
        )


@dataclass(frozen=True)
class TritonRepoOptions:
    """``accelkit triton-repo`` / ``export --triton-repo``: a Triton model repository for one artifact.

    Attributes:
        name: Model name, the folder under the repository (None: the artifact's stem).
        max_batch: ``max_batch_size`` (None: the max of the artifact's batch range, 64
            when it records none; for an engine never above its profile's max).
        preferred_batches: ``dynamic_batching.preferred_batch_size`` (empty: the best
            batch of ``bench_results`` when given, else the batch range's opt).
        bench_results: A ``results.json`` (or its folder) of ``accelkit bench``: its
            fastest batch for this artifact's backend and precision becomes the preferred
            batch size.
        max_queue_delay_us: ``dynamic_batching.max_queue_delay_microseconds``: how long
            Triton holds a request to gather a bigger batch, microseconds.
        instances: ``instance_group.count``.
        kind: ``instance_group.kind``.
        threads: ONNX Runtime intra-op threads per instance (``parameters``), None: ORT's default.
        force: Replace an existing model folder.
    """

    name: str | None = flag(
        None,
        "--name",
        help="Model name = folder under the repository (default: the file's stem).",
        cli_type=str | None,
    )
    max_batch: int | None = flag(
        None,
        "--max-batch",
        help="max_batch_size (default: the max of the artifact's batch range, else 64).",
        cli_type=int | None,
    )
    preferred_batches: tuple[int, ...] = flag(
        (),
        "--preferred-batch",
        help="Dynamic-batching preferred batch sizes, e.g. 8 or 4,8 (default: the fastest batch of "
        "--bench-results, else the batch range's opt).",
        cli_type=list[str] | None,
        parse=lambda values: preferred_batches(values),
    )
    bench_results: Path | None = flag(
        None,
        "--bench-results",
        help="results.json (or its folder) of accelkit bench: its fastest batch for this backend and precision "
        "becomes the preferred batch size.",
        cli_type=Path | None,
    )
    max_queue_delay_us: int = flag(
        DEFAULT_MAX_QUEUE_DELAY_US,
        "--max-queue-delay-us",
        help="How long Triton may hold a request to form a bigger batch, microseconds.",
        cli_type=int,
    )
    instances: int = flag(
        1, "--instances", help="Model instances (instance_group count).", cli_type=int
    )
    kind: InstanceKind | str = flag(
        InstanceKind.auto,
        "--kind",
        help="Instance kind: gpu for engines, cpu for ONNX by default.",
        cli_type=InstanceKind,
    )
    threads: int | None = flag(
        None,
        "--threads",
        help="ONNX Runtime intra-op threads per instance (config parameter).",
        cli_type=int | None,
    )
    force: bool = flag(False, "--force", help="Overwrite an existing model folder.", cli_type=bool)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(InstanceKind, self.kind, "--kind"))
        object.__setattr__(self, "preferred_batches", tuple(int(b) for b in self.preferred_batches))
        if self.bench_results is not None:
            object.__setattr__(self, "bench_results", Path(self.bench_results))

    def validated(self) -> TritonRepoOptions:
        """Check the values; returns ``self``."""
        check_model_name(self.name)
        _positive(self.max_batch, "--max-batch", "32")
        _positive(self.instances, "--instances", "1")
        Threads(self.threads).validated()
        for b in self.preferred_batches:
            _positive(b, "--preferred-batch", "8")
        if self.max_batch is not None and any(b > self.max_batch for b in self.preferred_batches):
            raise InputError(
                f"--preferred-batch {list(self.preferred_batches)} exceeds --max-batch {self.max_batch}; lower it or raise --max-batch"
            )
        if self.max_queue_delay_us < 0:
            raise InputError(
                f"--max-queue-delay-us {self.max_queue_delay_us}: give 0 or more microseconds, e.g. 500"
            )
        return self


@dataclass(frozen=True)
class ServeOptions:
    """``accelkit serve``: a Triton Inference Server (PyTriton) bound to one accelkit runner.

    Attributes:
        backend: Runner name (``ort``, ``torch``, ``trt``, ``openvino``); None: ``trt`` for
            engines, ``ort`` for ONNX and for torch generators (exported to a temporary
            fp32 ONNX first) when ONNX Runtime is installed, else ``torch``.
        device: ``cpu`` or ``cuda[:N]``.
        threads: CPU threads of each runner instance (None: the runner's default).
        name: Model name (None: the artifact's stem).
        host: Address the HTTP, gRPC and metrics endpoints bind to (``0.0.0.0``: every
            interface; the default keeps the server on this machine). Anything but a
            loopback address needs ``allow_remote``.
        allow_remote: Accept a ``host`` other machines may reach. Triton's inference API
            has no authentication: whoever reaches the ports can run the model.
        http_port, grpc_port, metrics_port: TCP ports; 0 picks a free one.
        max_batch: ``max_batch_size``: the largest batch the dynamic batcher forms, and
            the largest batch one request may carry.
        max_queue_delay_us: How long a request may wait to be batched, microseconds.
        preferred_batches: Preferred batch sizes (empty: ``max_batch``).
        instances: Model instances (each its own runner and Triton stub process).
        max_request_bytes: The largest request accepted, bytes: an HTTP body or gRPC
            message, and the input tensors its shapes declare (checked before anything is
            allocated; ``--max-request-mb``).
        exit_timeout_s: Seconds Triton waits for in-flight requests when stopping.
        startup_timeout_s: Seconds to wait for the server and model to become ready.
    """

    backend: str | None = flag(
        None,
        "--backend",
        help="Runner serving the model: ort, torch, trt, openvino (default: trt for engines, ort for ONNX and "
        "torch generators, exported to fp32 ONNX first).",
        cli_type=str | None,
    )
    device: str = flag("cpu", "--device", help="cpu or cuda[:N].", cli_type=str)
    threads: int | None = flag(
        None,
        "--threads",
        help="CPU threads per runner instance (default: the runner's).",
        cli_type=int | None,
    )
    name: str | None = flag(
        None, "--name", help="Model name (default: the generator's stem).", cli_type=str | None
    )
    host: str = flag(
        "127.0.0.1",
        "--host",
        help="Address to bind (default: this machine only). Any other address (0.0.0.0: every interface) "
        "needs --allow-remote.",
        cli_type=str,
    )
    allow_remote: bool = flag(
        False,
        "--allow-remote",
        help="Allow a --host other machines can reach. Triton's inference API has no authentication: "
        "anyone who reaches the ports can run the model; a warning says so.",
        cli_type=bool,
    )
    http_port: int = flag(8000, "--http-port", help="HTTP port (0: a free one).", cli_type=int)
    grpc_port: int = flag(8001, "--grpc-port", help="gRPC port (0: a free one).", cli_type=int)
    metrics_port: int = flag(
        8002, "--metrics-port", help="Prometheus /metrics port (0: a free one).", cli_type=int
    )
    max_batch: int = flag(
        32,
        "--max-batch",
        help="Largest batch the dynamic batcher forms (max_batch_size).",
        cli_type=int,
    )
    max_queue_delay_us: int = flag(
        DEFAULT_MAX_QUEUE_DELAY_US,
        "--max-queue-delay-us",
        help="How long a request may wait to be batched, microseconds.",
        cli_type=int,
    )
    preferred_batches: tuple[int, ...] = flag(
        (),
        "--preferred-batch",
        help="Preferred batch sizes, e.g. 8 or 4,8 (default: --max-batch).",
        cli_type=list[str] | None,
        parse=lambda values: preferred_batches(values),
    )
    instances: int = flag(
        1,
        "--instances",
        help="Model instances (each its own runner and Triton stub process).",
        cli_type=int,
    )
    max_request_bytes: int = flag(
        DEFAULT_MAX_REQUEST_BYTES,
        "--max-request-mb",
        help="Largest request accepted, MiB: the HTTP body or gRPC message, and the input tensors its shapes "
        "declare. Checked before anything is allocated; larger requests get a 413 / RESOURCE_EXHAUSTED reply.",
        cli_type=float,
        parse=lambda mib: request_bytes(mib),
        show=lambda size: size / MIB,
    )
    exit_timeout_s: int = flag(
        5,
        "--exit-timeout",
        help="Seconds Triton waits for in-flight requests when stopping.",
        cli_type=int,
    )
    startup_timeout_s: float = flag(
        120.0,
        "--startup-timeout",
        help="Seconds to wait for the server and model to be ready.",
        cli_type=float,
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "preferred_batches", tuple(int(b) for b in self.preferred_batches))

    @property
    def remote(self) -> bool:
        """True when ``host`` may be reachable from other machines."""
        return not is_loopback(self.host)

    def remote_warning(self) -> str | None:
        """The warning to print when the server binds beyond loopback (None on loopback)."""
        if not self.remote:
            return None
        where = "every interface" if self.host.strip("[]") in ("0.0.0.0", "::") else self.host
        ports = ", ".join(
            f"{p or 'a free port'} ({k})"
            for k, p in (
                ("HTTP", self.http_port),
                ("gRPC", self.grpc_port),
                ("metrics", self.metrics_port),
            )
        )
        return (
            f"serving on {where} (--host {self.host} --allow-remote): Triton's inference API has no "
            f"authentication, so anyone who can reach ports {ports} can run the model and read its "
            "statistics; keep those ports behind a firewall or an authenticating proxy (docs/serving.md, Remote access)"
        )

    def validated(self) -> ServeOptions:
        """Check the values; returns ``self``."""
        check_model_name(self.name)
        Threads(self.threads).validated()
        _positive(self.max_batch, "--max-batch", "32")
        _positive(self.instances, "--instances", "1")
        for b in self.preferred_batches:
            _positive(b, "--preferred-batch", "8")
        if any(b > self.max_batch for b in self.preferred_batches):
            raise InputError(
                f"--preferred-batch {list(self.preferred_batches)} exceeds --max-batch {self.max_batch}; lower it or raise --max-batch"
            )
        for port_flag, port in (
            ("--http-port", self.http_port),
            ("--grpc-port", self.grpc_port),
            ("--metrics-port", self.metrics_port),
        ):
            _port(port, port_flag)
        used = [p for p in (self.http_port, self.grpc_port, self.metrics_port) if p]
        if len(used) != len(set(used)):
            raise InputError(
                f"--http-port, --grpc-port and --metrics-port must differ, got {self.http_port}, {self.grpc_port}, {self.metrics_port}"
            )
        if self.max_queue_delay_us < 0:
            raise InputError(
                f"--max-queue-delay-us {self.max_queue_delay_us}: give 0 or more microseconds, e.g. 500"
            )
        if self.exit_timeout_s < 0:
            raise InputError(f"--exit-timeout {self.exit_timeout_s}: give 0 or more seconds")
        if not (math.isfinite(self.startup_timeout_s) and self.startup_timeout_s > 0):
            raise InputError(
                f"--startup-timeout {self.startup_timeout_s}: give a positive number of seconds"
            )
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise InputError(f"--device {self.device!r} is unknown; use cpu or cuda[:N]")
        if not self.host or any(c.isspace() for c in self.host):
            raise InputError(
                f"--host {self.host!r} is not an address; use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
            )
        if self.remote and not self.allow_remote:
            raise InputError(
                f"--host {self.host} may be reachable from other machines, and Triton's inference API has no "
                "authentication; pass --allow-remote to serve there anyway, or keep the default --host 127.0.0.1"
            )
        if (
            isinstance(self.max_request_bytes, bool)
            or not isinstance(self.max_request_bytes, int)
            or not 1024 <= self.max_request_bytes <= MAX_REQUEST_BYTES_CEILING
        ):
            raise _request_size_error(_mib(self.max_request_bytes))
        return self


@dataclass(frozen=True)
class LoadtestOptions:
    """``accelkit loadtest``: a concurrency sweep against a Triton server.

    Attributes:
        concurrency: In-flight requests per level, swept in order.
        batch_size: Images per request.
        window_s: Seconds each measurement window lasts.
        windows: Measurement windows per level (each one images/sec sample; the median
            is the level's number).
        warmup_s: Untimed seconds of load before each level's windows.
        max_requests: Hard bound on the requests of one window (the loop also stops at
            ``window_s``).
        request_timeout_s: Seconds one request may take before the test fails.
        protocol: ``grpc`` or ``http``.
        tool: ``perf_analyzer``, ``tritonclient`` or ``auto`` (perf_analyzer when installed).
        model: Model name on the server (None: the only model it serves).
        seed: :class:`~accelkit.sampler.LatentSampler` seed of the request inputs.
        out: Report folder (results.json/.md/.csv, serving.png).
    """

    concurrency: tuple[int, ...] = flag(
        (1, 2, 4, 8, 16),
        "--concurrency",
        help="In-flight requests per level, swept in order.",
        cli_type=str,
        parse=lambda text: tuple(parse_int_list(text, "--concurrency")),
        show=lambda levels: ",".join(str(c) for c in levels),
    )
    batch_size: int = flag(1, "--batch", help="Images per request.", cli_type=int)
    window_s: float = flag(2.0, "--window", help="Seconds per measurement window.", cli_type=float)
    windows: int = flag(
        3,
        "--windows",
        help="Measurement windows per level (one images/sec sample each).",
        cli_type=int,
    )
    warmup_s: float = flag(
        0.5,
        "--warmup-time",
        help="Untimed seconds of load before each level (seconds; --warmup counts iterations in "
        "bench/optimize).",
        cli_type=float,
    )
    max_requests: int = flag(
        100_000,
        "--max-requests",
        help="Requests per window at most (the loop also stops at --window).",
        cli_type=int,
    )
    request_timeout_s: float = flag(
        60.0, "--request-timeout", help="Seconds one request may take.", cli_type=float
    )
    protocol: Protocol | str = flag(
        Protocol.grpc, "--protocol", help="Client protocol.", cli_type=Protocol
    )
    tool: LoadTool | str = flag(
        LoadTool.auto,
        "--tool",
        help="Load generator: perf_analyzer (when on PATH; auto picks it), else a tritonclient closed loop.",
        cli_type=LoadTool,
    )
    model: str | None = flag(
        None,
        "--model",
        help="Model name on the server (default: its only model).",
        cli_type=str | None,
    )
    seed: int = flag(0, "--seed", help="Seed of the request inputs.", cli_type=int)
    out: Path = flag(
        Path("accelkit-serving"),
        "--out",
        help="Report folder: results.json/.md/.csv, serving.png.",
        cli_type=Path,
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", _enum(Protocol, self.protocol, "--protocol"))
        object.__setattr__(self, "tool", _enum(LoadTool, self.tool, "--tool"))
        object.__setattr__(self, "concurrency", tuple(int(c) for c in self.concurrency))
        object.__setattr__(self, "out", Path(self.out))

    def validated(self) -> LoadtestOptions:
        """Check the values; returns ``self``."""
        if not self.concurrency:
            raise InputError("--concurrency needs at least one level, e.g. 1,2,4,8,16")
        for c in self.concurrency:
            _positive(c, "--concurrency", "1,2,4,8,16")
        if max(self.concurrency) > 1024:
            raise InputError(
                f"--concurrency {max(self.concurrency)} is unreasonably high for one load generator; use at most 1024"
            )
        parse_batches(self.batch_size, "--batch", single=True)
        _positive(self.windows, "--windows", "3")
        _positive(self.max_requests, "--max-requests", "100000")
        for seconds_flag, v, low in (
            ("--window", self.window_s, 0.05),
            ("--warmup", self.warmup_s, 0.0),
            ("--request-timeout", self.request_timeout_s, 0.1),
        ):
            if not (math.isfinite(v) and v >= low):
                raise InputError(f"{seconds_flag} {v}: give a number of seconds >= {low:g}")
        if self.window_s > 600:
            raise InputError(
                f"--window {self.window_s:g} s is longer than 10 minutes; measure in shorter windows (more --windows)"
            )
        check_model_name(self.model)
        if self.seed < 0:
            raise InputError(f"--seed {self.seed}: give a non-negative seed")
        return self


__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "MIB",
    "InstanceKind",
    "LoadTool",
    "LoadtestOptions",
    "Protocol",
    "ServeOptions",
    "TritonRepoOptions",
    "check_model_name",
    "is_loopback",
    "request_bytes",
]
