"""The results-store queries behind the dashboard, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from riskstream.dashboard.summary import build_summary
from riskstream.storage import SQLResultsStore

R_AMOUNT = {"code": "AMOUNT_FAR_ABOVE_USUAL", "feature": "amount_ratio", "value": 8.3,
            "text": "amount 8.3x this user's usual"}
R_DEVICE = {"code": "NEW_DEVICE", "feature": "new_device", "value": 1.0,
            "text": "device never seen for this user"}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLResultsStore]:
    url = (
        f"sqlite:///{tmp_path / 'results.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    s = SQLResultsStore(url)
    yield s
    s.close()


@pytest.fixture
def seeded(store: SQLResultsStore, make_scored: Callable[..., Any]) -> SQLResultsStore:
    """20 transactions scored "now": 16 allowed, 3 reviews (one with two codes), 1 block."""
    now = time.time()
    specs: dict[int, dict[str, Any]] = {
        4: {"score": 0.991, "decision": "review", "reasons": [R_AMOUNT], "amount": 900.0},
        9: {"score": 0.996, "decision": "review", "reasons": [R_DEVICE, R_AMOUNT],
            "user_id": "user-2", "country": "DE", "city": "Berlin"},
        13: {"score": 0.993, "decision": "review", "reasons": [], "amount": 15.0},
        17: {"score": 0.9995, "decision": "block", "reasons": [R_DEVICE], "amount": 2500.0,
             "merchant_category": "electronics"},
    }
    rows, alerts = [], []
    for i in range(20):
        row, alert = make_scored(i, **{"scored_at": now - 1.0, "score": i / 20, **specs.get(i, {})})
        rows.append(row)
        if alert:
            alerts.append(alert)
    assert store.write(rows, alerts) == 20
    return store


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["transaction_id"] for r in rows]


def alert_id(store: SQLResultsStore, tx: str) -> int:
    return int(store.alert_queue(transaction_id=tx)[0]["id"])


def test_label_alert_adds_a_label_and_sets_status(seeded: SQLResultsStore) -> None:
    aid = alert_id(seeded, "tx-9")
    out = seeded.label_alert(aid, "fraud", "alice", "card in hand")
    assert out is not None and out["status"] == "confirmed"
    assert [(lab["verdict"], lab["analyst"], lab["note"]) for lab in out["labels"]] == [
        ("fraud", "alice", "card in hand")
    ]
    out = seeded.label_alert(aid, "legitimate")
    assert out is not None and out["status"] == "dismissed"
    assert [lab["verdict"] for lab in out["labels"]] == ["fraud", "legitimate"]
    assert out["transaction"]["city"] == "Berlin"
    assert seeded.label_alert(10_000, "fraud") is None
    with pytest.raises(ValueError, match="verdict"):
        seeded.label_alert(aid, "maybe")
    assert seeded.alert_status_counts() == {"open": 3, "confirmed": 0, "dismissed": 1}


def test_get_alert(seeded: SQLResultsStore) -> None:
    got = seeded.get_alert(alert_id(seeded, "tx-17"))
    assert got is not None
    assert got["decision"] == "block" and got["labels"] == []
    assert got["transaction"]["merchant_category"] == "electronics"
    assert set(got["transaction"]["features"]) >= {"amount_ratio", "new_device"}
    assert seeded.get_alert(10_000) is None


def test_alert_queue_filters_and_sorts(seeded: SQLResultsStore) -> None:
    q = seeded.alert_queue
    assert ids(q()) == ["tx-17", "tx-13", "tx-9", "tx-4"]  # newest event first
    assert ids(q(descending=False)) == ["tx-4", "tx-9", "tx-13", "tx-17"]
    assert ids(q(sort="score")) == ["tx-17", "tx-9", "tx-13", "tx-4"]
    assert ids(q(sort="amount")) == ["tx-17", "tx-4", "tx-9", "tx-13"]
    assert ids(q(reason="NEW_DEVICE")) == ["tx-17", "tx-9"]
    assert ids(q(reason="AMOUNT_FAR_ABOVE_USUAL")) == ["tx-9", "tx-4"]
    assert ids(q(reason="VELOCITY_1H")) == []
    assert ids(q(reason="NEW_%")) == []  # LIKE wildcards are escaped
    assert ids(q(decision="block")) == ["tx-17"]
    assert ids(q(user_id="user-2")) == ["tx-9"]
    assert ids(q(min_score=0.995)) == ["tx-17", "tx-9"]
    assert ids(q(limit=2, offset=1)) == ["tx-13", "tx-9"]
    seeded.label_alert(alert_id(seeded, "tx-4"), "legitimate")
    assert ids(q(status="reviewed")) == ["tx-4"]
    assert ids(q(status="dismissed")) == ["tx-4"]
    assert ids(q(status="open")) == ["tx-17", "tx-13", "tx-9"]
    with pytest.raises(ValueError, match="sort"):
        q(sort="user")


def test_latest_transactions_are_lean_and_newest_first(seeded: SQLResultsStore) -> None:
    rows = seeded.latest_transactions(5)
    assert ids(rows) == ["tx-19", "tx-18", "tx-17", "tx-16", "tx-15"]
    assert "features" not in rows[0] and rows[2]["reasons"][0]["code"] == "NEW_DEVICE"
    assert ids(seeded.latest_transactions(3, decision="review")) == ["tx-13", "tx-9", "tx-4"]
    assert ids(seeded.latest_transactions(3, user_id="user-2")) == ["tx-9"]


def test_window_queries(seeded: SQLResultsStore, make_scored: Callable[..., Any]) -> None:
    now = time.time()
    # An old batch: scored an hour ago, so outside a 5-minute window.
    old, _ = make_scored(100, scored_at=now - 3600, country="US", amount=1e6)
    seeded.write([old], [])
    cols = seeded.recent_activity(now - 300, 1000)
    assert set(cols) == {"scored_at", "decision", "score", "latency_ms", "model_version"}
    assert {len(v) for v in cols.values()} == {20}
    assert sorted(cols["decision"]).count("review") == 3
    assert seeded.recent_activity(now + 10, 1000)["score"] == []
    by_country = seeded.breakdown("country", now - 300, 1000)
    assert by_country[0]["key"] == "FR" and by_country[0]["count"] == 19
    assert by_country[0]["anomalies"] == 3
    assert {r["key"] for r in by_country} == {"FR", "DE"}
    by_cat = seeded.breakdown("merchant_category", now - 300, 1000)
    assert by_cat[0] == {"key": "electronics", "count": 1, "amount": 2500.0, "anomalies": 1}
    # The row cap bounds the window to the newest rows by event time (tx-100 is newest: it
    # counts against the cap although it is outside the time window).
    assert len(seeded.recent_activity(now - 300, 5)["scored_at"]) == 4
    with pytest.raises(ValueError, match="group by"):
        seeded.breakdown("amount; DROP TABLE alerts", now, 10)
    counts = seeded.alert_reason_counts(now - 300, 1000)
    assert counts == {"AMOUNT_FAR_ABOVE_USUAL": 2, "NEW_DEVICE": 2}


def test_build_summary(seeded: SQLResultsStore) -> None:
    s = build_summary(
        seeded,
        model={"version": "test-model", "detectors": []},
        thresholds=(0.99, 0.999),
        now=time.time() + 6,  # the batch's 5-second bucket is complete
    )
    assert s["totals"]["transactions"] == 20
    assert (s["totals"]["review"], s["totals"]["block"]) == (3, 1)
    assert s["totals"]["anomaly_rate"] == pytest.approx(0.2)
    assert sum(p["count"] for p in s["throughput"]) == 20
    assert sum(s["scores"]["counts"]) == 20
    assert s["scores"]["p_edges"][10] == pytest.approx(0.99)  # x = 2 decades
    assert s["by_country"][0]["key"] == "FR"
    assert s["top_reasons"][0]["count"] == 2
    assert s["alerts"]["open"] == 4
    assert s["model"]["versions_in_window"] == {"test-model": 20}
    assert s["latency_ms"]["p50"] == pytest.approx(0.05)
