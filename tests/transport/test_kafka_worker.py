"""Kafka workers against a real broker (Tansu): exactly-once effects, group hand-over,
dead letters, outages. Workers run in threads here; ``test_kafka_crash`` kills processes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from riskstream.features import FeatureEngine, InMemoryStateStore, hash_column
from riskstream.pipeline import ErrorPolicy, backoff
from riskstream.schema import validate_frame
from riskstream.transport.kafka import (
    KafkaTopics,
    TransactionProducer,
    client_config,
    ensure_topics,
    topic_configs,
)
from riskstream.transport.kafka.partition_state import read_snapshot, snapshot_dir

N_PARTITIONS = 4
#: As in conftest.py: group session timeout of test workers.
SESSION_TIMEOUT_MS = 6000


# -- helpers ---------------------------------------------------------------------------------
def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Input in the engine's event order (timestamp, then transaction-id hash), so each user's
    events reach Kafka in the order a single batch would apply them."""
    key = hash_column(frame["transaction_id"])
    return frame.iloc[np.lexsort((key, frame["timestamp"].to_numpy()))].reset_index(drop=True)


def create_topics(settings: Any) -> None:
    ensure_topics(client_config(settings), KafkaTopics.from_settings(settings).all(),
                  N_PARTITIONS, 1, topic_configs(settings))


def produce(settings: Any, frame: pd.DataFrame) -> None:
    producer = TransactionProducer(client_config(settings), settings.kafka_topic_transactions)
    assert producer.send_frame(frame) == len(frame)
    assert producer.flush() == 0 and producer.failed == 0


