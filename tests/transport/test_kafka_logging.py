"""librdkafka's log lines reach the ``riskstream.kafka.client`` logger without floods."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Consumer
from tansu import free_port

from riskstream.transport.kafka import RepeatFilter
from riskstream.transport.kafka.config import _logged


def _record(text: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("riskstream.kafka.client", level, "", 0, text, None, None)


def test_repeats_are_dropped_within_the_window_then_counted() -> None:
    now = [100.0]
    f = RepeatFilter(window_s=30.0, clock=lambda: now[0])
    assert f.filter(_record("connect failed"))
    now[0] += 1
    assert not f.filter(_record("connect failed"))
    assert f.filter(_record("connect failed", logging.WARNING))  # another level: its own line
    assert f.filter(_record("something else"))
    now[0] += 10
    assert not f.filter(_record("connect failed"))
    now[0] += 20  # 31 s after the first one let through
    again = _record("connect failed")
    assert f.filter(again)
    assert again.getMessage() == "connect failed (and 2 more like it in the last 31 s)"
    now[0] += 1
    assert not f.filter(_record("connect failed"))  # a new window starts


def test_a_consumer_without_a_broker_logs_a_few_lines_not_a_flood(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on the port: librdkafka retries the connection over and over (a worker
    # logged ~20 identical ERROR lines a second this way).
    consumer = Consumer(_logged({
        "bootstrap.servers": f"127.0.0.1:{free_port()}",
        "group.id": "nobody",
        "reconnect.backoff.ms": 10,
        "reconnect.backoff.max.ms": 50,
    }))
    with caplog.at_level(logging.DEBUG, logger="riskstream.kafka.client"):
        consumer.subscribe(["t"])
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            consumer.poll(0.1)
    consumer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "riskstream.kafka.client"]
    assert lines, "librdkafka said nothing about the refused connections"
    assert len(lines) == len(set(lines)), lines
    assert len(lines) < 10, lines
