"""The feeder thread: pacing (whole batches or row by row), prompt stop, the final call."""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd

from riskstream.transport import Feeder, InProcessQueue


def _frames(n: int, size: int) -> list[pd.DataFrame]:
    return [pd.DataFrame({"i": range(k * size, (k + 1) * size)}) for k in range(n)]


class _Clocked:
    """Records when each batch arrived and how many rows it had."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.got: list[tuple[float, int]] = []

    def __call__(self, batch: Any) -> None:
        self.got.append((time.monotonic() - self.t0, len(batch)))


def test_whole_batches_go_when_their_first_row_is_due() -> None:
    out = _Clocked()
    feeder = Feeder(_frames(3, 10), out, rate=50.0)  # a batch of 10 every 0.2 s
    feeder.start()
    feeder.join(5)
    assert [n for _, n in out.got] == [10, 10, 10] and feeder.produced == 30
    times = [t for t, _ in out.got]
    assert times[0] < 0.1 and 0.18 < times[1] < 0.35 and 0.38 < times[2] < 0.55, times


def test_row_by_row_spreads_a_batch_over_its_rows_due_times() -> None:
    out = _Clocked()
    records = [[{"i": i} for i in range(k * 10, k * 10 + 10)] for k in range(2)]
    feeder = Feeder(records, out, rate=50.0, per_row=True)  # a row every 20 ms
    feeder.start()
    feeder.join(5)
    assert sum(n for _, n in out.got) == 20 and feeder.produced == 20
    assert len(out.got) >= 15  # not two bursts of 10: rows go (nearly) one at a time
    assert 0.33 < out.got[-1][0] < 0.5, out.got[-1]  # row 19 is due at 0.38 s


def test_row_by_row_sends_what_is_due_together_when_behind() -> None:
    out = _Clocked()
    records = [[{"i": i} for i in range(100)]]
    feeder = Feeder(records, out, rate=1e6, per_row=True)  # all 100 due within 0.1 ms
    feeder.start()
    feeder.join(5)
    assert sum(n for _, n in out.got) == 100 and len(out.got) <= 3


def test_stop_is_prompt_even_with_the_queue_full_and_finish_runs() -> None:
    q = InProcessQueue(maxsize=1)
    finished = threading.Event()
    feeder = Feeder(iter(_frames(1000, 5)), q.offer, finish=finished.set)
    feeder.start()
    deadline = time.monotonic() + 5
    while q.backlog() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    feeder.stop()  # returns at once
    assert time.monotonic() - t0 < 0.05
    feeder.join(5)
    assert not feeder.is_alive() and time.monotonic() - t0 < 1.0
    assert finished.is_set() and feeder.produced == 5


def test_stop_interrupts_a_pacing_wait() -> None:
    feeder = Feeder(_frames(10, 10), lambda _: None, rate=1.0)  # next batch in 10 s
    feeder.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    feeder.stop_event.set()  # as the embedded run stops it
    feeder.join(5)
    assert not feeder.is_alive() and time.monotonic() - t0 < 0.5 and feeder.produced == 10