REDIS_URL = os.environ.get("RISKSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def shared_state(backend: str) -> dict[str, Any]:
    """Worker settings for ``redis`` state (own key prefix); none for per-partition memory."""
    if backend != "redis":
        return {}
    return {"state_url": REDIS_URL, "state_prefix": f"rs-kafka-{uuid.uuid4().hex[:8]}:"}


def clean_user_states(bundle: Any, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """User records after one uninterrupted run over ``frame`` (the reference)."""
    valid, errors = validate_frame(frame.drop(columns=["label", "scenario"], errors="ignore"))
    assert not errors
    store = InMemoryStateStore()
    FeatureEngine(bundle.spec).compute(valid, store).update.save(store)
    users = sorted(valid["user_id"].unique())
    return dict(zip(users, store.load("user", users), strict=True))


def snapshot_states(settings: Any) -> dict[str, np.ndarray]:
    """User records from every partition snapshot of the test's group."""
    from riskstream.features import spec as S

    out: dict[str, np.ndarray] = {}
    directory = snapshot_dir(settings.home, settings.kafka_group_id,
                             settings.kafka_topic_transactions)
    for p in range(N_PARTITIONS):
        snap = read_snapshot(directory / f"p{p:04d}.npz", S.USER_WIDTH)
        assert snap is not None, f"no snapshot for partition {p}"
        for key, row in zip(snap.keys, snap.rows, strict=True):
            assert key not in out, f"user {key} in two partitions"
            out[key] = row
    return out


def assert_same_states(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    differ = [u for u in want if not np.array_equal(got[u], want[u])]
    assert not differ, f"{len(differ)} users differ from a clean run, e.g. {differ[:3]}"


def assert_final_states(backend: str, settings: Any, want: dict[str, np.ndarray]) -> None:
    """Every user's state equals ``want``: from the partition snapshots (``memory``) or the
    shared store (``redis``, which is cleared afterwards)."""
    if backend == "memory":
        assert_same_states(snapshot_states(settings), want)
        return
    from riskstream.service.runtime import open_state

    store = open_state(settings)
    try:
        users = sorted(want)
        assert store.count("user") == len(users)
        assert_same_states(dict(zip(users, store.load("user", users), strict=True)), want)
    finally:
        store.clear()
        store.close()


def committed_total(settings: Any) -> int:
    """Sum over partitions of the group's committed offsets (= messages acknowledged)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": settings.kafka_group_id})
    try:
        tps = consumer.committed(
            [TopicPartition(settings.kafka_topic_transactions, p) for p in range(N_PARTITIONS)],
            timeout=10,
        )
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in tps)


def score_with_one_worker(settings: Any, frame: pd.DataFrame, bundle: Any,
                          start_worker: Callable[..., Any], waiter: Callable[..., Any]) -> Any:
    """Topics created, ``frame`` produced, one worker started; returns once every row of
    ``frame`` is in its results store."""
    create_topics(settings)
    produce(settings, frame)
    w = start_worker(settings, bundle)
    n = len(frame)
    waiter(lambda: w.worker.runtime.results.counts()["transactions"] >= n, 60, f"{n} results")
    return w


def metric(worker: Any, name: str, labels: dict[str, str] | None = None) -> float | None:
    return worker.worker.runtime.metrics.registry.get_sample_value(name, labels or {})


# -- tests -----------------------------------------------------------------------------------
def test_each_transaction_scored_once_and_alerts_published(
    kafka_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    read_topic: Callable[..., list[Any]],
    waiter: Callable[..., Any],
    sim_history: pd.DataFrame,
    tiny_bundle: Any,
) -> None:
    settings = kafka_settings()
    frame = ordered(sim_history)
    n = len(frame)
    w = score_with_one_worker(settings, frame, tiny_bundle, start_worker, waiter)
    results = w.worker.runtime.results
    # Rows are durable before the batch finishes (publish, state, commit, metrics follow):
    # wait for the batch to complete before reading counters.
    waiter(lambda: w.processed >= n
           and (metric(w, "end_to_end_latency_seconds_count") or 0) >= n, 30, "the last batch")
    counts = results.counts()
    assert counts["transactions"] == n and w.processed == n

    scored = read_topic(settings.kafka_topic_scored, n)
    scored_ids = [orjson.loads(m.value())["transaction_id"] for m in scored]
    assert len(scored_ids) == n and set(scored_ids) == set(frame["transaction_id"])
    assert "features" in orjson.loads(scored[0].value())  # by default

    alerts = read_topic(settings.kafka_topic_alerts, counts["alerts"])
    assert len(alerts) == counts["alerts"] > 0
    records = [orjson.loads(m.value()) for m in alerts]
    assert {"transaction", "score", "decision", "reasons", "model_version"} <= set(records[0])
    assert all(r["decision"] in ("review", "block") for r in records)
    assert all(m.key() == r["user_id"].encode() for m, r in zip(alerts, records, strict=True))
    stored = {a["transaction_id"] for a in results.alerts(limit=1000)}
    assert {r["transaction_id"] for r in records} == stored
    # Alerts pick out the simulated fraud: far above its 3 % base rate, several scenarios.
    scenario = frame.set_index("transaction_id")["scenario"]
    caught = [scenario[r["transaction_id"]] for r in records]
    fraud = [s for s in caught if s]
    assert len(fraud) / len(caught) > 0.2, caught
    assert len(set(fraud)) >= 3, set(fraud)

    assert metric(w, "end_to_end_latency_seconds_count") == n
    lag = [metric(w, "kafka_consumer_lag", {"topic": settings.kafka_topic_transactions,
                                            "partition": str(p)}) for p in range(N_PARTITIONS)]
    assert lag == [0.0] * N_PARTITIONS
    w.stop()  # SIGTERM path: checkpoint, commit, leave the group
    assert committed_total(settings) == n
    assert_same_states(snapshot_states(settings), clean_user_states(tiny_bundle, frame))


def test_scored_records_can_leave_the_features_out(
    kafka_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    read_topic: Callable[..., list[Any]],
    waiter: Callable[..., Any],
    sim_history: pd.DataFrame,
    tiny_bundle: Any,
) -> None:
    settings = kafka_settings(kafka_scored_features=False)
    frame = ordered(sim_history).head(300)
    n = len(frame)
    w = score_with_one_worker(settings, frame, tiny_bundle, start_worker, waiter)
    results = w.worker.runtime.results
    records = [orjson.loads(m.value()) for m in read_topic(settings.kafka_topic_scored, n)]
    assert len(records) == n
    assert all("features" not in r and {"score", "decision", "reasons"} <= set(r)
               for r in records)
    # The results store keeps them.
    stored = results.transactions(limit=5)
    assert stored and all(isinstance(r["features"], dict) and len(r["features"]) > 5
                          for r in stored)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_two_workers_split_partitions_and_hand_over_user_state(
    backend: str,
    kafka_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    waiter: Callable[..., Any],
    tiny_bundle: Any,
) -> None:
    """``memory``: moved users continue from the previous owner's snapshot. ``redis``: the
    state is shared and batches are written behind (pipeline write-behind); a revocation
    first finishes the batches in flight, so the hand-over still scores nothing twice."""
    from riskstream.simulate import SimConfig, simulate

    settings = kafka_settings(kafka_batch_size=300, **shared_state(backend))
    frame = ordered(simulate(SimConfig(n_users=400, n_merchants=60, days=5.0, seed=21)))
    n, half = len(frame), len(frame) // 2
    create_topics(settings)
    a = start_worker(settings, tiny_bundle)
    waiter(lambda: len(a.assigned()) == N_PARTITIONS, 30, "worker A owning every partition")
    produce(settings, frame.iloc[:half])
    results = a.worker.runtime.results
    waiter(lambda: results.counts()["transactions"] >= half, 30, "first half scored")

    b = start_worker(settings, tiny_bundle)

    def split() -> bool:
        pa, pb = set(a.worker.source._assigned), set(b.worker.source._assigned)
        return bool(pa) and bool(pb) and not pa & pb and len(pa | pb) == N_PARTITIONS

    waiter(split, 40, "the two workers splitting the partitions")
    produce(settings, frame.iloc[half:])
    waiter(lambda: results.counts()["transactions"] >= n, 40, "second half scored")
    # Rows are durable before their batch finishes: wait for counters and offset commits.
    waiter(lambda: a.processed + b.processed >= n and committed_total(settings) >= n, 30,
           "the last batches to finish")
    a.stop()
    b.stop()
    assert results.counts()["transactions"] == n
    assert a.processed > half and b.processed > 0  # both contributed
    assert a.processed + b.processed == n  # a clean hand-over scores nothing twice
    assert committed_total(settings) == n
    # Users of moved partitions continued from A's state on B: same state as one clean run.
    assert_final_states(backend, settings, clean_user_states(tiny_bundle, frame))


def test_malformed_messages_go_to_the_dead_letter_topic(
    kafka_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    read_topic: Callable[..., list[Any]],
    waiter: Callable[..., Any],
    make_tx: Callable[..., dict[str, Any]],
    tiny_bundle: Any,
) -> None:
    settings = kafka_settings()
    create_topics(settings)
    big = b'{"transaction_id": "big", "pad": "' + b"x" * 10_000_000 + b'"}'
    bad = [
        (b"{not json", "message", "invalid JSON"),
        (orjson.dumps(make_tx(transaction_id="no-user", drop=("user_id",))), "user_id",
         "user_id: Field required"),
        (orjson.dumps(make_tx(transaction_id="typed", amount="ten")), "amount",
         "amount: Input should be a valid number"),
        (orjson.dumps(make_tx(transaction_id="neg", amount=-3)), "amount",
         "amount: Input should be greater than or equal to 0"),
        (orjson.dumps(make_tx(transaction_id="when", timestamp="yesterday")), "timestamp",
         "timestamp: must be ISO-8601"),
        (big, "message", f"too large: {len(big)} bytes > 1000000"),
    ]
    ok = [orjson.dumps(make_tx(transaction_id=f"ok-{i}", timestamp=f"2024-01-01T12:0{i}:00Z"))
          for i in range(len(bad) + 1)]
    # One key: one partition, so valid and bad messages interleave in a known order. The
    # broker takes the 10 MB record because this producer's limit is raised; the worker
    # refuses it unread (RISKSTREAM_KAFKA_MAX_MESSAGE_BYTES) and dead-letters it, truncated.
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap,
                         "message.max.bytes": 16_000_000})
    sent: list[bytes] = []
    for i, value in enumerate(ok):
        sent.append(value)
        if i < len(bad):
            sent.append(bad[i][0])
    for value in sent:
        producer.produce(settings.kafka_topic_transactions, value, b"user-1")
    assert producer.flush(30) == 0

    w = start_worker(settings, tiny_bundle)
    letters = read_topic(settings.kafka_topic_dlq, len(bad), timeout=40)
    waiter(lambda: w.worker.runtime.results.counts()["transactions"] >= len(ok), 20, "valid")
    w.stop()
    assert {r["transaction_id"] for r in w.worker.runtime.results.transactions(limit=100)} == {
        f"ok-{i}" for i in range(len(ok))
    }  # the stream went on around every bad message
    assert len(letters) == len(bad)
    by_offset = {}
    for m in letters:
        h = {k: v.decode() for k, v in m.headers()}
        assert h["source.topic"] == settings.kafka_topic_transactions
        by_offset[int(h["source.offset"])] = (m, h)
    partition = {h["source.partition"] for _, h in by_offset.values()}
    assert len(partition) == 1
    for k, (value, field, reason) in enumerate(bad):
        m, h = by_offset[2 * k + 1]  # bad messages sit at the odd offsets
        assert h["error.field"] == field and h["error.reason"].startswith(reason), h
        assert m.key() == b"user-1"
        if value is big:
            assert h["payload.truncated"] == "true" and h["payload.size"] == str(len(big))
            assert m.value() == big[: settings.kafka_dlq_max_payload_bytes]
        else:
            assert h["payload.truncated"] == "false" and m.value() == value
    dead = metric(w, "dead_letters_total", {"reason": "amount"})
    assert dead == 2.0


def test_producer_refuses_oversized_records_and_sends_the_rest(
    kafka_settings: Callable[..., Any], read_topic: Callable[..., list[Any]],
    make_tx: Callable[..., dict[str, Any]],
) -> None:
    """Against a broker with Kafka's default limits the 10 MB record never leaves the client:
    ``produce`` counts it as refused and carries on."""
    settings = kafka_settings()
    create_topics(settings)
    producer = TransactionProducer(client_config(settings), settings.kafka_topic_transactions)
    records = [make_tx(transaction_id="a"), make_tx(transaction_id="huge", pad="x" * 10_000_000),
               make_tx(transaction_id="b")]
    assert producer.send_records(records) == 2
    assert producer.flush() == 0
    assert dict(producer.refused) == {"too large": 1} and producer.sent == 2
    got = read_topic(settings.kafka_topic_transactions, 2, timeout=15)
    assert sorted(orjson.loads(m.value())["transaction_id"] for m in got) == ["a", "b"]


def test_outages_pause_consumption_commit_nothing_and_lose_nothing(
    flaky_store: Callable[..., Any],
    kafka_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    waiter: Callable[..., Any],
    sim_history: pd.DataFrame,
    tiny_bundle: Any,
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from riskstream.api import create_app

    settings = kafka_settings()
    frame = ordered(sim_history)
    create_topics(settings)
    fast = ErrorPolicy(on_unavailable=backoff(0.05, 0.2))
    w = start_worker(settings, tiny_bundle, policy=fast)
    pipe = w.worker.pipeline
    store = flaky_store(pipe.results, down=True)
    pipe.results = store  # down from the start
    publisher = w.worker.publisher
    real_send = publisher.send
    produce(settings, frame)
    api = TestClient(create_app(w.worker.runtime))

    # 1. Results store down: the batch is retried, nothing is committed, /health says so.
    waiter(lambda: store.refused >= 3, 30, "retries against the results store")
    health = api.get("/health")
    assert health.status_code == 503
    assert health.json()["components"]["pipeline"]["problems"]["results"].startswith("down")
    assert w.processed == 0 and committed_total(settings) == 0

    # 2. Store back, broker publishing failing: still nothing committed.
    failures = {"n": 0}

    def broken_send(messages: Any) -> int:
        failures["n"] += 1
        raise KafkaException("brokers unreachable")

    publisher.send = broken_send  # type: ignore[method-assign]
    store.down = False
    waiter(lambda: failures["n"] >= 3, 30, "retries of the publication")
    assert pipe.health["sink"].startswith("down")
    assert committed_total(settings) == 0

    # 3. Everything back: every transaction scored exactly once, health ok.
    publisher.send = real_send  # type: ignore[method-assign]
    results = w.worker.runtime.results
    waiter(lambda: results.counts()["transactions"] >= len(frame), 60, "recovery")
    assert api.get("/health").status_code == 200
    w.stop()
    assert results.counts()["transactions"] == len(frame)
    assert committed_total(settings) == len(frame)
    assert_same_states(snapshot_states(settings), clean_user_states(tiny_bundle, frame))



#: A real Redis for the shared-state variant (``make test`` checks it is up).


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_kill_9_mid_stream_then_restart_loses_and_double_counts_nothing(
    backend: str,
    kafka_settings: Callable[..., Any],
    kafka_env: Callable[[Any], dict[str, str]],
    waiter: Callable[..., Any],
    tiny_bundle: Any,
    tmp_path: Path,
) -> None:
    """A real ``riskstream worker`` process is killed with SIGKILL mid-stream and a new one
    started: still exactly one result per transaction, every user's state equal to a clean
    run's, and the second worker's SIGTERM drains and commits everything. ``memory``: state
    comes back from per-partition snapshots; ``redis``: from the shared store, where the
    replay guard skips events applied before the crash but not yet committed."""
    import signal
    import subprocess
    import sys
    import threading

    import httpx
    from tansu import free_port

    from riskstream.simulate import SimConfig, simulate
    from riskstream.storage import SQLResultsStore
    from riskstream.transport.kafka.produce import produce as paced

    port = free_port()
    settings = kafka_settings(kafka_batch_size=500, kafka_checkpoint_every_s=1.0, port=port,
                              **shared_state(backend))
    frame = ordered(simulate(SimConfig(n_users=600, n_merchants=80, days=7.0, seed=33)))
    n = len(frame)
    create_topics(settings)
    env = {**os.environ, **kafka_env(settings), "RISKSTREAM_LOG_LEVEL": "INFO"}
    snapshots = snapshot_dir(settings.home, settings.kafka_group_id,
                             settings.kafka_topic_transactions)

    def worker(name: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([sys.executable, "-m", "riskstream.cli", "worker"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)

    def processed() -> float:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return float(text.split("\ntransactions_processed_total ")[1].split()[0])

    producer = TransactionProducer(client_config(settings), settings.kafka_topic_transactions)
    feed = threading.Thread(target=paced, args=(producer, [frame]), kwargs={"rate": 1000.0})
    first = worker("first")
    results = SQLResultsStore(settings.resolved_db_url())
    try:
        waiter(lambda: "assigned" in (tmp_path / "first.log").read_text(), 60, "assignment")
        feed.start()

        def checkpointed() -> bool:  # every partition has a snapshot, a third is scored
            return (backend != "memory" or len(list(snapshots.glob("p*.npz"))) == N_PARTITIONS
                    ) and results.counts()["transactions"] >= n // 3

        waiter(checkpointed, 60, "a third scored and checkpointed")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = results.counts()["transactions"]
        assert at_kill < n, "the stream should still be running when the worker dies"
        second = worker("second")
        feed.join(60)
        waiter(lambda: results.counts()["transactions"] >= n, 90, f"all {n} scored")
        # It replayed what the dead worker had scored after its last checkpoint...
        replayed = processed() - (n - at_kill)
        assert replayed > 0 if backend == "memory" else replayed >= 0, replayed
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        log = (tmp_path / "second.log").read_text()
        assert "worker stopped cleanly" in log, log[-3000:]
        if backend == "memory":
            assert "resuming {0: " in log  # it started from the dead worker's snapshots
        # ... and still stored one row per transaction, none missing.
        assert results.counts()["transactions"] == n
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.kill()
        results.close()
    assert producer.sent == n and producer.failed == 0
    assert committed_total(settings) == n  # the drain committed every offset
    assert_final_states(backend, settings, clean_user_states(tiny_bundle, frame))


@pytest.mark.slow
def test_run_kafka_all_in_one_serves_and_stops_cleanly(
    stop_process: Callable[..., str],
    kafka_settings: Callable[..., Any],
    kafka_env: Callable[[Any], dict[str, str]],
    waiter: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """``riskstream run --kafka BOOTSTRAP``: simulator -> topic -> worker -> store, API and
    metrics on one port; Ctrl-C stops it cleanly."""
    import subprocess
    import sys

    import httpx
    from tansu import free_port

    port = free_port()
    settings = kafka_settings(port=port)
    env = {**os.environ, **kafka_env(settings), "RISKSTREAM_SIM_RATE": "2000"}
    env.pop("RISKSTREAM_KAFKA_BOOTSTRAP")  # given on the command line instead
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskstream.cli", "run", "--kafka", settings.kafka_bootstrap],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def metric(name: str) -> float:
        for line in httpx.get(f"{base}/metrics", timeout=2).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def up() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        waiter(up, 60, "/health")
        waiter(lambda: metric("transactions_processed_total") >= 1000, 60, "1000 scored")
        assert metric("end_to_end_latency_seconds_count") >= 1000
        assert metric("kafka_assigned_partitions") == N_PARTITIONS
    finally:
        out = stop_process(proc)
    assert proc.returncode == 0, out[-3000:]
    assert "worker stopped cleanly" in out


@pytest.mark.slow
def test_broker_outage_pauses_the_worker_which_resumes_without_loss(
    tcp_proxy: Callable[..., Any],
    kafka_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    waiter: Callable[..., Any],
    tiny_bundle: Any,
    tmp_path: Path,
) -> None:
    """The broker becomes unreachable mid-stream for longer than the session timeout: /health
    reports it, nothing is lost or doubled when it is back (the group had expelled the worker:
    its partitions were lost, dropped unsaved and reloaded from their snapshots)."""
    from fastapi.testclient import TestClient
    from tansu import TansuBroker, free_port

    from riskstream.api import create_app
    from riskstream.simulate import SimConfig, simulate

    broker_port = free_port()
    proxy = tcp_proxy(("127.0.0.1", broker_port))
    # The broker advertises the proxy, so every client connection goes through it.
    with TansuBroker(port=broker_port, advertised_port=proxy.port) as broker:
        settings = kafka_settings(
            kafka_bootstrap=broker.bootstrap,
            kafka_batch_size=200,
            kafka_delivery_timeout_ms=3000,
            kafka_config={"reconnect.backoff.max.ms": "500"},
        )
        frame = ordered(simulate(SimConfig(n_users=300, n_merchants=50, days=5.0, seed=8)))
        n = len(frame)
        create_topics(settings)
        produce(settings, frame)
        fast = ErrorPolicy(on_unavailable=backoff(0.05, 0.5))
        w = start_worker(settings, tiny_bundle, policy=fast)
        results = w.worker.runtime.results
        api = TestClient(create_app(w.worker.runtime))
        # Slow the worker down so the outage hits mid-stream.
        real_write = results.write_new

        def slow_write(rows: Any, alerts: Any) -> set[str]:
            time.sleep(0.05)
            return real_write(rows, alerts)

        w.worker.pipeline.results.write_new = slow_write  # type: ignore[method-assign]
        waiter(lambda: results.counts()["transactions"] >= n // 4, 30, "a quarter scored")
        proxy.cut()
        problems = waiter(
            lambda: api.get("/health").status_code == 503
            and api.get("/health").json()["components"]["pipeline"]["problems"],
            30, "/health reporting the outage",
        )
        assert {"broker", "sink"} & set(problems), problems
        time.sleep(SESSION_TIMEOUT_MS / 1000 + 2)  # long enough for the group to expel it
        during = results.counts()["transactions"]
        assert during < n
        proxy.restore()
        waiter(lambda: results.counts()["transactions"] >= n, 90, "recovery")
        waiter(lambda: api.get("/health").status_code == 200, 30, "/health ok again")
        w.stop()
        assert results.counts()["transactions"] == n
        assert_same_states(snapshot_states(settings), clean_user_states(tiny_bundle, frame))


def test_producer_config_compresses_by_default_and_keeps_its_guarantees() -> None:
    """zstd is a tuning default (the user's choice wins); durability settings are not."""
    from riskstream.transport.kafka import producer_config

    plain = producer_config({})
    assert plain["compression.type"] == "zstd" and plain["compression.level"] == 1
    assert plain["acks"] == "all" and plain["enable.idempotence"] is True
    mine = producer_config({"compression.type": "lz4", "acks": "1", "linger.ms": 50})
    assert mine["compression.type"] == "lz4" and mine["linger.ms"] == 50
    assert "compression.level" not in mine  # zstd's level is not another codec's
    assert mine["acks"] == "all"  # applied after the user's properties


def test_labels_topic_stores_labels_names_bad_ones_and_folds_them_in(
    kafka_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    waiter: Callable[..., Any],
    sim_history: pd.DataFrame,
    tiny_bundle: Any,
) -> None:
    settings = kafka_settings()
    frame = ordered(sim_history).iloc[:2000]
    w = score_with_one_worker(settings, frame, tiny_bundle, start_worker, waiter)
    results = w.worker.runtime.results
    first, second = frame["transaction_id"].iloc[10], frame["transaction_id"].iloc[20]
    producer = Producer(client_config(settings))
    for value in (
        orjson.dumps([{"transaction_id": first, "label": 1, "source": "chargebacks"},
                      {"transaction_id": second, "label": "legitimate"}]),
        b"{not json",
        orjson.dumps({"labels": [{"transaction_id": "t-x", "label": "maybe"}]}),
    ):
        producer.produce(settings.kafka_topic_labels, value)
    assert producer.flush(10) == 0
    waiter(lambda: len(results.dead_letters(limit=10)) >= 2 and results.get_label(second), 60,
           "the labels topic read")
    got = results.get_label(first)
    assert got is not None and (got["label"], got["source"]) == (1, "chargebacks")
    reasons = sorted(d["reason"] for d in results.dead_letters(limit=10))
    assert reasons == ["invalid JSON", "label: must be 1/0, true/false or fraud/legitimate"], \
        reasons
    # Folded into the label-aware state without waiting for traffic (an idle stream).
    waiter(lambda: (results.get_label(first) or {}).get("applied") == 1, 30, "label applied")
    merchant = frame.set_index("transaction_id").loc[first, "merchant_id"]
    from riskstream.features import spec as S

    record = w.worker.runtime.core.state.get("merchant_label", merchant)
    assert record is not None and record[S.ML_F30] > 0.5
    assert metric(w, "labels_total", {"source": "chargebacks", "outcome": "accepted"}) == 1
    assert metric(w, "labels_total", {"source": "kafka", "outcome": "accepted"}) == 1
    assert metric(w, "labels_total", {"source": "kafka", "outcome": "rejected"}) == 2
    w.stop()
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"{settings.kafka_group_id}.labels"})
    try:
        tps = consumer.committed([TopicPartition(settings.kafka_topic_labels, p)
                                  for p in range(N_PARTITIONS)], timeout=10)
    finally:
        consumer.close()
    assert sum(max(tp.offset, 0) for tp in tps) == 3  # every message acknowledged
