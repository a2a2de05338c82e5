"""Kafka transport (confluent-kafka / librdkafka) behind the same Source/Sink interfaces.

Contract (the design and its guarantees are in ``docs/streaming.md``):

* :class:`KafkaSource` is one consumer of a group on the input topic. ``poll`` returns a
  :class:`~riskstream.transport.base.Batch` of raw messages, ``meta`` (one :class:`MessageMeta`
  per message) and ``position`` = ``{partition: next offset}``. ``commit(batch)`` is called by
  the pipeline only once the batch's results are durable and its publications acknowledged;
  it records the positions as *processed* and, with ``commit_each_batch``, commits them to
  Kafka. Otherwise a checkpoint (:mod:`riskstream.transport.kafka.partition_state`) commits them
  together with a state snapshot. Rebalance callbacks run inside ``poll`` -- that is, between
  batches, never during one -- and are forwarded to a :class:`PartitionListener`.
* :class:`ResultsPublisher` (``transactions.scored`` + ``alerts``) and
  :class:`DeadLetterPublisher` (``transactions.dlq``) are sinks: ``publish`` returns only when
  every record is acknowledged by the brokers (``acks=all``), and raises otherwise, so the
  pipeline retries the batch and commits nothing meanwhile.
* :class:`TransactionProducer` writes transactions to the input topic keyed by ``user_id``
  (murmur2 partitioner, as Java clients), counting records the client refuses (too large).
* :func:`ensure_topics` creates missing topics with the admin client.

Only this module imports ``confluent_kafka`` (the ``kafka`` extra).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson
import pandas as pd
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from riskstream.metrics import Metrics, observe_many
from riskstream.schema import CANONICAL_COLUMNS
from riskstream.storage.batch import ResultBatch
from riskstream.transport.base import Batch, Sink, Source

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
_GENERATION_ERRORS = frozenset(
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
_PRODUCER_IDENTITY_ERRORS = frozenset(
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
_PROBE_EVERY_S = 5.0
#: Seconds a broker probe may block the loop.
_PROBE_TIMEOUT_S = 1.0
#: Extra time over ``message.timeout.ms`` a flush may wait: by then every message has a
#: delivery report (success or timeout).
_FLUSH_MARGIN_S = 5.0


@dataclass(frozen=True)
class KafkaTopics:
    """Topic names (``scored`` may be ``""``: scored rows are then not published)."""

    transactions: str = "transactions"
    scored: str = "transactions.scored"
    alerts: str = "alerts"
    dlq: str = "transactions.dlq"

    @classmethod
    def from_settings(cls, settings: Any) -> KafkaTopics:
        return cls(
            settings.kafka_topic_transactions,
            settings.kafka_topic_scored,
            settings.kafka_topic_alerts,
            settings.kafka_topic_dlq,
        )

    def all(self) -> list[str]:
        return [t for t in (self.transactions, self.scored, self.alerts, self.dlq) if t]


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
        raise ValueError("no Kafka cluster: set RISKSTREAM_KAFKA_BOOTSTRAP or pass --bootstrap")
    conf: dict[str, Any] = {"bootstrap.servers": servers}
    conf.update({k: v.get_secret_value() for k, v in settings.kafka_config.items()})
    return conf


def _logged(conf: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka logs go to the ``riskstream.kafka.client`` logger (repeats suppressed), not
    raw to stderr."""
    return {"logger": client_log, **conf}


