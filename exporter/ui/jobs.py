"""What a status page is rendered from, and the rendering: plain data in, HTML out.

A page is a *job*: the snapshots of its models, the drift worker's results and the sequential
tracker's states for them, an excerpt of the history (:meth:`exporter.history.History.excerpt`,
every series of those models as of one instant), the settings and thresholds, the time and
what every page shows (``common``). The HTTP layer takes these under the owners' locks, one
after the other, and hands the job to a renderer (:mod:`exporter.ui.process`); :func:`render`
does the rest, touching nothing but the job. A job is immutable and pickles, so the rendering
may run in another process. No HTTP here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from exporter.config import Settings
from exporter.drift_worker import DriftResult, WindowKey
from exporter.history import Excerpt
from exporter.monitoring.rules import Thresholds
from exporter.sequential_tracker import SequentialStates
from exporter.snapshot import ModelSnapshot
from exporter.ui import render as templates
from exporter.ui.pages import (
    SORT_KEYS,
    HistoryReader,
    HistorySeries,
    SortKey,
    model_card,
    model_page,
)


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """One model as a page shows it: its snapshot, its drift results by (version, window) and
    its comparisons' sequential states. Build it with :meth:`of`."""

    snapshot: ModelSnapshot
    drift: Mapping[WindowKey, DriftResult]
    sequential: SequentialStates

    @staticmethod
    def of(
        snapshot: ModelSnapshot,
        drift: Mapping[WindowKey, DriftResult],
        sequential: SequentialStates,
    ) -> ModelInputs:
        """Without the references' values: the pages draw a feature from the counts its drift
        test kept (``FeatureDrift.distribution``), never from the reference rows, which are
        most of a snapshot (100 features x 10,000 values are 8 MB a version) and would be
        pickled for every page."""
        versions = tuple(
            replace(v, reference=replace(v.reference, reference=None))
            if v.reference.reference is not None
            else v
            for v in snapshot.versions
        )
        return ModelInputs(replace(snapshot, versions=versions), drift, sequential)


@dataclass(frozen=True, slots=True)
class OverviewJob:
    """``GET /``: every model."""

    models: tuple[ModelInputs, ...]
    settings: Settings
    thresholds: Thresholds
    history: Excerpt
    now: float
    common: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class ModelPageJob:
    """``GET /ui/models/{model}``: one model, its drift tables in ``sort`` order, ``feature``
    drawn (None: each table's first row)."""

    model: ModelInputs
    settings: Settings
    thresholds: Thresholds
    history: Excerpt
    now: float
    common: Mapping[str, object]
    sort: SortKey = "verdict"
    feature: str | None = None


PageJob = OverviewJob | ModelPageJob


def render(job: PageJob, pause: Callable[[], None] | None = None) -> str:
    """The page's HTML. ``pause`` is called before each chart's history is read and between
    chunks of the output, so that a caller sharing the interpreter can let more urgent work go
    first (see :func:`exporter.ui.render.render`)."""
    history = _reader(job.history, pause)
    if isinstance(job, OverviewJob):
        cards = [
            model_card(
                m.snapshot,
                dict(m.drift),
                m.sequential,
                job.settings,
                job.thresholds,
                history,
                job.now,
            )
            for m in job.models
        ]
        return templates.render("index.html", pause, cards=cards, **job.common)
    m = job.model
    page = model_page(
        m.snapshot,
        dict(m.drift),
        m.sequential,
        job.settings,
        job.thresholds,
        history,
        job.now,
        sort=job.sort,
        feature=job.feature,
    )
    return templates.render("model.html", pause, page=page, sort_keys=SORT_KEYS, **job.common)


def _reader(excerpt: Excerpt, pause: Callable[[], None] | None) -> HistoryReader:
    def read(
        model: str,
        version: str | None,
        window: str | None,
        names: Collection[str] | None,
        since: float | None,
    ) -> Sequence[HistorySeries]:
        if pause is not None:
            pause()
        found = excerpt.read(model, version=version, window=window, names=names, since=since)
        return [HistorySeries(s.name, s.labels, s.times.tolist(), s.values.tolist()) for s in found]

    return read
