"""The StateStore contract, run against every backend (add one entry to BACKENDS)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from riskstream.features import InMemoryStateStore, StateStore
from riskstream.features import spec as S

WIDTHS = {"user": S.USER_WIDTH, "merchant": S.MERCHANT_WIDTH}
#: A real Redis (``make test`` checks it is up); tests write under their own key prefix.
REDIS_URL = os.environ.get("RISKSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_store(widths: dict[str, int], _capacity: int, _tmp: Path) -> StateStore:
    """A Redis store under a fresh ``rs-test-<uuid>:`` prefix (cleared by the fixture)."""
    from riskstream.features.redis_state import RedisStateStore

    store = RedisStateStore.from_url(REDIS_URL, widths=widths,
                                     prefix=f"rs-test-{uuid.uuid4().hex}:")
    if not store.ping():
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL}. Start one: redis-server --daemonize yes "
            "--port 6379 --save '' --appendonly no (or docker compose -f "
            "deploy/docker-compose.yml up -d redis); RISKSTREAM_TEST_REDIS_URL overrides.",
            pytrace=False,
        )
    return store


#: name -> factory(widths, initial_capacity, tmp_path). A new backend is one more entry.
BACKENDS: dict[str, Callable[[dict[str, int], int, Path], StateStore]] = {
    "memory": lambda widths, capacity, _tmp: InMemoryStateStore(widths, initial_capacity=capacity),
    "redis": redis_store,
}


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request: pytest.FixtureRequest,
               tmp_path: Path) -> Iterator[Callable[..., StateStore]]:
    created: list[StateStore] = []

    def factory(widths: dict[str, int] | None = None, initial_capacity: int = 1024) -> StateStore:
        store = BACKENDS[request.param](dict(widths or WIDTHS), initial_capacity, tmp_path)
        created.append(store)
        return store

    yield factory
    for store in created:
        store.clear()  # a shared backend (Redis) must not keep test keys
        store.close()


@pytest.fixture
def state_store(make_store: Callable[..., StateStore]) -> StateStore:
    return make_store()


def rows_for(n: int, width: int, seed: int = 0) -> np.ndarray:
    """Random records whose replay-guard position (slot 1, the last event time in both
    layouts) grows with ``seed``: a later seed is a later state, as in a real stream."""
    rows = np.random.default_rng(seed).normal(size=(n, width))
    rows[:, 1] = 1_700_000_000.0 + seed
    return rows


def test_widths(state_store: StateStore) -> None:
    assert state_store.widths == WIDTHS
    assert state_store.ping() is True


@pytest.mark.parametrize("namespace", ["user", "merchant"])
def test_unknown_keys_load_as_zeros(state_store: StateStore, namespace: str) -> None:
    rows = state_store.load(namespace, ["nobody", "nobody-else", "nobody"])
    assert rows.shape == (3, WIDTHS[namespace])
    assert rows.dtype == np.float64
    assert not rows.any()
    assert state_store.count(namespace) == 0  # loading creates nothing


def test_load_no_keys(state_store: StateStore) -> None:
    assert state_store.load("user", []).shape == (0, S.USER_WIDTH)


def test_save_load_round_trip(state_store: StateStore) -> None:
    keys = ["a", "b", "c"]
    rows = rows_for(3, S.USER_WIDTH)
    state_store.save("user", keys, rows)
    np.testing.assert_array_equal(state_store.load("user", keys), rows)
    # Any order, repeats and unknown keys mixed in.
    got = state_store.load("user", ["c", "x", "a", "c"])
    np.testing.assert_array_equal(got[0], rows[2])
    assert not got[1].any()
    np.testing.assert_array_equal(got[2], rows[0])
    np.testing.assert_array_equal(got[3], rows[2])


def test_save_overwrites(state_store: StateStore) -> None:
    state_store.save("user", ["a", "b"], rows_for(2, S.USER_WIDTH, seed=1))
    new = rows_for(1, S.USER_WIDTH, seed=2)
    state_store.save("user", ["b"], new)
    np.testing.assert_array_equal(state_store.load("user", ["b"])[0], new[0])
    assert state_store.count("user") == 2


def test_load_returns_a_copy(state_store: StateStore) -> None:
    rows = rows_for(2, S.USER_WIDTH)
    state_store.save("user", ["a", "b"], rows)
    loaded = state_store.load("user", ["a", "b"])
    loaded[:] = -1.0
    np.testing.assert_array_equal(state_store.load("user", ["a", "b"]), rows)
    got = state_store.get("user", "a")
    assert got is not None
    got[:] = 7.0
    np.testing.assert_array_equal(state_store.load("user", ["a"])[0], rows[0])


def test_save_does_not_keep_a_reference(state_store: StateStore) -> None:
    rows = rows_for(1, S.USER_WIDTH)
    expected = rows.copy()
    state_store.save("user", ["a"], rows)
    rows[:] = 0.0
    np.testing.assert_array_equal(state_store.load("user", ["a"]), expected)


@pytest.mark.parametrize(
    ("keys", "shape"),
    [
        (["a", "b"], (2, S.USER_WIDTH + 1)),
        (["a", "b"], (3, S.USER_WIDTH)),
        (["a"], (S.USER_WIDTH,)),
        (["a"], (1, S.MERCHANT_WIDTH)),
    ],
)
def test_save_shape_mismatch_raises(state_store: StateStore, keys: list[str],
                                    shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        state_store.save("user", keys, np.ones(shape))
    assert state_store.count("user") == 0  # all or nothing


def test_get_and_count(state_store: StateStore) -> None:
    assert state_store.get("user", "a") is None
    assert state_store.count("user") == 0
    rows = rows_for(3, S.USER_WIDTH)
    state_store.save("user", ["a", "b", "c"], rows)
    got = state_store.get("user", "b")
    assert got is not None
    assert got.shape == (S.USER_WIDTH,)
    np.testing.assert_array_equal(got, rows[1])
    assert state_store.get("user", "zzz") is None
    assert state_store.count("user") == 3


def test_namespaces_are_independent(state_store: StateStore) -> None:
    u = rows_for(1, S.USER_WIDTH, seed=3)
    m = rows_for(1, S.MERCHANT_WIDTH, seed=4)
    state_store.save("user", ["same"], u)
    assert state_store.get("merchant", "same") is None
    assert state_store.count("merchant") == 0
    state_store.save("merchant", ["same"], m)
    np.testing.assert_array_equal(state_store.load("user", ["same"]), u)
    np.testing.assert_array_equal(state_store.load("merchant", ["same"]), m)
    assert (state_store.count("user"), state_store.count("merchant")) == (1, 1)


def test_growth_beyond_initial_capacity(make_store: Callable[..., StateStore]) -> None:
    store = make_store(initial_capacity=16)
    keys = [f"user-{i}" for i in range(5000)]
    rows = rows_for(5000, S.USER_WIDTH, seed=5)
    # In uneven batches, so growth happens both inside one save and across saves.
    for start, stop in ((0, 10), (10, 17), (17, 1000), (1000, 5000)):
        store.save("user", keys[start:stop], rows[start:stop])
    assert store.count("user") == 5000
    np.testing.assert_array_equal(store.load("user", keys), rows)
    np.testing.assert_array_equal(store.load("user", keys[::-1]), rows[::-1])
    got = store.get("user", "user-4999")
    assert got is not None
    np.testing.assert_array_equal(got, rows[4999])


# --- in-memory only: snapshots ------------------------------------------------------------------
def test_in_memory_snapshot_restore_round_trip(tmp_path: Path) -> None:
    store = InMemoryStateStore(initial_capacity=4)
    users = [f"u{i}" for i in range(10)]
    u_rows = rows_for(10, S.USER_WIDTH, seed=6)
    m_rows = rows_for(2, S.MERCHANT_WIDTH, seed=7)
    store.save("user", users, u_rows)
    store.save("merchant", ["m0", "m1"], m_rows)
    path = tmp_path / "state.npz"
    store.snapshot(path)
    assert path.exists()
    assert not path.with_suffix(".tmp.npz").exists()
    with np.load(path, allow_pickle=False) as data:  # no pickles in a snapshot
        assert set(data.files) == {f"{ns}__{part}" for ns in S.WIDTHS
                                   for part in ("keys", "rows")}
    back = InMemoryStateStore.restore(path)
    assert (back.count("user"), back.count("merchant")) == (10, 2)
    np.testing.assert_array_equal(back.load("user", users), u_rows)
    np.testing.assert_array_equal(back.load("merchant", ["m0", "m1"]), m_rows)
    assert back.get("user", "nobody") is None


def test_in_memory_snapshot_of_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    InMemoryStateStore().snapshot(path)
    back = InMemoryStateStore.restore(path)
    assert (back.count("user"), back.count("merchant")) == (0, 0)


def test_save_many_checks_every_shape_before_writing(state_store: StateStore) -> None:
    users = rows_for(2, S.USER_WIDTH)
    with pytest.raises(ValueError, match="shape"):
        state_store.save_many([("user", ["a", "b"], users),
                               ("merchant", ["m"], np.ones((1, S.USER_WIDTH)))])
    assert state_store.count("user") == 0  # all or nothing
    merchants = rows_for(1, S.MERCHANT_WIDTH, seed=1)
    state_store.save_many([("user", ["a", "b"], users), ("merchant", ["m"], merchants)])
    np.testing.assert_array_equal(state_store.load("user", ["a", "b"]), users)
    np.testing.assert_array_equal(state_store.load("merchant", ["m"]), merchants)


def test_clear_removes_every_record(state_store: StateStore) -> None:
    state_store.save("user", ["a", "b"], rows_for(2, S.USER_WIDTH))
    state_store.save("merchant", ["m"], rows_for(1, S.MERCHANT_WIDTH))
    state_store.clear()
    assert (state_store.count("user"), state_store.count("merchant")) == (0, 0)
    assert state_store.get("user", "a") is None
    assert not state_store.load("user", ["a", "b"]).any()
    state_store.save("user", ["c"], rows_for(1, S.USER_WIDTH))  # usable afterwards
    assert state_store.count("user") == 1
