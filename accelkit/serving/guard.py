"""The request guard: accelkit serve's HTTP and gRPC endpoints, in front of Triton.

Triton 2.51 (PyTriton 0.7) trusts the shapes a request declares: an HTTP JSON input is
allocated from its declared shape before its values are counted (one request declaring
``[100000000, 64]`` made it allocate 25.6 GB and die), gRPC messages of up to 2 GiB are
read whole, and that release has no option to bound either. So ``accelkit serve`` starts
``tritonserver`` on private loopback ports and puts this guard on the ports users reach:

* **HTTP** (a threaded HTTP/1.1 server, standard library only): the ``Content-Length``
  is checked against the limit before the body is read (``Expect: 100-continue`` is
  answered 413 without reading); bodies without a length (chunked) and compressed bodies
  (a decompression bomb) are refused; an inference request's JSON header is checked with
  :func:`accelkit.serving.limits.check_http_infer`; anything else is forwarded unchanged.
* **gRPC** (``grpcio``, raw bytes in and out): ``grpc.max_receive_message_length`` is
  the limit, so a larger message is refused by gRPC before it is read; ``ModelInfer``
  is parsed and checked with :func:`accelkit.serving.limits.check_grpc_infer`; other
  methods are forwarded; the streaming method is refused (the model is not decoupled).

A refused request gets a 4xx (HTTP, JSON ``{"error": ...}`` as Triton answers) or a
gRPC error with the reason; Triton never sees it. Memory is bounded too: request bodies
in flight share a byte budget (an all-JSON body counted at 8x its size: parsed, it is
Python objects), and client connections, gRPC workers and idle time are capped.
Triton's own ports listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import http.client
import http.server
import json
import logging
import re
import socket
import socketserver
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from accelkit.errors import InputError
from accelkit.serving.errors import PortInUseError
from accelkit.serving.limits import (
    Rejected,
    RequestLimits,
    check_grpc_infer,
    check_http_infer,
    check_size,
    not_found,
)

log = logging.getLogger(__name__)

#: Client connections the HTTP endpoint holds at once (more are answered 503 and closed).
MAX_HTTP_CONNECTIONS = 128
#: gRPC requests handled at once (each may hold one message of up to the limit) and queued.
GRPC_WORKERS = 16
MAX_GRPC_RPCS = 1024
#: Request bodies in flight, in units of the request limit.
BODY_BUDGET_REQUESTS = 4
#: Seconds a client connection may stay idle or take to send a request.
IDLE_TIMEOUT_S = 60.0
#: What an all-JSON body counts against the budget, per byte: parsed, a JSON array of numbers
#: takes up to ~8 bytes of Python objects per byte of text ("0.0," -> a float and a list slot).
JSON_EXPANSION = 8
#: Seconds a request may wait for room in the body budget before it is answered 503.
BUDGET_WAIT_S = 10.0
#: A body refused unread is still read and dropped, up to this many bytes and seconds, so the client
#: can finish sending and read the refusal (then the connection is closed).
DISCARD_BYTES = 256 * 2**20
DISCARD_TIMEOUT_S = 5.0
#: Seconds Triton may take to answer one forwarded request.
UPSTREAM_TIMEOUT_S = 600.0
#: Bytes a gRPC message may carry beyond the tensor limit (names, shapes, parameters).
GRPC_ENVELOPE_BYTES = 64 * 1024

SERVICE = "inference.GRPCInferenceService"
INFER_RE = re.compile(
    r"^/v2/models/(?P<model>[^/]+)(?:/versions/[^/]+)?/(?P<op>infer|generate|generate_stream)$"
)
#: The other POST routes of Triton's HTTP API (repository control, shared memory, trace,
#: logging: all behind PyTriton's access token); any other POST is answered 404 here.
CONTROL_POST_RE = re.compile(
    r"^/v2/(?:repository(?:/[^/]+)?/(?:index|models/[^/]+/(?:load|unload))"
    r"|(?:systemsharedmemory|cudasharedmemory)(?:/region/[^/]+)?/(?:status|register|unregister)"
    r"|trace/setting|logging|models/[^/]+(?:/versions/[^/]+)?/trace/setting)$"
)
#: Headers that describe one hop, not the request (RFC 9110 7.6.1), plus the ones the forwarder sets itself.
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "expect",
    }
)


class ByteBudget:
    """Bytes of request bodies the guard may hold at once (a counting semaphore in bytes)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._cv = threading.Condition()

    def acquire(self, n: int, timeout: float) -> bool:
        """Reserve ``n`` bytes, waiting up to ``timeout`` seconds; False when there was no room."""
        n = min(n, self.capacity)
        with self._cv:
            if not self._cv.wait_for(lambda: self._used + n <= self.capacity, timeout):
                return False
            self._used += n
            return True

    def release(self, n: int) -> None:
        """Return ``n`` bytes."""
        with self._cv:
            self._used -= min(n, self.capacity)
            self._cv.notify_all()


