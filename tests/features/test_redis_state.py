"""Redis state store beyond the shared contract: bulk round trips, atomic batches, the
stale-write guard, expiry, layout protection and key isolation (real Redis, DB 15)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from support import kept

from riskstream.errors import StateUnavailable, is_outage
from riskstream.features import FeatureEngine, InMemoryStateStore
from riskstream.features import spec as S
from riskstream.features.redis_state import RedisStateStore, connect

REDIS_URL = os.environ.get("RISKSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def make_store() -> Iterator[Callable[..., RedisStateStore]]:
    """``make_store(**kwargs)``: a store under a fresh ``rs-test-<uuid>:`` prefix, cleared after."""
    def factory(**kwargs: Any) -> RedisStateStore:
        kwargs.setdefault("prefix", f"rs-test-{uuid.uuid4().hex}:")
        store = RedisStateStore.from_url(REDIS_URL, **kwargs)
        if not store.ping():
            pytest.fail(f"Redis is not reachable at {REDIS_URL}: start it with "
                        "`redis-server --daemonize yes --port 6379` (see scripts/test-prereqs.sh)",
                        pytrace=False)
        return keep(store)

    def release(store: RedisStateStore) -> None:
        store.clear()
        store.close()

    with kept(release) as keep:
        yield factory


class CommandCounter:
    """Counts the Redis commands a store sends (wraps its client's ``execute_command``)."""

    def __init__(self, store: RedisStateStore) -> None:
        self.names: list[str] = []
        inner = store.client.execute_command

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.names.append(str(args[0]).upper())
            return inner(*args, **kwargs)

        store.client.execute_command = counted  # type: ignore[method-assign]


def user_rows(n: int, ts: float, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, S.USER_WIDTH))
    rows[:, S.U_LAST_TS] = ts
    rows[:, S.U_LAST_TB] = 0.5
    return rows


def test_a_batch_is_one_round_trip_each_way(make_store: Callable[..., RedisStateStore],
                                            make_stream: Callable[..., pd.DataFrame]) -> None:
    store = make_store()
    frame = make_stream(n=2000, n_users=300, n_merchants=40)
    engine = FeatureEngine()
    engine.compute(frame.iloc[:10], store).update.save(store)  # layout check happens once
    calls = CommandCounter(store)
    batch = engine.compute(frame, store)
    assert calls.names == ["MGET"]  # every namespace at once: not one per event, key or kind
    calls.names.clear()
    batch.update.save(store)
    assert calls.names == ["EVALSHA"]  # users and merchants together, one atomic script
    assert store.count("user") == frame["user_id"].nunique()
    assert store.count("merchant") == frame["merchant_id"].nunique()


def test_stream_state_is_identical_to_in_memory(make_store: Callable[..., RedisStateStore],
                                                make_stream: Callable[..., pd.DataFrame]) -> None:
    frame = make_stream(n=1500, n_users=50, n_merchants=20, seed=4)
    memory, redis_store = InMemoryStateStore(), make_store()
    engine = FeatureEngine()
    for start in range(0, len(frame), 250):
        part = frame.iloc[start : start + 250]
        for store in (memory, redis_store):
            engine.compute(part, store).update.save(store)
    users = sorted(frame["user_id"].unique())
    merchants = sorted(frame["merchant_id"].unique())
    np.testing.assert_array_equal(memory.load("user", users), redis_store.load("user", users))
    np.testing.assert_array_equal(memory.load("merchant", merchants),
                                  redis_store.load("merchant", merchants))


def test_replayed_batch_counts_nothing_twice(make_store: Callable[..., RedisStateStore],
                                             make_stream: Callable[..., pd.DataFrame]) -> None:
    store = make_store()
    frame = make_stream(n=600, n_users=30)
    engine = FeatureEngine()
    first = engine.compute(frame, store)
    first.update.save(store)
    users = sorted(frame["user_id"].unique())
    before = store.load("user", users)
    again = engine.compute(frame, store)  # e.g. a crash before the source commit
    assert not again.update.applied.any()
    again.update.save(store)
    np.testing.assert_array_equal(store.load("user", users), before)
    assert first.update.applied.all()


def test_stale_rows_never_rewind_a_record(make_store: Callable[..., RedisStateStore]) -> None:
    store = make_store()
    new = user_rows(3, ts=2000.0, seed=1)
    store.save("user", ["a", "b", "c"], new)
    old = user_rows(3, ts=1000.0, seed=2)
    old[2, S.U_LAST_TS] = 2000.0
    old[2, S.U_LAST_TB] = 0.9  # same time, later tiebreak: newer, applied
    store.save("user", ["a", "b", "c"], old)
    got = store.load("user", ["a", "b", "c"])
    np.testing.assert_array_equal(got[:2], new[:2])
    np.testing.assert_array_equal(got[2], old[2])
    assert store.stale_rows == 2
    store.save("user", ["a"], new[:1])  # the very same row again: harmless
    np.testing.assert_array_equal(store.load("user", ["a"])[0], new[0])


