"""Chart geometry for the analyst's pages: numbers in, pixel coordinates out.

The pages draw every chart as inline SVG on the server (no chart library, nothing for a browser to
fetch). This module only computes where things go; the markup is written by the template macros in
``serving/templates/charts.html``, so every label passes through the template's autoescaping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

PALETTE_SIZE = 8  # series colours, CSS classes s0 .. s7 in serving/static/pages.css


@dataclass(frozen=True)
class Axis:
    """A linear map from data values ``lo .. hi`` to pixels ``start .. end``."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return round(self.start + (value - self.lo) / span * (self.end - self.start), 1)

    def ticks(self, count: int = 5, fmt: str = "{:g}") -> list[tuple[float, str]]:
        """About ``count`` round values inside the axis, with their pixel positions."""
        step = nice_step((self.hi - self.lo) / max(count - 1, 1))
        first = math.ceil(self.lo / step) * step
        values = [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]
        return [(self(v), fmt.format(round(v, 6))) for v in values]


def nice_step(raw: float) -> float:
    """The round number (1, 2 or 5 times a power of ten) at or above ``raw``."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw - 1e-12)


def padded(values: Sequence[float], floor: float | None = None, pad: float = 0.08) -> tuple[float, float]:
    """A value range holding every value with a margin, starting at ``floor`` when given."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return (0.0, 1.0) if floor is None else (floor, floor + 1.0)
    lo, hi = min(finite), max(finite)
    margin = (hi - lo) * pad or max(abs(hi) * pad, 0.5)
    return (floor if floor is not None else lo - margin), hi + margin


@dataclass
class Series:
    label: str
    colour: int  # index into the palette
    path: str = ""  # polyline points "x,y x,y"
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, tooltip
    whiskers: list[tuple[float, float, float]] = field(default_factory=list)  # x, y top, y bottom


@dataclass
class Plot:
    """One chart: axes with ticks, reference lines, and series of lines, dots or intervals."""

    title: str
    width: int
    height: int
    left: int
    bottom: int
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    refs: list[tuple[float, float, float, float, str]] = field(default_factory=list)  # x1, y1, x2, y2, label
    series: list[Series] = field(default_factory=list)
    x_label: str = ""
    y_label: str = ""

    @property
    def right(self) -> int:
        return self.width - MARGIN["right"]

    @property
    def empty(self) -> bool:
        return not any(s.path or s.dots or s.whiskers for s in self.series)


MARGIN = {"left": 44, "right": 24, "top": 12, "bottom": 34}  # right: room for the last x label


def _frame(title: str, width: int, height: int) -> tuple[Plot, float, float, float, float]:
    plot = Plot(title, width, height, MARGIN["left"], height - MARGIN["bottom"])
    return plot, MARGIN["left"], width - MARGIN["right"], height - MARGIN["bottom"], MARGIN["top"]


