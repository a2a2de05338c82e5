"""The ``labels`` Kafka topic: outcome labels in the streaming deployment.

Chargeback feeds and case-management systems publish labels to ``RISKSTREAM_KAFKA_TOPIC_LABELS``
(default ``labels``): each message one label object as ``POST /labels`` takes it
(``{"transaction_id": "t-1", "label": 1, "reported_at": "2024-01-08T09:30:00Z"}``), a JSON
array of them, or ``{"labels": [...]}``. Every worker reads the topic in the consumer group
``<kafka_group_id>.labels``, so each message is read by one worker, between the scoring
batches (never during one). The labels are stored (idempotently, keyed by transaction id)
and only then are the offsets committed; a results-store outage keeps the messages in hand
and retries them, so none is lost or skipped. Refused items (and messages that are not JSON)
become dead letters in the results store, naming the field, and are counted in
``labels_total{outcome="rejected"}``; the rest goes in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from riskstream.errors import Unavailable
from riskstream.service.runtime import Runtime
from riskstream.transport.base import Batch, Source

log = logging.getLogger("riskstream.labels")

#: Messages read per tick: a burst of chargebacks is taken in a few ticks, and a tick stays a
#: few milliseconds next to the scoring batches.
MAX_MESSAGES = 2_000


def label_items(message: bytes) -> list[Any] | str:
    """The label items of one message, or why it has none.

    >>> label_items(b'{"transaction_id": "t", "label": 1}')
    [{'transaction_id': 't', 'label': 1}]
    >>> label_items(b'{"labels": [{"transaction_id": "t", "label": 0}]}')
    [{'transaction_id': 't', 'label': 0}]
    >>> label_items(b"not json")
    'invalid JSON'
    """
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return "invalid JSON"
    if isinstance(value, dict) and isinstance(value.get("labels"), list):
        return list(value["labels"])
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    return "must be a label object, a JSON array of them, or {\"labels\": [...]}"


class LabelTopic:
    """Reads the labels topic between batches (:meth:`tick`); see the module docstring."""

    def __init__(self, runtime: Runtime, source: Source) -> None:
        self.runtime = runtime
        self.source = source
        self._held: Batch | None = None  # read, not stored yet (an outage): retried first

    def tick(self) -> int:
        """Read and store what arrived; returns the labels accepted."""
        batch = self._held or self.source.poll(MAX_MESSAGES, 0.0)
        if batch is None or not len(batch):
            return 0
        try:
            accepted = self._store(batch)
        except Unavailable as exc:
            self._held = batch
            log.warning("labels not stored (%s); retrying them before reading more", exc)
            return 0
        self._held = None
        self.source.commit(batch)
        return accepted

    def _store(self, batch: Batch) -> int:
        items: list[Any] = []
        origin: list[int] = []  # message index of each item
        letters: list[dict[str, Any]] = []
        for k, message in enumerate(batch.messages):
            got = label_items(message)
            if isinstance(got, str):
                letters.append(self._letter(batch, k, "body", got))
                continue
            items += got
            origin += [k] * len(got)
        done = self.runtime.ingest_labels(items, "kafka") if items else {"errors": [],
                                                                        "accepted": 0}
        for e in done["errors"]:
            item = items[e["index"]]
            tx = item.get("transaction_id") if isinstance(item, dict) else None
            letters.append(self._letter(batch, origin[e["index"]], e["field"], e["reason"],
                                        None if tx is None else str(tx)[:128]))
        if letters:
            if len(letters) > len(done["errors"]):  # not-JSON messages: not counted yet
                self.runtime.metrics.labels.labels("kafka", "rejected").inc(
                    len(letters) - len(done["errors"]))
            self.runtime.results.write_dead_letters(letters)
        return int(done["accepted"])

    @staticmethod
    def _letter(batch: Batch, k: int, field: str, reason: str,
                transaction_id: str | None = None) -> dict[str, Any]:
        meta = batch.meta[k] if k < len(batch.meta) else None
        where = "" if meta is None else f"@{meta.partition}:{meta.offset}"
        return {
            "received_at": time.time(),
            "source": f"{batch.source}{where}",
            "field": field,
            "reason": reason,  # already names the field
            "transaction_id": transaction_id,
            "payload": batch.messages[k].decode("utf-8", "replace"),
        }
