"""``build_engine``: ONNX -> TensorRT engine, strongly typed, with the engine and timing caches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.errors import InputError
from accelkit.options import DEFAULT_BATCH_RANGE
from accelkit.pipelines.options import BuildOptions, resolve_artifact
from accelkit.pipelines.results import Result

Progress = Callable[[str], None]


@dataclass
class BuildResult(Result):
    """A TensorRT engine artifact (``.plan`` + sidecar)."""

    artifact: Artifact
    batch_range: tuple[int, int, int] = DEFAULT_BATCH_RANGE

    def to_dict(self) -> dict[str, Any]:
        """Path, TensorRT version, GPU and profile."""
        m = self.artifact.meta
        return {
            "path": str(self.artifact.path),
            "tensorrt_version": m.get("tensorrt_version"),
            "gpu": m.get("gpu"),
            "batch_range": list(self.batch_range),
        }

    def to_text(self) -> str:
        """What ``accelkit build`` prints."""
        m = self.artifact.meta
        gpu = m.get("gpu")
        name = gpu.get("name", "?") if isinstance(gpu, dict) else (gpu or "?")
        return f"wrote {self.artifact.path} (TensorRT {m.get('tensorrt_version', '?')}, {name}, batch {':'.join(map(str, self.batch_range))})"


def build_engine(
    model: Any, options: BuildOptions | None = None, progress: Progress | None = None
) -> BuildResult:
    """Build a TensorRT engine from an ONNX model (fp32, fp16 or int8 Q/DQ: precision from the graph).

    Args:
        model: ONNX path, :class:`LoadOptions` or ONNX :class:`Artifact`.
        options: :class:`BuildOptions`.
        progress: Called with a short message per step (with the build's percentage).

    Raises:
        InputError: Not ONNX, bad options, an existing engine without ``force``.
        MissingDependencyError / BackendUnavailableError: no TensorRT or no NVIDIA GPU here.
    """
    from accelkit.trt.build import EngineFromOnnx

    opts = (options or BuildOptions()).validated()
    say = progress or (lambda m: None)
    from accelkit.loading import require_format

    require_format(model, ("onnx",), "export it first with: accelkit export {source}")
    art = resolve_artifact(model)
    if art.format != "onnx" or art.path is None:
        raise InputError(
            f"{art.source} is not ONNX; export it first with: accelkit export {art.source}"
        )
    dest = Path(opts.out) if opts.out is not None else art.path.with_suffix(".plan")

    def report(msg: str, frac: float | None = None) -> None:
        say(msg if frac is None else f"{msg} {100 * frac:.0f}%")

    engine = EngineFromOnnx(
        batch_range=opts.batch_range,
        workspace=opts.workspace_mb * 1024 * 1024,
        out=dest,
        force=opts.force,
        rebuild=opts.rebuild,
        cache=opts.cache,
        builder_optimization_level=opts.opt_level,
        tf32=opts.tf32,
        progress=report,
        device=opts.device,
    )(art)
    return BuildResult(engine, tuple(opts.batch_range))  # type: ignore[arg-type]
