"""The worst case at the default limits: series, bytes and time per scrape, and memory.

    .venv/bin/python -m bench.worst_case [--models N] [--reference-rows R] [--numeric-only]

Builds in process, through the store's own API (no HTTP: the figures are the state's, not a
transport's), the largest state the default settings (``load_settings()``) let clients build,
then computes every window's drift and renders ``/metrics`` as the server does:

* ``limits.max_models`` models (or ``--models N`` of them, extrapolated linearly to the limit:
  every model is built alike), each multiclass with ``limits.max_classes`` classes and
  ``limits.max_versions_per_model`` versions with a split comparison (champion ``v1``, the
  others its challengers);
* ``limits.max_features`` features, half numeric and half categorical with
  ``drift.max_categories`` categories each (``--numeric-only``: all numeric, which exports one
  more series per feature and window);
* per version at least ``3 x drift.sample_size`` predictions in time order, spread over the
  longest window's buckets (the drift samples then hold their most, ``3 x sample_size``
  rows), of which enough are labelled, a minute later, that every (actual, predicted) pair of
  classes is counted and the join is left (nearly) full: ``join.max_pending_predictions`` per
  model, the last batches evicting a few of the oldest (``model_predictions_expired_total``);
  and ``join.max_pending_labels`` early labels per model;
* references: the first ``drift.reference_size`` predictions of each version (the default), or
  with ``--reference-rows R`` an uploaded holdout reference of R rows per version (predictions
  and labels included, so the baseline gauges are exported; at most
  ``drift.reference_max_values``, within ``limits.max_reference_bytes`` as JSON of small
  integers).

Prints what was built, the series per scrape (samples of ``registry.collect()`` and lines of
the rendered page), the page's size plain and gzip (level 1, as the server sends it), the
process' VmRSS and VmHWM, the render time cold (every model encoded) and warm (nothing
changed), and the largest families; with ``--models`` below the limit, each figure measured
and its linear extrapolation to ``limits.max_models``. Other limits are measured by setting
them as usual, e.g. ``MODEL_EXPORTER_LIMITS__MAX_CLASSES=20``. With ``--snapshot``, also the
size of a state snapshot of it (``state.path`` in a temporary folder), the time to write it,
the peak RSS meanwhile, the time of the ``/metrics`` renders made every 50 ms from another
thread while it is written (against the same render alone), and the time and peak of its
restore into a fresh app.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI

from exporter.app import create_app
from exporter.comparison import parse_declaration
from exporter.config import Settings, load_settings
from exporter.reference import build_reference

BATCH = 1000
#: Families whose sums show what was built (and that nothing was evicted).
TOTALS = (
    "model_pending_predictions",
    "model_pending_labels",
    "model_predictions_expired",
    "model_labels_expired",
    "model_drift_window_sample_predictions",
)


@dataclass(slots=True)
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float | None = None
    label: Any = None


@dataclass(slots=True)
class Label:
    id: str
    label: Any
    timestamp: float | None = None


@dataclass(frozen=True)
class Shape:
    """What each model holds."""

    versions: int
    classes: int
    numeric: int
    categorical: int
    categories: int
    events: int  # predictions per version
    labels: int  # labels per version
    early_labels: int  # per model
    reference_rows: int  # 0: first events

    @classmethod
    def at_limits(cls, settings: Settings, *, numeric_only: bool, reference_rows: int) -> Shape:
        limits, join, drift = settings.limits, settings.join, settings.drift
        versions = limits.max_versions_per_model
        events = 3 * drift.sample_size
        pending = join.max_pending_predictions // versions
        return cls(
            versions=versions,
            classes=limits.max_classes,
            numeric=limits.max_features if numeric_only else limits.max_features // 2,
            categorical=0 if numeric_only else limits.max_features - limits.max_features // 2,
            categories=drift.max_categories,
            events=max(events, pending + limits.max_classes**2),
            labels=max(events, pending + limits.max_classes**2) - pending,
            early_labels=join.max_pending_labels,
            reference_rows=min(reference_rows, drift.reference_max_values),
        )

    @property
    def names(self) -> list[str]:
        return [f"n{j}" for j in range(self.numeric)] + [f"c{j}" for j in range(self.categorical)]


def vm(field: str) -> int:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def rows(shape: Shape, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """``n`` feature dicts: normal numbers, and categories ``k0``... of each categorical."""
    numeric = rng.normal(size=(n, shape.numeric)).round(6).tolist()
    cats = rng.integers(0, shape.categories, size=(n, shape.categorical))
    words = np.array([f"k{i}" for i in range(shape.categories)], dtype=object)
    categorical = words[cats].tolist()
    names = shape.names
    return [dict(zip(names, a + b, strict=True)) for a, b in zip(numeric, categorical, strict=True)]


def outcome(j: int, classes: int) -> tuple[int, int]:
    """Prediction and label of the j-th labelled event: every pair of classes in ``classes**2``."""
    return j % classes, (j // classes) % classes


def fill_version(
    app: FastAPI, model: str, version: str, shape: Shape, now: float, seed: int
) -> None:
    """The version's predictions, spread over the window's buckets, and its labels a minute
    after them: every ``step``-th prediction is labelled, so every quality bucket counts."""
    store = app.state.store
    rng = np.random.default_rng(seed)
    span = max(app.state.ctx.settings.windows) * 0.97
    step = shape.events // shape.labels
    for start in range(0, shape.events, BATCH):
        n = min(BATCH, shape.events - start)
        times = (now - span * (1 - (np.arange(start, start + n) + 0.5) / shape.events)).tolist()
        features = rows(shape, rng, n)
        events, labels = [], []
        for i in range(n):
            k = start + i
            labelled = k % step == 0 and k // step < shape.labels
            prediction, label = outcome(k // step if labelled else k, shape.classes)
            events.append(Event(f"{version}-{k}", features[i], prediction, times[i]))
            if labelled:
                labels.append(Label(f"{version}-{k}", label, min(times[i] + 60, now)))
        # One call per batch, in time order: a drift bucket thinned to its share and then sent
        # older events falls short of its share, which shrinks the whole window's sample.
        store.add_predictions(model, version, events)
        if labels:
            store.add_labels(model, labels)


def upload_reference(
    app: FastAPI, model: str, version: str, shape: Shape, seed: int, clock: Callable[[], float]
) -> None:
    """A holdout reference of ``shape.reference_rows`` rows, as an upload would build it."""
    settings: Settings = app.state.ctx.settings
    rng = np.random.default_rng(seed)
    n = shape.reference_rows
    columns: dict[str, list[Any]] = {
        name: rng.integers(0, 10, n).tolist() for name in shape.names[: shape.numeric]
    }
    words = np.array([f"k{i}" for i in range(shape.categories)], dtype=object)
    for name in shape.names[shape.numeric :]:
        columns[name] = words[rng.integers(0, shape.categories, n)].tolist()
    reference = build_reference(
        columns,
        settings=settings.drift,
        source="upload",
        created=clock(),
        predictions=rng.integers(0, shape.classes, n).tolist(),
        labels=rng.integers(0, shape.classes, n).tolist(),
    )
    app.state.store.set_reference(model, version, reference)


def build(app: FastAPI, models: int, shape: Shape) -> list[float]:
    """Fill ``models`` models; returns the seconds each took."""
    store = app.state.store
    versions = [f"v{i + 1}" for i in range(shape.versions)]
    seconds = []
    for m in range(models):
        started = time.perf_counter()
        model = f"model{m}"
        if len(versions) > 1:
            declaration = {"champion": versions[0], "challengers": versions[1:], "mode": "split"}
            store.set_comparison(model, parse_declaration(declaration))
        for v, version in enumerate(versions):
            seed = m * 100 + v
            if shape.reference_rows:
                upload_reference(app, model, version, shape, seed, time.time)
            fill_version(app, model, version, shape, time.time(), seed)
        for start in range(0, shape.early_labels, BATCH):
            n = min(BATCH, shape.early_labels - start)
            store.add_labels(model, [Label(f"early-{start + i}", 0) for i in range(n)])
        seconds.append(time.perf_counter() - started)
        print(f"  {model}: {seconds[-1]:.1f} s, VmRSS {vm('VmRSS') / 2**30:.2f} GiB", flush=True)
    return seconds


@dataclass(frozen=True)
class Page:
    series: int  # samples of registry.collect()
    model_series: int  # of them, those with a model label
    families: Counter[str]  # series per family (model-labelled samples only)
    labels: dict[str, tuple[str, ...]]
    totals: dict[str, float]  # sums of the families in TOTALS
    lines: int  # sample lines of the rendered text page
    plain: int  # bytes
    model_bytes: int  # bytes of the lines with a model label
    gzipped: int
    cold: float  # render seconds, every model encoded
    warm: float  # render seconds, nothing changed (best of 3)
    gzip_seconds: float
    collect_seconds: float


def scrape(app: FastAPI) -> Page:
    registry, exposition = app.state.registry, app.state.ctx.exposition
    started = time.perf_counter()
    families: Counter[str] = Counter()
    labels: dict[str, tuple[str, ...]] = {}
    totals = dict.fromkeys(TOTALS, 0.0)
    series = 0
    for family in registry.collect():
        for sample in family.samples:
            series += 1
            if family.name in totals:
                totals[family.name] += sample.value
            if "model" in sample.labels:
                name = family.name + ("_total" if family.type == "counter" else "")
                families[name] += 1
                labels.setdefault(name, tuple(sample.labels))
    collect_seconds = time.perf_counter() - started
    started = time.perf_counter()
    body, _ = exposition.render()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        exposition.render()
        warm.append(time.perf_counter() - started)
    started = time.perf_counter()
    gzipped = len(gzip.compress(body, compresslevel=1))
    gzip_seconds = time.perf_counter() - started
    lines = [line for line in body.split(b"\n") if line and not line.startswith(b"#")]
    model_bytes = sum(len(line) + 1 for line in lines if b'model="' in line)
    return Page(
        series=series,
        model_series=sum(families.values()),
        families=families,
        labels=labels,
        totals=totals,
        lines=len(lines),
        plain=len(body),
        model_bytes=model_bytes,
        gzipped=gzipped,
        cold=cold,
        warm=min(warm),
        gzip_seconds=gzip_seconds,
        collect_seconds=collect_seconds,
    )


def row(name: str, measured: float, scale: float, fmt: str, fixed: float = 0.0) -> str:
    """A table line: the measured figure and, when the build was partial, its extrapolation
    (``fixed``, the part that does not grow with the models, plus the rest times ``scale``)."""
    shown = format(measured, fmt)
    if scale == 1:
        return f"{name:<44} {shown:>16}"
    extrapolated = fixed + (measured - fixed) * scale
    return f"{name:<44} {shown:>16} {format(extrapolated, fmt):>16}"


def time_snapshot(app: FastAPI, settings: Settings) -> tuple[int, float, float, int, int]:
    """Snapshot the state, then restore it into a fresh app: (bytes, seconds, seconds, the
    peak RSS while the snapshot was taken, in bytes: VmHWM reset just before it, and how far
    the restore took the RSS above what it was before it)."""
    keeper = app.state.state_keeper
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    renders: list[float] = []
    done = threading.Event()
    scraper = threading.Thread(target=render_until, args=(app, done, renders))
    started = time.perf_counter()
    scraper.start()  # a scrape every 50 ms while the snapshot is written, as a busy Prometheus
    assert keeper.save(clean=True), "the snapshot failed: see the log"
    saved = time.perf_counter() - started
    done.set()
    scraper.join()
    peak = vm("VmHWM")
    alone = []
    for _ in range(20):
        began = time.perf_counter()
        app.state.ctx.exposition.render()
        alone.append(time.perf_counter() - began)
    print(
        f"/metrics render (warm) while the snapshot was written: p50 "
        f"{np.percentile(renders, 50) * 1e3:.0f} ms, p99 {np.percentile(renders, 99) * 1e3:.0f}"
        f" ms, max {max(renders) * 1e3:.0f} ms ({len(renders)} renders); alone: p50 "
        f"{np.percentile(alone, 50) * 1e3:.0f} ms, max {max(alone) * 1e3:.0f} ms"
    )
    size = keeper.path.stat().st_size
    gc.collect()
    before = vm("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")
    started = time.perf_counter()
    again = create_app(settings, drift_worker=False)  # restores before it returns
    restored = time.perf_counter() - started
    assert again.state.store.models(), "nothing was restored"
    return size, saved, restored, peak, vm("VmHWM") - before


def render_until(app: FastAPI, done: threading.Event, seconds: list[float]) -> None:
    """Render /metrics every 50 ms until ``done``, timing each render."""
    exposition = app.state.ctx.exposition
    while not done.wait(0.05):
        began = time.perf_counter()
        exposition.render()
        seconds.append(time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, help="models to build (default: limits.max_models)")
    parser.add_argument("--reference-rows", type=int, default=0, help="uploaded reference rows")
    parser.add_argument("--numeric-only", action="store_true")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="also time a state snapshot (state.path in a temporary folder) and its restore",
    )
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory(prefix="worst-case-state-")
    state = {"state": {"path": folder.name, "interval": 3600}} if args.snapshot else {}
    settings = load_settings(None, **state)
    target = settings.limits.max_models
    models = min(args.models or target, target)
    shape = Shape.at_limits(
        settings, numeric_only=args.numeric_only, reference_rows=args.reference_rows
    )
    rows_up = shape.reference_rows
    reference = f"{rows_up:,} uploaded rows" if rows_up else "first events"
    app = create_app(settings, drift_worker=False)
    gc.collect()
    base_rss = vm("VmRSS")
    print(
        f"building {models} of {target} models x {shape.versions} versions, "
        f"{shape.numeric} numeric + {shape.categorical} categorical features "
        f"({shape.categories} categories), {shape.classes} classes, windows "
        f"{settings.window_labels}; per version {shape.events:,} predictions, "
        f"{shape.labels:,} labels; per model {shape.early_labels:,} early labels; "
        f"reference: {reference}",
        flush=True,
    )
    seconds = build(app, models, shape)
    started = time.perf_counter()
    stats = app.state.drift_worker.run_once(force=True)
    drift_seconds = time.perf_counter() - started
    gc.collect()
    rss = vm("VmRSS") - base_rss
    page = scrape(app)
    hwm = vm("VmHWM")  # building and scraping (before the snapshot resets it)
    snapshot = time_snapshot(app, settings) if args.snapshot else None
    scale = target / models
    fixed = page.series - page.model_series
    print(
        f"\nbuilt in {sum(seconds):.0f} s ({np.mean(seconds):.1f} s a model); drift: "
        f"{stats.computed} windows in {drift_seconds:.1f} s; "
        + ", ".join(f"{name} {value:,.0f}" for name, value in page.totals.items())
    )
    head = f"{'':<44} {'measured':>16}" + ("" if scale == 1 else f" {f'x{scale:g}':>16}")
    print(f"\n{head}\n{'-' * len(head)}")
    print(row("series per scrape (registry.collect samples)", page.series, scale, ",.0f", fixed))
    print(row("  of them with a model label", page.model_series, scale, ",.0f"))
    print(row("sample lines of /metrics", page.lines, scale, ",.0f", fixed))
    rest = page.plain - page.model_bytes
    print(row("/metrics bytes, plain", page.plain, scale, ",.0f", rest))
    print(row("/metrics bytes, gzip level 1", page.gzipped, scale, ",.0f"))
    print(row("VmRSS, GiB", (base_rss + rss) / 2**30, scale, ".2f", base_rss / 2**30))
    print(f"{'  of the empty app, GiB':<44} {base_rss / 2**30:>16.2f}")
    print(f"{'  VmHWM (peak) of the process, GiB':<44} {hwm / 2**30:>16.2f}")
    print(row("render, cold (all models encoded), ms", page.cold * 1000, scale, ".0f"))
    print(row("render, warm (nothing changed), ms", page.warm * 1000, scale, ".0f"))
    print(row("gzip level 1 of the page, ms", page.gzip_seconds * 1000, scale, ".0f"))
    print(row("registry.collect(), ms", page.collect_seconds * 1000, scale, ".0f"))
    print(row("drift computation, all windows, s", drift_seconds, scale, ".1f"))
    if snapshot is not None:
        size, saved, restored, peak, restore_peak = snapshot
        print(row("state snapshot, MiB", size / 2**20, scale, ".1f"))
        print(row("  written in (copy, encode, write), s", saved, scale, ".2f"))
        print(row("  peak VmRSS while writing, GiB", peak / 2**30, scale, ".2f", base_rss / 2**30))
        print(row("  restored in (read, decode, rebuild), s", restored, scale, ".2f"))
        print(row("  peak VmRSS the restore added, GiB", restore_peak / 2**30, scale, ".2f"))
    print("\nlargest families (series with a model label)")
    for name, count in page.families.most_common(12):
        share = count / page.model_series
        labels = ",".join(page.labels[name])
        print(f"  {name:<44} {count * scale:>10,.0f}  {share:6.1%}  {{{labels}}}")
    print(
        "\nextrapolated linearly: every model is built alike, so the models' series, bytes and "
        "times scale with them; VmRSS is the empty app's plus its measured growth times the "
        "ratio; VmHWM is not extrapolated"
        if scale != 1
        else ""
    )


if __name__ == "__main__":
    main()
