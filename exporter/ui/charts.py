"""Charts of the status pages as SVG, drawn on the server from numbers: no JavaScript, no asset.

Each function takes plain numbers and returns :class:`markupsafe.Markup` holding one ``<svg>``
element. Every piece of text in it (series and category names come from clients) is escaped
here, so a name like ``<script>`` is drawn as text. Each chart says how many values it draws
in ``data-points`` (the browser tests check that every chart has data) and carries a
``<title>`` for screen readers and tooltips.

Why server-side SVG rather than a charting library: the pages must work offline and without
JavaScript (a sidecar's pod has no CDN), a few line and bar charts are all they need, and an
SVG of a few hundred points is a few kilobytes that renders in any browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from markupsafe import Markup, escape

#: Series colours, in order (the Okabe-Ito palette: told apart by colour-blind readers too).
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")
REFERENCE_COLOUR = "#999999"


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a line chart: times (epoch seconds) and values, NaN for no value."""

    name: str
    times: Sequence[float]
    values: Sequence[float]


def _number(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}"


def _tick(value: float) -> str:
    """An axis label: up to 4 significant digits."""
    if value == 0:
        return "0"
    return f"{value:.4g}"


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M")


def _svg(width: int, height: int, points: int, title: str, body: list[str], css: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {escape(css)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" data-points="{points}"><title>{escape(title)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _span(values: list[float], floor: float | None, ceiling: float | None) -> tuple[float, float]:
    lo = min(values) if values else 0.0
    hi = max(values) if values else 1.0
    if floor is not None:
        lo = min(lo, floor)
    if ceiling is not None:
        hi = max(hi, ceiling)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _runs(finite: npt.NDArray[np.bool_]) -> list[slice]:
    """The runs of True in ``finite``, as slices.

    >>> _runs(np.array([True, True, False, True, False, False]))
    [slice(0, 2, None), slice(3, 4, None)]
    """
    padded = np.concatenate(([False], finite, [False])).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return [slice(int(a), int(b)) for a, b in zip(change[::2], change[1::2], strict=True)]


def _decimate(
    xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64], width: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """At most two points a pixel column (its lowest and highest value, in time order) where
    a line has more points than twice its columns: the same picture, fewer points. ``xs``
    ascending.

    >>> xs, ys = _decimate(np.array([0.1, 0.2, 0.3, 1.5]), np.array([5.0, 9.0, 1.0, 2.0]), 1)
    >>> xs.tolist(), ys.tolist()
    ([0.2, 0.3, 1.5], [9.0, 1.0, 2.0])
    """
    if xs.shape[0] <= 2 * max(int(width), 1):
        return xs, ys
    column = np.floor(xs).astype(np.int64)
    order = np.lexsort((ys, column))  # by column, then by value: each column's ends
    first = np.concatenate(([True], column[order][1:] != column[order][:-1]))
    last = np.concatenate((first[1:], [True]))
    keep = np.zeros(xs.shape[0], dtype=bool)
    keep[order[first]] = True
    keep[order[last]] = True
    return xs[keep], ys[keep]


@dataclass(frozen=True, slots=True)
class _Frame:
    """A line chart's plot area and the times and values it spans: where a point goes."""

    left: float
    top: float
    width: float
    height: float
    t0: float
    t1: float
    lo: float
    hi: float

    def x(self, t: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64] | float:
        return self.left + (t - self.t0) / (self.t1 - self.t0) * self.width

    def y(self, v: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64] | float:
        return self.top + (self.hi - v) / (self.hi - self.lo) * self.height


def _axes(f: _Frame, bottom_y: float, threshold: float | None, label: str) -> list[str]:
    """The plot's box, five value ticks, the first and last time, the dashed threshold."""
    body = [
        f'<rect class="plot" x="{f.left:g}" y="{f.top:g}" width="{f.width:g}" '
        f'height="{f.height:g}" fill="none" stroke="#ccc"/>'
    ]
    for k in range(5):
        v = f.lo + (f.hi - f.lo) * k / 4
        body.append(
            f'<text class="tick" x="{f.left - 4:g}" y="{_number(float(f.y(v)) + 4)}" '
            f'text-anchor="end" font-size="10">{escape(_tick(v))}</text>'
        )
    for t, anchor in ((f.t0, "start"), (f.t1, "end")):
        body.append(
            f'<text class="tick" x="{_number(float(f.x(t)))}" y="{bottom_y:g}" '
            f'text-anchor="{anchor}" font-size="10">{escape(_clock(t))} UTC</text>'
        )
    if threshold is not None:
        ty = float(f.y(threshold))
        body.append(
            f'<line class="threshold" x1="{f.left:g}" x2="{f.left + f.width:g}" '
            f'y1="{_number(ty)}" y2="{_number(ty)}" stroke="#d00" stroke-dasharray="5,4"/>'
            f'<text x="{f.left + f.width - 2:g}" y="{_number(ty - 3)}" text-anchor="end" '
            f'font-size="10" fill="#d00">{escape(label)}</text>'
        )
    return body


def _series(
    f: _Frame,
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    colour: str,
    name: str,
) -> list[str]:
    """One series: a polyline per run of finite values (a gap in the history, no value or
    the exporter down, is left open, not bridged), a dot for a run of one."""
    xs = np.asarray(f.x(times))
    ys = np.asarray(f.y(values))
    body = []
    for run in _runs(np.isfinite(values)):
        if run.stop - run.start == 1:
            body.append(
                f'<circle class="series" cx="{_number(xs[run.start])}" '
                f'cy="{_number(ys[run.start])}" r="3" fill="{colour}"><title>{name}</title>'
                "</circle>"
            )
            continue
        rx, ry = _decimate(xs[run], ys[run], f.width)
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(rx.tolist(), ry.tolist(), strict=True))
        body.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="1.6"><title>{name}</title></polyline>'
        )
    return body


