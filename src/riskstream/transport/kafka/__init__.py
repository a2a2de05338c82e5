"""Kafka transport (confluent-kafka): the consumer source, publishers, topic admin, per-partition
state hand-over and the input-topic feeder. Design and guarantees: docs/streaming.md.

Importing this package needs the ``kafka`` extra (``confluent-kafka``).
"""

from riskstream.transport.kafka.client import (
    DeadLetterPublisher,
    KafkaSource,
    KafkaTopics,
    MessageMeta,
    PartitionListener,
    Publisher,
    RepeatFilter,
    ResultsPublisher,
    TransactionProducer,
    alert_message,
    client_config,
    ensure_topics,
    producer_config,
)

__all__ = [
    "DeadLetterPublisher",
    "KafkaSource",
    "KafkaTopics",
    "MessageMeta",
    "PartitionListener",
    "Publisher",
    "RepeatFilter",
    "ResultsPublisher",
    "TransactionProducer",
    "alert_message",
    "client_config",
    "ensure_topics",
    "producer_config",
]
