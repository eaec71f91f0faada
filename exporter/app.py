"""The application factory: the only place where the parts are wired together."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from exporter import __version__, auth
from exporter.api import build_router, handlers
from exporter.api.context import Context
from exporter.api.schemas import build_decoders
from exporter.api.security import AccessGuard
from exporter.collectors import build_registry
from exporter.comparison import parse_declaration
from exporter.config import Settings
from exporter.drift_worker import DriftWorker
from exporter.errors import NO_VALUE, ConfigError, RejectedInput
from exporter.exposition import Exposition
from exporter.persistence import StateKeeper
from exporter.reference import build_reference
from exporter.reference_io import read_reference_file
from exporter.store import Store
from exporter.telemetry import Telemetry
from exporter.web_config import load_web_config

log = logging.getLogger("exporter")


def load_reference_files(settings: Settings, store: Store) -> None:
    """Load every ``models.<name>.reference_file`` as that model's reference (again whenever
    the model is registered anew after a removal).

    Raises :class:`ConfigError` naming the key when a file cannot be read or used.
    """
    for model, spec in settings.models.items():
        if spec.reference_file is None:
            continue
        key = f"models.{model}.reference_file"
        try:
            columns = read_reference_file(
                spec.reference_file, max_name_length=settings.limits.max_name_length
            )
            reference = build_reference(
                columns,
                settings=settings.drift,
                source="file",
                created=store.clock(),
                categorical=spec.categorical,
                prediction_column=spec.reference_prediction_column,
                label_column=spec.reference_label_column,
            )
            store.load_reference(model, reference)
        except RejectedInput as exc:
            raise ConfigError(
                f"config key '{key}': {exc.detail} (got {str(spec.reference_file)!r})"
            ) from None
        log.info("loaded reference of model %s from %s", model, spec.reference_file)


def apply_config_comparisons(settings: Settings, store: Store) -> None:
    """Declare every ``models.<name>.comparison``, started now (the body's shape was checked
    with the settings; the model's limits are checked here).

    Raises :class:`ConfigError` naming the key when the model refuses it."""
    for model, spec in settings.models.items():
        if spec.comparison is None:
            continue
        key = f"models.{model}.comparison"
        declaration = parse_declaration(spec.comparison)
        if store.comparison_is(model, declaration):
            continue  # restored from the state snapshot, running since it started
        try:
            store.set_comparison(model, declaration)
        except RejectedInput as exc:
            where = f"{key}.{exc.field}" if exc.field else key
            got = spec.comparison if exc.value is NO_VALUE else exc.value
            raise ConfigError(f"config key '{where}': {exc.message} (got {got!r})") from None
        log.info("declared the comparison of model %s: %s", model, spec.comparison)


def create_app(
    settings: Settings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    drift_worker: bool = True,
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
        Run the background drift worker (tests may drive ``app.state.drift_worker.run_once()``).
    """
    settings = settings or Settings()
    store = Store(settings, clock=clock)
    telemetry = Telemetry()
    worker = DriftWorker(store, on_run=telemetry.count_drift_run)
    store.on_removed(worker.cache.forget)
    registry, models = build_registry(store, telemetry, worker.cache, registry, worker.sequential)
    ctx = Context(
        settings=settings,
        store=store,
        telemetry=telemetry,
        exposition=Exposition(registry, models),
        drift=worker.cache,
        decoders=build_decoders(settings.limits),
    )
    web_config = load_web_config(settings.web_config)
    writes = auth.write_policy(settings.auth)
    reads = auth.read_policy(settings.auth, web_config.users)
    log.info(writes.describe())
    log.info(reads.describe())
    keeper = None
    if settings.state.path is not None:  # restored first: the config then adds what is new
        keeper = StateKeeper(settings, store, telemetry, worker.sequential, clock=clock)
        keeper.restore()
    load_reference_files(settings, store)
    apply_config_comparisons(settings, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if drift_worker:
            worker.start()
        if keeper is not None:
            keeper.start()
        ctx.ready = True
        try:
            yield
        finally:
            ctx.ready = False
            if drift_worker:
                worker.stop()
            if keeper is not None:
                keeper.stop()  # the shutdown snapshot: after the last request and look

    app = FastAPI(
        title="model-exporter",
        version=__version__,
        description="Prometheus exporter sidecar for machine-learning model quality and drift.",
        lifespan=lifespan,
        redirect_slashes=False,  # a trailing slash is ignored instead (api/handlers.py)
    )
    app.state.ctx = ctx
    app.state.store = store
    app.state.telemetry = telemetry
    app.state.registry = registry
    app.state.drift_worker = worker
    app.state.state_keeper = keeper
    app.include_router(build_router(ctx))
    app.state.web_config = web_config  # its TLS is the server's (uvicorn_tls_options)
    app.add_middleware(AccessGuard, writes=writes, reads=reads, telemetry=telemetry)
    handlers.install(app, telemetry)  # IgnoreTrailingSlash: outside the guard
    return app
