"""The HTTP API against a real runtime (SQLite on a temp dir, the real scoring core)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from riskstream.api import create_app


@pytest.fixture
def client(make_runtime: Callable[..., Any]) -> TestClient:
    return TestClient(create_app(make_runtime()))


def history(make_tx: Callable[..., dict[str, Any]], n: int = 12) -> list[dict[str, Any]]:
    return [
        make_tx(transaction_id=f"h{i}", timestamp=1_704_067_200 + i * 3600, amount=40 + i % 5)
        for i in range(n)
    ]


def test_root_and_health(client: TestClient) -> None:
    root = client.get("/").json()
    assert root["status"] == "ok" and root["model_version"].startswith("isolation_forest-")
    health = client.get("/health")
    assert health.status_code == 200
    assert set(health.json()["components"]) == {"model", "state", "results"}


def test_predict_returns_the_full_result(client: TestClient, make_tx: Callable[..., Any]) -> None:
    body = client.post("/predict", json=make_tx()).json()
    assert set(body) >= {
        "transaction_id",
        "anomaly_score",
        "is_anomalous",
        "decision",
        "confidence",
        "reasons",
        "features",
        "model_version",
        "processing_time_ms",
    }
    assert body["transaction_id"] == "tx-1"
    assert 0.0 <= body["anomaly_score"] <= 1.0
    assert body["decision"] in {"allow", "review", "block"}
    assert body["features"]["log_amount"] == pytest.approx(math.log1p(42.5), abs=1e-5)
    assert body["duplicate"] is False


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"amount": -5}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"timestamp": "2024-01-01T00:00:00"}, "timestamp"),
        ({"lat": 123.0}, "lat"),
        ({"channel": "fax"}, "channel"),
        ({"currency": "XYZ"}, "currency"),
    ],
)
def test_predict_422_names_the_field(
    client: TestClient, make_tx: Callable[..., Any], override: dict[str, Any], field: str
) -> None:
    resp = client.post("/predict", json=make_tx(**override))
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", field]


def test_predict_422_for_missing_required(client: TestClient, make_tx: Callable[..., Any]) -> None:
    resp = client.post("/predict", json=make_tx(drop=("user_id",)))
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "user_id"]


def test_oversized_body_is_refused(client: TestClient, make_tx: Callable[..., Any]) -> None:
    resp = client.post("/predict", json=make_tx(note="x" * 200_000))
    assert resp.status_code == 413


def test_dry_run_records_nothing(client: TestClient, make_tx: Callable[..., Any]) -> None:
    client.post("/predict", params={"dry_run": "true"}, json=make_tx())
    assert client.get("/transactions").json()["items"] == []
    assert client.get("/users/user-1").status_code == 404


def test_predict_records_and_updates_user(client: TestClient, make_tx: Callable[..., Any]) -> None:
    for tx in history(make_tx):
        assert client.post("/predict", json=tx).status_code == 200
    items = client.get("/transactions", params={"user_id": "user-1", "limit": 5}).json()["items"]
    assert len(items) == 5 and items[0]["transaction_id"] == "h11"  # newest first
    user = client.get("/users/user-1").json()
    assert user["profile"]["transactions_seen"] == 12
    assert 38 < user["profile"]["usual_amount"] < 46
    assert len(user["recent"]) == 12


def test_duplicate_post_is_idempotent(client: TestClient, make_tx: Callable[..., Any]) -> None:
    client.post("/predict", json=make_tx())
    again = client.post("/predict", json=make_tx()).json()
    assert again["duplicate"] is True
    assert client.get("/users/user-1").json()["profile"]["transactions_seen"] == 1
    assert len(client.get("/transactions").json()["items"]) == 1


def test_outlier_raises_an_alert_with_reasons(
    client: TestClient, make_tx: Callable[..., Any]
) -> None:
    for tx in history(make_tx, 30):
        client.post("/predict", json=tx)
    # New device, another continent ten minutes later, 60x the usual amount.
    body = client.post(
        "/predict",
        json=make_tx(
            transaction_id="fraud",
            timestamp=1_704_067_200 + 29 * 3600 + 600,
            amount=2500,
            device_id="evil",
            lat=40.7128,
            lon=-74.0060,
            country="US",
            city="New York",
        ),
    ).json()
    assert body["is_anomalous"] is True
    codes = {r["code"] for r in body["reasons"]}
    assert {"IMPOSSIBLE_TRAVEL", "AMOUNT_FAR_ABOVE_USUAL", "NEW_DEVICE"} <= codes
    alerts = client.get("/alerts").json()["items"]
    assert [a["transaction_id"] for a in alerts] == ["fraud"]
    assert {r["code"] for r in alerts[0]["reasons"]} == codes


def test_paging_and_filters_validate(client: TestClient) -> None:
    assert client.get("/alerts", params={"limit": 0}).status_code == 422
    assert client.get("/transactions", params={"since": "yesterday"}).status_code == 422
    assert client.get("/transactions", params={"since": "2024-01-01T00:00:00Z"}).status_code == 200


def test_unknown_user_is_404(client: TestClient) -> None:
    assert client.get("/users/nobody").status_code == 404


def test_metrics_exposes_the_documented_names(
    client: TestClient, make_tx: Callable[..., Any]
) -> None:
    client.post("/predict", json=make_tx())
    text = client.get("/metrics").text
    for name in (
        "transactions_processed_total 1.0",
        "anomalies_total",
        "dead_letters_total",
        "processing_latency_seconds_bucket",
        "model_info{",
    ):
        assert name in text


def test_api_key_is_enforced_when_set(
    make_runtime: Callable[..., Any], make_tx: Callable[..., Any]
) -> None:
    client = TestClient(create_app(make_runtime(api_key="s3cret")))
    assert client.post("/predict", json=make_tx()).status_code == 401
    ok = client.post("/predict", json=make_tx(), headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200
    assert client.get("/health").status_code == 200  # probes stay open
