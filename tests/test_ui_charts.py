"""The status pages' SVG charts (exporter.ui.charts), parsed as XML: well-formed, the geometry
says what the numbers say (shares as heights or widths on one scale, time left to right, value
bottom to top, the threshold where its value lies), ``data-points`` counts what is drawn, and
every text a client chose comes back as exactly that text."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from exporter.ui.charts import (
    Line,
    category_bars,
    delay_bars,
    line_chart,
    overlay_histogram,
    sparkline,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"
AMPERSAND = "a & b \"quoted\" 'single' </title>"
#: Every coordinate is written with one decimal: each is off by at most 0.05 px.
ROUNDING = 0.05
#: Two rounded coordinates apart (float noise aside).
TWICE = 2 * ROUNDING + 1e-6
T0 = 1_800_000_000.0

# The plot areas of the default sizes (left, top, width, height), as the charts lay them out.
LINE_PLOT = (46.0, 8.0, 466.0, 126.0)
HIST_PLOT = (46.0, 8.0, 466.0, 146.0)
DELAY_BASELINE = 110.0  # top 8 + plot height 102


def parse(chart: Markup) -> ET.Element:
    root = ET.fromstring(str(chart))
    assert root.tag == f"{SVG}svg"
    return root


def points(root: ET.Element) -> int:
    return int(root.attrib["data-points"])


def by_class(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if css in e.attrib.get("class", "").split()]


def num(element: ET.Element, name: str) -> float:
    return float(element.attrib[name])


def polyline(element: ET.Element) -> list[tuple[float, float]]:
    pairs = (p.split(",") for p in element.attrib["points"].split())
    return [(float(a), float(b)) for a, b in pairs]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter() if e.tag in (f"{SVG}text", f"{SVG}title")]


def assert_no_script(chart: Markup, root: ET.Element) -> None:
    assert "<script" not in str(chart)
    assert not [e for e in root.iter() if e.tag.lower().endswith("script")]


def assert_proportional(lengths: Sequence[float], shares: Sequence[float]) -> None:
    """``lengths`` (rounded to 0.1 px) are ``k * shares`` for one ``k > 0``: each is checked
    against the longest, which bounds the rounding error by twice ``ROUNDING``."""
    assert len(lengths) == len(shares)
    top = max(range(len(shares)), key=lambda i: shares[i])
    if shares[top] == 0:
        assert all(abs(length) <= ROUNDING for length in lengths)
        return
    assert lengths[top] > 0
    for length, share in zip(lengths, shares, strict=True):
        assert abs(length - lengths[top] * share / shares[top]) <= TWICE


def assert_affine(coords: Sequence[float], data: Sequence[float], *, increasing: bool) -> None:
    """``coords`` (rounded) lie on one line through the coordinates of the smallest and the
    largest datum, increasing or decreasing with it."""
    lo = min(range(len(data)), key=lambda i: data[i])
    hi = max(range(len(data)), key=lambda i: data[i])
    if data[hi] == data[lo]:
        assert max(coords) - min(coords) <= TWICE
        return
    assert (coords[hi] > coords[lo]) if increasing else (coords[hi] < coords[lo])
    for c, d in zip(coords, data, strict=True):
        r = (d - data[lo]) / (data[hi] - data[lo])
        assert abs(c - (coords[lo] + (coords[hi] - coords[lo]) * r)) <= TWICE


def inside(value: float, start: float, size: float) -> bool:
    return start - ROUNDING <= value <= start + size + ROUNDING


# line_chart


def test_line_chart_geometry_of_two_series_and_the_threshold() -> None:
    times = [T0, T0 + 60, T0 + 120, T0 + 180]
    chart = line_chart(
        [Line("a", times, [0.0, 1.0, 2.0, float("nan")]), Line("b", times[:2], [3.0, 4.0])],
        title="quality",
        threshold=1.5,
        threshold_label="limit",
    )
    root = parse(chart)
    assert root.attrib["class"] == "chart line"
    assert points(root) == 5
    series = by_class(root, "polyline", "series")
    assert len(series) == 2
    a, b = polyline(series[0]), polyline(series[1])
    assert len(a) == 3 and len(b) == 2
    # Time: the finite points span the plot's width, left to right.
    left, top, width, height = LINE_PLOT
    assert [x for x, _ in a] == [left, left + width / 2, left + width]
    assert [x for x, _ in b] == [left, left + width / 2]
    # Value: one decreasing scale for both series, inside the plot.
    ys, values = [y for _, y in a + b], [0.0, 1.0, 2.0, 3.0, 4.0]
    assert_affine(ys, values, increasing=False)
    assert all(inside(y, top, height) for y in ys)
    # The dashed threshold across the plot, at 1.5 on that scale: halfway between 1 and 2.
    (line,) = by_class(root, "line", "threshold")
    assert num(line, "y1") == num(line, "y2")
    assert (num(line, "x1"), num(line, "x2")) == (left, left + width)
    assert abs(num(line, "y1") - (a[1][1] + a[2][1]) / 2) <= TWICE
    assert "limit" in texts(root)
    assert "quality" in texts(root)


def test_line_chart_threshold_outside_the_values_stays_in_view() -> None:
    root = parse(line_chart([Line("a", [T0, T0 + 60], [0.2, 0.4])], title="t", threshold=0.9))
    (series,) = by_class(root, "polyline", "series")
    (p0, p1) = polyline(series)
    (line,) = by_class(root, "line", "threshold")
    _, top, _, height = LINE_PLOT
    ty = num(line, "y1")
    assert inside(ty, top, height)
    # 0.9 is 3.5 times as far above 0.2 as 0.4 is.
    assert abs(ty - (p0[1] + (p1[1] - p0[1]) * 3.5)) <= ROUNDING * 8


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e6, 1e6, allow_subnormal=False), st.just(float("nan"))),
        min_size=2,
        max_size=30,
    ),
    st.lists(st.integers(1, 3600), min_size=30, max_size=30),
    st.floats(0, 1),
)
def test_line_chart_scales_random_values(
    values: list[float], gaps: list[int], where: float
) -> None:
    times = [T0 + sum(gaps[:i]) for i in range(len(values))]
    finite = [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    vs = [v for _, v in finite]
    threshold = min(vs) + where * (max(vs) - min(vs)) if vs else None
    root = parse(line_chart([Line("s", times, values)], title="t", threshold=threshold))
    assert points(root) == len(finite)
    # Each run of finite values is one line (a circle when alone): NaN leaves a gap.
    drawn = [e for e in root.iter() if e.get("class") == "series"]
    runs = [r for r in "".join("x" if math.isfinite(v) else " " for v in values).split() if r]
    assert [len(polyline(e)) if e.tag == f"{SVG}polyline" else 1 for e in drawn] == [
        len(r) for r in runs
    ]
    assert all((e.tag == f"{SVG}circle") == (len(r) == 1) for e, r in zip(drawn, runs, strict=True))
    if not finite:
        return
    xy = [
        pt
        for e in drawn
        for pt in (polyline(e) if e.tag == f"{SVG}polyline" else [(num(e, "cx"), num(e, "cy"))])
    ]
    assert len(xy) == len(finite)
    left, top, width, height = LINE_PLOT
    assert all(inside(x, left, width) and inside(y, top, height) for x, y in xy)
    if len(finite) > 1:
        assert_affine([x for x, _ in xy], [t for t, _ in finite], increasing=True)
        assert (xy[0][0], xy[-1][0]) == (left, left + width)
    assert_affine([y for _, y in xy], vs, increasing=False)
    (line,) = by_class(root, "line", "threshold")
    assert threshold is not None
    assert_affine([*(y for _, y in xy), num(line, "y1")], [*vs, threshold], increasing=False)


def value_at(ys: tuple[float, float], vs: tuple[float, float], v: float) -> float:
    return ys[0] + (ys[1] - ys[0]) * (v - vs[0]) / (vs[1] - vs[0])


@pytest.mark.parametrize("unit_range", [True, False])
def test_line_chart_unit_range_keeps_0_and_1_in_view(unit_range: bool) -> None:
    root = parse(
        line_chart([Line("a", [T0, T0 + 60], [0.2, 0.8])], title="t", unit_range=unit_range)
    )
    (series,) = by_class(root, "polyline", "series")
    (_, y0), (_, y1) = polyline(series)
    _, top, _, height = LINE_PLOT
    # The 0..1 levels, extrapolated from the two points (error at most 4/3 of the rounding's).
    zero, one = value_at((y0, y1), (0.2, 0.8), 0.0), value_at((y0, y1), (0.2, 0.8), 1.0)
    ticks = [
        float(e.text or "") for e in by_class(root, "text", "tick") if "UTC" not in (e.text or "")
    ]
    assert len(ticks) == 5
    if unit_range:
        assert inside(zero, top, height) and inside(one, top, height)
        assert min(ticks) <= 0 and max(ticks) >= 1
    else:
        assert zero > top + height and one < top
        assert min(ticks) > 0 and max(ticks) < 1


def test_line_chart_single_value_is_a_dot() -> None:
    root = parse(line_chart([Line("a", [T0, T0 + 60], [float("nan"), 0.5])], title="t"))
    assert points(root) == 1
    assert by_class(root, "polyline", "series") == []
    (dot,) = by_class(root, "circle", "series")
    left, top, width, height = LINE_PLOT
    assert inside(num(dot, "cx"), left, width) and inside(num(dot, "cy"), top, height)


@pytest.mark.parametrize(
    "lines",
    [[], [Line("a", [], [])], [Line("a", [T0, T0 + 1], [float("nan"), float("inf")])]],
    ids=["no-lines", "no-values", "no-finite-value"],
)
def test_line_chart_empty(lines: list[Line]) -> None:
    root = parse(line_chart(lines, title="t", threshold=0.9))
    assert points(root) == 0
    assert by_class(root, "polyline", "series") == by_class(root, "circle", "series") == []


@pytest.mark.parametrize("name", [HOSTILE, AMPERSAND])
def test_line_chart_escapes_names_title_and_label(name: str) -> None:
    chart = line_chart(
        [Line(name, [T0, T0 + 60], [0.1, 0.2]), Line(name, [T0], [0.3])],
        title=name,
        threshold=0.15,
        threshold_label=name,
    )
    root = parse(chart)
    assert_no_script(chart, root)
    assert root.find(f"{SVG}title") is not None
    assert root.findtext(f"{SVG}title") == name
    assert [
        e.findtext(f"{SVG}title") for e in root.iter() if "series" in e.attrib.get("class", "")
    ] == [name, name]
    # The threshold's label and the two legend entries.
    assert texts(root).count(name) == 1 + 1 + 2 + 2


# sparkline


def test_sparkline_single_value_is_a_circle() -> None:
    root = parse(sparkline([T0, T0 + 60], [float("nan"), 3.0], title="t"))
    assert root.attrib["class"] == "chart spark"
    assert points(root) == 1
    (dot,) = by_class(root, "circle", "series")
    assert by_class(root, "polyline", "series") == []
    assert 0 <= num(dot, "cx") <= 120 and 0 <= num(dot, "cy") <= 28


def test_sparkline_values_and_threshold_on_one_scale() -> None:
    root = parse(sparkline([T0, T0 + 10, T0 + 30], [1.0, 3.0, 2.0], title="t", threshold=2.5))
    assert points(root) == 3
    (series,) = by_class(root, "polyline", "series")
    xy = polyline(series)
    assert_affine([x for x, _ in xy], [0.0, 10.0, 30.0], increasing=True)
    assert (xy[0][0], xy[-1][0]) == (2.0, 118.0)
    (line,) = by_class(root, "line", "threshold")
    assert_affine([*(y for _, y in xy), num(line, "y1")], [1.0, 3.0, 2.0, 2.5], increasing=False)
    assert all(2 - ROUNDING <= y <= 26 + ROUNDING for _, y in xy)


def test_sparkline_empty_and_escaped_title() -> None:
    chart = sparkline([], [], title=HOSTILE, threshold=1.0)
    root = parse(chart)
    assert points(root) == 0
    assert by_class(root, "polyline", "series") == by_class(root, "circle", "series") == []
    assert root.findtext(f"{SVG}title") == HOSTILE
    assert_no_script(chart, root)


# overlay_histogram


def histogram_geometry(
    root: ET.Element,
) -> tuple[list[ET.Element], list[tuple[float, float]]]:
    bars = by_class(root, "rect", "window")
    (outline,) = by_class(root, "polyline", "reference")
    return bars, polyline(outline)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=20))
def test_overlay_histogram_heights_are_shares(counts: list[tuple[int, int]]) -> None:
    window, reference = [w for w, _ in counts], [r for _, r in counts]
    bins = len(counts)
    edges = [float(i) for i in range(bins + 1)]
    root = parse(overlay_histogram(edges, window, reference, title="t"))
    assert root.attrib["class"] == "chart histogram"
    assert points(root) == 2 * bins
    bars, outline = histogram_geometry(root)
    assert len(bars) == bins
    assert len(outline) == 2 * bins + 2
    left, top, width, height = HIST_PLOT
    baseline = top + height
    # The outline starts and ends on the baseline at the plot's edges, a step per bin.
    assert outline[0] == (left, baseline) and outline[-1] == (left + width, baseline)
    levels = [outline[1 + 2 * i][1] for i in range(bins)]
    assert [outline[2 + 2 * i][1] for i in range(bins)] == levels
    for i, bar in enumerate(bars):
        assert abs(num(bar, "x") - 0.5 - outline[1 + 2 * i][0]) <= TWICE
        assert abs(num(bar, "y") + num(bar, "height") - baseline) <= TWICE
        assert num(bar, "y") >= top - ROUNDING
    assert all(level >= top - ROUNDING for level in levels)
    # Window bars and reference levels: shares of their own totals, on one scale.
    win = [c / max(sum(window), 1) for c in window]
    ref = [c / max(sum(reference), 1) for c in reference]
    heights = [num(bar, "height") for bar in bars]
    # A level is one rounded coordinate from the exact baseline: rounding as a height's.
    assert_proportional([*heights, *(baseline - level for level in levels)], [*win, *ref])


def test_overlay_histogram_shares_of_unequal_totals() -> None:
    # The same shape from 10 and from 1000 counts: the same heights and levels.
    root = parse(overlay_histogram([0.0, 1.0, 2.0], [3, 7], [300, 700], title="t"))
    bars, outline = histogram_geometry(root)
    baseline = HIST_PLOT[1] + HIST_PLOT[3]
    heights = [num(b, "height") for b in bars]
    assert heights == [
        pytest.approx(baseline - outline[1][1], abs=0.1),
        pytest.approx(baseline - outline[3][1], abs=0.1),
    ]
    assert heights[1] / heights[0] == pytest.approx(7 / 3, rel=1e-3)
    tips = [b.findtext(f"{SVG}title") for b in bars]
    assert tips == [
        "[0, 1): window 30.0%, reference 30.0%",
        "[1, 2): window 70.0%, reference 70.0%",
    ]


@pytest.mark.parametrize("name", [HOSTILE, AMPERSAND])
def test_overlay_histogram_escapes_title(name: str) -> None:
    chart = overlay_histogram([0.0, 1.0], [1], [1], title=name)
    root = parse(chart)
    assert root.findtext(f"{SVG}title") == name
    assert_no_script(chart, root)


# category_bars


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=12))
def test_category_bars_widths_are_shares(counts: list[tuple[int, int]]) -> None:
    window, reference = [w for w, _ in counts], [r for _, r in counts]
    names = [f"c{i}" for i in range(len(counts))]
    root = parse(category_bars(names, window, reference, title="t"))
    assert root.attrib["class"] == "chart categories"
    assert points(root) == 2 * len(counts)
    win_bars, ref_bars = by_class(root, "rect", "window"), by_class(root, "rect", "reference")
    assert len(win_bars) == len(ref_bars) == len(counts)
    assert {num(b, "x") for b in win_bars + ref_bars} == {158.0}
    # Rows top to bottom, the window's bar above the reference's.
    ys = [num(b, "y") for pair in zip(win_bars, ref_bars, strict=True) for b in pair]
    assert ys == sorted(ys)
    win = [c / max(sum(window), 1) for c in window]
    ref = [c / max(sum(reference), 1) for c in reference]
    widths = [num(b, "width") for b in win_bars + ref_bars]
    assert_proportional(widths, [*win, *ref])
    assert max(widths) <= 312 + ROUNDING


@pytest.mark.parametrize("name", [HOSTILE, AMPERSAND, "x" * 40])
def test_category_bars_escape_names(name: str) -> None:
    chart = category_bars([name, "b"], [1, 3], [2, 2], title=name)
    root = parse(chart)
    assert_no_script(chart, root)
    assert root.findtext(f"{SVG}title") == name
    # The full name is the label's tooltip (a long name's label is cut with an ellipsis).
    labels = [e for e in root.iter(f"{SVG}text") if e.find(f"{SVG}title") is not None]
    assert [e.findtext(f"{SVG}title") for e in labels] == [name, "b"]
    label = "".join(labels[0].itertext())[len(name) :]
    assert label == (name if len(name) <= 24 else name[:23] + "…")


def test_category_bars_empty() -> None:
    root = parse(category_bars([], [], [], title="t"))
    assert points(root) == 0
    assert by_class(root, "rect", "bar") == []


# delay_bars


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=15))
def test_delay_bars_heights_are_counts(counts: list[int]) -> None:
    edges = [*(60.0 * 2**i for i in range(len(counts) - 1)), math.inf]
    root = parse(delay_bars(edges, counts, title="t"))
    assert root.attrib["class"] == "chart delays"
    assert points(root) == len(counts)
    bars = by_class(root, "rect", "bar")
    assert len(bars) == len(counts)
    for bar in bars:
        assert abs(num(bar, "y") + num(bar, "height") - DELAY_BASELINE) <= TWICE
    assert_proportional([num(b, "height") for b in bars], [float(c) for c in counts])
    xs = [num(b, "x") for b in bars]
    assert xs == sorted(xs)
    labels = [e.text for e in root.iter(f"{SVG}text")]
    assert len(labels) == len(counts)
    assert labels[-1] == "≤+Inf"


def test_delay_bars_labels_and_tooltips() -> None:
    root = parse(delay_bars([0.5, 60.0, 7200.0, 86400.0, math.inf], [1, 1, 0, 0, 2], title="t"))
    assert [e.text for e in root.iter(f"{SVG}text")] == ["≤0.5s", "≤1m", "≤2h", "≤1d", "≤+Inf"]
    bars = by_class(root, "rect", "bar")
    assert [num(b, "height") for b in bars] == [51.0, 51.0, 0.0, 0.0, 102.0]
    assert bars[-1].findtext(f"{SVG}title") == "≤ +Inf: 2 labels (50.0%)"


def test_delay_bars_empty_and_escaped_title() -> None:
    chart = delay_bars([], [], title=AMPERSAND)
    root = parse(chart)
    assert points(root) == 0
    assert by_class(root, "rect", "bar") == []
    assert root.findtext(f"{SVG}title") == AMPERSAND


@pytest.mark.parametrize("edges", [[], [0.0], [0.0, 1.0, 2.0]])
def test_overlay_histogram_without_bins_draws_nothing(edges: list[float]) -> None:
    svg = parse(overlay_histogram(edges, [], [], title="t"))
    assert svg.get("data-points") == "0" and svg.get("class") == "chart histogram"


def test_a_long_line_keeps_each_columns_extremes() -> None:
    """Beyond two points a pixel column, a line keeps each column's lowest and highest value:
    a one-minute dip in a day of points still shows."""
    n = 1_440
    times = [T0 + 60.0 * i for i in range(n)]
    values = [0.95] * n
    values[700] = 0.5  # one bad minute
    root = parse(line_chart([Line("accuracy", times, values)], title="t", unit_range=True))
    assert points(root) == n
    (element,) = by_class(root, "polyline", "series")
    xy = polyline(element)
    assert len(xy) <= 2 * LINE_PLOT[2] + 2 < n
    ys = sorted({y for _, y in xy})
    assert len(ys) == 2  # the dip and the level, both drawn
