"""Declaring a comparison: the body ``{"champion", "challengers", "mode"}``, read and checked.

One reading for both doors: ``PUT /v1/models/{model}/comparison`` (JSON) and the config key
``models.<name>.comparison`` (YAML) hand the decoded body to :func:`parse_declaration`, which
returns a :class:`Declaration` or raises :class:`~exporter.errors.RejectedInput` naming the
field (``mode``, ``challengers[1]``) and the value. What only the model's limits decide (how many
challengers, how long a name) is :func:`check_limits`', called where the limits are known: by
the model when the declaration is applied (:meth:`~exporter.model.ModelState.set_comparison`).

The rules: ``champion`` a version name; ``challengers`` a non-empty list of distinct version
names, none of them the champion; ``mode`` ``split`` (independent traffic) or ``shadow`` (every
challenger predicts the same requests as the champion); no other field. Names follow
:func:`~exporter.names.check_name`. The versions need not exist yet.

Pure: no HTTP, no locks, no clock (the start time is the model's to set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, cast, get_args

from exporter.errors import Reason, RejectedInput, describe_value
from exporter.names import check_name

#: How a comparison's arms see traffic: independent requests, or the same requests.
ComparisonMode = Literal["split", "shadow"]
MODES: Final[tuple[str, ...]] = get_args(ComparisonMode)
FIELDS: Final = ("champion", "challengers", "mode")


@dataclass(frozen=True, slots=True)
class Declaration:
    """A valid comparison body, not yet applied (it gets its start time when it is)."""

    champion: str
    challengers: tuple[str, ...]
    mode: ComparisonMode

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version it names, champion first: the versions it pins."""
        return (self.champion, *self.challengers)


def parse_declaration(body: object) -> Declaration:
    """The declaration in a decoded body, or a rejection naming the field and the value.

    >>> parse_declaration({"champion": "v1", "challengers": ["v2"], "mode": "shadow"}).versions
    ('v1', 'v2')
    >>> parse_declaration({"champion": "v1", "challengers": ["v1"], "mode": "split"})
    Traceback (most recent call last):
    ...
    exporter.errors.RejectedInput: challengers[0]: 'v1' is the champion; a version cannot be \
compared with itself
    """
    if not isinstance(body, Mapping):
        raise RejectedInput(
            Reason.INVALID_FIELD,
            f"expected a JSON object {{{', '.join(FIELDS)}}}, got {describe_value(body)}",
            value=body,
        )
    for key in body:
        if key not in FIELDS:
            raise RejectedInput(
                Reason.INVALID_FIELD,
                f"unknown field; a comparison has {', '.join(FIELDS)}",
                field=str(key),
                value=body[key],
            )
    for key in FIELDS:
        if key not in body:
            raise RejectedInput(Reason.INVALID_FIELD, "missing field", field=key)
    champion = _name(body["champion"], "champion")
    challengers = _challengers(body["challengers"], champion)
    return Declaration(champion, challengers, _mode(body["mode"]))


def check_limits(declaration: Declaration, *, max_versions: int, max_name_length: int) -> None:
    """Refuse more challengers than ``max_versions - 1`` (every arm is a version of the model,
    within ``limits.max_versions_per_model``) and names over ``limits.max_name_length``."""
    fields = ("champion", *(f"challengers[{i}]" for i in range(len(declaration.challengers))))
    for field, name in zip(fields, declaration.versions, strict=True):
        if len(name) > max_name_length:
            raise RejectedInput(
                Reason.STRING_TOO_LONG,
                f"a version name of {len(name)} characters is over limits.max_name_length "
                f"({max_name_length})",
                field=field,
                value=name,
            )
    allowed = max_versions - 1
    if len(declaration.challengers) > allowed:
        raise RejectedInput(
            Reason.INVALID_COMPARISON,
            f"{len(declaration.challengers)} challengers, but at most {allowed}: the champion "
            f"and its challengers are versions of one model, and limits.max_versions_per_model "
            f"is {max_versions}",
            field="challengers",
            value=list(declaration.challengers),
        )


def _name(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise RejectedInput(
            Reason.INVALID_FIELD,
            f"expected a version name (a string), got {describe_value(value)}",
            field=field,
            value=value,
        )
    check_name(value, field)
    return value


def _challengers(value: object, champion: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise RejectedInput(
            Reason.INVALID_FIELD,
            f"expected a list of version names, got {describe_value(value)}",
            field="challengers",
            value=value,
        )
    if not value:
        raise RejectedInput(
            Reason.INVALID_COMPARISON,
            "a comparison needs at least one challenger",
            field="challengers",
            value=[],
        )
    names: list[str] = []
    for i, item in enumerate(value):
        field = f"challengers[{i}]"
        name = _name(item, field)
        if name == champion:
            raise RejectedInput(
                Reason.INVALID_COMPARISON,
                f"{name!r} is the champion; a version cannot be compared with itself",
                field=field,
                value=name,
            )
        if name in names:
            raise RejectedInput(
                Reason.INVALID_COMPARISON,
                f"{name!r} is already challengers[{names.index(name)}]; each challenger once",
                field=field,
                value=name,
            )
        names.append(name)
    return tuple(names)


def _mode(value: object) -> ComparisonMode:
    if not isinstance(value, str):
        raise RejectedInput(
            Reason.INVALID_FIELD,
            f"expected one of {', '.join(MODES)} (a string), got {describe_value(value)}",
            field="mode",
            value=value,
        )
    if value not in MODES:
        raise RejectedInput(
            Reason.INVALID_COMPARISON,
            f"unknown mode {value!r}; expected one of {', '.join(MODES)}",
            field="mode",
            value=value,
        )
    return cast(ComparisonMode, value)
