"""Request coalescing: concurrent ``POST /predict`` calls scored as one micro-batch.

Every call's body is parsed (orjson) and queued on the event loop; one drain task takes what
is queued -- after a short window when calls are arriving concurrently, at once when a call
comes alone -- and hands it to a single scoring thread. There the batch is built into one
frame, validated column-wise (:func:`~riskstream.schema.validate_frame`, the stream's own
validator), scored by the one core in one vectorised call, and recorded through the stream's
write path (:class:`~riskstream.pipeline.ResultWriter`): one results transaction and one
state save for the whole batch (group commit). Each call gets its own answer only after that
write returned: *answered implies stored* (unless ``dry_run``).

Calls are batched in arrival order; a user's transactions without a timestamp get the server's
receive time, so within a batch they are scored in the order they came. A transaction id seen
twice in one batch is scored once; the later copy is answered with the first one's result and
``duplicate: true``, as a retry after the first was stored would be.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from riskstream.schema import (
    RECEIVED_AT,
    RecordError,
    Transaction,
    error_detail,
    errors_from_validation,
    records_to_frame,
    request_frame,
    validate_frame,
)
from riskstream.service.runtime import Runtime

#: Rows one scoring call takes at most (a ``/predict/batch`` call alone may be larger).
MAX_BATCH_ROWS = 10_000
#: Batches up to this size are validated row by row (``Transaction``, ~20 us a row) instead
#: of column-wise: the column-wise validator costs ~3 ms whatever the batch size (measured on
#: 1, 8 and 64 rows), all of which a lone call would pay. Both apply the same rules
#: (``validate_frame``'s contract; tests/test_schema.py holds them to it).
ROWWISE_MAX_ROWS = 64


def validated(
    records: Sequence[dict[str, Any]], received_at: np.ndarray
) -> tuple[pd.DataFrame, list[RecordError]]:
    """Request bodies -> (valid rows as the core takes them, in order; refused rows)."""
    if len(records) > ROWWISE_MAX_ROWS:
        return validate_frame(request_frame(records, received_at))
    models: list[Transaction] = []
    errors: list[RecordError] = []
    for i, (record, at) in enumerate(zip(records, received_at.tolist(), strict=True)):
        try:
            models.append(Transaction.model_validate(record, context={RECEIVED_AT: at}))
        except ValidationError as exc:
            errors.append(errors_from_validation(exc, i, record.get("transaction_id")))
    return records_to_frame(models), errors


@dataclass
class Outcome:
    """One transaction's answer: its result, or why it was refused (FastAPI 422 items)."""

    result: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Call:
    records: list[dict[str, Any]]
    dry_run: bool
    received_at: float
    future: asyncio.Future[list[Outcome]]


class Coalescer:
    """Gathers calls into micro-batches (module docstring); one per app.

    ``window_s``: how long the drain waits for more calls once calls arrive concurrently
    (0 disables the wait: batches then form only from calls queued while the previous batch
    was scored).
    """

    def __init__(self, runtime: Runtime, window_s: float = 0.001,
                 max_rows: int = MAX_BATCH_ROWS) -> None:
        self.runtime = runtime
        self.window_s = window_s
        self.max_rows = max_rows
        self._queue: deque[_Call] = deque()
        self._wake: asyncio.Event | None = None
        self._drain_task: asyncio.Task[None] | None = None
        # One thread: batches are scored one after the other, in the order they were taken.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="riskstream-predict")
        #: Calls in the last batch: more than one means calls are arriving concurrently.
        self._last_calls = 0
        self.batches = 0

    async def submit(self, records: list[dict[str, Any]], dry_run: bool = False) -> list[Outcome]:
        """Score ``records`` (one call's: one for ``/predict``, many for ``/predict/batch``)
        with whatever else is queued; one outcome per record, in order."""
        loop = asyncio.get_running_loop()
        if self._drain_task is None or self._drain_task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._drain_task = loop.create_task(self._drain(), name="riskstream-coalescer")
        call = _Call(records, dry_run, time.time(), loop.create_future())
        self._queue.append(call)
        assert self._wake is not None
        self._wake.set()
        return await call.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if self._gather():
                    await asyncio.sleep(self.window_s)
                calls = self._take()
                self._last_calls = len(calls)
                try:
                    outcomes = await loop.run_in_executor(self._executor, self._score, calls)
                except Exception as exc:  # an outage (503) or a bug (500): every call learns it
                    for call in calls:
                        if not call.future.done():
                            call.future.set_exception(exc)
                    continue
                for call, outcome in zip(calls, outcomes, strict=True):
                    if not call.future.done():  # a client that went away is not answered
                        call.future.set_result(outcome)

    def _gather(self) -> bool:
        """Wait for more calls? Only when calls are overlapping and there is room: a call that
        comes alone is scored at once."""
        room = sum(len(c.records) for c in self._queue) < self.max_rows
        return self.window_s > 0 and self._last_calls > 1 and room

    def _take(self) -> list[_Call]:
        """The oldest queued calls of one kind (recorded or dry run), up to ``max_rows``."""
        first = self._queue.popleft()
        calls, rows = [first], len(first.records)
        while (self._queue and self._queue[0].dry_run == first.dry_run
               and rows + len(self._queue[0].records) <= self.max_rows):
            call = self._queue.popleft()
            calls.append(call)
            rows += len(call.records)
        return calls

    def _score(self, calls: Sequence[_Call]) -> list[list[Outcome]]:
        """On the scoring thread: one frame, one validation, one score, one write."""
        dry_run = calls[0].dry_run
        records = [r for c in calls for r in c.records]
        received = np.repeat([c.received_at for c in calls], [len(c.records) for c in calls])
        outcomes = [Outcome() for _ in records]
        valid, errors = validated(records, received)
        for e in errors:
            outcomes[e.index].errors.append(error_detail(e))
        rows = np.flatnonzero([not o.errors for o in outcomes])
        if rows.size:
            ids = valid["transaction_id"]
            repeat = ids.duplicated().to_numpy()
            unique = valid[~repeat].reset_index(drop=True)
            first_of = {tx: j for j, tx in enumerate(unique["transaction_id"].tolist())}
            runtime = self.runtime
            with runtime.lock:
                scored = runtime.core.score(unique, apply=not dry_run)
                new = set() if dry_run else runtime.writer.record(scored)
            if dry_run:
                runtime.metrics.latency.observe(scored.elapsed_ms / 1000.0)
            results = scored.results()
            for k, (row, tx) in enumerate(zip(rows.tolist(), ids.tolist(), strict=True)):
                result = dict(results[first_of[tx]]) if repeat[k] else results[first_of[tx]]
                if not dry_run:
                    result["duplicate"] = bool(repeat[k]) or tx not in new
                outcomes[row].result = result
        self.batches += 1
        out, start = [], 0
        for call in calls:
            out.append(outcomes[start : start + len(call.records)])
            start += len(call.records)
        return out

    def close(self) -> None:
        if self._drain_task is not None:
            self._drain_task.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
