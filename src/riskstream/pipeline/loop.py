"""The run loop: poll a micro-batch, validate, score, write durably, publish, commit.

Order is the guarantee: results are written (idempotently, keyed by ``transaction_id``) before
the state change is saved and before the source position is committed. A crash anywhere
replays the batch: the results store ignores rows it has, and the state's replay guard ignores
events it has applied. Bad records never stop the loop: each becomes a dead letter with the
field and rule that failed. Outages of a store or sink (:mod:`riskstream.errors`) go to the
retry policy, which backs off and retries the same batch; nothing is committed meanwhile.
Any other error is a bug: it stops the loop at once, with the batch uncommitted for replay.

Optional sinks (the Kafka worker uses them; docs/streaming.md): ``results_sink`` gets every
stored result row (``Sink.publish_results``: the batch's columns, a
:class:`~riskstream.storage.batch.ResultBatch`) and ``dead_letter_sink`` every dead
letter with its original message and transport metadata. Both are acknowledged before the
source position is committed, so they are at-least-once: a replayed batch may publish a
record again (consumers dedupe by ``transaction_id``, or by source partition/offset for dead
letters).

Write-behind (``write_behind=True``, with a thread-safe state store such as Redis): a batch's
writes, in the same order, run on a background thread while the next batch is validated and
scored against the state the batch in flight will leave
(:mod:`riskstream.pipeline.writebehind`).
One batch is in flight at most, and batches are committed in order.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskstream.errors import is_outage
from riskstream.metrics import Metrics
from riskstream.pipeline.decode import dead_letter, decode_indexed
from riskstream.pipeline.results import result_batch
from riskstream.pipeline.writebehind import PendingState, Tail
from riskstream.pipeline.writer import ResultWriter
from riskstream.schema import CANONICAL_COLUMNS, validate_frame
from riskstream.scoring.core import ScoredBatch, ScoringCore
from riskstream.storage.base import ResultsStore
from riskstream.storage.batch import ResultBatch
from riskstream.transport.base import Batch, Sink, Source

log = logging.getLogger("riskstream.pipeline")
#: A batch of no events: carries waiting label changes into the state on an idle stream.
_NO_EVENTS = validate_frame(pd.DataFrame(columns=list(CANONICAL_COLUMNS)))[0]

#: Net new container objects (dicts, lists, ...) that start a young cyclic-GC collection while
#: a loop runs. Python's default, 700, started ~13 young and ~1 middle collection per
#: 5,000-row batch, which found nothing: a batch's dicts, lists and frames are freed by
#: reference counting when it ends. At 50,000 a collection runs only when objects really pile
#: up. Measured on the in-process loop (decode to rendered COPY and Kafka texts): 0.6 us/tx
#: of collections gone, 16.98 -> 16.03 us/tx in all; over 1.2M transactions the net growth
#: stayed under 3,100 objects and resident memory flat (docs/streaming.md).
GC_YOUNG_THRESHOLD = 50_000


def settle_gc() -> None:
    """Before a long-running loop: what is built so far (modules, model, stores) is frozen
    out of the cyclic GC's reach -- its full collections stop scanning ~200k objects and
    pausing the stream for 100+ ms -- and young collections wait for
    :data:`GC_YOUNG_THRESHOLD` net new objects. Process-wide; call once, after start-up."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


# -- error policy: small callbacks, not scattered try/except -------------------------------------
def backoff(base_s: float = 0.1, cap_s: float = 5.0) -> Callable[[str, Exception, int], float]:
    """Retry forever with capped exponential backoff (0.1 s, 0.2 s, ... 5 s)."""

    def policy(component: str, exc: Exception, attempt: int) -> float:
        delay = min(cap_s, base_s * 2 ** min(attempt, 16))
        log.warning("%s unavailable (%s); retry %d in %.1fs", component, exc, attempt + 1, delay)
        return delay

    return policy


@dataclass
class ErrorPolicy:
    #: (component, exception, attempt) -> seconds to wait before retrying, or None to give up.
    on_unavailable: Callable[[str, Exception, int], float | None] = field(default_factory=backoff)
    #: Called for each dead letter after it is stored (metrics, logging, alerting).
    on_dead_letter: Callable[[dict[str, Any]], None] = lambda letter: None


class Stopped(Exception):
    """The pipeline was asked to stop while waiting to retry."""


def _state_updates(scored: ScoredBatch) -> list[tuple[str, list[str], np.ndarray]]:
    """The batch's state change as ``save_many`` gets it (the same arrays)."""
    return scored.update.groups()


