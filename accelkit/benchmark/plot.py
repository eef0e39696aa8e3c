"""Every picture accelkit draws: ``throughput.png``, ``speed_vs_drift.png``, ``serving.png``,
the optimize search's ``pareto.png``, the sample grids of ``bench --fid`` and their
amplified-difference grids (``diff_*.png``).

The charts are drawn with Pillow on one small axes helper (:class:`_Axes`: canvas, frame,
linear value-to-pixel scales, ticks); the throughput chart uses matplotlib (Agg) instead
when it is importable. Every PNG is written through a temporary file and a rename.
Nothing here imports the report module: charts read rows and reports by their fields.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from accelkit.benchmark.render import ReportLike, fmt_num
from accelkit.files import atomic_path

#: Line colours, in order (matplotlib's default cycle).
_COLORS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
]


# -------------------------------------------------------------------------- axes
class _Axes:
    """A white RGB canvas with an L-shaped frame and linear scales from 0 to ``xmax``/``ymax``.

    Args:
        size: ``(width, height)`` in pixels.
        left, right, top, bottom: Margins around the plotting area, pixels.
    """

    def __init__(self, size: tuple[int, int], left: int, right: int, top: int, bottom: int) -> None:
        from PIL import Image, ImageDraw

        self.w, self.h = size
        self.img = Image.new("RGB", size, "white")
        self.draw = ImageDraw.Draw(self.img)
        self.x0, self.x1, self.y0, self.y1 = left, self.w - right, self.h - bottom, top
        self.xmax = 1.0
        self.ymax = 1.0

    def frame(self) -> None:
        """Draw the x axis (bottom) and the y axis (left)."""
        self.draw.line([(self.x0, self.y0), (self.x1, self.y0)], fill="black")
        self.draw.line([(self.x0, self.y0), (self.x0, self.y1)], fill="black")

    def text(self, xy: tuple[float, float], label: str, fill: Any = "black") -> None:
        self.draw.text(xy, label, fill=fill)

    def at_x(self, frac: float) -> float:
        """Pixel column at fraction ``frac`` of the x axis (0 left, 1 right)."""
        return self.x0 + (self.x1 - self.x0) * frac

    def at_y(self, frac: float) -> float:
        """Pixel row at fraction ``frac`` of the y axis (0 bottom, 1 top)."""
        return self.y0 - (self.y0 - self.y1) * frac

    def px(self, v: float) -> float:
        """Pixel column of value ``v`` on the x scale."""
        return self.x0 + (self.x1 - self.x0) * v / self.xmax

    def py(self, v: float) -> float:
        """Pixel row of value ``v`` on the y scale."""
        return self.y0 - (self.y0 - self.y1) * v / self.ymax

    def y_tick(
        self, y: float, label: str, *, fill: Any = "black", mark: bool = False, grid: bool = False
    ) -> None:
        """A y-axis label at pixel row ``y``, with a tick mark and/or a light grid line."""
        if mark:
            self.draw.line([(self.x0 - 4, y), (self.x0, y)], fill="black")
        if grid:
            self.draw.line([(self.x0 + 1, y), (self.x1, y)], fill=(225, 225, 225))
        self.text((5, y - 6), label, fill)

    def x_tick(
        self,
        x: float,
        label: str,
        *,
        fill: Any = "black",
        mark: bool = False,
        dx: float = -4,
        dy: float = 8,
    ) -> None:
        """An x-axis label at pixel column ``x`` (offset ``dx``, ``dy`` below the axis), with an optional tick mark."""
        if mark:
            self.draw.line([(x, self.y0), (x, self.y0 + 4)], fill="black")
        self.text((x + dx, self.y0 + dy), label, fill)

    def save(self, dest: str | os.PathLike[str]) -> Path:
        """Write the PNG atomically; returns ``dest``."""
        dest = Path(dest)
        with atomic_path(dest, force=True) as tmp:
            self.img.save(tmp, format="PNG")
        return dest


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``raw``."""
    if raw <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def _nice_axis(vmax: float, ticks: int = 5) -> tuple[float, float]:
    """``(axis maximum, tick step)``: a 1/2/5 step and a maximum a whole number of steps above
    ``vmax`` (+5 %), so every chart labels its ticks the same way (:func:`fmt_num` at round values)."""
    top = max(vmax, 1e-9) * 1.05
    step = _nice_step(top / ticks)
    return step * math.ceil(top / step), step


