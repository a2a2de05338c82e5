"""Topic administration: which topics riskstream needs, with which configs, created if missing.

Contract: :func:`ensure_topics` creates the topics that do not exist (several workers may race
to do it: an existing topic is success) and returns only once the cluster metadata shows all
of them with partitions, so a consumer that subscribes next gets an assignment. It raises
``KafkaException`` when a creation is refused and ``TimeoutError`` when the topics do not
appear in time. :func:`topic_configs` gives the per-topic configs to create them with.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from riskstream.transport.kafka.config import _logged, log

if TYPE_CHECKING:
    from riskstream.settings import Settings

#: Config of a created input topic: records are stamped with the broker's append time, so
#: ``end_to_end_latency_seconds`` starts at arrival on the broker (brokers that ignore the
#: setting keep the producer's create time, a few ms earlier).
INPUT_TOPIC_CONFIG: dict[str, str] = {"message.timestamp.type": "LogAppendTime"}


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-topic configs for created topics (only the input topic has one)."""
    return {settings.kafka_topic_transactions: dict(INPUT_TOPIC_CONFIG)}


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
