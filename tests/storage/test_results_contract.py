"""The ResultsStore contract, run against every backend: SQLite and PostgreSQL (real server).

Each test gets an empty database: a SQLite file, or a fresh PostgreSQL schema (conftest).
Outages are typed (end of file): a database that cannot be reached or used now raises
``StoreUnavailable`` from every method that touches it; a bug or a rejected value never does.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from support import free_port, kept

from riskstream.errors import StoreUnavailable, is_outage
from riskstream.schema import CANONICAL_COLUMNS
from riskstream.storage import SQLResultsStore
from riskstream.storage.base import ResultsStore
from riskstream.storage.engine import is_connection_failure
from riskstream.storage.writer import MAX_PAYLOAD_CHARS

T0 = 1_704_067_200.0
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, make_pg_url: Callable[..., str]
) -> Iterator[Callable[[], SQLResultsStore]]:
    def factory() -> SQLResultsStore:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'results-{len(keep)}.db'}"
        else:
            url = make_pg_url()
        return keep(SQLResultsStore(url))

    with kept(SQLResultsStore.close) as keep:
        yield factory


@pytest.fixture
def store(make_store: Callable[[], SQLResultsStore]) -> SQLResultsStore:
    return make_store()


def row(i: int, **over: Any) -> dict[str, Any]:
    """A scored-transaction row as the pipeline writes it."""
    decision = over.pop("decision", "allow")
    rec: dict[str, Any] = {
        "transaction_id": f"tx-{i:05d}",
        "timestamp": T0 + 60.0 * i + 0.125,
        "user_id": f"u{i % 3}",
        "amount": 10.0 + i / 7,
        "currency": "EUR",
        "merchant_id": f"m{i % 5}",
        "merchant_category": "grocery",
        "city": "Paris",
        "country": "FR",
        "lat": 48.8566 + i * 1e-7,
        "lon": 2.3522,
        "device_id": "d1",
        "channel": "pos",
        "score": (i % 100) / 100 + 1 / 3,
        "decision": decision,
        "reasons": [] if decision == "allow" else [
            {"code": "LARGE_AMOUNT", "feature": "log_amount", "value": 6.25, "text": "large"},
        ],
        "features": {"log_amount": math.log1p(10 + i), "amount_z": -0.5, "new_device": 0.0},
        "model_version": "m-1",
        "latency_ms": 0.01 * (i % 10 + 1),
        "scored_at": T0 + 1e6,
        "detector_scores": {"isolation_forest": 0.25 + i / 1000, "autoencoder": 0.5},
        "shadow_score": None if i % 2 else 0.125 + i / 100,
        "shadow_version": None if i % 2 else "m-2",
    }
    rec.update(over)
    return rec


def alert_of(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("transaction_id", "timestamp", "user_id", "amount", "score", "decision", "reasons",
            "model_version")
    return {**{k: r[k] for k in keys}, "status": "open", "created_at": r["scored_at"]}


def write(store: SQLResultsStore, rows: list[dict[str, Any]]) -> int:
    return store.write(rows, [alert_of(r) for r in rows if r["decision"] != "allow"])


def test_write_round_trips_every_value(store: SQLResultsStore) -> None:
    rows = [row(0), row(1, decision="review"),
            row(2, city="Tab\there, new\nline, back\\slash, quote\" 'é' 東京", lat=None, lon=None,
                merchant_id="", device_id="", channel="")]
    assert write(store, rows) == 3
    got = {r["transaction_id"]: r for r in store.transactions(limit=10)}
    assert set(got) == {r["transaction_id"] for r in rows}
    for r in rows:
        assert got[r["transaction_id"]] == r  # floats exact, JSON equal, '' stays ''
    assert got["tx-00002"]["lat"] is None and got["tx-00002"]["merchant_id"] == ""


def test_write_is_idempotent_and_first_write_wins(store: SQLResultsStore) -> None:
    rows = [row(i, decision="block" if i == 3 else "allow") for i in range(10)]
    assert write(store, rows) == 10
    # A replay is scored against state that already holds it: other scores and decisions.
    # It must neither overwrite rows nor add alerts for them.
    replay = [dict(r, score=0.0, decision="block") for r in rows]
    assert write(store, replay) == 0
    assert write(store, [*rows[:2], row(10), row(10, score=0.0)]) == 1  # dupes within a batch
    assert store.counts()["transactions"] == 11
    assert store.counts()["alerts"] == 1
    got = {r["transaction_id"]: r["score"] for r in store.transactions(limit=50)}
    assert got["tx-00003"] == rows[3]["score"]
    assert got["tx-00010"] == row(10)["score"]


def test_failed_batch_writes_nothing(store: SQLResultsStore) -> None:
    good = [row(0), row(1, decision="review")]
    bad = [*good, row(2, score=None)]  # violates NOT NULL at the end of the batch
    with pytest.raises(Exception) as excinfo:  # the driver's integrity error
        write(store, bad)
    assert_not_an_outage(excinfo)
    assert store.counts()["transactions"] == 0
    assert store.counts()["alerts"] == 0
    assert write(store, good) == 2  # and the store is usable afterwards


def test_query_filters_order_and_paging(store: SQLResultsStore) -> None:
    rows = [row(i, decision=("allow", "review", "block")[i % 3]) for i in range(30)]
    write(store, rows)
    newest_first = [r["transaction_id"] for r in store.transactions(limit=100)]
    assert newest_first == [r["transaction_id"] for r in reversed(rows)]
    page = store.transactions(limit=5, offset=5)
    assert [r["transaction_id"] for r in page] == newest_first[5:10]
    assert {r["user_id"] for r in store.transactions(user_id="u1", limit=100)} == {"u1"}
    assert len(store.transactions(user_id="u1", limit=100)) == 10
    assert {r["decision"] for r in store.transactions(decision="block", limit=100)} == {"block"}
    window = store.transactions(since=rows[10]["timestamp"], until=rows[20]["timestamp"],
                                limit=100)
    assert sorted(r["transaction_id"] for r in window) == [f"tx-{i:05d}" for i in range(10, 20)]
    alerts = store.alerts(limit=100)
    assert len(alerts) == 20 and {a["status"] for a in alerts} == {"open"}
    assert [a["transaction_id"] for a in alerts][:2] == ["tx-00029", "tx-00028"]
    assert len(store.alerts(decision="review", user_id="u1", limit=100)) == 10
    assert store.alerts(status="dismissed") == []
    assert len(store.alerts(since=rows[25]["timestamp"], limit=100)) == 4  # 25 26 28 29


def test_dead_letters_are_kept_truncated_newest_first(store: SQLResultsStore) -> None:
    letters = [
        {"received_at": T0 + i, "source": "test", "field": "amount", "reason": f"bad {i}",
         "transaction_id": f"t{i}", "payload": "x" * (10 if i else 10 * MAX_PAYLOAD_CHARS)}
        for i in range(3)
    ]
    store.write_dead_letters(letters)
    got = store.dead_letters(limit=10)
    assert [d["reason"] for d in got] == ["bad 2", "bad 1", "bad 0"]
    assert len(got[-1]["payload"]) < MAX_PAYLOAD_CHARS + 50
    assert store.counts()["dead_letters"] == 3


def test_counts_and_model_versions(store: SQLResultsStore) -> None:
    write(store, [row(i, decision="review" if i < 2 else "allow") for i in range(5)])
    counts = store.counts()
    assert counts["transactions"] == 5 and counts["alerts"] == 2
    assert counts["decision_review"] == 2 and counts["decision_allow"] == 3
    store.record_model("m-1", {"trained_on": "x", "n": 3})
    store.record_model("m-1", {"trained_on": "changed"})  # first registration wins
    with store.engine.connect() as conn:
        info = conn.execute(text("SELECT info FROM model_versions")).scalar_one()
    info = info if isinstance(info, dict) else __import__("json").loads(info)
    assert info == {"trained_on": "x", "n": 3}


def test_stats_per_model_version(store: SQLResultsStore) -> None:
    rows = [row(i, decision="review" if i % 10 == 0 else "block" if i % 10 == 5 else "allow",
                model_version="m-1" if i < 40 else "m-2")
            for i in range(60)]
    rows[5]["reasons"] = [{"code": "NEW_DEVICE", "feature": "new_device", "value": 1.0,
                           "text": "new device"},
                          {"code": "LARGE_AMOUNT", "feature": "log_amount", "value": 7.0,
                           "text": "large"}]
    write(store, rows)
    report = store.stats()
    assert report["transactions"] == 60
    assert report["decisions"] == {"allow": 48, "review": 6, "block": 6}
    assert report["anomaly_rate"] == pytest.approx(12 / 60)
    assert report["alerts"] == 12
    assert report["top_reasons"][0] == {"code": "LARGE_AMOUNT", "count": 12}
    assert {"code": "NEW_DEVICE", "count": 1} in report["top_reasons"]
    lat = np.array([r["latency_ms"] for r in rows])
    assert report["latency_ms"]["p50"] == pytest.approx(np.percentile(lat, 50), abs=1e-4)
    assert report["latency_ms"]["p99"] == pytest.approx(np.percentile(lat, 99), abs=1e-4)
    assert report["latency_ms"]["max"] == pytest.approx(lat.max())
    by_model = {m["model_version"]: m for m in report["models"]}
    assert set(by_model) == {"m-1", "m-2"}
    assert by_model["m-1"]["transactions"] == 40 and by_model["m-2"]["transactions"] == 20
    assert by_model["m-2"]["decisions"] == {"allow": 16, "review": 2, "block": 2}
    assert by_model["m-1"]["top_reasons"][0]["code"] == "LARGE_AMOUNT"
    assert by_model["m-1"]["first_event"] == rows[0]["timestamp"]
    window = store.stats(since=rows[40]["timestamp"])
    assert window["transactions"] == 20 and [m["model_version"] for m in window["models"]] == [
        "m-2"]
    assert window["alerts"] == 4
    empty = store.stats(since=T0 + 1e9)
    assert empty["transactions"] == 0 and empty["latency_ms"]["p50"] is None


def test_history_is_event_ordered_and_never_splits_a_timestamp(store: SQLResultsStore) -> None:
    # 25 events, timestamps with ties (three at a time), written out of order.
    rows = [row(i, timestamp=T0 + (i // 3), lat=None if i == 4 else 1.0) for i in range(25)]
    write(store, rows[::-1])
    chunks = list(store.history(chunk=7))
    assert all(list(c.columns) == list(CANONICAL_COLUMNS) for c in chunks)
    frame = pd.concat(chunks, ignore_index=True)
    assert sorted(frame["transaction_id"]) == sorted(r["transaction_id"] for r in rows)
    assert frame["timestamp"].is_monotonic_increasing
    stamps = [set(c["timestamp"]) for c in chunks]
    for a, b in itertools.pairwise(stamps):
        assert not a & b  # a timestamp lives in one chunk only
    assert np.isnan(frame.loc[frame["transaction_id"] == "tx-00004", "lat"]).all()
    assert frame["lat"].dtype == np.float64


def test_head_schema_has_label_links(store: SQLResultsStore) -> None:
    write(store, [row(0, decision="review")])
    with store.engine.begin() as conn:
        alert_id = conn.execute(text("SELECT id FROM alerts")).scalar_one()
        conn.execute(text("INSERT INTO labels (transaction_id, verdict, created_at, alert_id) "
                          "VALUES ('tx-00000', 'fraud', 1.0, :a)"), {"a": alert_id})
        assert conn.execute(text("SELECT alert_id FROM labels")).scalar_one() == alert_id


def test_ping(store: SQLResultsStore) -> None:
    assert store.ping() is True


# -- typed outages --------------------------------------------------------------------------
#: Every public ResultsStore method that touches the database, called with valid arguments;
#: ``history`` is consumed (its queries run while it is iterated, not when it is called).
CALLS: dict[str, Callable[[ResultsStore], Any]] = {
    "write": lambda s: s.write([row(0)], []),
    "write_new": lambda s: s.write_new([row(0)], []),
    "write_dead_letters": lambda s: s.write_dead_letters([{"received_at": T0, "reason": "x"}]),
    "record_model": lambda s: s.record_model("m-1", {}),
    "transactions": lambda s: s.transactions(),
    "alerts": lambda s: s.alerts(),
    "dead_letters": lambda s: s.dead_letters(),
    "counts": lambda s: s.counts(),
    "get_alert": lambda s: s.get_alert(1),
    "label_alert": lambda s: s.label_alert(1, "fraud"),
    "alert_queue": lambda s: s.alert_queue(),
    "latest_transactions": lambda s: s.latest_transactions(),
    "recent_activity": lambda s: s.recent_activity(T0, 10),
    "breakdown": lambda s: s.breakdown("country", T0, 10),
    "alert_reason_counts": lambda s: s.alert_reason_counts(T0, 10),
    "alert_status_counts": lambda s: s.alert_status_counts(),
    "stats": lambda s: s.stats(),
    "history": lambda s: next(iter(s.history())),
    "upsert_labels": lambda s: s.upsert_labels(labels_of(("tx-00000", 1, T0)), "api"),
    "labels_to_apply": lambda s: s.labels_to_apply(),
    "mark_labels_applied": lambda s: s.mark_labels_applied([("tx-00000", 1)]),
    "get_label": lambda s: s.get_label("tx-00000"),
    "labels_frame": lambda s: s.labels_frame(),
    "label_counts": lambda s: s.label_counts(),
    "alert_quality": lambda s: s.alert_quality(),
}


def assert_unavailable(exc: BaseException) -> None:
    assert isinstance(exc, StoreUnavailable) and is_outage(exc)
    assert exc.component == "results"
    assert exc.__cause__ is not None  # chained: the driver's error stays visible


def assert_not_an_outage(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    assert not isinstance(excinfo.value, StoreUnavailable)
    assert not is_outage(excinfo.value), repr(excinfo.value)


def unreachable_url() -> str:
    """PostgreSQL on a loopback port nobody listens on: every connection is refused at once."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"


