"""Load against a running Triton server: a concurrency sweep, client latencies, Triton's own statistics.

Two load generators, one result shape (:class:`LevelResult`):

* **perf_analyzer** (Triton's tool; ``pip install perf-analyzer`` or the Triton SDK
  container) where its binary is on ``PATH``: one run per concurrency level with
  ``--concurrency-range C:C``, seeded request data from a JSON file, its CSV (``-f``)
  parsed: throughput, p50/p90/p99 and the server's queue/compute split.
* a **tritonclient closed loop** everywhere else: ``C`` threads, each with its own
  client (gRPC or HTTP), each sending the next request as soon as the previous answer
  arrived, so ``C`` requests are always in flight. After ``warmup_s`` untimed seconds,
  ``windows`` windows of ``window_s`` seconds are measured: a request counts in the
  window in which it completed, and each window gives one images/sec sample
  (``completed requests x batch / window length``). Latency is per request, send to
  response decoded, in ms. Loops are bounded in time and in requests
  (``max_requests`` per window). Triton's per-model statistics are read before the
  first and after the last window: their difference gives the server-side average
  queue, compute-input, compute-infer and compute-output time per request and the
  average batch the dynamic batcher formed.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelkit.serving.deps import require_serve
from accelkit.serving.errors import LoadtestError, ServerUnreachableError
from accelkit.serving.server import ServedTensor, request_inputs
from accelkit.stats import median, quantile

log = logging.getLogger(__name__)

STAT_PARTS = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class LevelResult:
    """What one concurrency level measured.

    Attributes:
        concurrency: Requests in flight.
        batch_size: Images per request.
        tool: ``tritonclient`` or ``perf_analyzer``.
        images_per_sec_samples: One sample per measurement window, images/second.
        requests_per_window: Completed requests in each window.
        latencies_ms: Client-side latency of every request completed in the windows, ms.
        server_ms: Server-side averages per request, ms: ``queue``, ``compute_input``,
            ``compute_infer``, ``compute_output``, ``total`` (request received to
            response sent); None when the server's statistics could not be read.
        server_requests: Requests the server counted over the windows.
        server_executions: Model executions (batches) over the windows.
        avg_server_batch: Images per execution the dynamic batcher formed.
        window_s: Length of one window, s.
        extra: Tool details (perf_analyzer's command and raw CSV row).
    """

    concurrency: int
    batch_size: int
    tool: str
    images_per_sec_samples: list[float]
    requests_per_window: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: dict[str, float] | None = None
    server_requests: int | None = None
    server_executions: int | None = None
    avg_server_batch: float | None = None
    window_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_sec(self) -> float:
        """Median over the windows."""
        return median(self.images_per_sec_samples)

    @property
    def latency_ms(self) -> dict[str, float]:
        """Client latency summary per request: ``p50``, ``p90``, ``p99``, ``mean``, ms."""
        lat = self.latencies_ms
        if not lat:
            return dict(self.extra.get("latency_ms", {}))
        return {
            "p50": quantile(lat, 0.5),
            "p90": quantile(lat, 0.9),
            "p99": quantile(lat, 0.99),
            "mean": float(np.mean(lat)),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the raw latencies)."""
        d = asdict(self)
        d.pop("latencies_ms")
        d["images_per_sec"] = self.images_per_sec
        d["latency_ms"] = self.latency_ms
        return d


# ---------------------------------------------------------------------- clients
def client_module(protocol: str) -> Any:
    """``tritonclient.grpc`` or ``tritonclient.http`` (the ``serve`` extra)."""
    return require_serve(f"tritonclient.{protocol}", "accelkit loadtest")


def strip_scheme(url: str) -> str:
    """``grpc://h:p`` / ``http://h:p/`` -> ``h:p`` (tritonclient's form)."""
    for prefix in ("grpc://", "http://", "https://"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
    return url.rstrip("/")


def connect(url: str, protocol: str, timeout_s: float = 10.0) -> Any:
    """A client for ``url`` whose server is live.

    Raises:
        ServerUnreachableError: Nothing answers there (one line, with the fix).
    """
    mod = client_module(protocol)
    kw = {"connection_timeout": timeout_s, "network_timeout": 600.0} if protocol == "http" else {}
    try:
        client = mod.InferenceServerClient(strip_scheme(url), **kw)
        live = client.is_server_live()
    except Exception as exc:  # noqa: BLE001 - tritonclient raises several types
        raise ServerUnreachableError(
            f"no Triton server answers {protocol} at {url} ({' '.join(str(exc).split())[:120]}); start one (accelkit serve) "
            f"or check the URL and --protocol (gRPC is port 8001, HTTP 8000 by default)"
        ) from None
    if not live:
        raise ServerUnreachableError(f"the Triton server at {url} is not live; check its log")
    return client


def statistics(client: Any, model: str) -> dict[str, int] | None:
    """Cumulative per-model counters: ``success``/``queue``/``compute_*`` ``_ns`` and ``_count``, ``executions``, ``inferences``.

    None when the server refuses statistics (an access-restricted endpoint).
    """
    try:
        if "grpc" in type(client).__module__:
            raw = client.get_inference_statistics(model_name=model, as_json=True)
        else:
            raw = client.get_inference_statistics(model_name=model)
    except Exception as exc:  # noqa: BLE001
        log.warning("cannot read Triton statistics for %s: %s", model, exc)
        return None
    if isinstance(raw, str):
        raw = json.loads(raw)
    stats = (raw.get("model_stats") or raw.get("modelStats") or [{}])[0]
    inf = stats.get("inference_stats") or stats.get("inferenceStats") or {}
    out: dict[str, int] = {}
    for part in ("success", *STAT_PARTS):
        key = (
            part
            if part in inf
            else "".join(w.capitalize() if i else w for i, w in enumerate(part.split("_")))
        )
        d = inf.get(key) or {}
        out[f"{part}_ns"] = int(d.get("ns", 0))
        out[f"{part}_count"] = int(d.get("count", 0))
    out["executions"] = int(stats.get("execution_count", stats.get("executionCount", 0)))
    out["inferences"] = int(stats.get("inference_count", stats.get("inferenceCount", 0)))
    return out


def statistics_delta(
    before: dict[str, int] | None, after: dict[str, int] | None
) -> tuple[dict[str, float] | None, int | None, int | None]:
    """Average server time per request (ms) between two snapshots, requests, executions."""
    if before is None or after is None:
        return None, None, None
    n = after["success_count"] - before["success_count"]
    if n <= 0:
        return None, 0, after["executions"] - before["executions"]
    ms: dict[str, float] = {}
    for part in STAT_PARTS:
        cnt = after[f"{part}_count"] - before[f"{part}_count"]
        ms[part] = (after[f"{part}_ns"] - before[f"{part}_ns"]) / cnt / 1e6 if cnt > 0 else 0.0
    ms["total"] = (after["success_ns"] - before["success_ns"]) / n / 1e6
    return ms, n, after["executions"] - before["executions"]


# ------------------------------------------------------------------ closed loop
def closed_loop(
    url: str,
    protocol: str,
    model: str,
    inputs: list[ServedTensor],
    output: str,
    make_feeds: Callable[[int], dict[str, np.ndarray]],
    concurrency: int,
    batch_size: int,
    *,
    window_s: float = 2.0,
    windows: int = 3,
    warmup_s: float = 0.5,
    max_requests: int = 100_000,
    request_timeout_s: float = 60.0,
) -> LevelResult:
    """Keep ``concurrency`` requests in flight for ``warmup_s + windows * window_s`` seconds.

    Args:
        url: ``host:port`` of the protocol's endpoint.
        protocol: ``grpc`` or ``http``.
        model: Model name.
        inputs: The served inputs (names, dtypes).
        output: The output tensor's name.
        make_feeds: Worker index -> one request's inputs (``batch_size`` samples).
        concurrency: Worker threads, each with its own client and one request in flight.
        batch_size: Images per request.
        window_s, windows, warmup_s: Timing (seconds).
        max_requests: Requests per window at most; the loop ends early when reached.
        request_timeout_s: A request slower than this fails the test.

    Raises:
        LoadtestError: A request failed (the first error, one line).
    """
    mod = client_module(protocol)
    stats_client = connect(url, protocol)
    total_s = warmup_s + windows * window_s
    cap = max_requests * windows + 10 * concurrency
    done_at: list[list[float]] = [[] for _ in range(concurrency)]
    lat_ms: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    stop = threading.Event()
    start_barrier = threading.Barrier(concurrency + 1)
    sent = [0]
    lock = threading.Lock()

    def worker(k: int) -> None:
        kw = (
            {"network_timeout": request_timeout_s, "connection_timeout": 10.0}
            if protocol == "http"
            else {}
        )
        client = mod.InferenceServerClient(strip_scheme(url), **kw)
        req = request_inputs(mod, inputs, make_feeds(k))
        outs = [mod.InferRequestedOutput(output)]
        extra = {"client_timeout": request_timeout_s} if protocol == "grpc" else {}
        try:
            start_barrier.wait()
            while not stop.is_set():
                with lock:
                    if sent[0] >= cap:
                        break
                    sent[0] += 1
                t0 = time.perf_counter()
                res = client.infer(model, req, outputs=outs, **extra)
                arr = res.as_numpy(output)
                t1 = time.perf_counter()
                if arr is None or arr.shape[0] != batch_size:
                    raise LoadtestError(
                        f"the server answered {None if arr is None else arr.shape} for a batch of {batch_size}"
                    )
                done_at[k].append(t1)
                lat_ms[k].append((t1 - t0) * 1e3)
        except Exception as exc:  # noqa: BLE001 - reported once, below
            errors.append(" ".join(str(exc).split())[:200] or type(exc).__name__)
            stop.set()
        finally:
            client.close()

    threads = [
        threading.Thread(target=worker, args=(k,), name=f"accelkit-load-{k}", daemon=True)
        for k in range(concurrency)
    ]
    for t in threads:
        t.start()
    try:
        start_barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        stop.set()
        raise LoadtestError("the load generator's clients did not start within 60 s") from None
    t_start = time.perf_counter()
    stop.wait(warmup_s)
    before = statistics(stats_client, model)
    t_meas = time.perf_counter()
    stop.wait(max(0.0, t_start + total_s - time.perf_counter()))
    t_end = time.perf_counter()
    after = statistics(stats_client, model)
    stop.set()
    for t in threads:
        t.join(request_timeout_s + 5)
    stats_client.close()
    if errors:
        raise LoadtestError(f"a request failed at concurrency {concurrency}: {errors[0]}")
    edges = [t_meas + i * window_s for i in range(windows + 1)]
    edges[-1] = max(edges[-1], t_end) if t_end - edges[-1] < 0.05 * window_s else edges[-1]
    stamps = np.array(sorted(x for w in done_at for x in w))
    lats = [
        lv
        for k in range(concurrency)
        for t1, lv in zip(done_at[k], lat_ms[k])
        if t_meas <= t1 < edges[-1]
    ]
    counts = [int(((stamps >= a) & (stamps < b)).sum()) for a, b in zip(edges[:-1], edges[1:])]
    if sum(counts) == 0:
        raise LoadtestError(
            f"no request completed within {window_s:g} s windows at concurrency {concurrency}; raise --window or check the server"
        )
    samples = [c * batch_size / (b - a) for c, a, b in zip(counts, edges[:-1], edges[1:])]
    server_ms, n_req, n_exec = statistics_delta(before, after)
    return LevelResult(
        concurrency=concurrency,
        batch_size=batch_size,
        tool="tritonclient",
        images_per_sec_samples=samples,
        requests_per_window=counts,
        latencies_ms=lats,
        server_ms=server_ms,
        server_requests=n_req,
        server_executions=n_exec,
        avg_server_batch=(n_req * batch_size / n_exec) if n_req and n_exec else None,
        window_s=window_s,
        extra={"protocol": protocol, "warmup_s": warmup_s},
    )


# --------------------------------------------------------------- perf_analyzer
def perf_analyzer_path() -> str | None:
    """The ``perf_analyzer`` binary on ``PATH`` (the 0.1.0 placeholder wheel installs none), else None."""
    return shutil.which("perf_analyzer")


def perf_input_data(
    inputs: list[ServedTensor], feeds: list[dict[str, np.ndarray]]
) -> dict[str, Any]:
    """perf_analyzer's ``--input-data`` JSON: one entry per request, each tensor's flat content and per-sample shape."""
    data = []
    for f in feeds:
        entry = {}
        for t in inputs:
            arr = (
                np.asarray(f[t.name], dtype=t.dtype).reshape((-1, *t.shape))
                if -1 not in t.shape
                else np.asarray(f[t.name], dtype=t.dtype)
            )
            entry[t.name] = {"content": arr.reshape(-1).tolist(), "shape": list(arr.shape[1:])}
        data.append(entry)
    return {"data": data}


def parse_perf_csv(text: str) -> list[dict[str, float]]:
    """perf_analyzer's ``-f`` CSV: one row per concurrency, times converted from µs to ms.

    Returns:
        Dicts with ``concurrency``, ``infer_per_sec``, ``p50``/``p90``/``p95``/``p99``
        (client latency, ms) and server ``queue``, ``compute_input``, ``compute_infer``,
        ``compute_output`` (ms; ``compute_infer`` holds the single ``Server Compute``
        column of old versions).

    Raises:
        LoadtestError: The CSV lacks the columns every perf_analyzer version writes.
    """
    reader = csv.DictReader(io.StringIO(text.strip()))
    rows = []
    us = lambda v: float(v) / 1e3 if v not in (None, "") else None  # noqa: E731
    for r in reader:
        if "Concurrency" not in r or "Inferences/Second" not in r:
            raise LoadtestError(
                "perf_analyzer's CSV has no Concurrency/Inferences/Second columns; is it perf_analyzer's -f output?"
            )
        row: dict[str, Any] = {
            "concurrency": float(r["Concurrency"]),
            "infer_per_sec": float(r["Inferences/Second"]),
        }
        for q in ("p50", "p90", "p95", "p99"):
            row[q] = us(r.get(f"{q} latency"))
        row["queue"] = us(r.get("Server Queue"))
        row["compute_input"] = us(r.get("Server Compute Input"))
        row["compute_infer"] = us(r.get("Server Compute Infer", r.get("Server Compute")))
        row["compute_output"] = us(r.get("Server Compute Output"))
        row["client_send"] = us(r.get("Client Send"))
        row["client_recv"] = us(r.get("Client Recv"))
        row["network"] = us(r.get("Network+Server Send/Recv"))
        rows.append(row)
    return rows


def perf_analyzer_level(
    binary: str,
    url: str,
    protocol: str,
    model: str,
    inputs: list[ServedTensor],
    feeds: list[dict[str, np.ndarray]],
    concurrency: int,
    batch_size: int,
    *,
    window_s: float = 2.0,
    windows: int = 3,
    timeout_s: float = 600.0,
) -> LevelResult:
    """One concurrency level measured by perf_analyzer (its own stabilisation over ``windows`` windows).

    Raises:
        LoadtestError: perf_analyzer failed (its last output line) or wrote no CSV row.
    """
    with tempfile.TemporaryDirectory(prefix="accelkit-pa-") as tmp:
        data = Path(tmp) / "input.json"
        data.write_text(json.dumps(perf_input_data(inputs, feeds)))
        out = Path(tmp) / "perf.csv"
        cmd = [
            binary,
            "-m",
            model,
            "-u",
            strip_scheme(url),
            "-i",
            protocol,
            "-b",
            str(batch_size),
            "--concurrency-range",
            f"{concurrency}:{concurrency}",
            "--measurement-interval",
            str(int(window_s * 1000)),
            "--max-trials",
            str(max(3, windows + 2)),
            "--input-data",
            str(data),
            "-f",
            str(out),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise LoadtestError(
                f"perf_analyzer did not finish concurrency {concurrency} within {timeout_s:g} s"
            ) from None
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout or "no output").strip().splitlines()[-1:] or [
                "no output"
            ]
            raise LoadtestError(
                f"perf_analyzer failed at concurrency {concurrency} (exit {proc.returncode}): {tail[0][:200]}; or use --tool tritonclient"
            )
        rows = parse_perf_csv(out.read_text())
    if not rows:
        raise LoadtestError(f"perf_analyzer wrote no result for concurrency {concurrency}")
    r = rows[0]
    server = {k: r[k] for k in STAT_PARTS if r.get(k) is not None}
    if server:
        server["total"] = sum(server.values())
    return LevelResult(
        concurrency=concurrency,
        batch_size=batch_size,
        tool="perf_analyzer",
        images_per_sec_samples=[r["infer_per_sec"]],
        server_ms=server or None,
        window_s=window_s,
        extra={
            "command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
            "latency_ms": {q: r[q] for q in ("p50", "p90", "p99") if r.get(q) is not None},
            "csv": r,
        },
    )


__all__ = [
    "LevelResult",
    "closed_loop",
    "connect",
    "parse_perf_csv",
    "perf_analyzer_level",
    "perf_analyzer_path",
    "perf_input_data",
    "statistics",
    "statistics_delta",
    "strip_scheme",
]
