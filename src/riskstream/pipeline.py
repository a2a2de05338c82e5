"""The run loop: poll a micro-batch, validate, score, write durably, publish, commit.

Order is the guarantee: results are written (idempotently, keyed by ``transaction_id``) before
the state change is saved and before the source position is committed. A crash anywhere
replays the batch: the results store ignores rows it has, and the state's replay guard ignores
events it has applied. Bad records never stop the loop: each becomes a dead letter with the
field and rule that failed. Failures of a store or sink go to the retry policy, which backs
off and retries the same batch; nothing is committed meanwhile.

Optional sinks (the Kafka worker uses them; docs/streaming.md): ``results_sink`` gets every
stored result row and ``dead_letter_sink`` every dead letter with its original message and
transport metadata. Both are acknowledged before the source position is committed, so they
are at-least-once: a replayed batch may publish a record again (consumers dedupe by
``transaction_id``, or by source partition/offset for dead letters).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from riskstream.core import DECISIONS, ScoredBatch, ScoringCore
from riskstream.features.spec import FEATURES
from riskstream.metrics import Metrics
from riskstream.schema import CANONICAL_COLUMNS, validate_frame
from riskstream.storage.base import ResultsStore
from riskstream.transport.base import Batch, Sink, Source

log = logging.getLogger("riskstream.pipeline")


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


#: A too-large message keeps this much of itself in its dead letter's stored payload.
_TOO_LARGE_KEEP = 8192


def decode(
    batch: Batch, max_message_bytes: int | None = None
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Raw batch -> (records frame, dead letters for undecodable messages).

    Messages longer than ``max_message_bytes`` (if given) are dead-lettered unread.
    """
    frame, letters, _, _ = decode_indexed(batch, max_message_bytes)
    return frame, letters


def decode_indexed(
    batch: Batch, max_message_bytes: int | None = None
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[int], np.ndarray]:
    """:func:`decode`, plus the origin of each letter and of each frame row: the index of its
    message in ``batch.messages`` (-1 for rows of ``batch.frame``)."""
    letters: list[dict[str, Any]] = []
    letter_msgs: list[int] = []
    frames = [] if batch.frame is None else [batch.frame]
    row_msgs = [] if batch.frame is None else [np.full(len(batch.frame), -1, dtype=np.int64)]
    if batch.messages:
        records, kept = [], []
        for i, raw in enumerate(batch.messages):
            if max_message_bytes is not None and len(raw) > max_message_bytes:
                reason = f"too large: {len(raw)} bytes > {max_message_bytes}"
                letters.append(_letter(batch, "message", reason, raw[:_TOO_LARGE_KEEP]))
                letter_msgs.append(i)
                continue
            try:
                value = orjson.loads(raw)
                if not isinstance(value, dict):
                    raise ValueError("message must be a JSON object")
                records.append(value)
                kept.append(i)
            except (orjson.JSONDecodeError, ValueError) as exc:
                letters.append(_letter(batch, "message", f"invalid JSON: {exc}", raw))
                letter_msgs.append(i)
        if records:
            frames.append(pd.DataFrame.from_records(records))
            row_msgs.append(np.asarray(kept, dtype=np.int64))
    frame = (
        pd.concat(frames, ignore_index=True)
        if len(frames) > 1
        else (frames[0] if frames else pd.DataFrame(columns=list(CANONICAL_COLUMNS)))
    )
    rows = np.concatenate(row_msgs) if row_msgs else np.empty(0, dtype=np.int64)
    return frame, letters, letter_msgs, rows


def _letter(
    batch: Batch, field_: str, reason: str, payload: Any, tx: str | None = None
) -> dict[str, Any]:
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    elif not isinstance(payload, str):
        payload = orjson.dumps(payload, default=str).decode()
    return {
        "received_at": time.time(),
        "source": batch.source,
        "field": field_,
        "reason": reason,
        "transaction_id": tx,
        "payload": payload,
    }


