"""``/metrics`` bytes: the registry, encoded by the client library, with each model's families
encoded once per change and reused until the model changes.

Why: encoding costs 15-27 us per series and runs in the interpreter that ingest needs too; with
10 models x 20 features a scrape encoded ~2,800 series, and under ingest its p99 rose to
80-160 ms. Most models do not change between two scrapes (and a model that receives no events
changes only when a bucket holding data leaves a window), so :class:`Exposition` keeps, per
model and per part (quality, traffic, comparison, baseline; drift), the encoded sample lines of
every family, keyed by what the part shows (:attr:`~exporter.snapshot.ModelSnapshot.key`; the
serials of the drift results; for comparisons and baselines, also the serial of the sequential
states). A scrape then asks
each model for a snapshot unless nothing changed since the last one
(:meth:`~exporter.model.ModelState.snapshot_if_changed`, which then copies nothing), re-encodes
only what changed, and joins the cached lines family by family under each family's header.

Correct by construction rather than by parsing: each family is encoded on its own by the
library's encoder, and its header (``# HELP``/``# TYPE``, known exactly from encoding the same
family without samples) is cut off as a prefix, so no line is ever split or re-read; escaping
stays the library's. The rest of the registry (the exporter's own families, process, GC, and
anything registered by an embedding application) is encoded as usual, with the model collector
silenced meanwhile. ``registry.collect()`` still sees everything.

The series budget (``limits.max_series``). Clients decide how many series the models export
(models, versions, classes, features, categories), so a page could grow past what Prometheus is
sized for. When the models' families would exceed the budget, the page is cut, visibly, by
whole (model, family) chunks: the families a shipped alert uses (``protected``) are always
sent; of the rest, the smallest chunks are kept first, so that a noisy model with many classes or
features loses its largest per-class or per-feature families before anything else of anyone
is dropped, and as many families as fit survive. The page then says what it left out
(``model_exporter_scrape_series``, ``_series_dropped``, ``_series_limit`` and the counter
``model_exporter_scrape_truncations_total``), and a warning is logged at most once a minute.
The exporter's own and process families (a few hundred series) are not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from exporter.collectors.drift import drift_key
from exporter.collectors.models import PARTS, Baselines, ModelCollector, Results, Sequential
from exporter.snapshot import ModelSnapshot

log = logging.getLogger("exporter.exposition")

EOF_MARK = b"# EOF\n"
Encoder = Callable[[Any], bytes]
#: Seconds between two warnings that the page was cut.
WARN_EVERY = 60.0


class _Collected:
    """A registry-like holder of ready families, for the encoders."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


@dataclass(slots=True)
class _Part:
    key: object
    samples: list[bytes]  # per family of the part, in order: its encoded sample lines
    series: list[int]  # per family: how many sample lines


@dataclass(frozen=True, slots=True)
class Cut:
    """What the series budget did to one page."""

    series: int  # model series sent
    dropped: int  # model series left out
    chunks_dropped: int  # (model, family) chunks left out


def protected_families(families: Iterable[Metric], names: Collection[str]) -> list[bool]:
    """For each family, whether one of its sample names is in ``names`` (the series a
    shipped alert reads)."""
    suffixes = ("", "_total", "_count", "_sum", "_bucket", "_created")
    return [any(f.name + s in names for s in suffixes) for f in families]


