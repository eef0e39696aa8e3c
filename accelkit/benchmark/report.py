"""The benchmark report: ``results.json`` (versioned schema), ``results.md``, ``results.csv``, ``throughput.png``.

``results.json`` is the record other tools read (``accelkit compare``, CI gates); its
fields are documented in ``docs/results-schema.md`` and its layout is versioned by
:attr:`Report.SCHEMA_VERSION`. ``results.md`` is what a person reads first. Every file is
written through a temporary file and a rename, so a crashed run never leaves a
half-written report.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact, read_sidecar
from accelkit.benchmark.environment import collect_environment
from accelkit.benchmark.harness import Latency
from accelkit.benchmark.plot import plot_throughput
from accelkit.benchmark.render import CSV_COLUMNS as _CSV_COLUMNS
from accelkit.benchmark.render import to_csv as _to_csv
from accelkit.benchmark.render import to_markdown as _to_markdown
from accelkit.errors import AccelkitError, InputError
from accelkit.files import sha256_file
from accelkit.jsonio import read_json_file

log = logging.getLogger(__name__)

STATUSES = ("ok", "failed", "skipped")
#: ``in_process``: accelkit's own loop around a runner (``accelkit bench``); ``serving``: a
#: Triton server under a concurrency sweep (``accelkit loadtest``).
SCENARIOS = ("in_process", "serving")
FILES = {
    "json": "results.json",
    "md": "results.md",
    "csv": "results.csv",
    "png": "throughput.png",
    "serving_png": "serving.png",
}


# -------------------------------------------------------------------------- rows
@dataclass
class BenchRow:
    """One (backend, variant, precision, batch size) result; see ``docs/results-schema.md``."""

    backend: str
    precision: str
    batch_size: int
    device: str
    status: str = "ok"
    reason: str | None = None
    variant: str | None = None
    images_per_sec: float | None = None
    images_per_sec_samples: list[float] = field(default_factory=list)
    images_per_sec_spread: dict[str, float] | None = None
    latency_ms: dict[str, float] | None = None
    iters_per_repeat: list[int] = field(default_factory=list)
    warmup: int | None = None
    timer: str | None = None
    peak_memory_mb: float | None = None
    memory_kind: str | None = None
    load_average_1m: float | None = None
    model_size_mb: float | None = None
    build_seconds: float | None = None
    flops_per_image: int | None = None
    mfu: float | None = None
    speedup_vs_torch_fp32: float | None = None
    speedup_withheld: str | None = None
    artifact: str | None = None
    fid_drift: float | None = None
    kid_drift: float | None = None
    kid_drift_std: float | None = None
    psnr_db: float | None = None
    max_abs_err: float | None = None
    changed_uint8_fraction: float | None = None
    noise_floor_fid: float | None = None
    noise_floor_kid: float | None = None
    drift_verdict: str | None = None
    legacy_verdict: str | None = None
    drift_test: str | None = None
    drift_interval: list[float] | None = None
    min_detectable_effect: float | None = None
    drift_reason: str | None = None
    drift_detail: dict[str, Any] | None = None
    drift_evidence: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    unstable: bool = False
    unstable_reason: str | None = None
    stability: dict[str, Any] | None = None
    runner: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    scenario: str = "in_process"
    concurrency: int | None = None
    server_latency_ms: dict[str, float] | None = None
    # diffusion pipelines (None for one-pass generators): the sampler's knobs, ms per step,
    # the share of time per part, and the speed-up over the reference sampler in torch fp32
    steps: int | None = None
    scheduler: str | None = None
    cache: str | None = None
    ms_per_step: float | None = None
    time_share: dict[str, float] | None = None
    speedup_vs_reference: float | None = None
    speedup_vs_reference_withheld: str | None = None

    @property
    def label(self) -> str:
        """``backend`` or ``backend:variant`` (e.g. ``ort:tensorrt``, ``torch:compile``); served rows
        add the server and the concurrency (``ort@triton c8``), so they never match an in-process row."""
        base = self.backend if not self.variant else f"{self.backend}:{self.variant}"
        return f"{base}@triton c{self.concurrency}" if self.scenario == "serving" else base

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchRow:
        """Inverse of :meth:`to_dict`; unknown keys go to ``extra`` (read, never lost)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        unknown = {k: v for k, v in d.items() if k not in names}
        row = cls(**known)
        if unknown:
            row.extra = {**row.extra, **unknown}
        return row