def test_outage_calls_cover_every_public_method_of_the_interface() -> None:
    public = {n for n in vars(ResultsStore) if not n.startswith("_")} - {"ping", "close"}
    assert set(CALLS) == public


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unreachable_database_raises_store_unavailable(method: str) -> None:
    store = SQLResultsStore(unreachable_url(), migrate=False)  # opening does not connect
    try:
        with pytest.raises(StoreUnavailable, match="refused") as excinfo:
            CALLS[method](store)
        assert_unavailable(excinfo.value)
        assert isinstance(excinfo.value.__cause__, sa_exc.OperationalError)
    finally:
        store.close()


def test_unreachable_database_on_open_and_ping() -> None:
    with pytest.raises(StoreUnavailable) as excinfo:
        SQLResultsStore(unreachable_url())  # migrating on open connects
    assert_unavailable(excinfo.value)
    store = SQLResultsStore(unreachable_url(), migrate=False)
    assert store.ping() is False  # health checks get False, never an exception
    store.close()


def test_postgres_cut_off_under_a_pooled_connection(
    make_pg_url: Callable[..., str], pg_proxy: Callable[..., Any]
) -> None:
    proxy = pg_proxy()
    store = SQLResultsStore(make_pg_url(port=proxy.port))
    flagged = row(1, decision="block")
    try:
        assert store.write([row(0)], []) == 1  # leaves a pooled connection through the proxy
        cuts = [proxy.cut]

        @event.listens_for(store.engine, "begin")
        def cut_once(_conn: Any) -> None:
            # Checked out (pre-ping passed), then the link dies: the COPY fails on the
            # psycopg connection itself (unwrapped), then the rollback (wrapped) fails too.
            while cuts:
                cuts.pop()()

        with pytest.raises(StoreUnavailable) as excinfo:
            store.write([flagged], [alert_of(flagged)])
        assert_unavailable(excinfo.value)
        with pytest.raises(StoreUnavailable):  # and new connections are refused meanwhile
            store.counts()
        proxy.restore()
        assert store.write([flagged], [alert_of(flagged)]) == 1
        assert store.counts()["alerts"] == 1  # the failed attempt stored nothing
    finally:
        store.close()


