"""``fid``: FID (and KID for folders) between image folders or ``.npz`` statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelkit.errors import InputError
from accelkit.pipelines.options import FidOptions
from accelkit.pipelines.results import Result

Progress = Callable[[str], None]


@dataclass
class FidRun(Result):
    """FID between two sources (``fid`` set) or statistics saved for one (``saved`` set).

    Attributes:
        fid: The FID result (:class:`accelkit.quality.metrics.FidResult`), None when only saving.
        kid: KID (mean, std) when both sides are folders.
        saved: Path of the statistics written with ``save_stats``.
        saved_n: Images in the saved statistics.
        extractor_name: Extractor of the saved statistics.
    """

    fid: Any = None
    kid: tuple[float, float] | None = None
    saved: Path | None = None
    saved_n: int | None = None
    extractor_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """FID provenance of both sides and KID, or the saved statistics."""
        if self.fid is None:
            return {"saved": str(self.saved), "n": self.saved_n, "extractor": self.extractor_name}
        return {
            **self.fid.to_dict(),
            **({"kid": self.kid[0], "kid_std": self.kid[1]} if self.kid else {}),
        }

    def to_text(self) -> str:
        """What ``accelkit fid`` prints."""
        if self.fid is None:
            return f"wrote {self.saved} ({self.saved_n} images, extractor {self.extractor_name})"
        res = self.fid
        line = f"FID {res.fid:.4f}" + (
            f"   KID {self.kid[0]:.5f} ± {self.kid[1]:.5f}" if self.kid else ""
        )
        pa = res.a
        return line + (
            f"\nA: {pa.n} images, B: {res.b.n} images; extractor {pa.extractor_name} "
            f"(sha256 {pa.extractor_sha256[:12]}…), resize {pa.resize_mode}"
        )


def fid(
    source_a: str | Path,
    source_b: str | Path | None = None,
    options: FidOptions | None = None,
    progress: Progress | None = None,
) -> FidRun:
    """FID between two image folders or ``.npz`` statistics; or save one side's statistics.

    Args:
        source_a: Image folder (PNG/JPG, recursive) or ``.npz`` statistics.
        source_b: The second source; None with ``options.save_stats`` to only compute statistics.
        options: :class:`FidOptions`.
        progress: Called with a short message per step.

    Raises:
        InputError: Bad sources, incomparable statistics, nothing to do.
    """
    from accelkit.quality.features import FeatureExtractor
    from accelkit.quality.metrics import fid_between, kid, save_stats, stats_from_source

    opts = (options or FidOptions()).validated()
    say = progress or (lambda m: None)
    a = Path(source_a)
    b = Path(source_b) if source_b is not None else None
    if b is None and opts.save_stats is None:
        raise InputError(
            "give a second folder/.npz to compare with, or --save-stats FILE to only compute statistics"
        )
    needs_extractor = any(p is not None and p.suffix != ".npz" for p in (a, b))
    if needs_extractor:  # the extractor is code: refused before any work unless trusted
        from accelkit.quality.features import check_weights_code

        check_weights_code(opts.fid.weights, opts.trust_code)
    extractor = (
        FeatureExtractor(opts.fid.weights, device=opts.device, trust_code=opts.trust_code)
        if needs_extractor
        else None
    )
    if extractor is not None:
        extractor.resize_mode = opts.fid.mode
    if b is None:
        say(f"computing statistics of {a}")
        stats, prov = stats_from_source(a, extractor, opts.fid.batch)
        save_stats(opts.save_stats, stats, prov, force=opts.force)  # type: ignore[arg-type]
        return FidRun(saved=opts.save_stats, saved_n=prov.n, extractor_name=prov.extractor_name)
    say(f"FID between {a} and {b}")
    want_kid = extractor is not None and a.is_dir() and b.is_dir() and opts.kid_subsets > 0
    res = fid_between(
        a,
        b,
        extractor,
        opts.fid.batch,
        save_stats_a=opts.save_stats,
        force=opts.force,
        keep_features=want_kid,
    )
    k = None
    if want_kid and res.feats_a is not None and res.feats_b is not None:
        k = kid(res.feats_a, res.feats_b, subsets=opts.kid_subsets)
    return FidRun(fid=res, kid=(k.mean, k.std) if k else None)
