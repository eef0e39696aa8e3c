"""`accelkit serve` as a user runs it: a real subprocess, a real server, stopped by SIGINT and by SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

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


@pytest.fixture(scope="module")
def dcgan_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from accelkit.loading import load_generator
    from accelkit.passes.export import OnnxFromTorch

    return OnnxFromTorch(tmp_path_factory.mktemp("cli-serve") / "dcgan.onnx", force=True)(
        load_generator("dcgan")
    ).path  # type: ignore[return-value]


def _lines(stream, q: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        q.put(line)
    q.put(None)


def _port_open(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_answers_then_stops_cleanly_on_signal(sig: signal.Signals, dcgan_onnx: Path) -> None:
    from accelkit.loading import load_generator
    from accelkit.runners.base import create_runner
    from accelkit.sampler import LatentSampler
    from accelkit.serving.server import request_inputs, served_io

    # SIGINT serves the exported file; SIGTERM serves the bundled name (exported to a temporary ONNX by the command).
    target = str(dcgan_onnx) if sig == signal.SIGINT else "dcgan"
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

        onnx_art = load_generator(str(dcgan_onnx))
        ins, output = served_io(onnx_art)
        feeds = LatentSampler(onnx_art.spec, seed=11).inputs(0, 3)
        client = grpc.InferenceServerClient(grpc_url)
        served = client.infer("dcgan", request_inputs(grpc, ins, feeds)).as_numpy(output.name)
        client.close()
        with create_runner("ort", onnx_art, "cpu", threads=1) as runner:
            assert np.abs(served - runner.infer(feeds)).max() <= 1e-5

        t0 = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=90)
        stop_s = time.monotonic() - t0
        rest = []
        while (item := out.get(timeout=10)) is not None:
            rest.append(item)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert rc == 0, stderr
        assert any(f"stopped ({sig.name})" in ln for ln in rest), rest
        assert "Traceback" not in stderr and "error:" not in stderr
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
