"""Delivering a batch (exporter.client._delivery): only what the exporter refuses is lost.

Directly, against a fake exporter that answers as the real one does (it validates the whole
request and refuses at the first bad event), and end to end against a real exporter.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from exporter.client import MonitorClient
from exporter.client._delivery import (
    TOO_MANY_REFUSALS,
    Backoff,
    Batch,
    Delivery,
    _stdlib_encoder,
    encoder,
    refusal_budget,
)
from exporter.client._stats import Tally
from exporter.client._transport import Response
from tests.conftest import parse_metrics, sample
from tests.helpers import ExporterProcess

Bad = Callable[[dict[str, Any]], str | None]  # an event -> the reason it is refused, or None


class FakeExporter:
    """Refuses a request at its first bad event, naming it (``events[i].prediction``) unless
    ``unnamed``; 413 beyond ``max_events``; ``script`` answers first (503, 429, or a whole
    body). Records every request's size and the ids it accepted."""

    def __init__(
        self,
        bad: Bad = lambda event: None,
        *,
        unnamed: bool = False,
        max_events: int | None = None,
        script: list[tuple[int, dict[str, Any]]] | None = None,
    ) -> None:
        self.bad = bad
        self.unnamed = unnamed
        self.max_events = max_events
        self.script = script or []
        self.sizes: list[int] = []
        self.accepted: list[str] = []

    def request(self, method: str, path: str, body: bytes) -> Response:
        payload = json.loads(body)
        items = "events" if path == "/v1/predictions" else "labels"
        events = payload[items]
        self.sizes.append(len(events))
        if self.script:
            status, answer = self.script.pop(0)
            return self._answer(status, answer)
        if self.max_events is not None and len(events) > self.max_events:
            return self._answer(413, {"detail": "too many", "reason": "batch_too_large"})
        for i, event in enumerate(events):
            reason = self.bad(event)
            if reason is not None:
                answer = {"detail": f"event {event['id']} is bad", "reason": reason}
                if not self.unnamed:
                    answer["field"] = f"{items}[{i}].prediction"
                return self._answer(422, answer)
        self.accepted.extend(e["id"] for e in events)
        return self._answer(200, {"accepted": len(events)})

    @staticmethod
    def _answer(status: int, answer: dict[str, Any]) -> Response:
        return Response(status, json.dumps(answer).encode(), answer.get("retry_after"))


def deliver(
    exporter: FakeExporter,
    n: int = 500,
    *,
    kind: str = "prediction",
    max_retries: int = 3,
    hold: bool = False,
    prediction: Callable[[int], Any] = lambda i: i % 2,
) -> tuple[Tally, Batch | None]:
    tally = Tally()
    delivery = Delivery(
        exporter,
        tally,
        max_retries=max_retries,
        backoff=Backoff(0.001, 0.002),
        stop=threading.Event(),
        encode=encoder(),
    )
    if kind == "prediction":
        bodies = [
            {"id": f"e{i}", "features": {"x": i}, "prediction": prediction(i)} for i in range(n)
        ]
    else:
        bodies = [{"id": f"e{i}", "label": prediction(i)} for i in range(n)]
    batch = delivery.batch(kind, "m", "v1", bodies)  # type: ignore[arg-type]
    return tally, delivery.send(batch, hold_unknown_model=hold)


def bad_ids(*ids: int) -> Bad:
    wanted = {f"e{i}" for i in ids}
    return lambda event: "string_too_long" if event["id"] in wanted else None


def test_one_named_bad_event_among_500_loses_exactly_it_in_two_requests() -> None:
    exporter = FakeExporter(bad_ids(137))
    tally, held = deliver(exporter)
    stats = tally.snapshot(0)
    assert exporter.accepted == [f"e{i}" for i in range(500) if i != 137]
    assert exporter.sizes == [500, 499]
    assert stats.sent_events == 499 and stats.rejected_by_reason == {"string_too_long": 1}
    assert stats.dropped_rejected == 1 and stats.requests == 2 and held is None


def test_k_named_bad_events_cost_k_plus_one_requests() -> None:
    bad = [0, 3, 250, 251, 499]
    exporter = FakeExporter(bad_ids(*bad))
    tally, _ = deliver(exporter)
    assert sorted(exporter.accepted) == sorted(f"e{i}" for i in range(500) if i not in bad)
    assert len(exporter.sizes) == len(bad) + 1
    assert tally.snapshot(0).rejected_by_reason == {"string_too_long": len(bad)}