def _sum_pass_seconds(passes: Iterable[dict[str, Any]]) -> float | None:
    total, found = 0.0, False
    for p in passes:
        for key in ("seconds", "build_seconds", "elapsed_s"):
            v = p.get(key) if isinstance(p, dict) else None
            if isinstance(v, (int, float)):
                total += float(v)
                found = True
                break
    return total if found else None


def artifact_size_mb(artifact: Artifact) -> float | None:
    """Size of what the backend loads, MB (2**20 bytes).

    ONNX: the file plus external-data files it references. Engines: the file. Torch:
    the bytes of the module's parameters and buffers.
    """
    if artifact.path is not None and Path(artifact.path).is_file():
        p = Path(artifact.path)
        total = p.stat().st_size
        if artifact.format == "onnx":
            total += sum(f.stat().st_size for f in _onnx_external_files(p))
        return total / 2**20
    mod = artifact.module
    if mod is not None and hasattr(mod, "parameters"):
        try:
            tensors = list(mod.parameters()) + list(mod.buffers())
            return float(sum(int(t.numel()) * int(t.element_size()) for t in tensors)) / 2**20
        except Exception:  # noqa: BLE001
            return None
    return None


def _onnx_external_files(path: Path) -> list[Path]:
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001
        return []
    locs = set()
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            for e in init.external_data:
                if e.key == "location":
                    locs.add(e.value)
    return [path.parent / loc for loc in sorted(locs) if (path.parent / loc).is_file()]