class Exposition:
    """Renders ``/metrics`` for a registry that holds ``models``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        models: ModelCollector,
        *,
        max_series: int | None = None,
        protected: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.models = models
        self.max_series = max_series
        self._protected_names = frozenset(protected)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, bool, str], _Part] = {}  # (model, openmetrics, part)
        self._headers: dict[tuple[bool, str], list[bytes]] = {}
        self._protected: dict[str, list[bool]] = {}  # part -> per family
        self._latest: dict[str, ModelSnapshot] = {}  # the last snapshot of each model
        self._truncations = 0
        self._warned_at: float | None = None
        self._last: Cut | None = None

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition the ``Accept`` header asks for (text 0.0.4 or OpenMetrics), and its
        content type."""
        encoder, content_type = choose_encoder(accept)
        openmetrics = content_type.startswith("application/openmetrics-text")
        models, cut = self._models(encoder, openmetrics)
        self._record(cut)
        with self.models.silenced():
            rest = encoder(self.registry)
        if openmetrics:
            return models + rest.removesuffix(EOF_MARK) + EOF_MARK, content_type
        return models + rest, content_type

    def _models(self, encoder: Encoder, openmetrics: bool) -> tuple[bytes, Cut]:
        failed: list[str] = []
        with self._lock:
            latest = dict(self._latest)
        snapshots = self.models.snapshots(failed, latest)
        with self._lock:
            self._latest = {s.name: s for s in snapshots}
        results = self.models.results(snapshots)
        states = self.models.sequential_states(snapshots)
        tested = self.models.baseline_states(snapshots)
        encoded: dict[str, list[_Part]] = {}  # part -> per model: its families' lines
        for name in PARTS:
            errors = list(failed)
            per_model: list[_Part] = []
            with self.models.timings.timed(name, errors):
                for snapshot in snapshots:
                    key = _key(name, snapshot, results, states, tested)
                    try:
                        per_model.append(
                            self._part(
                                encoder, openmetrics, name, snapshot, key, (results, states, tested)
                            )
                        )
                    except Exception:
                        errors.append(f"model {snapshot.name}: {name} failed")
                        self._forget(snapshot.name, openmetrics, name)
            encoded[name] = per_model
        self._prune({s.name for s in snapshots}, openmetrics)
        dropped, cut = self._cut(encoded)
        chunks: list[bytes] = []
        for name in PARTS:
            for i, header in enumerate(self._header(encoder, openmetrics, name)):
                chunks.append(header)
                chunks.extend(
                    part.samples[i]
                    for m, part in enumerate(encoded[name])
                    if (name, m, i) not in dropped
                )
        return b"".join(chunks), cut

    def _cut(self, encoded: dict[str, list[_Part]]) -> tuple[set[tuple[str, int, int]], Cut]:
        """Which (part, model, family) chunks to leave out to fit the budget."""
        total = sum(sum(p.series) for parts in encoded.values() for p in parts)
        if self.max_series is None or total <= self.max_series:
            return set(), Cut(total, 0, 0)
        room = self.max_series
        optional: list[tuple[int, int, str, int, int]] = []  # (series, order, part, m, i)
        order = 0
        for name in PARTS:
            protected = self._protected_of(name)
            for m, part in enumerate(encoded[name]):
                for i, series in enumerate(part.series):
                    order += 1
                    if protected[i]:
                        room -= series
                    elif series:
                        optional.append((series, order, name, m, i))
        optional.sort()
        kept = 0
        for series, *_ in optional:
            if series > room:
                break
            room -= series
            kept += 1
        dropped = {(name, m, i) for _, _, name, m, i in optional[kept:]}
        lost = sum(series for series, *_ in optional[kept:])
        return dropped, Cut(total - lost, lost, len(dropped))

    def _record(self, cut: Cut) -> None:
        """Keep what the budget did to this page (for :class:`BudgetCollector`), and warn."""
        now = self._clock()
        with self._lock:
            self._last = cut
            warn = False
            if cut.dropped:
                self._truncations += 1
                warn = self._warned_at is None or now - self._warned_at >= WARN_EVERY
                if warn:
                    self._warned_at = now
        if warn:
            log.warning(
                "/metrics cut to limits.max_series=%d: %d series of %d (model, family) chunks "
                "left out, the largest first; the families shipped alerts use are all sent. "
                "Raise the limit, or lower limits.max_classes, max_features or "
                "drift.max_categories",
                self.max_series,
                cut.dropped,
                cut.chunks_dropped,
            )

    def budget(self) -> tuple[Cut | None, int]:
        """The last page's cut (None before the first render) and the scrapes cut so far."""
        with self._lock:
            return self._last, self._truncations

    def _part(
        self,
        encoder: Encoder,
        openmetrics: bool,
        name: str,
        snapshot: ModelSnapshot,
        key: object,
        looked: tuple[Results, Sequential, Baselines],
    ) -> _Part:
        cache_key = (snapshot.name, openmetrics, name)
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is not None and cached.key == key:
            return cached
        families = self.models.part(name, [snapshot], *looked)
        headers = self._header(encoder, openmetrics, name)
        samples = [
            _samples(encoder, openmetrics, family, header)
            for family, header in zip(families, headers, strict=True)
        ]
        part = _Part(key, samples, [s.count(b"\n") for s in samples])
        with self._lock:
            self._cache[cache_key] = part
        return part

    def _header(self, encoder: Encoder, openmetrics: bool, name: str) -> list[bytes]:
        """The header lines of each family of a part (they never change)."""
        with self._lock:
            headers = self._headers.get((openmetrics, name))
        if headers is None:
            empty = self.models.part(name, [], {}, {}, {})
            headers = [_encode(encoder, openmetrics, family) for family in empty]
            with self._lock:
                self._headers[(openmetrics, name)] = headers
        return headers

    def _protected_of(self, name: str) -> list[bool]:
        """Which families of a part a shipped alert reads (they never change)."""
        with self._lock:
            protected = self._protected.get(name)
        if protected is None:
            empty = self.models.part(name, [], {}, {}, {})
            protected = protected_families(empty, self._protected_names)
            with self._lock:
                self._protected[name] = protected
        return protected

    def _forget(self, model: str, openmetrics: bool, name: str) -> None:
        with self._lock:
            self._cache.pop((model, openmetrics, name), None)

    def _prune(self, models: set[str], openmetrics: bool) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[1] == openmetrics and k[0] not in models]:
                del self._cache[key]


