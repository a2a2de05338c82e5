"""Alembic migrations on SQLite and PostgreSQL: empty -> head, 0001 with data -> head,
adoption of pre-migration databases, concurrent start-up, and the ``riskstream db`` CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from riskstream.cli import app
from riskstream.storage import SQLResultsStore, migrate
from riskstream.storage.engine import make_engine
from riskstream.storage.tables import metadata

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path,
           make_pg_url: Callable[..., str]) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}" if request.param == "sqlite" else make_pg_url()


def test_head_constant_is_the_script_head() -> None:
    assert migrate.script_head() == migrate.HEAD


def test_empty_database_to_head_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrate.current_revision(engine) is None
        assert migrate.upgrade(engine) == (None, migrate.HEAD)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == []  # the migrations build exactly the tables the store queries
        if engine.dialect.name == "postgresql":  # revision 0003: ids compare as bytes
            with engine.connect() as conn:
                collations = dict(conn.execute(text(
                    "SELECT table_name || '.' || column_name, collation_name "
                    "FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND column_name IN ('transaction_id', 'user_id', 'decision')")).all())
            assert set(collations.values()) == {"C"} and len(collations) == 9  # outcome_labels too
        assert migrate.upgrade(engine) == (migrate.HEAD, migrate.HEAD)  # idempotent
    finally:
        engine.dispose()


def test_upgrade_from_0001_keeps_data_and_links_labels(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0001")
        assert "alert_id" not in {c["name"] for c in inspect(engine).get_columns("labels")}
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO scored_transactions (transaction_id, \"timestamp\", user_id, amount,"
                " score, decision, reasons, scored_at) VALUES "
                "('t1', 100.0, 'u1', 9.5, 0.995, 'review', '[]', 1.0),"
                "('t2', 200.0, 'u1', 3.0, 0.1, 'allow', '[]', 1.0)"))
            conn.execute(text(
                "INSERT INTO alerts (transaction_id, \"timestamp\", user_id, amount, score,"
                " decision, reasons, created_at) VALUES "
                "('t1', 100.0, 'u1', 9.5, 0.995, 'review', '[]', 1.0)"))
            conn.execute(text(
                "INSERT INTO labels (transaction_id, verdict, created_at) VALUES "
                "('t1', 'fraud', 2.0), ('t2', 'legitimate', 3.0)"))
        assert migrate.upgrade(engine) == ("0001", migrate.HEAD)
        with engine.connect() as conn:
            alert_id = conn.execute(text("SELECT id FROM alerts")).scalar_one()
            links = dict(conn.execute(text("SELECT transaction_id, alert_id FROM labels")).all())
        assert links == {"t1": alert_id, "t2": None}
        indexes = {i["name"] for i in inspect(engine).get_indexes("alerts")}
        assert "ix_alerts_status_ts" in indexes
    finally:
        engine.dispose()
    store = SQLResultsStore(db_url)  # the store works on the migrated database
    try:
        assert store.counts()["transactions"] == 2
        assert [r["transaction_id"] for r in store.transactions(user_id="u1")] == ["t2", "t1"]
        assert store.alerts()[0]["transaction_id"] == "t1"
    finally:
        store.close()


def test_upgrade_from_0004_keeps_row_json_and_narrows_the_decision_index(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO scored_transactions (transaction_id, \"timestamp\", user_id, amount,"
                " score, decision, reasons, features, detector_scores, scored_at) VALUES "
                "('t1', 100.0, 'u1', 9.5, 0.995, 'block', '[]', '{\"log_amount\": 2.25}',"
                " '{\"isolation_forest\": 0.99}', 1.0),"
                "('t2', 200.0, 'u1', 3.0, 0.1, 'allow', '[]', NULL, NULL, 1.0)"))
        assert migrate.upgrade(engine) == ("0004", migrate.HEAD)
        indexes = {i["name"] for i in inspect(engine).get_indexes("scored_transactions")}
        assert "ix_scored_flagged_ts" in indexes and "ix_scored_decision_ts" not in indexes
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                types = dict(conn.execute(text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = "
                    "'scored_transactions' AND column_name IN ('features', 'detector_scores')"
                )).all())
                where = conn.execute(text(
                    "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = 'ix_scored_flagged_ts' "
                    "AND c.relnamespace = current_schema()::regnamespace")).scalar_one()
            assert types == {"features": "text", "detector_scores": "text"}
            assert "allow" in where
    finally:
        engine.dispose()
    store = SQLResultsStore(db_url)
    try:
        rows = {r["transaction_id"]: r for r in store.transactions(user_id="u1")}
        assert rows["t1"]["features"] == {"log_amount": 2.25}
        assert rows["t1"]["detector_scores"] == {"isolation_forest": 0.99}
        assert rows["t2"]["features"] is None
        assert [r["transaction_id"] for r in store.transactions(decision="block")] == ["t1"]
        assert [r["transaction_id"] for r in store.transactions(decision="allow")] == ["t2"]
    finally:
        store.close()


def test_downgrade_from_0006_turns_feature_arrays_back_into_objects(db_url: str) -> None:
    import numpy as np

    from riskstream.storage.batch import Const, Matrix, ResultBatch

    store = SQLResultsStore(db_url)
    try:
        batch = ResultBatch(2, {
            "transaction_id": ["a", "b"], "timestamp": np.array([1.0, 2.0]),
            "user_id": ["u", "u"], "amount": np.array([3.0, 4.0]), "score": np.array([0.1, 0.2]),
            "decision": ["allow", "allow"], "scored_at": Const(5.0),
            "features": Matrix.rounded(("x", "y"), np.array([[1.5, -2.0], [0.25, 7.0]]), 5),
        })
        assert store.write(batch, []) == 2
    finally:
        store.close()
    engine = make_engine(db_url)
    try:
        migrate.downgrade(engine, "0005")
        assert "feature_set" not in {
            c["name"] for c in inspect(engine).get_columns("scored_transactions")}
        with engine.connect() as conn:
            stored = dict(conn.execute(text(
                "SELECT transaction_id, features FROM scored_transactions")).all())
        assert {k: json.loads(v) for k, v in stored.items()} == {
            "a": {"x": 1.5, "y": -2.0}, "b": {"x": 0.25, "y": 7.0}}
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def test_pre_migration_database_is_adopted(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0001")
        with engine.begin() as conn:  # what SQLResultsStore.create_all used to leave
            conn.execute(text("DROP TABLE alembic_version"))
            conn.execute(text(
                "INSERT INTO labels (transaction_id, verdict, created_at) VALUES ('t', 'x', 1)"))
        assert migrate.current_revision(engine) is None
        assert migrate.upgrade(engine) == ("0001", migrate.HEAD)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM labels")).scalar_one() == 1
    finally:
        engine.dispose()


def test_downgrade_and_upgrade_again(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        migrate.downgrade(engine, "0001")
        assert migrate.current_revision(engine) == "0001"
        assert "alert_id" not in {c["name"] for c in inspect(engine).get_columns("labels")}
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.HEAD
    finally:
        engine.dispose()


def test_concurrent_start_up_migrates_once(make_pg_url: Callable[..., str]) -> None:
    url = make_pg_url()
    errors: list[BaseException] = []
    stores: list[SQLResultsStore] = []

    def open_store() -> None:
        try:
            stores.append(SQLResultsStore(url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == [] and len(stores) == 4
        assert migrate.current_revision(stores[0].engine) == migrate.HEAD
    finally:
        for store in stores:
            store.close()


def test_db_cli(db_url: str) -> None:
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> str:
        result = runner.invoke(app, [*args, "--db-url", db_url], input=input)
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    assert "revision none" in run("db", "status")
    assert f"empty -> {migrate.HEAD}" in run("db", "init")
    assert "up to date" in run("db", "status")
    assert f"{migrate.HEAD} -> {migrate.HEAD}" in run("db", "migrate")
    store = SQLResultsStore(db_url)
    store.write_dead_letters([{"received_at": 1.0, "reason": "r", "payload": "p"}])
    store.close()

    refused = runner.invoke(app, ["db", "reset", "--db-url", db_url], input="n\n")
    assert refused.exit_code != 0 and "Delete ALL" in refused.output
    store = SQLResultsStore(db_url)
    assert store.counts()["dead_letters"] == 1  # nothing deleted without confirmation
    store.close()

    assert "reset" in run("db", "reset", "--yes")
    store = SQLResultsStore(db_url)
    try:
        assert store.counts()["dead_letters"] == 0
        assert migrate.current_revision(store.engine) == migrate.HEAD
    finally:
        store.close()
    assert "reset" in run("db", "reset", input="y\n")
