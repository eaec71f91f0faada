"""The exporter's exceptions.

::

    ExporterError          base of everything raised on purpose
    ├── ConfigError        invalid configuration: names the key and the value; fails start-up
    └── RejectedInput      a client's mistake: an HTTP 4xx whose status follows its ``Reason``
        │                  (400 malformed, 401 no or bad credentials, 403 not allowed from
        │                  this peer or for this model, 404 unknown model, version, path or
        │                  comparison, 405 method, 409 pinned version or a comparison that conflicts
        │                  with the join, 413 too large, 415 media type, 422 the rest)
        └── InvalidReference   reference data that cannot be used (uploaded or from a file)

A ``RejectedInput`` carries its reason, the field it is about (a path such as
``events[3].label``, or ``None`` when the whole request is at fault), the offending value and a
message, all set where the problem is detected; :attr:`RejectedInput.detail` formats them once,
and the HTTP layer sends them as they are. It is raised before any state changes, so a rejected
request leaves the exporter exactly as it was; the HTTP layer counts it in
``model_exporter_events_rejected_total{reason}``.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Any, Final


class Reason(StrEnum):
    """Why input was rejected: the fixed label set of ``model_exporter_events_rejected_total``."""

    MALFORMED_JSON = "malformed_json"
    MALFORMED_CSV = "malformed_csv"
    INVALID_FIELD = "invalid_field"  # wrong type, missing or unknown field
    NON_FINITE = "non_finite"  # NaN or +-Infinity
    OUT_OF_RANGE = "out_of_range"  # a regression's prediction or label beyond +-1e150
    INVALID_SCORE = "invalid_score"  # a score or probabilities that do not fit the model
    STRING_TOO_LONG = "string_too_long"
    BODY_TOO_LARGE = "body_too_large"
    BATCH_TOO_LARGE = "batch_too_large"
    TOO_MANY_MODELS = "too_many_models"
    TOO_MANY_VERSIONS = "too_many_versions"
    TOO_MANY_FEATURES = "too_many_features"
    TOO_MANY_CLASSES = "too_many_classes"
    TASK_MISMATCH = "task_mismatch"  # e.g. a string class sent to a regression model
    INVALID_TIMESTAMP = "invalid_timestamp"
    DUPLICATE_ID = "duplicate_id"  # the same id twice in one batch
    UNKNOWN_MODEL = "unknown_model"
    UNKNOWN_VERSION = "unknown_version"
    INVALID_NAME = "invalid_name"  # a model or version name outside exporter.names' rule
    PINNED_VERSION = "pinned_version"  # a version a comparison names cannot be removed
    INVALID_COMPARISON = "invalid_comparison"  # a comparison body that breaks its rules
    NO_COMPARISON = "no_comparison"  # ending a comparison where none is declared
    UNKNOWN_ID = "unknown_id"  # a label for an id never seen (when early labels are disabled)
    INVALID_REFERENCE = "invalid_reference"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNKNOWN_PATH = "unknown_path"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAUTHORIZED = "unauthorized"  # no credentials, or wrong ones (exporter.auth)
    FORBIDDEN = "forbidden"  # not from this peer, or not for this model (exporter.auth)
    OVERLOADED = "overloaded"  # too many writes in flight: 429 with Retry-After (exporter.server)
    STARTING = "starting"  # still restoring the state snapshot: 503 with Retry-After (startup)


#: A field that names one event or label of a batch: ``events[3]...``, ``labels[0]...``.
_EVENT_FIELD = re.compile(r"(?:events|labels)\[(\d+)\]")

#: HTTP status of each rejection reason; any reason not listed is 422 Unprocessable Content.
STATUS: dict[Reason, int] = {
    Reason.MALFORMED_JSON: 400,
    Reason.MALFORMED_CSV: 400,
    Reason.UNAUTHORIZED: 401,
    Reason.FORBIDDEN: 403,
    Reason.UNKNOWN_MODEL: 404,
    Reason.UNKNOWN_VERSION: 404,
    Reason.UNKNOWN_PATH: 404,
    Reason.NO_COMPARISON: 404,
    Reason.METHOD_NOT_ALLOWED: 405,
    Reason.PINNED_VERSION: 409,
    Reason.BODY_TOO_LARGE: 413,
    Reason.BATCH_TOO_LARGE: 413,
    Reason.UNSUPPORTED_MEDIA_TYPE: 415,
    Reason.OVERLOADED: 429,
    Reason.STARTING: 503,
}

#: Longest string sent back as the offending ``value`` of a rejection.
VALUE_LENGTH: Final = 64


class _NoValue:
    """Marks a rejection that has no offending value (a missing field, a whole request)."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = _NoValue()


