"""`accelkit serve` as a user runs it: a real subprocess, a real server, stopped by SIGINT and by SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_serve_without_the_extra_names_it() -> None:
    script = (
        "import sys\n"
        "for m in ('pytriton', 'pytriton.triton', 'pytriton.model_config', 'tritonclient', 'tritonclient.http', 'tritonclient.grpc'):\n"
        "    sys.modules[m] = None\n"
        "sys.argv = ['accelkit', 'serve', 'dcgan', '--backend', 'torch']\n"
        "from accelkit.cli import main\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "pip install 'accelkit[serve]'" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


pytest.importorskip(
    "pytriton.triton",
    reason="the serve extra (nvidia-pytriton) is not installed: pip install 'accelkit[serve]'",
)
grpc = pytest.importorskip(
    "tritonclient.grpc", reason="the serve extra (tritonclient) is not installed"
)


def _lines(stream, q: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        q.put(line)
    q.put(None)


def _port_open(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


def _tritonserver_child(pid: int) -> int:
    """The pid of the tritonserver process ``pid`` started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and comm == "tritonserver":
            return int(stat.parent.name)
    raise AssertionError(f"no tritonserver child of {pid}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_serve_answers_then_stops_cleanly_on_signal(sig: signal.Signals, dcgan_onnx: Any) -> None:
    """SIGINT / SIGTERM to accelkit serve: a clean stop, exit 130 / 143 as for every command.
    SIGKILL to its tritonserver (what the out-of-memory killer does): exit 1 naming that, not a CUDA line."""
    from accelkit.loading import load_generator
    from accelkit.runners.base import create_runner
    from accelkit.sampler import LatentSampler
    from accelkit.serving.server import request_inputs, served_io

    # SIGINT and SIGKILL serve the exported file; SIGTERM the bundled name (exported to a temporary ONNX by the command).
    target = "dcgan" if sig == signal.SIGTERM else str(dcgan_onnx.path)
    cmd = [
        sys.executable,
        "-m",
        "accelkit",
        "serve",
        target,
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
        "--threads",
        "1",
        "--name",
        "dcgan",
        "--exit-timeout",
        "2",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True).start()
    try:
        ready = None
        deadline = time.monotonic() + 180
        while ready is None and time.monotonic() < deadline:
            try:
                line = out.get(timeout=5)
            except queue.Empty:
                continue
            assert line is not None, (
                f"accelkit serve exited early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
            )
            if line.startswith("ready:"):
                ready = line
        assert ready is not None, "no ready line within 180 s"
        grpc_url = re.search(r"gRPC (\S+),", ready).group(1)  # type: ignore[union-attr]
        assert grpc_url.startswith("127.0.0.1:")

        http_url = re.search(r"HTTP (\S+),", ready).group(1)  # type: ignore[union-attr]
        assert "requests up to 64 MiB" in ready
        if sig == signal.SIGINT:
            # the request: 25.6 GB declared, 64 values sent; refused, and the server answers after it
            body = json.dumps(
                {
                    "inputs": [
                        {
                            "name": "z",
                            "shape": [100000000, 64],
                            "datatype": "FP32",
                            "data": [0.0] * 64,
                        }
                    ]
                }
            ).encode()
            req = urllib.request.Request(
                f"http://{http_url}/v2/models/dcgan/infer", data=body, method="POST"
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=30)
            assert refused.value.code == 400
            assert "batch 100000000 is outside 1..32" in json.loads(refused.value.read())["error"]

        onnx_art = load_generator(str(dcgan_onnx.path))
        ins, output = served_io(onnx_art)
        feeds = LatentSampler(onnx_art.spec, seed=11).inputs(0, 3)
        client = grpc.InferenceServerClient(grpc_url)
        served = client.infer("dcgan", request_inputs(grpc, ins, feeds)).as_numpy(output.name)
        client.close()
        with create_runner("ort", onnx_art, "cpu", threads=1) as runner:
            assert np.abs(served - runner.infer(feeds)).max() <= 1e-5

        t0 = time.monotonic()
        if sig == signal.SIGKILL:
            os.kill(_tritonserver_child(proc.pid), sig)
        else:
            proc.send_signal(sig)
        rc = proc.wait(timeout=90)
        stop_s = time.monotonic() - t0
        rest = []
        while (item := out.get(timeout=10)) is not None:
            rest.append(item)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr and "error:" not in stderr
        if sig == signal.SIGKILL:
            assert rc == 1, stderr
            line = next(ln for ln in rest if "stopped unexpectedly" in ln)
            assert (
                "tritonserver was killed by SIGKILL" in line and "out-of-memory killer" in line
            ), line
            assert "CudaDriverHelper" not in line
        else:
            assert rc == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], stderr
            assert any(f"stopped ({sig.name})" in ln for ln in rest), rest
        assert not _port_open(grpc_url), (
            "the Triton server still listens after accelkit serve exited"
        )
        assert stop_s < 60
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


@pytest.mark.slow
def test_loadtest_of_a_generator_serves_it_and_compares_in_process(tmp_path: Path) -> None:
    """`accelkit loadtest FILE`: serves the file in a child process, measures the runner in-process, sweeps, writes the report."""
    from typer.testing import CliRunner

    from accelkit.benchmark.report import Report
    from accelkit.cli import app
    from tests.fixtures.generators import onnx_artifact

    art, _ = onnx_artifact("uncond", tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "loadtest",
            str(art.path),
            "--concurrency",
            "1,2",
            "--window",
            "0.4",
            "--windows",
            "2",
            "--warmup-time",
            "0.2",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "lt"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (
        "per-request overhead at concurrency 1:" in res.stdout
        and "the in-process runner" in res.stdout
    )
    rep = Report.load(tmp_path / "lt")
    inproc = [r for r in rep.rows if r.scenario == "in_process"]
    served = [r for r in rep.rows if r.scenario == "serving"]
    assert [(r.backend, r.batch_size) for r in inproc] == [("ort", 1)]
    assert [r.concurrency for r in served] == [1, 2] and all(
        r.extra["vs_in_process"] > 0 for r in served
    )
    assert all(r.backend == "ort" and r.precision == "fp32" and r.server_latency_ms for r in served)


@pytest.mark.slow
def test_bench_serve_puts_both_scenarios_in_one_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from accelkit.benchmark.report import Report
    from accelkit.cli import app
    from tests.fixtures.generators import onnx_artifact

    art, _ = onnx_artifact("uncond", tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "bench",
            str(art.path),
            "--backend",
            "ort",
            "--precision",
            "fp32",
            "--batch",
            "1",
            "--repeats",
            "3",
            "--min-time",
            "0.1",
            "--threads",
            "1",
            "--serve",
            "--serve-concurrency",
            "2",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| ort | fp32 | 1 |" in res.stdout and "Triton load test" in res.stdout
    rep = Report.load(tmp_path / "b")
    assert {(r.scenario, r.concurrency) for r in rep.rows} == {("in_process", None), ("serving", 2)}
    served = next(r for r in rep.rows if r.scenario == "serving")
    assert (
        served.extra["in_process_images_per_sec"]
        == next(r for r in rep.rows if r.scenario == "in_process").images_per_sec
    )
    assert (tmp_path / "b" / "serving.png").is_file()
