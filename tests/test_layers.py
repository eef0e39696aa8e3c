"""Imports go one way, top to bottom, and no package imports itself in a circle.

Floors (README "Layout"): ``cli`` > ``pipelines`` > ``autotune`` > the work (``passes trt
benchmark quality gate serving``, which may import one another but not in a circle) >
``runners diffusion`` > core (every other module: ``errors``, ``vocab``, ``options``, ``spec``,
``artifact``, ``loading``...). Every ``import accelkit...`` counts, also inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "accelkit"
FLOORS = {
    "cli": 0,
    "__main__": 0,
    "pipelines": 1,
    "autotune": 2,
    **dict.fromkeys(("passes", "trt", "benchmark", "quality", "gate", "serving"), 3),
    "runners": 4,
    "diffusion": 4,  # the sampling loop over runners; core may name it only lazily (registries)
}
CORE = 5


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "accelkit"


def _edges() -> dict[tuple[str, str], set[str]]:
    edges: dict[tuple[str, str], set[str]] = {}
    for f in ROOT.rglob("*.py"):
        mod = ".".join(f.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        src = _unit(mod)
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                if n.startswith("accelkit.") and _unit(n) != src:
                    edges.setdefault((src, _unit(n)), set()).add(str(f.relative_to(ROOT.parent)))
    return edges


def test_no_upward_import() -> None:
    up = {
        (s, d): sorted(files)
        for (s, d), files in _edges().items()
        if FLOORS.get(d, CORE) < FLOORS.get(s, CORE) and s != "accelkit"
    }
    assert not up, up


def test_no_import_circle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for s, d in _edges():
        if s != "accelkit" and d != "accelkit":
            graph.setdefault(s, set()).add(d)
    seen: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if seen.get(n) == 1:
            raise AssertionError(" -> ".join([*path, n]))
        if seen.get(n) == 2:
            return
        seen[n] = 1
        for m in sorted(graph.get(n, ())):
            visit(m, [*path, n])
        seen[n] = 2

    for n in sorted(graph):
        visit(n, [])