def line_chart(
    lines: Sequence[Line],
    *,
    title: str,
    threshold: float | None = None,
    threshold_label: str = "",
    unit_range: bool = False,
    width: int = 520,
    height: int = 170,
) -> Markup:
    """A line chart of ``lines`` over time, with a dashed ``threshold`` line (the alert's).

    ``unit_range`` keeps 0..1 in view for ratios. A series with one value is a dot.
    """
    left, right, top, bottom = 46, 8, 8, 36
    arrays = [
        (np.asarray(line.times, dtype=np.float64), np.asarray(line.values, dtype=np.float64))
        for line in lines
    ]
    for ts, vs in arrays:
        if ts.shape != vs.shape:
            raise ValueError(f"{ts.shape[0]} times for {vs.shape[0]} values")
    times = np.concatenate([ts[np.isfinite(vs)] for ts, vs in arrays] or [np.empty(0)])
    values = np.concatenate([vs[np.isfinite(vs)] for _, vs in arrays] or [np.empty(0)]).tolist()
    t0 = float(times.min()) if times.size else 0.0
    t1 = float(times.max()) if times.size else 1.0
    if t1 <= t0:
        t0, t1 = t0 - 30, t1 + 30
    extra = [threshold] if threshold is not None else []
    lo, hi = _span(values + extra, 0.0 if unit_range else None, 1.0 if unit_range else None)
    if unit_range:
        lo, hi = max(lo, -0.02), min(hi, 1.02)
    frame = _Frame(left, top, width - left - right, height - top - bottom, t0, t1, lo, hi)
    body = _axes(frame, height - bottom + 14, threshold, threshold_label)
    legend_x = left
    for i, (line, (ts, vs)) in enumerate(zip(lines, arrays, strict=True)):
        colour, name = COLOURS[i % len(COLOURS)], escape(line.name)
        body += _series(frame, ts, vs, colour, name)
        body.append(
            f'<rect x="{legend_x}" y="{height - 12}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 13}" y="{height - 3}" font-size="10">{name}</text>'
        )
        legend_x += 20 + 6 * len(line.name)
    return _svg(width, height, len(values), title, body, "line")


