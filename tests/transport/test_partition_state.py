"""Per-partition in-memory state (no broker): the StateStore contract, routing, snapshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskstream.features import FeatureEngine, InMemoryStateStore
from riskstream.features import spec as S
from riskstream.transport.base import Batch
from riskstream.transport.kafka import MessageMeta
from riskstream.transport.kafka.partition_state import (
    PartitionCheckpoints,
    PartitionedMemoryState,
    PartitionSnapshot,
    read_snapshot,
    write_snapshot,
)

UW = S.USER_WIDTH


def rows(n: int, value: float) -> np.ndarray:
    return np.full((n, UW), value)


def test_store_contract_routed_and_unrouted() -> None:
    state = PartitionedMemoryState()
    state.attach(0)
    state.attach(1)
    state.route(["a", "b"], [0, 1])
    assert state.load("user", ["a", "x"]).tolist() == np.zeros((2, UW)).tolist()
    state.save("user", ["a", "b", "x"], np.stack([rows(1, 1)[0], rows(1, 2)[0], rows(1, 3)[0]]))
    loaded = state.load("user", ["x", "b", "a"])
    assert loaded[:, 0].tolist() == [3.0, 2.0, 1.0]
    loaded[:] = 99  # a copy: changing it changes nothing stored
    assert state.get("user", "a")[0] == 1.0  # type: ignore[index]
    assert state.get("user", "nobody") is None
    assert state.count("user") == 3
    with pytest.raises(ValueError):
        state.save("user", ["a"], rows(2, 0))
    state.save("merchant", ["m"], np.ones((1, S.MERCHANT_WIDTH)))
    assert state.count("merchant") == 1 and state.get("merchant", "m")[0] == 1.0  # type: ignore[index]
    state.clear()
    assert state.count("user") == 0 and state.count("merchant") == 0


def test_users_follow_their_partition() -> None:
    state = PartitionedMemoryState()
    for p in (0, 1):
        state.attach(p)
    state.route(["a", "b", "c"], [0, 1, 1])
    state.save("user", ["a", "b", "c"], np.stack([rows(1, v)[0] for v in (1, 2, 3)]))
    keys, exported = state.export(1)
    assert keys == ["b", "c"] and exported[:, 0].tolist() == [2.0, 3.0]
    state.detach(1)  # revoked: its users are gone from this worker
    assert state.get("user", "b") is None and state.count("user") == 1
    state.attach(1, PartitionSnapshot(1, 42, keys, exported))  # and come back from a snapshot
    assert state.get("user", "c")[0] == 3.0  # type: ignore[index]


def test_snapshot_round_trip_is_atomic_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "p0003.npz"
    snap = PartitionSnapshot(3, 1234, ["u1", "u2"], np.arange(2 * UW, dtype=float).reshape(2, UW))
    write_snapshot(path, snap)
    again = read_snapshot(path, UW)
    assert again is not None
    assert (again.partition, again.offset, again.keys) == (3, 1234, ["u1", "u2"])
    np.testing.assert_array_equal(again.rows, snap.rows)
    assert [p.name for p in tmp_path.iterdir()] == ["p0003.npz"]  # no temporary left behind
    assert read_snapshot(tmp_path / "missing.npz", UW) is None
    with pytest.raises(ValueError, match="width"):
        read_snapshot(path, UW + 1)


class FakeSource:
    """What PartitionCheckpoints needs from a KafkaSource."""

    def __init__(self) -> None:
        self.processed: dict[int, int] = {}
        self.commits: list[list[int]] = []

    def processed_offsets(self, partitions: Any = None) -> dict[int, int]:
        wanted = set(self.processed) if partitions is None else set(partitions)
        return {p: o for p, o in self.processed.items() if p in wanted}

    def commit_offsets(self, partitions: Any = None, asynchronous: bool = False) -> bool:
        self.commits.append(sorted(partitions or []))
        return True


def batch_of(frame: pd.DataFrame, partition_of: Callable[[str], int], start: int) -> Batch:
    meta = [
        MessageMeta("tx", partition_of(u), start + i, 0, u.encode())
        for i, u in enumerate(frame["user_id"])
    ]
    position: dict[int, int] = {}
    for m in meta:
        position[m.partition] = m.offset + 1
    return Batch(frame=frame, meta=meta, position=position)


def test_checkpoint_then_reassign_replays_to_the_same_state(
    tmp_path: Path, make_stream: Callable[..., pd.DataFrame]
) -> None:
    """Worker A checkpoints mid-stream and 'crashes'; B loads the snapshots, replays from their
    offset (events A had applied after the checkpoint come again) and ends exactly where one
    uninterrupted run over the stream ends."""
    frame = make_stream(n=1200, n_users=30)
    users = sorted(frame["user_id"].unique())
    part = {u: i % 3 for i, u in enumerate(users)}
    engine = FeatureEngine()

    def run(state: PartitionedMemoryState, src: FakeSource, cp: PartitionCheckpoints,
            chunk: pd.DataFrame, offset: int) -> None:
        batch = batch_of(chunk, part.__getitem__, offset)
        cp.received(batch)
        engine.compute(chunk, state).update.save(state)
        src.processed.update(batch.position)

    # A: offsets are global here (one counter), which is all the snapshot logic relies on.
    a_state, a_src = PartitionedMemoryState(), FakeSource()
    a = PartitionCheckpoints(a_state, tmp_path / "snap", every_s=3600)
    a.source = a_src
    assert a.assigned([0, 1, 2]) == {}
    run(a_state, a_src, a, frame.iloc[:500], 0)
    assert a.checkpoint(wait=True) == 3 and a_src.commits == [[0, 1, 2]]
    run(a_state, a_src, a, frame.iloc[500:800], 500)  # applied, never checkpointed: lost

    b_state, b_src = PartitionedMemoryState(), FakeSource()
    b = PartitionCheckpoints(b_state, tmp_path / "snap", every_s=3600)
    b.source = b_src
    starts = b.assigned([0, 1, 2])
    # Every partition resumes right after its last event before the checkpoint (offsets are
    # one global counter in this fake, so they differ by partition).
    assert len(starts) == 3 and max(starts.values()) == 500
    run(b_state, b_src, b, frame.iloc[500:], 500)

    clean = InMemoryStateStore()
    engine.compute(frame, clean).update.save(clean)
    np.testing.assert_array_equal(b_state.load("user", users), clean.load("user", users))
    b.revoked([1], lost=False)  # revocation snapshots and drops the partition
    assert read_snapshot(b.path(1), UW).offset == b_src.processed[1]  # type: ignore[union-attr]
    assert 1 not in b_state.owned()