def result_rows(scored: ScoredBatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Store rows for every scored transaction and alert rows for the anomalous ones."""
    f = scored.frame
    now = time.time()
    n = len(f)
    per_tx_ms = scored.elapsed_ms / max(n, 1)
    flagged = np.flatnonzero(scored.anomalous)
    reasons_flagged = scored.reasons(flagged) if flagged.size else []
    reasons: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i, r in zip(flagged, reasons_flagged, strict=True):
        reasons[i] = r
    # Whole matrices to Python lists once per batch: per-row .tolist() calls cost more.
    feats = np.round(scored.features, 5).tolist()

    cols = {c: f[c].tolist() for c in CANONICAL_COLUMNS}
    lat = [None if v != v else v for v in cols["lat"]]
    lon = [None if v != v else v for v in cols["lon"]]
    decisions = [DECISIONS[d] for d in scored.decisions.tolist()]
    scores = scored.scores.tolist()
    members = np.round(scored.contributions, 6).tolist()
    shadow = [None] * n if scored.shadow_scores is None else scored.shadow_scores.tolist()
    # Rows are zipped from per-column lists with one key tuple: the dict building runs in C,
    # not 26 Python-level lookups per row.
    names = scored.detectors
    columns = {
        **{c: cols[c] for c in CANONICAL_COLUMNS},
        "lat": lat,
        "lon": lon,
        "score": scores,
        "decision": decisions,
        "reasons": reasons,
        "features": [dict(zip(FEATURES, r, strict=True)) for r in feats],
        "model_version": [scored.model_version] * n,
        "latency_ms": [per_tx_ms] * n,
        "scored_at": [now] * n,
        "detector_scores": [dict(zip(names, r, strict=True)) for r in members],
        "shadow_score": shadow,
        "shadow_version": [scored.shadow_version] * n,
    }
    keys = tuple(columns)
    rows = [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    alerts = [
        {
            "transaction_id": rows[i]["transaction_id"],
            "timestamp": rows[i]["timestamp"],
            "user_id": rows[i]["user_id"],
            "amount": rows[i]["amount"],
            "score": rows[i]["score"],
            "decision": rows[i]["decision"],
            "reasons": reasons[i],
            "model_version": scored.model_version,
            "status": "open",
            "created_at": now,
        }
        for i in flagged.tolist()
    ]
    return rows, alerts


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
    ) -> None:
        self.core = core
        self.source = source
        self.results = results
        self.metrics = metrics
        self.sink = sink
        #: Gets every stored result row (Kafka: ``transactions.scored`` and ``alerts``).
        self.results_sink = results_sink
        #: Gets every dead letter plus ``raw`` (original bytes) and ``meta`` (its origin).
        self.dead_letter_sink = dead_letter_sink
        self.max_message_bytes = max_message_bytes
        self.policy = policy or ErrorPolicy()
        #: Shared with the API: /predict and the loop must not interleave state updates.
        self.lock = lock or threading.Lock()
        self.stop_event = threading.Event()
        self.health: dict[str, str] = {"state": "ok", "results": "ok", "sink": "ok"}
        self.last_batch_at = 0.0
        #: Called between batches, never during one (e.g. model hot-swap).
        self.between_batches: list[Callable[[], None]] = []

    def _retry(self, component: str, action: Callable[[], Any]) -> Any:
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
                self.health[component] = f"down: {type(exc).__name__}"
                self.metrics.up.labels(component).set(0)
                delay = self.policy.on_unavailable(component, exc, attempt)
                if delay is None:
                    raise
                attempt += 1
                if self.stop_event.wait(delay):
                    raise Stopped from exc

    def process(self, batch: Batch) -> ScoredBatch | None:
        """One micro-batch, end to end. Returns the scored batch (None if nothing valid)."""
        started = time.perf_counter()
        frame, letters, origins, row_origins = decode_indexed(batch, self.max_message_bytes)
        valid, errors = validate_frame(frame)
        if errors:
            raw = frame.iloc[[e.index for e in errors]].to_dict("records")
            letters += [
                _letter(batch, e.field, e.reason, r, e.transaction_id)
                for e, r in zip(errors, raw, strict=True)
            ]
            origins += [int(row_origins[e.index]) for e in errors]
        if letters:
            self._dead_letters(batch, letters, origins)
        scored = None
        if len(valid):
            with self.lock:
                # Scoring reads user state (a Redis round trip when state is shared): an outage
                # there is retried like the results store's, and nothing is committed meanwhile.
                scored = self._retry("state", lambda: self.core.score(valid))
                rows, alerts = result_rows(scored)
                self._retry("results", lambda: self.results.write(rows, alerts))
                if self.results_sink is not None:
                    self._retry("sink", lambda: self.results_sink.publish(rows))  # type: ignore[union-attr]
                if self.sink is not None and alerts:
                    self._retry("sink", lambda: self.sink.publish(alerts))  # type: ignore[union-attr]
                self._retry("state", lambda: self.core.commit(scored))
            self._observe(scored, time.perf_counter() - started)
        self._retry("source", lambda: self.source.commit(batch))
        self.last_batch_at = time.time()
        return scored

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

    def _observe(self, scored: ScoredBatch, seconds: float) -> None:
        m = self.metrics
        m.processed.inc(len(scored))
        m.batch_size.observe(len(scored))
        m.latency.observe(seconds)
        for code, name in ((1, "review"), (2, "block")):
            k = int((scored.decisions == code).sum())
            if k:
                m.anomalies.labels(name).inc(k)
        late = int(len(scored) - scored.update.applied.sum())
        if late:
            m.late.inc(late)
        try:
            m.users.set(self.core.state.count("user"))
        except Exception as exc:  # a gauge is not worth failing a durable batch for
            log.debug("state_users not updated: %s", exc)

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
                return
            if on_batch is not None:
                on_batch(scored)

    def stop(self) -> None:
        self.stop_event.set()
