"""Write-behind for the pipeline: batch *N*'s durable writes overlap batch *N+1*'s scoring.

Sequentially, a batch's wall time is its own CPU (validation, scoring, rendering the results)
*plus* the time the results database and the state store spend on its writes. With
write-behind (``Pipeline(write_behind=True)``), the writes of a batch -- results store, result
and alert sinks, state save, source commit, in that order, exactly as before -- run on a
background thread while the loop already validates and scores the next batch. The order
guarantee is per batch and across batches unchanged:

* a batch's results are durable before its state is saved, and its state is saved before its
  source position is committed (the same code, on another thread);
* batches are written in order, in two stages: batch *N+1*'s results are written while batch
  *N*'s state is saved and its position committed (the two never depend on each other);
  states are saved and positions committed batch after batch, never past a batch that
  failed; at most one batch is in each stage (:class:`Tail`);
* batch *N+1* is scored against the state *after* the batches before it: :class:`PendingState`
  shows the rows of batches scored but not saved yet to every load (and ``get``), until the
  store has them.

A failure while writing is retried by the pipeline's policy on the background thread (nothing
committed meanwhile, as before); the loop finds out when it hands over the next batch, and a
stop while retrying, or an error the policy gives up on, ends the loop with that batch and
the ones after it uncommitted (their pending rows released), for replay. A crash replays at
most the three batches in flight (one scored, one writing results, one saving state).

Used only where it is safe (the pipeline falls back to sequential batches otherwise):

* the state store must be shared and safe for concurrent calls (Redis:
  ``thread_safe = True``). In-memory stores are snapshotted between batches under the lock
  and are not thread-safe; their saves are cheap anyway;
* no online detector: they learn when a batch is committed, which must happen before the next
  batch is scored; a model with one makes the pipeline drain before each batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from riskstream.features.state import StateStore


class PendingState(StateStore):
    """``inner`` as it will be once the held updates are saved (see module docstring).

    :meth:`hold` makes a scored batch's rows visible to loads; the batch's own save (the same
    row arrays, through :meth:`save_many`) releases them once the store has them. A save of
    anything else (the API's single-transaction path) first waits until no batch is pending,
    so saves reach the store in the order they were scored.
    """

    thread_safe = True

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.widths = inner.widths
        #: namespace -> key -> (row array, index): the newest pending row of each key.
        self._pending: dict[str, dict[str, tuple[np.ndarray, int]]] = {
            ns: {} for ns in inner.widths
        }
        #: ids of held row arrays not yet saved
        self._held: set[int] = set()
        self._cond = threading.Condition()

    # -- holding ---------------------------------------------------------------------------
    def hold(self, updates: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> None:
        """Show these rows to loads until the same arrays are saved through this store."""
        with self._cond:
            for namespace, keys, rows in updates:
                pending = self._pending[namespace]
                for i, key in enumerate(keys):
                    pending[key] = (rows, i)
                if len(keys):
                    self._held.add(id(rows))

    def pending(self) -> int:
        """Rows held and not saved yet (all namespaces)."""
        with self._cond:
            return sum(len(p) for p in self._pending.values())

    # -- StateStore ------------------------------------------------------------------------
    def load(self, namespace: str, keys: Sequence[str]) -> np.ndarray:
        # Under the condition's lock: a save finishing meanwhile cannot release rows between
        # the store's answer (maybe older) and the overlay.
        with self._cond:
            out = self.inner.load(namespace, keys)
            pending = self._pending[namespace]
            if pending:
                # Copy the pending rows in with one fancy-indexed assignment per held array
                # (a batch or two in flight), not one numpy call per key.
                hits = list(map(pending.get, keys))
                where: dict[int, tuple[np.ndarray, list[int], list[int]]] = {}
                for i, hit in enumerate(hits):
                    if hit is not None:
                        group = where.get(id(hit[0]))
                        if group is None:
                            group = where[id(hit[0])] = (hit[0], [], [])
                        group[1].append(i)
                        group[2].append(hit[1])
                for rows, dst, src in where.values():
                    out[dst] = rows[src]
            return out

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        with self._cond:
            hit = self._pending[namespace].get(key)
            if hit is not None:
                return np.array(hit[0][hit[1]], dtype=np.float64)
            return self.inner.get(namespace, key)

    def save(self, namespace: str, keys: Sequence[str], rows: np.ndarray) -> None:
        self.save_many([(namespace, keys, rows)])

    def save_many(self, updates: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> None:
        ids = {id(rows) for _, keys, rows in updates if len(keys)}
        with self._cond:
            held = bool(ids & self._held)
            if not held:  # not a held batch: after every held one (scoring order)
                self._cond.wait_for(lambda: not self._held)
        self.inner.save_many(updates)  # outside the lock: loads go on meanwhile
        if held:
            with self._cond:
                for namespace, keys, rows in updates:
                    pending = self._pending[namespace]
                    for key in keys:
                        hit = pending.get(key)
                        if hit is not None and hit[0] is rows:  # not superseded since
                            del pending[key]
                self._held -= ids
                self._cond.notify_all()

    def release(self, updates: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> None:
        """Forget held rows that will not be saved (their batch was abandoned)."""
        with self._cond:
            for namespace, keys, rows in updates:
                pending = self._pending[namespace]
                for key in keys:
                    hit = pending.get(key)
                    if hit is not None and hit[0] is rows:
                        del pending[key]
                self._held.discard(id(rows))
            self._cond.notify_all()

    def count(self, namespace: str) -> int:
        return self.inner.count(namespace)

    def clear(self) -> None:
        self.inner.clear()

    def ping(self) -> bool:
        return self.inner.ping()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # backend extras (diagnostics, ...)
        return getattr(self.inner, name)


class _Flight:
    """One batch's writes on its own thread: ``first`` (results), then, once the batch before
    is completely done, ``second`` (state and commit)."""

    def __init__(self, prev: _Flight | None) -> None:
        self.prev = prev
        #: Set when ``first`` has finished (well or not): the next batch may start its own.
        self.first_done = threading.Event()
        self.error: BaseException | None = None
        #: ``second`` never ran or failed: the batch is not committed.
        self.abandoned = False
        self.thread: threading.Thread | None = None


class Tail:
    """Batches' writes in the background, in two stages (see module docstring):

    * stage 1 (``first``: results store and sinks) of batch *N+1* runs while stage 2
      (``second``: state save and source commit) of batch *N* does -- the order within each
      batch is kept, and no batch's state is saved before its results are durable;
    * stage 2 runs batch after batch, in order, and only if the batch before completed, so
      source positions are committed in order and never past a failed batch.

    At most one batch is in each stage; :meth:`start` waits for the stage-1 slot.
    """

    def __init__(self) -> None:
        self._flights: list[_Flight] = []

    def wait(self) -> None:
        """Wait for every batch in flight; raise the first error their writes raised."""
        flights, self._flights = self._flights, []
        error: BaseException | None = None
        for flight in flights:
            if flight.thread is not None:
                flight.thread.join()
            if error is None and flight.error is not None:
                error = flight.error
        if error is not None:
            raise error

    def start(
        self,
        first: Callable[[], None],
        second: Callable[[], None],
        abandon: Callable[[], None],
    ) -> None:
        """Run ``first`` then ``second`` in the background; ``abandon`` runs instead of a
        ``second`` that cannot complete (an error here or in an earlier batch)."""
        last = self._flights[-1] if self._flights else None
        if last is not None:
            last.first_done.wait()
            if last.error is not None:
                self.wait()  # raises it (after the others finished)
        self._flights = [f for f in self._flights
                         if f.error is not None or (f.thread is not None and f.thread.is_alive())]
        flight = _Flight(self._flights[-1] if self._flights else None)

        def run() -> None:
            try:
                try:
                    first()
                finally:
                    flight.first_done.set()
                prev = flight.prev
                flight.prev = None  # no chain of finished batches kept alive
                if prev is not None and prev.thread is not None:
                    prev.thread.join()
                    if prev.abandoned:  # never commit past a batch that was not
                        flight.abandoned = True
                        abandon()
                        return
                second()
            except BaseException as exc:  # handed to the loop by start()/wait()
                flight.error = exc
                flight.abandoned = True
                abandon()

        flight.thread = threading.Thread(target=run, name="riskstream-write-behind",
                                         daemon=True)
        self._flights.append(flight)
        flight.thread.start()
