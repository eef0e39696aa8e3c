"""``OnnxFromTorch``: export a torch generator to a single-file ONNX model, verified.

Both torch exporters are handled: the dynamo exporter (``torch.export`` based, the
default in recent torch) for eager modules and ``.pt2`` programs, and the TorchScript
exporter (``dynamo=False``) for ScriptModules, which the dynamo exporter cannot take;
with ``exporter="auto"`` an eager module that the dynamo exporter rejects is retried
with the TorchScript exporter, and the sidecar says which one produced the file.
The batch dimension is dynamic, and so are height and width of every spatial input
when the spec has an ``hw_range`` (``--dynamic-hw``): such a model is verified at its
nominal size and at a second one. Weights are stored inline (single file) unless the
model exceeds ONNX's 2 GB protobuf limit.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelkit.artifact import Artifact
from accelkit.errors import AccelkitError, ExportError, InputError, interruption_in
from accelkit.files import no_space_in, storage_error
from accelkit.options import DEFAULT_BATCH_RANGE
from accelkit.passes.base import Pass, PassResult, Progress
from accelkit.passes.onnx_io import (
    check_graph,
    default_onnx_path,
    onnx_writer,
    output_name,
    quiet_exporters,
    set_metadata,
    short_error,
    static_batch,
    temp_onnx,
)
from accelkit.passes.verify import (
    DEFAULT_TOLERANCE,
    torch_forward,
    verification_batches,
    verify_sizes,
)
from accelkit.sampler import LatentSampler
from accelkit.vocab import EXPORTERS

log = logging.getLogger(__name__)


class OnnxFromTorch(Pass):
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
        batch_range: tuple[int, int, int] = DEFAULT_BATCH_RANGE,
        exporter: str = "auto",
        force: bool = False,
        verify: bool = True,
        tolerance: float | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> None:
        if exporter not in EXPORTERS:
            raise InputError(
                f"--exporter {exporter!r} is unknown; choose one of {', '.join(EXPORTERS)}"
            )
        if not 7 <= opset <= 25:
            raise InputError(f"--opset {opset} is out of range; use 13..25 (18 recommended)")
        super().__init__(out, force=force, progress=progress)
        self.opset = opset
        self.batch_range = batch_range
        self.exporter = exporter
        self.verify = verify
        self.tolerance = tolerance
        self.seed = seed

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
            raise InputError(
                f"OnnxFromTorch needs a torch generator, got a {artifact.format} artifact"
            )
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
                    with quiet_exporters():
                        self._run_exporter(exp, artifact, args, names, f)
                    model = onnx.load(str(f), load_external_data=True)
                    info["exporter"] = exp
                    break
                except AccelkitError:
                    raise
                except Exception as exc:  # exporter failures come in many types
                    stop = interruption_in(exc)
                    if stop is not None:  # Ctrl-C wrapped by the exporter: stop, never fall back
                        raise stop from None
                    full = no_space_in(exc)
                    if full is not None:  # a full disk is not an unsupported op: say so, once
                        raise storage_error(
                            full, f"cannot write the ONNX export in {tmp}"
                        ) from None
                    log.debug("exporter %s failed", exp, exc_info=True)
                    errors.append(f"{exp} exporter: {short_error(exc)}")
                    if exp == "dynamo" and len(order) > 1:
                        info["fallback_reason"] = errors[-1]
            else:
                raise ExportError(
                    "ONNX export failed ("
                    + "; ".join(errors)
                    + "); an unsupported op needs a newer --opset, "
                    "a custom symbolic, or a model change"
                )
        return model, info

    def _exporter_order(self, artifact: Artifact, is_script: bool) -> list[str]:
        if is_script:
            if self.exporter == "dynamo":
                raise InputError(
                    "the dynamo exporter cannot take a TorchScript module; use --exporter torchscript (or auto)"
                )
            return ["torchscript"]
        if artifact.program is not None:
            return ["dynamo"] if self.exporter != "torchscript" else ["torchscript"]
        return {
            "auto": ["dynamo", "torchscript"],
            "dynamo": ["dynamo"],
            "torchscript": ["torchscript"],
        }[self.exporter]

    def _run_exporter(
        self, exp: str, artifact: Artifact, args: tuple[Any, ...], names: Sequence[str], f: Path
    ) -> None:
        import torch

        out_name = output_name(names)
        lo, _opt, hi = self.batch_range
        spec = artifact.spec
        spatial = {i.name for i in spec.spatial_inputs} if spec.hw_range is not None else set()
        if exp == "dynamo":
            if artifact.program is not None:
                torch.onnx.export(
                    artifact.program,
                    args,
                    str(f),
                    input_names=list(names),
                    output_names=[out_name],
                    opset_version=self.opset,
                    dynamo=True,
                    external_data=False,
                )
                return
            # torch.export refuses min == max ("inconsistent"): a fixed batch range (2:2:2)
            # exports with room for one more, and the file still runs at its batch.
            batch = torch.export.Dim("batch", min=max(1, lo), max=max(hi, lo + 1, 2))
            per_input: list[dict[int, Any]] = []
            for n in names:
                axes: dict[int, Any] = {0: batch}
                if n in spatial:
                    assert spec.hw_range is not None
                    hw_lo, _, hw_hi = spec.hw_range
                    axes[2] = torch.export.Dim("height", min=max(1, hw_lo), max=hw_hi)
                    axes[3] = torch.export.Dim("width", min=max(1, hw_lo), max=hw_hi)
                per_input.append(axes)
            if _takes_varargs(artifact.module):  # an output adapter: forward(*inputs)
                dynamic: Any = (tuple(per_input),)
            else:
                dynamic = dict(zip(_forward_names(artifact.module, len(names)), per_input))
            torch.onnx.export(
                artifact.module,
                args,
                str(f),
                input_names=list(names),
                output_names=[out_name],
                opset_version=self.opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes=dynamic,
            )
            return
        module = artifact.module
        if artifact.program is not None:
            module = artifact.program.module()
        axes_ts = {
            n: ({0: "batch", 2: "height", 3: "width"} if n in spatial else {0: "batch"})
            for n in names
        }
        axes_ts[out_name] = (
            {0: "batch", 2: "out_height", 3: "out_width"} if spatial else {0: "batch"}
        )
        torch.onnx.export(
            module,
            args,
            str(f),
            input_names=list(names),
            output_names=[out_name],
            opset_version=self.opset,
            dynamo=False,
            dynamic_axes=axes_ts,
        )

    def check(self, artifact: Artifact) -> None:
        """Refuse anything but a torch artifact, and dynamic H/W for a program exported at a fixed size."""
        if artifact.format != "torch" or artifact.module is None:
            raise InputError(
                f"OnnxFromTorch needs a torch generator, got a {artifact.format} artifact"
            )
        if (
            artifact.program is not None
            and artifact.spec.hw_range is not None
            and _program_fixed_hw(artifact.program)
        ):
            raise InputError(
                "this torch.export program was exported at a fixed height/width, so --dynamic-hw cannot make it "
                "size-free; re-export it with dynamic_shapes for dims 2 and 3, or load the eager model"
            )

    def default_destination(self, artifact: Artifact) -> Path:
        """``<stem>.onnx`` next to the source (the current folder for bundled generators)."""
        return default_onnx_path(artifact)

    def _run_impl(self, artifact: Artifact, dest: Path) -> PassResult:
        """Export, check and verify (ONNX Runtime against torch on seeded inputs).

        Raises:
            ExportError: The exporters failed (message names the unsupported op).
            VerificationError / NonFiniteOutputError: ONNX Runtime disagrees with torch.
        """
        self.progress(f"exporting to ONNX (opset {self.opset})")
        model, info = self.export_model(artifact)
        static = static_batch(model)
        set_metadata(model, artifact, "fp32")
        self.progress("checking the ONNX graph")
        check_graph(model, "the exported ONNX graph", "try another --opset or --exporter")
        if static is not None:
            info["static_batch"] = static
            log.warning(
                "the exported graph has a fixed batch of %s (the source program was exported that way)",
                static,
            )
        meta: dict[str, Any] = {"opset": self.opset, "batch_range": list(self.batch_range)}
        if self.verify:
            with temp_onnx(model) as tmp_model:
                meta["verification"] = self._verify(tmp_model, artifact, static, "fp32")
        return PassResult(
            onnx_writer(model),
            "onnx",
            "fp32",
            meta=meta,
            record=info,
            changes={"module": artifact.module, "program": None},
        )

    def _verify(
        self, onnx_path: Path, artifact: Artifact, static: int | None, precision: str
    ) -> dict[str, Any]:
        self.progress(f"verifying {precision} ONNX against torch in ONNX Runtime")
        tol = self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[precision]
        return verify_sizes(
            onnx_path,
            artifact.spec,
            lambda feeds: torch_forward(artifact, feeds),
            batch_sizes=verification_batches(self.batch_range, static),
            tolerance=tol,
            precision=precision,
            seed=self.seed,
        ) | {"reference": "torch fp32 (cpu)"}


def _forward_names(module: Any, n: int) -> list[str]:
    from accelkit.loading import forward_arg_names

    names = forward_arg_names(module) or []
    return names[:n] if len(names) >= n else [f"arg{i}" for i in range(n)]


def _takes_varargs(module: Any) -> bool:
    """True when ``module.forward`` takes ``*inputs`` (the output adapter)."""
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].kind == inspect.Parameter.VAR_POSITIONAL


def _program_fixed_hw(program: Any) -> bool:
    """True when a 4-D input of ``program`` has integer (not symbolic) height or width."""
    for n in program.graph.nodes:
        if n.op == "placeholder" and n.name in set(program.graph_signature.user_inputs):
            val = n.meta.get("val")
            if (
                val is not None
                and val.dim() == 4
                and (isinstance(val.shape[2], int) or isinstance(val.shape[3], int))
            ):
                return True
    return False
