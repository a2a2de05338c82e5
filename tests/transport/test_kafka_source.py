"""KafkaSource's micro-batch wait against a real broker (Tansu): a batch cadence, not a wait
added after each batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from riskstream.transport.kafka import KafkaSource, KafkaTopics, client_config, ensure_topics


def test_poll_counts_the_time_spent_since_the_last_batch(
    kafka_settings: Callable[..., Any],
) -> None:
    """A caller that spent longer than the timeout on its batch gets what queued up meanwhile
    at once; one that comes back sooner waits only the rest of the timeout."""
    s = kafka_settings()
    config = client_config(s)
    topic = KafkaTopics.from_settings(s).transactions
    ensure_topics(config, [topic], 1, 1)
    producer = Producer(config)
    for i in range(100):
        producer.produce(topic, b'{"i": %d}' % i)
    assert producer.flush(10) == 0
    source = KafkaSource(config, topic, s.kafka_group_id, session_timeout_ms=6000)
    try:
        deadline = time.monotonic() + 30
        first = None
        while first is None and time.monotonic() < deadline:  # group join: ~3 s on Tansu
            first = source.poll(40, 0.5)
        assert first is not None and len(first) == 40  # full batch: no wait
        timeout_s = 2.0
        time.sleep(timeout_s + 0.2)  # "processing" the batch took longer than the timeout
        t0 = time.monotonic()
        second = source.poll(1000, timeout_s)
        waited = time.monotonic() - t0
        assert second is not None and len(second) >= 1
        # A wait added after the batch would have taken the whole timeout (fewer than 1,000
        # records are there); a cadence returns what is queued.
        assert waited < timeout_s / 2, waited
        got = 40 + len(second)
        while got < 100 and time.monotonic() < deadline:
            more = source.poll(1000, 0.5)
            got += 0 if more is None else len(more)
        assert got == 100
        time.sleep(0.5)
        t0 = time.monotonic()
        assert source.poll(1000, 1.5) is None  # nothing left: waits, then returns nothing
        waited = time.monotonic() - t0
        # Back after 0.5 s of a 1.5 s timeout: at most the remaining ~1 s is waited.
        assert 0.6 < waited < 1.4, waited
    finally:
        source.close()
