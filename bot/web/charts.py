"""Charts drawn on the server as inline SVG, without the internet and without script: stacked bars over time, lines
over time, and horizontal bars (one per agent or FAQ entry).

Every chart has axes with their unit, its colours named in a legend (HTML, next to the SVG) and, on the page, the
table of its figures behind it. Colours are presentation attributes, never style attributes (the
Content-Security-Policy allows no inline style). Every text is escaped here: FAQ slugs and agents' names are not
carebot's own words. The drawing is 360 units wide so that its text stays readable on a 390 px phone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 46
FONT = 12
# Colour-blind-safe (Okabe-Ito and friends), in legend order.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#7f7f7f", "#000000",
           "#a6761d", "#1b9e77", "#666666")  # fmt: skip


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    values: Sequence[float | None]
    colour: str


def colours(keys: Sequence[str]) -> dict[str, str]:
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}


def nice_max(value: float) -> float:
    """A round upper end for an axis of four steps at or above `value`: each step 1, 2, 2.5 or 5 × 10ⁿ."""
    if value <= 0:
        return 4.0
    step = value / 4
    power = 10 ** math.floor(math.log10(step))
    for factor in (1, 2, 2.5, 5, 10):
        if step <= factor * power + 1e-9:
            return float(4 * factor * power)
    return float(40 * power)


def _number(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:g}"


def _tick_label(label: str) -> str:
    """A bucket's label as the axis shows it: the hour for hours (13:00), the day for days (02 Dec)."""
    if "T" in label:
        return label[11:16]
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    try:
        return f"{label[8:10]} {months[int(label[5:7]) - 1]}"
    except (ValueError, IndexError):
        return label[:10]


def _frame(title: str, description: str, body: list[str], chart_id: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="{FONT}" font-family="system-ui, sans-serif">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _y_axis(top: float, unit: str) -> tuple[list[str], float]:
    """The y axis from 0 to a round `top`: grid lines, numbers and the unit; returns the parts and that top."""
    top = nice_max(top)
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - BOTTOM - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7ec"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#475467">{_number(value)}</text>')
    parts.append(
        f'<text x="12" y="{TOP + plot_h / 2:.1f}" transform="rotate(-90 12 {TOP + plot_h / 2:.1f})" '
        f'text-anchor="middle" fill="#344054">{escape(unit)}</text>'
    )
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#667085"/>')
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" stroke="#667085"/>'
    )
    return parts, top


def _x_axis(labels: Sequence[str], x_of: list[float], axis_title: str) -> list[str]:
    parts = []
    every = max(1, math.ceil(len(labels) / 7))  # at most about 7 labels: readable at 390 px
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = x_of[i]
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 4}" '
                     f'stroke="#667085"/>')  # fmt: skip
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="#475467">'
                     f"{escape(_tick_label(label))}</text>")  # fmt: skip
    parts.append(f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" '
                 f'fill="#344054">{escape(axis_title)}</text>')  # fmt: skip
    return parts


