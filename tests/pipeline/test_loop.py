"""The run loop: dead letters, idempotent replays, retries that commit nothing meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from riskstream.pipeline import ErrorPolicy, Pipeline
from riskstream.storage import ResultsStore
from riskstream.transport import Batch, InProcessQueue, ListSink


@pytest.fixture
def make_pipeline(make_runtime: Callable[..., Any]) -> Callable[..., tuple[Pipeline, Any]]:
    def factory(results: ResultsStore | None = None, **kw: Any) -> tuple[Pipeline, Any]:
        rt = make_runtime()
        pipe = Pipeline(
            rt.core, InProcessQueue(), results or rt.results, rt.metrics, lock=rt.lock, **kw
        )
        return pipe, rt

    return factory


def messages(records: list[Any]) -> list[bytes]:
    return [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]


def test_bad_messages_become_specific_dead_letters(
    make_pipeline: Callable[..., Any], make_tx: Callable[..., Any]
) -> None:
    pipe, rt = make_pipeline()
    raw = messages(
        [
            make_tx(transaction_id="ok-1"),
            b"{not json",
            make_tx(transaction_id="no-user", drop=("user_id",)),
            make_tx(transaction_id="typed", amount="ten"),
            make_tx(transaction_id="neg", amount=-3),
            make_tx(transaction_id="when", timestamp="yesterday"),
            b"[1, 2]",
            b"x" * 10_000_000,
            make_tx(transaction_id="ok-2", timestamp="2024-01-01T12:05:00Z"),
        ]
    )
    pipe.process(Batch(messages=raw, position=1, source="test"))
    scored = {r["transaction_id"] for r in rt.results.transactions(limit=100)}
    assert scored == {"ok-1", "ok-2"}
    letters = {
        (d["field"], d["transaction_id"]): d["reason"] for d in rt.results.dead_letters(limit=100)
    }
    assert letters[("user_id", "no-user")] == "user_id: Field required"
    assert letters[("amount", "typed")] == "amount: Input should be a valid number"
    assert letters[("amount", "neg")] == "amount: Input should be greater than or equal to 0"
    assert letters[("timestamp", "when")].startswith("timestamp: must be ISO-8601")
    invalid_json = [
        d["reason"] for d in rt.results.dead_letters(limit=100) if d["field"] == "message"
    ]
    assert all(r.startswith("invalid JSON") for r in invalid_json)
    assert any("JSON object" in r for r in invalid_json)  # valid JSON, wrong shape
    big = [d for d in rt.results.dead_letters(limit=100) if len(d["payload"] or "") > 4000]
    assert big and all(len(d["payload"]) < 4200 for d in big)  # stored truncated
    text = rt.metrics.registry.get_sample_value("dead_letters_total", {"reason": "amount"})
    assert text == 2.0
    assert pipe.source.committed == 1  # type: ignore[attr-defined]


def test_replaying_a_batch_changes_nothing(
    make_pipeline: Callable[..., Any], make_stream: Callable[..., pd.DataFrame]
) -> None:
    pipe, rt = make_pipeline()
    frame = make_stream(n=600)
    pipe.process(Batch(frame=frame, position=1))
    first = rt.core.state.load("user", sorted(frame["user_id"].unique()))
    rows_before = rt.results.counts()["transactions"]
    pipe.process(Batch(frame=frame, position=1))  # e.g. crash before the source commit
    assert rt.results.counts()["transactions"] == rows_before == 600
    again = rt.core.state.load("user", sorted(frame["user_id"].unique()))
    np.testing.assert_array_equal(first, again)


def test_batches_of_any_size_give_the_same_state(
    make_pipeline: Callable[..., Any], make_stream: Callable[..., pd.DataFrame]
) -> None:
    frame = make_stream(n=900)
    users = sorted(frame["user_id"].unique())
    pipe_a, rt_a = make_pipeline()
    pipe_a.process(Batch(frame=frame, position=1))
    pipe_b, rt_b = make_pipeline()
    for k, start in enumerate(range(0, 900, 97)):
        pipe_b.process(Batch(frame=frame.iloc[start : start + 97], position=k))
    np.testing.assert_array_equal(
        rt_a.core.state.load("user", users), rt_b.core.state.load("user", users)
    )


def test_store_outage_retries_and_commits_only_after_success(
    make_runtime: Callable[..., Any], make_stream: Callable[..., pd.DataFrame],
    flaky_store: Callable[..., Any],
) -> None:
    rt = make_runtime()
    flaky = flaky_store(rt.results, fail_first=3)
    seen: list[tuple[str, int]] = []

    def policy(component: str, exc: Exception, attempt: int) -> float:
        # While the store is down: nothing committed, no state saved, health says so.
        seen.append((component, attempt))
        assert source.committed == 0
        assert rt.core.state.count("user") == 0
        assert pipe.health["results"].startswith("down")
        return 0.0

    source = InProcessQueue()
    sink = ListSink()
    pipe = Pipeline(
        rt.core,
        source,
        flaky,
        rt.metrics,
        sink=sink,
        policy=ErrorPolicy(on_unavailable=policy),
        lock=rt.lock,
    )
    pipe.process(Batch(frame=make_stream(n=300), position=7))
    assert seen == [("results", 0), ("results", 1), ("results", 2)]
    assert source.committed == 7 and pipe.health["results"] == "ok"
    assert rt.results.counts()["transactions"] == 300
    assert rt.core.state.count("user") > 0


def test_in_process_queue_batches_and_carries(make_stream: Callable[..., pd.DataFrame]) -> None:
    q = InProcessQueue()
    frame = make_stream(n=250)
    q.put(frame.iloc[:100])
    q.put(frame.iloc[100:])
    first = q.poll(max_records=120, timeout_s=0.1)
    second = q.poll(max_records=500, timeout_s=0.1)
    assert first is not None and second is not None
    assert len(first) == 120 and len(second) == 130
    assert q.poll(max_records=10, timeout_s=0.01) is None
    assert list(pd.concat([first.frame, second.frame])["transaction_id"]) == list(
        frame["transaction_id"]
    )


def test_settle_gc_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    """Process-wide settings, so checked in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import gc, riskstream.pipeline.loop as p\n"
        "before = gc.get_threshold()\n"
        "p.settle_gc()\n"
        "after = gc.get_threshold()\n"
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
        "assert after == (p.GC_YOUNG_THRESHOLD, *before[1:]), (before, after)\n"
        "assert p.GC_YOUNG_THRESHOLD > before[0]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
