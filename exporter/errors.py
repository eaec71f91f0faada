"""The exporter's exceptions.

::

    ExporterError      base of everything raised on purpose
    ├── ConfigError    invalid configuration: names the key and the value; fails start-up
    └── RejectedInput  a client's mistake: an HTTP 4xx whose status follows its ``Reason``
                       (400 malformed, 404 unknown model, 413 too large, 415 media type,
                       422 everything else)

A ``RejectedInput`` is raised before any state changes, so a rejected request leaves the exporter
exactly as it was; the HTTP layer answers it and counts it in
``model_exporter_events_rejected_total{reason}``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why input was rejected: the fixed label set of ``model_exporter_events_rejected_total``."""

    MALFORMED_JSON = "malformed_json"
    MALFORMED_CSV = "malformed_csv"
    INVALID_FIELD = "invalid_field"  # wrong type, missing or unknown field
    NON_FINITE = "non_finite"  # NaN or +-Infinity
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
    UNKNOWN_ID = "unknown_id"  # a label for an id never seen (when early labels are disabled)
    INVALID_REFERENCE = "invalid_reference"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"


class ExporterError(Exception):
    """Base class of the exporter's own exceptions."""


class ConfigError(ExporterError):
    """The configuration is invalid; the message names the key and the offending value."""


#: HTTP status of each rejection reason; any reason not listed is 422 Unprocessable Content.
STATUS: dict[Reason, int] = {
    Reason.MALFORMED_JSON: 400,
    Reason.MALFORMED_CSV: 400,
    Reason.UNKNOWN_MODEL: 404,
    Reason.BODY_TOO_LARGE: 413,
    Reason.BATCH_TOO_LARGE: 413,
    Reason.UNSUPPORTED_MEDIA_TYPE: 415,
}


class RejectedInput(ExporterError):
    """Input refused before any state change; an HTTP 4xx whose status follows the reason."""

    def __init__(self, reason: Reason, message: str, *, events: int = 1) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        #: How many events the rejected request carried (1 when it could not be parsed).
        self.events = max(1, events)

    @property
    def status_code(self) -> int:
        return STATUS.get(self.reason, 422)
