"""The application factory: the only place where the parts are wired together."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.analysis import refresh_drift
from exporter.api.routes import Context, build_router
from exporter.api.schemas import build_decoders
from exporter.collectors import build_registry
from exporter.collectors.drift import DriftExposition
from exporter.config import Settings
from exporter.errors import ConfigError, Reason, RejectedInput
from exporter.reference import ReferenceError, read_reference_file, reference_for_model
from exporter.store import Store
from exporter.telemetry import Telemetry

log = logging.getLogger("exporter")

#: The drift worker never polls faster than this, even with drift.refresh_interval 0.
MIN_REFRESH_SECONDS = 0.05


class DriftWorker:
    """Background thread: recomputes drift of changed windows and expires join buffers.

    With ``drift.threads`` above 1 a small pool shares each computation: numpy's sorts release
    the GIL, so two threads cut a 50-feature window from ~35 to ~22 ms (bench/drift.py).
    """

    def __init__(
        self, store: Store, telemetry: Telemetry, interval: float, threads: int = 1
    ) -> None:
        self._store = store
        self._telemetry = telemetry
        self._interval = max(interval, MIN_REFRESH_SECONDS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-worker", daemon=True)
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="drift") if threads > 1 else None
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def run_once(self) -> None:
        self._store.expire_all()
        stats = refresh_drift(self._store, executor=self._pool)
        self._telemetry.count_drift_run(stats.computed, stats.failed, stats.seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:  # keep the worker alive; the failure is logged and counted
                log.exception("drift worker run failed")
                self._telemetry.count_drift_run(0, 1, time.monotonic() - started)
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))


def load_reference_files(settings: Settings, store: Store) -> None:
    """Load every ``models.<name>.reference_file`` as that model's reference.

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
            reference = reference_for_model(
                columns,
                categorical=spec.categorical,
                prediction_column=spec.reference_prediction_column,
                label_column=spec.reference_label_column,
                predictions=None,
                labels=None,
                created=store.clock(),
                max_values=settings.drift.reference_max_values,
                bins=settings.drift.bins,
                max_categories=settings.drift.max_categories,
                source="file",
            )
            store.set_reference(model, None, reference)
        except (ReferenceError, RejectedInput) as exc:
            detail = exc.message if isinstance(exc, RejectedInput) else str(exc)
            raise ConfigError(
                f"config key '{key}': {detail} (got {str(spec.reference_file)!r})"
            ) from None
        log.info("loaded reference of model %s from %s", model, spec.reference_file)


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
    drift_exposition = DriftExposition(store)
    registry = build_registry(store, telemetry, registry, drift_exposition)
    ctx = Context(
        settings=settings,
        store=store,
        telemetry=telemetry,
        registry=registry,
        decoders=build_decoders(settings.limits),
        drift=drift_exposition,
    )
    load_reference_files(settings, store)
    worker = DriftWorker(store, telemetry, settings.drift.refresh_interval, settings.drift.threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if drift_worker:
            worker.start()
        ctx.ready = True
        try:
            yield
        finally:
            ctx.ready = False
            if drift_worker:
                worker.stop()

    app = FastAPI(
        title="model-exporter",
        version=__version__,
        description="Prometheus exporter sidecar for machine-learning model quality and drift.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.store = store
    app.state.telemetry = telemetry
    app.state.registry = registry
    app.state.drift_worker = worker
    app.include_router(build_router(ctx))

    @app.exception_handler(RejectedInput)
    async def rejected(request: Request, exc: RejectedInput) -> JSONResponse:
        telemetry.count_rejected(exc.reason, exc.events)
        return JSONResponse(
            {"detail": exc.message, "reason": exc.reason.value}, status_code=exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()))
            problems.append(f"{where}: {error.get('msg')} (got {error.get('input')!r})")
        message = "; ".join(problems)
        reason = Reason.STRING_TOO_LONG if "at most" in message else Reason.INVALID_FIELD
        if request.method in ("POST", "PUT"):
            telemetry.count_rejected(reason, 1)
        return JSONResponse({"detail": message, "reason": reason.value}, status_code=422)

    return app
