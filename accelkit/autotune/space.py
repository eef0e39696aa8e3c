"""The search space of ``accelkit optimize``: every build this machine can run, as candidates.

A :class:`Candidate` is one (model variant, artifact, backend, precision, runtime options)
combination. :func:`enumerate_candidates` lists those the machine can run, the FP32
torch eager baseline first. Candidates that are expensive just to try (``torch.compile``
compiles for tens of seconds on a CPU) are marked so the search tries them last.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

#: Backends the search considers, in the order it lists them.
ALL_BACKENDS = ("torch", "ort", "openvino", "trt")


@dataclass(frozen=True)
class Candidate:
    """One build the search may choose.

    Attributes:
        id: Stable name, e.g. ``openvino-int8``, ``ort-int8-keep2``, ``pruned50-openvino-int8``.
        backend: Runner name (``torch``, ``ort``, ``openvino``, ``trt``).
        precision: The row's precision (``fp32``, ``bf16``, ``fp16``, ``int8``).
        source: Which artifact the runner takes: ``torch`` (the generator itself) or an
            ONNX file ``onnx-fp32`` / ``onnx-fp16`` / ``onnx-int8``.
        runner_options: Options for :func:`accelkit.runners.base.create_runner`.
        exclude_groups: INT8: layer groups kept in float (from the sensitivity report).
        exclude: INT8: the matching ``--exclude`` patterns.
        fp16_headroom: FP16: fraction of the fp16 maximum an activation may reach before
            its node is kept in fp32 (lower keeps more nodes in fp32).
        prune_ratio: Channel-pruning ratio of the model variant (None: the original).
        parent: The candidate this one retries with more kept in higher precision.
        expensive: Costly to try at all (tried last, only while time remains).
    """

    id: str
    backend: str
    precision: str
    source: str
    runner_options: dict[str, Any] = field(default_factory=dict)
    exclude_groups: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    fp16_headroom: float | None = None
    prune_ratio: float | None = None
    parent: str | None = None
    expensive: bool = False

    @property
    def variant(self) -> str | None:
        """What distinguishes this candidate's report row from others of its backend and precision."""
        parts = []
        if self.prune_ratio:
            parts.append(f"pruned{round(self.prune_ratio * 100)}")
        if self.runner_options.get("compile"):
            parts.append("compile")
        if self.runner_options.get("channels_last"):
            parts.append("channels_last")
        if self.exclude_groups:
            parts.append(f"keep{len(self.exclude_groups)}")
        if self.fp16_headroom is not None:
            parts.append(f"headroom{self.fp16_headroom:g}")
        return "+".join(parts) or None

    @property
    def model_key(self) -> str:
        """The model variant (original or pruned ratio) this candidate runs."""
        return f"pruned{round(self.prune_ratio * 100)}" if self.prune_ratio else "original"

    def artifact_key(self) -> str:
        """Identifies the artifact file the candidate needs (shared by candidates that need the same file)."""
        if self.source == "torch":
            return f"{self.model_key}/torch"
        extra = ""
        if self.exclude:
            extra = "-" + json.dumps(sorted(self.exclude))
        if self.fp16_headroom is not None:
            extra = f"-h{self.fp16_headroom:g}"
        return f"{self.model_key}/{self.source}{extra}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (journal, report, sidecar)."""
        return {
            "id": self.id,
            "backend": self.backend,
            "precision": self.precision,
            "source": self.source,
            "runner_options": dict(self.runner_options),
            "exclude_groups": list(self.exclude_groups),
            "exclude": list(self.exclude),
            "fp16_headroom": self.fp16_headroom,
            "prune_ratio": self.prune_ratio,
            "parent": self.parent,
            "variant": self.variant,
        }

    def retry(
        self,
        *,
        exclude_groups: Sequence[str] = (),
        exclude: Sequence[str] = (),
        fp16_headroom: float | None = None,
    ) -> Candidate:
        """This candidate with more of the graph kept in higher precision."""
        suffix = f"keep{len(exclude_groups)}" if exclude_groups else f"headroom{fp16_headroom:g}"
        return replace(
            self,
            id=f"{self.id.split('+')[0]}+{suffix}",
            exclude_groups=tuple(exclude_groups),
            exclude=tuple(exclude),
            fp16_headroom=fp16_headroom,
            parent=self.id,
        )


