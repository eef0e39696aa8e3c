"""``OnnxFromTorch``: export a torch generator to a single-file ONNX model, verified.

Both torch exporters are handled: the dynamo exporter (``torch.export`` based, the
default in recent torch) for eager modules and ``.pt2`` programs, and the TorchScript
exporter (``dynamo=False``) for ScriptModules, which the dynamo exporter cannot take;
with ``exporter="auto"`` an eager module that the dynamo exporter rejects is retried
with the TorchScript exporter, and the sidecar says which one produced the file.
The batch dimension is dynamic; weights are stored inline (single file) unless the
model exceeds ONNX's 2 GB protobuf limit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from accelkit.artifact import Artifact
from accelkit.files import atomic_path, refuse_existing
from accelkit.errors import AccelkitError, ExportError, InputError
from accelkit.passes.verify import DEFAULT_TOLERANCE, torch_forward, verification_batches, verify_onnx
from accelkit.sampler import LatentSampler

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
_TWO_GB = 2 * 1024**3
EXPORTERS = ("auto", "dynamo", "torchscript")


def default_onnx_path(artifact: Artifact, precision: str = "fp32", folder: Path | None = None) -> Path:
    """``<stem>.onnx`` / ``<stem>.<precision>.onnx`` next to the source file (or next to
    the ONNX file being converted).

    Bundled checkpoints (inside the accelkit install) are exported to the current
    folder instead, never into the package.
    """
    if artifact.format == "onnx" and artifact.path is not None:  # converting an ONNX file: next to it
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


def _quiet() -> contextlib.ExitStack:
    """Swallow the exporters' own stdout/stderr chatter (the library never prints)."""
    stack = contextlib.ExitStack()
    buf = io.StringIO()
    stack.enter_context(contextlib.redirect_stdout(buf))
    stack.enter_context(contextlib.redirect_stderr(buf))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.callback(lambda: log.debug("exporter output:\n%s", buf.getvalue()))
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes", "onnxscript"):
        lg = logging.getLogger(name)
        old = lg.level
        lg.setLevel(logging.ERROR)
        stack.callback(lg.setLevel, old)
    return stack


def _short(exc: BaseException) -> str:
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


def save_onnx_atomic(model: Any, dest: Path, force: bool) -> None:
    """Check and write an ONNX model as one file (external data only over 2 GB), atomically."""
    import onnx

    size = model.ByteSize()
    with atomic_path(dest, force=force) as tmp:
        if size < _TWO_GB:
            onnx.save_model(model, str(tmp))
        else:  # pragma: no cover - needs a >2 GB model
            data_name = dest.name + ".data"
            onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name)