def test_a_refusal_naming_no_event_is_bisected_down_to_the_bad_event() -> None:
    exporter = FakeExporter(bad_ids(321), unnamed=True)
    tally, _ = deliver(exporter)
    stats = tally.snapshot(0)
    assert sorted(exporter.accepted) == sorted(f"e{i}" for i in range(500) if i != 321)
    assert stats.rejected_by_reason == {"string_too_long": 1}
    assert len(exporter.sizes) <= 2 * math.ceil(math.log2(500)) + 1  # 19
    assert 1 in exporter.sizes  # down to the bad event alone


def test_bisection_finds_several_unnamed_bad_events_within_the_budget() -> None:
    bad = [7, 190, 420]
    exporter = FakeExporter(bad_ids(*bad), unnamed=True)
    tally, _ = deliver(exporter)
    stats = tally.snapshot(0)
    assert sorted(exporter.accepted) == sorted(f"e{i}" for i in range(500) if i not in bad)
    assert stats.rejected_by_reason == {"string_too_long": 3}
    refused = len(exporter.sizes) - stats.batches_sent
    assert refused < refusal_budget(500) and len(exporter.sizes) <= 1 + 2 * refused


def test_413_splits_in_halves_and_loses_nothing() -> None:
    exporter = FakeExporter(max_events=100)
    tally, _ = deliver(exporter)
    stats = tally.snapshot(0)
    assert sorted(exporter.accepted) == sorted(f"e{i}" for i in range(500))
    assert sorted(exporter.sizes) == sorted([500, 250, 250, *[125] * 4, *[62, 63] * 4])
    assert stats.batches_sent == 8 and stats.dropped_rejected == 0


@pytest.mark.parametrize("reason", ["unknown_model", "too_many_models", "too_many_versions"])
def test_a_refusal_of_the_whole_request_is_never_split(reason: str) -> None:
    exporter = FakeExporter(script=[(404, {"detail": "no", "reason": reason, "field": "model"})])
    tally, held = deliver(exporter)
    assert exporter.sizes == [500] and exporter.accepted == []
    assert tally.snapshot(0).rejected_by_reason == {reason: 500} and held is None


def test_a_4xx_that_is_not_the_exporters_drops_the_batch_under_its_status() -> None:
    exporter = FakeExporter(script=[(403, {"detail": "Forbidden"})])  # a proxy's answer
    tally, _ = deliver(exporter)
    assert exporter.sizes == [500]
    assert tally.snapshot(0).rejected_by_reason == {"http_403": 500}


def test_named_bad_events_never_cost_a_good_one() -> None:
    """42 bad events spread over 500, each named: more refusals than the bisection budget,
    yet every good event arrives (named refusals remove an event each: bounded by n)."""
    bad = {f"e{i}" for i in range(0, 500, 12)}
    assert len(bad) == 42 > refusal_budget(500)
    exporter = FakeExporter(lambda event: "string_too_long" if event["id"] in bad else None)
    tally, _ = deliver(exporter)
    stats = tally.snapshot(0)
    assert sorted(exporter.accepted) == sorted(f"e{i}" for i in range(500) if f"e{i}" not in bad)
    assert stats.rejected_by_reason == {"string_too_long": 42}
    assert len(exporter.sizes) == 43  # k + 1 requests


def test_a_batch_of_named_bad_events_costs_one_request_per_event() -> None:
    exporter = FakeExporter(lambda event: "task_mismatch")
    tally, _ = deliver(exporter, 60)
    stats = tally.snapshot(0)
    assert len(exporter.sizes) == 60 and exporter.accepted == []
    assert stats.rejected_by_reason == {"task_mismatch": 60}


