"""Per-round charts of the run page as inline SVG (no script, no image file, no plot
library in the request path): one line of points per series, drawn by the server each
time the live part of the page is rendered."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT, MARGIN = 360, 160, 34
COLOURS = ("#3a6ea5", "#b5532a", "#4f8a3c")


@dataclass(frozen=True)
class Series:
    """One line: its label and a value per round (None where the round has none)."""

    label: str
    values: Sequence[float | None]


def line_chart(title: str, rounds: Sequence[int], series: Sequence[Series],
               number: Callable[[float], str]) -> Markup:
    """An SVG chart of ``series`` against ``rounds``; axes labelled with ``number``."""
    points = [v for s in series for v in s.values if v is not None]
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}"><title>{escape(title)}</title>']
    if not rounds or not points:
        parts.append(f'<text x="{MARGIN}" y="{HEIGHT // 2}">{escape(title)}: —</text></svg>')
        return Markup("".join(parts))
    low, high = min(points), max(points)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    first, last = min(rounds), max(rounds)
    span = max(last - first, 1)

    def x(r: int) -> float:
        return MARGIN + (r - first) / span * (WIDTH - 2 * MARGIN)

    def y(v: float) -> float:
        return HEIGHT - MARGIN + 10 - (v - low) / (high - low) * (HEIGHT - 2 * MARGIN)

    bottom, top = y(low), y(high)
    parts.append(f'<line x1="{MARGIN}" y1="{bottom:.1f}" x2="{WIDTH - MARGIN}" '
                 f'y2="{bottom:.1f}" stroke="#8894a0"/>')
    parts.append(f'<text x="2" y="{bottom:.1f}" font-size="10">{escape(number(low))}</text>')
    parts.append(f'<text x="2" y="{top + 4:.1f}" font-size="10">{escape(number(high))}</text>')
    for r in (first, last):
        parts.append(f'<text x="{x(r) - 3:.1f}" y="{HEIGHT - 4}" font-size="10">{r}</text>')
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        xy = [(x(r), y(v)) for r, v in zip(rounds, line.values, strict=False) if v is not None]
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in xy)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{path}"/>')
        parts.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}"/>'
                     for a, b in xy)
        parts.append(f'<text x="{MARGIN + 6 + 150 * index}" y="12" font-size="11" '
                     f'fill="{colour}">{escape(line.label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
