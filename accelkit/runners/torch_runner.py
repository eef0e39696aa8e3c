"""PyTorch eager (optionally ``torch.compile``-d, optionally CUDA-graphed) runner.

Options (all recorded by :meth:`TorchRunner.describe`):

* ``precision``: ``fp32`` (default), ``bf16`` (CPU and CUDA) or ``fp16`` (CUDA only;
  half-precision convolutions on CPU are slow or missing, so they are refused).
* ``channels_last``: run 4-D tensors in NHWC memory format.
* ``compile``: wrap the module in ``torch.compile(dynamic=False)``; compilation for a
  batch shape happens in :meth:`prepare` and its seconds are recorded per batch size.
  On CPU the Inductor settings of :data:`CPU_COMPILE_CONFIG` apply (chosen from the
  measurement in ``benchmarks/results/torch_cpu_settings.md``; ``docs/cpu.md``). The
  first compiled output per batch size is checked against eager on the same batch
  (:data:`COMPILE_CHECK_RTOL`); a mismatch raises :class:`VerificationError`.
* ``compile_mode``: ``torch.compile`` mode (``default``, ``max-autotune``...; default: torch's).
* ``compile_config``: Inductor config overrides (``torch._inductor.config`` names, e.g.
  ``{"freezing": True, "cpp_wrapper": True}``) passed as ``torch.compile(options=...)``;
  replaces the CPU defaults; excludes ``compile_mode``.
* ``cuda_graphs``: CUDA only; each prepared batch is captured into a CUDA graph in
  :meth:`prepare` and replayed by :meth:`run`.
* ``threads``: intra-op CPU threads (``torch.set_num_threads``, process-wide; set again
  in :meth:`prepare`, so runners with different thread counts can be measured in turn);
  the previous value is restored by :meth:`deactivate`.

The artifact's module is never modified: when a precision, memory format or device
change is needed the runner works on a deep copy.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from accelkit.artifact import Artifact
from accelkit.errors import BackendUnavailableError, InputError, VerificationError
from accelkit.runners.base import Ask, Recipe, Runner
from accelkit.vocab import SOURCE_TORCH

log = logging.getLogger(__name__)

#: The precisions torch eager runs (fp16 on CUDA only).
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")
_OPTIONS = (
    "precision",
    "channels_last",
    "compile",
    "compile_mode",
    "compile_config",
    "cuda_graphs",
    "threads",
)
#: Inductor settings used for ``compile`` on CPU unless ``compile_config`` is given:
#: ``freezing`` (inference-only weights folded into constants, so Inductor can pre-pack them
#: for oneDNN) matched or beat torch's defaults on the bundled DCGAN (0.98x vs 0.81x eager
#: at batch 1, 1.29x vs 1.28x at 32; ``cpp_wrapper`` added nothing):
#: ``benchmarks/results/torch_cpu_settings.md``.
CPU_COMPILE_CONFIG: dict[str, Any] = {"freezing": True}
#: Largest |compiled - eager| accepted when a compiled module is first run, as a share of
#: the output range's width, by precision (fp32: reordered float math only).
COMPILE_CHECK_RTOL = {"fp32": 1e-3, "bf16": 5e-2, "fp16": 1e-2}


@dataclass
class _Prepared:
    """A batch placed on the device, plus its CUDA graph when one was captured."""

    args: tuple[Any, ...]
    batch_size: int
    graph: Any = None
    static_out: Any = None


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


class TorchRunner(Runner):
    """Runs a ``torch`` artifact (``artifact.module``) with PyTorch.

    Args:
        artifact: A ``torch`` artifact whose ``module`` takes the spec's inputs
            positionally (float32 latents/images, int64 labels) and returns an NCHW
            image batch (a tuple/list whose first item is that batch is accepted).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        **options: ``precision`` (``fp32``|``fp16``|``bf16``), ``channels_last`` (bool),
            ``compile`` (bool), ``cuda_graphs`` (bool), ``threads`` (int >= 1).

    Raises:
        InputError: Wrong artifact format, unknown option or option value.
        BackendUnavailableError: An option this device cannot honour (fp16 or CUDA
            graphs on CPU).
    """

    name = "torch"
    OPTIONS = _OPTIONS

    def __init__(self, artifact: Artifact, device: str = "cpu", **options: Any) -> None:
        super().__init__(artifact, device=device, **options)
        if artifact.format != "torch" or artifact.module is None:
            raise InputError(
                f"the torch backend runs in-memory torch artifacts, got a {artifact.format!r} artifact"
                f"{' without a module' if artifact.format == 'torch' else ''}; load the .pt/.safetensors file, or use --backend ort/trt for ONNX/engines"
            )
        prec = str(options.get("precision") or "fp32").lower()
        if prec not in TORCH_PRECISIONS:
            raise InputError(
                f"torch precision {prec!r} is not supported; choose one of {', '.join(TORCH_PRECISIONS)}"
            )
        reason = self.refusal(prec)  # fp16 runs on CUDA only
        if reason is not None:
            raise BackendUnavailableError(
                f"{reason}, --device cuda, or the ort backend with an fp16 ONNX model"
            )
        if options.get("cuda_graphs") and not _is_cuda(device):
            raise BackendUnavailableError(
                "torch cuda_graphs needs a CUDA device, got device cpu; drop cuda_graphs or use --device cuda"
            )
        self.options["precision"] = prec
        self._model: Any = None
        self._dtype: Any = None
        self._prev_threads: int | None = None
        self._compile_seconds: dict[int, float] = {}
        self._graphed_batches: set[int] = set()
        self._pool: Any = None
        self._eager: Any = None

    # ----------------------------------------------------------------- availability
    @classmethod
    def availability(cls, device: str = "cpu") -> str | None:
        """None when torch can run on ``device`` (any CPU; CUDA needs a CUDA build and a GPU)."""
        if not _is_cuda(device):
            return None
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a core dependency
            return f"torch is not importable ({exc})"
        if not torch.cuda.is_available():
            build = (
                "a CPU-only torch build" if torch.version.cuda is None else "no visible CUDA device"
            )
            return f"CUDA is not available to torch ({build}, torch {torch.__version__})"
        return None

    @classmethod
    def recipes(cls, ask: Ask) -> list[Recipe] | str:
        """torch eager on the generator itself: fp32, bf16 (CPU and CUDA; channels_last on CPU,
        measured 1.9-3.9x eager vs 0.8-2.4x without: ``torch_cpu_settings.md``), fp16 on CUDA;
        variants ``channels_last`` (fp32) and ``compile`` (``torch.compile``; expensive, never
        for TorchScript)."""
        if ask.kind != "torch":
            return f"the generator was given as {ask.kind.upper() if ask.kind == 'onnx' else ask.kind}; torch rows need the torch model"
        p = ask.precision
        if p == "int8":
            return "int8 is an ONNX Q/DQ precision; torch eager does not run it"
        if p == "fp16" and not ask.cuda:
            return "torch fp16 runs on CUDA only (CPU half kernels are missing or slow); use bf16 on CPU"
        if p not in TORCH_PRECISIONS:
            return f"torch does not run {p}"
        opts: dict[str, Any] = {"precision": p, **ask.cpu_threads()}
        if "channels_last" in ask.wants or (p == "bf16" and not ask.cuda):
            opts["channels_last"] = True
        if "cuda_graphs" in ask.wants:
            opts["cuda_graphs"] = True
        # bf16 on a CPU without native bf16 is emulated: measurable, but it cannot win a search
        searched = ask.cuda or p != "bf16" or ask.native_bf16
        out = [Recipe(cls.name, p, SOURCE_TORCH, opts, searched=searched)]
        if p == "fp32" and not opts.get("channels_last"):
            out.append(
                Recipe(
                    cls.name,
                    p,
                    SOURCE_TORCH,
                    {**opts, "channels_last": True},
                    variant="channels_last",
                )
            )
        out.append(
            Recipe(
                cls.name,
                p,
                SOURCE_TORCH,
                {**opts, "compile": True},
                variant="compile",
                expensive=True,
                searched=searched and p == "fp32",
                refused="torch.compile cannot compile a TorchScript module"
                if ask.scripted
                else None,
            )
        )
        return out

    # -------------------------------------------------------------------- lifecycle
    def _activate_impl(self) -> None:
        import torch

        reason = self.availability(self.device)
        if reason is not None:
            raise BackendUnavailableError(f"torch on {self.device} cannot run here: {reason}")
        threads = self.options.get("threads")
        if threads is not None:
            self._prev_threads = torch.get_num_threads()
            torch.set_num_threads(int(threads))
        self._dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
            self.precision
        ]
        model = self.artifact.module
        needs_copy = (
            self._dtype != torch.float32
            or bool(self.options.get("channels_last"))
            or bool(self.options.get("compile"))
            or _is_cuda(self.device)
        )
        if needs_copy:
            model = copy.deepcopy(model)
        if (
            self.artifact.program is None
        ):  # a torch.export module refuses .eval(): it is frozen in the mode it was exported in
            model = model.eval()
        if _is_cuda(self.device):
            model = model.to(self.device)
        if self._dtype != torch.float32:
            model = model.to(self._dtype)
        if self.options.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
        self._eager = model
        if self.options.get("compile"):
            mode = self.options.get("compile_mode")
            cfg = self.compile_config()
            if mode and cfg:
                raise InputError(
                    f"torch compile_mode {mode!r} and compile_config {cfg} exclude each other (torch.compile takes one); give one"
                )
            # Inductor settings go to this compile call (options=), not to the process-wide config:
            # dynamo then recompiles for this runner instead of reusing another runner's graph of the same model class.
            kwargs: dict[str, Any] = (
                {"mode": str(mode)} if mode else ({"options": cfg} if cfg else {})
            )
            model = torch.compile(model, dynamic=False, **kwargs)
        self._model = model
        self._compile_seconds.clear()
        self._graphed_batches.clear()

    def _deactivate_impl(self) -> None:
        import torch

        self._model = None
        self._eager = None
        self._pool = None
        self._graphed_batches.clear()
        if self._prev_threads is not None:
            torch.set_num_threads(self._prev_threads)
            self._prev_threads = None
        if _is_cuda(self.device) and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------------- running
    def _forward(self, args: tuple[Any, ...]) -> Any:
        import torch

        out = self._model(*args)
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            out = out[0]
        return out

    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> _Prepared:
        import torch

        threads = self.options.get("threads")
        if threads is not None and torch.get_num_threads() != int(threads):
            # torch's pool is process-wide: another active runner may have changed it since activate()
            torch.set_num_threads(int(threads))

        args = []
        for inp in self.spec.inputs:
            t = torch.from_numpy(np.ascontiguousarray(inputs[inp.name]))
            if inp.kind == "label" or inp.dtype.startswith("int"):
                t = t.to(device=self.device, dtype=torch.int64)
            else:
                t = t.to(device=self.device, dtype=self._dtype)
                if self.options.get("channels_last") and t.dim() == 4:
                    t = t.contiguous(memory_format=torch.channels_last)
            args.append(t)
        batch = int(next(iter(inputs.values())).shape[0])
        prepared = _Prepared(args=tuple(args), batch_size=batch)
        if self.options.get("compile") and batch not in self._compile_seconds:
            t0 = time.perf_counter()
            with torch.inference_mode():
                got = self._forward(prepared.args)
            self._synchronize_impl()
            self._compile_seconds[batch] = time.perf_counter() - t0
            self._check_compiled(got, prepared.args)
            log.info("torch.compile for batch %d took %.1f s", batch, self._compile_seconds[batch])
        if self.options.get("cuda_graphs"):
            self._capture(prepared)
        return prepared

    def _check_compiled(self, got: Any, args: tuple[Any, ...]) -> None:
        """Compare the compiled module's first output with eager on the same batch; a mismatch is an error."""
        import torch

        with torch.inference_mode():
            out = self._eager(*args)
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            out = out[0]
        lo, hi = self.spec.output_range
        err = float((got.float() - out.float()).abs().max())
        tol = COMPILE_CHECK_RTOL.get(self.precision, 1e-3) * max(hi - lo, 1e-6)
        if not err <= tol:
            raise VerificationError(
                f"torch.compile (mode {self.options.get('compile_mode') or 'default'}, inductor config {self.compile_config()}) "
                f"differs from eager by {err:.3g} > {tol:.3g} on the same batch; drop the compile_config/mode that causes it or run eager"
            )

    def compile_config(self) -> dict[str, Any]:
        """Inductor overrides applied while compiling: ``compile_config``, else :data:`CPU_COMPILE_CONFIG` on CPU."""
        given = self.options.get("compile_config")
        if given is not None:
            return dict(given)
        return {} if _is_cuda(self.device) else dict(CPU_COMPILE_CONFIG)

    def _capture(self, prepared: _Prepared) -> None:
        """Capture one forward on ``prepared``'s static inputs into a CUDA graph."""
        import torch

        side = torch.cuda.Stream(device=self.device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode():
            with torch.cuda.stream(side):
                for _ in range(3):  # warm up cuDNN autotuning and allocator outside the capture
                    self._forward(prepared.args)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            with torch.cuda.graph(graph, pool=self._pool):
                prepared.static_out = self._forward(prepared.args)
        prepared.graph = graph
        self._graphed_batches.add(prepared.batch_size)

    def _run_impl(self, prepared: _Prepared) -> Any:
        import torch

        if prepared.graph is not None:
            prepared.graph.replay()
            return prepared.static_out
        with torch.inference_mode():
            return self._forward(prepared.args)

    def _synchronize_impl(self) -> None:
        if _is_cuda(self.device):
            import torch

            torch.cuda.synchronize(self.device)

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        import torch

        if not isinstance(output, torch.Tensor):
            raise InputError(
                f"the generator returned {type(output).__name__}, expected an NCHW tensor"
            )
        return output.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()

    # ----------------------------------------------------------------------- report
    def _describe_impl(self) -> dict[str, Any]:
        import torch

        d: dict[str, Any] = {
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "channels_last": bool(self.options.get("channels_last")),
            "compile": bool(self.options.get("compile")),
            "cuda_graphs": bool(self.options.get("cuda_graphs")),
            "inference_mode": True,
        }
        if self.options.get("compile"):
            d["compile_seconds"] = {
                str(k): round(v, 3) for k, v in sorted(self._compile_seconds.items())
            }
            d["compile_mode"] = self.options.get("compile_mode") or "default"
            d["compile_config"] = self.compile_config()
        if self.options.get("cuda_graphs"):
            d["graphed_batches"] = sorted(self._graphed_batches)
        if _is_cuda(self.device) and torch.cuda.is_available():
            idx = torch.device(self.device).index
            idx = torch.cuda.current_device() if idx is None else idx
            d["gpu"] = torch.cuda.get_device_name(idx)
            d["cuda_version"] = torch.version.cuda
            d["cudnn_version"] = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
            d["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
        return d
