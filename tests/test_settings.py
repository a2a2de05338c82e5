"""Settings read from the environment (the parts not covered by the CLI and runtime tests)."""

from __future__ import annotations

import pytest

from riskstream.settings import Settings


def test_kafka_config_accepts_json_numbers_and_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RISKSTREAM_KAFKA_CONFIG",
        '{"fetch.wait.max.ms": 100, "enable.ssl.certificate.verification": false,'
        ' "sasl.password": "s3cret", "socket.timeout.ms": 6e4}',
    )
    conf = Settings().kafka_config
    assert {k: v.get_secret_value() for k, v in conf.items()} == {
        "fetch.wait.max.ms": "100",
        "enable.ssl.certificate.verification": "false",
        "sasl.password": "s3cret",
        "socket.timeout.ms": "60000",
    }
    assert "s3cret" not in repr(Settings())


def test_kafka_config_refuses_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKSTREAM_KAFKA_CONFIG", '{"linger.ms": [5]}')
    with pytest.raises(ValueError, match=r"linger\.ms"):
        Settings()
