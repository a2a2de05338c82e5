"""The Kafka source: one consumer-group member on the input topic.

Contract (the design and its guarantees are in ``docs/streaming.md``):

* ``poll`` returns a :class:`~riskstream.transport.base.Batch` of raw messages, ``meta`` (one
  :class:`~riskstream.transport.kafka.config.MessageMeta` per message) and ``position`` =
  ``{partition: next offset}``. A broker that cannot be reached does not raise: ``poll``
  returns None and reports ``broker: down: ...`` in the shared ``health`` map until messages
  (or a probe) get through again.
* ``commit(batch)`` is called by the pipeline only once the batch's results are durable and
  its publications acknowledged; it records the positions as *processed* and, with
  ``commit_each_batch``, commits them to Kafka. Otherwise a checkpoint
  (:mod:`riskstream.transport.kafka.partition_state`) commits them together with a state
  snapshot. A commit the broker did not take raises
  :class:`~riskstream.errors.TransportUnavailable` (component ``source``): the positions stay
  processed, so retrying the commit later is all it takes.
* Rebalance callbacks run inside ``poll`` -- that is, between batches, never during one -- and
  are forwarded to a :class:`PartitionListener`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from riskstream.errors import TransportUnavailable
from riskstream.metrics import Metrics, observe_many
from riskstream.transport.base import Batch, Source
from riskstream.transport.kafka.config import (
    GENERATION_ERRORS,
    PROBE_EVERY_S,
    PROBE_TIMEOUT_S,
    MessageMeta,
    _logged,
    log,
)

#: Component named by this source's outages: the pipeline retries commits under it.
COMPONENT = "source"


def _commit_refused(err: KafkaError) -> TransportUnavailable:
    """A commit the broker did not take (coordinator unreachable, timeout, ...)."""
    return TransportUnavailable(COMPONENT, f"{err.name()}: {err.str()}")


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
            except TransportUnavailable as exc:  # positions stay processed: retried next poll
                self._commit_due = True
                log.warning("offset commit failed (%s); retried before the next fetch",
                            exc.reason)
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
        except TransportUnavailable as exc:
            log.warning("final offset commit failed (%s); the next owner replays a little",
                        exc.reason)
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
        :class:`~riskstream.errors.TransportUnavailable` (component ``source``) on other
        failures (e.g. coordinator unreachable), chained to the client's ``KafkaException``.
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
            if err.code() in GENERATION_ERRORS:
                log.warning("offset commit refused (%s): partitions are moving", err.name())
                return False
            raise _commit_refused(err) from exc
        for tp in result or []:
            if tp.error is not None:
                if tp.error.code() in GENERATION_ERRORS:
                    return False
                raise _commit_refused(tp.error) from KafkaException(tp.error)
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
        except TransportUnavailable as exc:
            log.warning("offset commit on revocation failed (%s)", exc.reason)
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
        if err is not None and err.code() not in (KafkaError._NO_OFFSET, *GENERATION_ERRORS):
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
        if self.health.get("broker") == "ok" or now - self._last_probe < PROBE_EVERY_S:
            return
        self._last_probe = now
        try:
            self.consumer.list_topics(self.topic, timeout=PROBE_TIMEOUT_S)
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


