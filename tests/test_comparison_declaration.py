"""Declaring a comparison: the body's rules, the model's pins and join keying, the config key,
and the ``PUT``/``DELETE /v1/models/{model}/comparison`` routes.

Directly (:mod:`exporter.comparison`, :class:`~exporter.model.ModelState` and the store with a
fake clock), then over HTTP with ``make_exporter``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.app import create_app
from exporter.comparison import Declaration, check_limits, parse_declaration
from exporter.config import load_settings
from exporter.errors import ConfigError, Reason, RejectedInput
from exporter.model import ModelState
from exporter.store import Store
from tests.conftest import T0, FakeClock, sample
from tests.test_store import events, labels, version

BODY: dict[str, Any] = {"champion": "v1", "challengers": ["v2"], "mode": "split"}


def refused(call: Any) -> RejectedInput:
    with pytest.raises(RejectedInput) as caught:
        call()
    return caught.value


def declared(mode: str = "split", *challengers: str) -> Declaration:
    return parse_declaration(
        {"champion": "v1", "challengers": list(challengers or ["v2"]), "mode": mode}
    )


def make_state(**overrides: Any) -> ModelState:
    return ModelState("m", None, load_settings(**overrides), T0)


# -- the body -------------------------------------------------------------------------------------


def test_a_valid_body_is_read_as_it_was_sent() -> None:
    d = parse_declaration({"mode": "shadow", "challengers": ["b", "a"], "champion": "v 1"})
    assert (d.champion, d.challengers, d.mode, d.versions) == (
        "v 1",
        ("b", "a"),
        "shadow",
        ("v 1", "b", "a"),
    )


@pytest.mark.parametrize(
    ("body", "reason", "field", "value"),
    [
        (["v1"], Reason.INVALID_FIELD, None, ["v1"]),
        ({**BODY, "alpha": 0.05}, Reason.INVALID_FIELD, "alpha", 0.05),
        ({"champion": "v1", "challengers": ["v2"]}, Reason.INVALID_FIELD, "mode", None),
        ({**BODY, "mode": "ab"}, Reason.INVALID_COMPARISON, "mode", "ab"),
        ({**BODY, "mode": 1}, Reason.INVALID_FIELD, "mode", 1),
        ({**BODY, "champion": 3}, Reason.INVALID_FIELD, "champion", 3),
        ({**BODY, "champion": "a/b"}, Reason.INVALID_NAME, "champion", "a/b"),
        ({**BODY, "challengers": "v2"}, Reason.INVALID_FIELD, "challengers", "v2"),
        ({**BODY, "challengers": []}, Reason.INVALID_COMPARISON, "challengers", []),
        ({**BODY, "challengers": ["v2", "v1"]}, Reason.INVALID_COMPARISON, "challengers[1]", "v1"),
        (
            {**BODY, "challengers": ["v2", "v3", "v2"]},
            Reason.INVALID_COMPARISON,
            "challengers[2]",
            "v2",
        ),
        ({**BODY, "challengers": ["v2", "."]}, Reason.INVALID_NAME, "challengers[1]", "."),
        ({**BODY, "challengers": ["v2", None]}, Reason.INVALID_FIELD, "challengers[1]", None),
    ],
)
def test_a_bad_body_is_refused_naming_the_field_and_value(
    body: Any, reason: Reason, field: str | None, value: Any
) -> None:
    e = refused(lambda: parse_declaration(body))
    assert (e.reason, e.field) == (reason, field)
    if field != "mode" or value is not None:  # a missing field has no value
        assert e.value == value
    assert e.status_code == 422


def test_the_limits_bound_the_challengers_and_the_name_lengths() -> None:
    three = declared("split", "v2", "v3", "v4")
    check_limits(three, max_versions=4, max_name_length=8)  # champion + 3 = 4 versions: fits
    e = refused(lambda: check_limits(three, max_versions=3, max_name_length=8))
    assert (e.reason, e.field, e.value) == (
        Reason.INVALID_COMPARISON,
        "challengers",
        ["v2", "v3", "v4"],
    )
    assert "at most 2" in e.message
    long = declared("split", "v2", "v" * 9)
    e = refused(lambda: check_limits(long, max_versions=5, max_name_length=8))
    assert (e.reason, e.field, e.value) == (Reason.STRING_TOO_LONG, "challengers[1]", "v" * 9)


# -- the model ------------------------------------------------------------------------------------


def test_a_comparison_pins_exactly_its_versions_and_a_replacement_restarts_it() -> None:
    state = make_state()
    first = state.set_comparison(declared("split", "v2", "v3"), T0)
    assert (first.champion, first.challengers, first.mode, first.started) == (
        "v1",
        ("v2", "v3"),
        "split",
        T0,
    )
    assert state.versions.pinned == {"v1", "v2", "v3"}
    assert state.snapshot(T0).comparison == first
    revision = state.revision
    second = state.set_comparison(declared("split", "v4"), T0 + 60)
    assert second.started == T0 + 60 and state.revision > revision
    assert state.versions.pinned == {"v1", "v4"}  # v2 and v3 are no longer pinned
    assert state.snapshot(T0 + 60).comparison == second
    assert state.end_comparison(T0 + 120) == second
    assert state.versions.pinned == set()
    assert state.snapshot(T0 + 120).comparison is None


def test_ending_without_a_comparison_is_no_comparison_404() -> None:
    state = make_state()
    e = refused(lambda: state.end_comparison(T0))
    assert (e.reason, e.status_code, e.field, e.value) == (
        Reason.NO_COMPARISON,
        404,
        "model",
        "m",
    )


def test_a_refused_declaration_changes_nothing() -> None:
    state = make_state(limits={"max_versions_per_model": 2})
    kept = state.set_comparison(declared(), T0)
    revision = state.revision
    e = refused(lambda: state.set_comparison(declared("split", "v2", "v3"), T0 + 1))
    assert e.reason is Reason.INVALID_COMPARISON and e.field == "challengers"
    assert state.snapshot(T0 + 1).comparison == kept
    assert state.versions.pinned == {"v1", "v2"} and state.revision == revision


def test_pinned_versions_are_not_deleted_nor_expired_until_the_comparison_ends() -> None:
    state = make_state(limits={"idle_model_ttl": "1h"}, join={"prediction_ttl": "1m"})
    state.add_predictions("v1", events(["a"]), T0)
    state.add_predictions("v2", events(["b"]), T0)
    state.set_comparison(declared(), T0)
    e = refused(lambda: state.delete_version("v1", T0))
    assert (e.reason, e.status_code) == (Reason.PINNED_VERSION, 409)
    later = T0 + 7200
    assert state.expire_idle(later, 3600) is False  # pinned: the model is never idle
    assert sorted(state.versions.names()) == ["v1", "v2"]
    state.end_comparison(later)
    assert state.delete_version("v1", later) == 0
    assert state.versions.names() == ["v2"]


def test_shadow_declared_before_the_first_event_joins_per_version() -> None:
    state = make_state()
    state.set_comparison(declared("shadow"), T0)
    state.add_predictions("v1", events(["r1"], prediction=1), T0)
    second = state.add_predictions("v2", events(["r1"], prediction=0), T0)
    assert second.duplicates == 0  # the same id by the challenger is not a duplicate
    assert state.add_labels(labels(["r1"], label=1), T0 + 1).joined == 1
    s = state.snapshot(T0 + 1)
    assert (version(s, "v1").counters.labels, version(s, "v2").counters.labels) == (1, 1)


def test_split_keeps_one_prediction_per_id() -> None:
    state = make_state()
    state.set_comparison(declared("split"), T0)
    state.add_predictions("v1", events(["r1"]), T0)
    assert state.add_predictions("v2", events(["r1"]), T0).duplicates == 1


def test_shadow_declared_after_traffic_rekeys_the_join_in_place() -> None:
    """A shadow v2 next to a running v1: v1's waiting predictions keep waiting (now keyed by
    (id, version)), v2 may predict the same ids, and one label joins both and pairs them."""
    state = make_state(join={"prediction_ttl": "1m"})
    state.add_predictions("v1", events(["a", "b"], prediction=1), T0)
    state.add_labels(labels(["b"], label=1), T0)  # "b" joined before the declaration
    state.set_comparison(declared("shadow"), T0 + 1)
    assert state.join.per_version is True
    assert state.add_predictions("v2", events(["a"], prediction=0), T0 + 2).duplicates == 0
    assert state.add_predictions("v1", events(["a", "b"]), T0 + 2).duplicates == 2  # still once
    assert state.add_labels(labels(["a"], label=1), T0 + 3).joined == 1
    s = state.snapshot(T0 + 3)
    assert (version(s, "v1").counters.labels, version(s, "v2").counters.labels) == (2, 1)
    assert s.pairs is not None
    counts = s.pairs.of("v2")
    assert counts is not None and (counts.total.b, counts.total.n) == (1, 1)


def test_ending_shadow_restores_one_prediction_per_id_and_keeps_what_waits() -> None:
    state = make_state(join={"prediction_ttl": "1m"})
    state.set_comparison(declared("shadow"), T0)
    state.add_predictions("v1", events(["a"]), T0)
    state.add_predictions("v2", events(["a"]), T0)
    state.end_comparison(T0 + 1)
    # New events: one prediction per id again, at once.
    assert state.add_predictions("v3", events(["a"]), T0 + 2).duplicates == 1
    state.add_predictions("v1", events(["c"]), T0 + 2)
    assert state.add_predictions("v2", events(["c"]), T0 + 2).duplicates == 1
    # What waited from the shadow comparison still joins: one label, both versions.
    assert state.add_labels(labels(["a"]), T0 + 3).joined == 1
    s = state.snapshot(T0 + 3)
    assert (version(s, "v1").counters.labels, version(s, "v2").counters.labels) == (1, 1)
    # join.prediction_ttl after the end the entries from before it are gone and the join is
    # keyed by id again; "c" (predicted after the end) still waits, under its id, and the ids
    # joined before remain duplicates.
    state.add_predictions("v1", events(["d"]), T0 + 61.5)
    assert state.join.per_version is False
    result = state.add_labels(labels(["c", "d", "a"]), T0 + 61.8)
    assert (result.joined, result.duplicates) == (2, 1)
    assert state.add_predictions("v2", events(["d"]), T0 + 61.9).duplicates == 1


# -- the store ------------------------------------------------------------------------------------


def test_a_comparison_registers_a_new_model_and_a_refused_one_does_not() -> None:
    store = Store(load_settings(limits={"max_versions_per_model": 2}), clock=FakeClock())
    refused(lambda: store.set_comparison("m", declared("split", "v2", "v3")))
    assert store.models() == []
    info = store.set_comparison("m", declared())
    assert store.get("m").snapshot(T0).comparison == info and info.started == T0
    assert refused(lambda: store.end_comparison("other")).reason is Reason.UNKNOWN_MODEL
    assert store.end_comparison("m") == info


# -- the config -----------------------------------------------------------------------------------


def test_the_task_is_optional_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  a: {categorical: [zip]}\n  b: {positive_class: 'yes'}\n"
        "  c: {task: multiclass}\n"
    )
    models = load_settings(path).models
    assert (models["a"].task, models["b"].task, models["c"].task) == (None, "binary", "multiclass")
    settings = load_settings(path)
    inferred = ModelState("a", settings.models["a"], settings, T0)
    inferred.add_predictions("v", events(["x"], prediction=2.5), T0)
    s = inferred.snapshot(T0)
    assert (s.task, s.task_declared) == ("regression", False)


@pytest.mark.parametrize(
    ("comparison", "fragments"),
    [
        ("{champion: v1, challengers: [v1], mode: split}", ["challengers[0]", "champion"]),
        ("{champion: v1, challengers: [v2], mode: ab}", ["mode", "unknown mode 'ab'"]),
        ("{champion: v1, challengers: [v2]}", ["mode: missing field"]),
    ],
)
def test_a_bad_config_comparison_is_one_line_naming_the_key(
    tmp_path: Path, comparison: str, fragments: list[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"models:\n  fraud:\n    comparison: {comparison}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message and "config key 'models.fraud.comparison'" in message
    for fragment in fragments:
        assert fragment in message


def test_a_config_comparison_over_the_limits_fails_start_up_naming_the_key() -> None:
    settings = load_settings(
        limits={"max_versions_per_model": 2},
        models={"fraud": {"comparison": {**BODY, "challengers": ["v2", "v3"]}}},
    )
    with pytest.raises(ConfigError) as caught:
        create_app(settings, clock=FakeClock(), drift_worker=False)
    message = str(caught.value)
    assert message.startswith("config key 'models.fraud.comparison.challengers': 2 challengers")
    assert "['v2', 'v3']" in message and "\n" not in message


# -- over HTTP ------------------------------------------------------------------------------------


def rejected(exp: Any, reason: str) -> float | None:
    return sample(exp.metrics(), "model_exporter_events_rejected_total", reason=reason)


def test_put_answers_the_comparison_as_the_status_shows_it(make_exporter: Any) -> None:
    exp = make_exporter()
    exp.predictions("m", [{"id": "a", "features": {"x": 1.0}, "prediction": 1}], model_version="v1")
    r = exp.client.put("/v1/models/m/comparison", json=BODY)
    assert r.status_code == 200, r.text
    stored = r.json()
    assert stored == {
        "champion": "v1",
        "challengers": ["v2"],
        "mode": "split",
        "started": "2027-01-15T08:00:00Z",
        "started_unix": T0,
        "pinned_versions": ["v1", "v2"],
    }
    status = exp.status("m")
    assert status["comparison"] == stored
    assert status["versions"]["v1"]["pinned"] is True
    exp.clock.advance(30)
    again = exp.client.put("/v1/models/m/comparison", json={**BODY, "challengers": ["v3"]}).json()
    assert again["started_unix"] == T0 + 30 and exp.status("m")["comparison"] == again
    r = exp.client.delete("/v1/models/m/versions/v1")
    assert (r.status_code, r.json()["reason"]) == (409, "pinned_version")


def test_a_comparison_may_precede_the_first_event(make_exporter: Any) -> None:
    exp = make_exporter()
    r = exp.client.put("/v1/models/new/comparison", json={**BODY, "mode": "shadow"})
    assert r.status_code == 200, r.text
    status = exp.status("new")
    assert status["comparison"]["mode"] == "shadow" and status["versions"] == {}


@pytest.mark.parametrize(
    ("body", "status", "reason", "field"),
    [
        ({**BODY, "mode": "ab"}, 422, "invalid_comparison", "mode"),
        ({**BODY, "challengers": ["v2", "v1"]}, 422, "invalid_comparison", "challengers[1]"),
        ({**BODY, "extra": True}, 422, "invalid_field", "extra"),
        (
            {**BODY, "challengers": ["v2", "v3", "v4", "v5", "v6"]},
            422,
            "invalid_comparison",
            "challengers",
        ),
    ],
)
def test_a_bad_put_is_a_counted_4xx_and_changes_nothing(
    make_exporter: Any, body: Any, status: int, reason: str, field: str
) -> None:
    exp = make_exporter()
    assert exp.client.put("/v1/models/m/comparison", json=BODY).status_code == 200
    before = exp.status("m")
    counted = rejected(exp, reason)
    r = exp.client.put("/v1/models/m/comparison", json=body)
    assert r.status_code == status
    assert (r.json()["reason"], r.json()["field"]) == (reason, field)
    assert rejected(exp, reason) == (counted or 0) + 1
    assert exp.status("m") == before


def test_malformed_json_is_400(make_exporter: Any) -> None:
    exp = make_exporter()
    r = exp.client.put(
        "/v1/models/m/comparison",
        content=b'{"champion": "v1",',
        headers={"content-type": "application/json"},
    )
    assert (r.status_code, r.json()["reason"]) == (400, "malformed_json")
    assert exp.client.get("/v1/models/m").status_code == 404  # nothing registered


def test_shadow_after_traffic_is_accepted_over_http(make_exporter: Any) -> None:
    exp = make_exporter()
    exp.predictions("m", [{"id": "a", "features": {"x": 1.0}, "prediction": 1}])
    r = exp.client.put("/v1/models/m/comparison", json={**BODY, "mode": "shadow"})
    assert r.status_code == 200, r.text
    assert exp.status("m")["comparison"]["mode"] == "shadow"
    answer = exp.predictions(
        "m", [{"id": "a", "features": {"x": 1.0}, "prediction": 0}], model_version="v2"
    )
    assert answer["duplicates"] == 0


def test_delete_ends_the_comparison_and_unpins(make_exporter: Any) -> None:
    exp = make_exporter()
    exp.predictions("m", [{"id": "a", "features": {"x": 1.0}, "prediction": 1}], model_version="v1")
    exp.client.put("/v1/models/m/comparison", json=BODY)
    exp.clock.advance(5)
    r = exp.client.delete("/v1/models/m/comparison")
    assert r.status_code == 200, r.text
    ended = r.json()
    assert (ended["model"], ended["started_unix"], ended["ended_unix"]) == ("m", T0, T0 + 5)
    assert ended["unpinned_versions"] == ["v1", "v2"] and "pinned_versions" not in ended
    status = exp.status("m")
    assert status["comparison"] is None and status["versions"]["v1"]["pinned"] is False
    r = exp.client.delete("/v1/models/m/comparison")
    assert (r.status_code, r.json()["reason"]) == (404, "no_comparison")
    assert exp.client.delete("/v1/models/m/versions/v1").status_code == 200
    r = exp.client.delete("/v1/models/nobody/comparison")
    assert (r.status_code, r.json()["reason"]) == (404, "unknown_model")


def test_a_config_comparison_is_applied_at_start_and_the_api_may_end_it(
    make_exporter: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  fraud:\n    comparison: {champion: v1, challengers: [v2, v3], mode: shadow}\n"
    )
    exp = make_exporter(config=str(path))
    shown = exp.status("fraud")["comparison"]
    assert (shown["challengers"], shown["mode"], shown["started_unix"]) == (
        ["v2", "v3"],
        "shadow",
        T0,
    )
    assert exp.client.delete("/v1/models/fraud/comparison").status_code == 200
    assert exp.status("fraud")["comparison"] is None
