"""The live feed: one shared poller over the results store, fanned out to SSE clients.

Contract
--------
* :class:`FeedHub` polls :meth:`ResultsStore.latest_transactions` (newest by event time, an
  indexed query on SQLite and PostgreSQL alike) at most every ``poll_s`` seconds, however many
  browsers are connected, and appends the rows it has not seen before to a bounded ring
  buffer, each with a sequence number. Polling is lazy: with no client connected, nothing
  queries the store. It works the same whether the pipeline runs in this process (embedded)
  or in separate workers writing to a shared database.
* A row scored at wall time *t* is in the ring by *t + poll_s* (plus the query time); rows
  whose event time is older than the newest ``poll_limit`` rows when they are written (very
  late events) are not shown in the feed — they are still stored, alerted and charted.
* :func:`sse_events` turns the ring into a Server-Sent Events stream for one client, with its
  own filters (decision, user, minimum score), ``Last-Event-ID`` resume, keepalive comments,
  and a clean end when ``stop`` is set (the runtime is closing) — a streaming response never
  holds the server's shutdown.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from riskstream.storage.base import ResultsStore

#: Poll period: rows reach the browser within about this plus one query (< 1 s end to end).
POLL_S = 0.5
#: Rows fetched per poll. At 200 tx/s a poll sees ~100 new rows; 1,000 leaves 10x headroom
#: before the feed starts to skip rows (it then shows the newest ones; a feed is for eyes).
POLL_LIMIT = 1000
#: Rows kept in memory for clients that (re)connect: a few seconds at full speed.
RING_SIZE = 2000
#: Transaction ids remembered as already published (FIFO). Far more than one poll can return,
#: so a row can never be published twice.
SEEN_SIZE = 20_000
#: Rows a new client gets straight away (the browser keeps a window of 200).
BACKLOG = 100
#: SSE comment sent when nothing else was sent for this long, so proxies keep the connection.
KEEPALIVE_S = 15.0
#: Browser reconnect delay after a dropped stream (SSE ``retry:`` field, milliseconds).
RETRY_MS = 2000

#: Columns a feed row carries to the browser (no features: the drawer fetches those).
FEED_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "user_id",
    "amount",
    "currency",
    "merchant_category",
    "city",
    "country",
    "channel",
    "score",
    "decision",
    "reasons",
    "scored_at",
)


def feed_row(row: dict[str, Any]) -> dict[str, Any]:
    """The browser's view of one scored row: display columns, ISO time, reason codes only."""
    out = {k: row.get(k) for k in FEED_COLUMNS}
    out["reasons"] = [r.get("code") for r in (row.get("reasons") or [])]
    ts = row.get("timestamp")
    out["time"] = (
        datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
        if isinstance(ts, float)
        else None
    )
    return out


@dataclass(frozen=True)
class FeedFilter:
    """One client's filters; ``None`` means "any"."""

    decision: str | None = None
    user_id: str | None = None
    min_score: float | None = None

    def __call__(self, row: dict[str, Any]) -> bool:
        if self.decision is not None and row["decision"] != self.decision:
            return False
        if self.user_id is not None and row["user_id"] != self.user_id:
            return False
        return self.min_score is None or row["score"] >= self.min_score


class FeedHub:
    """Shared, lazily polled ring buffer of newly scored rows (see module docstring)."""

    def __init__(
        self,
        store: ResultsStore,
        *,
        poll_s: float = POLL_S,
        poll_limit: int = POLL_LIMIT,
        ring_size: int = RING_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.poll_s = poll_s
        self.poll_limit = poll_limit
        self.clock = clock
        self.ring: deque[tuple[int, dict[str, Any]]] = deque(maxlen=ring_size)
        self.seq = 0  # sequence number of the last row appended
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._last_poll = -float("inf")
        self._primed = False

    def poll(self) -> int:
        """Fetch new rows if the last poll is older than ``poll_s``; return the newest seq.

        Thread-safe; concurrent callers share one query. The first poll only primes: its rows
        become the backlog, in event-time order.
        """
        with self._lock:
            now = self.clock()
            if now - self._last_poll < self.poll_s:
                return self.seq
            self._last_poll = now
            rows = self.store.latest_transactions(self.poll_limit)
            fresh = [r for r in reversed(rows) if r["transaction_id"] not in self._seen]
            if not self._primed:
                fresh = fresh[-BACKLOG:]
                self._primed = True
            for row in rows:
                self._seen[row["transaction_id"]] = None
            while len(self._seen) > SEEN_SIZE:
                self._seen.popitem(last=False)
            for row in fresh:
                self.seq += 1
                self.ring.append((self.seq, feed_row(row)))
            return self.seq

    def since(self, cursor: int, keep: FeedFilter) -> tuple[int, list[dict[str, Any]]]:
        """Rows after sequence ``cursor`` that pass ``keep``, and the new cursor."""
        with self._lock:
            items = [row for seq, row in self.ring if seq > cursor and keep(row)]
            return self.seq, items

    def backlog(self, keep: FeedFilter, limit: int = BACKLOG) -> tuple[int, list[dict[str, Any]]]:
        """What a new client sees first: the newest matching rows (oldest first) and a cursor.

        Filtered by user or decision, the store is asked directly (indexed), so a rare user's
        history shows even when none of it is in the ring.
        """
        cursor = self.poll()
        if keep.user_id is not None or keep.decision is not None:
            rows = self.store.latest_transactions(
                limit, user_id=keep.user_id, decision=keep.decision
            )
            items = [feed_row(r) for r in reversed(rows)]
            return cursor, [r for r in items if keep(r)]
        _, items = self.since(0, keep)
        return cursor, items[-limit:]


def _event(seq: int, rows: list[dict[str, Any]]) -> str:
    return f"id: {seq}\nevent: transactions\ndata: {orjson.dumps(rows).decode()}\n\n"


async def sse_events(
    hub: FeedHub,
    keep: FeedFilter,
    stop: threading.Event,
    *,
    last_event_id: str | None = None,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """Server-Sent Events for one client until ``stop`` is set (or the client goes away).

    Events: ``transactions`` (``data`` = JSON list of feed rows, oldest first; ``id`` = hub
    sequence, so a reconnecting browser resumes where it stopped while the rows are still in
    the ring), a final ``bye`` when the server stops, and ``: keepalive`` comments.
    """
    yield f"retry: {RETRY_MS}\n\n"
    if last_event_id and last_event_id.isdigit():
        cursor, rows = await asyncio.to_thread(_resume, hub, int(last_event_id), keep)
    else:
        cursor, rows = await asyncio.to_thread(hub.backlog, keep)
    yield _event(cursor, rows) if rows else ": connected\n\n"
    quiet_since = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(hub.poll_s)
        newest = await asyncio.to_thread(hub.poll)
        if newest > cursor:
            cursor, rows = hub.since(cursor, keep)
            if rows:
                yield _event(cursor, rows)
                quiet_since = time.monotonic()
                continue
        if time.monotonic() - quiet_since >= keepalive_s:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
    yield "event: bye\ndata: server stopping\n\n"


def _resume(hub: FeedHub, cursor: int, keep: FeedFilter) -> tuple[int, list[dict[str, Any]]]:
    hub.poll()
    if cursor > hub.seq:  # the server restarted: sequence numbers began again
        return hub.backlog(keep)
    return hub.since(cursor, keep)
