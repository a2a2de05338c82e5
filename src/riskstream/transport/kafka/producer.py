"""Producing to Kafka: the pipeline's sinks and the input-topic writer.

Contract (the design and its guarantees are in ``docs/streaming.md``):

* :class:`Publisher` wraps one durable producer (``acks=all``, idempotent): ``send`` returns
  only once every message is acknowledged, and raises
  :class:`~riskstream.errors.TransportUnavailable` otherwise (a message timed out, a delivery
  failed, the client refused to queue). Those are outages: the pipeline retries the batch and
  commits nothing meanwhile, and a producer left unusable is replaced by the next ``send``.
* :class:`ResultsPublisher` (``transactions.scored`` + ``alerts``) and
  :class:`DeadLetterPublisher` (``transactions.dlq``) are sinks on a shared publisher. Their
  outages name the component the pipeline retries them under: ``sink`` for results and
  alerts, ``dead_letters`` for dead letters.
* :class:`TransactionProducer` writes transactions to the input topic keyed by ``user_id``
  (murmur2 partitioner, as Java clients), counting records the client refuses (too large).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, ClassVar

import orjson
import pandas as pd
from confluent_kafka import KafkaError, KafkaException, Producer

from riskstream.errors import TransportUnavailable
from riskstream.schema import CANONICAL_COLUMNS
from riskstream.storage.batch import ResultBatch
from riskstream.transport.base import Sink
from riskstream.transport.kafka.config import (
    FLUSH_MARGIN_S,
    PRODUCER_IDENTITY_ERRORS,
    KafkaTopics,
    MessageMeta,
    log,
    producer_config,
)

#: Columns that exist only in labelled (simulated or evaluation) data, never sent as input.
LABEL_COLUMNS: tuple[str, ...] = ("label", "scenario")

#: ``(topic, key, value, headers)``: one message for :meth:`Publisher.send`.
Outgoing = tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]


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
        self.flush_timeout_s = delivery_timeout_ms / 1000.0 + FLUSH_MARGIN_S

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._failures.append(err)
            if err.fatal() or err.code() in PRODUCER_IDENTITY_ERRORS:
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

    def send(self, messages: Iterable[Outgoing]) -> int:
        """Produce ``(topic, key, value, headers)`` messages and wait for all acks; raise
        :class:`~riskstream.errors.TransportUnavailable` if any was not acknowledged."""
        self._renew_if_fatal()
        self._failures.clear()
        produce, poll = self.producer.produce, self.producer.poll
        n = 0
        try:
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
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.fatal():
                # Refused before any callback could say so: the retry needs a new producer.
                self._fatal = err
            raise TransportUnavailable(reason=f"message {n + 1} not queued: {exc}") from exc
        remaining = self.producer.flush(self.flush_timeout_s)
        if remaining:
            # Drop what is still queued so a retry does not pile up copies behind it.
            self.producer.purge(in_queue=True, in_flight=False)
            self.producer.poll(0)
            raise TransportUnavailable(
                reason=f"{remaining} of {n} messages not acknowledged in time"
            )
        if self._failures:
            first = self._failures[0]
            count = len(self._failures)
            self._failures.clear()
            raise TransportUnavailable(
                reason=f"{count} of {n} messages failed, the first with {first.name()}"
            ) from KafkaException(first)
        return n

    def close(self) -> None:
        self.producer.flush(self.flush_timeout_s)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def frame_records(
    frame: pd.DataFrame, drop: Sequence[str] = LABEL_COLUMNS
) -> list[dict[str, Any]]:
    """The rows of a transaction frame, minus the ``drop`` columns, as records."""
    return frame[[c for c in frame.columns if c not in drop]].to_dict("records")


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


class _PublisherSink(Sink):
    """A sink whose records go out through a :class:`Publisher` (shared by several sinks),
    so its outages are raised under this sink's own :attr:`component`."""

    #: The pipeline's health and metric name for this sink (what it retries it under).
    component: ClassVar[str]

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def _send(self, messages: list[Outgoing]) -> None:
        try:
            self.publisher.send(messages)
        except TransportUnavailable as exc:
            if exc.component == self.component:
                raise
            raise TransportUnavailable(self.component, exc.reason) from exc
        except KafkaException as exc:  # a publisher that lets the client's error through
            raise TransportUnavailable(self.component, f"KafkaException: {exc}") from exc


class ResultsPublisher(_PublisherSink):
    """Every scored row to ``transactions.scored`` and every review/block to ``alerts``, keyed
    by ``user_id`` (one flush per batch for both topics). ``features=False`` leaves the
    ``features`` object out of the scored records (alerts never carry it)."""

    component = "sink"

    def __init__(self, publisher: Publisher, topics: KafkaTopics, *, features: bool = True) -> None:
        super().__init__(publisher)
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
        messages: list[Outgoing] = []
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
            self._send(messages)


class DeadLetterPublisher(_PublisherSink):
    """Dead letters to ``transactions.dlq``: the value is the original message bytes (cut at
    ``max_payload_bytes``), the key the original key, and headers say why and where from:

    ``error.field``, ``error.reason``, ``transaction_id`` (if known), ``source.topic``,
    ``source.partition``, ``source.offset``, ``source.timestamp_ms``, ``payload.size``,
    ``payload.truncated`` (``true``/``false``).
    """

    component = "dead_letters"

    def __init__(self, publisher: Publisher, topic: str, max_payload_bytes: int = 900_000) -> None:
        super().__init__(publisher)
        self.topic = topic
        self.max_payload_bytes = max_payload_bytes

    def publish(self, records: list[dict[str, Any]]) -> None:
        self._send([self._message(r) for r in records])

    def _message(self, letter: Mapping[str, Any]) -> Outgoing:
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
        self._timeout_s = delivery_timeout_ms / 1000.0 + FLUSH_MARGIN_S

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

    def send_frame(self, frame: pd.DataFrame, drop: Sequence[str] = LABEL_COLUMNS) -> int:
        """Queue the rows of a transaction frame (minus ``drop`` columns) as JSON records."""
        return self.send_records(frame_records(frame, drop))

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait for acknowledgements; return how many messages are still unacknowledged."""
        return int(self.producer.flush(self._timeout_s if timeout_s is None else timeout_s))

    def pending(self) -> int:
        return len(self.producer)
