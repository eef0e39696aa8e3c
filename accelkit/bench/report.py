"""The benchmark report: ``results.json`` (versioned schema), ``results.md``, ``results.csv``, ``throughput.png``.

``results.json`` is the record other tools read (``accelkit compare``, CI gates); its
fields are documented in ``docs/results-schema.md`` and its layout is versioned by
:attr:`Report.SCHEMA_VERSION`. ``results.md`` is what a person reads first. Every file is
written through a temporary file and a rename, so a crashed run never leaves a
half-written report.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from accelkit.artifact import Artifact, read_sidecar, tool_versions
from accelkit.files import atomic_path, sha256_file, write_text_atomic
from accelkit.bench.harness import Latency
from accelkit.errors import AccelkitError, InputError

log = logging.getLogger(__name__)

STATUSES = ("ok", "failed", "skipped")
FILES = {"json": "results.json", "md": "results.md", "csv": "results.csv", "png": "throughput.png"}


# ----------------------------------------------------------------------- environment
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def collect_environment() -> dict[str, Any]:
    """Where the numbers were measured: versions, CPU, GPU, thread settings.

    Returns:
        A JSON-ready dict; see ``docs/results-schema.md`` (``environment``).
    """
    from accelkit.runners.ort_runner import available_physical_cores, installed_ort_distributions

    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 1
    env: dict[str, Any] = {
        "versions": tool_versions(),
        "onnxruntime_distributions": installed_ort_distributions(),
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "cpu": {
            "model": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "available_cores": affinity,
            "physical_cores": available_physical_cores(),
        },
        "gpus": [],
        "threads": {},
    }
    try:
        env["cpu"]["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        env["cpu"]["load_average"] = None
    try:
        import torch

        env["threads"] = {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
        env["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                env["gpus"].append(
                    {
                        "index": i,
                        "name": props.name,
                        "compute_capability": f"{props.major}.{props.minor}",
                        "memory_mb": round(props.total_memory / 2**20),
                    }
                )
    except Exception as exc:  # noqa: BLE001 - the environment block is informative
        log.warning("could not query torch for the environment block: %s", exc)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES"):
        if var in os.environ:
            env["threads" if "THREADS" in var else "platform"][var] = os.environ[var]
    return env


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
    quality: dict[str, Any] | None = None
    runner: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``backend`` or ``backend:variant`` (e.g. ``ort:tensorrt``, ``torch:compile``)."""
        return self.backend if not self.variant else f"{self.backend}:{self.variant}"

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
def _fmt_num(v: float | None) -> str:
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


