"""The dashboard's HTTP surface in-process: page, static files, JSON API, event stream."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from fastapi.testclient import TestClient

from riskstream.api import create_app
from riskstream.dashboard.feed import FeedFilter, FeedHub, sse_events
from riskstream.scoring.reasons import CODES

REASON = {"code": "NEW_DEVICE", "feature": "new_device", "value": 1.0,
          "text": "device never seen for this user"}


def seed_thirty(rt: Any, make_scored: Callable[..., Any]) -> None:
    """30 scored transactions in ``rt``'s results store, every tenth one a review alert."""
    rows = [
        make_scored(i, score=0.995, decision="review", reasons=[REASON])
        if i % 10 == 9
        else make_scored(i, score=0.3)
        for i in range(30)
    ]
    rt.results.write([r for r, _ in rows], [a for _, a in rows if a])


@pytest.fixture
def runtime(make_runtime: Callable[..., Any], make_scored: Callable[..., Any]) -> Any:
    """A runtime holding 30 scored transactions, every tenth one a review alert."""
    rt = make_runtime()
    seed_thirty(rt, make_scored)
    return rt


@pytest.fixture
def client(runtime: Any) -> TestClient:
    return TestClient(create_app(runtime))


def events(body: str) -> list[tuple[str, Any]]:
    """Parse an SSE body into (event, data) pairs; comments and retry lines are skipped."""
    out = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            data = fields.get("data", "")
            out.append((fields["event"], json.loads(data) if data.startswith("[") else data))
    return out


# -- page and static files -------------------------------------------------------------------
def test_root_stays_json_for_api_clients_and_redirects_browsers(client: TestClient) -> None:
    assert client.get("/").json()["status"] == "ok"
    assert client.get("/", headers={"Accept": "application/json"}).json()["status"] == "ok"
    resp = client.get(
        "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, follow_redirects=False
    )
    assert resp.status_code == 307 and resp.headers["location"] == "/dashboard"
    assert "/dashboard" in client.get("/").json()["links"]


