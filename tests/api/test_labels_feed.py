"""Outcome labels through the API: ``POST /labels`` (one, a list, or ``{"labels": [...]}``),
``GET /labels/{id}``, analyst verdicts as labels, and zero-amount authorisations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from riskstream.api import create_app


@pytest.fixture
def runtime(make_runtime: Callable[..., Any], make_scored: Callable[..., Any]) -> Any:
    """A runtime whose store holds transactions tx-1 .. tx-3 (tx-2 and tx-3 alerts)."""
    rt = make_runtime()
    rows = [make_scored(1), make_scored(2, score=0.995, decision="review"),
            make_scored(3, score=0.9995, decision="block")]
    rt.results.write([r for r, _ in rows], [a for _, a in rows if a])
    return rt


@pytest.fixture
def client(runtime: Any) -> TestClient:
    return TestClient(create_app(runtime))


def test_one_label_is_stored_queued_and_readable(client: TestClient, runtime: Any) -> None:
    resp = client.post("/labels", json={"transaction_id": "tx-1", "label": "fraud",
                                        "reported_at": "2024-01-08T00:00:00Z"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["new"], body["rejected"]) == (1, 1, 0)
    assert runtime.core.labels_waiting == 1  # folded in with the next batch
    got = client.get("/labels/tx-1").json()
    assert got["label"] == 1 and got["applied"] is False and got["source"] == "api"
    assert client.get("/labels/nope").status_code == 404


@pytest.mark.parametrize("wrap", [list, lambda items: {"labels": items}])
def test_bulk_labels_are_idempotent(client: TestClient, wrap: Callable[[Any], Any]) -> None:
    items = [{"transaction_id": f"tx-{i}", "label": i % 2, "source": "chargebacks"}
             for i in range(1, 4)]
    first = client.post("/labels", json=wrap(items)).json()
    assert (first["new"], first["updated"], first["unchanged"]) == (3, 0, 0)
    again = client.post("/labels", json=wrap(items)).json()
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, 3)
    items[0]["label"] = 0  # a correction
    fixed = client.post("/labels", json=wrap(items)).json()
    assert (fixed["updated"], fixed["unchanged"]) == (1, 2)


def test_bad_items_are_refused_by_name_and_the_rest_goes_in(
    client: TestClient, runtime: Any
) -> None:
    resp = client.post("/labels", json=[
        {"transaction_id": "tx-1", "label": 1},
        {"transaction_id": "tx-2", "label": "maybe"},
        {"label": 1},
        {"transaction_id": "tx-3", "label": 0, "reported_at": "yesterday"},
        "not an object",
    ])
    assert resp.status_code == 200
    body = resp.json()
    assert body["accepted"] == 1 and body["rejected"] == 4
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "label"), (2, "transaction_id"), (3, "reported_at"), (4, "body")]
    assert runtime.metrics.value("labels_total", source="api", outcome="rejected") == 4
    assert runtime.metrics.value("labels_total", source="api", outcome="accepted") == 1


@pytest.mark.parametrize("body", [b"{not json", b"42", b"[]"])
def test_not_labels_is_a_422(client: TestClient, body: bytes) -> None:
    resp = client.post("/labels", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body"]


def test_all_bad_is_a_422_naming_the_field(client: TestClient) -> None:
    resp = client.post("/labels", json={"transaction_id": "tx-1", "label": 7})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", 0, "label"]


def test_an_analyst_verdict_is_an_outcome_label(client: TestClient, runtime: Any) -> None:
    alert_id = client.get("/alerts", params={"decision": "review"}).json()["items"][0]["id"]
    assert client.post(f"/alerts/{alert_id}/label", json={"verdict": "fraud"}).status_code == 200
    got = client.get("/labels/tx-2").json()
    assert got["label"] == 1 and got["source"] == "analyst"
    assert runtime.core.labels_waiting == 1


def test_zero_amount_authorisations_are_scored_negative_refused(
    client: TestClient, make_tx: Callable[..., dict[str, Any]]
) -> None:
    ok = client.post("/predict", json=make_tx(transaction_id="auth-0", amount=0))
    assert ok.status_code == 200, ok.text
    bad = client.post("/predict", json=make_tx(transaction_id="neg", amount=-1))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "amount"]


def test_alert_quality_per_day_in_the_api_the_dashboard_and_metrics(
    client: TestClient, runtime: Any
) -> None:
    empty = client.get("/labels/quality").json()
    assert empty["days"] == [] or empty["totals"]["resolved"] == 0
    client.post("/labels", json=[{"transaction_id": "tx-2", "label": 1},
                                 {"transaction_id": "tx-3", "label": 0},
                                 {"transaction_id": "tx-1", "label": 1}])
    body = client.get("/labels/quality?days=7").json()
    [day] = body["days"]  # the three transactions are minutes apart
    assert (day["alerts"], day["resolved"], day["confirmed"]) == (2, 2, 1)
    assert (day["frauds_reported"], day["frauds_alerted"], day["frauds_missed"]) == (2, 1, 1)
    assert day["precision"] == 0.5 and day["recall"] == 0.5
    assert body["totals"]["precision"] == 0.5
    assert client.get("/dashboard/api/quality").json()["days"] == body["days"]
    assert client.get("/labels/quality?days=0").status_code == 422
    runtime.refresh_quality(force=True)
    text = client.get("/metrics").text
    assert 'alert_precision{window="7d"} 0.5' in text
    assert 'fraud_recall{window="30d"} 0.5' in text