def sparkline(
    times: Sequence[float],
    values: Sequence[float],
    *,
    title: str,
    threshold: float | None = None,
    width: int = 120,
    height: int = 28,
) -> Markup:
    """A small line without axes (the status page's recent history), threshold dashed."""
    pairs = [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    finite = [v for _, v in pairs] + ([threshold] if threshold is not None else [])
    lo, hi = _span(finite, None, None)
    t0 = pairs[0][0] if pairs else 0.0
    t1 = pairs[-1][0] if pairs else 1.0
    if t1 <= t0:
        t0, t1 = t0 - 30, t1 + 30

    def x(t: float) -> float:
        return 2 + (t - t0) / (t1 - t0) * (width - 4)

    def y(v: float) -> float:
        return 2 + (hi - v) / (hi - lo) * (height - 4)

    body = []
    if threshold is not None:
        ty = _number(y(threshold))
        body.append(
            f'<line class="threshold" x1="0" x2="{width}" y1="{ty}" y2="{ty}" stroke="#d00" '
            'stroke-dasharray="3,3"/>'
        )
    if len(pairs) == 1:
        body.append(
            f'<circle class="series" cx="{_number(x(pairs[0][0]))}" '
            f'cy="{_number(y(pairs[0][1]))}" r="2" fill="{COLOURS[0]}"/>'
        )
    elif pairs:
        path = " ".join(f"{_number(x(t))},{_number(y(v))}" for t, v in pairs)
        body.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{COLOURS[0]}" '
            'stroke-width="1.4"/>'
        )
    return _svg(width, height, len(pairs), title, body, "spark")


def overlay_histogram(
    edges: Sequence[float],
    window: Sequence[int],
    reference: Sequence[int],
    *,
    title: str,
    width: int = 520,
    height: int = 190,
) -> Markup:
    """A numeric feature's window shares (filled bars) drawn over the reference's (outlined),
    on the same bins. Shares, not counts: the two sides have different sizes."""
    left, right, top, bottom = 46, 8, 8, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    bins = len(window)
    if bins == 0 or len(edges) != bins + 1:
        return _svg(width, height, 0, title, [], "histogram")  # nothing to draw
    n_win, n_ref = max(sum(window), 1), max(sum(reference), 1)
    win = [c / n_win for c in window]
    ref = [c / n_ref for c in reference]
    top_share = max([*win, *ref, 1e-9]) * 1.05
    bar_w = plot_w / bins

    def y(share: float) -> float:
        return top + (1 - share / top_share) * plot_h

    body = [
        f'<rect class="plot" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#ccc"/>'
    ]
    for k in range(3):
        share = top_share * k / 2
        body.append(
            f'<text class="tick" x="{left - 4}" y="{_number(y(share) + 4)}" text-anchor="end" '
            f'font-size="10">{share:.0%}</text>'
        )
    for i in range(bins):
        x0 = left + i * bar_w
        tip = escape(
            f"[{_tick(edges[i])}, {_tick(edges[i + 1])}): window {win[i]:.1%}, "
            f"reference {ref[i]:.1%}"
        )
        body.append(
            f'<rect class="bar window" x="{_number(x0 + 0.5)}" y="{_number(y(win[i]))}" '
            f'width="{_number(bar_w - 1)}" height="{_number(top + plot_h - y(win[i]))}" '
            f'fill="{COLOURS[0]}" fill-opacity="0.55"><title>{tip}</title></rect>'
        )
    outline = [f"{_number(left)},{_number(y(0))}"]
    for i in range(bins):
        x0, x1 = left + i * bar_w, left + (i + 1) * bar_w
        outline += [f"{_number(x0)},{_number(y(ref[i]))}", f"{_number(x1)},{_number(y(ref[i]))}"]
    outline.append(f"{_number(left + plot_w)},{_number(y(0))}")
    body.append(
        f'<polyline class="reference" points="{" ".join(outline)}" fill="none" '
        f'stroke="{REFERENCE_COLOUR}" stroke-width="1.6"/>'
    )
    for value, anchor, at in ((edges[0], "start", left), (edges[-1], "end", left + plot_w)):
        body.append(
            f'<text class="tick" x="{at}" y="{height - bottom + 14}" text-anchor="{anchor}" '
            f'font-size="10">{escape(_tick(value))}</text>'
        )
    body.append(_legend(height, left))
    return _svg(width, height, 2 * bins, title, body, "histogram")


