"""The application factory: the only place where the parts are wired together."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from exporter import __version__, auth
from exporter.api import build_router, docs, handlers
from exporter.api.context import Context
from exporter.api.schemas import build_decoders
from exporter.api.security import AccessGuard
from exporter.collectors import build_registry
from exporter.collectors.models import ModelCollector
from exporter.config import Settings
from exporter.drift_worker import DriftWorker
from exporter.exposition import BudgetCollector, Exposition
from exporter.history import History
from exporter.history_recorder import HistoryRecorder, build_history
from exporter.monitoring.rules import Thresholds, alert_series
from exporter.persistence import StateKeeper
from exporter.startup import StartingGate, Startup, on_thread
from exporter.store import Store
from exporter.telemetry import Telemetry
from exporter.ui.process import InlineRenderer, ProcessRenderer
from exporter.web_config import load_web_config

log = logging.getLogger("exporter")


def create_app(
    settings: Settings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    drift_worker: bool = True,
    start_in_background: bool = False,
    after_start: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the exporter application.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to ``Settings()`` (defaults plus ``MODEL_EXPORTER_*`` environment variables).
    registry : CollectorRegistry, optional
        Where the collectors are registered; a fresh one by default (never the global one).
    clock : callable
        Wall-clock time in seconds; tests pass a fake one.
    drift_worker : bool
        Run the background drift worker (tests may drive ``app.state.drift_worker.run_once()``,
        which records the history too, or ``app.state.history_recorder.record(now)`` alone).
    start_in_background : bool
        Restore the state snapshot and apply the configured references and comparisons in a
        thread once the app serves, answering 503 ``starting`` meanwhile (``model-exporter
        serve``: see :mod:`exporter.startup`); by default they are applied here, before this
        returns. A bad configuration raises :class:`ConfigError` here in both cases, except a
        comparison the restored state refuses: then ``app.state.ctx.failure`` says why and the
        server is asked to stop.
    after_start : callable, optional
        Called once everything is restored and applied (``serve`` freezes the heap then).
    """
    settings = settings or Settings()
    store = Store(settings, clock=clock)
    telemetry = Telemetry()
    worker = DriftWorker(store, on_run=telemetry.count_drift_run)
    store.on_removed(worker.cache.forget)
    history = build_history(settings)
    store.on_removed(history.forget)
    recorder = HistoryRecorder(store, worker.cache, history)
    worker.after_run.append(recorder.record)  # after each run: never on the ingest path
    registry, models = build_registry(
        store, telemetry, worker.cache, registry, worker.sequential, history
    )
    ctx = _context(settings, store, telemetry, worker, history, registry, models)
    registry.register(BudgetCollector(ctx.exposition))
    web_config = load_web_config(settings.web_config)
    writes = auth.write_policy(settings.auth)
    reads = auth.read_policy(settings.auth, web_config.users)
    log.info(writes.describe())
    log.info(reads.describe())
    keeper = None
    if settings.state.path is not None:
        keeper = StateKeeper(settings, store, telemetry, worker.sequential, clock=clock)
    startup = Startup.prepare(settings, store, keeper)
    ctx.starting = start_in_background
    if not start_in_background:
        startup.run()

    lifespan = _lifespan(
        ctx,
        startup,
        worker if drift_worker else None,
        keeper,
        background=start_in_background,
        after_start=after_start,
    )

    app = FastAPI(
        title="model-exporter",
        version=__version__,
        description="Prometheus exporter sidecar for machine-learning model quality and drift.",
        lifespan=lifespan,
        redirect_slashes=False,  # a trailing slash is ignored instead (api/handlers.py)
        docs_url=None,  # served by api/docs.py, its assets too: works offline
        redoc_url=None,  # it loads its bundle from a CDN, which no package ships with ours
    )
    app.state.ctx = ctx
    app.state.store = store
    app.state.telemetry = telemetry
    app.state.registry = registry
    app.state.drift_worker = worker
    app.state.history_recorder = recorder
    app.state.state_keeper = keeper
    app.include_router(build_router(ctx))
    docs.mount(app)  # Swagger UI's files, for /docs
    app.state.web_config = web_config  # its TLS is the server's (uvicorn_tls_options)
    app.add_middleware(StartingGate, ctx=ctx, telemetry=telemetry)
    app.add_middleware(AccessGuard, writes=writes, reads=reads, telemetry=telemetry)
    handlers.install(app, telemetry)  # IgnoreTrailingSlash: outside the guard
    return app


def _context(
    settings: Settings,
    store: Store,
    telemetry: Telemetry,
    worker: DriftWorker,
    history: History,
    registry: CollectorRegistry,
    models: ModelCollector,
) -> Context:
    """What the routes share: the store, telemetry, the drift worker's cache and tracker and the
    history, with the exposition over the registry, the decoders, the pages' thresholds and
    their renderer (a child process unless ``ui.render_process`` is off)."""
    ctx = Context(
        settings=settings,
        store=store,
        telemetry=telemetry,
        exposition=Exposition(
            registry,
            models,
            max_series=settings.limits.max_series or None,
            protected=alert_series(),
        ),
        drift=worker.cache,
        history=history,
        decoders=build_decoders(settings.limits),
        thresholds=Thresholds.load(settings.ui.thresholds_file),
        sequential=worker.sequential,
    )
    ctx.pages = (
        ProcessRenderer(settings.ui.render_timeout)
        if settings.ui.render_process
        else InlineRenderer(ctx.priority.yield_to_scrapes)
    )
    return ctx


def _lifespan(
    ctx: Context,
    startup: Startup,
    worker: DriftWorker | None,
    keeper: StateKeeper | None,
    *,
    background: bool,
    after_start: Callable[[], None] | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the startup (in a thread when ``background``), then the drift
    worker and the periodic snapshots; at the end, the shutdown snapshot."""

    def started() -> None:
        if worker is not None:
            worker.start()
        if keeper is not None:
            keeper.start()
        if after_start is not None:
            after_start()
        ctx.starting = False
        ctx.ready = True

    def failed(why: str) -> None:
        ctx.failure = why
        if ctx.request_exit is not None:
            ctx.request_exit()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.pages.start()
        starting = None
        if background:
            starting = threading.Thread(
                target=on_thread,
                args=(startup,),
                kwargs={"started": started, "failed": failed},
                name="startup",
                daemon=True,
            )
            starting.start()
        else:
            started()
        try:
            yield
        finally:
            ctx.ready = False
            try:
                if starting is not None:  # a restore cannot be cut short: wait for it
                    await asyncio.to_thread(starting.join)
                if ctx.failure is None:
                    if worker is not None:
                        worker.stop()
                    if keeper is not None:
                        keeper.stop()  # the shutdown snapshot: after the last request and look
            finally:
                ctx.pages.close()  # the page renderer's process, if any: killed, not awaited

    return lifespan