class BudgetCollector(Collector):
    """What the series budget did to the last page (see the module's docstring)."""

    def __init__(self, exposition: Exposition) -> None:
        self.exposition = exposition

    def describe(self) -> Iterable[Metric]:
        return list(self._families(None, 0))

    def collect(self) -> Iterable[Metric]:
        if self.exposition.max_series is None:
            return []
        return list(self._families(*self.exposition.budget()))

    def _families(self, cut: Cut | None, truncations: int) -> Iterable[Metric]:
        limit = self.exposition.max_series or 0
        yield GaugeMetricFamily(
            "model_exporter_scrape_series_limit",
            "The series budget of a scrape of the models' families (limits.max_series).",
            value=limit,
        )
        yield GaugeMetricFamily(
            "model_exporter_scrape_series",
            "Series of the models' families in the last page of /metrics.",
            value=0 if cut is None else cut.series,
        )
        yield GaugeMetricFamily(
            "model_exporter_scrape_series_dropped",
            "Series of the models' families left out of the last page by limits.max_series.",
            value=0 if cut is None else cut.dropped,
        )
        yield CounterMetricFamily(
            "model_exporter_scrape_truncations",
            "Pages of /metrics cut short by limits.max_series.",
            value=truncations,
        )


def _key(
    name: str, snapshot: ModelSnapshot, results: Results, states: Sequential, tested: Baselines
) -> object:
    """What a model's part shows: its snapshot's key, and for drift the serials of its
    results, for comparisons the serial of its sequential states, for baselines that of their
    tests."""
    if name == "drift":
        return drift_key(snapshot, results[snapshot.name])
    if name == "comparison":
        return (snapshot.key, states[snapshot.name].serial)
    if name == "baseline":
        return (snapshot.key, tested[snapshot.name].serial)
    return snapshot.key


def _encode(encoder: Encoder, openmetrics: bool, family: Metric) -> bytes:
    body = encoder(_Collected([family]))
    return body.removesuffix(EOF_MARK) if openmetrics else body


def _samples(encoder: Encoder, openmetrics: bool, family: Metric, header: bytes) -> bytes:
    """The sample lines of one family: its encoding minus its header."""
    body = _encode(encoder, openmetrics, family)
    if not body.startswith(header):
        raise ValueError(f"family {family.name}: its encoding does not start with its header")
    return body[len(header) :]
