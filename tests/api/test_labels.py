"""Analyst feedback through the API: ``GET /alerts/{id}`` and ``POST /alerts/{id}/label``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from riskstream.api import create_app

REASON = {
    "code": "AMOUNT_FAR_ABOVE_USUAL",
    "feature": "amount_ratio",
    "value": 8.3,
    "text": "amount 8.3x this user's usual",
}


@pytest.fixture
def runtime(make_runtime: Callable[..., Any], make_scored: Callable[..., Any]) -> Any:
    """A runtime whose store holds one allowed transaction and two alerts (ids 1 and 2)."""
    rt = make_runtime()
    rows = [
        make_scored(1),
        make_scored(2, score=0.995, decision="review", reasons=[REASON], amount=350.0),
        make_scored(3, score=0.9995, decision="block", reasons=[REASON], user_id="user-2"),
    ]
    rt.results.write([r for r, _ in rows], [a for _, a in rows if a])
    return rt


@pytest.fixture
def client(runtime: Any) -> TestClient:
    return TestClient(create_app(runtime))


def first_alert_id(client: TestClient) -> int:
    return int(client.get("/alerts", params={"decision": "review"}).json()["items"][0]["id"])


def test_get_alert_returns_alert_transaction_labels_and_detectors(client: TestClient) -> None:
    body = client.get(f"/alerts/{first_alert_id(client)}").json()
    assert body["transaction_id"] == "tx-2"
    assert body["status"] == "open" and body["labels"] == []
    assert body["reasons"][0]["text"] == "amount 8.3x this user's usual"
    assert body["transaction"]["merchant_category"] == "grocery"
    assert "features" in body["transaction"]
    # Scored by "test-model", not the served bundle: said so, no made-up numbers.
    assert body["detectors"]["recomputed"] is False
    assert "not the model being served" in body["detectors"]["note"]


def test_detectors_are_recomputed_for_the_served_model(
    make_runtime: Callable[..., Any], make_scored: Callable[..., Any]
) -> None:
    rt = make_runtime()
    version = rt.core.bundle.version
    row, alert = make_scored(7, score=0.995, decision="review", model_version=version)
    rt.results.write([row], [alert])
    client = TestClient(create_app(rt))
    alert_id = client.get("/alerts").json()["items"][0]["id"]
    det = client.get(f"/alerts/{alert_id}").json()["detectors"]
    assert det["recomputed"] is True
    names = [d["name"] for d in det["detectors"]]
    assert names == list(rt.core.bundle.member_names)
    for d in det["detectors"]:
        assert 0.0 <= d["score"] <= 1.0 and isinstance(d["raw"], float)
    assert 0.0 <= det["combined"]["score"] <= 1.0


@pytest.mark.parametrize(
    ("verdict", "status"), [("fraud", "confirmed"), ("legitimate", "dismissed")]
)
def test_label_persists_and_sets_status(client: TestClient, verdict: str, status: str) -> None:
    alert_id = first_alert_id(client)
    resp = client.post(
        f"/alerts/{alert_id}/label",
        json={"verdict": verdict, "analyst": "  alice ", "note": "called the customer"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == status
    [label] = body["labels"]
    assert label["verdict"] == verdict and label["analyst"] == "alice"
    assert label["note"] == "called the customer" and label["transaction_id"] == "tx-2"
    assert label["created_at"] > 0 and label["time"]
    # Persisted: a fresh read, and the list endpoint, agree.
    again = client.get(f"/alerts/{alert_id}").json()
    assert again["status"] == status and len(again["labels"]) == 1
    assert client.get("/alerts", params={"status": status}).json()["items"][0]["id"] == alert_id
    assert client.get("/alerts", params={"status": "open"}).json()["items"][0]["id"] != alert_id


def test_analyst_and_note_are_optional_and_labels_accumulate(client: TestClient) -> None:
    alert_id = first_alert_id(client)
    assert client.post(f"/alerts/{alert_id}/label", json={"verdict": "fraud"}).status_code == 200
    body = client.post(f"/alerts/{alert_id}/label", json={"verdict": "legitimate"}).json()
    assert [lab["verdict"] for lab in body["labels"]] == ["fraud", "legitimate"]
    assert body["labels"][0]["analyst"] is None and body["labels"][0]["note"] is None
    assert body["status"] == "dismissed"  # the latest verdict decides


@pytest.mark.parametrize(
    "payload",
    [
        {"verdict": "maybe"},
        {"verdict": "FRAUD"},
        {"verdict": None},
        {"verdict": 1},
        {},
        {"verdit": "fraud"},
    ],
)
def test_bad_verdict_is_422_naming_verdict(client: TestClient, payload: dict[str, Any]) -> None:
    alert_id = first_alert_id(client)
    resp = client.post(f"/alerts/{alert_id}/label", json=payload)
    assert resp.status_code == 422
    assert ["body", "verdict"] in [e["loc"] for e in resp.json()["detail"]]
    assert client.get(f"/alerts/{alert_id}").json()["status"] == "open"


def test_overlong_note_and_unknown_fields_are_422(client: TestClient) -> None:
    alert_id = first_alert_id(client)
    resp = client.post(f"/alerts/{alert_id}/label", json={"verdict": "fraud", "note": "x" * 2001})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "note"]
    resp = client.post(f"/alerts/{alert_id}/label", json={"verdict": "fraud", "score": 1})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "score"]


def test_unknown_alert_is_404(client: TestClient) -> None:
    assert client.get("/alerts/999").status_code == 404
    resp = client.post("/alerts/999/label", json={"verdict": "fraud"})
    assert resp.status_code == 404
    assert resp.json()["detail"] == "unknown alert 999"
    assert client.get("/alerts/abc").status_code == 422  # ids are integers


def test_labels_need_the_api_key_when_set(
    make_runtime: Callable[..., Any], make_scored: Callable[..., Any]
) -> None:
    rt = make_runtime(api_key="s3cret")
    row, alert = make_scored(1, score=0.995, decision="review")
    rt.results.write([row], [alert])
    client = TestClient(create_app(rt))
    assert client.post("/alerts/1/label", json={"verdict": "fraud"}).status_code == 401
    assert client.get("/alerts/1").status_code == 401
    ok = client.post("/alerts/1/label", json={"verdict": "fraud"}, headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200
    # The dashboard's cookie is accepted too (the browser's EventSource cannot send headers).
    client.cookies.set("riskstream_api_key", "s3cret")
    assert client.get("/alerts/1").json()["status"] == "confirmed"