def _json_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


# ------------------------------------------------------------------------------ HTTP
class _HttpHandler(http.server.BaseHTTPRequestHandler):
    """One client connection: check, forward to Triton over a kept-alive connection, relay."""

    protocol_version = "HTTP/1.1"
    server_version = "accelkit-serve"
    timeout = IDLE_TIMEOUT_S
    server: _HttpFront

    def setup(self) -> None:
        super().setup()
        # headers and body are written separately: without this, Nagle + delayed ACK add ~40 ms
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        with contextlib.suppress(Exception):
            super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("guard http %s: " + format, self.client_address[0], *args)

    # -- body limits before reading -------------------------------------------------
    def _declared_length(self) -> int:
        """The body length the headers declare, checked against the limit.

        Raises:
            Rejected: No length (411), a compressed or chunked body (415 / 411), too long (413).
        """
        if self.headers.get("Transfer-Encoding"):
            raise Rejected(
                "send the body with a Content-Length (chunked bodies are not accepted)", 411
            )
        enc = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if enc != "identity":
            raise Rejected(
                f"Content-Encoding {enc} is not accepted (a compressed body can expand past the size limit); send it uncompressed",
                415,
            )
        raw = self.headers.get("Content-Length")
        if raw is None:
            if self.command == "POST":
                raise Rejected("send a Content-Length header with the body", 411)
            return 0
        try:
            n = int(raw)
        except ValueError:
            raise Rejected(f"Content-Length {raw[:40]!r} is not a number") from None
        if n < 0:
            raise Rejected(f"Content-Length {n} is negative")
        check_size(n, self.server.limits)
        return n

    def handle_expect_100(self) -> bool:
        try:
            self._declared_length()
        except Rejected as r:
            self._reply_error(r)
            return False
        return super().handle_expect_100()

    # -- methods --------------------------------------------------------------------
    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        limits = self.server.limits
        try:
            n = self._declared_length()
        except Rejected as r:
            self._reply_error(r)
            self._discard_body()
            return
        budget = self.server.budget
        # an all-JSON body becomes Python objects several times its size while it is checked
        cost = n if self.headers.get("Inference-Header-Content-Length") else JSON_EXPANSION * n
        if n and not budget.acquire(cost, BUDGET_WAIT_S):
            self.close_connection = True
            self._reply_error(
                Rejected(
                    "the server is busy receiving other large requests; retry shortly",
                    503,
                    "UNAVAILABLE",
                )
            )
            return
        try:
            body = self.rfile.read(n) if n else b""
            if len(body) != n:
                self.close_connection = True
                return  # the client went away mid-body
            path = self.path.split("?", 1)[0]
            m = INFER_RE.match(path)
            try:
                if self.command == "POST" and m is None and not CONTROL_POST_RE.match(path):
                    raise not_found(
                        f"no POST route {path[:80]!r}; send inference requests to /v2/models/{limits.model}/infer"
                    )
                if m is not None and self.command == "POST":
                    if m["op"] != "infer":
                        raise not_found(
                            f"{m['op']} is not served; send inference requests to /v2/models/{limits.model}/infer"
                        )
                    if m["model"] != limits.model:
                        raise not_found(
                            f"unknown model {m['model'][:60]!r}; this server serves {limits.model!r}"
                        )
                    hlen = self.headers.get("Inference-Header-Content-Length")
                    try:
                        header_length = None if hlen is None else int(hlen)
                    except ValueError:
                        raise Rejected(
                            f"Inference-Header-Content-Length {str(hlen)[:40]!r} is not a number"
                        ) from None
                    check_http_infer(body, header_length, limits)
            except Rejected as r:
                self._reply_error(r, body_read=True)
                return
            self._forward(body)
        finally:
            if n:
                budget.release(cost)

    # -- forwarding -----------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(
                "127.0.0.1", self.server.upstream_port, timeout=UPSTREAM_TIMEOUT_S
            )
        return self._upstream

    def _forward(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(
                    self.command,
                    self.path,
                    body=body if self.command == "POST" else None,
                    headers=headers,
                )
                resp = conn.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._upstream = None
                # a kept-alive connection Triton closed: retry once on a new one
                if attempt == 0 and isinstance(
                    exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                ):
                    continue
                self._reply_error(
                    Rejected(
                        f"the Triton server behind accelkit serve did not answer ({type(exc).__name__})",
                        502,
                        "UNAVAILABLE",
                    ),
                    body_read=True,
                )
                return
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_HEADERS:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, 414, 431, 501) as JSON, always with a status line."""
        if getattr(self, "request_version", "") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # no HTTP/0.9 replies without a status line
        reason = self.responses.get(code, ("error", ""))[0]
        self._reply_error(Rejected(f"{message or reason} (HTTP {code})", code))

    def _discard_body(self) -> None:
        """After refusing a body unread: read and drop what the client is still sending (bounded in
        bytes and time, 64 KiB at a time), so it can finish sending and read the refusal."""
        try:
            left = min(int(self.headers.get("Content-Length") or 0), DISCARD_BYTES)
        except ValueError:
            return
        with contextlib.suppress(OSError, ValueError):
            self.connection.settimeout(DISCARD_TIMEOUT_S)
            while left > 0 and (chunk := self.rfile.read1(min(left, 65536))):
                left -= len(chunk)

    def _reply_error(self, r: Rejected, body_read: bool = False) -> None:
        """Answer a refusal as Triton answers errors: ``{"error": "..."}``; close when the body was not read."""
        if not body_read:
            self.close_connection = True
        payload = _json_error(r.message)
        self.send_response(r.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(payload)


class _HttpFront(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Threaded HTTP server with a cap on connections and a byte budget for bodies."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, upstream_port: int, limits: RequestLimits) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.limits = limits
        self.upstream_port = upstream_port
        self.budget = ByteBudget(BODY_BUDGET_REQUESTS * limits.max_bytes)
        self._slots = threading.BoundedSemaphore(MAX_HTTP_CONNECTIONS)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__((host.strip("[]"), port), _HttpHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS lookup); the bound address is all we need
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = (
            str(self.server_address[0]),
            int(self.server_address[1]),
        )

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            payload = _json_error("too many open connections; retry shortly")
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                    + payload
                )
            self.shutdown_request(request)
            return
        with self._lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open.discard(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("guard http: error while serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open client connection (their threads then end)."""
        with self._lock:
            socks = list(self._open)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