class OnnxFromTorch:
    """Export a torch artifact to verified ONNX with a dynamic batch dimension.

    Args:
        out: Destination ``.onnx`` path (None: :func:`default_onnx_path`).
        opset: ONNX opset version.
        batch_range: ``(min, opt, max)`` batch sizes; the dynamic dimension's bounds
            for the dynamo exporter; verification runs at min and a larger size.
        exporter: ``auto``, ``dynamo`` or ``torchscript``.
        force: Overwrite an existing file.
        verify: Run ONNX Runtime against torch after export.
        tolerance: Max abs error allowed in verification (output units).
        seed: Seed of the verification inputs.
        progress: Called with a short message at each step.
    """

    name = "OnnxFromTorch"

    def __init__(
        self,
        out: str | Path | None = None,
        *,
        opset: int = 18,
        batch_range: tuple[int, int, int] = (1, 8, 64),
        exporter: str = "auto",
        force: bool = False,
        verify: bool = True,
        tolerance: float | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> None:
        if exporter not in EXPORTERS:
            raise InputError(f"--exporter {exporter!r} is unknown; choose one of {', '.join(EXPORTERS)}")
        if not 7 <= opset <= 25:
            raise InputError(f"--opset {opset} is out of range; use 13..25 (18 recommended)")
        self.out = Path(out) if out is not None else None
        self.opset = opset
        self.batch_range = batch_range
        self.exporter = exporter
        self.force = force
        self.verify = verify
        self.tolerance = tolerance
        self.seed = seed
        self.progress = progress or (lambda msg: None)

    def options(self) -> dict[str, Any]:
        """The options as recorded in the sidecar."""
        return {
            "opset": self.opset,
            "batch_range": list(self.batch_range),
            "exporter": self.exporter,
            "verify": self.verify,
            "tolerance": self.tolerance,
            "seed": self.seed,
        }

    def export_model(self, artifact: Artifact) -> tuple[Any, dict[str, Any]]:
        """Export to an in-memory ``onnx.ModelProto`` (weights loaded); no verification.

        Returns:
            ``(model, info)`` with info holding the exporter used and any fallback reason.
        """
        import onnx
        import torch

        if artifact.format != "torch" or artifact.module is None:
            raise InputError(f"OnnxFromTorch needs a torch generator, got a {artifact.format} artifact")
        spec = artifact.spec
        names = spec.input_names
        example = LatentSampler(spec, seed=12345).inputs(0, 2)
        args = tuple(torch.from_numpy(example[n]) for n in names)
        is_script = isinstance(artifact.module, (torch.jit.ScriptModule, torch.jit.ScriptFunction))
        order = self._exporter_order(artifact, is_script)
        info: dict[str, Any] = {"exporter": None, "fallback_reason": None}
        errors: list[str] = []
        with tempfile.TemporaryDirectory(prefix="accelkit-export-") as tmp:
            f = Path(tmp) / "model.onnx"
            for exp in order:
                try:
                    with _quiet():
                        self._run_exporter(exp, artifact, args, names, f)
                    model = onnx.load(str(f), load_external_data=True)
                    info["exporter"] = exp
                    break
                except AccelkitError:
                    raise
                except Exception as exc:  # exporter failures come in many types
                    log.debug("exporter %s failed", exp, exc_info=True)
                    errors.append(f"{exp} exporter: {_short(exc)}")
                    if exp == "dynamo" and len(order) > 1:
                        info["fallback_reason"] = errors[-1]
            else:
                raise ExportError(
                    "ONNX export failed (" + "; ".join(errors) + "); an unsupported op needs a newer --opset, "
                    "a custom symbolic, or a model change"
                )
        return model, info

    def _exporter_order(self, artifact: Artifact, is_script: bool) -> list[str]:
        if is_script:
            if self.exporter == "dynamo":
                raise InputError("the dynamo exporter cannot take a TorchScript module; use --exporter torchscript (or auto)")
            return ["torchscript"]
        if artifact.program is not None:
            return ["dynamo"] if self.exporter != "torchscript" else ["torchscript"]
        return {"auto": ["dynamo", "torchscript"], "dynamo": ["dynamo"], "torchscript": ["torchscript"]}[self.exporter]

    def _run_exporter(self, exp: str, artifact: Artifact, args: tuple[Any, ...], names: Sequence[str], f: Path) -> None:
        import torch

        out_name = output_name(names)
        lo, _opt, hi = self.batch_range
        if exp == "dynamo":
            if artifact.program is not None:
                torch.onnx.export(
                    artifact.program, args, str(f), input_names=list(names), output_names=[out_name],
                    opset_version=self.opset, dynamo=True, external_data=False,
                )
                return
            batch = torch.export.Dim("batch", min=max(1, lo), max=max(hi, 2))
            fwd_names = _forward_names(artifact.module, len(names))
            torch.onnx.export(
                artifact.module, args, str(f), input_names=list(names), output_names=[out_name],
                opset_version=self.opset, dynamo=True, external_data=False,
                dynamic_shapes={n: {0: batch} for n in fwd_names},
            )
            return
        module = artifact.module
        if artifact.program is not None:
            module = artifact.program.module()
        torch.onnx.export(
            module, args, str(f), input_names=list(names), output_names=[out_name], opset_version=self.opset,
            dynamo=False, dynamic_axes={**{n: {0: "batch"} for n in names}, out_name: {0: "batch"}},
        )

    def __call__(self, artifact: Artifact) -> Artifact:
        """Export, check, verify and write ``out`` plus its sidecar.

        Raises:
            InputError: Not a torch artifact, or ``out`` exists without ``force``.
            ExportError: The exporters failed (message names the unsupported op).
            VerificationError / NonFiniteOutputError: ONNX Runtime disagrees with torch.
        """
        import onnx

        dest = self.out or default_onnx_path(artifact)
        refuse_existing(dest, self.force)
        t0 = time.perf_counter()
        self.progress(f"exporting to ONNX (opset {self.opset})")
        model, info = self.export_model(artifact)
        export_s = time.perf_counter() - t0
        static = _static_batch(model)
        set_metadata(model, artifact, "fp32")
        self.progress("checking the ONNX graph")
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:
            raise ExportError(f"the exported ONNX graph fails onnx.checker ({_short(exc)}); try another --opset or --exporter") from None
        record: dict[str, Any] = {"name": self.name, "options": self.options(), **info, "seconds": round(export_s, 3)}
        if static is not None:
            record["static_batch"] = static
            log.warning("the exported graph has a fixed batch of %s (the source program was exported that way)", static)
        with _temp_onnx(model) as tmp_model:
            verification = self._verify(tmp_model, artifact, static, "fp32") if self.verify else None
        save_onnx_atomic(model, dest, self.force)
        out = artifact.derive(format="onnx", path=dest, precision="fp32", module=artifact.module, program=None)
        out.passes.append(record)
        out.meta["opset"] = self.opset
        out.meta["batch_range"] = list(self.batch_range)
        if verification is not None:
            out.meta["verification"] = verification
        out.save_sidecar()
        return out

    def _verify(self, onnx_path: Path, artifact: Artifact, static: int | None, precision: str) -> dict[str, Any]:
        self.progress(f"verifying {precision} ONNX against torch in ONNX Runtime")
        tol = self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[precision]
        return verify_onnx(
            onnx_path,
            artifact.spec,
            lambda feeds: torch_forward(artifact, feeds),
            batch_sizes=verification_batches(self.batch_range, static),
            tolerance=tol,
            precision=precision,
            seed=self.seed,
        ) | {"reference": "torch fp32 (cpu)"}


def output_name(input_names: Sequence[str]) -> str:
    """The ONNX output's name: ``image``, or ``output`` when an input is already called ``image``."""
    return "output" if "image" in input_names else "image"


def _forward_names(module: Any, n: int) -> list[str]:
    from accelkit.loading import _forward_arg_names

    names = _forward_arg_names(module) or []
    return names[:n] if len(names) >= n else [f"arg{i}" for i in range(n)]


def _static_batch(model: Any) -> int | None:
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            return int(dims[0].dim_value)
    return None


@contextlib.contextmanager
def _temp_onnx(model: Any) -> Any:
    import onnx

    fd, name = tempfile.mkstemp(prefix="accelkit-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save_model(model, name)
        yield Path(name)
    finally:
        os.unlink(name)


def export(
    artifact: Artifact,
    out: str | Path | None = None,
    *,
    fp16: bool = False,
    int8: bool = False,
    opset: int = 18,
    batch_range: tuple[int, int, int] = (1, 8, 64),
    exporter: str = "auto",
    force: bool = False,
    tolerance: float | None = None,
    fp16_keep_ops: Sequence[str] | None = None,
    fp16_keep_nodes: Sequence[str] = (),
    int8_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> Artifact:
    """One call for ``accelkit export`` / ``quantize``: torch (or ONNX) -> fp32, fp16 or int8 ONNX, verified.

    With ``fp16`` or ``int8``, the fp32 model is exported to a temporary file first and
    only the converted file (plus sidecar) is written to ``out``. ``int8_options`` go to
    :class:`~accelkit.passes.int8.Int8` (calib_samples, calib_method, per_channel,
    op_types, exclude).
    """
    from accelkit.passes.fp16 import Fp16
    from accelkit.passes.int8 import Int8

    if fp16 and int8:
        raise InputError("--fp16 and --int8 exclude each other; pick one precision per file")
    precision = "fp16" if fp16 else "int8" if int8 else "fp32"
    dest = Path(out) if out is not None else default_onnx_path(artifact, precision)
    refuse_existing(dest, force)
    if dest.suffix.lower() != ".onnx":
        raise InputError(f"-o {dest}: the output must end in .onnx")

    def convert(fp32: Artifact) -> Artifact:
        if fp16:
            return Fp16(dest, force=force, tolerance=tolerance, keep_ops=fp16_keep_ops, keep_nodes=fp16_keep_nodes, progress=progress)(fp32)
        return Int8(dest, force=force, tolerance=tolerance, progress=progress, batch_range=batch_range, **dict(int8_options or {}))(fp32)

    if artifact.format == "onnx":
        if precision == "fp32":
            raise InputError(f"{artifact.path} is already ONNX; use --fp16 or --int8 to convert it, or accelkit build for TensorRT")
        return convert(artifact)
    if artifact.format != "torch":
        raise InputError(f"cannot export a {artifact.format} artifact to ONNX")
    if precision == "fp32":
        return OnnxFromTorch(dest, opset=opset, batch_range=batch_range, exporter=exporter, force=force, tolerance=tolerance, progress=progress)(artifact)
    with tempfile.TemporaryDirectory(prefix="accelkit-fp32-") as tmp:
        fp32 = OnnxFromTorch(Path(tmp) / dest.name.replace(f".{precision}", ""), opset=opset, batch_range=batch_range, exporter=exporter, force=True, progress=progress)(artifact)
        return convert(fp32)
