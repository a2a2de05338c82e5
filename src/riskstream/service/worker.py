"""``riskstream worker``: one scorer in a Kafka consumer group (design: docs/streaming.md).

A worker is the embedded pipeline on another transport: :class:`KafkaSource` micro-batches
-> decode, validate, score -> results store (durable, idempotent) -> ``transactions.scored``
and ``alerts`` (acknowledged) -> state saved -> offsets committed. Dead letters go to the
results store and to ``transactions.dlq``. It serves the API, ``/health`` and ``/metrics``
on its port, like ``run``.

State: with ``RISKSTREAM_STATE_URL=redis://...`` the store is shared by all workers; offsets
are committed after every batch. With ``memory://`` each worker keeps the users of the
partitions it owns, checkpointed per partition (:mod:`.partition_state`).

Outcome labels arrive on the ``labels`` topic too (:mod:`.label_topic`), read between batches.

Stopping (SIGTERM/SIGINT): the batch in hand is finished, offsets committed, partition state
checkpointed, the group left -- nothing is replayed by the next owner. A store or broker
outage pauses consumption: the pipeline retries the same batch with backoff, commits nothing,
reports it on ``/health`` (503) and resumes without loss.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from riskstream.features.state import StateStore
from riskstream.models.bundle import ModelBundle
from riskstream.pipeline import ErrorPolicy, Pipeline, settle_gc
from riskstream.service.label_topic import LabelTopic
from riskstream.service.runtime import Runtime, open_state
from riskstream.service.server import AppFactory, serving, stop_on_signals
from riskstream.settings import Settings
from riskstream.transport.kafka import (
    DeadLetterPublisher,
    KafkaSource,
    KafkaTopics,
    Publisher,
    ResultsPublisher,
    client_config,
    ensure_topics,
    topic_configs,
)
from riskstream.transport.kafka.partition_state import (
    PartitionCheckpoints,
    PartitionedMemoryState,
    snapshot_dir,
)

log = logging.getLogger("riskstream.worker")

#: Room for a dead letter's headers on top of its (capped) payload, in bytes.
_HEADER_ROOM = 64 * 1024
#: A status line is logged this often (seconds).
_STATUS_EVERY_S = 10.0


class KafkaWorker:
    """Builds and runs one worker. ``run()`` blocks until :meth:`stop`, then drains."""

    def __init__(
        self,
        settings: Settings,
        *,
        bundle: ModelBundle | None = None,
        policy: ErrorPolicy | None = None,
    ) -> None:
        self.settings = s = settings
        self.topics = KafkaTopics.from_settings(s)
        self.config = client_config(s)
        if s.kafka_create_topics:
            ensure_topics(
                self.config,
                self.topics.all(),
                s.kafka_partitions,
                s.kafka_replication,
                topic_configs(s),
            )
        self.shared_state = not s.state_url.startswith("memory://")
        state: StateStore = open_state(s) if self.shared_state else PartitionedMemoryState()
        self.runtime = rt = Runtime.build(s, bundle=bundle, state=state)
        self.checkpoints: PartitionCheckpoints | None = None
        if isinstance(state, PartitionedMemoryState):
            self.checkpoints = PartitionCheckpoints(
                state,
                snapshot_dir(s.home, s.kafka_group_id, self.topics.transactions),
                s.kafka_checkpoint_every_s,
                lock=rt.lock,
            )
        self.source = KafkaSource(
            self.config,
            self.topics.transactions,
            s.kafka_group_id,
            commit_each_batch=self.shared_state,
            listener=self.checkpoints,
            metrics=rt.metrics,
            session_timeout_ms=s.kafka_session_timeout_ms,
            max_poll_interval_ms=s.kafka_max_poll_interval_ms,
        )
        self.publisher = Publisher(
            self.config,
            delivery_timeout_ms=s.kafka_delivery_timeout_ms,
            max_message_bytes=max(
                s.kafka_max_message_bytes, s.kafka_dlq_max_payload_bytes + _HEADER_ROOM
            ),
        )
        self.pipeline = Pipeline(
            rt.core,
            self.source,
            rt.results,
            rt.metrics,
            policy=policy,
            lock=rt.lock,
            results_sink=ResultsPublisher(self.publisher, self.topics,
                                          features=s.kafka_scored_features),
            dead_letter_sink=DeadLetterPublisher(
                self.publisher, self.topics.dlq, s.kafka_dlq_max_payload_bytes
            ),
            max_message_bytes=s.kafka_max_message_bytes,
            # Effective with shared (Redis) state only: per-partition memory state is
            # checkpointed between batches and is not thread-safe.
            write_behind=True,
        )
        # A revocation first lets the batches in flight finish: a clean hand-over.
        self.source.before_revoke = self.pipeline.drain
        # One health map: the source reports the broker in it, the pipeline its stores.
        self.pipeline.health.update(self.source.health)
        self.source.health = self.pipeline.health
        rt.pipeline = self.pipeline
        if self.checkpoints is not None:
            self.checkpoints.source = self.source
            self.pipeline.between_batches.append(self.checkpoints.maybe_checkpoint)
        rt.refresh_models(force=True)  # follow the model registry, like `run`
        self.pipeline.between_batches.append(rt.refresh_models)
        rt.sweep_labels(force=True)  # labels imported while the worker was down
        self.pipeline.between_batches.append(rt.sweep_labels)
        self.pipeline.between_batches.append(self.pipeline.apply_waiting_labels)
        self.label_topic: LabelTopic | None = None
        if self.topics.labels:
            self.label_source = KafkaSource(
                self.config,
                self.topics.labels,
                f"{s.kafka_group_id}.labels",
                metrics=rt.metrics,
                session_timeout_ms=s.kafka_session_timeout_ms,
                max_poll_interval_ms=s.kafka_max_poll_interval_ms,
            )
            self.label_topic = LabelTopic(rt, self.label_source)
            self.pipeline.between_batches.append(self.label_topic.tick)
        self.pipeline.between_batches.append(rt.maybe_retrain)
        self.pipeline.between_batches.append(rt.refresh_quality)
        self._status_at = time.monotonic()
        self.pipeline.between_batches.append(self._status)
        self._closed = False
        log.info(
            "worker in group %s on %s (state %s, model %s)",
            s.kafka_group_id,
            self.topics.transactions,
            "shared" if self.shared_state else "per-partition in memory",
            rt.core.bundle.version,
        )

    def run(self) -> None:
        """Consume until :meth:`stop`, then drain (:meth:`close`)."""
        s = self.settings
        settle_gc()
        try:
            self.pipeline.run(s.kafka_batch_size, s.kafka_batch_timeout_ms / 1000.0)
        finally:
            self.close()

    def stop(self) -> None:
        """Ask the loop to stop after the batch in hand (safe from a signal handler)."""
        self.pipeline.stop()

    def close(self) -> None:
        """Checkpoint, commit, leave the group, release stores. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.checkpoints is not None:
            try:
                self.checkpoints.checkpoint(wait=True)
            except Exception as exc:
                log.error("final checkpoint failed (%s): the next owner replays more", exc)
        try:
            if self.label_topic is not None:
                self.label_source.close()
            self.source.close()  # commits; revocation callbacks snapshot the partitions
        finally:
            if self.checkpoints is not None:
                self.checkpoints.close()
            self.publisher.close()
            self.runtime.close()
        log.info("worker stopped cleanly")

    def _status(self) -> None:
        now = time.monotonic()
        if now - self._status_at < _STATUS_EVERY_S:
            return
        self._status_at = now
        m = self.runtime.metrics
        problems = {k: v for k, v in self.pipeline.health.items() if v != "ok"}
        log.info(
            "processed %d | partitions %s | users %d | %s",
            int(m.value("transactions_processed_total")),
            sorted(self.source.processed_offsets()),
            self.runtime.core.state.count("user"),
            f"DEGRADED {problems}" if problems else "ok",
        )


def serve(
    settings: Settings,
    *,
    app_factory: AppFactory | None = None,
    bundle: ModelBundle | None = None,
    background: list[Any] | None = None,
) -> None:
    """Run a worker in this process until SIGINT/SIGTERM, serving ``app_factory``'s app (the
    API, ``/health``, ``/metrics``) on its port unless it is None.

    ``background``: objects with ``start()``, ``stop()`` (non-blocking) and ``join()`` run
    alongside (e.g. the simulated feed of ``run --kafka``); they are stopped first.
    """
    worker = KafkaWorker(settings, bundle=bundle)
    extras = background or []

    def on_signal(name: str) -> None:
        log.info("%s: finishing the batch in hand, then stopping", name)
        for extra in extras:
            extra.stop()
        worker.stop()

    with stop_on_signals(on_signal), \
            serving(worker.runtime, app_factory, settings.host, settings.port) as server:
        if server is not None:
            log.info("API and metrics on http://%s:%d", settings.host, settings.port)
        for extra in extras:
            extra.start()
        try:
            worker.run()
        finally:
            for extra in extras:
                extra.stop()
            for extra in extras:
                extra.join()