# ------------------------------------------------------------------------------ gRPC
def _grpc_front(
    host: str, port: int, upstream_port: int, limits: RequestLimits
) -> tuple[Any, int, Any]:
    """Start the gRPC guard; returns (server, bound port, upstream channel)."""
    from accelkit.serving.deps import require_serve

    grpc = require_serve("grpc", "accelkit serve")
    pb = require_serve("tritonclient.grpc.service_pb2", "accelkit serve")
    from google.protobuf.message import DecodeError

    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    channel = grpc.insecure_channel(f"127.0.0.1:{upstream_port}", options=unlimited)
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    streaming = {
        f"/{SERVICE}/{m.name}" for m in service.methods if m.client_streaming or m.server_streaming
    }
    infer_method = f"/{SERVICE}/ModelInfer"
    calls: dict[str, Any] = {}

    def forward(method: str, raw: bytes, context: Any) -> bytes:
        call = calls.get(method)
        if call is None:
            call = calls[method] = channel.unary_unary(method)
        md = [
            (k, v)
            for k, v in context.invocation_metadata()
            if not k.startswith((":", "grpc-")) and k != "user-agent"
        ]
        # a client without a deadline reports ~1.8e10 s left, which gRPC cannot pass on
        left = context.time_remaining()
        timeout = min(left, UPSTREAM_TIMEOUT_S) if left is not None else UPSTREAM_TIMEOUT_S
        try:
            return bytes(call(raw, metadata=md, timeout=timeout))
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")
            raise  # unreachable: abort raises

    def infer(raw: bytes, context: Any) -> bytes:
        try:
            try:
                req = pb.ModelInferRequest.FromString(raw)
            except DecodeError:
                raise Rejected("the message is not a ModelInferRequest") from None
            check_grpc_infer(req, limits)
        except Rejected as r:
            context.abort(getattr(grpc.StatusCode, r.grpc_code), r.message)
        return forward(infer_method, raw, context)

    def refuse_stream(requests: Any, context: Any) -> Any:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "streaming inference is not served (the model is not decoupled); use ModelInfer",
        )

    class Router(grpc.GenericRpcHandler):  # type: ignore[misc,name-defined]
        def service(self, details: Any) -> Any:
            method = details.method
            if method == infer_method:
                return grpc.unary_unary_rpc_method_handler(infer)
            if method in streaming:
                return grpc.stream_stream_rpc_method_handler(refuse_stream)
            return grpc.unary_unary_rpc_method_handler(functools.partial(forward, method))

    server = grpc.server(
        ThreadPoolExecutor(GRPC_WORKERS, thread_name_prefix="accelkit-guard-grpc"),
        handlers=[Router()],
        maximum_concurrent_rpcs=MAX_GRPC_RPCS,
        options=[
            ("grpc.max_receive_message_length", limits.max_bytes + GRPC_ENVELOPE_BYTES),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ],
    )
    addr = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(addr)
    except RuntimeError:
        bound = 0
    if not bound:
        channel.close()
        raise PortInUseError(
            f"the gRPC endpoint cannot bind {addr}; stop what listens there or pass --grpc-port with another port (0 picks a free one)"
        )
    server.start()
    return server, int(bound), channel