class Report:
    """A benchmark's results: environment, artifacts' provenance and one row per measurement.

    Args:
        rows: Result rows.
        environment: From :func:`collect_environment` (collected when None).
        artifacts: Provenance records (see :meth:`add_artifact`).
        created: ISO-8601 UTC timestamp (now when None).
        settings: How the bench ran (warm-up, repeats, min_time_s, seed...).
    """

    SCHEMA_VERSION = 1

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
        sha = sha256_file(artifact.path) if artifact.path is not None and Path(artifact.path).is_file() else None
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
        """Add an ``ok`` row from a runner's ``describe()`` and a :class:`~accelkit.bench.harness.Latency`.

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
            latency_ms={"p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "mean": lat["mean"]},
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
    ) -> BenchRow:
        """Add a ``failed`` or ``skipped`` row; it carries a reason and never a number."""
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
        )
        return self.add_row(row)

    def compute_speedups(self) -> None:
        """Fill ``speedup_vs_torch_fp32``: images/sec over plain torch fp32's at the same batch size and device.

        The baseline is the ``ok`` row with backend ``torch``, precision ``fp32`` and
        no variant (else the first torch fp32 row); rows without one get None.
        """
        base: dict[tuple[int, str], float] = {}
        for prefer_plain in (True, False):
            for r in self.rows:
                if r.status == "ok" and r.backend == "torch" and r.precision == "fp32" and r.images_per_sec:
                    if prefer_plain and r.variant:
                        continue
                    base.setdefault((r.batch_size, r.device), r.images_per_sec)
        for r in self.rows:
            b = base.get((r.batch_size, r.device))
            r.speedup_vs_torch_fp32 = (r.images_per_sec / b) if (r.status == "ok" and r.images_per_sec and b) else None

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
        return json.dumps(_finite(self.to_dict()), indent=2, sort_keys=False, allow_nan=False) + "\n"

    def _sorted_rows(self, rows: Iterable[BenchRow]) -> list[BenchRow]:
        order: dict[tuple[str, str], int] = {}
        for r in self.rows:
            order.setdefault((r.label, r.precision), len(order))
        return sorted(rows, key=lambda r: (r.batch_size, order[(r.label, r.precision)]))

    def to_markdown(self) -> str:
        """``results.md``: the table a person reads first, then skipped/failed rows with reasons."""
        self.compute_speedups()
        env = self.environment
        lines = ["# accelkit benchmark", ""]
        devices = sorted({r.device for r in self.rows}) or ["—"]
        cpu = env.get("cpu", {})
        gpus = ", ".join(g.get("name", "?") for g in env.get("gpus", [])) or "none"
        vers = env.get("versions", {})
        vtxt = ", ".join(f"{k} {v}" for k, v in vers.items() if v and k in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "accelkit"))
        lines.append(f"Created {self.created} on {', '.join(devices)}. CPU: {cpu.get('model', '?')} ({cpu.get('available_cores', '?')} cores available); GPU: {gpus}.")
        if vtxt:
            lines.append(f"Versions: {vtxt}.")
        if self.settings:
            lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in self.settings.items()) + ".")
        loads = [r.load_average_1m for r in self.rows if r.load_average_1m is not None]
        cores = cpu.get("available_cores")
        if loads and isinstance(cores, int) and max(loads) > cores:
            lines.append(
                f"Note: the 1-minute load average reached {max(loads):.1f} on {cores} cores during the run; other processes "
                "competed for the CPU, so CPU numbers are pessimistic and noisy (re-run on a quiet machine for figures to quote)."
            )
        lines.append("")
        shown = self._sorted_rows(r for r in self.rows if r.status != "skipped")
        if shown:
            lines.append("| backend | precision | batch | images/s | p50 ms | p99 ms | vs torch fp32 | status |")
            lines.append("|---|---|---:|---:|---:|---:|---:|---|")
            for r in shown:
                if r.status == "ok" and r.images_per_sec is not None:
                    half_iqr = (r.images_per_sec_spread or {}).get("iqr", 0.0) / 2
                    ips = f"{_fmt_num(r.images_per_sec)} ± {_fmt_num(half_iqr)}"
                    p50 = _fmt_num((r.latency_ms or {}).get("p50"))
                    p99 = _fmt_num((r.latency_ms or {}).get("p99"))
                    sp = f"{r.speedup_vs_torch_fp32:.2f}×" if r.speedup_vs_torch_fp32 is not None else "—"
                else:
                    ips = p50 = p99 = sp = "—"
                lines.append(f"| {r.label} | {r.precision} | {r.batch_size} | {ips} | {p50} | {p99} | {sp} | {r.status} |")
            n_rep = sorted({len(r.images_per_sec_samples) for r in shown if r.status == "ok"})
            lines.append("")
            lines.append(
                f"images/s is the median over {'/'.join(map(str, n_rep)) or 'the'} timed repeats, ± half the interquartile range of those repeats; "
                "p50/p99 are per-batch latencies; 'vs torch fp32' divides by plain torch fp32 at the same batch size on the same device."
            )
        else:
            lines.append("No measurements.")
        lines += self._quality_markdown()
        for status, title in (("failed", "Failed"), ("skipped", "Skipped")):
            groups: dict[tuple[str, str, str, str], list[int]] = {}
            for r in self.rows:
                if r.status == status:
                    groups.setdefault((r.label, r.precision, r.device, r.reason or "no reason given"), []).append(r.batch_size)
            if groups:
                lines += ["", f"## {title}", ""]
                for (label, prec, dev, reason), batches in groups.items():
                    bs = ", ".join(str(b) for b in sorted(set(batches)))
                    lines.append(f"- **{label} {prec}** on {dev} (batch {bs}): {reason}")
        return "\n".join(lines) + "\n"

    def _quality_markdown(self) -> list[str]:
        """The quality-drift table (one line per backend+precision), when measured."""
        seen: dict[tuple[str, str], BenchRow] = {}
        for r in self.rows:
            if r.fid_drift is not None:
                seen.setdefault((r.label, r.precision), r)
        if not seen:
            return []
        q = next(iter(seen.values())).quality or {}
        lines = [
            "",
            "## Quality drift vs FP32 torch",
            "",
            f"N = {q.get('n', '?')} images per set, seed {q.get('seed', '?')}, extractor {q.get('extractor_name', '?')} "
            f"(sha256 {str(q.get('extractor_sha256', '?'))[:12]}…, resize {q.get('resize_mode', '?')}). The noise floor is the FID "
            "between the reference on two disjoint latent sets of the same N: a drift inside it is not a drift.",
            "",
            "| backend | precision | FID drift | noise floor | verdict | KID drift | PSNR dB | max abs err | uint8 changed | grid |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|---|",
        ]
        for (label, prec), r in seen.items():
            grid = f"[png](grid_{label.replace(':', '-')}_{prec}.png)"
            psnr = "∞" if r.psnr_db is not None and math.isinf(r.psnr_db) else _fmt_num(r.psnr_db)
            lines.append(
                f"| {label} | {prec} | {_fmt_num(r.fid_drift)} | {_fmt_num(r.noise_floor_fid)} | {r.drift_verdict} | "
                f"{_fmt_num(r.kid_drift)} | {psnr} | {_fmt_num(r.max_abs_err)} | {100 * (r.changed_uint8_fraction or 0):.2f}% | {grid} |"
            )
        lines += ["", "Pictures: [all backends on the same latents](samples_grid.png), [speed vs drift](speed_vs_drift.png)."]
        return lines

    CSV_COLUMNS = (
        "backend", "variant", "precision", "batch_size", "device", "status", "reason",
        "images_per_sec", "images_per_sec_p25", "images_per_sec_p75", "images_per_sec_min", "images_per_sec_max",
        "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "peak_memory_mb", "memory_kind", "model_size_mb",
        "build_seconds", "flops_per_image", "mfu", "speedup_vs_torch_fp32", "repeats", "images_per_sec_samples", "artifact",
        "fid_drift", "noise_floor_fid", "drift_verdict", "kid_drift", "psnr_db", "max_abs_err", "changed_uint8_fraction",
    )  # fmt: skip

    def to_csv(self) -> str:
        """``results.csv``: one line per row, flat columns (:attr:`CSV_COLUMNS`)."""
        self.compute_speedups()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.CSV_COLUMNS)
        for r in self._sorted_rows(self.rows):
            sp = r.images_per_sec_spread or {}
            lat = r.latency_ms or {}
            w.writerow(
                [
                    r.backend, r.variant or "", r.precision, r.batch_size, r.device, r.status, r.reason or "",
                    _csv_num(r.images_per_sec), _csv_num(sp.get("p25")), _csv_num(sp.get("p75")), _csv_num(sp.get("min")), _csv_num(sp.get("max")),
                    _csv_num(lat.get("p50")), _csv_num(lat.get("p90")), _csv_num(lat.get("p99")),
                    _csv_num(r.peak_memory_mb), r.memory_kind or "", _csv_num(r.model_size_mb), _csv_num(r.build_seconds),
                    r.flops_per_image if r.flops_per_image is not None else "", _csv_num(r.mfu), _csv_num(r.speedup_vs_torch_fp32),
                    len(r.images_per_sec_samples), ";".join(f"{s:.6g}" for s in r.images_per_sec_samples), r.artifact or "",
                    _csv_num(r.fid_drift), _csv_num(r.noise_floor_fid), r.drift_verdict or "", _csv_num(r.kid_drift),
                    _csv_num(r.psnr_db), _csv_num(r.max_abs_err), _csv_num(r.changed_uint8_fraction),
                ]
            )  # fmt: skip
        return buf.getvalue()

    def write(self, out_dir: str | os.PathLike[str], *, plot: bool = True) -> dict[str, Path]:
        """Write results.json/.md/.csv and throughput.png into ``out_dir`` (created if missing), atomically.

        Returns:
            File kind (``json``, ``md``, ``csv``, ``png``) -> path written.
        """
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the report folder {out} ({exc.strerror}); choose another --out") from None
        written: dict[str, Path] = {}
        for kind, text in (("json", self.to_json()), ("md", self.to_markdown()), ("csv", self.to_csv())):
            dest = out / FILES[kind]
            write_text_atomic(dest, text)
            written[kind] = dest
        if plot:
            dest = out / FILES["png"]
            plot_throughput(self.rows, dest)
            written["png"] = dest
        return written

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, data: Any, where: str = "results.json") -> Report:
        """Build a report from parsed ``results.json`` content, validating it.

        Raises:
            InputError: Unknown ``schema_version`` or malformed content (one line).
        """
        if not isinstance(data, dict):
            raise InputError(f"{where} is not a JSON object; expected an accelkit results.json (schema {cls.SCHEMA_VERSION})")
        ver = data.get("schema_version")
        if ver is None:
            raise InputError(f"{where} has no schema_version; it is not an accelkit results.json, re-run accelkit bench")
        if not isinstance(ver, int) or isinstance(ver, bool) or ver != cls.SCHEMA_VERSION:
            raise InputError(
                f"{where} has schema_version {ver!r}, this accelkit reads {cls.SCHEMA_VERSION}; "
                "re-run accelkit bench with this version or use the accelkit that wrote it"
            )
        for key, typ in (("created", str), ("environment", dict), ("artifacts", list), ("rows", list)):
            if not isinstance(data.get(key), typ):
                raise InputError(f"{where}: field {key!r} is missing or not a {typ.__name__}; the file is truncated or edited, re-run accelkit bench")
        rows: list[BenchRow] = []
        for i, rd in enumerate(data["rows"]):
            rows.append(_validate_row(rd, f"{where}: rows[{i}]"))
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
        try:
            text = p.read_text()
        except OSError as exc:
            raise InputError(f"cannot read {p} ({exc.strerror or exc}); give the results.json of an accelkit bench run") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p} is not valid JSON (line {exc.lineno}: {exc.msg}); re-run accelkit bench") from None
        return cls.from_dict(data, str(p))


def _validate_row(rd: Any, where: str) -> BenchRow:
    if not isinstance(rd, dict):
        raise InputError(f"{where} is not an object; the file is malformed, re-run accelkit bench")
    for key, typ in (("backend", str), ("precision", str), ("device", str), ("status", str)):
        if not isinstance(rd.get(key), typ):
            raise InputError(f"{where}: field {key!r} is missing or not a string; re-run accelkit bench")
    bs = rd.get("batch_size")
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise InputError(f"{where}: batch_size {bs!r} is not a positive integer; re-run accelkit bench")
    if rd["status"] not in STATUSES:
        raise InputError(f"{where}: status {rd['status']!r} is not one of {', '.join(STATUSES)}")
    samples = rd.get("images_per_sec_samples", [])
    if not isinstance(samples, list) or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in samples):
        raise InputError(f"{where}: images_per_sec_samples must be a list of numbers; re-run accelkit bench")
    if rd["status"] == "ok":
        ips = rd.get("images_per_sec")
        if not isinstance(ips, (int, float)) or isinstance(ips, bool) or not samples:
            raise InputError(f"{where}: an ok row needs images_per_sec and images_per_sec_samples; re-run accelkit bench")
    elif not rd.get("reason"):
        raise InputError(f"{where}: a {rd['status']} row needs a reason; re-run accelkit bench")
    try:
        return BenchRow.from_dict(rd)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}; re-run accelkit bench") from None


def _csv_num(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def _finite(obj: Any) -> Any:
    """Replace NaN/Inf floats by None, recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# -------------------------------------------------------------------------- plot
