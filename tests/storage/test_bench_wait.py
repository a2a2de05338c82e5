"""The Kafka benchmark (benchmarks/kafka_e2e.py) waits for the drain without loading the
database it measures.

Its workers' results land in PostgreSQL while it polls for them; the poll must not scan the
results table (a ``count(*)`` of 300,000 rows costs the server ~100 ms of CPU), and it must
still end only once every result is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import load_benchmark, wait_for

from riskstream.storage import SQLResultsStore

bench = load_benchmark("kafka_e2e")
_Run = bench._Run


def _waiter(store: SQLResultsStore, tmp_path: Path) -> Any:
    run = object.__new__(_Run)  # only what waiting needs: no broker, no workers
    run.results, run.procs, run.home = store, [], tmp_path
    return run


def test_wait_polls_the_insert_counter_and_ends_on_an_exact_count(
    make_pg_url: Callable[..., str], make_scored: Callable[..., Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Exact counts only within a tenth of the target (not within a 5,000-row batch).
    monkeypatch.setattr(bench, "_BATCH", 1)
    store = SQLResultsStore(make_pg_url())  # a fresh schema: other tables share the name
    monkeypatch.setattr(store, "counts", lambda: pytest.fail("polled with counts()"))
    run = _waiter(store, tmp_path)
    rows = [make_scored(i)[0] for i in range(12)]
    store.write(rows[:7], [])
    # The counter is this schema's table's, reported within about a second.
    wait_for(lambda: run._progress() == 7, 10, "the insert counter to reach 7")
    run.wait_count(7, timeout_s=10)
    with pytest.raises(TimeoutError, match="7 of 12"):
        run.wait_count(12, timeout_s=1.5)
    # 5 new rows; the replayed 7 are rolled back (and counted by the counter) and ignored.
    store.write(rows, [])
    run.wait_count(12, timeout_s=10)
    assert run.count() == 12
    wait_for(lambda: run._progress() >= 12, 10, "the insert counter to pass 12")
    store.close()


def test_wait_ends_when_the_counter_stalls_below_the_target(
    make_pg_url: Callable[..., str], make_scored: Callable[..., Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A backend that goes idle reports its last inserts only ~10 s later: a counter that
    # stopped moving short of the target is checked with an exact count, within ~1 s.
    monkeypatch.setattr(bench, "_BATCH", 1)  # exact counts "near the end" only from 11 of 12
    store = SQLResultsStore(make_pg_url())
    run = _waiter(store, tmp_path)
    store.write([make_scored(i)[0] for i in range(12)], [])
    monkeypatch.setattr(run, "_progress", lambda: 3)  # as reported before the last batches
    run.wait_count(12, timeout_s=3)
    store.close()


def test_a_runs_database_is_dropped_after_it(make_pg_url: Callable[..., str]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    # The test server, without the per-test schema option (the new database has no schema).
    server = make_url(make_pg_url()).set(query={}).render_as_string(hide_password=False)
    name = f"rs_bench_droptest_{uuid.uuid4().hex[:8]}"
    url = bench._fresh_database(server, name)
    try:
        SQLResultsStore(url).close()  # a schema and a connection pool, as a run leaves them
    except BaseException:
        bench._drop_database(url)
        raise

    def exists() -> bool:
        admin = create_engine(server)
        try:
            with admin.connect() as conn:
                return bool(conn.scalar(text(
                    "SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}))
        finally:
            admin.dispose()

    assert exists()
    bench._drop_database(url)
    assert not exists()