# ------------------------------------------------------------------------------ both
class RequestGuard:
    """The HTTP and gRPC endpoints clients reach, checking every request before Triton sees it.

    Args:
        host: Address to bind (the user's ``--host``).
        http_port, grpc_port: Ports to bind (0: a free one).
        upstream_http_port, upstream_grpc_port: Triton's ports on 127.0.0.1.
        limits: What a request may ask (:class:`~accelkit.serving.limits.RequestLimits`).
    """

    def __init__(
        self,
        host: str,
        http_port: int,
        grpc_port: int,
        upstream_http_port: int,
        upstream_grpc_port: int,
        limits: RequestLimits,
    ) -> None:
        self.host = host
        self.limits = limits
        self._ports = (http_port, grpc_port, upstream_http_port, upstream_grpc_port)
        self._http: _HttpFront | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: Any = None
        self._channel: Any = None
        self.http_address = ""
        self.grpc_address = ""

    def start(self) -> RequestGuard:
        """Bind both endpoints and start serving; returns self.

        Raises:
            PortInUseError: A port is taken.
            InputError: ``host`` is not an address of this machine.
        """
        http_port, grpc_port, up_http, up_grpc = self._ports
        try:
            self._http = _HttpFront(self.host, http_port, up_http, self.limits)
        except OSError as exc:
            raise bind_error(exc, self.host, http_port, "--http-port") from None
        self._http_thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="accelkit-guard-http",
            daemon=True,
        )
        self._http_thread.start()
        try:
            self._grpc, bound, self._channel = _grpc_front(
                self.host, grpc_port, up_grpc, self.limits
            )
        except BaseException:
            self.stop()
            raise
        self.http_address = show_address(self._http.server_address[0], self._http.server_address[1])
        self.grpc_address = show_address(self.host, bound)
        return self

    def stop(self) -> None:
        """Stop accepting, close client connections. Idempotent."""
        if self._grpc is not None:
            self._grpc.stop(grace=1.0).wait(5.0)
            self._grpc = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http.close_connections()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(5.0)
            self._http_thread = None


def show_address(host: Any, port: int) -> str:
    """``host:port`` as bound (an IPv6 address in brackets)."""
    h = str(host).strip("[]")
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def bind_error(exc: OSError, host: str, port: int, flag: str) -> Exception:
    """The one-line error for a failed bind of ``host:port`` (``flag`` changes the port); ``exc`` itself when unforeseen."""
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"port {port} on {host} is in use; stop what listens there or pass {flag} with another port (0 picks a free one)"
        )
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return InputError(
            f"--host {host} is not an address of this machine; use 127.0.0.1 or 0.0.0.0"
        )
    if exc.errno == errno.EACCES:
        return PortInUseError(
            f"port {port} needs privileges to bind; pass {flag} with a port above 1023"
        )
    return exc


__all__ = ["ByteBudget", "RequestGuard", "bind_error", "show_address"]
