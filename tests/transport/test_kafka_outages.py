"""Broker outages leave the Kafka source and sinks as ``TransportUnavailable``, named after the
component the pipeline retries them under; configuration errors stay what they are."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from tansu import free_port

from riskstream.errors import ConfigurationError, TransportUnavailable, is_outage
from riskstream.transport.base import Sink
from riskstream.transport.kafka.config import KafkaTopics, client_config
from riskstream.transport.kafka.consumer import KafkaSource
from riskstream.transport.kafka.producer import DeadLetterPublisher, Publisher, ResultsPublisher

ROW = {
    "transaction_id": "t1", "user_id": "u1", "timestamp": 1.0, "score": 0.9,
    "decision": "block", "reasons": ["amount"], "model_version": "m1", "scored_at": 2.0,
}


def _nowhere() -> dict[str, Any]:
    """A cluster nobody listens on."""
    return {"bootstrap.servers": f"127.0.0.1:{free_port()}"}


class _Failing:
    """A stand-in publisher whose sends fail with ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def send(self, messages: Any) -> int:
        raise self.exc


def test_unacknowledged_messages_are_a_transport_outage() -> None:
    publisher = Publisher(_nowhere(), delivery_timeout_ms=500)
    with pytest.raises(TransportUnavailable) as caught:
        publisher.send([("tx", b"k", b"v", None), ("tx", None, b"w", [("h", b"1")])])
    assert caught.value.component == "transport" and is_outage(caught.value)
    assert isinstance(caught.value.__cause__, KafkaException)
    assert "2 of 2 messages failed" in str(caught.value)


@pytest.mark.parametrize(
    ("make", "component"),
    [
        (lambda p: ResultsPublisher(p, KafkaTopics("tx", "scored", "alerts", "dlq")), "sink"),
        (lambda p: DeadLetterPublisher(p, "dlq"), "dead_letters"),
    ],
)
@pytest.mark.parametrize(
    "failure",
    [TransportUnavailable(reason="3 of 3 messages failed"), KafkaException("unreachable")],
)
def test_sinks_name_their_component_in_outages(
    make: Any, component: str, failure: Exception
) -> None:
    sink = make(_Failing(failure))
    with pytest.raises(TransportUnavailable) as caught:
        sink.publish([{**ROW, "raw": b"{}", "field": "amount", "reason": "bad"}])
    assert caught.value.component == component
    assert caught.value.__cause__ is failure


def test_a_bug_in_a_publisher_is_not_an_outage() -> None:
    sink = DeadLetterPublisher(_Failing(TypeError("bug")), "dlq")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sink.publish([{"raw": b"{}"}])


def test_results_publisher_renders_columns_itself() -> None:
    assert ResultsPublisher.publish_results is not Sink.publish_results


class _Consumer:
    """Stands in for the consumer under a KafkaSource: its commits fail with ``error``."""

    def __init__(self, error: KafkaError | None, per_partition: bool = False) -> None:
        self.error, self.per_partition = error, per_partition

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        if self.per_partition:
            return [SimpleNamespace(error=self.error)]
        raise KafkaException(self.error)


@pytest.fixture
def source() -> Any:
    src = KafkaSource(_nowhere(), "tx", "group")
    real = src.consumer
    src._assigned, src._processed = {0}, {0: 10}
    yield src
    src.consumer = real
    real.close()


@pytest.mark.parametrize("per_partition", [False, True])
def test_a_commit_the_broker_did_not_take_is_a_source_outage(
    source: Any, per_partition: bool
) -> None:
    source.consumer = _Consumer(KafkaError(KafkaError._TRANSPORT), per_partition)
    with pytest.raises(TransportUnavailable) as caught:
        source.commit_offsets()
    assert caught.value.component == "source"
    assert isinstance(caught.value.__cause__, KafkaException)
    source.commit_each_batch = True
    source._poller = threading.get_ident()  # committed right away, as by the polling thread
    with pytest.raises(TransportUnavailable):
        source.commit(SimpleNamespace(position={0: 11}, meta=[]))
    assert source.processed_offsets() == {0: 11}  # kept: a retried commit covers them


def test_commits_refused_by_a_moving_group_or_with_nothing_to_commit_are_no_outage(
    source: Any,
) -> None:
    source.consumer = _Consumer(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
    assert source.commit_offsets() is False
    source.consumer = _Consumer(KafkaError(KafkaError._NO_OFFSET))
    assert source.commit_offsets() is True


def test_a_missing_bootstrap_is_a_configuration_error() -> None:
    settings = SimpleNamespace(kafka_bootstrap="", kafka_config={})
    with pytest.raises(ConfigurationError):
        client_config(settings)
    with pytest.raises(ValueError):  # as before: it is a ValueError too
        client_config(settings)
