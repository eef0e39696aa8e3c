"""A real Triton Inference Server (PyTriton) on loopback ports, serving the bundled DCGAN through ORT.

One server is started for the whole module (start ~3-6 s, stop a few seconds): images
served must equal the in-process runner's output for the same latents, concurrent
requests must come back to their own caller, /metrics and statistics answer, and a
short, bounded load sweep writes serving rows into a report.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "pytriton.triton",
    reason="the serve extra (nvidia-pytriton) is not installed: pip install 'accelkit[serve]'",
)
grpc = pytest.importorskip(
    "tritonclient.grpc", reason="the serve extra (tritonclient) is not installed"
)
http = pytest.importorskip(
    "tritonclient.http", reason="the serve extra (tritonclient) is not installed"
)

from accelkit.runners.base import create_runner  # noqa: E402
from accelkit.sampler import LatentSampler  # noqa: E402
from accelkit.serving.errors import PortInUseError  # noqa: E402
from accelkit.serving.options import LoadtestOptions, ServeOptions  # noqa: E402
from accelkit.serving.server import GeneratorServer, request_inputs  # noqa: E402
from tests.fixtures.serving import loopback_options  # noqa: E402

pytestmark = pytest.mark.slow

#: Max abs difference allowed between a served image and the in-process runner's, in output units ([-1, 1]).
#: Both run the same ONNX file in ONNX Runtime with the same thread count; Triton's dynamic batcher may run a
#: request inside a bigger batch than the reference, which may change ORT's kernel blocking (float rounding only).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def server(dcgan_onnx):
    opts = loopback_options(max_queue_delay_us=2000)
    with GeneratorServer(dcgan_onnx, "ort", opts) as srv:
        yield srv


@pytest.fixture(scope="module")
def reference(dcgan_onnx):
    with create_runner("ort", dcgan_onnx, "cpu", threads=1) as runner:
        yield runner


def _infer(url: str, srv: GeneratorServer, feeds: dict) -> np.ndarray:
    client = grpc.InferenceServerClient(url)
    try:
        return client.infer(srv.name, request_inputs(grpc, srv.inputs, feeds)).as_numpy(
            srv.output.name
        )
    finally:
        client.close()


def test_served_images_equal_in_process_runner(
    server: GeneratorServer, reference, dcgan_onnx
) -> None:
    assert server.info is not None and server.info.grpc_url.startswith("127.0.0.1:")
    sampler = LatentSampler(dcgan_onnx.spec, seed=7)
    for start, n in ((0, 1), (1, 4), (5, 16)):
        feeds = sampler.inputs(start, n)
        served = _infer(server.info.grpc_url, server, feeds)
        want = reference.infer(feeds)
        assert served.shape == (n, 3, 64, 64) and served.dtype == np.float32
        assert np.abs(served - want).max() <= TOLERANCE
    hclient = http.InferenceServerClient(
        server.info.http_url
    )  # the HTTP endpoint serves the same model
    try:
        feeds = sampler.inputs(100, 2)
        out = hclient.infer(server.name, request_inputs(http, server.inputs, feeds)).as_numpy(
            server.output.name
        )
    finally:
        hclient.close()
    assert np.abs(out - reference.infer(feeds)).max() <= TOLERANCE


def test_concurrent_requests_get_their_own_images(
    server: GeneratorServer, reference, dcgan_onnx
) -> None:
    """8 callers at once: the dynamic batcher merges them, and each must get back the images of its own latents."""
    sampler = LatentSampler(dcgan_onnx.spec, seed=3)
    feeds = [sampler.inputs(10 * k, 1 + k % 3) for k in range(8)]
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def call(k: int) -> None:
        try:
            got[k] = _infer(server.info.grpc_url, server, feeds[k])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for k in range(8):
        assert np.abs(got[k] - reference.infer(feeds[k])).max() <= TOLERANCE


def test_metrics_and_statistics(server: GeneratorServer) -> None:
    from accelkit.serving.loadgen import connect, statistics

    with urllib.request.urlopen(f"http://{server.info.metrics_url}", timeout=10) as r:
        text = r.read().decode()
    assert "nv_inference_request_success" in text
    client = connect(server.info.grpc_url, "grpc")
    stats = statistics(client, server.name)
    client.close()
    assert stats is not None and stats["success_count"] >= 1 and stats["executions"] >= 1


def test_bounded_load_sweep_writes_serving_rows(server: GeneratorServer, tmp_path: Path) -> None:
    from accelkit.benchmark.report import Report
    from accelkit.pipelines.serve import loadtest

    opts = LoadtestOptions(
        concurrency=(1, 4),
        window_s=0.5,
        windows=2,
        warmup_s=0.2,
        max_requests=2000,
        out=tmp_path / "lt",
    )
    res = loadtest(f"grpc://{server.info.grpc_url}", opts)
    assert [lv.concurrency for lv in res.levels] == [1, 4]
    for lv in res.levels:
        assert len(lv.images_per_sec_samples) == 2 and lv.images_per_sec > 0
        assert lv.server_ms is not None and lv.server_ms["compute_infer"] > 0 and lv.server_requests
    rep = Report.load(tmp_path / "lt")
    rows = [r for r in rep.rows if r.scenario == "serving"]
    assert [r.concurrency for r in rows] == [1, 4] and {r.label for r in rows} == {
        "ort@triton c1",
        "ort@triton c4",
    }
    assert (tmp_path / "lt" / "serving.png").stat().st_size > 1000
    md = (tmp_path / "lt" / "results.md").read_text()
    assert "## Serving (Triton Inference Server)" in md
    assert "concurrency" in res.to_text() and "best: concurrency" in res.to_text()


def test_taken_port_is_a_one_line_error(dcgan_onnx) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(
            PortInUseError, match=rf"port {port} on 127.0.0.1 is in use; .* --http-port"
        ):
            GeneratorServer(
                dcgan_onnx, "ort", ServeOptions(http_port=port, grpc_port=0, metrics_port=0)
            ).start()
