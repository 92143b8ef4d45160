"""Charts as inline SVG text, written by hand.

The report must open offline from a file:// URL and stay small, so its charts are SVG
elements in the page itself: no script library, no fonts, no network. A handful of
chart shapes is all the report needs, and each is a few dozen lines here. Every label
that reaches a chart goes through :func:`text`, which escapes it: page-group and
campaign names come from traffic, and traffic is written by strangers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

#: Latencies worth a tick, in seconds.
_TICKS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0,
            60.0)
STATE_COLOURS = {"ok": "#2e7d32", "degraded": "#ef8f00", "failing": "#c62828",
                 "warming_up": "#9e9e9e"}


def text(value: object) -> str:
    """``value`` as text safe inside HTML and SVG, attributes included."""
    return html.escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}"


def latency_label(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.3g} s"
    return f"{seconds * 1e3:,.0f} ms"


class Scale:
    """A linear or logarithmic map from data to pixels."""

    def __init__(self, low: float, high: float, start: float, end: float,
                 log: bool = False) -> None:
        self._log = log
        self._low = math.log(low) if log else low
        span = (math.log(high) if log else high) - self._low
        self._span = span if span > 0 else 1.0
        self._start, self._length = start, end - start

    def __call__(self, value: float) -> float:
        x = math.log(value) if self._log else value
        return self._start + (x - self._low) / self._span * self._length


def _svg(width: int, height: int, body: Sequence[str], label: str, css: str = "chart") -> str:
    return (f'<svg class="{css}" role="img" aria-label="{text(label)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">' + "".join(body) + "</svg>")


def _nice_max(value: float) -> float:
    if not value > 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value))


def curve_chart(lows: Sequence[float], highs: Sequence[float], sessions: Sequence[int],
                rates: Sequence[float], rate_low: Sequence[float], rate_high: Sequence[float],
                reliable: Sequence[bool], optimal_s: float, label: str) -> str:
    """Sessions per latency bucket as bars (left axis) and their conversion rate as a line
    with its interval (right axis); buckets with too few sessions are grey and stay off the
    line; the optimal load time is a dashed marker. Bucket b spans ``lows[b]``–``highs[b]``
    seconds."""
    width, height, left, right, top, bottom = 680, 260, 56, 56, 18, 40
    if not sessions:
        return _svg(width, 40, ['<text x="8" y="24" class="note">no finished sessions</text>'],
                    label)
    x = Scale(min(lows), max(highs), left, width - right, log=True)
    y_sessions = Scale(0.0, _nice_max(max(sessions)), height - bottom, top)
    shown = [h for h, ok in zip(rate_high, reliable, strict=True) if ok and math.isfinite(h)]
    rate_max = min(1.0, _nice_max(max(shown) * 1.05)) if shown else 1.0
    y_rate = Scale(0.0, rate_max, height - bottom, top)
    body = [f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" '
            f'y2="{height - bottom}"/>']
    for tick in _TICKS_S:
        if min(lows) <= tick <= max(highs):
            px = _n(x(tick))
            body.append(f'<line class="grid" x1="{px}" y1="{top}" x2="{px}" '
                        f'y2="{height - bottom}"/><text class="tick" x="{px}" '
                        f'y="{height - bottom + 14}" text-anchor="middle">'
                        f'{latency_label(tick)}</text>')
    for i in range(5):
        value = y_rate._low + i / 4 * y_rate._span
        session_value = y_sessions._low + i / 4 * y_sessions._span
        py = _n(y_rate(value))
        body.append(f'<text class="tick" x="{left - 6}" y="{py}" text-anchor="end" '
                    f'dy="3">{session_value:,.0f}</text><text class="tick rate-tick" '
                    f'x="{width - right + 6}" y="{py}" dy="3">{value * 100:.0f}%</text>')
    for lo, hi, count, rate, ok in zip(lows, highs, sessions, rates, reliable, strict=True):
        if not count:
            continue
        x0, x1 = x(lo), x(hi)
        y0 = y_sessions(count)
        css = "bar" if ok else "bar sparse"
        body.append(f'<rect class="{css}" x="{_n(x0)}" y="{_n(y0)}" '
                    f'width="{_n(max(x1 - x0 - 0.5, 0.5))}" height="{_n(height - bottom - y0)}">'
                    f'<title>{latency_label(lo)}–{latency_label(hi)}: {count:,} sessions, '
                    f'{rate * 100:.1f}% converted{"" if ok else " (too few to read alone)"}'
                    f'</title></rect>')
    points = [(math.sqrt(lo * hi), r, a, b) for lo, hi, r, a, b, ok in
              zip(lows, highs, rates, rate_low, rate_high, reliable, strict=True)
              if ok and math.isfinite(r)]
    if points:
        upper = [f"{_n(x(p))},{_n(y_rate(b))}" for p, _, _, b in points]
        lower = [f"{_n(x(p))},{_n(y_rate(a))}" for p, _, a, _ in reversed(points)]
        body.append(f'<polygon class="band" points="{" ".join(upper + lower)}"/>')
        line = " ".join(f"{_n(x(p))},{_n(y_rate(r))}" for p, r, _, _ in points)
        body.append(f'<polyline class="rate" points="{line}"/>')
    for lo, hi, rate, ok, count in zip(lows, highs, rates, reliable, sessions, strict=True):
        if count and not ok and math.isfinite(rate):
            body.append(f'<circle class="sparse-point" cx="{_n(x(math.sqrt(lo * hi)))}" '
                        f'cy="{_n(y_rate(min(rate, rate_max)))}" r="2"/>')
    if math.isfinite(optimal_s):
        px = _n(x(min(max(optimal_s, min(lows)), max(highs))))
        body.append(f'<line class="optimal" x1="{px}" y1="{top}" x2="{px}" '
                    f'y2="{height - bottom}"/><text class="optimal-label" x="{px}" '
                    f'y="{top - 4}" text-anchor="middle" '
                    f'data-optimal-ms="{optimal_s * 1e3:.0f}">best {latency_label(optimal_s)}'
                    f'</text>')
    body.append(f'<text class="axis-label" x="{left}" y="{height - 6}">load time '
                f'(log scale)</text><text class="axis-label" x="{width - right}" '
                f'y="{height - 6}" text-anchor="end">bars: sessions · line: conversion rate, '
                f'95% interval shaded</text>')
    return _svg(width, height, body, label)


def diverging_bar(value: float, limit: float, label: str) -> str:
    """A bar from the middle: left (red) for negative values, right (blue) for positive,
    ``limit`` at either edge."""
    width, height = 150, 14
    middle = width / 2
    body = [f'<line class="zero" x1="{middle}" y1="0" x2="{middle}" y2="{height}"/>']
    if math.isfinite(value) and limit > 0:
        length = min(abs(value) / limit, 1.0) * middle
        css = "cost" if value < 0 else "gain"
        start = middle - length if value < 0 else middle
        body.append(f'<rect class="{css}" x="{_n(start)}" y="2" width="{_n(length)}" '
                    f'height="{height - 4}"/>')
    return _svg(width, height, body, label, "cell-chart")


def share_bar(share: float, label: str) -> str:
    width, height = 100, 14
    length = min(max(share, 0.0), 1.0) * width if math.isfinite(share) else 0.0
    return _svg(width, height, [f'<rect class="track" x="0" y="2" width="{width}" '
                                f'height="{height - 4}"/><rect class="share" x="0" y="2" '
                                f'width="{_n(length)}" height="{height - 4}"/>'],
                label, "cell-chart")


def whatif_chart(deltas_ms: Sequence[float], changes: Sequence[float],
                 lows: Sequence[float], highs: Sequence[float], label: str) -> str:
    """The conversion change (points) for each latency shift, with its interval."""
    width, height, left, bottom, top = 310, 170, 60, 30, 12
    finite = [v for v in (*lows, *highs, *changes) if math.isfinite(v)]
    extent = _nice_max(max((abs(v) for v in finite), default=0.0) * 100) / 100
    y = Scale(-extent, extent, height - bottom, top)
    step = (width - left - 10) / max(len(deltas_ms), 1)
    body = [f'<line class="zero" x1="{left}" y1="{_n(y(0.0))}" x2="{width - 6}" '
            f'y2="{_n(y(0.0))}"/>']
    for value in (-extent, 0.0, extent):
        body.append(f'<text class="tick" x="{left - 6}" y="{_n(y(value))}" dy="3" '
                    f'text-anchor="end">{value * 100:+.1f} pt</text>')
    for i, (delta, change, low, high) in enumerate(zip(deltas_ms, changes, lows, highs,
                                                       strict=True)):
        cx = left + step * (i + 0.5)
        body.append(f'<text class="tick" x="{_n(cx)}" y="{height - bottom + 16}" '
                    f'text-anchor="middle">{delta:+,.0f} ms</text>')
        if not all(math.isfinite(v) for v in (change, low, high)):
            continue
        css = "gain" if change > 0 else "cost"
        body.append(f'<line class="whisker" x1="{_n(cx)}" y1="{_n(y(low))}" x2="{_n(cx)}" '
                    f'y2="{_n(y(high))}"/><circle class="{css}" cx="{_n(cx)}" '
                    f'cy="{_n(y(change))}" r="4"><title>{delta:+,.0f} ms: '
                    f'{change * 100:+.2f} pt [{low * 100:+.2f}, {high * 100:+.2f}]</title>'
                    f'</circle>')
    return _svg(width, height, body, label)


def timeline_strip(changes: Sequence[tuple[int, str]], start_ns: int, end_ns: int,
                   label: str) -> str:
    """A campaign's state over time: one coloured stretch per state held."""
    width, height = 200, 16
    if not changes or end_ns <= start_ns:
        return ""
    x = Scale(float(start_ns), float(end_ns), 0.0, float(width))
    body = []
    for i, (at, state) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else end_ns
        x0, x1 = x(max(at, start_ns)), x(min(until, end_ns))
        if x1 <= x0:
            continue
        colour = STATE_COLOURS.get(state, "#9e9e9e")
        body.append(f'<rect x="{_n(x0)}" y="2" width="{_n(x1 - x0)}" height="{height - 4}" '
                    f'fill="{colour}" data-state="{text(state)}"><title>{text(state)}'
                    f'</title></rect>')
    return _svg(width, height, body, label, "cell-chart timeline")