def test_page_is_server_rendered(client: TestClient, runtime: Any) -> None:
    resp = client.get("/dashboard")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    assert runtime.core.bundle.version in page
    for code in CODES:
        assert f'<option value="{code}">' in page
    config = json.loads(re.search(r'id="rs-config"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert config["thresholds"] == {"review": 0.99, "block": 0.999}
    assert config["auth_required"] is False
    assert "${" not in page  # every template field was filled
    assert client.get("/dashboard/").status_code == 200


@pytest.mark.parametrize(
    ("name", "kind"),
    [("dashboard.css", "text/css"), ("dashboard.js", "javascript"), ("charts.js", "javascript")],
)
def test_static_files_are_served(client: TestClient, name: str, kind: str) -> None:
    resp = client.get(f"/dashboard/static/{name}")
    assert resp.status_code == 200 and kind in resp.headers["content-type"]


def test_nothing_is_loaded_from_elsewhere() -> None:
    """No CDN: the page and its assets reference no other host (the SVG namespace aside)."""
    root = resources.files("riskstream.dashboard")
    files = [root / "templates" / "index.html"] + [
        f for f in (root / "static").iterdir() if f.name.endswith((".js", ".css"))
    ]
    assert len(files) == 4
    for f in files:
        text = f.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), f.name
        assert "@import" not in text and "fonts.googleapis" not in text


# -- JSON API ---------------------------------------------------------------------------------
def test_summary(client: TestClient) -> None:
    s = client.get("/dashboard/api/summary").json()
    assert s["totals"]["transactions"] == 30 and s["totals"]["review"] == 3
    assert s["top_reasons"] == [{"code": "NEW_DEVICE", "count": 3}]
    assert s["by_category"][0]["key"] == "grocery"
    assert s["model"]["version"] and s["model"]["detectors"]
    assert s["alerts"]["open"] == 3
    assert client.get("/dashboard/api/summary", params={"window_s": 5}).status_code == 422


def test_alert_queue(client: TestClient) -> None:
    items = client.get("/dashboard/api/alerts").json()["items"]
    assert [a["transaction_id"] for a in items] == ["tx-29", "tx-19", "tx-9"]
    assert items[0]["time"].endswith("Z") and items[0]["status"] == "open"
    q = client.get(
        "/dashboard/api/alerts", params={"reason": "NEW_DEVICE", "order": "asc", "limit": 1}
    ).json()["items"]
    assert [a["transaction_id"] for a in q] == ["tx-9"]
    client.post(f"/alerts/{q[0]['id']}/label", json={"verdict": "fraud", "analyst": "bob"})
    reviewed = client.get("/dashboard/api/alerts", params={"status": "reviewed"}).json()["items"]
    assert [(a["transaction_id"], a["status"]) for a in reviewed] == [("tx-9", "confirmed")]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"reason": "NOPE"}, "reason"),
        ({"status": "closed"}, "status"),
        ({"sort": "user"}, "sort"),
        ({"decision": "allow"}, "decision"),
        ({"limit": 0}, "limit"),
        ({"min_score": 2}, "min_score"),
    ],
)
def test_alert_queue_rejects_bad_parameters(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    resp = client.get("/dashboard/api/alerts", params=params)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", field]


def test_api_key_guards_data_but_not_the_page(
    make_runtime: Callable[..., Any]
) -> None:
    rt = make_runtime(api_key="s3cret")
    client = TestClient(create_app(rt))
    page = client.get("/dashboard")
    assert page.status_code == 200 and '"auth_required":true' in page.text
    for path in ("/dashboard/api/summary", "/dashboard/api/alerts", "/stream/transactions"):
        assert client.get(path).status_code == 401, path
    rt.stopping.set()  # so the stream below ends by itself
    client.cookies.set("riskstream_api_key", "s3cret")
    for path in ("/dashboard/api/summary", "/dashboard/api/alerts", "/stream/transactions"):
        assert client.get(path).status_code == 200, path


# -- the event stream -------------------------------------------------------------------------
def test_stream_endpoint_sends_backlog_then_ends_on_shutdown(
    client: TestClient, runtime: Any
) -> None:
    runtime.stopping.set()  # a closing runtime: backlog, then "bye", then the stream ends
    resp = client.get("/stream/transactions")
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.text.startswith("retry: ")
    got = events(resp.text)
    assert [e for e, _ in got] == ["transactions", "bye"]
    rows = got[0][1]
    assert [r["transaction_id"] for r in rows] == [f"tx-{i}" for i in range(30)]  # oldest first
    assert set(rows[0]) >= {"user_id", "amount", "score", "decision", "reasons", "time", "city"}
    assert rows[9]["reasons"] == ["NEW_DEVICE"]
    review = events(client.get("/stream/transactions", params={"decision": "review"}).text)
    assert [r["transaction_id"] for r in review[0][1]] == ["tx-9", "tx-19", "tx-29"]
    high = events(client.get("/stream/transactions", params={"min_score": 0.99}).text)
    assert {r["decision"] for r in high[0][1]} == {"review"}
    assert client.get("/stream/transactions", params={"min_score": 3}).status_code == 422


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hub_publishes_each_new_row_once(
    runtime: Any, make_scored: Callable[..., Any]
) -> None:
    clock = Clock()
    hub = FeedHub(runtime.results, poll_s=0.5, clock=clock)
    every = FeedFilter()
    seq = hub.poll()
    assert seq == 30  # primed with the backlog
    hub.store.write([make_scored(i)[0] for i in (30, 31)], [])
    assert hub.poll() == 30  # polled less than poll_s ago: no query
    clock.now = 1.0
    assert hub.poll() == 32
    clock.now = 2.0
    assert hub.poll() == 32  # nothing new, nothing twice
    cursor, rows = hub.since(30, every)
    assert cursor == 32 and [r["transaction_id"] for r in rows] == ["tx-30", "tx-31"]
    _, rows = hub.since(0, FeedFilter(decision="review", min_score=0.99))
    assert [r["transaction_id"] for r in rows] == ["tx-9", "tx-19", "tx-29"]
    _, rows = hub.backlog(FeedFilter(user_id="nobody"))
    assert rows == []


def test_sse_events_resume_keepalive_and_stop(
    runtime: Any, make_scored: Callable[..., Any]
) -> None:
    hub = FeedHub(runtime.results, poll_s=0.05)
    stop = threading.Event()

    async def collect(last_event_id: str | None) -> list[str]:
        out: list[str] = []
        gen = sse_events(hub, FeedFilter(), stop, last_event_id=last_event_id, keepalive_s=0.2)
        started = time.monotonic()
        async for chunk in gen:
            out.append(chunk)
            if len(out) == 3:  # retry + backlog/resume + one more
                hub.store.write([make_scored(40)[0]], [])
            if time.monotonic() - started > 0.6:
                stop.set()
        return out

    chunks = asyncio.run(collect(None))
    assert chunks[0].startswith("retry: ")
    body = "".join(chunks)
    assert ": keepalive" in body
    got = events(body)
    assert got[-1][0] == "bye"
    sent = [r["transaction_id"] for e, rows in got if e == "transactions" for r in rows]
    assert sent[:30] == [f"tx-{i}" for i in range(30)] and sent[30:] == ["tx-40"]
    # A browser reconnecting with Last-Event-ID gets only what it missed.
    stop.clear()
    hub.store.write([make_scored(41)[0]], [])
    stop_soon = threading.Timer(0.3, stop.set)
    stop_soon.start()
    resumed = events("".join(asyncio.run(collect("31"))))
    assert [r["transaction_id"] for e, rows in resumed if e == "transactions" for r in rows] == [
        "tx-41"
    ]


def test_the_same_api_over_postgresql(
    make_runtime: Callable[..., Any], make_scored: Callable[..., Any], pg_url: str
) -> None:
    """Page data, queue, labels and stream on a PostgreSQL results store."""
    rt = make_runtime(db_url=pg_url)
    seed_thirty(rt, make_scored)
    client = TestClient(create_app(rt))
    s = client.get("/dashboard/api/summary").json()
    assert s["totals"]["review"] == 3 and s["top_reasons"][0]["code"] == "NEW_DEVICE"
    queue = client.get("/dashboard/api/alerts", params={"reason": "NEW_DEVICE"}).json()["items"]
    assert [a["transaction_id"] for a in queue] == ["tx-29", "tx-19", "tx-9"]
    labelled = client.post(f"/alerts/{queue[0]['id']}/label", json={"verdict": "legitimate"})
    assert labelled.json()["status"] == "dismissed"
    assert client.get(f"/alerts/{queue[0]['id']}").json()["labels"][0]["verdict"] == "legitimate"
    rt.stopping.set()
    got = events(client.get("/stream/transactions", params={"decision": "review"}).text)
    assert [r["transaction_id"] for r in got[0][1]] == ["tx-9", "tx-19", "tx-29"]