def line_plot(title: str, series: dict[str, list[tuple[float, float, str]]], y_label: str,
              x_labels: dict[float, str], width: int = 640, height: int = 220,
              y_floor: float | None = None, refs: Sequence[tuple[float, str]] = ()) -> Plot:
    """Lines over a numeric x (a day number), one per series; ``x_labels`` names some x values.
    ``refs`` are horizontal lines at data values (a target, a break-even)."""
    plot, x0, x1, y0, y1 = _frame(title, width, height)
    xs = [x for points in series.values() for x, _, _ in points] or [0.0, 1.0]
    ys = [y for points in series.values() for _, y, _ in points] + [v for v, _ in refs]
    x_axis = Axis(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1, x0, x1)
    y_axis = Axis(*padded(ys, y_floor), y0, y1)
    plot.y_ticks, plot.y_label = y_axis.ticks(), y_label
    shown = sorted(x_labels)[:: max(1, len(x_labels) // 6)]
    plot.x_ticks = [(x_axis(x), x_labels[x]) for x in shown]
    plot.refs = [(x0, y_axis(v), x1, y_axis(v), label) for v, label in refs]
    for i, (label, points) in enumerate(series.items()):
        points = sorted(points)
        plot.series.append(Series(label, i % PALETTE_SIZE,
                                  " ".join(f"{x_axis(x)},{y_axis(y)}" for x, y, _ in points),
                                  [(x_axis(x), y_axis(y), tip) for x, y, tip in points] if len(points) < 40 else []))
    return plot


def interval_plot(title: str, groups: list[str], series: dict[str, list[tuple[float, float, float] | None]],
                  y_label: str, width: int = 640, height: int = 220,
                  refs: Sequence[tuple[float, str]] = ()) -> Plot:
    """Per group (a system, a confidence bucket), one point with its interval per series: a rate in
    percent and its low and high bounds; None where a series has nothing in that group."""
    plot, x0, x1, y0, y1 = _frame(title, width, height)
    y_axis = Axis(0.0, 100.0, y0, y1)
    plot.y_ticks, plot.y_label = y_axis.ticks(6, "{:g}%"), y_label
    slot = (x1 - x0) / max(len(groups), 1)
    plot.x_ticks = [(round(x0 + slot * (i + 0.5), 1), g) for i, g in enumerate(groups)]
    plot.refs = [(x0, y_axis(v), x1, y_axis(v), label) for v, label in refs]
    width_each = slot * 0.7 / max(len(series), 1)
    for j, (label, values) in enumerate(series.items()):
        s = Series(label, j % PALETTE_SIZE)
        for i, value in enumerate(values):
            if value is None:
                continue
            rate, low, high = value
            x = round(x0 + slot * (i + 0.15) + width_each * (j + 0.5), 1)
            s.dots.append((x, y_axis(rate), f"{label} {groups[i]}: {rate:.1f}% ({low:.1f} .. {high:.1f})"))
            s.whiskers.append((x, y_axis(high), y_axis(low)))
        plot.series.append(s)
    return plot


def scatter_plot(title: str, series: dict[str, list[tuple[float, float, str]]], x_label: str, y_label: str,
                 width: int = 320, height: int = 300, bounds: tuple[float, float] | None = None,
                 diagonal: bool = True, connect: bool = False) -> Plot:
    """Dots (optionally joined) on equal x and y axes, with the line y = x: predicted against actual,
    or the reliability of a probability."""
    plot, x0, x1, y0, y1 = _frame(title, width, height)
    values = [v for points in series.values() for x, y, _ in points for v in (x, y)]
    lo, hi = bounds or padded(values, 0.0)
    x_axis, y_axis = Axis(lo, hi, x0, x1), Axis(lo, hi, y0, y1)
    plot.x_ticks, plot.y_ticks = x_axis.ticks(), y_axis.ticks()
    plot.x_label, plot.y_label = x_label, y_label
    if diagonal:
        plot.refs = [(x_axis(lo), y_axis(lo), x_axis(hi), y_axis(hi), "")]
    for i, (label, points) in enumerate(series.items()):
        points = sorted(points)
        plot.series.append(Series(label, i % PALETTE_SIZE,
                                  " ".join(f"{x_axis(x)},{y_axis(y)}" for x, y, _ in points) if connect else "",
                                  [(x_axis(x), y_axis(y), tip) for x, y, tip in points]))
    return plot


@dataclass
class Form:
    """A player's last games as bars against tonight's line (oldest left)."""

    width: int
    height: int
    bars: list[tuple[float, float, float, str, str]]  # x, y, height, over|under|push|none, tooltip
    line_y: float | None
    label: str


FORM_WIDTH, FORM_HEIGHT, FORM_BAR = 112, 30, 10


def form_chart(values: Sequence[float], dates: Sequence[str], line: float | None, label: str) -> Form:
    top = max([*values, line or 0.0, 1.0]) * 1.1
    axis = Axis(0.0, top, FORM_HEIGHT - 1, 1)
    bars = []
    for i, (value, day) in enumerate(zip(values, dates, strict=True)):
        kind = "none" if line is None else "over" if value > line else "under" if value < line else "push"
        y = axis(value)
        bars.append((i * (FORM_BAR + 1) + 1, y, max(round(FORM_HEIGHT - 1 - y, 1), 1.0), kind, f"{day}: {value:g}"))
    return Form(FORM_WIDTH, FORM_HEIGHT, bars, None if line is None else axis(line), label)


@dataclass
class Spark:
    width: int
    height: int
    path: str
    label: str


SPARK_WIDTH, SPARK_HEIGHT, SPARK_MINUTES = 64, 22, 48.0


def minutes_spark(minutes: Sequence[float], label: str) -> Spark:
    x_axis = Axis(0, max(len(minutes) - 1, 1), 2, SPARK_WIDTH - 2)
    y_axis = Axis(0.0, SPARK_MINUTES, SPARK_HEIGHT - 2, 2)
    path = " ".join(f"{x_axis(i)},{y_axis(min(m, SPARK_MINUTES))}" for i, m in enumerate(minutes))
    return Spark(SPARK_WIDTH, SPARK_HEIGHT, path, label)
