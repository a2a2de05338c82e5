"""In-process transport for the embedded run: a bounded queue of column frames.

The simulator thread puts whole frames (no per-event objects); ``poll`` concatenates queued
frames up to ``max_records``. Positions are sequence numbers; ``committed`` is the last one
acknowledged. The queue is bounded, so a slow pipeline back-pressures the producer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd

from riskstream.transport.base import Batch, Sink, Source


class InProcessQueue(Source):
    def __init__(self, maxsize: int = 64) -> None:
        self._q: queue.Queue[pd.DataFrame] = queue.Queue(maxsize=maxsize)
        self._carry: pd.DataFrame | None = None
        self._seq = 0
        self.committed = 0

    def put(self, frame: pd.DataFrame, timeout: float | None = None) -> None:
        self._q.put(frame, timeout=timeout)

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


class SimulatorFeeder(threading.Thread):
    """Background thread: simulator micro-batches -> an :class:`InProcessQueue`."""

    def __init__(
        self, batches: Iterator[pd.DataFrame], target: InProcessQueue, rate: float | None = None
    ) -> None:
        super().__init__(name="simulator", daemon=True)
        self._batches = batches
        self._target = target
        self._rate = rate
        self.stop_event = threading.Event()
        self.produced = 0

    def run(self) -> None:
        started = time.monotonic()
        for frame in self._batches:
            if self._rate:
                # Pace emission only; event timestamps keep their simulated spacing so the
                # features (velocity, time since last) mean what they mean in training.
                ahead = started + self.produced / self._rate - time.monotonic()
                if ahead > 0 and self.stop_event.wait(ahead):
                    return
            while not self.stop_event.is_set():
                try:
                    self._target.put(frame, timeout=0.2)
                    self.produced += len(frame)
                    break
                except queue.Full:
                    continue
            if self.stop_event.is_set():
                return
