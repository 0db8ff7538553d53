"""Charts as inline SVG, rendered on the server: no script, no CDN, readable at any width.

Every label goes through markupsafe.escape; geometry is in viewBox units and the SVG scales to
its container (width 100%), so the same chart reads on a laptop and in a 400 px window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from chunksync.models import ErrorCategory

WIDTH = 600.0
HEIGHT = 180.0
PAD_LEFT = 36.0
PAD_BOTTOM = 22.0
PAD_TOP = 8.0
CATEGORY_NAMES = [c.value for c in ErrorCategory]


def _label_time(t: float, bucket_s: float) -> str:
    fmt = "%H:%M" if bucket_s < 86400 else "%m-%d"
    return time.strftime(fmt, time.gmtime(t))


def _axis(max_value: float) -> str:
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    lines = []
    for frac in (0.0, 0.5, 1.0):
        y = PAD_TOP + plot_h * (1 - frac)
        value = max_value * frac
        text = f"{value:.0f}" if max_value >= 10 or value == 0 else f"{value:.2g}"
        lines.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    return "".join(lines)


def bar_chart(
    points: Sequence[Sequence[Any]], *, title: str, bucket_s: float, unit: str = ""
) -> Markup:
    """One bar per time bucket: (bucket start, value)."""
    return stacked_chart(
        [(t, {"value": v}) for t, v in points],
        title=title,
        bucket_s=bucket_s,
        series=["value"],
        unit=unit,
        legend=False,
    )


def stacked_chart(
    buckets: Sequence[Sequence[Any]],
    *,
    title: str,
    bucket_s: float,
    series: Sequence[str] = CATEGORY_NAMES,
    unit: str = "",
    legend: bool = True,
) -> Markup:
    """Stacked bars per time bucket; each series has a CSS class (s-<name>) for its colour."""
    if not buckets:
        return Markup('<p class="empty">{}</p>').format(f"{title}: no data yet")
    totals = [sum(v.get(s, 0.0) for s in series) for _, v in buckets]
    top = max(max(totals), 1e-9)
    plot_w = WIDTH - PAD_LEFT
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / len(buckets)
    bar_w = max(step * 0.7, 1.0)
    parts = [_axis(top)]
    label_every = max(1, round(len(buckets) / 6))
    for i, (t, values) in enumerate(buckets):
        x = PAD_LEFT + i * step + (step - bar_w) / 2
        y_base = PAD_TOP + plot_h
        for s in series:
            v = values.get(s, 0.0)
            if v <= 0:
                continue
            h = plot_h * v / top
            y_base -= h
            tip = f"{_label_time(t, bucket_s)} {s}: {v:g}{unit}"
            parts.append(
                f'<rect class="s-{escape(s)}" x="{x:.1f}" y="{y_base:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(tip)}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="middle">{escape(_label_time(t, bucket_s))}</text>'
            )
    used = [s for s in series if any(v.get(s, 0) > 0 for _, v in buckets)]
    keys = ""
    if legend and used:
        keys = '<ul class="legend">' + "".join(
            f'<li><span class="swatch s-{escape(s)}"></span>{escape(s)}</li>' for s in used
        )
        keys += "</ul>"
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="none"><title>{escape(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )
    return Markup(
        f'<figure class="chart-box"><figcaption>{escape(title)}</figcaption>{svg}{keys}</figure>'
    )


def progress_bar(fraction: float, label: str) -> Markup:
    pct = max(0.0, min(1.0, fraction)) * 100
    return Markup(
        f'<svg class="progress" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><rect class="track" width="100" height="8"/>'
        f'<rect class="fill" width="{pct:.1f}" height="8"/></svg>'
    )


def sparkline(values: Sequence[float], label: str) -> Markup:
    if len(values) < 2:
        return Markup('<span class="muted">-</span>')
    top = max(max(values), 1e-9)
    step = 100.0 / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{20 - 18 * v / top:.1f}" for i, v in enumerate(values))
    return Markup(
        f'<svg class="spark" viewBox="0 0 100 20" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><polyline points="{points}"/></svg>'
    )