def _axis_ticks(ax: _Axes, xmax: float | None, ymax: float) -> None:
    """Set the scales of ``ax`` to round maxima and draw their ticks and grid (grey labels).

    Args:
        ax: The axes.
        xmax: Largest x value (None: the x axis is categorical; its ticks are drawn by the caller).
        ymax: Largest y value.
    """
    ax.ymax, ystep = _nice_axis(ymax)
    for k in range(int(round(ax.ymax / ystep)) + 1):
        ax.y_tick(ax.py(ystep * k), fmt_num(ystep * k), fill="gray", mark=True, grid=True)
    if xmax is not None:
        ax.xmax, xstep = _nice_axis(xmax)
        for k in range(int(round(ax.xmax / xstep)) + 1):
            ax.x_tick(ax.px(xstep * k), fmt_num(xstep * k), fill="gray", mark=True, dx=-10, dy=5)


def _dot(ax: _Axes, x: float, y: float, r: int, color: Any, hollow: bool) -> None:
    """A point; hollow for a measurement that did not hold (unstable)."""
    box = [x - r, y - r, x + r, y + r]
    if hollow:
        ax.draw.ellipse(box, outline=color, width=2)
    else:
        ax.draw.ellipse(box, fill=color)


#: The legend line every chart with unstable points prints.
UNSTABLE_NOTE = (
    "hollow points: unstable (repeats disagree or CPU oversubscribed); no speed-up quoted"
)


# -------------------------------------------------------------------- throughput
Series = dict[str, list[tuple[int, float, float, float, bool]]]


def _series(rows: Iterable[Any]) -> Series:
    """``label precision`` -> sorted (batch, median, p25, p75, unstable) for ok rows."""
    out: Series = {}
    for r in rows:
        if (
            r.status != "ok"
            or r.images_per_sec is None
            or getattr(r, "scenario", "in_process") == "serving"
        ):
            continue
        sp = r.images_per_sec_spread or {}
        key = f"{r.label} {r.precision}" + (f" ({r.device})" if r.device != "cpu" else "")
        out.setdefault(key, []).append(
            (
                r.batch_size,
                r.images_per_sec,
                sp.get("p25", r.images_per_sec),
                sp.get("p75", r.images_per_sec),
                bool(getattr(r, "unstable", False)),
            )
        )
    return {k: sorted(v) for k, v in out.items()}


def plot_throughput(rows: Iterable[Any], dest: str | os.PathLike[str]) -> Path:
    """Draw images/sec vs batch size, one line per backend+precision, into a PNG (atomically).

    Args:
        rows: Report rows (:class:`~accelkit.benchmark.report.BenchRow`); only ``ok`` ones are drawn.
        dest: PNG path (800 x 500 pixels).

    Uses matplotlib (Agg) when importable, else a plain Pillow drawing.
    """
    series = _series(rows)
    dest = Path(dest)
    with atomic_path(dest, force=True) as tmp:
        try:
            import matplotlib  # noqa: F401 - optional; Pillow draws the chart without it
        except ImportError:
            _plot_pillow(series, tmp)
        else:
            _plot_matplotlib(series, tmp)
    return dest


def _plot_matplotlib(series: Series, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)  # render with Agg, never a GUI backend; pyplot's global state is untouched
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.ticker import FuncFormatter

    batches = sorted({b for pts in series.values() for b, *_ in pts})
    for label, pts in series.items():
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        lo = [max(0.0, p[1] - p[2]) for p in pts]
        hi = [max(0.0, p[3] - p[1]) for p in pts]
        bar = ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label)
        shaky = [(x, y) for (x, y, p) in zip(xs, ys, pts) if p[4]]
        if shaky:  # unstable points: hollow, as in every accelkit chart
            col = bar.lines[0].get_color()
            ax.plot(*zip(*shaky), "o", markersize=9, markerfacecolor="white", color=col)
    if any(p[4] for pts in series.values() for p in pts):
        ax.text(0.01, 0.01, UNSTABLE_NOTE, fontsize=7, transform=ax.transAxes)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_num(v)))
    if batches:
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches)
        ax.set_xticklabels([str(b) for b in batches])
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(
            0.5, 0.5, "no successful measurements", ha="center", va="center", transform=ax.transAxes
        )
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / second (median, bars: IQR)")
    ax.set_title("Throughput")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), format="png")


