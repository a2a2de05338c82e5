"""A background feed: batches of rows from an iterator, handed on at a rate.

Contract: a :class:`Feeder` thread takes batches (frames, or lists of records) from an
iterator and hands them to ``deliver`` -- an in-process queue's ``offer``, a Kafka producer's
``send_records`` -- so that about ``rate`` rows a second go out, counted from the start (no
pacing without a rate; a feed that fell behind catches up without sleeping). Pacing decides
only *when* rows are handed on: their contents, event timestamps included, are untouched.

* By default a batch goes whole, once its first row is due (an in-process queue takes frames:
  the pipeline then polls the batches the simulator made).
* ``per_row=True``: each row goes when it is due, so a batch may go in several pieces (what
  is due together goes together). A broker then receives a steady stream, not a burst per
  batch; the batches must support ``len`` and slicing (a list of records is cheapest).

``deliver`` may raise ``queue.Full`` (a bounded target without room yet): it is retried until
the feeder is stopped. :meth:`stop` returns at once (safe in a signal handler): the thread ends
after the wait or hand-off in progress, then runs ``finish`` (e.g. a producer's flush), which
:meth:`join` waits for.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

#: Sleeping for less than this is pointless (timer resolution) and costs a syscall per row.
MIN_SLEEP_S = 0.002


def sleep_until(due: float, stop: threading.Event) -> bool:
    """Wait until ``due`` (``time.monotonic`` seconds) unless ``stop`` is set first; True if
    stopped. Waits shorter than :data:`MIN_SLEEP_S` are skipped."""
    wait = due - time.monotonic()
    return wait > MIN_SLEEP_S and stop.wait(wait)


class Rows(Protocol):
    """A batch the feeder can split by rows (a list of records, a data frame)."""

    def __len__(self) -> int: ...

    def __getitem__(self, rows: slice, /) -> Any: ...


B = TypeVar("B", bound=Rows)


class Feeder(Generic[B]):
    """A daemon thread handing ``batches`` to ``deliver`` at ``rate`` rows per second (None
    or 0: as fast as ``deliver`` takes them; see module docstring). ``produced`` counts the
    rows handed on; ``stop_event`` is set by :meth:`stop` (setting it directly is the same).
    """

    def __init__(
        self,
        batches: Iterable[B],
        deliver: Callable[[B], object],
        rate: float | None = None,
        *,
        per_row: bool = False,
        finish: Callable[[], object] | None = None,
        name: str = "feeder",
    ) -> None:
        self.rate = rate
        self.per_row = per_row
        self.produced = 0
        self.stop_event = threading.Event()
        self._batches = batches
        self._deliver = deliver
        self._finish = finish
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread (once; not after :meth:`stop`)."""
        if not self._thread.is_alive() and not self.stop_event.is_set():
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop (returns at once: safe in a signal handler)."""
        self.stop_event.set()

    def join(self, timeout: float = 30.0) -> None:
        """Wait for the thread to end (``finish`` included)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._feed(time.monotonic())
        finally:
            if self._finish is not None:
                self._finish()

    def _feed(self, started: float) -> None:
        stop = self.stop_event
        for batch in self._batches:
            size = len(batch)
            lo = 0
            while lo < size:
                if self.rate and sleep_until(started + self.produced / self.rate, stop):
                    return
                hi = self._due_end(started, lo, size) if self.per_row else size
                if not self._hand(batch if lo == 0 and hi == size else batch[lo:hi]):
                    return
                self.produced += hi - lo
                lo = hi
                if stop.is_set():
                    return

    def _due_end(self, started: float, lo: int, size: int) -> int:
        """End of the rows from ``lo`` that are due now (at least one: ``lo`` is due)."""
        if not self.rate:
            return size
        # Row k of the feed is due at started + k / rate; within MIN_SLEEP_S counts as due.
        last_due = math.floor((time.monotonic() + MIN_SLEEP_S - started) * self.rate)
        return min(size, max(lo + 1, lo + last_due - self.produced + 1))

    def _hand(self, batch: B) -> bool:
        """Hand one batch on, again while the target is full; False once stopped."""
        while not self.stop_event.is_set():
            try:
                self._deliver(batch)
                return True
            except queue.Full:
                continue
        return False
