"""Write-behind (``Pipeline(write_behind=True)``): batch N's writes overlap batch N+1's
scoring, and nothing about the results, the state or the commit order changes.

Real Redis state (DB 15, own prefix) and SQLite results; the pending-state overlay is also
tested on its own, with an in-memory store declared thread-safe.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskstream.features import InMemoryStateStore
from riskstream.features.redis_state import RedisStateStore
from riskstream.metrics import Metrics
from riskstream.pipeline import ErrorPolicy, Pipeline, Stopped
from riskstream.pipeline.writebehind import PendingState
from riskstream.scoring.core import ScoringCore
from riskstream.storage import SQLResultsStore
from riskstream.transport import Batch, InProcessQueue

REDIS_URL = os.environ.get("RISKSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class ThreadSafeMemory(InMemoryStateStore):
    thread_safe = True


class RecordingQueue(InProcessQueue):
    """Records commits (and the results count when each happened)."""

    def __init__(self, results: SQLResultsStore) -> None:
        super().__init__(maxsize=0)
        self.results = results
        self.commits: list[tuple[Any, int]] = []

    def commit(self, batch: Batch) -> None:
        self.commits.append((batch.position, self.results.counts()["transactions"]))
        super().commit(batch)


@pytest.fixture
def make_system(tmp_path: Path, tiny_bundle: Any) -> Iterator[Callable[..., Any]]:
    made: list[tuple[RedisStateStore, SQLResultsStore]] = []

    def factory(write_behind: bool, results: Any = None, policy: ErrorPolicy | None = None
                ) -> tuple[Pipeline, RedisStateStore, SQLResultsStore, RecordingQueue]:
        state = RedisStateStore.from_url(REDIS_URL, prefix=f"rs-test-{uuid.uuid4().hex}:")
        if not state.ping():
            pytest.fail(f"Redis is not reachable at {REDIS_URL}", pytrace=False)
        store = SQLResultsStore(f"sqlite:///{tmp_path / f'r{len(made)}.db'}")
        made.append((state, store))
        source = RecordingQueue(store)
        core = ScoringCore(tiny_bundle, state)
        pipe = Pipeline(core, source, results or store, Metrics(), policy=policy,
                        write_behind=write_behind)
        return pipe, state, store, source

    yield factory
    for state, store in made:
        state.clear()
        state.close()
        store.close()


def _stored(store: SQLResultsStore) -> pd.DataFrame:
    rows = store.transactions(limit=100_000)
    frame = pd.DataFrame(rows).drop(columns=["scored_at", "latency_ms"])
    return frame.sort_values("transaction_id").reset_index(drop=True)


def test_results_and_state_equal_the_sequential_run(
    make_system: Callable[..., Any], make_stream: Callable[..., pd.DataFrame]
) -> None:
    frame = make_stream(n=1500, n_users=30)
    users = sorted(frame["user_id"].unique())
    merchants = sorted(frame["merchant_id"].unique())
    out = {}
    for mode in (False, True):
        pipe, state, store, source = make_system(write_behind=mode)
        assert isinstance(pipe.core.state, PendingState) is mode
        for k, start in enumerate(range(0, len(frame), 101)):
            pipe.process(Batch(frame=frame.iloc[start : start + 101], position=k))
        pipe.drain()
        assert [p for p, _ in source.commits] == list(range(15))
        # Each commit came after its own batch's results were stored.
        assert all(n >= min(101 * (p + 1), len(frame)) for p, n in source.commits)
        out[mode] = (_stored(store), state.load("user", users), state.load("merchant", merchants))
        if mode:
            assert pipe.core.state.pending() == 0  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(out[True][0], out[False][0])
    np.testing.assert_array_equal(out[True][1], out[False][1])
    np.testing.assert_array_equal(out[True][2], out[False][2])


@pytest.fixture
def first_batch_failed(
    make_system: Callable[..., Any], make_stream: Callable[..., pd.DataFrame],
    flaky_store: Callable[..., Any],
) -> tuple[Pipeline, Any, RecordingQueue, pd.DataFrame]:
    """A write-behind pipeline whose first batch (``frame[:200]``, handed over) fails to be
    written: the results store raises once and the policy gives up. Returns the pipeline, its
    state, its source and the 400-row frame (the second batch is ``frame[200:]``)."""
    frame = make_stream(n=400)
    pipe, state, store, source = make_system(write_behind=True)
    pipe.results = flaky_store(store, fail_first=1)
    pipe.policy = ErrorPolicy(lambda component, exc, attempt: None)
    pipe.process(Batch(frame=frame.iloc[:200], position=1))
    return pipe, state, source, frame


def test_a_failed_batch_is_never_committed_past(first_batch_failed: tuple[Any, ...]) -> None:
    # Batch 1's results write gives up (the policy returns None); batch 2's results may be
    # written meanwhile, but neither state nor position moves past batch 1.
    pipe, state, source, frame = first_batch_failed
    with pytest.raises(ConnectionError):
        pipe.process(Batch(frame=frame.iloc[200:], position=2))
        pipe.drain()
    pipe.drain()  # nothing left in flight
    assert source.commits == [] and state.count("user") == 0
    assert pipe.core.state.pending() == 0


def test_a_failure_seen_by_an_outside_drain_stops_the_next_batch(
    first_batch_failed: tuple[Any, ...],
) -> None:
    # A Kafka revocation drains from inside poll(): the failure it sees must still stop the
    # loop, or the next batch of a partition kept would commit past the failed one.
    pipe, state, source, frame = first_batch_failed
    with pytest.raises(ConnectionError):
        pipe.drain()  # as KafkaSource.before_revoke does
    with pytest.raises(ConnectionError):
        pipe.process(Batch(frame=frame.iloc[200:], position=2))
    assert source.commits == [] and state.count("user") == 0


def test_a_failing_write_is_retried_in_the_background_and_blocks_the_next_commit(
    make_system: Callable[..., Any], make_stream: Callable[..., pd.DataFrame],
    flaky_store: Callable[..., Any],
) -> None:
    frame = make_stream(n=400)
    attempts: list[str] = []

    def policy(component: str, exc: Exception, attempt: int) -> float:
        attempts.append(component)
        return 0.01

    pipe, state, store, source = make_system(write_behind=True, policy=ErrorPolicy(policy))
    flaky = flaky_store(store, fail_first=3)
    pipe.results = flaky
    pipe.process(Batch(frame=frame.iloc[:200], position=1))
    pipe.process(Batch(frame=frame.iloc[200:], position=2))  # waits for batch 1's writes
    pipe.drain()
    assert attempts == ["results"] * 3
    assert [p for p, _ in source.commits] == [1, 2]
    assert store.counts()["transactions"] == 400
    assert state.count("user") == frame["user_id"].nunique()


def test_stop_while_retrying_leaves_the_batch_uncommitted(
    make_system: Callable[..., Any], make_stream: Callable[..., pd.DataFrame],
    flaky_store: Callable[..., Any],
) -> None:
    pipe, state, store, source = make_system(write_behind=True)
    pipe.results = flaky_store(store, down=True)
    pipe.policy = ErrorPolicy(lambda component, exc, attempt: 0.01)
    pipe.process(Batch(frame=make_stream(n=200), position=1))
    time.sleep(0.05)
    pipe.stop()
    with pytest.raises(Stopped):
        pipe.drain()
    assert source.commits == [] and state.count("user") == 0
    # The abandoned batch's rows are no longer shown: its replay starts from the store.
    assert pipe.core.state.pending() == 0  # type: ignore[attr-defined]


def test_run_drains_before_returning(
    make_system: Callable[..., Any], make_stream: Callable[..., pd.DataFrame]
) -> None:
    pipe, _state, store, source = make_system(write_behind=True)
    frame = make_stream(n=500)
    for start in range(0, 500, 100):
        source.put(frame.iloc[start : start + 100])
    seen: list[int] = []

    def on_batch(scored: Any) -> None:
        seen.append(len(scored))
        if sum(seen) == 500:
            pipe.stop()

    pipe.run(100, 0.05, on_batch=on_batch)
    assert store.counts()["transactions"] == 500 and len(source.commits) == 5


def test_online_detectors_and_memory_state_stay_sequential(
    make_system: Callable[..., Any], make_stream: Callable[..., pd.DataFrame],
    tiny_bundle: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe, _state, store, source = make_system(write_behind=True)
    monkeypatch.setattr(pipe, "_learns_online", lambda: True)
    pipe.process(Batch(frame=make_stream(n=100), position=1))
    assert [p for p, _ in source.commits] == [1]  # done when process returned
    memory = Pipeline(ScoringCore(tiny_bundle, InMemoryStateStore()), InProcessQueue(), store,
                      Metrics(), write_behind=True)
    assert isinstance(memory.core.state, InMemoryStateStore)  # not thread-safe: no overlay


@pytest.fixture
def overlay() -> tuple[ThreadSafeMemory, PendingState, int]:
    """A pending-state overlay on a thread-safe memory store, and the user record width."""
    inner = ThreadSafeMemory()
    return inner, PendingState(inner), inner.widths["user"]


def test_pending_state_shows_held_rows_until_their_own_save(
    overlay: tuple[ThreadSafeMemory, PendingState, int],
) -> None:
    inner, state, w = overlay
    a = np.full((2, w), 1.0)
    b = np.full((1, w), 2.0)
    state.hold([("user", ["x", "y"], a)])
    state.hold([("user", ["y"], b)])  # a later batch supersedes y
    assert state.load("user", ["x", "y", "z"])[:, 0].tolist() == [1.0, 2.0, 0.0]
    assert state.get("user", "y")[0] == 2.0  # type: ignore[index]
    state.save_many([("user", ["x", "y"], a)])  # batch a saved: x released, y still b's
    assert state.pending() == 1
    assert state.load("user", ["x", "y"])[:, 0].tolist() == [1.0, 2.0]
    state.save_many([("user", ["y"], b)])
    assert state.pending() == 0 and inner.load("user", ["y"])[0, 0] == 2.0


def test_an_outside_save_waits_for_the_held_batches(
    overlay: tuple[ThreadSafeMemory, PendingState, int],
) -> None:
    # The API's single-transaction path saves through the same store: after the batch in
    # flight, so the store gets the rows in the order they were scored.
    inner, state, w = overlay
    held = np.full((1, w), 1.0)
    newer = np.full((1, w), 2.0)
    state.hold([("user", ["u"], held)])
    done = threading.Event()
    api = threading.Thread(target=lambda: (state.save_many([("user", ["u"], newer)]),
                                           done.set()))
    api.start()
    assert not done.wait(0.2)  # waiting for the held batch
    state.save_many([("user", ["u"], held)])
    assert done.wait(5)
    api.join()
    assert inner.load("user", ["u"])[0, 0] == 2.0
    state.hold([("user", ["v"], held)])
    state.release([("user", ["v"], held)])  # an abandoned batch releases its rows
    assert state.pending() == 0
