"""The server refuses what it cannot hold.

Three layers, fastest first:

* the request rules (:mod:`accelkit.serving.limits`) on declared inputs, HTTP bodies and
  gRPC messages, without a server (the serve extra is needed only for the gRPC protos);
* ``accelkit serve``'s options: binding beyond loopback needs ``--allow-remote`` and prints
  the warning; ``--max-request-mb`` bounds;
* a real Triton server behind the guard on loopback: 100 malformed requests over HTTP,
  raw sockets and gRPC (the issue's ``[100000000, 64]`` declaration among them) are each
  refused with a 4xx / gRPC error naming the problem, tritonserver's peak memory does not
  move, and a good request afterwards is answered with the in-process runner's images.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accelkit.serving.limits import (
    Declared,
    Rejected,
    RequestLimits,
    check_declared,
    check_http_infer,
)
from accelkit.serving.options import ServeOptions, is_loopback
from accelkit.serving.server import ServedTensor

#: Max abs difference between a served image and the in-process runner's, output units ([-1, 1]):
#: both run the same ONNX file in ONNX Runtime with one thread; a request may run inside a bigger
#: batch (float rounding only).
TOLERANCE = 1e-5

Z = ServedTensor("z", "float32", (64,), (64,))
LABEL = ServedTensor("y", "int64", (1,), ())
IMAGE = ServedTensor("image", "float32", (3, 64, 64), (3, 64, 64))


def _limits(max_bytes: int = 1 << 20, **kw: Any) -> RequestLimits:
    return RequestLimits.for_served(
        kw.pop("model", "dcgan"),
        kw.pop("inputs", [Z]),
        IMAGE,
        kw.pop("max_batch", 16),
        max_bytes,
        **kw,
    )


def _body(*inputs: dict, **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def _z(shape: Any, data: Any = None, **kw: Any) -> dict:
    d = {"name": "z", "shape": shape, "datatype": "FP32", **kw}
    if data is not None:
        d["data"] = data
    return d


# ------------------------------------------------------------------ the rules, no server
def test_a_good_request_passes_json_and_binary() -> None:
    lim = _limits()
    assert check_http_infer(_body(_z([2, 64], [0.5] * 128)), None, lim) == 2
    assert check_http_infer(_body(_z([1, 64], [[0.1] * 64])), None, lim) == 1  # nested data
    header = _body(_z([3, 64], parameters={"binary_data_size": 3 * 64 * 4}))
    body = header + np.zeros((3, 64), np.float32).tobytes()
    assert check_http_infer(body, len(header), lim) == 3


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        # the payload: 25.6 GB declared, 64 values carried
        (_body(_z([100_000_000, 64], [0.0] * 64)), 400, r"batch 100000000 is outside 1\.\.16"),
        (_body(_z([1, 100_000_000], [0.0] * 64)), 400, r"dim 1 is 100000000, expected 64"),
        (_body(_z([16, 64], [0.0] * 64)), 400, "holds 1024 values but data carries 64"),
        (_body(_z([17, 64], [0.0] * 17 * 64)), 400, r"batch 17 is outside 1\.\.16"),
        (_body(_z([0, 64], [])), 400, r"batch 0 is outside"),
        (_body(_z([1, -64], [0.0] * 64)), 400, "dim 1 is -64"),
        (_body(_z([1, 64, 1], [0.0] * 64)), 400, "has 3 dims"),
        (_body(_z([1.0, 64], [0.0] * 64)), 400, "shape must be a list of integers"),
        (_body(_z([True, 64], [0.0] * 64)), 400, "shape must be a list of integers"),
        (_body(_z("1,64", [0.0] * 64)), 400, "shape must be a list of integers"),
        (
            _body({**_z([1, 64], [0] * 64), "datatype": "INT64"}),
            400,
            "datatype 'INT64' is not the model's FP32",
        ),
        (_body(_z([1, 64], ["0.5"] * 64)), 400, "array of numbers"),
        (_body(_z([1, 64], [True] * 64)), 400, "array of numbers"),
        (_body(_z([1, 64], [[0.0] * 63, [0.0]])), 400, "array of numbers"),  # ragged
        (_body(_z([1, 64], {"a": 1})), 400, "data must be a JSON array"),
        (_body(_z([1, 64])), 400, "carries no data"),
        (_body(_z([1, 64], [0.0] * 64), {**_z([1, 64], [0.0] * 64)}), 400, "appears twice"),
        (_body({**_z([1, 64], [0.0] * 64), "name": "x"}), 400, "unknown input 'x'"),
        (_body(), 400, "has no inputs"),
        (_body(_z([1, 64], [0.0] * 64), outputs=[{"name": "nope"}]), 400, "unknown output 'nope'"),
        (
            _body(
                _z(
                    [1, 64],
                    parameters={"shared_memory_region": "r", "shared_memory_byte_size": 256},
                )
            ),
            400,
            "shared-memory inputs are not accepted",
        ),
        (b"{", 400, "not valid JSON"),
        (b"\xff\xfe\x00garbage", 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),  # nesting beyond the parser
        (
            b'{"inputs": [{"name": "z", "shape": [1, 64], "datatype": "FP32", "data": [NaN]}]}',
            400,
            "not valid JSON",
        ),
        (b"[]", 400, 'needs an "inputs" array'),
        (b'{"inputs": 5}', 400, 'needs an "inputs" array'),
        (b'{"inputs": [5]}', 400, "must be a JSON object"),
        (_body(*[_z([1, 64], [0.0] * 64)] * 100), 400, "lists 100 inputs"),
    ],
)
def test_bad_http_requests_are_refused_by_declared_fields(
    body: bytes, status: int, match: str
) -> None:
    with pytest.raises(Rejected, match=match) as info:
        check_http_infer(body, None, _limits())
    assert info.value.status == status


def test_declared_bytes_over_the_limit_are_413_before_data_is_looked_at() -> None:
    lim = _limits(max_bytes=4096, inputs=[ServedTensor("x", "float32", (3, -1, -1), (3, -1, -1))])
    body = _body({"name": "x", "shape": [1, 3, 1000, 1000], "datatype": "FP32", "data": [0.0]})
    with pytest.raises(
        Rejected, match=r"declares 11\.4 MiB; this server accepts requests of at most 4096 bytes"
    ) as info:
        check_http_infer(body, None, lim)
    assert (info.value.status, info.value.grpc_code) == (413, "RESOURCE_EXHAUSTED")
    # Python ints: a declaration whose byte count overflows int64 is just "too large"
    huge = _body({"name": "x", "shape": [1, 3, 2**62, 2**62], "datatype": "FP32", "data": [0.0]})
    with pytest.raises(Rejected, match="declares") as info:
        check_http_infer(huge, None, lim)
    assert info.value.status == 413


def test_binary_sizes_must_match_shape_and_body() -> None:
    lim = _limits()
    header = _body(_z([2, 64], parameters={"binary_data_size": 100}))
    with pytest.raises(Rejected, match="holds 512 bytes of FP32 but the request gives 100 bytes"):
        check_http_infer(header + b"\0" * 100, len(header), lim)
    header = _body(_z([2, 64], parameters={"binary_data_size": 512}))
    with pytest.raises(Rejected, match="declare 512 bytes of binary data but the body carries 10"):
        check_http_infer(header + b"\0" * 10, len(header), lim)
    with pytest.raises(Rejected, match="does not fit the"):
        check_http_infer(header, len(header) + 1, lim)
    with pytest.raises(Rejected, match="is negative"):
        h = _body(_z([2, 64], parameters={"binary_data_size": -5}))
        check_http_infer(h, len(h), lim)


def test_dynamic_spatial_dims_stay_within_the_generators_range() -> None:
    x = ServedTensor("x", "float32", (3, -1, -1), (3, -1, -1))
    lim = _limits(max_bytes=1 << 24, inputs=[x], hw_range=(16, 32, 64))

    def decl(h: int, w: int) -> list[Declared]:
        return [Declared("x", "FP32", [1, 3, h, w], "binary", None, 3 * h * w * 4)]

    assert check_declared(decl(64, 16), lim) == 1
    with pytest.raises(Rejected, match=r"spatial size 65 is outside 16\.\.64"):
        check_declared(decl(32, 65), lim)


def test_class_labels_out_of_range_are_refused() -> None:
    lim = _limits(inputs=[Z, LABEL], classes={"y": 10})
    z = _z([2, 64], [0.0] * 128)
    ok = _body(z, {"name": "y", "shape": [2, 1], "datatype": "INT64", "data": [0, 9]})
    assert check_http_infer(ok, None, lim) == 2
    bad = _body(z, {"name": "y", "shape": [2, 1], "datatype": "INT64", "data": [3, 10**9]})
    with pytest.raises(Rejected, match=r"class labels must lie in 0\.\.9, got 3\.\.1000000000"):
        check_http_infer(bad, None, lim)
    # binary labels are read from the body
    header = _body(
        z,
        {"name": "y", "shape": [2, 1], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
    )
    with pytest.raises(Rejected, match=r"got -1\.\.9"):
        check_http_infer(header + np.array([9, -1], "<i8").tobytes(), len(header), lim)
    with pytest.raises(Rejected, match="lacks input"):
        check_http_infer(_body(z), None, lim)


def test_grpc_messages_follow_the_same_rules() -> None:
    pb = pytest.importorskip(
        "tritonclient.grpc.service_pb2", reason="the serve extra (tritonclient) is not installed"
    )
    from accelkit.serving.limits import check_grpc_infer

    lim = _limits()

    def req(shape: list[int], n: int | None = None, raw: bytes | None = None, **kw: Any) -> Any:
        r = pb.ModelInferRequest(model_name=kw.get("model", "dcgan"))
        t = r.inputs.add(name=kw.get("name", "z"), datatype=kw.get("datatype", "FP32"), shape=shape)
        if n is not None:
            t.contents.fp32_contents.extend([0.0] * n)
        if raw is not None:
            r.raw_input_contents.append(raw)
        return r

    assert check_grpc_infer(req([2, 64], 128), lim) == 2
    assert check_grpc_infer(req([2, 64], raw=b"\0" * 512), lim) == 2
    cases = [
        (req([100_000_000, 64], 64), "INVALID_ARGUMENT", "batch 100000000"),
        (req([2, 64], 64), "INVALID_ARGUMENT", "holds 128 values but contents carry 64"),
        (req([2, 64], raw=b"\0" * 12), "INVALID_ARGUMENT", "gives 12 bytes"),
        (req([2, 64], model="other", n=128), "NOT_FOUND", "unknown model 'other'"),
        (req([2, 64], 128, datatype="FP16"), "INVALID_ARGUMENT", "not the model's FP32"),
        (req([2, 64], 128, raw=b"\0" * 512), "INVALID_ARGUMENT", "not both"),
        (req([1, 3, 10**6], 1), "INVALID_ARGUMENT", "has 3 dims"),
    ]
    wrong_field = req([1, 64])
    wrong_field.inputs[0].contents.int64_contents.extend([0] * 64)
    cases.append(
        (wrong_field, "INVALID_ARGUMENT", "goes in contents.fp32_contents, got int64_contents")
    )
    for r, code, match in cases:
        with pytest.raises(Rejected, match=match) as info:
            check_grpc_infer(r, lim)
        assert info.value.grpc_code == code


# ------------------------------------------------------------------ options and the CLI
def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.1.2.3", "myhost.example"))


def test_binding_beyond_loopback_needs_allow_remote() -> None:
    from accelkit.errors import InputError

    with pytest.raises(
        InputError,
        match=r"--host 0\.0\.0\.0 may be reachable .* no authentication; pass --allow-remote",
    ):
        ServeOptions(host="0.0.0.0").validated()
    opts = ServeOptions(host="0.0.0.0", allow_remote=True).validated()
    warning = opts.remote_warning()
    assert warning is not None and "every interface" in warning and "no authentication" in warning
    assert "8000 (HTTP), 8001 (gRPC), 8002 (metrics)" in warning
    assert ServeOptions().validated().remote_warning() is None
    for bad in (0, 512, 2**31, 1.5):
        with pytest.raises(InputError, match="--max-request-mb"):
            ServeOptions(max_request_bytes=bad).validated()  # type: ignore[arg-type]


def test_cli_refuses_remote_host_without_the_flag_and_warns_with_it() -> None:
    """Through the real command (in-process): exit 2 naming the flag; with it, the warning comes
    before anything binds (a taken port then stops the start, so nothing listens beyond loopback)."""
    from typer.testing import CliRunner

    from accelkit.cli import app

    res = CliRunner().invoke(app, ["serve", "dcgan", "--host", "0.0.0.0"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 may be reachable from other machines, and Triton's inference API has no "
        "authentication; pass --allow-remote to serve there anyway, or keep the default --host 127.0.0.1"
    ]
    res = CliRunner().invoke(app, ["serve", "dcgan", "--max-request-mb", "nan"])
    assert res.exit_code == 2 and "--max-request-mb nan: give a size between" in res.stderr
    res = CliRunner().invoke(app, ["serve", "dcgan", "--max-request-mb", "1e300"])
    assert res.exit_code == 2 and "--max-request-mb 1e+300: give a size between" in res.stderr
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = CliRunner().invoke(
            app,
            [
                "serve",
                "dcgan",
                "--backend",
                "torch",
                "--host",
                "0.0.0.0",
                "--allow-remote",
                "--http-port",
                str(port),
            ],
        )
    err = res.stderr.strip().splitlines()
    assert err[0].startswith(
        "warning: serving on every interface (--host 0.0.0.0 --allow-remote): Triton's inference API has no authentication"
    )
    assert res.exit_code == 2 and err[-1].startswith("error:"), res.stderr
    assert f"port {port}" in err[-1] or "serve extra" in err[-1]


def test_ready_line_prints_the_addresses_actually_bound() -> None:
    from accelkit.cli.serve import ready_line
    from accelkit.serving.server import ServerInfo

    info = ServerInfo(
        model="dcgan",
        http_url="127.0.0.1:8000",
        grpc_url="127.0.0.1:8001",
        metrics_url="127.0.0.1:8002/metrics",
        backend="ort",
        precision="fp32",
        device="cpu",
        max_batch=32,
        max_queue_delay_us=500,
        preferred_batches=[32],
        instances=1,
        bind={"http": "0.0.0.0:8000", "grpc": "0.0.0.0:8001", "metrics": "0.0.0.0:8002"},
        max_request_bytes=64 << 20,
    )
    line = ready_line(info)
    assert "HTTP 0.0.0.0:8000, gRPC 0.0.0.0:8001, metrics http://0.0.0.0:8002/metrics" in line
    assert "(from this machine: HTTP 127.0.0.1:8000, gRPC 127.0.0.1:8001)" in line
    assert "requests up to 64 MiB" in line


# ------------------------------------------------------------------ a real server
LIMIT = 1 << 20  # the test server's --max-request-mb 1


@pytest.fixture(scope="module")
def server(dcgan_onnx):
    from accelkit.serving.server import GeneratorServer
    from tests.fixtures.serving import loopback_options

    opts = loopback_options(max_request_bytes=LIMIT, exit_timeout_s=1)
    with GeneratorServer(dcgan_onnx, "ort", opts) as srv:
        yield srv


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _http(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    host, port = url.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _raw(url: str, payload: bytes) -> bytes:
    """Send bytes on a fresh socket; return what comes back until the server closes (or 10 s)."""
    host, port = url.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


INFER = "/v2/models/dcgan/infer"


def _http_cases() -> list[tuple[str, str, bytes | None, dict, int, str]]:
    """(what, path, body, headers, status, message part) of malformed HTTP requests."""
    good = [0.0] * 64
    cases: list[tuple[str, str, bytes | None, dict, int, str]] = []
    for n in (100_000_000, 10**12, 2**40, 17, 1000):  # the payload first
        cases.append(
            (f"batch {n}", INFER, _body(_z([n, 64], good)), {}, 400, f"batch {n} is outside 1..16")
        )
    for shape in (
        [1, 100_000_000],
        [1, 63],
        [1, 64, 1],
        [64],
        [],
        [1, 0],
        [1, -1],
        [-5, 64],
        [2**63, 64],
        [1, 2**63],
        [2**64 + 1, 2**64 + 1],
    ):
        cases.append((f"shape {shape}", INFER, _body(_z(shape, good)), {}, 400, "input 'z'"))
    for shape in ("x", [1.5, 64], [None, 64], {"a": 1}):
        cases.append(
            (
                f"shape {shape!r}",
                INFER,
                _body(_z(shape, good)),
                {},
                400,
                "shape must be a list of integers",
            )
        )
    for n_values in (0, 63, 65, 128, 1024):
        cases.append(
            (
                f"{n_values} values",
                INFER,
                _body(_z([1, 64], [0.0] * n_values)),
                {},
                400,
                "data carries",
            )
        )
    for dtype in ("INT64", "FP16", "BYTES", "fp32", None, 7, "FP64", "UINT8", "BOOL"):
        cases.append(
            (
                f"dtype {dtype}",
                INFER,
                _body({**_z([1, 64], good), "datatype": dtype}),
                {},
                400,
                "datatype",
            )
        )
    for data in (["x"] * 64, [True] * 64, [None] * 64, [[0.0] * 32, [0.0] * 31]):
        cases.append(("bad data", INFER, _body(_z([1, 64], data)), {}, 400, "array of numbers"))
    for garbage in (
        b"{",
        b"not json",
        b"\xff\xfe\xfd",
        b"null",
        b"[]",
        b'{"inputs": 5}',
        b'{"inputs": [5]}',
        b"[" * 50_000,
    ):
        cases.append((f"garbage {garbage[:10]!r}", INFER, garbage, {}, 400, ""))
    header = _body(_z([2, 64], parameters={"binary_data_size": 512}))
    hlen = {"Inference-Header-Content-Length": str(len(header))}
    big_header = _body(_z([10**8, 64], parameters={"binary_data_size": 256}))
    cases += [
        ("binary short", INFER, header + b"\0" * 100, hlen, 400, "binary data"),
        ("binary long", INFER, header + b"\0" * 600, hlen, 400, "binary data"),
        (
            "binary size lies",
            INFER,
            _body(_z([2, 64], parameters={"binary_data_size": 4})) + b"\0" * 4,
            {},
            400,
            "",
        ),
        (
            "header length past body",
            INFER,
            header,
            {"Inference-Header-Content-Length": str(len(header) + 9)},
            400,
            "does not fit",
        ),
        (
            "header length 0",
            INFER,
            header + b"\0" * 512,
            {"Inference-Header-Content-Length": "0"},
            400,
            "does not fit",
        ),
        (
            "header length text",
            INFER,
            header + b"\0" * 512,
            {"Inference-Header-Content-Length": "abc"},
            400,
            "not a number",
        ),
        (
            "binary garbage",
            INFER,
            b"\x00" * 512,
            {"Inference-Header-Content-Length": "256"},
            400,
            "not valid JSON",
        ),
        (
            "binary batch 10^8",
            INFER,
            big_header + b"\0" * 256,
            {"Inference-Header-Content-Length": str(len(big_header))},
            400,
            "batch",
        ),
        (
            "shared memory",
            INFER,
            _body(
                _z(
                    [1, 64],
                    parameters={"shared_memory_region": "x", "shared_memory_byte_size": 256},
                )
            ),
            {},
            400,
            "shared-memory",
        ),
        (
            "unknown input",
            INFER,
            _body({**_z([1, 64], good), "name": "w"}),
            {},
            400,
            "unknown input",
        ),
        ("twice", INFER, _body(_z([1, 64], good), _z([1, 64], good)), {}, 400, "twice"),
        ("no inputs", INFER, _body(), {}, 400, "no inputs"),
        (
            "unknown output",
            INFER,
            _body(_z([1, 64], good), outputs=[{"name": "x"}]),
            {},
            400,
            "unknown output",
        ),
        ("too big body", INFER, b" " * (LIMIT + 1), {}, 413, "at most 1 MiB"),
        (
            "gzip body",
            INFER,
            b"\x1f\x8b" + b"\0" * 20,
            {"Content-Encoding": "gzip"},
            415,
            "not accepted",
        ),
        (
            "unknown model",
            "/v2/models/other/infer",
            _body(_z([1, 64], good)),
            {},
            404,
            "unknown model",
        ),
        (
            "generate",
            "/v2/models/dcgan/generate",
            b'{"z": [0.0]}',
            {},
            404,
            "generate is not served",
        ),
        (
            "other POST",
            "/v2/models/dcgan/infer/",
            _body(_z([1, 64], good)),
            {},
            404,
            "no POST route",
        ),
        (
            # http.server folds the leading slashes, and the folded path is the one checked and forwarded
            "double slash",
            "//v2/models/dcgan/infer",
            _body(_z([10**8, 64], good)),
            {},
            400,
            "batch 100000000",
        ),
        (
            "query string",
            INFER + "?x=1",
            _body(_z([10**8, 64], good)),
            {},
            400,
            "batch 100000000",
        ),
    ]
    return cases


def _raw_cases(url: str) -> list[tuple[str, bytes, bytes]]:
    """(what, bytes on the wire, expected status line start) for requests http.client would not send."""
    host = url.rsplit(":", 1)[0]
    post = f"POST {INFER} HTTP/1.1\r\nHost: {host}\r\n".encode()
    return [
        ("no length", post + b"\r\n", b"HTTP/1.1 411"),
        (
            "chunked",
            post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 411",
        ),
        ("huge length, no body", post + b"Content-Length: 1000000000000\r\n\r\n", b"HTTP/1.1 413"),
        (
            "expect 100",
            post + b"Content-Length: 99999999999\r\nExpect: 100-continue\r\n\r\n",
            b"HTTP/1.1 413",
        ),
        ("negative length", post + b"Content-Length: -5\r\n\r\n", b"HTTP/1.1 400"),
        ("text length", post + b"Content-Length: many\r\n\r\n", b"HTTP/1.1 400"),
        ("garbage line", b"\x00\x01\x02 garbage\r\n\r\n", b"HTTP/1.1 400"),
        ("long line", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 414"),
        ("many headers", b"GET /v2 HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"HTTP/1.1 431"),
        ("PUT", f"PUT {INFER} HTTP/1.1\r\nContent-Length: 0\r\n\r\n".encode(), b"HTTP/1.1 501"),
        ("DELETE", f"DELETE {INFER} HTTP/1.1\r\n\r\n".encode(), b"HTTP/1.1 501"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"HTTP/1.1 50"),
    ]


def _grpc_cases(pb: Any) -> list[tuple[str, str, bytes, str, str]]:
    """(what, method, message bytes, expected status code name, message part)."""

    def req(shape: list[int], n: int | None = 64, raw: bytes | None = None, **kw: Any) -> bytes:
        r = pb.ModelInferRequest(model_name=kw.get("model", "dcgan"))
        t = r.inputs.add(name=kw.get("name", "z"), datatype=kw.get("datatype", "FP32"), shape=shape)
        if n is not None and raw is None:
            t.contents.fp32_contents.extend([0.0] * n)
        if raw is not None:
            r.raw_input_contents.append(raw)
        return r.SerializeToString()

    infer = "/inference.GRPCInferenceService/ModelInfer"
    out = [
        (f"grpc shape {shape}", infer, req(shape), "INVALID_ARGUMENT", "input 'z'")
        for shape in ([0, 64], [-1, 64], [1, 64, 1], [], [2**62, 64], [1, -64])
    ]
    out += [
        (f"grpc dtype {dt}", infer, req([1, 64], datatype=dt), "INVALID_ARGUMENT", "datatype")
        for dt in ("BYTES", "FP64", "BOOL", "")
    ]
    out += [
        ("grpc [1e8, 64]", infer, req([100_000_000, 64]), "INVALID_ARGUMENT", "batch 100000000"),
        ("grpc batch 17", infer, req([17, 64], 17 * 64), "INVALID_ARGUMENT", "batch 17"),
        ("grpc count", infer, req([2, 64]), "INVALID_ARGUMENT", "contents carry 64"),
        ("grpc raw size", infer, req([2, 64], raw=b"\0" * 8), "INVALID_ARGUMENT", "gives 8 bytes"),
        ("grpc raw batch", infer, req([10**9, 64], raw=b"\0" * 256), "INVALID_ARGUMENT", "batch"),
        ("grpc dims", infer, req([1, 10**9]), "INVALID_ARGUMENT", "expected 64"),
        ("grpc dtype", infer, req([1, 64], datatype="INT64"), "INVALID_ARGUMENT", "datatype"),
        ("grpc model", infer, req([1, 64], model="nope"), "NOT_FOUND", "unknown model"),
        ("grpc input", infer, req([1, 64], name="q"), "INVALID_ARGUMENT", "unknown input"),
        ("grpc no data", infer, req([1, 64], n=None), "INVALID_ARGUMENT", "carries no data"),
        ("grpc garbage", infer, b"\xff" * 40, "INVALID_ARGUMENT", "not a ModelInferRequest"),
        (
            "grpc too big",
            infer,
            req([1, 64], raw=b"\0" * (LIMIT + 100_000)),
            "RESOURCE_EXHAUSTED",
            "",
        ),
    ]
    return out


@pytest.mark.slow
def test_server_survives_100_malformed_requests_then_answers(server, dcgan_onnx) -> None:
    import grpc

    pb = pytest.importorskip("tritonclient.grpc.service_pb2")
    tc_grpc = pytest.importorskip("tritonclient.grpc")
    from accelkit.runners.base import create_runner
    from accelkit.sampler import LatentSampler
    from accelkit.serving.server import request_inputs

    info = server.info
    pid = server.server_pid()
    peak0 = _peak_rss_kb(pid)
    refused = 0
    for what, path, body, headers, status, part in _http_cases():
        got, text = _http(info.http_url, "POST", path, body, headers)
        assert got == status, (what, got, text[:300])
        msg = json.loads(text)["error"]
        assert part in msg, (what, msg)
        refused += 1
    for what, payload, want in _raw_cases(info.http_url):
        reply = _raw(info.http_url, payload)
        assert reply.startswith(want), (what, reply[:200])
        refused += 1
    with grpc.insecure_channel(info.grpc_url) as channel:
        for what, method, raw, code, part in _grpc_cases(pb):
            call = channel.unary_unary(method)
            with pytest.raises(grpc.RpcError) as err:
                call(raw, timeout=30)
            assert err.value.code().name == code, (what, err.value.code(), err.value.details())
            assert part in (err.value.details() or ""), (what, err.value.details())
            refused += 1
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        with pytest.raises(grpc.RpcError) as err:
            list(stream(iter([b""]), timeout=30))
        assert err.value.code().name == "UNIMPLEMENTED"
        refused += 1
    assert refused >= 100, refused
    assert server.alive()
    # nothing was allocated from a declared shape: tritonserver's peak memory barely moved
    assert _peak_rss_kb(pid) - peak0 < 100_000, (peak0, _peak_rss_kb(pid))

    feeds = LatentSampler(dcgan_onnx.spec, seed=5).inputs(0, 4)
    client = tc_grpc.InferenceServerClient(info.grpc_url)
    try:
        served = client.infer("dcgan", request_inputs(tc_grpc, server.inputs, feeds)).as_numpy(
            server.output.name
        )
    finally:
        client.close()
    status, text = _http(
        info.http_url, "POST", INFER, _body(_z([4, 64], feeds["z"].ravel().tolist())), {}
    )
    assert status == 200, text[:300]
    out = json.loads(text)["outputs"][0]
    served_http = np.asarray(out["data"], np.float32).reshape(out["shape"])
    with create_runner("ort", dcgan_onnx, "cpu", threads=1) as runner:
        want = runner.infer(feeds)
    assert served.shape == (4, 3, 64, 64)
    assert np.abs(served - want).max() <= TOLERANCE
    assert np.abs(served_http - want).max() <= TOLERANCE


@pytest.mark.slow
def test_other_endpoints_pass_through_the_guard(server) -> None:
    info = server.info
    status, text = _http(info.http_url, "GET", "/v2/models/dcgan/config")
    cfg = json.loads(text)
    assert status == 200 and cfg["max_batch_size"] == 16
    # the served config names accelkit's runner and precision (a load test of the URL reports them)
    assert cfg["parameters"]["accelkit_backend"]["string_value"] == "ort"
    assert cfg["parameters"]["accelkit_precision"]["string_value"] == "fp32"
    assert _http(info.http_url, "GET", "/v2/health/ready")[0] == 200
    # PyTriton's access token still guards repository control
    status, _ = _http(info.http_url, "POST", "/v2/repository/index", b"{}")
    assert status in (401, 403)
    assert server.info.bind["http"] == info.http_url and server.info.max_request_bytes == LIMIT


@pytest.mark.slow
def test_class_labels_are_checked_on_a_conditional_generator(dcgan_onnx, tmp_path: Path) -> None:
    """A label input (int64 [N, 1], 5 classes): good requests equal the in-process runner; an
    out-of-range label is refused before it could fail the batch Triton would put it in."""
    tc_grpc = pytest.importorskip("tritonclient.grpc")
    from accelkit.runners.base import create_runner
    from accelkit.sampler import LatentSampler
    from accelkit.serving.server import GeneratorServer, request_inputs
    from tests.fixtures.generators import onnx_artifact

    art, _ = onnx_artifact("cond", tmp_path)
    opts = ServeOptions(
        name="cond", http_port=0, grpc_port=0, metrics_port=0, threads=1, max_batch=8
    )
    feeds = LatentSampler(art.spec, seed=1).inputs(0, 3)
    bad = {**feeds, "label": np.array([0, 7, 1], np.int64)}
    with (
        GeneratorServer(art, "ort", opts) as srv,
        create_runner("ort", art, "cpu", threads=1) as runner,
    ):
        assert srv.info is not None
        client = tc_grpc.InferenceServerClient(srv.info.grpc_url)
        try:
            with pytest.raises(Exception, match=r"class labels must lie in 0\.\.4, got 0\.\.7"):
                client.infer("cond", request_inputs(tc_grpc, srv.inputs, bad))
            status, text = _http(
                srv.info.http_url,
                "POST",
                "/v2/models/cond/infer",
                _body(
                    {
                        "name": "z",
                        "shape": [3, 8],
                        "datatype": "FP32",
                        "data": feeds["z"].ravel().tolist(),
                    },
                    {"name": "label", "shape": [3, 1], "datatype": "INT64", "data": [0, 7, 1]},
                ),
            )
            assert status == 400 and "class labels" in json.loads(text)["error"]
            served = client.infer("cond", request_inputs(tc_grpc, srv.inputs, feeds)).as_numpy(
                srv.output.name
            )
        finally:
            client.close()
        assert np.abs(served - runner.infer(feeds)).max() <= TOLERANCE


def test_byte_budget_bounds_bodies_in_flight() -> None:
    from accelkit.serving.guard import ByteBudget

    b = ByteBudget(100)
    assert b.acquire(60, 0.0) and not b.acquire(60, 0.05)  # no room: refused after the wait
    assert b.acquire(10**9, 0.0) is False  # larger than the capacity: waits for all of it
    b.release(60)
    assert b.acquire(10**9, 0.0)  # ... and then takes the whole budget
    b.release(10**9)
    assert b.acquire(100, 0.0)
