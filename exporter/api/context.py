"""What the routes share: the settings and the parts they adapt to HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.api.priority import ScrapePriority
from exporter.api.schemas import Decoders
from exporter.config import Settings
from exporter.drift_worker import DriftCache
from exporter.exposition import Exposition
from exporter.history import History
from exporter.monitoring.rules import Thresholds
from exporter.sequential_tracker import SequentialTracker
from exporter.store import Store
from exporter.telemetry import Telemetry
from exporter.ui.process import InlineRenderer, PageRenderer


@dataclass
class Context:
    settings: Settings
    store: Store
    telemetry: Telemetry
    exposition: Exposition
    drift: DriftCache
    #: The summary values' history (exporter.history): ``history.read(model, version=,
    #: window=, names=, since=)`` gives immutable Series.
    history: History
    decoders: Decoders
    priority: ScrapePriority = field(default_factory=ScrapePriority)
    #: The alert thresholds the status pages colour by (``ui.thresholds_file``).
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: The comparisons' sequential states (the drift worker's), for the status pages.
    sequential: SequentialTracker | None = None
    #: Who renders the status pages (exporter.ui.process): a child process by default.
    pages: PageRenderer = field(default_factory=InlineRenderer)
    ready: bool = False
    starting: bool = False  # restoring in the background (exporter.startup): requests get 503
    stopping: bool = False  # set on SIGTERM (exporter.server): /-/ready answers 503 from then
    #: Why starting failed (exporter.startup), if it did: ``serve`` then exits 2.
    failure: str | None = None
    #: Asks the server to stop (set by exporter.server; None without one).
    request_exit: Callable[[], None] | None = None