def ensure_topics(
    config: Mapping[str, Any],
    topics: Sequence[str],
    partitions: int,
    replication: int,
    topic_config: Mapping[str, Mapping[str, str]] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created.

    Safe to run from several workers at once (``TOPIC_ALREADY_EXISTS`` is success). Waits until
    the metadata shows every topic, so a consumer subscribing next sees its partitions.
    """
    admin = AdminClient(_logged({k: v for k, v in config.items() if k != "logger"}))
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [t for t in dict.fromkeys(topics) if t and t not in existing]
    created: list[str] = []
    if missing:
        configs = topic_config or {}
        futures = admin.create_topics(
            [
                NewTopic(t, num_partitions=partitions, replication_factor=replication,
                         config=dict(configs.get(t, {})))
                for t in missing
            ],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        for topic, future in futures.items():
            try:
                future.result()
                created.append(topic)
                log.info("created topic %s (%d partitions, replication %d)",
                         topic, partitions, replication)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    deadline = time.monotonic() + timeout_s
    while True:
        meta = admin.list_topics(timeout=timeout_s).topics
        if all(t in meta and meta[t].partitions for t in topics if t):
            return created
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {list(topics)} not visible after {timeout_s:.0f}s")
        time.sleep(0.2)


class PartitionListener(Protocol):
    """Follows the source's partitions (state loading and flushing; docs/streaming.md)."""

    def assigned(self, partitions: list[int]) -> dict[int, int]:
        """Partitions just assigned; return start offsets for those with their own (from a
        state snapshot). Others resume at the group's committed offset."""

    def received(self, batch: Batch) -> None:
        """A batch is about to be processed (e.g. learn which partition each user is on)."""

    def revoked(self, partitions: list[int], lost: bool) -> None:
        """Partitions leaving, between batches, after their processed offsets were committed
        (``lost``: the group already gave them away; nothing may be saved for them)."""


class KafkaSource(Source):
    """A consumer-group member on one input topic (see module docstring)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        topic: str,
        group_id: str,
        *,
        commit_each_batch: bool = True,
        listener: PartitionListener | None = None,
        metrics: Metrics | None = None,
        health: dict[str, str] | None = None,
        session_timeout_ms: int = 10_000,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.topic = topic
        self.commit_each_batch = commit_each_batch
        self.listener = listener
        #: Called first on revocation: finish the batches whose writes are still in flight
        #: (the pipeline's write-behind), so their positions are committed in the hand-over
        #: and the next owner replays nothing. Exceptions are logged: those batches stay
        #: uncommitted and are replayed, which the results store and the replay guard absorb.
        self.before_revoke: Callable[[], None] | None = None
        self.metrics = metrics
        #: Shared with the pipeline (``/health``): ``broker`` is ``ok`` or ``down: <why>``.
        self.health = health if health is not None else {}
        self.health.setdefault("broker", "ok")
        defaults = {
            "auto.offset.reset": "earliest",  # a new group scores the topic from its start
            "partition.assignment.strategy": "cooperative-sticky",  # only moved partitions stop
            # Longest a fetch waits at the broker for data. Apache Kafka answers as soon as
            # there is data, so this only bounds idle polling (20 ms: 50 empty fetches a
            # second per broker when idle). Tansu answers about half of it late at any rate
            # (at 5,000 tx/s records arrive in clumps every ~53 ms at 100, ~7 ms at 20), so
            # there it sets the batches' size and the latency. 20 against 100, 2 workers at
            # 5,000 tx/s, 16 interleaved pairs on a slow and a fast box: p50 lower in 15, p99
            # lower in 12 (none of 100's stalled runs), for ~1.6x the workers' and the
            # broker's CPU at that rate (smaller batches, as Kafka would deliver them). The
            # cost: a full topic drained 7-17 % slower in 3 pairs (cause not established; a plain
            # consumer showed it once, not twice). 10 was worse on a slow box (docs/streaming.md).
            "fetch.wait.max.ms": 20,
            # Heartbeats well inside the session timeout (Kafka's rule of thumb: a third).
            "heartbeat.interval.ms": max(500, min(3000, session_timeout_ms // 3)),
        }
        essential = {
            "group.id": group_id,
            # Offsets are committed by this class only, after results are durable.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "session.timeout.ms": session_timeout_ms,
            "max.poll.interval.ms": max_poll_interval_ms,
            "error_cb": self._on_error,
            "on_commit": self._on_commit,
        }
        conf = _logged({**defaults, **config, **essential})
        self._cooperative = conf["partition.assignment.strategy"] == "cooperative-sticky"
        self.consumer = Consumer(conf)
        self._assigned: set[int] = set()
        #: partition -> next offset whose results are durable (what a commit may acknowledge)
        self._processed: dict[int, int] = {}
        #: The thread that polls. Commits from any other thread (the pipeline's write-behind)
        #: only mark their positions processed, and the polling thread commits them before its
        #: next fetch: the consumer's commit blocks while a rebalance callback runs in poll(),
        #: and the revocation callback waits for those threads (``before_revoke``).
        self._poller: int | None = None
        self._commit_due = False
        self._last_probe = 0.0
        #: When the previous fetch of :meth:`poll` returned (monotonic): the next wait counts
        #: from there, so the caller's processing time is part of it.
        self._handed_out_at = 0.0
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    # -- Source -----------------------------------------------------------------------------
    def poll(self, max_records: int, timeout_s: float) -> Batch | None:
        """Up to ``max_records`` messages, or what arrived within ``timeout_s`` of the previous
        batch being handed out: a batch cadence, not a wait added after every batch.

        The time the caller spent on the previous batch counts towards the wait, so a batch
        that took longer than ``timeout_s`` to process is followed at once by what queued up
        meanwhile. (A fixed wait after each batch made every record wait for the processing
        of the batch before it *plus* the full timeout. Taking whatever is there as soon as
        one message is, with no wait at all, measured worse at 5,000 tx/s: batches shrink,
        the fixed cost of a batch -- validation, scoring set-up, a database round trip -- is
        paid more often. The cadence keeps batches at least ``timeout_s`` of traffic apart.)
        """
        self._poller = threading.get_ident()
        if self._commit_due:
            self._commit_due = False
            try:
                self.commit_offsets(asynchronous=True)
            except KafkaException as exc:  # positions stay processed: the next poll retries
                self._commit_due = True
                log.warning("offset commit failed (%s); retried before the next fetch", exc)
        try:
            messages = self._consume(max_records, timeout_s)
        except KafkaException as exc:
            self._broker_down(exc.args[0])
            return None
        finally:
            self._handed_out_at = time.monotonic()
        topic = self.topic
        values: list[bytes] = []
        meta: list[MessageMeta] = []
        positions: dict[int, int] = {}
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self._broker_down(err)
                continue
            p, o = m.partition(), m.offset()
            values.append(m.value() or b"")  # a tombstone becomes an (invalid) empty message
            meta.append(MessageMeta(topic, p, o, m.timestamp()[1], m.key()))
            positions[p] = o + 1  # a partition's messages arrive in offset order
        if not values:
            self._probe()
            return None
        self._broker_ok()
        self._observe_lag(positions)
        batch = Batch(
            messages=values,
            position=positions,
            meta=meta,
            source=f"kafka:{topic}",
            received_at=time.time(),
        )
        if self.listener is not None:
            self.listener.received(batch)
        return batch

    def _consume(self, max_records: int, timeout_s: float) -> list[Message]:
        """``consume`` with the batch cadence of :meth:`poll`."""
        left = timeout_s - (time.monotonic() - self._handed_out_at)
        if left > 0:
            return self.consumer.consume(max_records, left)
        messages = self.consumer.consume(max_records, 0)  # what queued while the caller worked
        return messages or self.consumer.consume(max_records, timeout_s)

    def commit(self, batch: Batch) -> None:
        """The batch is durable: mark its positions processed (and commit them, per batch)."""
        positions: dict[int, int] = batch.position or {}
        for p, offset in positions.items():
            if p in self._assigned and offset > self._processed.get(p, -1):
                self._processed[p] = offset
        self._observe_latency(batch)
        if self.commit_each_batch and threading.get_ident() not in (self._poller, None):
            self._commit_due = True  # committed by the polling thread (see __init__)
        elif self.commit_each_batch:
            # Asynchronous: the order guarantee is kept (the results are already durable), and
            # the loop does not wait a round trip per batch. Revocation and close() commit
            # synchronously, so a clean hand-over or shutdown replays nothing.
            self.commit_offsets(list(positions), asynchronous=True)

    def close(self) -> None:
        """Commit what is processed and leave the group (revocation callbacks run first)."""
        try:
            self.commit_offsets()
        except KafkaException as exc:
            log.warning("final offset commit failed (%s); the next owner replays a little", exc)
        self.consumer.close()

    # -- offsets ------------------------------------------------------------------------------
    def processed_offsets(self, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """``{partition: next offset whose results are durable}`` for owned partitions."""
        wanted = self._assigned if partitions is None else set(partitions) & self._assigned
        return {p: o for p, o in self._processed.items() if p in wanted}

    def commit_offsets(
        self, partitions: Iterable[int] | None = None, asynchronous: bool = False
    ) -> bool:
        """Commit processed offsets (all owned partitions by default).

        Returns False when the group refused the commit because partitions are moving
        (nothing to retry: their next owner resumes from the last commit). Raises
        ``KafkaException`` on other failures (e.g. coordinator unreachable).
        """
        offsets = [
            TopicPartition(self.topic, p, o) for p, o in self.processed_offsets(partitions).items()
        ]
        if not offsets:
            return True
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError._NO_OFFSET:
                return True
            if err.code() in _GENERATION_ERRORS:
                log.warning("offset commit refused (%s): partitions are moving", err.name())
                return False
            raise
        for tp in result or []:
            if tp.error is not None:
                if tp.error.code() in _GENERATION_ERRORS:
                    return False
                raise KafkaException(tp.error)
        return True

    # -- rebalance callbacks (run inside consume(), i.e. between batches) ----------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ps = sorted(tp.partition for tp in partitions)
        starts = self.listener.assigned(ps) if self.listener is not None else {}
        for tp in partitions:
            start = starts.get(tp.partition)
            if start is not None and start >= 0:
                tp.offset = start
                self._processed[tp.partition] = start
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self._assigned.update(ps)
        if ps:
            resumed = {p: o for p, o in starts.items() if o is not None and o >= 0}
            log.info(
                "assigned %s partitions %s%s", self.topic, ps,
                f"; resuming {resumed} from state snapshots" if resumed else "",
            )
        self._count_rebalance("assigned", ps)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ps = sorted(tp.partition for tp in partitions)
        if not ps:
            return
        if self.before_revoke is not None:
            try:
                self.before_revoke()
            except Exception as exc:
                log.warning("batches in flight not finished before revocation (%s)", exc)
        try:  # hand over cleanly: the next owner starts exactly after our last durable batch
            self.commit_offsets(ps)
        except KafkaException as exc:
            log.warning("offset commit on revocation failed (%s)", exc)
        if self.listener is not None:
            self.listener.revoked(ps, lost=False)
        self._forget(ps)
        log.info("revoked %s partitions %s", self.topic, ps)
        self._count_rebalance("revoked", ps)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ps = sorted(tp.partition for tp in partitions)
        if self.listener is not None:
            self.listener.revoked(ps, lost=True)
        self._forget(ps)
        log.warning("lost %s partitions %s (expelled from the group)", self.topic, ps)
        self._count_rebalance("lost", ps)

    def _forget(self, partitions: list[int]) -> None:
        for p in partitions:
            self._assigned.discard(p)
            self._processed.pop(p, None)
            if self.metrics is not None:
                with contextlib.suppress(KeyError):  # no lag reported yet for it
                    self.metrics.consumer_lag.remove(self.topic, str(p))

    def _count_rebalance(self, event: str, partitions: list[int]) -> None:
        if self.metrics is not None:
            self.metrics.rebalances.labels(event).inc()
            self.metrics.assigned_partitions.set(len(self._assigned))

    # -- health and metrics ---------------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        self._broker_down(err)

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None and err.code() not in (KafkaError._NO_OFFSET, *_GENERATION_ERRORS):
            log.warning("offset commit failed (%s); the next commit covers it", err.name())

    def _broker_down(self, err: KafkaError) -> None:
        state = f"down: {err.name()}"
        if self.health.get("broker") != state:
            log.warning("Kafka %s: %s", err.name(), err.str())
        self.health["broker"] = state
        if self.metrics is not None:
            self.metrics.up.labels("broker").set(0)

    def _broker_ok(self) -> None:
        if self.health.get("broker") != "ok":
            log.info("Kafka reachable again")
        self.health["broker"] = "ok"
        if self.metrics is not None:
            self.metrics.up.labels("broker").set(1)

    def _probe(self) -> None:
        """With the broker marked down and nothing arriving, check it now and then."""
        now = time.monotonic()
        if self.health.get("broker") == "ok" or now - self._last_probe < _PROBE_EVERY_S:
            return
        self._last_probe = now
        try:
            self.consumer.list_topics(self.topic, timeout=_PROBE_TIMEOUT_S)
        except KafkaException:
            return
        self._broker_ok()

    def _observe_lag(self, positions: Mapping[int, int]) -> None:
        """Lag = high watermark - next offset. The high watermark is the one that came back with
        the fetched messages (``cached=True``: no broker round trip; querying it separately
        is both slower and, on some Kafka-protocol brokers, wrong)."""
        if self.metrics is None:
            return
        for p, nxt in positions.items():
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, p), cached=True
            )
            if high >= 0:
                self.metrics.consumer_lag.labels(self.topic, str(p)).set(max(high - nxt, 0))

    def _observe_latency(self, batch: Batch) -> None:
        if self.metrics is None or not batch.meta:
            return
        ts = np.fromiter((m.timestamp_ms for m in batch.meta), np.float64, len(batch.meta))
        ts = ts[ts > 0]
        if ts.size:
            now_ms = time.time() * 1000.0
            # Clock skew between producer and worker hosts must not give negative latencies.
            observe_many(self.metrics.end_to_end_latency, np.maximum(now_ms - ts, 0.0) / 1000.0)


# -- producing ---------------------------------------------------------------------------------
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


class Publisher:
    """A producer whose :meth:`send` returns only once every message is acknowledged.

    One publisher is used by one thread at a time (the pipeline's). Delivery reports are only
    raised for failures (``delivery.report.only.error``), so a healthy send costs no Python
    callback per message. An idempotent producer that hits a *fatal* error (e.g. fenced after
    a long broker outage) can never send again: the next :meth:`send` replaces it.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        delivery_timeout_ms: int = 30_000,
        max_message_bytes: int = 1_000_000,
    ) -> None:
        self._failures: list[KafkaError] = []
        self._fatal: KafkaError | None = None
        self._conf = producer_config(
            config, delivery_timeout_ms=delivery_timeout_ms, max_message_bytes=max_message_bytes
        )
        self._conf.update({
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        })
        self.producer = Producer(self._conf)
        self.flush_timeout_s = delivery_timeout_ms / 1000.0 + _FLUSH_MARGIN_S

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._failures.append(err)
            if err.fatal() or err.code() in _PRODUCER_IDENTITY_ERRORS:
                self._fatal = err

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
        else:
            log.debug("producer: %s", err)

    def _renew_if_fatal(self) -> None:
        if self._fatal is None:
            return
        log.warning("producer unusable after %s: replacing it", self._fatal.name())
        self._fatal = None
        self.producer.purge(in_queue=True, in_flight=True)
        self.producer = Producer(self._conf)

    def send(
        self, messages: Iterable[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]]
    ) -> int:
        """Produce ``(topic, key, value, headers)`` messages and wait for all acks; raise
        (``TimeoutError`` or ``KafkaException``) if any was not acknowledged."""
        self._renew_if_fatal()
        self._failures.clear()
        produce, poll = self.producer.produce, self.producer.poll
        n = 0
        for topic, key, value, headers in messages:
            while True:
                try:
                    if headers is None:
                        # Keyword arguments cost the C call ~0.3 us more per message.
                        produce(topic, value, key)
                    else:
                        produce(topic, value, key, headers=headers)
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    poll(0.05)
            n += 1
        remaining = self.producer.flush(self.flush_timeout_s)
        if remaining:
            # Drop what is still queued so a retry does not pile up copies behind it.
            self.producer.purge(in_queue=True, in_flight=False)
            self.producer.poll(0)
            raise TimeoutError(f"{remaining} of {n} messages not acknowledged in time")
        if self._failures:
            first = self._failures[0]
            count = len(self._failures)
            self._failures.clear()
            raise KafkaException(first) from RuntimeError(f"{count} of {n} messages failed")
        return n

    def close(self) -> None:
        self.producer.flush(self.flush_timeout_s)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def alert_message(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``alerts`` topic record for a scored row: the transaction, score, decision, reason
    codes and model version."""
    return {
        "transaction_id": row["transaction_id"],
        "user_id": row["user_id"],
        "timestamp": row["timestamp"],
        "score": row["score"],
        "decision": row["decision"],
        "reasons": row["reasons"],
        "model_version": row["model_version"],
        "scored_at": row["scored_at"],
        "transaction": {c: row.get(c) for c in CANONICAL_COLUMNS},
    }


class ResultsPublisher(Sink):
    """Every scored row to ``transactions.scored`` and every review/block to ``alerts``, keyed
    by ``user_id`` (one flush per batch for both topics). ``features=False`` leaves the
    ``features`` object out of the scored records (alerts never carry it)."""

    def __init__(self, publisher: Publisher, topics: KafkaTopics, *, features: bool = True) -> None:
        self.publisher = publisher
        self.topics = topics
        self.features = features

    def publish(self, records: list[dict[str, Any]]) -> None:
        """Row dicts (any producer of result rows); see :meth:`publish_results`."""
        self.publish_results(ResultBatch.from_rows(records))

    def publish_results(self, batch: ResultBatch) -> None:
        """A batch's rows: JSON rendered a column at a time (:meth:`ResultBatch.json_rows`),
        not a dict per row; alert records are built for the flagged rows only."""
        scored, alerts = self.topics.scored, self.topics.alerts
        if not len(batch):
            return
        keys = [str(u).encode() for u in batch.values("user_id")]
        messages: list[tuple[str, bytes | None, bytes, None]] = []
        if scored:
            records = batch if self.features else batch.sharing_texts(
                {k: c for k, c in batch.columns.items() if k != "features"})
            messages += zip(repeat(scored), keys, records.json_records(), repeat(None))
        if alerts:
            decisions = batch.values("decision")
            for i, decision in enumerate(decisions):
                if decision != "allow":
                    messages.append((alerts, keys[i], _json(alert_message(batch.row(i))), None))
        if messages:
            self.publisher.send(messages)


class DeadLetterPublisher(Sink):
    """Dead letters to ``transactions.dlq``: the value is the original message bytes (cut at
    ``max_payload_bytes``), the key the original key, and headers say why and where from:

    ``error.field``, ``error.reason``, ``transaction_id`` (if known), ``source.topic``,
    ``source.partition``, ``source.offset``, ``source.timestamp_ms``, ``payload.size``,
    ``payload.truncated`` (``true``/``false``).
    """

    def __init__(self, publisher: Publisher, topic: str, max_payload_bytes: int = 900_000) -> None:
        self.publisher = publisher
        self.topic = topic
        self.max_payload_bytes = max_payload_bytes

    def publish(self, records: list[dict[str, Any]]) -> None:
        self.publisher.send([self._message(r) for r in records])

    def _message(
        self, letter: Mapping[str, Any]
    ) -> tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]:
        raw = letter.get("raw")
        if raw is None:  # a frame row (not a message): its record as JSON
            payload = letter.get("payload")
            raw = payload.encode() if isinstance(payload, str) else _json(payload)
        meta: MessageMeta | None = letter.get("meta")
        cut = raw[: self.max_payload_bytes]
        headers = [
            ("error.field", str(letter.get("field") or "").encode()),
            ("error.reason", str(letter.get("reason") or "").encode()),
            ("transaction_id", str(letter.get("transaction_id") or "").encode()),
            ("payload.size", str(len(raw)).encode()),
            ("payload.truncated", b"true" if len(cut) < len(raw) else b"false"),
        ]
        if meta is not None:
            headers += [
                ("source.topic", meta.topic.encode()),
                ("source.partition", str(meta.partition).encode()),
                ("source.offset", str(meta.offset).encode()),
                ("source.timestamp_ms", str(meta.timestamp_ms).encode()),
            ]
        return self.topic, (meta.key if meta is not None else None), cut, headers


class TransactionProducer:
    """Writes transactions to the input topic keyed by ``user_id``.

    ``send_*`` queue messages (the client batches them); :meth:`flush` waits for the acks.
    Records the client refuses outright (larger than ``max_message_bytes``) are counted in
    ``refused`` by reason and skipped; deliveries that fail later count in ``failed``.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        topic: str,
        *,
        max_message_bytes: int = 1_000_000,
        linger_ms: int = 5,
        delivery_timeout_ms: int = 30_000,
    ) -> None:
        self.topic = topic
        self.sent = 0
        self.failed = 0
        self.refused: Counter[str] = Counter()
        conf = producer_config(
            config,
            delivery_timeout_ms=delivery_timeout_ms,
            max_message_bytes=max_message_bytes,
            linger_ms=linger_ms,
        )
        conf.update({"delivery.report.only.error": True, "on_delivery": self._on_delivery})
        self.producer = Producer(conf)
        self._timeout_s = delivery_timeout_ms / 1000.0 + _FLUSH_MARGIN_S

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if self.failed <= 5 or self.failed % 1000 == 0:
                log.warning("delivery failed (%s); %d failed so far", err.name(), self.failed)

    def send_raw(self, key: bytes | None, value: bytes) -> bool:
        """Queue one message; False if the client refused it (counted in ``refused``)."""
        while True:
            try:
                self.producer.produce(self.topic, value, key)
                break
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                self.refused["too large"] += 1
                log.warning("refused a %d-byte message (larger than message.max.bytes)",
                            len(value))
                return False
        self.sent += 1
        if self.sent % 1000 == 0:
            self.producer.poll(0)  # serve delivery reports
        return True

    def send_records(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Queue JSON records keyed by their ``user_id``; return how many were accepted."""
        ok = 0
        for rec in records:
            user = rec.get("user_id")
            key = None if user is None else str(user).encode()
            ok += self.send_raw(key, _json(rec))
        return ok

    def send_frame(self, frame: pd.DataFrame, drop: Sequence[str] = ("label", "scenario")) -> int:
        """Queue the rows of a transaction frame (minus ``drop`` columns) as JSON records."""
        cols = [c for c in frame.columns if c not in drop]
        return self.send_records(frame[cols].to_dict("records"))

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait for acknowledgements; return how many messages are still unacknowledged."""
        return int(self.producer.flush(self._timeout_s if timeout_s is None else timeout_s))

    def pending(self) -> int:
        return len(self.producer)