class Pipeline:
    def __init__(
        self,
        core: ScoringCore,
        source: Source,
        results: ResultsStore,
        metrics: Metrics,
        sink: Sink | None = None,
        policy: ErrorPolicy | None = None,
        lock: threading.Lock | None = None,
        *,
        results_sink: Sink | None = None,
        dead_letter_sink: Sink | None = None,
        max_message_bytes: int | None = None,
        write_behind: bool = False,
    ) -> None:
        """``write_behind``: overlap each batch's writes with the next batch's scoring
        (:mod:`riskstream.pipeline.writebehind`). Takes effect only with a state store safe for
        concurrent calls (Redis), and then wraps ``core.state`` in a
        :class:`~riskstream.pipeline.writebehind.PendingState`; batches of a model with an online
        detector still run one after the other."""
        self.core = core
        self.source = source
        self.metrics = metrics
        #: The write path shared with ``POST /predict``: results store, then ``results_sink``
        #: (every stored row; Kafka: ``transactions.scored`` and ``alerts``) and ``sink``
        #: (alert rows), then the state change, then the metrics.
        self.writer = ResultWriter(core, results, metrics, results_sink=results_sink, sink=sink)
        #: Gets every dead letter plus ``raw`` (original bytes) and ``meta`` (its origin).
        self.dead_letter_sink = dead_letter_sink
        self.max_message_bytes = max_message_bytes
        self.policy = policy or ErrorPolicy()
        #: Shared with the API: /predict and the loop must not interleave state updates.
        self.lock = lock or threading.Lock()
        self.stop_event = threading.Event()
        self.health: dict[str, str] = {"state": "ok", "results": "ok", "sink": "ok"}
        self.last_batch_at = 0.0
        #: Called between batches, never during one (e.g. model hot-swap). With write-behind,
        #: the previous batch's writes may still be running (they need nothing a hook changes).
        self.between_batches: list[Callable[[], None]] = []
        self._tail = Tail()
        #: A write-behind failure that a drain outside the loop (a Kafka revocation) saw: the
        #: loop raises it before its next batch, so nothing is committed past that batch.
        self._failed: BaseException | None = None
        #: The state as seen with the batch in flight (write-behind), or None (sequential).
        self._pending: PendingState | None = None
        if write_behind and core.state.thread_safe:
            if not isinstance(core.state, PendingState):
                core.state = PendingState(core.state)
            self._pending = core.state  # type: ignore[assignment]

    @property
    def results(self) -> ResultsStore:
        return self.writer.results

    @results.setter
    def results(self, store: ResultsStore) -> None:
        self.writer.results = store

    def _retry(self, component: str, action: Callable[[], Any]) -> Any:
        """Run ``action``; while it raises an outage (:func:`~riskstream.errors.is_outage`),
        report ``component`` down and retry as the policy says. Any other error is a bug and
        propagates at once, with nothing committed."""
        attempt = 0
        while True:
            try:
                out = action()
                if self.health.get(component, "ok") != "ok":
                    log.info("%s recovered", component)
                self.health[component] = "ok"
                self.metrics.up.labels(component).set(1)
                return out
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.health[component] = f"down: {type(exc).__name__}"
                self.metrics.up.labels(component).set(0)
                delay = self.policy.on_unavailable(component, exc, attempt)
                if delay is None:
                    raise
                attempt += 1
                if self.stop_event.wait(delay):
                    raise Stopped from exc

    def process(self, batch: Batch) -> ScoredBatch | None:
        """One micro-batch, end to end. Returns the scored batch (None if nothing valid).

        With write-behind active (:mod:`riskstream.pipeline.writebehind`), the batch's writes are
        still running when this returns; they are done when the next ``process`` hands its
        own over, or on :meth:`drain`.
        """
        if self._failed is not None:
            raise self._failed
        started = time.perf_counter()
        frame, letters, origins, row_origins = decode_indexed(batch, self.max_message_bytes)
        valid, errors = validate_frame(frame)
        if errors:
            raw = frame.iloc[[e.index for e in errors]].to_dict("records")
            letters += [
                dead_letter(batch, e.field, e.reason, r, e.transaction_id)
                for e, r in zip(errors, raw, strict=True)
            ]
            origins += [int(row_origins[e.index]) for e in errors]
        if letters:
            # The dead-letter sink may share a producer with the results sink (one thread
            # at a time): the batch in flight finishes first.
            self._tail.wait()
            self._dead_letters(batch, letters, origins)
        if len(valid) and self._pending is not None and not self._learns_online():
            return self._hand_over(batch, valid, started)
        self._tail.wait()
        scored = None
        if len(valid):
            with self.lock:
                # Scoring reads user state (a Redis round trip when state is shared): an outage
                # there is retried like the results store's, and nothing is committed meanwhile.
                scored = self._retry("state", lambda: self.core.score(valid))
                results = result_batch(scored)
                self._write(scored, results)
            self.writer.observe(scored, time.perf_counter() - started)
        self._retry("source", lambda: self.source.commit(batch))
        self.last_batch_at = time.time()
        return scored

    def apply_waiting_labels(self, idle_s: float = 1.0) -> bool:
        """Between batches, on a stream idle for ``idle_s``: fold the queued label changes
        into the state with a batch of no events (saved and marked applied like any batch's),
        so a label never waits for traffic. True when it did."""
        if not self.core.labels_waiting or time.time() - self.last_batch_at < idle_s:
            return False
        self._tail.wait()
        with self.lock:
            scored = self._retry("state", lambda: self.core.score(_NO_EVENTS))
            self.writer.commit(scored, self._retry)
        return True

    def _write(self, scored: ScoredBatch, results: ResultBatch) -> None:
        """Results durable, then published, then the state change saved (the order that makes
        a replay harmless; module docstring)."""
        self._write_results(results)
        self.writer.commit(scored, self._retry)

    def _write_results(self, results: ResultBatch) -> None:
        self.writer.write_results(results, self._retry)

    def _hand_over(self, batch: Batch, valid: pd.DataFrame, started: float) -> ScoredBatch:
        """Write-behind: score now (state as the batch in flight will leave it), write later."""
        pending = self._pending
        assert pending is not None
        with self.lock:
            scored = self._retry("state", lambda: self.core.score(valid))
            results = result_batch(scored)
            updates = _state_updates(scored)
            pending.hold(updates)

        def save() -> None:
            self.writer.commit(scored, self._retry)
            self.writer.observe(scored, time.perf_counter() - started)
            self._retry("source", lambda: self.source.commit(batch))
            self.last_batch_at = time.time()

        try:
            # Waits until the batch before has its results written; this one's state is
            # saved after that one's (module docstring of riskstream.pipeline.writebehind).
            self._tail.start(lambda: self._write_results(results),
                             save, lambda: pending.release(updates))
        except BaseException:
            pending.release(updates)  # abandoned (left uncommitted, for replay)
            raise
        return scored

    def drain(self) -> None:
        """Wait until the batch in flight (write-behind) is durable and committed; raise what
        its writes raised (:class:`Stopped` if the loop was stopped while they retried).
        The failure is also kept, so the loop stops before its next batch even when the drain
        ran outside it."""
        try:
            self._tail.wait()
        except BaseException as exc:
            self._failed = exc
            raise

    def _learns_online(self) -> bool:
        """An online detector learns at commit, before the next batch may be scored."""
        bundles = (self.core.bundle, self.core.shadow)
        return any(m.detector.online for b in bundles if b is not None for m in b.members)

    def _dead_letters(
        self, batch: Batch, letters: list[dict[str, Any]], origins: list[int]
    ) -> None:
        """Store dead letters; publish them with their original message (``origins[k]`` indexes
        ``batch.messages``, -1 for frame rows) to the dead-letter sink; count them."""
        self._retry("results", lambda: self.results.write_dead_letters(letters))
        if self.dead_letter_sink is not None:
            n_meta = len(batch.meta)
            records = [
                {
                    **letter,
                    "raw": batch.messages[i] if i >= 0 else None,
                    "meta": batch.meta[i] if 0 <= i < n_meta else None,
                }
                for letter, i in zip(letters, origins, strict=True)
            ]
            self._retry("dead_letters", lambda: self.dead_letter_sink.publish(records))  # type: ignore[union-attr]
        for letter in letters:
            self.metrics.dead_letters.labels(letter["field"]).inc()
            self.policy.on_dead_letter(letter)

    def run(
        self,
        max_records: int,
        timeout_s: float,
        on_batch: Callable[[ScoredBatch | None], None] | None = None,
    ) -> None:
        """Loop until :meth:`stop`; the batch in hand is always finished first."""
        while not self.stop_event.is_set():
            for hook in self.between_batches:
                hook()
            batch = self.source.poll(max_records, timeout_s)
            if batch is None or not len(batch):
                continue
            try:
                scored = self.process(batch)
            except Stopped:
                log.warning("stopped while retrying; batch left uncommitted for replay")
                break
            if on_batch is not None:
                on_batch(scored)
        try:
            self.drain()  # write-behind: the last batch is durable and committed on return
        except Stopped:
            log.warning("stopped while retrying; batch left uncommitted for replay")

    def stop(self) -> None:
        self.stop_event.set()
