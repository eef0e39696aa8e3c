#!/usr/bin/env python
"""Re-render the report of a diffusion ``accelkit optimize`` run from its ``optimize.json``.

The ladder and "what held back a faster build" are pure functions of the timed candidates
(:func:`accelkit.autotune.diffusion_search.ladder`, :func:`~accelkit.autotune.diffusion_search.held_back`);
this recomputes them, and the whole ``optimize.md``, with the report code of the checkout it
runs in, from the speeds, verdicts and reasons the run recorded. Nothing is measured again.

Usage::

    python benchmarks/rerender_optimize.py /tmp/opt3/optimize.json > optimize.rerendered.md
    python benchmarks/rerender_optimize.py /tmp/opt3/optimize.json --text   # the printed summary
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelkit.autotune.diffusion_search import DiffusionCandidate, Timed, held_back, ladder
from accelkit.pipelines.optimize_diffusion import DiffusionOptimizeResult, render


def _candidate(d: dict[str, Any]) -> DiffusionCandidate:
    return DiffusionCandidate(d["scheduler"], d["steps"], d["cache"], d["backend"], d["precision"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("record", type=Path, help="optimize.json of a diffusion pipeline search")
    ap.add_argument("--text", action="store_true", help="the printed summary, not optimize.md")
    args = ap.parse_args()
    rec = json.loads(args.record.read_text())
    timed = [
        Timed(_candidate(d), d["images_per_sec"], d["unstable"], d["verdict"], d["reason"],
              d["psnr_db"], d["fid_drift"], d["estimated"])
        for d in rec["candidates"]
    ]  # fmt: skip
    by_id = {t.candidate.id: t for t in timed}
    reference = _candidate(rec["reference"])
    chosen = by_id[rec["chosen"]["id"]] if rec["chosen"] else None
    result = DiffusionOptimizeResult(
        reference=reference,
        timed=timed,
        checked=[by_id[i] for i in rec["checked"]],
        chosen=chosen,
        rungs=ladder(timed, reference, chosen),
        excluded=[(e["id"], e["reason"]) for e in rec["excluded"]],
        commands=rec["commands"],
        budget=rec["budget"],
        batch=rec["batch"],
        seconds=rec["seconds"],
        notes=rec["notes"],
        shortfalls=held_back(timed, chosen),
    )
    print(result.to_text() if args.text else render(result))


if __name__ == "__main__":
    main()
