"""accelkit.benchmark.plot: the throughput chart (matplotlib or Pillow) and the speed-vs-drift scatter, written atomically."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from accelkit.benchmark import plot as plot_mod
from accelkit.benchmark.report import BenchRow, Report
from tests.benchmark.fakes import ENV
from tests.benchmark.fakes import sample_report as _sample_report


def test_pillow_fallback_when_matplotlib_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_mpl(name: str, *a: Any, **k: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    dest = plot_mod.plot_throughput(_sample_report().rows, tmp_path / "t.png")
    with Image.open(dest) as img:
        assert img.size == (800, 500)
        # something other than white was drawn (axes, lines, legend)
        assert len(img.getcolors(maxcolors=100_000) or []) > 3


def test_matplotlib_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    dest = plot_mod.plot_throughput(_sample_report().rows, tmp_path / "t.png")
    with Image.open(dest) as img:
        assert img.format == "PNG" and img.size == (800, 500)


def test_failed_plot_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(plot_mod, "_plot_matplotlib", boom)
    monkeypatch.setattr(plot_mod, "_plot_pillow", boom)
    with pytest.raises(RuntimeError):
        plot_mod.plot_throughput([], tmp_path / "t.png")
    assert list(tmp_path.iterdir()) == []


def _drift_report() -> Report:
    rows = [
        BenchRow(
            "torch", "fp32", b, "cpu", images_per_sec=100.0 * b, fid_drift=0.1, noise_floor_fid=0.5
        )
        for b in (1, 8)
    ] + [
        BenchRow("ort", "int8", 8, "cpu", images_per_sec=2000.0, fid_drift=3.0, noise_floor_fid=0.5)
    ]
    return Report(rows, environment=dict(ENV), created="x")


def test_speed_vs_drift_scatter(tmp_path: Path) -> None:
    dest = plot_mod.plot_speed_vs_drift(_drift_report(), tmp_path / "speed_vs_drift.png")
    assert dest == tmp_path / "speed_vs_drift.png" and [p.name for p in tmp_path.iterdir()] == [
        "speed_vs_drift.png"
    ]
    with Image.open(dest) as img:
        assert img.format == "PNG" and img.size == (720, 440)
        colors = {c for _, c in img.convert("RGB").getcolors(maxcolors=100_000) or []}
    assert (40, 90, 200) in colors and (
        200,
        60,
        60,
    ) in colors  # the points and the noise-floor line


def test_speed_vs_drift_without_drift_rows(tmp_path: Path) -> None:
    dest = plot_mod.plot_speed_vs_drift(Report(environment={}, created="x"), tmp_path / "s.png")
    with Image.open(dest) as img:
        assert img.size == (720, 440)


def test_amplified_difference_grid_prints_k_and_keeps_identical_black(tmp_path) -> None:
    from accelkit.benchmark.plot import amplification, save_diff_grid

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (4, 16, 16, 3)).astype(np.uint8)
    out = ref.copy()
    out[1, 4:8, 4:8, 0] = np.clip(out[1, 4:8, 4:8, 0].astype(int) + 3, 0, 255).astype(np.uint8)
    assert amplification(np.zeros(10)) == 128 and amplification(np.full(10, 200)) == 1
    assert amplification(np.full(100, 3)) == 64  # 64 x 3 = 192 <= 255 < 128 x 3
    path, k = save_diff_grid(ref, out, tmp_path / "diff.png", label="ort fp16")
    assert k == 128  # 99 % of the values differ by 0: the few changed ones are clipped at 255
    img = np.asarray(Image.open(path).convert("RGB"))
    cell = 64  # 16 px images drawn 4x
    diff_row = img[2 * (cell + 2) : 2 * (cell + 2) + cell]
    tile0 = diff_row[14:, 150 : 150 + cell]  # below the printed k: identical image, all black
    assert tile0.max() == 0
    tile1 = diff_row[:, 150 + (cell + 2) : 150 + 2 * (cell + 2) - 2]
    assert tile1[..., 0].max() == 255  # the changed patch, amplified
    assert (
        img[2 * (cell + 2) : 2 * (cell + 2) + 11, 150:176] != 0
    ).any()  # "x128" stamped on the tile
    with pytest.raises(ValueError, match="differ in shape"):
        save_diff_grid(ref, out[:2], tmp_path / "bad.png")


@pytest.mark.parametrize(
    ("vmax", "top", "step"), [(0.9, 1.0, 0.2), (1234.0, 1500.0, 500.0), (3.1e-5, 4e-5, 1e-5)]
)
def test_every_chart_uses_round_ticks(vmax, top, step) -> None:
    """One tick rule for the throughput, speed-vs-drift and Pareto charts: 1/2/5 steps, labelled by fmt_num."""
    got_top, got_step = plot_mod._nice_axis(vmax)
    assert got_top == pytest.approx(top) and got_step == pytest.approx(step)


def _center(dest: Path, x: float, y: float, xmax: float, ymax: float) -> tuple[int, int, int]:
    """The pixel at the centre of a Pareto point (the Pareto axes: 760x460, margins 60/150/30/60)."""
    x0, x1, y0, y1 = 60, 760 - 150, 460 - 60, 30
    px = x0 + (x1 - x0) * x / xmax
    py = y0 - (y0 - y1) * y / ymax
    with Image.open(dest) as img:
        return img.convert("RGB").getpixel((round(px), round(py)))  # type: ignore[return-value]


def test_pareto_marks_unstable_points_hollow(tmp_path: Path) -> None:
    dest = plot_mod.plot_pareto(
        [("ort-int8", 1.0, 500.0, "accepted"), ("ov-int8", 2.0, 900.0, "accepted unstable")],
        tmp_path / "p.png",
    )
    xmax, _ = plot_mod._nice_axis(2.0)
    ymax, _ = plot_mod._nice_axis(900.0)
    assert _center(dest, 1.0, 500.0, xmax, ymax) == (40, 90, 200)  # filled
    assert _center(dest, 2.0, 900.0, xmax, ymax) == (255, 255, 255)  # hollow


def test_throughput_marks_unstable_points_hollow(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(plot_mod, "_plot_matplotlib", plot_mod._plot_pillow)
    rows = [
        BenchRow("torch", "fp32", 1, "cpu", images_per_sec=100.0),
        BenchRow("ort", "fp32", 1, "cpu", images_per_sec=60.0, unstable=True),
    ]
    dest = plot_mod.plot_throughput(rows, tmp_path / "t.png")
    top, _ = plot_mod._nice_axis(100.0)
    x = 80 + (800 - 20 - 80) * 0.5  # one batch size: the middle of the axis
    with Image.open(dest) as img:
        rgb = img.convert("RGB")
        # 2 px right of each centre: inside the dot, beside its (zero-length) error bar
        filled = rgb.getpixel((round(x) + 2, round(440 - (440 - 40) * 100.0 / top)))
        hollow = rgb.getpixel((round(x) + 2, round(440 - (440 - 40) * 60.0 / top)))
    assert filled == plot_mod._COLORS[0] and hollow == (255, 255, 255)
