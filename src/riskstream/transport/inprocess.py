"""In-process transport for the embedded run: a bounded queue of column frames.

The simulator's :class:`~riskstream.transport.feeder.Feeder` offers whole frames (no per-event
objects); ``poll`` concatenates queued frames up to ``max_records``. Positions are sequence
numbers; ``committed`` is the last one acknowledged. The queue is bounded, so a slow pipeline
back-pressures the producer.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pandas as pd

from riskstream.transport.base import Batch, Sink, Source

#: Longest :meth:`InProcessQueue.offer` waits for room in the queue (seconds).
OFFER_WAIT_S = 0.2


class InProcessQueue(Source):
    def __init__(self, maxsize: int = 64) -> None:
        self._q: queue.Queue[pd.DataFrame] = queue.Queue(maxsize=maxsize)
        self._carry: pd.DataFrame | None = None
        self._seq = 0
        self.committed = 0

    def put(self, frame: pd.DataFrame, timeout: float | None = None) -> None:
        self._q.put(frame, timeout=timeout)

    def offer(self, frame: pd.DataFrame) -> None:
        """Put, waiting at most :data:`OFFER_WAIT_S` for room (then ``queue.Full``): a feeder
        whose pipeline has stopped draining still gets to notice it is asked to stop."""
        self._q.put(frame, timeout=OFFER_WAIT_S)

    def poll(self, max_records: int, timeout_s: float) -> Batch | None:
        parts: list[pd.DataFrame] = []
        n = 0
        if self._carry is not None:
            parts.append(self._carry)
            n = len(self._carry)
            self._carry = None
        deadline = time.monotonic() + timeout_s
        while n < max_records:
            remaining = deadline - time.monotonic()
            try:
                frame = (
                    self._q.get(timeout=max(remaining, 0.0))
                    if remaining > 0
                    else self._q.get_nowait()
                )
            except queue.Empty:
                break
            parts.append(frame)
            n += len(frame)
        if not parts:
            return None
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if len(frame) > max_records:
            self._carry = frame.iloc[max_records:].reset_index(drop=True)
            frame = frame.iloc[:max_records]
        self._seq += 1
        return Batch(frame=frame, position=self._seq, source="inprocess", received_at=time.time())

    def commit(self, batch: Batch) -> None:
        self.committed = int(batch.position)

    def backlog(self) -> int:
        return self._q.qsize()


class ListSink(Sink):
    """Keeps the last ``keep`` published records in memory (embedded alerts feed, tests)."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self.records: list[dict[str, Any]] = []
        self.published = 0
        self._lock = threading.Lock()

    def publish(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self.records.extend(records)
            self.published += len(records)
            del self.records[: max(0, len(self.records) - self.keep)]