def _series(rows: Iterable[BenchRow]) -> dict[str, list[tuple[int, float, float, float]]]:
    """``label precision`` -> sorted (batch, median, p25, p75) for ok rows."""
    out: dict[str, list[tuple[int, float, float, float]]] = {}
    for r in rows:
        if r.status != "ok" or r.images_per_sec is None:
            continue
        sp = r.images_per_sec_spread or {}
        key = f"{r.label} {r.precision}" + (f" ({r.device})" if r.device != "cpu" else "")
        out.setdefault(key, []).append((r.batch_size, r.images_per_sec, sp.get("p25", r.images_per_sec), sp.get("p75", r.images_per_sec)))
    return {k: sorted(v) for k, v in out.items()}


def plot_throughput(rows: Iterable[BenchRow], dest: str | os.PathLike[str]) -> Path:
    """Draw images/sec vs batch size, one line per backend+precision, into a PNG (atomically).

    Uses matplotlib (Agg) when importable, else a plain Pillow drawing.
    """
    series = _series(rows)
    dest = Path(dest)
    with atomic_path(dest, force=True) as tmp:
        try:
            import matplotlib  # noqa: F401 - optional; Pillow draws the chart without it
        except ImportError:
            _plot_pillow(series, tmp)
        else:
            _plot_matplotlib(series, tmp)
    return dest


