"""A model's comparison while it runs: what was declared, and a shadow comparison's pairs.

:class:`ComparisonState` is one part of :class:`~exporter.model.ModelState`, like its join and
its versions: the model holds it and calls it only under the model's lock, after its own
checks (:meth:`~exporter.model.ModelState.set_comparison`,
:meth:`~exporter.model.ModelState.end_comparison`); it owns no lock. It owns two things: the
declared :class:`~exporter.snapshot.ComparisonInfo` (or None) and, for a shadow comparison,
the :class:`~exporter.pairs.PairBook` created with it and dropped when it ends or is replaced,
which the model feeds every joined prediction (:meth:`ComparisonState.record`). It reads the
versions (their counts when the comparison starts) and changes nothing else: the other
effects of a comparison are on parts the model owns, and the model makes them, namely the
join's keying (:meth:`~exporter.join.Join.key_per_version`) and the pinned versions
(:attr:`~exporter.version.Versions.pinned`).

Pure: no HTTP, no Prometheus, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from exporter.comparison import Declaration
from exporter.config import Settings
from exporter.join import Pairs
from exporter.pairs import PairBook
from exporter.persist.plain import State
from exporter.snapshot import (
    ArmCounts,
    ComparisonInfo,
    PairsSnapshot,
    comparison_of,
    comparison_state,
)
from exporter.typedefs import FloatArray, Task
from exporter.version import Versions


class ComparisonState:
    """The model's one comparison, if any, and the pair book of a shadow one.

    ``settings`` sizes a pair book: the windows and their buckets, ``join.prediction_ttl``
    and ``join.max_pending_predictions``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.info: ComparisonInfo | None = None
        #: A shadow comparison's champion/challenger pairs (:mod:`exporter.pairs`).
        self.pairs: PairBook | None = None

    def declare(self, declaration: Declaration, versions: Versions, now: float) -> ComparisonInfo:
        """Start the comparison now, replacing any other (and its pairs): its baseline is
        each named version's cumulative counts now (read from ``versions``, zeros for a
        version that does not exist yet)."""
        self.info = ComparisonInfo(
            declaration.champion,
            declaration.challengers,
            declaration.mode,
            now,
            baseline=tuple((name, _counts(versions, name)) for name in declaration.versions),
        )
        self.pairs = self._new_pairs(declaration) if declaration.mode == "shadow" else None
        return self.info

    def to_state(self) -> State:
        """The declared comparison (its baseline included) and a shadow one's pairs."""
        info = self.info
        return {
            "info": None if info is None else comparison_state(info),
            "pairs": None if self.pairs is None else self.pairs.to_state(),
        }

    def load_state(self, state: State) -> None:
        saved = state["info"]
        self.info = None if saved is None else comparison_of(saved)
        self.pairs = None
        if self.info is not None and self.info.mode == "shadow":
            self.pairs = self._new_pairs(
                Declaration(self.info.champion, self.info.challengers, "shadow")
            )
            self.pairs.load_state(state["pairs"])

    def restart_counts(self) -> None:
        """The versions' counters restart from zero (restored after an unclean stop): so do
        the counts since the comparison started (its baseline zeros, its pairs from zero)."""
        if self.info is not None:
            baseline = tuple((name, ArmCounts()) for name, _ in self.info.baseline)
            self.info = replace(self.info, baseline=baseline)
        if self.pairs is not None:
            self.pairs.restart_counts()

    def end(self) -> None:
        """Forget the comparison and its pairs."""
        self.info = None
        self.pairs = None

    def record(
        self,
        version: str,
        joined: Pairs,
        ids: Sequence[str],
        actual: FloatArray,
        predicted: FloatArray,
        task: Task,
        now: float,
    ) -> None:
        """Feed a shadow comparison's pair book with a version's joined pairs (``ids``: the
        batch's, which ``joined.rows`` index; ``actual`` and ``predicted`` their values) and
        their losses: wrong or right, or for regression the absolute error."""
        if self.pairs is None:
            return
        if task == "regression":
            loss = np.abs(actual - predicted)
        else:
            loss = (actual != predicted).astype(np.float64)
        self.pairs.record(
            version, [ids[i] for i in joined.rows], loss.tolist(), joined.label_times, now
        )

    def pairs_snapshot(self, now: float) -> PairsSnapshot | None:
        """The pairs as of ``now``; None outside a shadow comparison."""
        return None if self.pairs is None else self.pairs.snapshot(now)

    def _new_pairs(self, declaration: Declaration) -> PairBook:
        settings = self._settings
        return PairBook(
            declaration.champion,
            declaration.challengers,
            list(zip(settings.window_labels, settings.windows, strict=True)),
            settings.window_buckets,
            settings.join.prediction_ttl,
            settings.join.max_pending_predictions,
        )


def _counts(versions: Versions, name: str) -> ArmCounts:
    """A version's cumulative counts now (zeros if it does not exist yet)."""
    state = versions.get(name)
    return ArmCounts() if state is None else ArmCounts.of(state.counters)
