"""Labels that came before their model's task was known, encoded once it is.

A model known before its first prediction (declared in the config, or by a reference upload)
may receive labels first; they wait in the join as they were sent
(:attr:`~exporter.join.Join.early_labels`). The first prediction fixes the task, and
:class:`~exporter.model.ModelState` (under its lock) hands the waiting values to
:func:`encode_early_labels`, which encodes them one by one as a label batch would be, so that
a value that does not fit drops alone (the model counts it as expired, ``task_mismatch``)
and the others still join.

Pure: no HTTP, no Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence

from exporter.encoding import encode_targets
from exporter.errors import RejectedInput
from exporter.schema import ModelSchema, class_kind_of
from exporter.typedefs import ClassValue, WireValue


def encode_early_labels(
    schema: ModelSchema, values: Sequence[WireValue], *, max_classes: int, model: str
) -> list[WireValue | None]:
    """Each value encoded for ``schema``'s task (known), committing the classes it brings;
    None for one that does not fit the task or would exceed ``max_classes``
    (``limits.max_classes``). ``model`` names the model in the (discarded) rejections."""
    task = schema.task
    assert task is not None
    out: list[WireValue | None] = []
    for value in values:
        new: dict[ClassValue, int] = {}
        kind = schema.codec.kind or (None if task == "regression" else class_kind_of(value))
        try:
            code = encode_targets(
                [value],
                task=task,
                codec=schema.codec,
                kind=kind,
                new_classes=new,
                field_of=str,
                model=model,
            )
            task_now = schema.check_classes(task, new, max_classes, model)
        except RejectedInput:
            out.append(None)
            continue
        schema.commit(task_now, kind, new)
        task = task_now
        out.append(float(code[0]))
    return out
