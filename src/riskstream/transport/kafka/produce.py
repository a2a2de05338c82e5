"""Feeding the input topic: simulated transactions at a rate, or a file replayed.

Contract: :func:`produce` sends the rows of ``frames`` as JSON messages keyed by ``user_id``
through a :class:`~riskstream.transport.kafka.TransactionProducer`, paced either at a fixed
``rate`` (events per second of wall time) or at the recorded speed of the events' own
timestamps (divided by ``speedup``), and returns counts once every message is acknowledged.
Event timestamps are never rewritten: pacing only decides *when* a message is sent.

A feed in the background (``riskstream run --kafka``) is a
:class:`~riskstream.transport.feeder.Feeder` of :func:`records_of` the frames into
``TransactionProducer.send_records``, row by row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskstream.transport.feeder import sleep_until
from riskstream.transport.kafka.producer import LABEL_COLUMNS, TransactionProducer, frame_records

#: Progress is reported at most every this many messages.
_PROGRESS_EVERY = 1000


@dataclass
class ProduceStats:
    """What a :func:`produce` call did."""

    sent: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    unacknowledged: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def simulated_frames(
    users: int = 2000,
    seed: int = 11,
    fraud_rate: float = 0.01,
    batch_size: int = 500,
    merchants: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Endless simulated traffic with its real simulated spacing (``simulate.stream``)."""
    from riskstream.simulate import SimConfig, stream

    kw: dict[str, Any] = {"n_users": users, "seed": seed, "fraud_rate": fraud_rate}
    if merchants is not None:
        kw["n_merchants"] = merchants
    return stream(SimConfig(**kw), rate=None, batch_size=batch_size)


def file_frames(
    path: Path, mapping: str | None = None, chunk: int = 5000
) -> Iterator[pd.DataFrame]:
    """A CSV/Parquet file (``io.read_transactions``, optional column mapping), in chunks."""
    from riskstream.io import read_transactions

    frame = read_transactions(path, mapping)
    for lo in range(0, len(frame), chunk):
        yield frame.iloc[lo : lo + chunk]


def records_of(
    frames: Iterable[pd.DataFrame], keep_labels: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """Each frame's rows as records (minus :data:`LABEL_COLUMNS` unless ``keep_labels``):
    batches a row-by-row :class:`~riskstream.transport.feeder.Feeder` can split cheaply."""
    drop = () if keep_labels else LABEL_COLUMNS
    for frame in frames:
        yield frame_records(frame, drop)


def event_seconds(col: pd.Series) -> np.ndarray:
    """Event times as epoch seconds for pacing (numbers as-is, text parsed; a row whose time
    does not parse takes its predecessor's, so it is sent right after it)."""
    if pd.api.types.is_numeric_dtype(col):
        out = col.to_numpy(dtype=np.float64)
    else:
        parsed = pd.to_datetime(col, utc=True, errors="coerce", format="mixed")
        out = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return pd.Series(out).ffill().bfill().fillna(0.0).to_numpy()


def produce(
    producer: TransactionProducer,
    frames: Iterable[pd.DataFrame],
    *,
    rate: float | None = None,
    recorded_speed: float | None = None,
    limit: int | None = None,
    keep_labels: bool = False,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Send ``frames`` (see module docstring); stop after ``limit`` rows or when ``stop`` is set.

    ``rate`` and ``recorded_speed`` are exclusive; with neither, rows go as fast as the client
    takes them. ``progress(n)`` is called with the number of rows handled since its last call.
    """
    if rate is not None and recorded_speed is not None:
        raise ValueError("give a rate or a recorded speed, not both")
    if rate is not None and not rate > 0:
        raise ValueError("rate must be > 0 events per second")
    if recorded_speed is not None and not recorded_speed > 0:
        raise ValueError("speedup must be > 0")
    stop = stop or threading.Event()
    drop = () if keep_labels else LABEL_COLUMNS
    stats = ProduceStats()
    start = time.monotonic()
    done = reported = 0
    first_ts: float | None = None
    for frame in frames:
        if limit is not None:
            frame = frame.iloc[: max(limit - done, 0)]
        if not len(frame):
            break
        due: np.ndarray | None = None
        if recorded_speed is not None and "timestamp" in frame.columns:
            ts = event_seconds(frame["timestamp"])
            first_ts = float(ts[0]) if first_ts is None else first_ts
            due = (ts - first_ts) / recorded_speed
        for i, rec in enumerate(frame_records(frame, drop)):
            at = due[i] if due is not None else (done / rate if rate else None)
            if at is not None and sleep_until(start + at, stop):
                break
            producer.send_records((rec,))
            done += 1
            if progress is not None and done - reported >= _PROGRESS_EVERY:
                progress(done - reported)
                reported = done
        if stop.is_set() or (limit is not None and done >= limit):
            break
    stats.unacknowledged = producer.flush()
    if progress is not None and done > reported:
        progress(done - reported)
    stats.seconds = time.monotonic() - start
    stats.sent = producer.sent
    stats.refused = dict(producer.refused)
    stats.failed = producer.failed
    return stats
