"""The base of every conversion pass: options in ``__init__``, work in ``_run_impl``.

A pass takes an :class:`~accelkit.artifact.Artifact` and returns a new one written to
disk. What every pass does around its own work lives here, once (as Polygraphy's
``BaseLoader`` does ``call_impl``): check the destination before any long work, time
the work, append the pass record (name, options, extra fields, seconds) to the
artifact's pass chain, and write the file and its sidecar as a unit
(:meth:`Artifact.save`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from accelkit.artifact import Artifact, ArtifactFormat
from accelkit.errors import AccelkitError, ExportError, one_line
from accelkit.files import refuse_existing

Progress = Callable[[str], None]


@dataclass
class PassResult:
    """What a pass's ``_run_impl`` made.

    Attributes:
        write: Writes the new artifact's file to the temporary path it is given.
        format: Format of the new artifact (``onnx``, ``torch``, ``trt``).
        precision: Its precision (``fp32``, ``fp16``, ``int8``...).
        meta: Entries merged into the artifact's ``meta`` (verification, fp16, int8...).
        record: Extra fields of the pass record (e.g. which exporter ran).
        changes: Other :meth:`Artifact.derive` changes (``module``, ``program``, ``spec``).
    """

    write: Callable[[Path], None]
    format: ArtifactFormat
    precision: str
    meta: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)


class Pass:
    """A conversion ``Artifact -> Artifact`` that writes a file plus its sidecar.

    Subclasses set :attr:`name`, take their options in ``__init__`` (calling
    ``super().__init__(out, force=..., progress=...)``), return them from
    :meth:`options`, may refuse an input in :meth:`check`, and do the work in
    :meth:`_run_impl`.

    Args:
        out: Destination path (None: :meth:`default_destination`).
        force: Overwrite an existing destination.
        progress: Called with a short message at each step.
    """

    name: ClassVar[str] = "Pass"

    def __init__(
        self,
        out: str | Path | None = None,
        *,
        force: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.out = Path(out) if out is not None else None
        self.force = force
        self.progress: Progress = progress or (lambda msg: None)

    def options(self) -> dict[str, Any]:
        """The options as recorded in the sidecar."""
        return {}

    def check(self, artifact: Artifact) -> None:
        """Raise an :class:`~accelkit.errors.AccelkitError` when ``artifact`` cannot be converted."""

    def default_destination(self, artifact: Artifact) -> Path:
        """Where the result goes when no ``out`` was given."""
        raise NotImplementedError(f"{self.name} needs an output path")

    def destination(self, artifact: Artifact) -> Path:
        """The path the result will be written to."""
        return self.out if self.out is not None else self.default_destination(artifact)

    def _run_impl(self, artifact: Artifact, dest: Path) -> PassResult:
        raise NotImplementedError

    def __call__(self, artifact: Artifact) -> Artifact:
        """Run the pass: check, refuse an existing destination, work, record, write.

        Raises:
            InputError: The destination exists without ``force``, or the input is refused.
            AccelkitError: Whatever the pass's own work raises (export, verification...).
        """
        self.check(artifact)
        dest = self.destination(artifact)
        refuse_existing(dest, self.force)  # before any long work
        t0 = time.perf_counter()
        try:
            res = self._run_impl(artifact, dest)
        except AccelkitError:
            raise
        except (
            Exception
        ) as exc:  # a library or the user's model failed in a way the pass did not foresee
            raise ExportError(
                f"{self.name} failed on {artifact.path or artifact.source}: {one_line(exc)}"
            ) from exc
        out = artifact.derive(format=res.format, path=dest, precision=res.precision, **res.changes)
        out.passes.append(
            {
                "name": self.name,
                "options": self.options(),
                **res.record,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        out.meta.update(res.meta)
        return out.save(res.write, force=self.force)
