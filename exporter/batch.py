"""One ingest batch, validated and encoded against a model's schema, changing nothing.

:func:`prepare_predictions` and :func:`prepare_labels` raise
:class:`~exporter.errors.RejectedInput` (naming the field and the value) for anything that does
not fit, and otherwise return everything the commit needs: the ids as strings (an integer id
is its decimal string, so ``42`` and ``"42"`` are one id), encoded targets, the feature matrix
and what the batch would add to the schema. Pure Python and numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

import numpy as np

from exporter.config import LimitSettings
from exporter.encoding import encode_targets, feature_matrix, timestamps
from exporter.errors import Reason, RejectedInput, describe_value
from exporter.probabilities import Score, encode_scores
from exporter.schema import FeatureBatch, ModelSchema, class_kind_of, infer_task
from exporter.typedefs import ClassKind, ClassValue, FloatArray, Task, WireValue


class PredictionEventLike(Protocol):
    features: dict[str, float | str | bool | None]
    prediction: int | float | str | bool
    timestamp: float | datetime | None
    label: int | float | str | bool | None
    score: float | None
    probabilities: dict[str, float] | None

    @property
    def id(self) -> str | int:
        """An integer id is its decimal string: ``42`` and ``"42"`` are one id."""


class LabelLike(Protocol):
    label: int | float | str | bool
    timestamp: float | datetime | None

    @property
    def id(self) -> str | int:
        """As :attr:`PredictionEventLike.id`."""


@dataclass(frozen=True)
class PreparedPredictions:
    """A valid prediction batch, encoded."""

    task: Task
    class_kind: ClassKind | None
    new_classes: dict[ClassValue, int]
    features: FeatureBatch
    ids: list[str]
    times: FloatArray
    targets: FloatArray  # class index or predicted value, per event
    inline: list[float | None] | None  # encoded inline label per event (None: no event has one)
    scores: list[Score] | None = None  # per event (exporter.probabilities; None: no event has one)


@dataclass(frozen=True)
class PreparedLabels:
    """A valid label batch: encoded, or (before the model's task is known) as sent."""

    task: Task | None
    class_kind: ClassKind | None
    new_classes: dict[ClassValue, int]
    ids: list[str]
    times: FloatArray
    targets: list[WireValue]  # class indices or values; the wire values while task is None


def _ids_and_times(
    items: Sequence[PredictionEventLike] | Sequence[LabelLike],
    what: str,
    now: float,
    limits: LimitSettings,
) -> tuple[list[str], FloatArray]:
    """The ids of a batch (non-empty, unique, as strings) and its timestamps as epoch seconds."""
    if not items:
        raise RejectedInput(Reason.INVALID_FIELD, f"the batch holds no {what}", field=what)
    sent = [item.id for item in items]
    try:  # a batch of string ids, the usual case, is used as it is: join is the fastest check
        "".join(cast(list[str], sent))
        ids = cast(list[str], sent)
    except TypeError:  # an integer id among them
        ids = _decimal_ids(sent, what, limits)
    _unique(ids, sent, what)
    stamps = [item.timestamp for item in items]
    return ids, timestamps(stamps, now, limits.max_clock_skew, f"{what}[{{}}].timestamp".format)


def _decimal_ids(sent: list[str | int], what: str, limits: LimitSettings) -> list[str]:
    """Ids as strings: an integer id is its decimal string, within the same length limit."""
    ids: list[str] = []
    for i, ident in enumerate(sent):
        if isinstance(ident, str):
            ids.append(ident)
            continue
        if isinstance(ident, bool):  # an int to Python, not to JSON
            raise RejectedInput(
                Reason.INVALID_FIELD,
                f"expected a string or an integer, got {describe_value(ident)}",
                field=f"{what}[{i}].id",
                value=ident,
            )
        text = str(ident)
        if len(text) > limits.max_value_length:
            raise RejectedInput(
                Reason.STRING_TOO_LONG,
                f"an integer id of {len(text)} characters is over limits.max_value_length "
                f"({limits.max_value_length}), as a string id would be",
                field=f"{what}[{i}].id",
                value=ident,
            )
        ids.append(text)
    return ids


def _unique(ids: list[str], sent: list[str | int], what: str) -> None:
    if len(set(ids)) == len(ids):
        return
    first: dict[str, int] = {}
    for i, ident in enumerate(ids):
        j = first.setdefault(ident, i)
        if j == i:
            continue
        same = ""
        if type(sent[i]) is not type(sent[j]):  # 42 and "42"
            same = f" ({describe_value(sent[j])} and {describe_value(sent[i])} are the same id)"
        raise RejectedInput(
            Reason.DUPLICATE_ID,
            f"{ident!r} appears more than once in this batch (first at {what}[{j}]){same}",
            field=f"{what}[{i}].id",
            value=sent[i],
        )


def prepare_predictions(
    schema: ModelSchema,
    events: Sequence[PredictionEventLike],
    now: float,
    *,
    model: str,
    limits: LimitSettings,
    max_categories: int,
    probability_tolerance: float = 0.01,
) -> PreparedPredictions:
    """Check and encode a batch of prediction events (their inline labels and scores)."""
    n = len(events)
    ids, times = _ids_and_times(events, "events", now, limits)
    predictions: list[WireValue] = [e.prediction for e in events]
    inline: list[WireValue] = [e.label for e in events]
    labelled = [i for i, v in enumerate(inline) if v is not None]
    task = schema.task or infer_task(predictions + [inline[i] for i in labelled])
    class_kind = schema.codec.kind
    if task != "regression" and class_kind is None:
        class_kind = class_kind_of(predictions[0])
    new_classes: dict[ClassValue, int] = {}
    first_at: dict[ClassValue, str] = {}
    targets = encode_targets(
        predictions,
        task=task,
        codec=schema.codec,
        kind=class_kind,
        new_classes=new_classes,
        field_of="events[{}].prediction".format,
        model=model,
        first_at=first_at,
    )
    encoded_inline: list[float | None] | None = None
    if labelled:
        labels = encode_targets(
            [inline[i] for i in labelled],
            task=task,
            codec=schema.codec,
            kind=class_kind,
            new_classes=new_classes,
            field_of=lambda j: f"events[{labelled[j]}].label",
            model=model,
            first_at=first_at,
        )
        encoded_inline = [None] * n
        for i, value in zip(labelled, labels.tolist(), strict=True):
            encoded_inline[i] = value
    scores = encode_scores(
        [e.score for e in events],
        [e.probabilities for e in events],
        task=task,
        kind=class_kind,
        codec=schema.codec,
        new_classes=new_classes,
        positive=schema.positive_for(task, class_kind),
        tolerance=probability_tolerance,
        model=model,
        max_classes=limits.max_classes,
        first_at=first_at,
    )
    task = schema.check_classes(task, new_classes, limits.max_classes, model, first_at)
    features = feature_matrix(
        [e.features for e in events], schema.features, limits.max_features, model, max_categories
    )
    return PreparedPredictions(
        task=task,
        class_kind=class_kind,
        new_classes=new_classes,
        features=features,
        ids=ids,
        times=times,
        targets=np.asarray(targets, dtype=np.float64),
        inline=encoded_inline,
        scores=scores,
    )


def prepare_labels(
    schema: ModelSchema,
    labels: Sequence[LabelLike],
    now: float,
    *,
    model: str,
    limits: LimitSettings,
) -> PreparedLabels:
    """Check and encode a batch of labels. Before the model's task is known (a model declared
    by a reference upload, not yet by a prediction) the values are kept as sent."""
    ids, times = _ids_and_times(labels, "labels", now, limits)
    values: list[WireValue] = [lbl.label for lbl in labels]
    if schema.task is None:
        return PreparedLabels(None, None, {}, ids, times, values)
    class_kind = schema.codec.kind
    if schema.task != "regression" and class_kind is None:  # declared, no prediction yet
        class_kind = class_kind_of(values[0])
    new_classes: dict[ClassValue, int] = {}
    first_at: dict[ClassValue, str] = {}
    targets = encode_targets(
        values,
        task=schema.task,
        codec=schema.codec,
        kind=class_kind,
        new_classes=new_classes,
        field_of="labels[{}].label".format,
        model=model,
        first_at=first_at,
    )
    task = schema.check_classes(schema.task, new_classes, limits.max_classes, model, first_at)
    return PreparedLabels(
        task=task,
        class_kind=class_kind,
        new_classes=new_classes,
        ids=ids,
        times=times,
        targets=np.asarray(targets, dtype=np.float64).tolist(),
    )