def _plot_pillow(series: Series, path: Path) -> None:
    ax = _Axes((800, 500), left=80, right=20, top=40, bottom=60)
    ax.text((ax.w // 2 - 40, 12), "Throughput")
    ax.frame()
    ax.text((ax.w // 2 - 30, ax.h - 25), "batch size")
    ax.text((5, ax.y1 - 25), "images/s")
    batches = sorted({b for pts in series.values() for b, *_ in pts})
    if not batches:
        ax.text((ax.w // 2 - 80, ax.h // 2), "no successful measurements")
        ax.img.save(path, format="PNG")
        return
    _axis_ticks(ax, None, max(p[3] for pts in series.values() for p in pts) or 1.0)
    pos = {
        b: ax.at_x((i + 0.5) / len(batches)) for i, b in enumerate(batches)
    }  # batch sizes are categories
    for b, x in pos.items():
        ax.x_tick(x, str(b), mark=True)
    for i, (label, pts) in enumerate(series.items()):
        col = _COLORS[i % len(_COLORS)]
        xy = [(pos[p[0]], ax.py(p[1])) for p in pts]
        if len(xy) > 1:
            ax.draw.line(xy, fill=col, width=2)
        for p, (x, y) in zip(pts, xy):
            ax.draw.line([(x, ax.py(p[2])), (x, ax.py(p[3]))], fill=col)
            _dot(ax, x, y, 4, col, hollow=p[4])
        ly = ax.y1 + 5 + 16 * i
        ax.draw.rectangle([ax.x0 + 10, ly + 2, ax.x0 + 22, ly + 12], fill=col)
        ax.text((ax.x0 + 28, ly), label)
    if any(p[4] for pts in series.values() for p in pts):
        ax.text((ax.x0 + 10, ax.h - 14), UNSTABLE_NOTE, (120, 120, 120))
    ax.img.save(path, format="PNG")


# ------------------------------------------------------------------ speed vs drift
def plot_speed_vs_drift(report: ReportLike, dest: str | os.PathLike[str]) -> Path:
    """Scatter of images/sec (largest batch) against FID drift, with the noise floor as a line.

    Args:
        report: A report whose rows carry ``fid_drift`` (``accelkit bench --fid N``).
        dest: PNG path (720 x 440 pixels), written atomically.

    Returns:
        ``dest``.
    """
    pts: dict[str, tuple[float, float, int]] = {}
    for r in report.rows:
        if r.status == "ok" and r.fid_drift is not None and r.images_per_sec:
            key = f"{r.label} {r.precision}"
            if key not in pts or r.batch_size > pts[key][2]:
                pts[key] = (r.fid_drift, r.images_per_sec, r.batch_size)
    floor = next((r.noise_floor_fid for r in report.rows if r.noise_floor_fid is not None), None)
    ax = _Axes((720, 440), left=60, right=20, top=20, bottom=60)
    xs = [p[0] for p in pts.values()] + ([floor] if floor else [])
    ys = [p[1] for p in pts.values()]
    ax.frame()
    ax.text((ax.w // 2 - 60, ax.y0 + 25), "FID drift vs FP32 torch (lower is better)")
    ax.text((5, 5), "images/sec (largest batch)")
    _axis_ticks(ax, max(xs + [1e-6]), max(ys + [1e-6]))
    red = (200, 60, 60)
    if floor:
        fx = ax.px(floor)
        ax.draw.line([(fx, ax.y0), (fx, ax.y1)], fill=red)
        ax.text((fx + 4, ax.y1 + 4), f"noise floor {floor:.3g}", red)
    for label, (x, y, _b) in pts.items():
        px, py = ax.px(x), ax.py(y)
        ax.draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=(40, 90, 200))
        ax.text((px + 7, py - 7), label)
    return ax.save(dest)


# ------------------------------------------------------------------------ serving
def plot_serving(rows: Iterable[Any], dest: str | os.PathLike[str]) -> Path:
    """Throughput against latency of the serving rows: one line per served build, one point per concurrency.

    x: client p50 latency per request (ms), with a bar to p99; y: images/sec (median of
    the windows). Points are labelled ``c<concurrency>``; the knee of the line is the
    concurrency past which more in-flight requests only add queueing. When the rows hold the
    same runner measured in-process at the request batch size, it is a dashed line.

    Args:
        rows: Report rows; only ``ok`` rows with ``scenario == "serving"`` are drawn.
        dest: PNG path (800 x 500 pixels), written atomically.

    Returns:
        ``dest``.
    """
    rows = list(rows)
    lines: dict[str, list[tuple[float, float, float, int]]] = {}
    refs: dict[
        str, float
    ] = {}  # the same runner in-process at the request batch size, drawn as a dashed line
    for r in rows:
        if (
            r.status == "ok"
            and getattr(r, "scenario", "in_process") == "in_process"
            and r.images_per_sec
            and not r.variant
        ):
            refs[f"{r.backend} {r.precision} batch {r.batch_size} via Triton"] = r.images_per_sec
    for r in rows:
        if (
            r.status != "ok"
            or getattr(r, "scenario", "in_process") != "serving"
            or not r.images_per_sec
            or not r.latency_ms
        ):
            continue
        base = r.backend if not r.variant else f"{r.backend}:{r.variant}"
        key = f"{base} {r.precision} batch {r.batch_size} via Triton"
        lines.setdefault(key, []).append(
            (
                r.latency_ms["p50"],
                r.latency_ms.get("p99", r.latency_ms["p50"]),
                r.images_per_sec,
                int(r.concurrency or 0),
            )
        )
    ax = _Axes((800, 500), left=80, right=30, top=40, bottom=60)
    ax.text((ax.w // 2 - 120, 12), "Serving: throughput vs latency (Triton)")
    ax.frame()
    ax.text((ax.w // 2 - 110, ax.h - 25), "client latency per request, ms (p50; bar to p99)")
    ax.text((5, ax.y1 - 25), "images/s")
    if not lines:
        ax.text((ax.w // 2 - 80, ax.h // 2), "no serving measurements")
        return ax.save(dest)
    top_x = max(p[1] for pts in lines.values() for p in pts) or 1.0
    top_y = (
        max([p[2] for pts in lines.values() for p in pts] + [refs[k] for k in lines if k in refs])
        or 1.0
    )
    xstep, ystep = _nice_step(top_x / 5), _nice_step(top_y / 5)
    ax.xmax = xstep * math.ceil(top_x * 1.05 / xstep)
    ax.ymax = ystep * math.ceil(top_y * 1.1 / ystep)
    for k in range(int(round(ax.ymax / ystep)) + 1):
        ax.y_tick(ax.py(ystep * k), fmt_num(ystep * k), mark=True, grid=True)
    for k in range(int(round(ax.xmax / xstep)) + 1):
        ax.x_tick(ax.px(xstep * k), fmt_num(xstep * k), mark=True, dx=-8)
    for i, (label, pts) in enumerate(lines.items()):
        col = _COLORS[i % len(_COLORS)]
        pts = sorted(pts, key=lambda p: p[3])
        xy = [(ax.px(p50), ax.py(ips)) for p50, _, ips, _ in pts]
        if len(xy) > 1:
            ax.draw.line(xy, fill=col, width=2)
        for (_p50, p99, _ips, conc), (x, y) in zip(pts, xy):
            ax.draw.line([(x, y), (ax.px(p99), y)], fill=col)
            ax.draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=col)
            ax.text((x + 5, y - 14), f"c{conc}", col)
        ly = ax.y1 + 5 + 16 * i
        ax.draw.rectangle([ax.x1 - 330, ly + 2, ax.x1 - 318, ly + 12], fill=col)
        ax.text((ax.x1 - 312, ly), label)
        if label in refs:
            ry = ax.py(refs[label])
            for x0 in range(int(ax.x0), int(ax.x1), 12):
                ax.draw.line([(x0, ry), (min(x0 + 6, ax.x1), ry)], fill=col)
            ax.text(
                (ax.x0 + 6, ry - 14),
                f"in-process, same runner and batch: {fmt_num(refs[label])} images/s",
                col,
            )
    return ax.save(dest)


__all__ = [
    "AMPLIFICATIONS",
    "amplification",
    "plot_serving",
    "plot_speed_vs_drift",
    "plot_throughput",
    "save_diff_grid",
]


# ------------------------------------------------------------------------- pareto
def plot_pareto(
    points: Iterable[tuple[str, float, float, str]],
    dest: str | os.PathLike[str],
    *,
    budget_fid: float | None = None,
    noise_floor: float | None = None,
    title: str = "",
) -> Path:
    """images/sec against FID drift of the builds a search tried, with the budget line and the chosen point.

    Args:
        points: ``(label, fid_drift, images_per_sec, status)``; ``status`` ``chosen`` is drawn
            large and green, ``accepted`` blue, ``rejected`` red; a status ending in
            ``unstable`` (its speed did not hold) is drawn hollow.
        dest: PNG path (760 x 460 pixels), written atomically.
        budget_fid: The accepted FID drift (vertical line), if the budget is one.
        noise_floor: The noise floor (dashed grey line).
        title: A line printed at the top.

    Returns:
        ``dest``.
    """
    pts = [
        p
        for p in points
        if p[1] is not None and p[2] is not None and math.isfinite(p[1]) and math.isfinite(p[2])
    ]
    ax = _Axes((760, 460), left=60, right=150, top=30, bottom=60)
    xs = [p[1] for p in pts] + [v for v in (budget_fid, noise_floor) if v is not None]
    ax.frame()
    ax.text((ax.w // 2 - 120, ax.y0 + 25), "FID drift vs FP32 torch (lower is better)")
    ax.text((5, 5), f"images/sec   {title}")
    _axis_ticks(ax, max(xs + [1e-6]), max([p[2] for p in pts] + [1e-6]))
    if noise_floor is not None and noise_floor != budget_fid:
        fx = ax.px(noise_floor)
        for y in range(int(ax.y1), int(ax.y0), 8):
            ax.draw.line([(fx, y), (fx, y + 4)], fill=(150, 150, 150))
        ax.text((fx + 4, ax.y1 + 18), f"noise floor {noise_floor:.3g}", (120, 120, 120))
    if budget_fid is not None:
        bx = ax.px(budget_fid)
        ax.draw.line([(bx, ax.y0), (bx, ax.y1)], fill=(200, 60, 60))
        ax.text((bx + 4, ax.y1 + 4), f"budget {budget_fid:.3g}", (200, 60, 60))
    colors = {"chosen": (30, 150, 60), "accepted": (40, 90, 200), "rejected": (200, 60, 60)}
    for label, x, ips, status in sorted(pts, key=lambda p: p[3].startswith("chosen")):
        base, shaky = status.split(" ")[0], status.endswith("unstable")
        px, py = ax.px(x), ax.py(ips)
        r = 8 if base == "chosen" else 5
        _dot(ax, px, py, r, colors.get(base, (127, 127, 127)), hollow=shaky)
        tag = " (chosen)" if base == "chosen" else ""
        ax.text((px + r + 2, py - 7), label + tag + (" (unstable)" if shaky else ""))
    if any(p[3].endswith("unstable") for p in pts):
        ax.text((ax.x0 + 4, ax.h - 14), UNSTABLE_NOTE, (120, 120, 120))
    return ax.save(dest)


# --------------------------------------------------------------------- sample grids
def save_grid(rows: list[tuple[str, Any]], dest: str | os.PathLike[str]) -> Path:
    """A PNG with one labelled row of images per entry (uint8 NHWC numpy arrays), written atomically.

    Args:
        rows: ``(label, images)``; every row's images have the same height and width.
        dest: PNG path.

    Returns:
        ``dest``.
    """
    from PIL import Image, ImageDraw

    h, w = rows[0][1].shape[1:3]
    scale = max(1, 64 // max(h, w))
    cell_h, cell_w = h * scale, w * scale
    label_w = 150
    cols = max(len(r[1]) for r in rows)
    canvas = Image.new("RGB", (label_w + cols * (cell_w + 2), len(rows) * (cell_h + 2)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, imgs) in enumerate(rows):
        y = i * (cell_h + 2)
        draw.text((4, y + cell_h // 2 - 6), label, fill="black")
        for j, img in enumerate(imgs):
            tile = Image.fromarray(img[..., :3] if img.shape[-1] >= 3 else img[..., 0]).resize(
                (cell_w, cell_h), Image.Resampling.NEAREST
            )
            canvas.paste(tile, (label_w + j * (cell_w + 2), y))
    with atomic_path(dest, force=True) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(dest)


#: Amplification factors the difference grid picks from.
AMPLIFICATIONS = (1, 2, 4, 8, 16, 32, 64, 128)


def amplification(diff: Any) -> int:
    """The largest factor ``k`` in :data:`AMPLIFICATIONS` that keeps ``k x`` the 99th percentile of ``diff`` within 255.

    Args:
        diff: ``|build - reference|`` of uint8 images (any shape, values 0..255).

    Returns:
        ``k`` (1 when the difference is already large; 128 for identical images).
    """
    import numpy as np

    d = np.asarray(diff, dtype=np.float64)
    p99 = float(np.percentile(d, 99)) if d.size else 0.0
    fitting = [k for k in AMPLIFICATIONS if k * p99 <= 255.0]
    return max(fitting) if fitting else 1


def save_diff_grid(
    reference: Any,
    build: Any,
    dest: str | os.PathLike[str],
    *,
    label: str = "build",
    head: list[tuple[str, Any]] | None = None,
) -> tuple[Path, int]:
    """A PNG of the reference, the build and ``|build - reference| x k`` on the same latents, ``k`` printed on the image.

    The difference is taken on the uint8 images (what a user sees), per channel, and
    amplified by ``k`` (:func:`amplification`: the largest of 1, 2, 4, ... 128 that keeps
    the 99th percentile of the difference within 255; values above 255 are clipped).
    Black means identical. Each difference tile carries ``xk`` in its corner, and the row
    label says ``|build - ref| x k`` and the largest difference in uint8 levels.

    Args:
        reference: uint8 NHWC reference images.
        build: uint8 NHWC build images, same shape.
        dest: PNG path, written atomically.
        label: The build's row label.
        head: Rows drawn first (e.g. an image-to-image generator's inputs).

    Returns:
        ``(dest, k)``.

    Raises:
        ValueError: The image arrays differ in shape.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    ref = np.asarray(reference)
    out = np.asarray(build)
    if ref.shape != out.shape:
        raise ValueError(f"reference {ref.shape} and build {out.shape} images differ in shape")
    diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
    k = amplification(diff)
    amp = np.clip(diff * k, 0, 255).astype(np.uint8)
    biggest = int(diff.max()) if diff.size else 0
    rows = [*(head or []), ("reference", ref), (label, out)] + [
        (f"|build - ref| x {k} (max {biggest}/255)", amp)
    ]
    path = save_grid(rows, dest)
    # Stamp k on every difference tile, so a cropped tile still says how much it was amplified.
    h, w = ref.shape[1:3]
    scale = max(1, 64 // max(h, w))
    cell_h, cell_w = h * scale, w * scale
    with Image.open(path) as img:
        canvas = img.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    y = (len(rows) - 1) * (cell_h + 2)
    for j in range(len(amp)):
        x = 150 + j * (cell_w + 2)
        draw.rectangle([x, y, x + 26, y + 11], fill=(255, 255, 255))
        draw.text((x + 1, y), f"x{k}", fill=(200, 0, 0))
    with atomic_path(dest, force=True) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(dest), k