def _plot_matplotlib(series: dict[str, list[tuple[int, float, float, float]]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)  # render with Agg, never a GUI backend; pyplot's global state is untouched
    ax = fig.add_subplot(1, 1, 1)
    batches = sorted({b for pts in series.values() for b, *_ in pts})
    for label, pts in series.items():
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        lo = [max(0.0, p[1] - p[2]) for p in pts]
        hi = [max(0.0, p[3] - p[1]) for p in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label)
    if batches:
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches)
        ax.set_xticklabels([str(b) for b in batches])
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no successful measurements", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / second (median, bars: IQR)")
    ax.set_title("Throughput")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), format="png")


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``raw``."""
    if raw <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def _plot_pillow(series: dict[str, list[tuple[int, float, float, float]]], path: Path) -> None:
    from PIL import Image, ImageDraw

    w, h = 800, 500
    left, right, top, bottom = 80, 20, 40, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.text((w // 2 - 40, 12), "Throughput", fill="black")
    x0, x1, y0, y1 = left, w - right, h - bottom, top
    d.line([(x0, y0), (x1, y0)], fill="black")
    d.line([(x0, y0), (x0, y1)], fill="black")
    d.text((w // 2 - 30, h - 25), "batch size", fill="black")
    d.text((5, top - 25), "images/s", fill="black")
    batches = sorted({b for pts in series.values() for b, *_ in pts})
    if not batches:
        d.text((w // 2 - 80, h // 2), "no successful measurements", fill="black")
        img.save(path, format="PNG")
        return
    top_v = max(p[3] for pts in series.values() for p in pts) or 1.0
    step = _nice_step(top_v / 5)
    ymax = step * math.ceil(top_v * 1.05 / step)
    pos = {b: x0 + (i + 0.5) * (x1 - x0) / len(batches) for i, b in enumerate(batches)}

    def ypix(v: float) -> float:
        return y0 - (v / ymax) * (y0 - y1)

    for k in range(int(round(ymax / step)) + 1):
        v = step * k
        y = ypix(v)
        d.line([(x0 - 4, y), (x0, y)], fill="black")
        d.line([(x0 + 1, y), (x1, y)], fill=(225, 225, 225))
        d.text((5, y - 6), _fmt_num(v), fill="black")
    for b, x in pos.items():
        d.line([(x, y0), (x, y0 + 4)], fill="black")
        d.text((x - 4, y0 + 8), str(b), fill="black")
    for i, (label, pts) in enumerate(series.items()):
        col = _COLORS[i % len(_COLORS)]
        xy = [(pos[b], ypix(m)) for b, m, _, _ in pts]
        if len(xy) > 1:
            d.line(xy, fill=col, width=2)
        for (b, m, lo, hi), (x, y) in zip(pts, xy):
            d.line([(x, ypix(lo)), (x, ypix(hi))], fill=col)
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=col)
        ly = top + 5 + 16 * i
        d.rectangle([x0 + 10, ly + 2, x0 + 22, ly + 12], fill=col)
        d.text((x0 + 28, ly), label, fill="black")
    img.save(path, format="PNG")