# ------------------------------------------------------------------------ report
class Report:
    """A benchmark's results: environment, artifacts' provenance and one row per measurement.

    Args:
        rows: Result rows.
        environment: From :func:`collect_environment` (collected when None).
        artifacts: Provenance records (see :meth:`add_artifact`).
        created: ISO-8601 UTC timestamp (now when None).
        settings: How the bench ran (warm-up, repeats, min_time_s, seed...).
    """

    #: Version written. 2 added serving rows (``scenario``, ``concurrency``, ``server_latency_ms``);
    #: 3 the calibrated quality verdict (``drift_verdict`` is now ``accepted``/``rejected``/
    #: ``inconclusive``/``reference``; the old rule moved to ``legacy_verdict``; ``drift_test``,
    #: ``drift_interval``, ``min_detectable_effect``, ``drift_reason``, ``drift_detail``,
    #: ``drift_evidence``).
    SCHEMA_VERSION = 3
    #: Versions read: a version-1 file's rows are all in-process rows; a version 1/2 row's
    #: ``drift_verdict`` (``within floor``/``drift``) is read as its ``legacy_verdict``.
    READABLE_VERSIONS = (1, 2, 3)

    def __init__(
        self,
        rows: list[BenchRow] | None = None,
        *,
        environment: dict[str, Any] | None = None,
        artifacts: list[dict[str, Any]] | None = None,
        created: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.rows: list[BenchRow] = list(rows or [])
        self.environment = environment if environment is not None else collect_environment()
        self.artifacts: list[dict[str, Any]] = list(artifacts or [])
        self.created = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.settings: dict[str, Any] = dict(settings or {})
        #: results.md links the sample grids and speed_vs_drift.png of its quality rows; a writer
        #: that draws none of them (optimize) sets this False so no link dangles.
        self.pictures = True

    # ------------------------------------------------------------------ building
    def add_artifact(self, artifact: Artifact) -> str:
        """Record an artifact's provenance once; return its id for rows' ``artifact`` field.

        Passes come from the file's sidecar when there is one (the record of how the
        file was made), else from ``artifact.passes``.
        """
        path = str(artifact.path) if artifact.path is not None else None
        ident = path or f"torch:{artifact.source or artifact.name}:{artifact.precision}"
        if any(a["id"] == ident for a in self.artifacts):
            return ident
        passes: list[dict[str, Any]] = list(artifact.passes)
        sidecar: dict[str, Any] | None = None
        if artifact.path is not None:
            try:
                sidecar = read_sidecar(artifact.path)
            except AccelkitError as exc:
                log.warning("ignoring unreadable sidecar of %s: %s", artifact.path, exc)
        if sidecar and isinstance(sidecar.get("passes"), list):
            passes = sidecar["passes"]
        sha = (
            sha256_file(artifact.path)
            if artifact.path is not None and Path(artifact.path).is_file()
            else None
        )
        self.artifacts.append(
            {
                "id": ident,
                "format": artifact.format,
                "path": path,
                "sha256": sha,
                "precision": artifact.precision,
                "size_mb": artifact_size_mb(artifact),
                "source": artifact.source,
                "source_sha256": artifact.source_sha256,
                "passes": passes,
                "build_seconds": _sum_pass_seconds(passes),
                "sidecar": sidecar is not None,
                "spec": artifact.spec.to_dict() if artifact.spec is not None else None,
            }
        )
        return ident

    def add_row(self, row: BenchRow) -> BenchRow:
        """Append a row (validated) and return it."""
        if row.status not in STATUSES:
            raise InputError(f"row status {row.status!r} is not one of {', '.join(STATUSES)}")
        self.rows.append(row)
        return row

    def add_result(
        self,
        runner_info: dict[str, Any],
        latency: Latency,
        *,
        artifact: Artifact | None = None,
        variant: str | None = None,
        flops_per_image: int | None = None,
        mfu: float | None = None,
    ) -> BenchRow:
        """Add an ``ok`` row from a runner's ``describe()`` and a :class:`~accelkit.benchmark.harness.Latency`.

        ``build_seconds`` is the sum of the artifact's pass times plus, for a compiled
        torch runner, the compile time at this batch size.
        """
        art_id = self.add_artifact(artifact) if artifact is not None else None
        build = None
        if artifact is not None:
            build = next((a["build_seconds"] for a in self.artifacts if a["id"] == art_id), None)
        compile_s = (runner_info.get("compile_seconds") or {}).get(str(latency.batch_size))
        if isinstance(compile_s, (int, float)):
            build = (build or 0.0) + float(compile_s)
        lat = latency.latency_ms
        row = BenchRow(
            backend=str(runner_info.get("backend")),
            precision=str(runner_info.get("precision")),
            batch_size=int(latency.batch_size),
            device=str(runner_info.get("device", latency.device)),
            status="ok",
            variant=variant,
            images_per_sec=latency.images_per_sec,
            images_per_sec_samples=list(latency.images_per_sec_samples),
            images_per_sec_spread=latency.spread,
            latency_ms={
                "p50": lat["p50"],
                "p90": lat["p90"],
                "p99": lat["p99"],
                "mean": lat["mean"],
            },
            iters_per_repeat=list(latency.iters_per_repeat),
            warmup=latency.warmup,
            timer=latency.timer,
            peak_memory_mb=latency.peak_memory_mb,
            memory_kind=latency.memory_kind,
            load_average_1m=getattr(latency, "load_average_1m", None),
            model_size_mb=artifact_size_mb(artifact) if artifact is not None else None,
            build_seconds=build,
            flops_per_image=flops_per_image,
            mfu=mfu,
            artifact=art_id,
            runner=dict(runner_info),
        )
        mark_stability(row, getattr(latency, "contention", None))
        return self.add_row(row)

    def add_failure(
        self,
        backend: str,
        precision: str,
        batch_size: int,
        device: str,
        reason: str,
        *,
        status: str = "failed",
        variant: str | None = None,
        artifact: Artifact | None = None,
        runner_info: dict[str, Any] | None = None,
        traceback: str | None = None,
    ) -> BenchRow:
        """Add a ``failed`` or ``skipped`` row; it carries a reason and never a number.

        ``traceback`` (the Python traceback of an unexpected error) is kept in the row's
        ``extra.traceback``: the report holds it, while stderr only gets the one-line reason.
        """
        if status not in ("failed", "skipped"):
            raise InputError(f"add_failure takes status failed or skipped, got {status!r}")
        art_id = self.add_artifact(artifact) if artifact is not None else None
        row = BenchRow(
            backend=backend,
            precision=precision,
            batch_size=int(batch_size),
            device=device,
            status=status,
            reason=reason,
            variant=variant,
            artifact=art_id,
            runner=dict(runner_info or {}),
            extra={"traceback": traceback} if traceback else {},
        )
        return self.add_row(row)

    def compute_speedups(self) -> None:
        """Fill ``speedup_vs_torch_fp32``: images/sec over plain torch fp32's at the same batch size and device.

        The baseline is the ``ok`` row with backend ``torch``, precision ``fp32`` and
        no variant (else the first torch fp32 row); rows without one get None. A ratio is
        given only when both sides are trustworthy
        (:func:`accelkit.benchmark.stability.speedup_verdict`): neither row unstable, both
        under the same thread policy, neither implying more FLOP/s than this CPU's measured
        peak (``settings["cpu_peak_gflops"]``, when recorded); otherwise the row's
        ``speedup_withheld`` says why. Serving rows (``scenario == "serving"``) are neither
        baselines nor given a speed-up: their throughput is per concurrency level.
        """
        from accelkit.benchmark.stability import speedup_verdict

        peaks = self.settings.get("cpu_peak_gflops") if self.settings else None
        base: dict[tuple[int, str], BenchRow] = {}
        for prefer_plain in (True, False):
            for r in self.rows:
                if (
                    r.status == "ok"
                    and r.backend == "torch"
                    and r.precision == "fp32"
                    and r.images_per_sec
                    and r.scenario != "serving"
                ):
                    if prefer_plain and r.variant:
                        continue
                    base.setdefault((r.batch_size, r.device), r)
        for r in self.rows:
            b = base.get((r.batch_size, r.device))
            r.speedup_vs_torch_fp32 = r.speedup_withheld = None
            if r.status != "ok" or b is None or r.scenario == "serving":
                continue
            r.speedup_vs_torch_fp32, r.speedup_withheld = speedup_verdict(
                r, b, peaks if isinstance(peaks, dict) else None
            )

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` content."""
        self.compute_speedups()
        return {
            "schema_version": self.SCHEMA_VERSION,
            "created": self.created,
            "environment": self.environment,
            "settings": self.settings,
            "artifacts": self.artifacts,
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self) -> str:
        """``results.json`` as text (NaN never appears: non-finite numbers become null)."""
        return (
            json.dumps(_finite(self.to_dict()), indent=2, sort_keys=False, allow_nan=False) + "\n"
        )

    #: Columns of ``results.csv`` (:data:`accelkit.benchmark.render.CSV_COLUMNS`).
    CSV_COLUMNS = _CSV_COLUMNS

    def to_markdown(self) -> str:
        """``results.md`` (:func:`accelkit.benchmark.render.to_markdown`)."""
        return _to_markdown(self)

    def to_csv(self) -> str:
        """``results.csv`` (:func:`accelkit.benchmark.render.to_csv`)."""
        return _to_csv(self)

    def write(self, out_dir: str | os.PathLike[str], *, plot: bool = True) -> dict[str, Path]:
        """Write results.json/.md/.csv and throughput.png into ``out_dir`` (created if missing), atomically.

        ``throughput.png`` only with in-process rows, ``serving.png`` (throughput vs latency
        per concurrency) only with serving rows; a plot left by an earlier run without its
        rows now is removed.

        Returns:
            File kind (``json``, ``md``, ``csv``, ``png``, ``serving_png``) -> path written.
        """
        import tempfile

        from accelkit.files import publish_group, storage_error

        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
        except OSError as exc:
            raise storage_error(
                exc, f"cannot create the report folder {out}; choose another --out"
            ) from None
        try:
            staged: dict[str, Path] = {}
            kinds: dict[str, str] = {}
            for kind, text in (
                ("json", self.to_json()),
                ("md", self.to_markdown()),
                ("csv", self.to_csv()),
            ):
                staged[FILES[kind]] = stage / FILES[kind]
                staged[FILES[kind]].write_text(text, encoding="utf-8", errors="surrogateescape")
                kinds[kind] = FILES[kind]
            if plot:
                # each plot only when the report has rows for it (a load test has no in-process
                # rows: no empty throughput.png); a stale one from an earlier run goes
                if any(r.scenario != "serving" and r.status == "ok" for r in self.rows):
                    plot_throughput(self.rows, stage / FILES["png"])
                    staged[FILES["png"]], kinds["png"] = stage / FILES["png"], FILES["png"]
                if any(r.scenario == "serving" for r in self.rows):
                    from accelkit.benchmark.plot import plot_serving

                    plot_serving(self.rows, stage / FILES["serving_png"])
                    staged[FILES["serving_png"]], kinds["serving_png"] = (
                        stage / FILES["serving_png"],
                        FILES["serving_png"],
                    )
                for name in (FILES["png"], FILES["serving_png"]):
                    if name not in staged:
                        (out / name).unlink(missing_ok=True)
            # results.json last: a folder holding results.json holds its whole report
            paths = publish_group(out, staged, last=FILES["json"])
        except OSError as exc:
            raise storage_error(exc, f"cannot write the report in {out}") from None
        finally:
            import shutil

            shutil.rmtree(stage, ignore_errors=True)
        return {kind: paths[name] for kind, name in kinds.items()}

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, data: Any, where: str = "results.json") -> Report:
        """Build a report from parsed ``results.json`` content, validating it.

        Raises:
            InputError: Unknown ``schema_version`` or malformed content (one line).
        """
        if not isinstance(data, dict):
            raise InputError(
                f"{where} is not a JSON object; expected an accelkit results.json (schema {cls.SCHEMA_VERSION})"
            )
        ver = data.get("schema_version")
        if ver is None:
            raise InputError(
                f"{where} has no schema_version; it is not an accelkit results.json, re-run accelkit bench"
            )
        if not isinstance(ver, int) or isinstance(ver, bool) or ver not in cls.READABLE_VERSIONS:
            raise InputError(
                f"{where} has schema_version {ver!r}, this accelkit reads {', '.join(map(str, cls.READABLE_VERSIONS))}; "
                "re-run accelkit bench with this version or use the accelkit that wrote it"
            )
        for key, typ in (
            ("created", str),
            ("environment", dict),
            ("artifacts", list),
            ("rows", list),
        ):
            if not isinstance(data.get(key), typ):
                raise InputError(
                    f"{where}: field {key!r} is missing or not a {typ.__name__}; the file is truncated or edited, re-run accelkit bench"
                )
        rows: list[BenchRow] = []
        for i, rd in enumerate(data["rows"]):
            row = _validate_row(rd, f"{where}: rows[{i}]")
            if ver < 3 and row.drift_verdict in ("within floor", "drift"):
                # The old rule's words; no calibrated verdict was measured then.
                row.legacy_verdict, row.drift_verdict = row.drift_verdict, None
            rows.append(row)
        return cls(
            rows,
            environment=data["environment"],
            artifacts=data["artifacts"],
            created=data["created"],
            settings=data.get("settings") if isinstance(data.get("settings"), dict) else {},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Read and validate a ``results.json`` (or the folder holding one).

        Raises:
            InputError: Missing file, invalid JSON, unknown schema version or malformed fields.
        """
        p = Path(path)
        if p.is_dir():
            p = p / FILES["json"]
        data = read_json_file(
            p, "", "give the results.json of an accelkit bench run", "re-run accelkit bench"
        )
        return cls.from_dict(data, str(p))


def mark_stability(row: BenchRow, contention: dict[str, Any] | None = None) -> BenchRow:
    """Judge an ``ok`` row's repeats and contention; set ``stability``, ``unstable`` and ``unstable_reason``.

    See :func:`accelkit.benchmark.stability.assess`. CPU rows are checked for
    oversubscription (threads from the runner's description); every row for spread.
    """
    from accelkit.benchmark.stability import assess, runner_threads

    if row.status != "ok" or not row.images_per_sec_samples:
        return row
    threads = runner_threads(row.runner) if not row.device.startswith("cuda") else None
    verdict = assess(row.images_per_sec_samples, threads=threads, contention=contention)
    row.stability = verdict
    row.unstable = bool(verdict["unstable"])
    row.unstable_reason = "; ".join(verdict["reasons"]) or None
    return row


def merge_stability(row: BenchRow, parts: list[dict[str, Any] | None]) -> BenchRow:
    """Re-judge a row merged from several rounds: spread over all its samples, the worst round's contention.

    Args:
        row: The merged row (all rounds' samples).
        parts: Each round's ``stability`` dict (None where not judged).
    """
    worst: dict[str, Any] | None = None
    for p in parts:
        if (
            p
            and isinstance(p.get("busy_cores_others"), (int, float))
            and isinstance(p.get("cpus"), int)
        ):
            if worst is None or p["busy_cores_others"] > worst["busy_cores_others"]:
                worst = {"busy_cores_others": p["busy_cores_others"], "cpus": p["cpus"]}
    return mark_stability(row, worst)


def _validate_row(rd: Any, where: str) -> BenchRow:
    if not isinstance(rd, dict):
        raise InputError(f"{where} is not an object; the file is malformed, re-run accelkit bench")
    for key, typ in (("backend", str), ("precision", str), ("device", str), ("status", str)):
        if not isinstance(rd.get(key), typ):
            raise InputError(
                f"{where}: field {key!r} is missing or not a string; re-run accelkit bench"
            )
    bs = rd.get("batch_size")
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise InputError(
            f"{where}: batch_size {bs!r} is not a positive integer; re-run accelkit bench"
        )
    if rd["status"] not in STATUSES:
        raise InputError(f"{where}: status {rd['status']!r} is not one of {', '.join(STATUSES)}")
    samples = rd.get("images_per_sec_samples", [])
    if not isinstance(samples, list) or not all(
        isinstance(s, (int, float)) and not isinstance(s, bool) for s in samples
    ):
        raise InputError(
            f"{where}: images_per_sec_samples must be a list of numbers; re-run accelkit bench"
        )
    if rd["status"] == "ok":
        ips = rd.get("images_per_sec")
        if not isinstance(ips, (int, float)) or isinstance(ips, bool) or not samples:
            raise InputError(
                f"{where}: an ok row needs images_per_sec and images_per_sec_samples; re-run accelkit bench"
            )
    elif not rd.get("reason"):
        raise InputError(f"{where}: a {rd['status']} row needs a reason; re-run accelkit bench")
    scenario = rd.get("scenario", "in_process")
    if scenario not in SCENARIOS:
        raise InputError(
            f"{where}: scenario {scenario!r} is not one of {', '.join(SCENARIOS)}; re-run accelkit bench"
        )
    conc = rd.get("concurrency")
    if scenario == "serving" and (not isinstance(conc, int) or isinstance(conc, bool) or conc < 1):
        raise InputError(
            f"{where}: a serving row needs a positive integer concurrency, got {conc!r}; re-run accelkit loadtest"
        )
    try:
        return BenchRow.from_dict(rd)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}; re-run accelkit bench") from None


def _finite(obj: Any) -> Any:
    """Replace NaN/Inf floats by None, recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


__all__ = [
    "FILES",
    "SCENARIOS",
    "STATUSES",
    "BenchRow",
    "Report",
    "artifact_size_mb",
    "mark_stability",
    "merge_stability",
]