def baseline_candidate(threads: int | None = None) -> Candidate:
    """FP32 torch eager: the speed-up baseline and the quality reference."""
    return Candidate(
        "torch-fp32", "torch", "fp32", "torch", _threads({"precision": "fp32"}, threads)
    )


def _threads(opts: dict[str, Any], threads: int | None) -> dict[str, Any]:
    return {**opts, "threads": threads} if threads else opts


def enumerate_candidates(
    *,
    device: str,
    backends: Sequence[str],
    has_native_bf16: bool,
    threads: int | None = None,
    prune_ratios: Sequence[float] = (),
    image_to_image: bool = False,
    precisions: Sequence[str] = (),
    scripted: bool = False,
) -> list[Candidate]:
    """Every candidate build for one device, baseline first, expensive ones last.

    Args:
        device: ``cpu`` or ``cuda[:N]``.
        backends: The backends that can run here (others are not listed).
        has_native_bf16: The CPU computes bf16 natively (AVX-512 BF16 / AMX).
        threads: CPU threads for every runner (None: the runners' default).
        prune_ratios: Pruned model variants to include (each with every backend).
        image_to_image: The generator maps images to images (``channels_last`` matters there).
        precisions: Only candidates of these precisions (the FP32 torch baseline always stays).
        scripted: The generator is TorchScript. ``torch.compile`` cannot compile TorchScript,
            so no compile candidate is listed for it; nor for pruned variants, which are
            always TorchScript (what ``prune`` saves).
    """
    cuda = device.startswith("cuda")
    cpu_threads = None if cuda else threads
    out: list[Candidate] = []
    for ratio in (None, *prune_ratios):
        pre = f"pruned{round(ratio * 100)}-" if ratio else ""
        fam: list[Candidate] = []
        if "torch" in backends:
            base = _threads({"precision": "fp32"}, cpu_threads)
            fam.append(Candidate(f"{pre}torch-fp32", "torch", "fp32", "torch", base))
            fam.append(
                Candidate(
                    f"{pre}torch-fp32+channels_last",
                    "torch",
                    "fp32",
                    "torch",
                    {**base, "channels_last": True},
                )
            )
            if cuda:
                fam.append(
                    Candidate(f"{pre}torch-fp16", "torch", "fp16", "torch", {"precision": "fp16"})
                )
            if cuda or has_native_bf16:
                fam.append(
                    Candidate(
                        f"{pre}torch-bf16", "torch", "bf16", "torch", {**base, "precision": "bf16"}
                    )
                )
            if not (ratio or scripted):
                fam.append(
                    Candidate(
                        f"{pre}torch-fp32+compile",
                        "torch",
                        "fp32",
                        "torch",
                        {**base, "compile": True},
                        expensive=True,
                    )
                )
        if "ort" in backends:
            opts = _threads({"provider": "cuda" if cuda else "cpu"}, cpu_threads)
            for prec in ("fp32", "fp16", "int8"):
                fam.append(Candidate(f"{pre}ort-{prec}", "ort", prec, f"onnx-{prec}", dict(opts)))
        if "openvino" in backends and not cuda:
            opts = _threads({}, cpu_threads)
            fam.append(
                Candidate(
                    f"{pre}openvino-fp32",
                    "openvino",
                    "fp32",
                    "onnx-fp32",
                    {**opts, "precision": "fp32"},
                )
            )
            if has_native_bf16:
                fam.append(
                    Candidate(
                        f"{pre}openvino-bf16",
                        "openvino",
                        "bf16",
                        "onnx-fp32",
                        {**opts, "precision": "bf16"},
                    )
                )
            fam.append(
                Candidate(f"{pre}openvino-int8", "openvino", "int8", "onnx-int8", dict(opts))
            )
        if "trt" in backends and cuda:
            for prec in ("fp16", "int8"):
                fam.append(
                    Candidate(f"{pre}trt-{prec}", "trt", prec, f"onnx-{prec}", {}, expensive=True)
                )
        if ratio:
            fam = [replace(c, prune_ratio=ratio) for c in fam]
        out.extend(fam)
    if precisions:
        out = [c for c in out if c.precision in precisions or (c.id == "torch-fp32")]
    cheap = [c for c in out if not c.expensive]
    return cheap + [c for c in out if c.expensive]
