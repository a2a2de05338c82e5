"""Kafka transport (confluent-kafka): the consumer source, publishers, topic admin, per-partition
state hand-over and the input-topic feeder. Design and guarantees: docs/streaming.md.

Modules, by concern (they import each other directly, never this package):

* :mod:`~riskstream.transport.kafka.config` -- topic names, client and producer properties,
  the librdkafka log route, error codes and timings;
* :mod:`~riskstream.transport.kafka.admin` -- topic creation and topic configs;
* :mod:`~riskstream.transport.kafka.consumer` -- :class:`KafkaSource`;
* :mod:`~riskstream.transport.kafka.producer` -- the sinks and the input-topic producer;
* :mod:`~riskstream.transport.kafka.partition_state` -- per-partition state and checkpoints;
* :mod:`~riskstream.transport.kafka.produce` -- feeding the input topic.

Broker outages surface as :class:`~riskstream.errors.TransportUnavailable`, named after the
pipeline component that retries them (``source``, ``sink``, ``dead_letters``).

Importing this package needs the ``kafka`` extra (``confluent-kafka``).
"""

from riskstream.transport.kafka.admin import INPUT_TOPIC_CONFIG, ensure_topics, topic_configs
from riskstream.transport.kafka.config import (
    KafkaTopics,
    MessageMeta,
    RepeatFilter,
    client_config,
    producer_config,
)
from riskstream.transport.kafka.consumer import KafkaSource, PartitionListener
from riskstream.transport.kafka.producer import (
    DeadLetterPublisher,
    Publisher,
    ResultsPublisher,
    TransactionProducer,
    alert_message,
)

__all__ = [
    "INPUT_TOPIC_CONFIG",
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
    "topic_configs",
]