def test_locked_sqlite_file_raises_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    store = SQLResultsStore(f"sqlite:///{path}")

    @event.listens_for(store.engine, "connect")
    def wait_briefly(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=50")  # runs after the store's 5 s setting

    store.engine.dispose()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    try:
        with pytest.raises(StoreUnavailable, match="locked") as excinfo:
            store.write([row(0)], [])
        assert_unavailable(excinfo.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.write([row(0)], []) == 1
    store.close()


@pytest.mark.parametrize("bad", [{"score": None}, {"timestamp": "yesterday"}],
                         ids=["null-score", "text-timestamp"])
def test_rejected_rows_are_not_outages(store: SQLResultsStore, bad: dict[str, Any]) -> None:
    with pytest.raises(Exception) as excinfo:  # whatever the driver (or SQLAlchemy) raises
        store.write([row(0, **bad)], [])
    assert_not_an_outage(excinfo)
    assert store.counts()["transactions"] == 0


def test_bad_arguments_are_not_outages(store: SQLResultsStore) -> None:
    with pytest.raises(ValueError):
        store.alert_queue(sort="colour")
    with pytest.raises(ValueError):
        store.label_alert(1, "maybe")
    with pytest.raises(TypeError):
        store.write([row(0)])  # type: ignore[call-arg]


def test_missing_schema_is_not_an_outage(
    tmp_path: Path, make_pg_url: Callable[..., str]
) -> None:
    """An empty database opened without migrating: "no such table" is bad configuration
    (run ``riskstream db init``), not something a retry cures -- on SQLite too, whose driver
    raises it as an ``OperationalError`` like a locked file."""
    for url in (f"sqlite:///{tmp_path / 'empty.db'}", make_pg_url()):
        store = SQLResultsStore(url, migrate=False)
        try:
            with pytest.raises(sa_exc.DBAPIError) as excinfo:
                store.counts()
            assert_not_an_outage(excinfo)
        finally:
            store.close()


def test_which_driver_errors_are_connection_failures() -> None:
    outages = [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is closed"),
        sqlite3.OperationalError("database or disk is full"),
        sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
        sa_exc.DisconnectionError("connection invalidated"),
        sa_exc.ProgrammingError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
    ]
    bugs = [
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.ProgrammingError("syntax error"),
        psycopg.DataError("invalid input syntax for type double precision"),
        sa_exc.IntegrityError("INSERT ..", {}, sqlite3.IntegrityError("NOT NULL")),
        sa_exc.InterfaceError("INSERT ..", {}, sqlite3.InterfaceError("binding misuse")),
        StoreUnavailable(None, "already translated"),
        TypeError("bug"),
        KeyError("transaction_id"),
    ]
    assert [is_connection_failure(e) for e in outages] == [True] * len(outages)
    assert [is_connection_failure(e) for e in bugs] == [False] * len(bugs)


# -- outcome labels ----------------------------------------------------------------------------
def labels_of(*items: tuple[str, int, float]) -> pd.DataFrame:
    return pd.DataFrame(items, columns=["transaction_id", "label", "reported_at"])


def test_labels_are_idempotent_and_keep_their_first_report(store: SQLResultsStore) -> None:
    write(store, [row(0), row(1)])
    first = store.upsert_labels(labels_of(("tx-00000", 1, T0 + 10), ("tx-00001", 0, T0)), "api")
    assert first == {"new": 2, "updated": 0, "unchanged": 0}
    again = store.upsert_labels(labels_of(("tx-00000", 1, T0 + 99)), "import")
    assert again == {"new": 0, "updated": 0, "unchanged": 1}
    got = store.get_label("tx-00000")
    assert got is not None and got["reported_at"] == T0 + 10 and got["source"] == "api"
    changed = store.upsert_labels(labels_of(("tx-00000", 0, T0 + 50)), "analyst")
    assert changed == {"new": 0, "updated": 1, "unchanged": 0}
    got = store.get_label("tx-00000")
    assert got is not None and (got["label"], got["reported_at"]) == (0, T0 + 50)
    frame = store.labels_frame()
    assert sorted(frame["transaction_id"]) == ["tx-00000", "tx-00001"]
    assert len(store.labels_frame(until=T0 + 1)) == 1


def test_a_pending_label_waits_for_its_transaction(store: SQLResultsStore) -> None:
    store.upsert_labels(labels_of(("tx-00007", 1, T0)), "api")
    assert store.labels_to_apply() == []
    assert store.label_counts() == {"labels": 1, "fraud": 1, "pending": 1}
    write(store, [row(7)])
    [todo] = store.labels_to_apply()
    assert todo["transaction_id"] == "tx-00007" and todo["applied"] is None
    assert (todo["user_id"], todo["merchant_id"]) == (row(7)["user_id"], row(7)["merchant_id"])
    assert todo["timestamp"] == row(7)["timestamp"]
    assert store.label_counts()["pending"] == 0


def test_marking_applied_respects_a_change_in_between(store: SQLResultsStore) -> None:
    write(store, [row(0), row(1)])
    store.upsert_labels(labels_of(("tx-00000", 1, T0), ("tx-00001", 1, T0)), "api")
    assert len(store.labels_to_apply(["tx-00000", "tx-00001", "tx-nope"])) == 2
    store.upsert_labels(labels_of(("tx-00001", 0, T0 + 5)), "api")  # changed meanwhile
    store.mark_labels_applied([("tx-00000", 1), ("tx-00001", 1)])
    [left] = store.labels_to_apply()
    assert (left["transaction_id"], left["label"]) == ("tx-00001", 0)
    assert left["applied"] is None  # the mark for label 1 did not match label 0


def test_an_analyst_verdict_becomes_an_outcome_label(store: SQLResultsStore) -> None:
    write(store, [row(4, decision="review")])
    alert_id = store.alerts()[0]["id"]
    store.label_alert(alert_id, "legitimate")
    got = store.get_label("tx-00004")
    assert got is not None and (got["label"], got["source"]) == (0, "analyst")
    store.label_alert(alert_id, "fraud")  # a correction replaces it
    got = store.get_label("tx-00004")
    assert got is not None and got["label"] == 1


def test_alert_quality_per_day_from_outcome_labels(store: SQLResultsStore) -> None:
    day = 86_400.0
    base = (T0 // day) * day  # midnight UTC before T0
    at = {i: base + (i // 10) * day + 3600 + i for i in range(30)}  # 10 a day, 3 days
    rows = [row(i, timestamp=at[i], decision="review" if i % 10 < 4 else "allow")
            for i in range(30)]
    write(store, rows)
    # Day 0: 4 alerts, 3 resolved (2 fraud, 1 legitimate); one fraud not alerted (missed).
    # Day 1: 4 alerts, none resolved; frauds: none reported. Day 2: 1 of 4 alerts fraud.
    store.upsert_labels(labels_of(("tx-00000", 1, T0), ("tx-00001", 1, T0), ("tx-00002", 0, T0),
                                  ("tx-00007", 1, T0), ("tx-00020", 1, T0),
                                  ("tx-00099", 1, T0)), "api")  # tx-00099: not stored yet
    days = store.alert_quality()
    assert [d["day"] for d in days] == [
        pd.Timestamp(base + k * day, unit="s").date().isoformat() for k in range(3)]
    d0, d1, d2 = days
    assert (d0["alerts"], d0["resolved"], d0["confirmed"]) == (4, 3, 2)
    assert d0["precision"] == pytest.approx(2 / 3)
    assert (d0["frauds_reported"], d0["frauds_alerted"], d0["frauds_missed"]) == (3, 2, 1)
    assert d0["recall"] == pytest.approx(2 / 3)
    assert (d1["alerts"], d1["resolved"], d1["precision"], d1["recall"]) == (4, 0, None, None)
    assert (d2["confirmed"], d2["frauds_reported"], d2["recall"]) == (1, 1, 1.0)
    # [since, until) keeps whole days by transaction time.
    assert [d["day"] for d in store.alert_quality(since=base + day, until=base + 2 * day)] == [
        d1["day"]]
    from riskstream.storage.outcomes import alert_quality_summary

    summary = alert_quality_summary(store, days=2, now=base + 2 * day + 60)
    assert [d["day"] for d in summary["days"]] == [d1["day"], d2["day"]]
    assert summary["totals"]["alerts"] == 8 and summary["totals"]["precision"] == 1.0


def test_a_claimed_label_is_held_until_applied_or_its_lease_ends(store: SQLResultsStore) -> None:
    write(store, [row(0), row(1)])
    store.upsert_labels(labels_of(("tx-00000", 1, T0), ("tx-00001", 1, T0)), "api")
    mine = store.labels_to_apply(lease_s=60)
    assert sorted(r["transaction_id"] for r in mine) == ["tx-00000", "tx-00001"]
    assert store.labels_to_apply(lease_s=60) == []  # another worker: nothing to take
    assert len(store.labels_to_apply()) == 2  # an unclaimed look still sees them
    store.mark_labels_applied([("tx-00000", 1)])
    assert store.labels_to_apply(lease_s=60) == []  # tx-00000 applied, tx-00001 still held
    store.upsert_labels(labels_of(("tx-00000", 0, T0 + 1)), "api")  # a correction
    [fix] = store.labels_to_apply(lease_s=60)
    assert (fix["transaction_id"], fix["label"], fix["applied"]) == ("tx-00000", 0, 1)
    # A lease that ended (its holder died) lets another worker take the label.
    write(store, [row(2)])
    store.upsert_labels(labels_of(("tx-00002", 1, T0)), "api")
    assert len(store.labels_to_apply(["tx-00002"], lease_s=-1)) == 1  # held, already expired
    [late] = store.labels_to_apply(["tx-00002"], lease_s=60)
    assert late["transaction_id"] == "tx-00002"


def test_concurrent_sweeps_never_share_a_label(store: SQLResultsStore) -> None:
    import threading

    write(store, [row(i) for i in range(40)])
    store.upsert_labels(labels_of(*[(f"tx-{i:05d}", 1, T0) for i in range(40)]), "api")
    got: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def sweep(k: int) -> None:
        start.wait()
        for _ in range(5):
            got[k] += [r["transaction_id"] for r in store.labels_to_apply(limit=8, lease_s=60)]

    threads = [threading.Thread(target=sweep, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [tx for part in got for tx in part]
    assert sorted(taken) == [f"tx-{i:05d}" for i in range(40)]  # each exactly once
