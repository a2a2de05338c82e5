"""Settings shared by every Kafka client: topic names, connection and producer properties, the
librdkafka log route, and the error codes and timings the clients act on.

Contract: nothing here talks to a broker. :func:`client_config` turns settings into connection
properties (raising :class:`~riskstream.errors.ConfigurationError` when there is no cluster to
connect to); :func:`producer_config` adds the durability every producer needs; :func:`_logged`
routes a client's own log lines to the ``riskstream.kafka.client`` logger, where a
:class:`RepeatFilter` keeps reconnection storms to one line per 30 s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from confluent_kafka import KafkaError

from riskstream.errors import ConfigurationError

log = logging.getLogger("riskstream.kafka")


class RepeatFilter(logging.Filter):
    """Drop a log record that repeats one let through less than ``window_s`` ago; the next
    one let through says how many were dropped.

    librdkafka logs every reconnection attempt of every internal thread: with the broker down
    a worker wrote ~20 identical "Connect to ... failed" lines a second, burying the warnings
    that say what is wrong (which the error callback reports, itself rate-limited).

    >>> f = RepeatFilter(window_s=30.0)
    >>> rec = lambda: logging.LogRecord("k", logging.ERROR, "", 0, "down", None, None)
    >>> [f.filter(rec()) for _ in range(3)]
    [True, False, False]
    """

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        #: (level, text) -> (when last let through, repeats dropped since)
        self._seen: dict[tuple[int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()  # clients deliver logs on the threads that poll them

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, record.getMessage())
        now = self.clock()
        with self._lock:
            last, dropped = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.window_s:
                self._seen[key] = (last, dropped + 1)
                return False
            if len(self._seen) > 1000:  # forget what has not repeated within the window
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            self._seen[key] = (now, 0)
        if dropped and last is not None:
            since = now - last
            record.msg = f"{key[1]} (and {dropped} more like it in the last {since:.0f} s)"
            record.args = None
        return True


#: librdkafka's own log lines (``logger`` of every client): repeats suppressed.
client_log = logging.getLogger("riskstream.kafka.client")
client_log.addFilter(RepeatFilter())

#: Offset commits refused because the group has moved on (a rebalance, or this member was
#: expelled): retrying is pointless; the partition's next owner replays from the last commit.
GENERATION_ERRORS = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError._STATE,
    }
)
#: Delivery errors after which an idempotent producer's identity (producer id, epoch,
#: sequence numbers) is no longer accepted by the broker -- seen after long outages, when
#: timed-out messages made the client bump its epoch. Only a new producer gets out of them.
PRODUCER_IDENTITY_ERRORS = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError._FATAL,
    }
)
#: While the broker looks down and no messages arrive, probe it this often (seconds) so
#: ``/health`` recovers even on an idle topic.
PROBE_EVERY_S = 5.0
#: Seconds a broker probe may block the loop.
PROBE_TIMEOUT_S = 1.0
#: Extra time over ``message.timeout.ms`` a flush may wait: by then every message has a
#: delivery report (success or timeout).
FLUSH_MARGIN_S = 5.0


@dataclass(frozen=True)
class KafkaTopics:
    """Topic names (``scored`` may be ``""``: scored rows are then not published)."""

    transactions: str = "transactions"
    scored: str = "transactions.scored"
    alerts: str = "alerts"
    dlq: str = "transactions.dlq"
    labels: str = "labels"  # input: outcome labels ("" = none)

    @classmethod
    def from_settings(cls, settings: Any) -> KafkaTopics:
        return cls(
            settings.kafka_topic_transactions,
            settings.kafka_topic_scored,
            settings.kafka_topic_alerts,
            settings.kafka_topic_dlq,
            settings.kafka_topic_labels,
        )

    def all(self) -> list[str]:
        return [t for t in (self.transactions, self.scored, self.alerts, self.dlq, self.labels)
                if t]


class MessageMeta(NamedTuple):
    """Where one input message came from (``Batch.meta`` entries)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int  # broker timestamp: LogAppendTime if the topic has it, else CreateTime
    key: bytes | None


def client_config(settings: Any, bootstrap: str | None = None) -> dict[str, Any]:
    """Connection properties shared by every client: bootstrap servers plus the operator's
    pass-through (``RISKSTREAM_KAFKA_CONFIG``: SASL, TLS, client.id, ...)."""
    servers = bootstrap or settings.kafka_bootstrap
    if not servers:
        raise ConfigurationError(
            "no Kafka cluster: set RISKSTREAM_KAFKA_BOOTSTRAP or pass --bootstrap"
        )
    conf: dict[str, Any] = {"bootstrap.servers": servers}
    conf.update({k: v.get_secret_value() for k, v in settings.kafka_config.items()})
    return conf


def _logged(conf: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka logs go to the ``riskstream.kafka.client`` logger (repeats suppressed), not
    raw to stderr."""
    return {"logger": client_log, **conf}


def producer_config(
    config: Mapping[str, Any],
    *,
    delivery_timeout_ms: int = 30_000,
    max_message_bytes: int = 1_000_000,
    linger_ms: int = 5,
) -> dict[str, Any]:
    """Producer properties: durable (``acks=all``, idempotent), Java-compatible partitioning
    (``murmur2_random``: a ``user_id`` lands on the same partition whichever client wrote it)."""
    defaults = {
        "linger.ms": linger_ms,  # a few ms of batching: far fewer requests at high rates
        "queue.buffering.max.messages": 1_000_000,
        "partitioner": "murmur2_random",
        # zstd at level 1: the broker stores, replicates and serves a batch as sent (topics
        # default to compression.type=producer), so bytes on disk and on the wire shrink.
        # On a batch of transactions.scored records zstd-1 gives 10.6x at ~940 MB/s, lz4
        # 5.5x at ~1,100 MB/s: half the bytes for about the same client CPU. Local Tansu, two
        # workers, 7 paired runs: broker CPU lower than with lz4 in 7, throughput higher in 6
        # (lz4 itself had cut broker CPU 15-40 % against none; docs/streaming.md).
        "compression.type": "zstd",
        "compression.level": 1,
    }
    essential = {
        "acks": "all",
        "enable.idempotence": True,  # broker-side dedupe of the client's own retries
        "message.timeout.ms": delivery_timeout_ms,
        "message.max.bytes": max_message_bytes,
    }
    if "compression.type" in config and "compression.level" not in config:
        del defaults["compression.level"]  # zstd's level; e.g. snappy accepts only 0
    return _logged({**defaults, **config, **essential})
