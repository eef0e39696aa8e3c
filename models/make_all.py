"""Regenerate all three bundled checkpoints (and the DCGAN sample grids in docs/).

Runs ``make_stylegan2.py`` (seconds), ``make_sr.py`` (a few minutes) and ``train_dcgan.py``
(the long one; see models/README.md for measured times), each in its own process,
and prints how long each took.

    python models/make_all.py                       # writes models/weights/*.safetensors
    python models/make_all.py --out-dir /tmp/w --quick   # smoke test: a few steps each, no PNGs
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description="Regenerate the bundled demo checkpoints.")
    p.add_argument("--out-dir", default=str(HERE / "weights"))
    p.add_argument(
        "--only",
        choices=["dcgan", "stylegan2", "sr4x"],
        action="append",
        help="make only this one (repeatable)",
    )
    p.add_argument(
        "--quick", action="store_true", help="a few training steps each and no PNGs (smoke test)"
    )
    a = p.parse_args()
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    jobs = {
        "stylegan2": [HERE / "make_stylegan2.py", "--out", out / "stylegan2.safetensors"],
        "sr4x": [HERE / "make_sr.py", "--out", out / "sr4x.safetensors"]
        + (["--steps", "5", "--n-train", "32", "--n-test", "16"] if a.quick else []),
        "dcgan": [HERE / "train_dcgan.py", "--out", out / "dcgan.safetensors"]
        + (["--steps", "5", "--n-train", "256", "--no-png"] if a.quick else []),
    }
    times = {}
    for name, cmd in jobs.items():
        if a.only and name not in a.only:
            continue
        print(f"=== {name}: {' '.join(str(c) for c in cmd)}", flush=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, *map(str, cmd)], check=True)
        times[name] = time.perf_counter() - t
    print("=== done: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()), flush=True)


if __name__ == "__main__":
    main()