def test_merchant_guard_follows_event_count(make_store: Callable[..., RedisStateStore]) -> None:
    # Merchants see many users: two events at the same second can come in either tiebreak
    # order, so their guard is (last time, event count), which only grows.
    store = make_store()
    rec = np.zeros((1, S.MERCHANT_WIDTH))
    rec[0, [S.M_N, S.M_LAST_TS, S.M_LAST_TB]] = [5, 1000.0, 0.9]
    store.save("merchant", ["m"], rec)
    later = rec.copy()
    later[0, [S.M_N, S.M_LAST_TB]] = [6, 0.1]
    store.save("merchant", ["m"], later)
    np.testing.assert_array_equal(store.load("merchant", ["m"]), later)
    store.save("merchant", ["m"], rec)  # the older record: refused
    np.testing.assert_array_equal(store.load("merchant", ["m"]), later)


def test_records_expire_after_ttl(make_store: Callable[..., RedisStateStore]) -> None:
    store = make_store(ttl_s=1)
    store.save("user", ["a", "b"], user_rows(2, ts=10.0))
    assert 0 < store.client.pttl(f"{store.prefix}user:a") <= 1000
    assert store.count("user") == 2
    time.sleep(1.3)
    assert store.get("user", "a") is None
    assert store.count("user") == 0
    store.save("user", ["c"], user_rows(1, ts=20.0))  # a save prunes the expiry index
    assert store.client.zcard(f"{store.prefix}idx:user") == 1


def test_ttl_zero_keeps_records(make_store: Callable[..., RedisStateStore]) -> None:
    store = make_store(ttl_s=0)
    store.save("user", ["a"], user_rows(1, ts=10.0))
    assert store.client.ttl(f"{store.prefix}user:a") == -1
    assert store.count("user") == 1


def test_layout_mismatch_is_refused(make_store: Callable[..., RedisStateStore]) -> None:
    prefix = f"rs-test-{uuid.uuid4().hex}:"
    make_store(prefix=prefix).save("user", ["a"], user_rows(1, ts=1.0))
    other = make_store(prefix=prefix, widths={"user": 8, "merchant": S.MERCHANT_WIDTH})
    with pytest.raises(ValueError, match="another layout"):
        other.load("user", ["a"])


def test_prefixes_isolate_and_clear_only_their_keys(
    make_store: Callable[..., RedisStateStore],
) -> None:
    one, two = make_store(), make_store()
    one.save("user", ["a"], user_rows(1, ts=1.0))
    two.save("user", ["a"], user_rows(1, ts=1.0, seed=9))
    one.clear()
    assert one.get("user", "a") is None
    assert two.get("user", "a") is not None and two.count("user") == 1


def test_ping_is_false_when_redis_is_unreachable() -> None:
    store = RedisStateStore(connect("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    assert store.ping() is False


def test_an_unreachable_redis_is_a_typed_outage_and_a_bug_is_not() -> None:
    # The pipeline retries StateUnavailable only: a refused connection must be one, while a
    # caller's mistake (an unknown namespace, a wrong shape) must surface as itself.
    store = RedisStateStore(connect("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    for call in (lambda: store.load("user", ["a"]),
                 lambda: store.save("user", ["a"], user_rows(1, ts=1.0)),
                 lambda: store.get("user", "a"),
                 lambda: store.count("user")):
        with pytest.raises(StateUnavailable) as caught:
            call()
        assert caught.value.component == "state" and is_outage(caught.value)
        assert isinstance(caught.value.__cause__, redis.ConnectionError)
    with pytest.raises(KeyError):
        store.load("no-such-namespace", ["a"])
    with pytest.raises(ValueError):
        store.save("user", ["a", "b"], user_rows(1, ts=1.0))


def test_ids_of_any_bytes_round_trip_in_one_save(
    make_store: Callable[..., RedisStateStore],
) -> None:
    # Ids travel to the save script concatenated, with their byte lengths: multi-byte
    # characters, separators and an empty id must all land on their own key.
    store = make_store()
    ids = ["plain", "ü東京🚀", "a:b c", "", "x" * 300, "tab\tnew\nline", "\\N", "plain2"]
    width = store.widths["user"]
    rows = np.arange(len(ids) * width, dtype=np.float64).reshape(len(ids), width)
    store.save_many([("user", ids, rows)])
    assert np.array_equal(store.load("user", ids), rows)
    assert store.count("user") == len(ids)
    for i, key in enumerate(ids):
        assert np.array_equal(store.get("user", key), rows[i])
    # An older position for one id is refused; the others are written.
    older = rows.copy() + 1.0
    older[1, S.U_LAST_TS] = rows[1, S.U_LAST_TS] - 5.0
    store.save_many([("user", ids, older)])
    assert store.stale_rows == 1
    assert np.array_equal(store.get("user", ids[1]), rows[1])
    assert np.array_equal(store.get("user", ids[0]), older[0])


def test_big_saves_are_packed_without_hiredis_copies() -> None:
    # A few large arguments (a save) go through the Python packer, which sends them as they
    # are; many small ones (an MGET) through hiredis when it is installed.
    from riskstream.features.redis_state import _Packer

    packer = _Packer()
    big = b"x" * 100_000
    out = packer.pack("EVALSHA", "sha", 0, big)
    assert any(chunk is big for chunk in out)
    many = packer.pack("MGET", *[f"k{i}" for i in range(1000)])
    assert b"".join(bytes(c) for c in many).startswith(b"*1001\r\n$4\r\nMGET\r\n")