def test_bisection_stops_at_its_budget() -> None:
    """Every event bad and none named: bisection would cost about 2n requests; it stops at the
    budget, and what is left is dropped under too_many_refusals, counted."""
    exporter = FakeExporter(lambda event: "task_mismatch", unnamed=True)
    tally, _ = deliver(exporter)
    stats = tally.snapshot(0)
    budget = refusal_budget(500)
    # Each bisection sends two halves; a half of one event that is refused is dropped alone.
    assert exporter.accepted == [] and budget < len(exporter.sizes) <= 2 * budget + 1
    assert stats.rejected_by_reason[TOO_MANY_REFUSALS] > 400
    assert sum(stats.rejected_by_reason.values()) == stats.dropped_rejected == 500


@pytest.mark.parametrize(
    "answer",
    [
        (404, {"detail": "no endpoint at '/v1/v1/predictions'", "reason": "unknown_path"}),
        (405, {"detail": "GET is not allowed", "reason": "method_not_allowed"}),
        (400, {"detail": "not JSON", "reason": "malformed_json"}),
        (422, {"detail": "model: not a valid name", "reason": "invalid_name", "field": "model"}),
        (422, {"detail": "a reason from a newer exporter", "reason": "something_new"}),
    ],
)
def test_a_refusal_of_the_whole_request_costs_one_request(answer: tuple[int, Any]) -> None:
    exporter = FakeExporter(script=[answer])
    tally, _ = deliver(exporter)
    assert exporter.sizes == [500]
    assert tally.snapshot(0).rejected_by_reason == {answer[1]["reason"]: 500}


def test_labels_of_an_unknown_model_are_handed_back_when_held() -> None:
    unknown = (404, {"detail": "'m' is unknown", "reason": "unknown_model", "field": "model"})
    tally, held = deliver(FakeExporter(script=[unknown]), 20, kind="label", hold=True)
    assert held is not None and held.kind == "label" and len(held.events) == 20
    assert tally.snapshot(0).dropped_rejected == 0
    tally, held = deliver(FakeExporter(script=[unknown]), 20, kind="label", hold=False)
    assert held is None and tally.snapshot(0).rejected_by_reason == {"unknown_model": 20}


def test_retries_are_bounded_per_batch_across_its_pieces() -> None:
    refusal = (422, {"detail": "bad", "reason": "invalid_field", "field": "events[0].prediction"})
    script = [(503, {}), refusal, (429, {"retry_after": 0.001}), (503, {})]
    exporter = FakeExporter(script=script)
    tally, _ = deliver(exporter, 10, max_retries=2)
    stats = tally.snapshot(0)
    assert stats.retries == 2 and len(exporter.sizes) == 4
    assert stats.dropped_rejected == 1 and stats.dropped_failed == 9
    assert "HTTP 503 (after 2 retries)" in (stats.last_error or "")


def test_an_event_that_cannot_be_encoded_is_dropped_alone() -> None:
    tally = Tally()
    delivery = Delivery(
        FakeExporter(),
        tally,
        max_retries=0,
        backoff=Backoff(0.001, 0.001),
        stop=threading.Event(),
        encode=encoder(),
    )
    bodies: list[dict[str, Any]] = [
        {"id": "a", "features": {"x": 1.0}, "prediction": 1},
        {"id": "b", "features": {"x": object()}, "prediction": 1},  # changed after logging
    ]
    batch = delivery.batch("prediction", "m", None, bodies)
    assert len(batch.events) == 1
    assert tally.snapshot(0).rejected_by_reason == {"invalid_field": 1}


@pytest.mark.parametrize("encode", [encoder(), _stdlib_encoder()], ids=["msgspec", "stdlib"])
def test_a_body_is_the_json_of_the_request(encode: Callable[[Any], bytes]) -> None:
    events = [{"id": "a", "features": {"x": 1.5, "c": "é", "n": None}, "prediction": True}]
    batch = Batch("prediction", "m", "v1", [encode(e) for e in events])
    assert json.loads(batch.body(encode)) == {"model": "m", "model_version": "v1", "events": events}
    labels = Batch("label", "m", "v1", [encode({"id": "a", "label": 0})])
    assert json.loads(labels.body(encode)) == {"model": "m", "labels": [{"id": "a", "label": 0}]}
    assert json.loads(batch.part([]).body(encode))["events"] == []


# -- end to end: a real exporter ---------------------------------------------------------------

CONFIG = "quality: {min_samples: 1}\nlimits: {max_features: 10, max_body_bytes: 65536}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg = tmp_path_factory.mktemp("delivery") / "config.yaml"
    cfg.write_text(CONFIG)
    proc = ExporterProcess(cfg)
    yield proc
    proc.stop()