def category_bars(
    categories: Sequence[str],
    window: Sequence[int],
    reference: Sequence[int],
    *,
    title: str,
    width: int = 520,
) -> Markup:
    """A categorical feature's shares per category, window and reference side by side, one
    row per category (names can be long: they get a row of their own)."""
    row_h, left, label_w = 30, 8, 150
    height = 24 + row_h * len(categories) + 20
    n_win, n_ref = max(sum(window), 1), max(sum(reference), 1)
    top_share = max([*(c / n_win for c in window), *(c / n_ref for c in reference), 1e-9])
    bar_span = width - left - label_w - 50
    body = []
    for i, name in enumerate(categories):
        y0 = 8 + i * row_h
        label = name if len(name) <= 24 else name[:23] + "…"
        body.append(
            f'<text x="{left}" y="{y0 + 16}" font-size="11"><title>{escape(name)}</title>'
            f"{escape(label)}</text>"
        )
        for k, (count, total, colour, css) in enumerate(
            (
                (window[i], n_win, COLOURS[0], "window"),
                (reference[i], n_ref, REFERENCE_COLOUR, "reference"),
            )
        ):
            share = count / total
            w = bar_span * share / top_share
            yb = y0 + 2 + k * 12
            body.append(
                f'<rect class="bar {css}" x="{left + label_w}" y="{yb}" width="{_number(w)}" '
                f'height="11" fill="{colour}"><title>{escape(f"{css} {share:.1%}")}</title></rect>'
                f'<text x="{_number(left + label_w + w + 4)}" y="{yb + 10}" font-size="10">'
                f"{share:.1%}</text>"
            )
    body.append(_legend(height, left))
    return _svg(width, height, 2 * len(categories), title, body, "categories")


def delay_bars(
    upper_edges: Sequence[float], counts: Sequence[int], *, title: str, width: int = 520
) -> Markup:
    """The label delay histogram: one bar per bucket (upper edge in seconds; the last +Inf)."""
    left, top, bottom, height = 46, 8, 40, 150
    plot_w, plot_h = width - left - 8, height - top - bottom
    total = max(sum(counts), 1)
    top_share = max([c / total for c in counts] + [1e-9])
    bar_w = plot_w / max(len(counts), 1)
    body = []
    for i, (edge, count) in enumerate(zip(upper_edges, counts, strict=True)):
        share = count / total
        h = plot_h * share / top_share
        x0 = left + i * bar_w
        label = "+Inf" if math.isinf(edge) else _duration(edge)
        body.append(
            f'<rect class="bar" x="{_number(x0 + 1)}" y="{_number(top + plot_h - h)}" '
            f'width="{_number(bar_w - 2)}" height="{_number(h)}" fill="{COLOURS[2]}">'
            f"<title>{escape(f'≤ {label}: {count} labels ({share:.1%})')}</title></rect>"
            f'<text x="{_number(x0 + bar_w / 2)}" y="{height - bottom + 14}" font-size="9" '
            f'text-anchor="middle">≤{escape(label)}</text>'
        )
    return _svg(width, height, len(counts), title, body, "delays")


def _duration(seconds: float) -> str:
    """Seconds as the shortest of s, m, h, d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _legend(height: int, left: int) -> str:
    return (
        f'<rect x="{left}" y="{height - 12}" width="10" height="10" fill="{COLOURS[0]}" '
        f'fill-opacity="0.55"/><text x="{left + 13}" y="{height - 3}" font-size="10">window'
        f'</text><rect x="{left + 70}" y="{height - 12}" width="10" height="10" fill="none" '
        f'stroke="{REFERENCE_COLOUR}" stroke-width="1.6"/><text x="{left + 83}" '
        f'y="{height - 3}" font-size="10">reference</text>'
    )
