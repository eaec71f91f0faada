"""What the exporter does before it is ready, and what it answers meanwhile.

:class:`Startup` restores the state snapshot, then loads the configured reference files and
declares the configured comparisons (restored first: the configuration then adds what is new).
Everything that can be checked without the restored state (the reference files are read and
built, the comparison bodies parsed) is checked when the app is built, so a bad configuration
still stops ``model-exporter serve`` before it listens.

``model-exporter serve`` runs it in a thread once the listeners are open: a restore of a large
state takes seconds, and meanwhile ``/-/ready`` answers 503 ``starting`` (the orchestrator keeps
the pod out of its Service) and :class:`StartingGate` answers every other request 503
``starting`` with ``Retry-After`` (counted), so that nothing reads a half-restored store or
writes into one. ``create_app`` used as a library (tests, embedding) runs it at once instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.api.context import Context
from exporter.comparison import Declaration, parse_declaration
from exporter.config import ModelSpec, Settings
from exporter.errors import NO_VALUE, ConfigError, Reason, RejectedInput
from exporter.persistence import StateKeeper
from exporter.reference import Reference, build_reference
from exporter.reference_io import read_reference_file
from exporter.scored_reference import probability_columns
from exporter.store import Store
from exporter.telemetry import Telemetry

log = logging.getLogger("exporter")

#: Paths answered while starting: the probes.
PROBES: Final = frozenset({"/-/healthy", "/-/ready"})
#: Seconds a request refused while starting is asked to wait.
RETRY_AFTER: Final = 1


def read_reference_files(settings: Settings, store: Store) -> dict[str, Reference]:
    """Every ``models.<name>.reference_file``, read and built.

    Raises :class:`ConfigError` naming the key when a file cannot be read or used.
    """
    references = {}
    for model, spec in settings.models.items():
        if spec.reference_file is None:
            continue
        key = f"models.{model}.reference_file"
        try:
            columns = read_reference_file(
                spec.reference_file, max_name_length=settings.limits.max_name_length
            )
            references[model] = build_reference(
                columns,
                settings=settings.drift,
                source="file",
                created=store.clock(),
                categorical=spec.categorical,
                prediction_column=spec.reference_prediction_column,
                label_column=spec.reference_label_column,
                score_column=spec.reference_score_column,
                probability_columns=_probability_columns(spec, list(columns), key),
                max_classes=settings.limits.max_classes,
            )
        except RejectedInput as exc:
            raise ConfigError(
                f"config key '{key}': {exc.detail} (got {str(spec.reference_file)!r})"
            ) from None
    return references


@dataclass
class Startup:
    """Restore, then apply the configuration (see the module's docstring)."""

    settings: Settings
    store: Store
    keeper: StateKeeper | None
    references: dict[str, Reference]
    comparisons: dict[str, Declaration]

    @classmethod
    def prepare(cls, settings: Settings, store: Store, keeper: StateKeeper | None) -> Startup:
        """Check what can be checked now; raises :class:`ConfigError`."""
        comparisons = {
            model: parse_declaration(spec.comparison)
            for model, spec in settings.models.items()
            if spec.comparison is not None
        }
        return cls(settings, store, keeper, read_reference_files(settings, store), comparisons)

    def run(self) -> None:
        """Restore the snapshot (if any), load the references, declare the comparisons.

        Raises :class:`ConfigError` naming the key when the model refuses a comparison.
        """
        if self.keeper is not None:
            self.keeper.restore()
        for model, reference in self.references.items():
            self.store.load_reference(model, reference)
            log.info(
                "loaded reference of model %s from %s",
                model,
                self.settings.models[model].reference_file,
            )
        for model, declaration in self.comparisons.items():
            self._declare(model, declaration)

    def _declare(self, model: str, declaration: Declaration) -> None:
        if self.store.comparison_is(model, declaration):
            return  # restored from the state snapshot, running since it started
        key = f"models.{model}.comparison"
        spec = self.settings.models[model].comparison
        try:
            self.store.set_comparison(model, declaration)
        except RejectedInput as exc:
            where = f"{key}.{exc.field}" if exc.field else key
            got = spec if exc.value is NO_VALUE else exc.value
            raise ConfigError(f"config key '{where}': {exc.message} (got {got!r})") from None
        log.info("declared the comparison of model %s: %s", model, spec)


class StartingGate:
    """ASGI middleware: while ``ctx.starting``, every request but the probes is answered 503
    ``starting`` with ``Retry-After`` (and counted) without reaching the app."""

    def __init__(self, app: ASGIApp, *, ctx: Context, telemetry: Telemetry) -> None:
        self.app = app
        self.ctx = ctx
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.ctx.starting or scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        refusal = RejectedInput(
            Reason.STARTING,
            f"the exporter is starting (restoring its state snapshot); retry after {RETRY_AFTER} s",
        )
        self.telemetry.count_rejected(refusal.reason, refusal.events)
        response = JSONResponse(
            refusal.body(),
            status_code=refusal.status_code,
            headers={"Retry-After": str(RETRY_AFTER)},
        )
        await response(scope, receive, send)


def on_thread(
    startup: Startup, *, started: Callable[[], None], failed: Callable[[str], None]
) -> None:
    """Run ``startup`` (in a thread of its own); then ``started()``, or ``failed(message)``."""
    try:
        startup.run()
    except ConfigError as exc:
        log.error("model-exporter: %s", exc)
        failed(str(exc))
        return
    except Exception as exc:  # never leave the exporter not ready without a word
        log.exception("starting failed")
        failed(f"starting failed: {type(exc).__name__}: {exc}")
        return
    started()


def _probability_columns(spec: ModelSpec, columns: list[str], key: str) -> dict[str, str] | None:
    """``reference_probability_columns`` against the file's columns."""
    try:
        return probability_columns(spec.reference_probability_columns, columns)
    except ValueError as exc:
        raise ConfigError(
            f"config key '{key.removesuffix('reference_file')}reference_probability_columns': {exc}"
        ) from None