def predictions_total(server: ExporterProcess, model: str) -> float | None:
    metrics = parse_metrics(server.client.get("/metrics").text)
    return sample(metrics, "model_predictions_total", model=model, model_version="default")


def client_for(server: ExporterProcess, model: str) -> MonitorClient:
    return MonitorClient(server.url, model=model, flush_interval=60, flush_on_exit=False)


@pytest.mark.e2e
def test_one_bad_event_among_500_loses_exactly_one_against_the_exporter(
    server: ExporterProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "exporter.client"), client_for(server, "one") as client:
        for i in range(500):
            prediction = "x" * 300 if i == 123 else i % 2  # over limits.max_value_length
            assert client.log_prediction(f"e{i}", {"x": float(i)}, prediction)
        assert client.flush(30)
        stats = client.stats()
    assert predictions_total(server, "one") == 499
    assert stats.sent_events == 499 and stats.rejected_by_reason == {"string_too_long": 1}
    assert stats.requests == 2 and stats.dropped_failed == 0
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "string_too_long" in line and "events[123].prediction" in line  # the exporter's words


@pytest.mark.e2e
def test_the_issue_batch_an_int_id_numpy_values_and_a_nan_all_arrive(
    server: ExporterProcess,
) -> None:
    with client_for(server, "issue") as client:
        for i in range(499):
            client.log_prediction(f"e{i}", {"x": np.float64(i), "y": 1.0}, np.int64(i % 2))
        client.log_prediction(42, {"x": np.float64("nan"), "y": math.inf}, np.int64(1))
        client.log_label(np.int64(42), 1)
        assert client.flush(30)
        stats = client.stats()
    assert stats.sent_events == 501 and stats.dropped_rejected == 0
    assert predictions_total(server, "issue") == 500
    metrics = parse_metrics(server.client.get("/metrics").text)
    assert sample(metrics, "model_labels_total", model="issue", model_version="default") == 1


@pytest.mark.e2e
def test_several_bad_events_cost_one_request_each(server: ExporterProcess) -> None:
    bad = {0, 99, 100, 357, 499}
    with client_for(server, "several") as client:
        for i in range(500):
            client.log_prediction(f"e{i}", {"x": float(i)}, "x" * 300 if i in bad else 1)
        assert client.flush(30)
        stats = client.stats()
    assert predictions_total(server, "several") == 495
    assert stats.rejected_by_reason == {"string_too_long": 5} and stats.requests == 6


@pytest.mark.e2e
def test_too_many_features_names_the_event_so_one_resend_does(server: ExporterProcess) -> None:
    """One event brings 20 new features, over limits.max_features: the exporter names that
    event, so the client drops it and resends the rest once, and the exporter counts one
    rejected event, not the 500 of the first request (which would fire the rejected-events
    alert for one bad event)."""

    def rejected() -> float:
        metrics = parse_metrics(server.client.get("/metrics").text)
        return sample(metrics, "model_exporter_events_rejected_total", reason="too_many_features")

    before = rejected()
    with client_for(server, "wide") as client:
        for i in range(500):
            extra = {f"f{j}": 1.0 for j in range(20)} if i == 222 else {}
            client.log_prediction(f"e{i}", {"x": float(i), **extra}, 1)
        assert client.flush(30)
        stats = client.stats()
    assert predictions_total(server, "wide") == 499
    assert stats.rejected_by_reason == {"too_many_features": 1}
    assert stats.requests == 2
    assert rejected() - before == 1


@pytest.mark.e2e
def test_a_body_too_large_is_split_and_all_of_it_arrives(server: ExporterProcess) -> None:
    with client_for(server, "large") as client:
        for i in range(500):  # ~300 bytes each: 150 kB, over limits.max_body_bytes (64 kB)
            client.log_prediction(f"e{i}", {"note": "n" * 250, "x": float(i)}, 1)
        assert client.flush(30)
        stats = client.stats()
    assert predictions_total(server, "large") == 500
    assert stats.sent_events == 500 and stats.dropped_rejected == stats.dropped_failed == 0
    assert 3 <= stats.batches_sent <= stats.requests <= 15
