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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from exporter.collectors.drift import drift_key
from exporter.collectors.models import PARTS, Baselines, ModelCollector, Results, Sequential
from exporter.snapshot import ModelSnapshot

EOF_MARK = b"# EOF\n"
Encoder = Callable[[Any], bytes]


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


class Exposition:
    """Renders ``/metrics`` for a registry that holds ``models``."""

    def __init__(self, registry: CollectorRegistry, models: ModelCollector) -> None:
        self.registry = registry
        self.models = models
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, bool, str], _Part] = {}  # (model, openmetrics, part)
        self._headers: dict[tuple[bool, str], list[bytes]] = {}
        self._latest: dict[str, ModelSnapshot] = {}  # the last snapshot of each model

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition the ``Accept`` header asks for (text 0.0.4 or OpenMetrics), and its
        content type."""
        encoder, content_type = choose_encoder(accept)
        openmetrics = content_type.startswith("application/openmetrics-text")
        models = self._models(encoder, openmetrics)
        with self.models.silenced():
            rest = encoder(self.registry)
        if openmetrics:
            return models + rest.removesuffix(EOF_MARK) + EOF_MARK, content_type
        return models + rest, content_type

    def _models(self, encoder: Encoder, openmetrics: bool) -> bytes:
        failed: list[str] = []
        with self._lock:
            latest = dict(self._latest)
        snapshots = self.models.snapshots(failed, latest)
        with self._lock:
            self._latest = {s.name: s for s in snapshots}
        results = self.models.results(snapshots)
        states = self.models.sequential_states(snapshots)
        tested = self.models.baseline_states(snapshots)
        encoded: dict[str, list[list[bytes]]] = {}  # part -> per model: its families' lines
        for name in PARTS:
            errors = list(failed)
            per_model: list[list[bytes]] = []
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
        chunks: list[bytes] = []
        for name in PARTS:
            for i, header in enumerate(self._header(encoder, openmetrics, name)):
                chunks.append(header)
                chunks.extend(model[i] for model in encoded[name])
        return b"".join(chunks)

    def _part(
        self,
        encoder: Encoder,
        openmetrics: bool,
        name: str,
        snapshot: ModelSnapshot,
        key: object,
        looked: tuple[Results, Sequential, Baselines],
    ) -> list[bytes]:
        cache_key = (snapshot.name, openmetrics, name)
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is not None and cached.key == key:
            return cached.samples
        families = self.models.part(name, [snapshot], *looked)
        headers = self._header(encoder, openmetrics, name)
        samples = [
            _samples(encoder, openmetrics, family, header)
            for family, header in zip(families, headers, strict=True)
        ]
        with self._lock:
            self._cache[cache_key] = _Part(key, samples)
        return samples

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

    def _forget(self, model: str, openmetrics: bool, name: str) -> None:
        with self._lock:
            self._cache.pop((model, openmetrics, name), None)

    def _prune(self, models: set[str], openmetrics: bool) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[1] == openmetrics and k[0] not in models]:
                del self._cache[key]


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
