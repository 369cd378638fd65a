"""Arrival times drawn: a text sparkline for the terminal, an SVG for notebooks (no scripts)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._model import Measurements

__all__ = ["chart", "sparkline", "svg"]


_BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(points: Sequence[tuple[float, int]], span: float, width: int) -> str:
    """`points` (time, amount) summed into `width` equal time buckets over [0, span].

    Each bucket is drawn as a block whose height is its share of the fullest
    bucket (at least the lowest block when not empty), a space when empty.
    """
    buckets = [0] * width
    for t, amount in points:
        index = min(width - 1, int(t / span * width)) if span > 0 else width - 1
        buckets[index] += amount
    top = max(buckets) or 1
    return "".join(
        _BLOCKS[max(1, math.ceil(value / top * 8))] if value else " " for value in buckets
    )


def _axis(span: float, width: int) -> str:
    """A time axis under a `width`-wide chart: 0, the middle (when it fits) and `span`."""
    end, middle = f"{span:.2f} s", f"{span / 2:.2f}"
    line = list("0".ljust(width))
    start = width // 2 - len(middle) // 2
    if start > 1 and start + len(middle) < width - len(end):
        line[start : start + len(middle)] = middle
    line[width - len(end) :] = end
    return "".join(line)


def chart(m: Measurements, width: int) -> list[str]:
    span = max(m.total, 1e-3)
    return [
        f"  bytes  |{sparkline(m.chunks, span, width)}|",
        f"  events |{sparkline(m.events, span, width)}|",
        f"          {_axis(span, width)}",
    ]


def svg(m: Measurements) -> str:
    """Chunk arrivals as bars (height ~ bytes), event arrivals as dots, over a time axis."""
    left, right, span = 40.0, 470.0, max(m.total, 1e-3)

    def x(t: float) -> float:
        return left + (right - left) * min(t, span) / span

    top = max((size for _, size in m.chunks), default=1)
    bars = "".join(
        f"<rect x='{x(t):.1f}' y='{50 - 40 * size / top:.1f}' width='2'"
        f" height='{40 * size / top:.1f}' fill='#4c78a8'>"
        f"<title>{t:.3f} s: {size} bytes</title></rect>"
        for t, size in m.chunks
    )
    dots = "".join(
        f"<circle cx='{x(t):.1f}' cy='62' r='{min(6.0, 1.5 + math.sqrt(count)):.1f}'"
        f" fill='#f58518'><title>{t:.3f} s: {count} events</title></circle>"
        for t, count in m.events
    )
    ticks = "".join(
        f"<text x='{x(t):.1f}' y='88' font-size='10' text-anchor='middle'>{t:.2f} s</text>"
        for t in (0.0, span / 2, span)
    )
    return (
        "<svg xmlns='http://www.w3.org/2000/svg' width='480' height='95' role='img'"
        " aria-label='arrival times of chunks (bars) and events (dots)'>"
        "<text x='2' y='35' font-size='10'>bytes</text>"
        "<text x='2' y='65' font-size='10'>events</text>"
        f"<line x1='{left}' y1='74' x2='{right}' y2='74' stroke='#888'/>"
        f"{bars}{dots}{ticks}</svg>"
    )
