"""Which reference each version of a model measures drift against, and since when.

:class:`ReferenceState` is one part of :class:`~exporter.model.ModelState`: the model holds it
and calls it only under the model's lock, after its own checks (:func:`check_reference` for an
upload); it owns no lock. It owns the model-wide reference (uploaded for every version, or
from a file named in the config), the policy without one (``drift.reference``, or the model's
own), and per version when its reference was set: the model's revision then and the version's
cumulative counts then, where a holdout baseline's counts start
(:attr:`~exporter.snapshot.ReferenceInfo.start`). A version's own references (its upload, its
first events and first labels) are attributes of its :class:`~exporter.version.VersionState`;
this class is the code that sets them.

Precedence (:meth:`ReferenceState.info`): the version's upload > the model's > the previous
window (a rolling reference) > the version's first ``drift.reference_size`` events
(``collecting`` until there are enough). Labels likewise: the labels of the upload that
applies, else the version's first labels.

Pure numpy: no HTTP, no Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from exporter.config import DriftSettings
from exporter.errors import Reason, RejectedInput
from exporter.persist.plain import State
from exporter.reference import (
    Reference,
    RowLayout,
    TargetReference,
    reference_from_rows,
    target_from_column,
)
from exporter.schema import ModelSchema
from exporter.scored_reference import ScoredHoldout
from exporter.snapshot import ArmCounts, ReferenceInfo, arm_counts_of, arm_counts_state
from exporter.typedefs import ReferencePolicy
from exporter.version import VersionState


def check_reference(
    schema: ModelSchema, reference: Reference, *, model: str, max_features: int
) -> None:
    """Refuse a reference that shares no feature with the model's (a reference for another
    model, or misspelt names), gives a feature another kind than the events do, or would take
    the model over ``limits.max_features``; changes nothing."""
    features = schema.features
    known = features.names
    if known and reference.features and not set(known) & reference.features:
        raise RejectedInput(
            Reason.INVALID_REFERENCE,
            f"none of its features ({', '.join(sorted(reference.features)[:8])}) is a "
            f"feature of model {model!r} ({', '.join(sorted(known)[:8])})",
            field="features",
        )
    conflict = schema.kind_conflicts(reference.numeric, reference.categorical)
    if conflict is not None:
        kind = features.kinds[features.index[conflict]]
        raise RejectedInput(
            Reason.INVALID_REFERENCE,
            f"feature {conflict!r} is {reference.kind(conflict)} in the reference but "
            f"{kind} in the events of model {model!r}",
            field=f"features.{conflict}",
        )
    width = len(set(known) | reference.features)
    if width > max_features:
        raise RejectedInput(
            Reason.TOO_MANY_FEATURES,
            f"model {model!r} would have {width} features; limits.max_features is {max_features}",
            field="features",
        )


class ReferenceState:
    """The references of one model's versions.

    ``policy``: what drift is measured against without an uploaded reference; ``drift``:
    the settings a first-events reference is built with (bins, categories).
    """

    def __init__(self, policy: ReferencePolicy, drift: DriftSettings) -> None:
        self._drift = drift
        #: Drift against the previous window (``previous_window``) rather than first events.
        self.rolling = policy == "previous_window"
        #: Uploaded (or from a file) for every version.
        self.model: Reference | None = None
        #: Per version uid: the revision its reference was set at and its counts then; a
        #: version without one uses the model-wide reference's revision and counts from zero
        #: (it came after).
        self._starts: dict[int, tuple[int, ArmCounts]] = {}
        self._revision = 0

    def to_state(self) -> State:
        """The model-wide reference and, per version uid, when its reference was set."""
        return {
            "rolling": self.rolling,
            "model": None if self.model is None else self.model.to_state(),
            "starts": [
                [uid, revision, arm_counts_state(counts)]
                for uid, (revision, counts) in self._starts.items()
            ],
            "revision": self._revision,
        }

    def load_state(self, state: State) -> None:
        """Replace the references by those saved (refused if the policy changed since)."""
        if bool(state["rolling"]) != self.rolling:
            raise ValueError("the drift reference policy changed since the snapshot")
        model = state["model"]
        self.model = None if model is None else Reference.from_state(model)
        self._starts = {
            int(uid): (int(revision), arm_counts_of(counts))
            for uid, revision, counts in state["starts"]
        }
        self._revision = int(state["revision"])

    def restart_counts(self) -> None:
        """The versions' counters restart from zero (restored after an unclean stop): the
        holdout baselines count from the restart too."""
        self._starts = {uid: (revision, ArmCounts()) for uid, (revision, _) in self._starts.items()}

    def set_for_model(
        self, reference: Reference, versions: Iterable[VersionState], revision: int
    ) -> None:
        """Make ``reference`` every version's, present and future (a version's own upload
        goes), set at the model's ``revision``."""
        self.model = reference
        self._revision = revision
        self._starts = {}
        for v in versions:
            v.set_reference(None)
            self._starts[v.uid] = (revision, ArmCounts.of(v.counters))

    def set_for_version(self, version: VersionState, reference: Reference, revision: int) -> None:
        """Give one version its own reference, set at the model's ``revision``."""
        version.set_reference(reference)
        self._starts[version.uid] = (revision, ArmCounts.of(version.counters))

    def forget(self, uid: int) -> None:
        """A version left the model."""
        self._starts.pop(uid, None)

    def collects_first(self, version: VersionState) -> bool:
        """Whether a version still gathers its first events as its reference."""
        return (
            version.first_events is None
            and version.uploaded is None
            and self.model is None
            and not self.rolling
        )

    def freeze_first_events(self, version: VersionState, layout: RowLayout, now: float) -> None:
        """The version's first events are complete: they become its reference."""
        d = self._drift
        version.first_events = reference_from_rows(
            version.first_rows.matrix(len(layout.names) + 1),
            layout,
            source="first_events",
            created=now,
            bins=d.bins,
            max_categories=d.max_categories,
        )

    def freeze_first_labels(self, version: VersionState, classes: Sequence[str] | None) -> None:
        """The version's first labels are complete: they become its label reference."""
        d = self._drift
        version.first_label_reference = target_from_column(
            version.first_labels.matrix(1)[:, 0], classes, d.bins, d.max_categories
        )

    def info(self, version: VersionState) -> ReferenceInfo:
        """Which reference a version's drift uses: its own upload, the model's, the previous
        window (rolling), or its first predictions (``collecting`` until there are enough)."""
        target = version.first_rows.size
        set_at, start = self._starts.get(version.uid, (self._revision, ArmCounts()))
        if version.uploaded is not None:
            ref = version.uploaded
            return ReferenceInfo(ref.source, "version", ref.rows, ref.rows, ref, set_at, start)
        if self.model is not None:
            ref = self.model
            return ReferenceInfo(ref.source, "model", ref.rows, ref.rows, ref, set_at, start)
        if self.rolling:
            return ReferenceInfo("previous_window", "version", 0, 0, None)
        if version.first_events is not None:
            ref = version.first_events
            return ReferenceInfo("first_events", "version", ref.rows, target, ref)
        return ReferenceInfo("collecting", "version", version.first_rows.rows, target, None)

    def scored(self, version: VersionState) -> ScoredHoldout | None:
        """The scored holdout a version's label-free estimate calibrates on: its own upload's,
        else the model's (uploaded or configured), if it has scores."""
        ref = version.uploaded or self.model
        return None if ref is None else ref.scored

    def labels(self, version: VersionState) -> TargetReference | None:
        """The labels a version's label drift is measured against, if any yet."""
        ref = version.uploaded or self.model
        if ref is not None and ref.labels is not None:
            return ref.labels
        return version.first_label_reference
