"""The name rule (exporter/names.py), directly, and everywhere a name enters: the store, the
config, and HTTP (ingest, labels, references, with a 422 naming the field and the value)."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest

from exporter.config import load_settings
from exporter.errors import ConfigError, Reason, RejectedInput
from exporter.names import ALLOWED, check_name, name_problem
from exporter.reference import build_reference
from exporter.store import Store
from tests.conftest import T0, FakeClock
from tests.test_store import events, labels

VALID = [
    "fraud",
    "betrug prüfung",
    "50%",
    "模型",
    "%2F",
    "a.b",
    "...",
    "v2 (canary)",
    'we"ird\\name',
    "🚀",
    "x" * 128,
]
INVALID = {
    "": "empty",
    " ": "only whitespace",
    "\t": "only whitespace",
    ".": "dot segment",
    "..": "dot segment",
    "team/fraud": "'/'",
    "/": "'/'",
    " fraud": "starts or ends with a space",
    "fraud ": "starts or ends with a space",
    "fraud\u200b": "U+200B (ZERO WIDTH SPACE)",
    "fr\u200daud": "U+200D (ZERO WIDTH JOINER)",
    "fr\u200caud": "U+200C (ZERO WIDTH NON-JOINER)",
    "\ufefffraud": "U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
    "\u202efraud": "U+202E (RIGHT-TO-LEFT OVERRIDE)",
    "\u2066fraud\u2069": "U+2066 (LEFT-TO-RIGHT ISOLATE)",
    "fraud\x00": "U+0000 (Cc)",
    "fra\nud": "U+000A (Cc)",
    "fraud\x7f": "U+007F (Cc)",
    "fraud\x85": "U+0085 (Cc)",
    "fra\u00a0ud": "U+00A0 (NO-BREAK SPACE)",
    "fra\u3000ud": "U+3000 (IDEOGRAPHIC SPACE)",
    "fra\u2028ud": "U+2028 (LINE SEPARATOR)",
    "fraud\ue000": "U+E000 (Co)",
    "fraud\ud800": "U+D800 (Cs)",
    "fraud\U000e0080": "U+E0080 (Cn)",
    "e\u0301": "NFC",
}


@pytest.mark.parametrize("name", VALID)
def test_printable_names_are_valid(name: str) -> None:
    assert name_problem(name) is None
    check_name(name, "model")  # does not raise


@pytest.mark.parametrize(("name", "why"), INVALID.items())
def test_names_no_person_means_are_refused_saying_why(name: str, why: str) -> None:
    problem = name_problem(name)
    assert problem is not None and why in problem
    with pytest.raises(RejectedInput) as refused:
        check_name(name, "events.model_version")
    e = refused.value
    assert (e.reason, e.status_code, e.field, e.value) == (
        Reason.INVALID_NAME,
        422,
        "events.model_version",
        name,
    )
    assert ALLOWED in e.message


def test_a_name_not_in_nfc_is_refused_with_its_nfc_spelling() -> None:
    problem = name_problem("caf" + "e\u0301")
    assert problem is not None and repr("caf\u00e9") in problem
    assert name_problem("caf\u00e9") is None


def test_the_rule_is_the_unicode_categories_it_documents() -> None:
    """For every code point c, ``"0" + c + "0"`` is a valid name exactly when c is a letter,
    mark, number, punctuation or symbol (or the ASCII space) and not '/'; strings that are not
    in NFC are left out (they are refused for that)."""
    allowed = set("LMNPS")
    wrong = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        name = f"0{char}0"
        if not unicodedata.is_normalized("NFC", name):
            continue
        expected = char != "/" and (char == " " or unicodedata.category(char)[0] in allowed)
        if (name_problem.__wrapped__(name) is None) != expected:
            wrong.append(f"U+{code:04X} {unicodedata.category(char)}")
    assert wrong == []


def test_verdicts_are_cached() -> None:
    name = "cached-name-\u00e9"
    name_problem(name)
    hits = name_problem.cache_info().hits
    name_problem(name)
    assert name_problem.cache_info().hits == hits + 1


# -- the store: where names enter the state --------------------------------------------------------


def make_store(**overrides: object) -> Store:
    return Store(load_settings(**overrides), clock=FakeClock())


def test_the_store_refuses_invalid_names_and_registers_nothing() -> None:
    store = make_store(models={"declared": {"task": "binary"}})
    attempts = [
        (lambda: store.add_predictions("team/fraud", None, events(["a"])), "model"),
        (lambda: store.add_predictions("m", "v1\u200b", events(["a"])), "model_version"),
        (lambda: store.add_labels("fraud\u202e", labels(["a"])), "model"),
        (lambda: store.add_labels(" declared", labels(["a"])), "model"),
    ]
    ref = build_reference(
        {"x": [1.0, 2.0]}, settings=store.settings.drift, source="upload", created=T0
    )
    attempts += [
        (lambda: store.set_reference("..", None, ref), "model"),
        (lambda: store.set_reference("m", "v\n1", ref), "model_version"),
    ]
    for attempt, where in attempts:
        with pytest.raises(RejectedInput) as refused:
            attempt()
        assert (refused.value.reason, refused.value.field) == (Reason.INVALID_NAME, where)
    assert store.models() == []


# -- the config ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["team/fraud", "fraud\u200b", " fraud", "..", "x" * 129])
def test_a_config_model_key_that_is_no_name_fails_start_up_naming_the_key(name: str) -> None:
    with pytest.raises(ConfigError) as failed:
        load_settings(models={"ok": {"task": "binary"}, name: {"task": "binary"}})
    message = str(failed.value)
    assert "config key 'models'" in message and repr(name) in message


def test_the_length_of_a_config_model_key_follows_the_configured_limit() -> None:
    name = "m" * 40
    load_settings(models={name: {"task": "binary"}})
    with pytest.raises(ConfigError, match="max_name_length"):
        load_settings(limits={"max_name_length": 32}, models={name: {"task": "binary"}})


@pytest.mark.parametrize("name", ["v/1", " default", "v\x001"])
def test_the_default_version_must_be_a_name(name: str) -> None:
    with pytest.raises(ConfigError, match="config key 'default_model_version'"):
        load_settings(default_model_version=name)


def test_a_reference_file_is_loaded_for_a_valid_unicode_model_name(
    tmp_path: Path, make_exporter
) -> None:
    path = tmp_path / "ref.csv"
    path.write_text("x\n1\n2\n3\n", encoding="utf-8")
    exp = make_exporter(models={"betrug prüfung": {"task": "binary", "reference_file": str(path)}})
    status = exp.status(quote("betrug prüfung", safe=""))
    assert status["model"] == "betrug prüfung" and status["features"] == [
        {"name": "x", "kind": "numeric"}
    ]


# -- over HTTP -------------------------------------------------------------------------------------


def test_ingest_labels_and_references_refuse_invalid_names_with_a_422(make_exporter) -> None:
    exp = make_exporter()
    event = {"id": "a", "features": {"x": 1.0}, "prediction": 1}
    cases = [
        ("/v1/predictions", {"model": "team/fraud", "events": [event]}, "model"),
        (
            "/v1/predictions",
            {"model": "m", "model_version": " v1", "events": [event]},
            "model_version",
        ),
        ("/v1/labels", {"model": "m\u200b", "labels": [{"id": "a", "label": 1}]}, "model"),
    ]
    for path, body, where in cases:
        r = exp.client.post(path, json=body)
        assert r.status_code == 422, r.text
        got = r.json()
        assert (got["reason"], got["field"]) == ("invalid_name", where)
        assert got["value"] == (
            body.get("model_version") if where == "model_version" else body["model"]
        )
        assert "printable" in got["detail"]
    ref = {"features": {"x": [1.0, 2.0]}}
    r = exp.client.put("/v1/models/m/reference", params={"model_version": "v\u202e1"}, json=ref)
    assert (r.status_code, r.json()["reason"], r.json()["field"]) == (
        422,
        "invalid_name",
        "model_version",
    )
    r = exp.client.put(f"/v1/models/{quote('m' + chr(0x2066), safe='')}/reference", json=ref)
    assert (r.status_code, r.json()["reason"], r.json()["field"]) == (422, "invalid_name", "model")
    assert exp.client.get("/v1/models").json() == {"models": []}
    metrics = exp.metrics()
    rejected = metrics[
        ("model_exporter_events_rejected_total", frozenset({("reason", "invalid_name")}))
    ]
    assert rejected == 5
