"""``accelkit info``: what a generator file is and what accelkit infers about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accelkit.pipelines.options import resolve_artifact
from accelkit.pipelines.results import Result, fmt_flops


@dataclass
class InfoResult(Result):
    """Format, size, sha256, parameters, FLOPs per image and the I/O spec of a generator."""

    description: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The description without the human-readable spec lines."""
        return {k: v for k, v in self.description.items() if k != "spec_lines"}

    def to_text(self) -> str:
        """An aligned two-column listing."""
        d = self.description
        size = f"{d['bytes'] / 1e6:.2f} MB" if d.get("bytes") else "?"
        rows = [
            ("file", f"{d['file']} ({size})"),
            ("sha256", d["sha256"]),
            (
                "format",
                d["format"]
                + (f" (architecture {d['architecture']})" if d.get("architecture") else ""),
            ),
            ("precision", d["precision"]),
            ("parameters", f"{d['parameters']:,}" if d.get("parameters") is not None else "?"),
            ("FLOPs/image", fmt_flops(d.get("flops_per_image"))),
        ]
        lines = [f"{k:<12} {v}" for k, v in rows]
        for line in d["spec_lines"]:
            key, _, rest = line.partition(" ")
            lines.append(
                f"{key:<12} {rest.strip()}" if key in ("input", "output") else f"{'':<12} {line}"
            )
        return "\n".join(lines)


def info(generator: Any = None, progress: Any = None, diffusion: Any = None) -> Result:
    """Describe a generator: format, parameters, FLOPs per image, inferred I/O spec.

    Args:
        generator: Path, bundled name, :class:`LoadOptions` or :class:`Artifact`
            (None: the bundled DCGAN).
        progress: Called with a short message per step.
        diffusion: :class:`~accelkit.options.DiffusionSettings` of a diffusion pipeline
            (a pipeline folder is described by :func:`accelkit.pipelines.diffusion.info`).
    """
    from accelkit.describe import describe_artifact
    from accelkit.pipelines import diffusion as dif

    say = progress or (lambda m: None)
    say("loading the generator")
    art = resolve_artifact(generator)
    if dif.is_pipeline(art):
        return dif.info(art, diffusion, progress)
    dif.refuse_knobs(diffusion, art)
    say("counting FLOPs")
    return InfoResult(describe_artifact(art))
