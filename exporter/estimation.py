"""The label-free estimate of one model's quality (CBPE, exporter.stats.cbpe): calibrators
fitted on its reference's scored holdout, applied to each scored prediction.

An :class:`Estimator` belongs to a (scored holdout, model classes, positive class) triple and
is rebuilt when any of them changes (:class:`Estimators`, a cache its model owns). It turns the
scores the join keeps (exporter.probabilities.Score) into calibrated probabilities:

* binary: two columns, (negative, positive), in that order whatever the class indices, so that
  the estimate needs no index of the negative class (it may not have been seen yet);
* multiclass: a column per class index of the model. A class the holdout has no probabilities
  for keeps its raw probability; rows are divided by their sum afterwards.

A binary model's scores calibrate on a holdout of binary ``scores``, or of ``probabilities``
that name its positive class; a multiclass model's on ``probabilities``. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exporter.probabilities import Score
from exporter.scored_reference import POSITIVE, ScoredHoldout
from exporter.stats.cbpe import Isotonic, calibrate
from exporter.typedefs import FloatArray, IntArray, Task


@dataclass(frozen=True)
class Estimator:
    """Calibrators in the model's order (binary: the positive class's only)."""

    binary: bool
    calibrators: tuple[Isotonic | None, ...]
    #: The holdout rows they were fitted on.
    rows: int

    def calibrated(
        self, scores: Sequence[Score], predicted: IntArray, positive: int | None
    ) -> tuple[IntArray, FloatArray, IntArray] | None:
        """The rows with a usable score (positions in ``scores``), their calibrated
        probabilities and their predicted class in the same columns' order (binary: 1 for the
        positive class); None when no row has one."""
        kind = float if self.binary else bytes
        rows = [i for i, s in enumerate(scores) if type(s) is kind]
        if not rows:
            return None
        picked = np.asarray(rows, dtype=np.int64)
        if self.binary:
            raw = np.array([scores[i] for i in rows], dtype=np.float64).reshape(-1, 1)
            positive_p = calibrate(raw, list(self.calibrators))[:, 0]
            matrix = np.column_stack([1.0 - positive_p, positive_p])
            classes = (predicted[picked] == positive).astype(np.int64)
            return picked, matrix, classes
        blobs: list[bytes] = [scores[i] for i in rows]  # type: ignore[misc]
        width = max(len(self.calibrators), max(len(b) for b in blobs) // 8)
        raw = np.zeros((len(rows), width))
        for j, blob in enumerate(blobs):
            vector = np.frombuffer(blob)
            raw[j, : vector.shape[0]] = vector
        calibrators = list(self.calibrators) + [None] * (width - len(self.calibrators))
        return picked, calibrate(raw, calibrators), predicted[picked].astype(np.int64)


def fit_estimator(
    holdout: ScoredHoldout,
    task: Task,
    classes: Sequence[str],
    positive: str | None,
) -> Estimator | None:
    """Calibrators for a model of ``task`` with class labels ``classes`` (by index) and
    ``positive`` (binary); None when the holdout cannot serve it (binary scores for a
    multiclass model, probabilities without the positive class, a regression)."""
    labels = np.asarray(holdout.labels, dtype=object)
    column = {name: c for c, name in enumerate(holdout.columns)}
    if task == "binary":
        if positive is None:
            return None
        at = column.get(POSITIVE, column.get(positive))
        if at is None:
            return None
        hits = (labels == positive).astype(np.float64)
        return Estimator(True, (Isotonic.fit(holdout.scores[:, at], hits),), holdout.rows)
    if task != "multiclass" or POSITIVE in column:
        return None
    calibrators: list[Isotonic | None] = []
    for name in classes:
        at = column.get(name)
        if at is None:
            calibrators.append(None)
            continue
        hits = (labels == name).astype(np.float64)
        calibrators.append(Isotonic.fit(holdout.scores[:, at], hits))
    return Estimator(False, tuple(calibrators), holdout.rows)


class Estimators:
    """The estimator of each version, fitted once per (holdout, classes, positive class);
    owned by the model, used under its lock."""

    def __init__(self) -> None:
        self._fitted: dict[
            int, tuple[ScoredHoldout, tuple[str, ...], str | None, Estimator | None]
        ] = {}

    def get(
        self,
        uid: int,
        holdout: ScoredHoldout | None,
        task: Task | None,
        classes: Sequence[str],
        positive: str | None,
    ) -> Estimator | None:
        if holdout is None or task is None or task == "regression":
            self._fitted.pop(uid, None)
            return None
        key = tuple(classes)
        cached = self._fitted.get(uid)
        if (
            cached is not None
            and cached[0] is holdout
            and cached[1] == key
            and cached[2] == positive
        ):
            return cached[3]
        estimator = fit_estimator(holdout, task, key, positive)
        self._fitted[uid] = (holdout, key, positive, estimator)
        return estimator

    def forget(self, uid: int) -> None:
        self._fitted.pop(uid, None)
