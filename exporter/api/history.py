"""``GET /v1/models/{model}/history``: the points of the summary values' history, as JSON.

A thin adapter over :meth:`exporter.history.History.read`: the query's filters checked (each
refusal names the parameter and what it may be), the series read as copies, then encoded.
Values are rounded to the status API's 12 significant digits (:data:`exporter.api.status.DIGITS`;
``/metrics`` keeps full precision), counts are integers, times whole epoch seconds (the start
of each point's ``history.resolution`` slot).

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures, and
pydantic the response's types.)
"""

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from exporter.api.context import Context
from exporter.api.responses import refusals
from exporter.api.schemas import name_param, name_pattern
from exporter.api.status import DIGITS
from exporter.errors import Reason, RejectedInput
from exporter.history import Series
from exporter.history_recorder import COUNT_SERIES, SERIES_NAMES
from exporter.names import check_name


class HistorySeries(TypedDict):
    """One series: its name, its labels besides ``model`` (``model_version``, ``window``,
    ``average``, as on ``/metrics``) and its points ``[time, value]``, oldest first."""

    name: Annotated[str, Field(json_schema_extra={"enum": list(SERIES_NAMES)})]
    labels: dict[str, str]
    points: list[tuple[int, float]]


class HistoryBody(TypedDict):
    """The series of the model that have points in the selection."""

    model: str
    series: list[HistorySeries]


def _series_pattern() -> str:
    """The ``series`` parameter: known names, comma-separated (no spaces)."""
    one = "(?:" + "|".join(SERIES_NAMES) + ")"
    return f"^{one}(?:,{one})*$"


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["status"])
    limits = ctx.settings.limits
    windows = ctx.settings.window_labels
    model_name = Annotated[str, name_param(limits, "A model name.")]
    version_query = Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=limits.max_name_length,
            description="Only the series of this version (series without a model_version "
            "label, the model's own, are left out).",
            json_schema_extra={"pattern": name_pattern()},
        ),
    ]
    window_query = Annotated[
        str | None,
        Query(
            description="Only the series of this window (series without a window label are "
            "left out).",
            json_schema_extra={"enum": windows},
        ),
    ]
    series_query = Annotated[
        str | None,
        Query(
            description="Only these series, comma-separated: " + ", ".join(SERIES_NAMES) + ".",
            json_schema_extra={"pattern": _series_pattern()},
        ),
    ]
    since_query = Annotated[
        float | None,
        Query(
            allow_inf_nan=False,
            description="Only points at or after this time (epoch seconds; a point's time is "
            "the start of its slot).",
        ),
    ]

    # 404: unknown model; 422: a filter that is not valid (named in field).
    @r.get(
        "/v1/models/{model}/history",
        summary="History of a model's summary values",
        response_class=JSONResponse,
        responses={
            200: {"model": HistoryBody, "description": "The model's series with points."},
            **refusals((401, 404, 422, 503)),
        },
    )
    def get_history(
        model: model_name,
        version: version_query = None,
        window: window_query = None,
        series: series_query = None,
        since: since_query = None,
    ) -> Response:
        """The in-memory history of the model's summary values: quality per window (and
        average), window counts, drifted features, traffic and join counters, and the mean
        label delay, one point per ``history.resolution`` (the last value recorded in it)
        for ``history.retention``. Each filter is optional; without any, every series."""
        if version is not None:
            check_name(version, "version")
        if window is not None and window not in windows:
            raise RejectedInput(
                Reason.INVALID_FIELD,
                f"unknown window {window!r}; the windows are {', '.join(windows)}",
                field="window",
                value=window,
            )
        names = None if series is None else _names(series)
        ctx.store.get(model)  # 404 for an unknown model
        found = ctx.history.read(model, version=version, window=window, names=names, since=since)
        body = {"model": model, "series": [_series_json(s) for s in found]}
        return Response(msgspec.json.encode(body), media_type="application/json")

    return r


def _names(text: str) -> list[str]:
    names = text.split(",")
    for name in names:
        if name not in SERIES_NAMES:
            raise RejectedInput(
                Reason.INVALID_FIELD,
                f"unknown series {name!r}; the series are {', '.join(SERIES_NAMES)} "
                "(comma-separated, no spaces)",
                field="series",
                value=name,
            )
    return names


def _series_json(s: Series) -> dict[str, Any]:
    times = s.times.astype("int64").tolist()
    if s.name in COUNT_SERIES:
        values: list[Any] = s.values.astype("int64").tolist()
    else:
        values = [float(f"{v:.{DIGITS}g}") for v in s.values.tolist()]
    return {
        "name": s.name,
        "labels": dict(s.labels),
        "points": list(zip(times, values, strict=True)),
    }
