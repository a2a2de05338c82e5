"""The server's own retraining schedule: ``riskstream retrain`` as a child process, one at a
time, every ``retrain_every_s``; off by default."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def test_off_by_default(make_runtime: Callable[..., Any]) -> None:
    rt = make_runtime()
    assert rt.settings.retrain_every_s == 0 and not rt.maybe_retrain()


def test_one_child_at_a_time_then_the_next_when_due(
    make_runtime: Callable[..., Any], caplog: Any
) -> None:
    rt = make_runtime(retrain_every_s=0.2)
    assert not rt.maybe_retrain()  # the first one is due one interval after start
    time.sleep(0.25)
    assert rt.maybe_retrain()
    child = rt._retrain
    assert child is not None and not rt.maybe_retrain()  # still running: not a second one
    # An empty results store: the command refuses (nothing to train on) and exits non-zero.
    assert child.wait(120) != 0
    time.sleep(0.25)
    with caplog.at_level("ERROR", logger="riskstream"):
        assert rt.maybe_retrain()  # the exit is logged, and the next run starts
    assert "scheduled retrain exited with 2" in caplog.text
    rt.close()  # terminates the running child
    assert rt._retrain is not None and rt._retrain.wait(30) is not None