def _empty(parts: list[str]) -> list[str]:
    x, y = LEFT + (WIDTH - LEFT - RIGHT) / 2, TOP + (HEIGHT - TOP - BOTTOM) / 2
    return [*parts, f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="#667085">No data in this range</text>']


def stacked_bars(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], unit: str, x_title: str
) -> Markup:
    """Bars over time, one per bucket, its series stacked."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    parts, top = _y_axis(max(totals, default=0), unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    bar = max(1.0, slot * 0.75)
    x_of = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    for i, label in enumerate(labels):
        base = float(HEIGHT - BOTTOM)
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(
                f'<rect x="{x_of[i] - bar / 2:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{s.colour}"><title>{escape(_tick_label(label))} · {escape(s.label)}: {_number(value)}'
                "</title></rect>"
            )
    parts += _x_axis(labels, x_of, x_title)
    if not any(totals):
        parts = _empty(parts)
    description = f"Stacked bars of {unit} per {x_title.lower()}, {len(labels)} bars; the table below has every value."
    return _frame(title, description, parts, chart_id)


def grouped_bars(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], unit: str, x_title: str
) -> Markup:
    """Bars over time, the series side by side in each bucket (counts that are not parts of one whole)."""
    values = [v or 0 for s in series for v in s.values]
    parts, top = _y_axis(max(values, default=0), unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    bar = max(1.0, slot * 0.8 / max(1, len(series)))
    x_of = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    for i, label in enumerate(labels):
        left = x_of[i] - bar * len(series) / 2
        for n, s in enumerate(series):
            value = s.values[i] or 0
            if value <= 0:
                continue
            h = plot_h * value / top
            parts.append(
                f'<rect x="{left + n * bar:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{s.colour}"><title>{escape(_tick_label(label))} · {escape(s.label)}: {_number(value)}'
                "</title></rect>"
            )
    parts += _x_axis(labels, x_of, x_title)
    if not any(values):
        parts = _empty(parts)
    description = f"Bars of {unit} per {x_title.lower()}, side by side; the table below has every value."
    return _frame(title, description, parts, chart_id)


def lines(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], unit: str, x_title: str,
    *, top: float | None = None,
) -> Markup:  # fmt: skip
    """Lines over time, one per series; a gap where a bucket has no value; points marked."""
    values = [v for s in series for v in s.values if v is not None]
    parts, top = _y_axis(top if top is not None else max(values, default=0), unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    x_of = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    for s in series:
        path: list[str] = []
        for i, value in enumerate(s.values):
            if value is None:
                path.append("")
                continue
            y = HEIGHT - BOTTOM - plot_h * min(value, top) / top
            path.append(f"{x_of[i]:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x_of[i]:.1f}" cy="{y:.1f}" r="2.5" fill="{s.colour}"><title>'
                f"{escape(_tick_label(labels[i]))} · {escape(s.label)}: {_number(value)}</title></circle>"
            )
        for run in " ".join(path).split("  "):
            points = run.split()
            if len(points) > 1:
                parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{s.colour}" '
                             'stroke-width="2"/>')  # fmt: skip
    parts += _x_axis(labels, x_of, x_title)
    if not values:
        parts = _empty(parts)
    description = f"Lines of {unit} per {x_title.lower()}, {len(labels)} points each; the table below has every value."
    return _frame(title, description, parts, chart_id)


def horizontal_bars(
    chart_id: str, title: str, labels: Sequence[str], values: Sequence[float | None], unit: str, colour: str
) -> Markup:
    """One bar per row (an agent, an FAQ entry), longest first as given; the value at the bar's end."""
    rows = max(1, len(labels))
    row_h = 22
    height = TOP + rows * row_h + 34
    label_w = 112
    plot_w = WIDTH - label_w - RIGHT - 34
    top = nice_max(max((v or 0 for v in values), default=0))
    parts = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + i * row_h
        shown = label if len(label) <= 16 else label[:15] + "…"
        length = plot_w * (value or 0) / top
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" fill="#344054">{escape(shown)}'
                     f"<title>{escape(label)}</title></text>")  # fmt: skip
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{max(length, 0.5):.1f}" height="{row_h - 8}" '
                     f'fill="{colour}"/>')  # fmt: skip
        parts.append(f'<text x="{label_w + length + 4:.1f}" y="{y + 15}" fill="#101828">'
                     f"{'—' if value is None else _number(value)}</text>")  # fmt: skip
    base = TOP + rows * row_h
    parts.append(f'<line x1="{label_w}" x2="{label_w}" y1="{TOP}" y2="{base}" stroke="#667085"/>')
    parts.append(f'<line x1="{label_w}" x2="{label_w + plot_w}" y1="{base}" y2="{base}" stroke="#667085"/>')
    for i in range(3):
        x = label_w + plot_w * i / 2
        parts.append(f'<text x="{x:.1f}" y="{base + 14}" text-anchor="middle" fill="#475467">'
                     f"{_number(top * i / 2)}</text>")  # fmt: skip
    parts.append(f'<text x="{label_w + plot_w / 2:.1f}" y="{base + 28}" text-anchor="middle" fill="#344054">'
                 f"{escape(unit)}</text>")  # fmt: skip
    if not labels:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + 15}" text-anchor="middle" fill="#667085">'
                     "No data in this range</text>")  # fmt: skip
    description = f"Horizontal bars of {unit}, one per row of the table below."
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="{FONT}" font-family="system-ui, sans-serif">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>'
        + "".join(parts)
        + "</svg>"
    )
