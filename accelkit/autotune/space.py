"""The search space of ``accelkit optimize``: every build this machine can run, as candidates.

A :class:`Candidate` is one (model variant, artifact, backend, precision, runtime options)
combination, made from a backend's :class:`~accelkit.runners.base.Recipe`.
:func:`enumerate_candidates` asks every backend of the search, through the registry, what
it runs for every precision (nothing here names a backend), and lists the recipes it
offers for a search, the FP32 torch eager baseline first (always: it is the speed-up
baseline and the quality reference, even when torch is not searched). Candidates that are
expensive just to try (``torch.compile`` compiles for tens of seconds on a CPU, TensorRT
builds engines) are marked so the search tries them last. What a backend cannot run is
returned with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from accelkit.errors import InputError
from accelkit.runners.base import Ask, Recipe, offers
from accelkit.vocab import PRECISIONS


def _plain(value: Any) -> Any:
    """A field value as JSON holds it (a tuple as a list, a mapping copied)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


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
        recipe_variant: The backend's variant name (``compile``, ``channels_last``...).
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
    recipe_variant: str | None = None

    @classmethod
    def from_recipe(cls, recipe: Recipe, prune_ratio: float | None = None) -> Candidate:
        """The candidate that runs ``recipe`` (on the pruned model variant at ``prune_ratio``)."""
        pre = f"pruned{round(prune_ratio * 100)}-" if prune_ratio else ""
        return cls(
            f"{pre}{recipe.label}",
            recipe.backend,
            recipe.precision,
            recipe.source,
            dict(recipe.options),
            prune_ratio=prune_ratio or None,
            expensive=recipe.expensive,
            recipe_variant=recipe.variant,
        )

    @property
    def variant(self) -> str | None:
        """What distinguishes this candidate's report row from others of its backend and precision."""
        parts = []
        if self.prune_ratio:
            parts.append(f"pruned{round(self.prune_ratio * 100)}")
        if self.recipe_variant:
            parts.append(self.recipe_variant)
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
        """JSON form (journal, report, sidecar): every field in order (tuples as lists), except
        ``expensive`` and ``recipe_variant``, then ``variant`` (what tells its row apart)."""
        out: dict[str, Any] = {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("expensive", "recipe_variant")
        }
        out["variant"] = self.variant
        return out

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


@dataclass
class SearchSpace:
    """The candidates of a search and the cells no backend offers here.

    Attributes:
        candidates: Baseline first, expensive ones last.
        not_offered: ``"backend precision: reason"`` for each (backend, precision) cell of
            the search's backends that cannot run here (reported with the search).
    """

    candidates: list[Candidate]
    not_offered: list[str] = field(default_factory=list)


def baseline_candidate(device: str = "cpu", threads: int | None = None) -> Candidate:
    """FP32 torch eager: the speed-up baseline and the quality reference, under the run's
    thread policy (the same threads as every candidate)."""
    got = offers("torch", Ask(kind="torch", precision="fp32", device=device, threads=threads))
    if isinstance(got, str):
        raise InputError(f"the FP32 torch baseline cannot run on {device}: {got}")
    return Candidate.from_recipe(got[0])


def enumerate_candidates(
    *,
    device: str,
    backends: Sequence[str],
    native_bf16: bool,
    threads: int | None = None,
    prune_ratios: Sequence[float] = (),
    precisions: Sequence[str] = (),
    scripted: bool = False,
    batch_range: tuple[int, int, int] | None = None,
    cache_dir: str | None = None,
) -> SearchSpace:
    """Every candidate build for one device, baseline first, expensive ones last.

    Args:
        device: ``cpu`` or ``cuda[:N]``.
        backends: The backends to search (each must be able to run here). The FP32 torch
            baseline is always included; torch's other recipes only when ``torch`` is here.
        native_bf16: The CPU computes bf16 natively (AVX-512 BF16 / AMX).
        threads: CPU threads for every runner, the baseline's included.
        prune_ratios: Pruned model variants to include (each with every backend).
        precisions: Only candidates of these precisions (the FP32 torch baseline always stays).
        scripted: The generator is TorchScript (``torch.compile`` cannot compile it); pruned
            variants always are (what ``prune`` saves).
        batch_range: Batch profile for backends that build for one (TensorRT).
        cache_dir: Build cache folder of such backends.
    """
    base = baseline_candidate(device, threads)
    out: list[Candidate] = [base]
    not_offered: list[str] = []
    for ratio in (None, *prune_ratios):
        for name in backends:
            for p in PRECISIONS:
                if precisions and p not in precisions:
                    continue
                ask = Ask(
                    kind="torch",
                    precision=p,
                    device=device,
                    threads=threads,
                    native_bf16=native_bf16,
                    scripted=scripted or bool(ratio),
                    batch_range=batch_range,
                    cache_dir=cache_dir,
                )
                got = offers(name, ask)
                if isinstance(got, str):
                    if not ratio:
                        not_offered.append(f"{name} {p}: {got}")
                    continue
                for r in got:
                    if r.refused or not r.searched:
                        continue
                    cand = Candidate.from_recipe(r, ratio)
                    if cand.id != base.id:
                        out.append(cand)
    cheap = [c for c in out if not c.expensive]
    return SearchSpace(cheap + [c for c in out if c.expensive], not_offered)
