"""In-memory user state that follows Kafka partition assignments (``memory://`` workers).

The input is keyed by ``user_id``, so all of a user's events are on one partition, and the
group gives each partition to one worker at a time. A worker with in-memory state keeps the
users of each partition it owns in a separate store and persists each partition on its own,
as a snapshot file that records the offset it is exact at::

    <home>/kafka/<group>/<topic>/p0007.npz   keys, rows, offset  (+ merchants.npz)

**Invariant.** A partition snapshot at offset ``O`` holds the state of that partition's users
after applying, exactly once each, the partition's events before ``O`` (from wherever its
chain of snapshots started). Hence:

* on **assignment**, a worker loads the snapshot and starts consuming at *its* offset (not the
  group's committed offset): replaying from there reproduces the exact state, and the replayed
  results are ignored by the idempotent results store;
* every ``kafka_checkpoint_every_s`` (between batches), on **revocation** and on **shutdown**,
  the processed offsets are committed, then the snapshots of changed partitions are written
  (atomically: temporary file, fsync, rename);
* a partition **lost** (the group moved it while this worker was stuck) is dropped unsaved:
  its new owner replays from the last snapshot;
* after ``kill -9`` nothing is lost or double-counted: the restarted worker (or another one)
  resumes from the last snapshot and replays at most one checkpoint period.

Any snapshot satisfies the invariant, whoever wrote it and whenever, so even a late write by a
worker that no longer owns the partition only costs extra replay, never correctness.

**Merchants** span partitions: each worker keeps the merchants it sees (approximate: it only
sees its partitions' share of a merchant's traffic), snapshotted best-effort (last writer
wins) to ``merchants.npz`` and loaded at start. The label-aware records (namespaces
``user_label`` and ``merchant_label``) are kept and snapshotted the same way. With
``RISKSTREAM_STATE_URL=redis://...`` none
of this is used: state is shared, saved per batch, and the replay guard makes replays no-ops.

Users whose messages have no key cannot be routed to a partition: they live in an
"unrouted" store that is not checkpointed (a warning is logged once).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riskstream.features.state import DEFAULT_WIDTHS, InMemoryStateStore, StateStore
from riskstream.transport.base import Batch

log = logging.getLogger("riskstream.streaming")

#: Snapshot file layout version, stored in every file; a mismatch refuses to load.
SNAPSHOT_FORMAT = 1


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def snapshot_dir(home: Path, group_id: str, topic: str) -> Path:
    """Where a group's partition snapshots of ``topic`` live."""
    return Path(home) / "kafka" / _safe(group_id) / _safe(topic)


@dataclass
class PartitionSnapshot:
    partition: int
    offset: int  # next offset to consume: the state includes every event before it
    keys: list[str]
    rows: np.ndarray  # (len(keys), user width)


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    # A unique temporary name: two workers may write the same partition (see module doc).
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_snapshot(path: Path, snap: PartitionSnapshot) -> None:
    """Write one partition snapshot atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_savez(
        path,
        format=np.array(SNAPSHOT_FORMAT),
        partition=np.array(snap.partition),
        offset=np.array(snap.offset),
        written_at=np.array(time.time()),
        keys=np.array(snap.keys, dtype=np.str_),
        rows=snap.rows,
    )


def read_snapshot(path: Path, width: int) -> PartitionSnapshot | None:
    """The snapshot at ``path``, or None if there is none. Raises on a foreign layout."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        if int(data["format"]) != SNAPSHOT_FORMAT:
            raise ValueError(f"{path}: snapshot format {int(data['format'])} not supported")
        rows = data["rows"]
        if rows.ndim != 2 or rows.shape[1] != width:
            raise ValueError(f"{path}: rows of width {rows.shape[1:]} (expected {width})")
        return PartitionSnapshot(
            int(data["partition"]), int(data["offset"]), data["keys"].tolist(), rows
        )


