"""ONNX helpers shared by the passes: writing, metadata, naming, quieting the exporters.

Kept apart from the passes themselves so that ``export``, ``fp16``, ``int8`` and
``sensitivity`` import these helpers, never each other.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact

log = logging.getLogger("accelkit.passes")

#: ONNX's protobuf limit; larger models store weights as external data.
TWO_GB = 2 * 1024**3


def default_onnx_path(
    artifact: Artifact, precision: str = "fp32", folder: Path | None = None
) -> Path:
    """``<stem>.onnx`` / ``<stem>.<precision>.onnx`` next to the source file (or next to
    the ONNX file being converted).

    Bundled checkpoints (inside the accelkit install) are exported to the current
    folder instead, never into the package.
    """
    if (
        artifact.format == "onnx" and artifact.path is not None
    ):  # converting an ONNX file: next to it
        stem = artifact.path.name.split(".")[0]
        folder = folder or artifact.path.parent
    else:
        stem = artifact.name
    name = f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx"
    if folder is not None:
        return folder / name
    src = Path(artifact.source) if artifact.source else None
    from accelkit.models import _weights_dirs

    if src is None or any(src.resolve().parent == d.resolve() for d in _weights_dirs()):
        return Path.cwd() / name
    return src.parent / name


def quiet_exporters() -> contextlib.ExitStack:
    """Swallow the exporters' own stdout/stderr chatter (the library never prints)."""
    stack = contextlib.ExitStack()
    buf = io.StringIO()
    stack.enter_context(contextlib.redirect_stdout(buf))
    stack.enter_context(contextlib.redirect_stderr(buf))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.callback(lambda: log.debug("exporter output:\n%s", buf.getvalue()))
    for name in (
        "torch.onnx",
        "torch.export",
        "torch._dynamo",
        "torch.fx.experimental.symbolic_shapes",
        "onnxscript",
    ):
        lg = logging.getLogger(name)
        old = lg.level
        lg.setLevel(logging.ERROR)
        stack.callback(lg.setLevel, old)
    return stack


def short_error(exc: BaseException) -> str:
    """The most telling line of an exporter/converter error, at most 240 characters."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "nsupported" in ln or "not supported" in ln or "no symbolic" in ln.lower():
            return ln[:240]
    return (lines[0] if lines else type(exc).__name__)[:240]


def set_metadata(model: Any, artifact: Artifact, precision: str) -> None:
    """Store the spec and provenance in the ONNX ``metadata_props`` (survives copies)."""
    props = {p.key: p for p in model.metadata_props}
    values = {
        "accelkit.spec": artifact.spec.to_json(),
        "accelkit.precision": precision,
        "accelkit.source_sha256": artifact.source_sha256 or "",
    }
    for k, v in values.items():
        if k in props:
            props[k].value = v
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v


def onnx_writer(model: Any) -> Callable[[Path], None]:
    """A ``write(path)`` callable for :meth:`Artifact.save`: one file (external data only over 2 GB)."""
    import onnx

    def write(tmp: Path) -> None:
        if model.ByteSize() < TWO_GB:
            onnx.save_model(model, str(tmp))
        else:  # pragma: no cover - needs a >2 GB model
            onnx.save_model(
                model,
                str(tmp),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=tmp.name + ".data",
            )

    return write


def check_graph(model: Any, what: str, fix: str = "") -> None:
    """Run ``onnx.checker`` (full check) and turn a failure into one :class:`ExportError` line."""
    import onnx

    from accelkit.errors import ExportError

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
        raise ExportError(
            f"{what} fails onnx.checker ({short_error(exc)})" + (f"; {fix}" if fix else "")
        ) from None


def output_name(input_names: Sequence[str]) -> str:
    """The ONNX output's name: ``image``, or ``output`` when an input is already called ``image``."""
    return "output" if "image" in input_names else "image"


def static_batch(model: Any) -> int | None:
    """The fixed batch size of the first graph input, or None when it is dynamic."""
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            return int(dims[0].dim_value)
    return None


@contextlib.contextmanager
def temp_onnx(model: Any) -> Iterator[Path]:
    """Save ``model`` to a temporary ``.onnx`` file for the body (ONNX Runtime reads paths); removed after."""
    import onnx

    fd, name = tempfile.mkstemp(prefix="accelkit-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save_model(model, name)
        yield Path(name)
    finally:
        os.unlink(name)


#: Operator domains ONNX Runtime (CPU) implements; anything else is a custom op.
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training")


def check_standard_ops(model: Any, what: str) -> None:
    """Refuse a graph with custom-domain operators (no kernel here to run or calibrate them).

    Raises:
        ExportError: One line naming the domain and an op of it.
    """
    from accelkit.errors import ExportError

    custom: dict[str, str] = {}
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            custom.setdefault(node.domain, node.op_type)
    if custom:
        dom, op = next(iter(custom.items()))
        raise ExportError(
            f"{what} uses operators of the custom domain {dom!r} (e.g. {op}) that ONNX Runtime cannot run here, so it "
            "cannot be calibrated or verified; convert it where that op's library is loaded, or replace the op"
        )