class ExporterError(Exception):
    """Base class of the exporter's own exceptions."""


class ConfigError(ExporterError):
    """The configuration is invalid; the message names the key and the offending value."""


class RejectedInput(ExporterError):
    """Input refused before any state change; an HTTP 4xx whose status follows the reason.

    Parameters
    ----------
    reason : Reason
        Why; also the ``reason`` label of the rejection counter.
    message : str
        What is wrong, for a person; without the field path, which :attr:`detail` prefixes.
    field : str, optional
        Where: a path into the request (``events[3].label``, ``labels[0].id``, ``model``), or
        ``None`` when the request as a whole is at fault.
    value : object, optional
        The offending value, sent back (truncated) in the response's ``value``.
    events : int
        Events the request carried, when only the decoder could tell (a request that did not
        parse counts as one); the HTTP layer otherwise counts the decoded batch.
    retry_after : int, optional
        Seconds the client should wait before it tries again (the ``Retry-After`` header).
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        field: str | None = None,
        value: object = NO_VALUE,
        events: int = 1,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(reason, message, field, value)
        self.reason = reason
        self.message = message
        self.field = field
        self.value = value
        self.events = max(1, events)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.detail

    @property
    def detail(self) -> str:
        """The message a person reads: ``"<field>: <message>"``."""
        return f"{self.field}: {self.message}" if self.field else self.message

    @property
    def status_code(self) -> int:
        return STATUS.get(self.reason, 422)

    @property
    def event(self) -> int | None:
        """The index of the one event (or label) at fault, when :attr:`field` names one
        (``events[3].label`` -> 3): the rest of its batch was not judged.

        >>> RejectedInput(Reason.NON_FINITE, "NaN", field="labels[12].label").event
        12
        >>> RejectedInput(Reason.UNKNOWN_MODEL, "unknown", field="model").event is None
        True
        """
        match = _EVENT_FIELD.match(self.field or "")
        return int(match.group(1)) if match else None

    def body(self) -> dict[str, Any]:
        """The JSON body of the 4xx: ``detail`` and ``reason``, plus ``field`` and ``value``
        when the rejection names them."""
        out: dict[str, Any] = {"detail": self.detail, "reason": self.reason.value}
        if self.field is not None:
            out["field"] = self.field
        if self.value is not NO_VALUE:
            out["value"] = json_value(self.value)
        return out


class InvalidReference(RejectedInput):
    """Reference data that cannot be used: its reason is ``invalid_reference`` (or
    ``malformed_csv`` for a CSV body that cannot be read), its field the feature or column."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: object = NO_VALUE,
        reason: Reason = Reason.INVALID_REFERENCE,
    ) -> None:
        super().__init__(reason, message, field=field, value=value)


def json_value(value: object) -> Any:
    """A client's value as it can be sent back in JSON: numbers, bools and null as they are,
    strings cut to :data:`VALUE_LENGTH` characters, anything else as its (cut) ``repr``.

    >>> json_value(3), json_value(float("nan")), json_value("x" * 70)[-4:]
    (3, 'nan', 'x...')
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) < 2**63:
            return value
        text = str(value)  # a huge number: cut like a string
        return text if len(text) <= VALUE_LENGTH else text[: VALUE_LENGTH - 3] + "..."
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= VALUE_LENGTH else text[: VALUE_LENGTH - 3] + "..."


def describe_value(value: object) -> str:
    """A short, quoted rendering of a client's value for messages.

    >>> describe_value("abc"), describe_value(1.5)
    ("'abc'", '1.5')
    """
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