class PartitionedMemoryState(StateStore):
    """A :class:`StateStore` whose users are kept per Kafka partition (see module docstring).

    Which partition a user is on is learnt from message keys (:meth:`route`); users of a
    partition this worker does not own, or never routed, go to an "unrouted" store.
    """

    def __init__(self, widths: dict[str, int] | None = None) -> None:
        self.widths = dict(widths or DEFAULT_WIDTHS)
        self._uw = self.widths["user"]
        self._users: dict[int, InMemoryStateStore] = {}
        self._keys: dict[int, set[str]] = {}  # users saved per partition (what a snapshot holds)
        self._unrouted = InMemoryStateStore({"user": self._uw})
        #: Every namespace but "user": shared by this worker's partitions.
        self._shared_widths = {ns: w for ns, w in self.widths.items() if ns != "user"}
        self.merchants = InMemoryStateStore(self._shared_widths)
        self._shared_keys: dict[str, set[str]] = {ns: set() for ns in self._shared_widths}
        self._route: dict[str, int] = {}
        self._lock = threading.RLock()

    # -- partitions -----------------------------------------------------------------------
    def route(self, keys: Iterable[str], partitions: Iterable[int]) -> None:
        """Learn that each user key lives on the paired partition."""
        self._route.update(zip(keys, partitions, strict=False))

    def attach(self, partition: int, snapshot: PartitionSnapshot | None = None) -> None:
        """Own ``partition``, starting from ``snapshot`` (or from no users)."""
        store = InMemoryStateStore({"user": self._uw})
        keys: set[str] = set()
        if snapshot is not None and snapshot.keys:
            store.save("user", snapshot.keys, snapshot.rows)
            keys = set(snapshot.keys)
            self._route.update(dict.fromkeys(snapshot.keys, partition))
        with self._lock:
            self._users[partition] = store
            self._keys[partition] = keys

    def detach(self, partition: int) -> None:
        """Forget ``partition``'s users (after they were snapshotted, or when it was lost)."""
        with self._lock:
            self._users.pop(partition, None)
            self._keys.pop(partition, None)

    def owned(self) -> list[int]:
        return sorted(self._users)

    def export_merchants(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """Copy of every shared (non-user) record this worker holds, per namespace."""
        with self._lock:
            out = {}
            for ns, known in self._shared_keys.items():
                keys = sorted(known)
                out[ns] = (keys, self.merchants.load(ns, keys))
            return out

    def export(self, partition: int) -> tuple[list[str], np.ndarray]:
        """Copy of ``partition``'s users and records (for its snapshot)."""
        with self._lock:
            keys = sorted(self._keys.get(partition, ()))
            store = self._users.get(partition)
            if store is None or not keys:
                return [], np.zeros((0, self._uw))
            return keys, store.load("user", keys)

    # -- StateStore -------------------------------------------------------------------------
    def _groups(self, keys: Sequence[str]) -> dict[int, list[int]]:
        route, owned = self._route, self._users
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            p = route.get(key, -1)
            groups.setdefault(p if p in owned else -1, []).append(i)
        return groups

    def _store(self, partition: int) -> InMemoryStateStore:
        return self._users.get(partition, self._unrouted) if partition >= 0 else self._unrouted

    def load(self, namespace: str, keys: Sequence[str]) -> np.ndarray:
        if namespace != "user":
            return self.merchants.load(namespace, keys)
        out = np.zeros((len(keys), self._uw))
        with self._lock:
            for p, idx in self._groups(keys).items():
                out[idx] = self._store(p).load("user", [keys[i] for i in idx])
        return out

    def save(self, namespace: str, keys: Sequence[str], rows: np.ndarray) -> None:
        if namespace != "user":
            with self._lock:
                self.merchants.save(namespace, keys, rows)
                self._shared_keys[namespace].update(keys)
            return
        if rows.shape != (len(keys), self._uw):
            raise ValueError(f"rows must have shape ({len(keys)}, {self._uw}), got {rows.shape}")
        with self._lock:
            for p, idx in self._groups(keys).items():
                part = [keys[i] for i in idx]
                self._store(p).save("user", part, rows[idx])
                if p >= 0:
                    self._keys[p].update(part)

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        if namespace != "user":
            return self.merchants.get(namespace, key)
        with self._lock:
            p = self._route.get(key, -1)
            return self._store(p if p in self._users else -1).get("user", key)

    def count(self, namespace: str) -> int:
        if namespace != "user":
            return self.merchants.count(namespace)
        with self._lock:
            return sum(len(k) for k in self._keys.values()) + self._unrouted.count("user")

    def clear(self) -> None:
        """Forget every record (partitions stay owned, now with no users)."""
        with self._lock:
            for p in list(self._users):
                self._users[p] = InMemoryStateStore({"user": self._uw})
                self._keys[p] = set()
            self._unrouted = InMemoryStateStore({"user": self._uw})
            self.merchants = InMemoryStateStore(self._shared_widths)
            self._shared_keys = {ns: set() for ns in self._shared_widths}


class PartitionCheckpoints:
    """The :class:`~riskstream.transport.kafka.PartitionListener` of ``memory://`` workers:
    loads a partition's snapshot on assignment, checkpoints (commit, then snapshot) between
    batches, on revocation and on shutdown (see module docstring)."""

    def __init__(
        self,
        state: PartitionedMemoryState,
        directory: Path,
        every_s: float,
        lock: threading.Lock | None = None,
    ) -> None:
        self.state = state
        self.directory = Path(directory)
        self.every_s = every_s
        #: The pipeline/API lock: a snapshot copies state between batches, never during one.
        self.lock = lock or threading.Lock()
        self.source: Any = None  # the KafkaSource (set once both exist)
        self._dirty: set[int] = set()
        self._last = time.monotonic()
        # One writer thread: snapshots of a partition reach the disk in checkpoint order.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshots")
        self._pending: list[Future[None]] = []
        self._warned_unkeyed = False
        self.directory.mkdir(parents=True, exist_ok=True)
        merchants = self.directory / "merchants.npz"
        if merchants.exists():
            with np.load(merchants, allow_pickle=False) as data:
                # "keys"/"rows": files written before the label records were kept.
                found = {"merchant": (data["keys"], data["rows"])} if "keys" in data else {
                    ns: (data[f"{ns}__keys"], data[f"{ns}__rows"])
                    for ns in state.widths if f"{ns}__keys" in data
                }
            for ns, (keys, rows) in found.items():
                if len(keys) and rows.shape == (len(keys), state.widths[ns]):
                    state.save(ns, keys.tolist(), rows)

    def path(self, partition: int) -> Path:
        return self.directory / f"p{partition:04d}.npz"

    # -- PartitionListener ------------------------------------------------------------------
    def assigned(self, partitions: list[int]) -> dict[int, int]:
        starts: dict[int, int] = {}
        for p in partitions:
            snap = read_snapshot(self.path(p), self.state.widths["user"])
            self.state.attach(p, snap)
            if snap is not None:
                starts[p] = snap.offset
                log.info("partition %d: %d users from snapshot at offset %d",
                         p, len(snap.keys), snap.offset)
        return starts

    def received(self, batch: Batch) -> None:
        keys, parts = [], []
        unkeyed = 0
        for m in batch.meta:
            if m.key is None:
                unkeyed += 1
                continue
            keys.append(m.key.decode("utf-8", "replace"))
            parts.append(m.partition)
        self.state.route(keys, parts)
        self._dirty.update(batch.position or {})
        if unkeyed and not self._warned_unkeyed:
            self._warned_unkeyed = True
            log.warning("%d messages without a key: their users' state is not checkpointed "
                        "(key the input topic by user_id)", unkeyed)

    def revoked(self, partitions: list[int], lost: bool) -> None:
        if not lost:
            # The source committed these partitions' offsets just before calling us. The files
            # must be on disk before we return: the next owner loads them on assignment.
            self.checkpoint(partitions, commit=False, wait=True)
        for p in partitions:
            self.state.detach(p)
            self._dirty.discard(p)

    # -- checkpoints ------------------------------------------------------------------------
    def maybe_checkpoint(self) -> None:
        """Between batches: checkpoint if the period has elapsed (and surface a failed
        background write of the previous one)."""
        if self._pending and all(f.done() for f in self._pending):
            try:
                self.flush()
            except OSError as exc:
                log.error("state snapshot not written (%s); retrying at the next checkpoint", exc)
                self._dirty.update(self.state.owned())
        if time.monotonic() - self._last >= self.every_s:
            self.checkpoint()

    def checkpoint(
        self, partitions: Iterable[int] | None = None, commit: bool = True, wait: bool = False
    ) -> int:
        """Commit processed offsets, then snapshot changed partitions; return how many.

        The state is copied here (between batches, under the lock); the files are written by
        a background thread so the stream does not stall on disk I/O (~30 ms for 20k users),
        in order, one checkpoint after the other. ``wait``: return only once written.
        """
        self._last = time.monotonic()
        owned = set(self.state.owned())
        wanted = self._dirty if partitions is None else set(partitions)
        offsets = self.source.processed_offsets(wanted & owned) if self.source else {}
        if offsets:
            if commit:
                try:
                    self.source.commit_offsets(list(offsets))
                except Exception as exc:  # the snapshot is valid on its own (module docstring)
                    log.warning("offset commit at checkpoint failed (%s)", exc)
            with self.lock:
                exports = {p: self.state.export(p) for p in offsets}
                merchants = self.state.export_merchants()
            self._dirty -= set(offsets)
            self._pending.append(self._writer.submit(self._write, offsets, exports, merchants))
        if wait:
            self.flush()
        return len(offsets)

    def _write(
        self,
        offsets: dict[int, int],
        exports: dict[int, tuple[list[str], np.ndarray]],
        merchants: dict[str, tuple[list[str], np.ndarray]],
    ) -> None:
        for p, (keys, rows) in exports.items():
            write_snapshot(self.path(p), PartitionSnapshot(p, offsets[p], keys, rows))
        # Best effort, last writer wins: merchant state is approximate by design.
        arrays: dict[str, np.ndarray] = {}
        for ns, (keys, rows) in merchants.items():
            arrays[f"{ns}__keys"] = np.array(keys, dtype=np.str_)
            arrays[f"{ns}__rows"] = rows
        _atomic_savez(self.directory / "merchants.npz", **arrays)
        log.debug("checkpointed partitions %s at %s", sorted(offsets), offsets)

    def flush(self) -> None:
        """Wait for every snapshot handed to the writer; raise the first write error."""
        pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        try:
            self.flush()
        finally:
            self._writer.shutdown(wait=True)
