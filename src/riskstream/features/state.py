"""Per-entity state stores: fixed-width float64 records, read and written a batch at a time.

Contract (every backend passes ``tests/features/test_state_contract.py``):

* ``load(namespace, keys)`` returns a fresh ``(len(keys), width)`` array: the stored record of
  each key, or zeros for a key never seen. It is a *copy*: the caller may change it freely.
* ``save(namespace, keys, rows)`` stores those records, all or nothing for the batch.
* ``get(namespace, key)`` is one record or ``None``; ``count(namespace)`` how many exist.
* Namespaces are ``"user"``, ``"merchant"`` and their label-aware records ``"user_label"``
  and ``"merchant_label"`` (:data:`~riskstream.features.spec.WIDTHS`); each has one fixed
  width.
* Records carry their own replay guard (the last applied event position), so saving the
  result of a batch twice is harmless.
* A backend that cannot be reached raises :class:`~riskstream.errors.StateUnavailable` (the
  pipeline retries it); any other error is a bug. Optional capabilities have defaults here:
  ``thread_safe`` (False), ``load_many``, ``save_many``, ``clear``, ``ping``, ``close``.

The in-memory store keeps every namespace in one preallocated array that doubles when full and
a dict from key to row; a batch is one fancy-index gather and one scatter.

>>> store = InMemoryStateStore({"user": 3})
>>> rows = store.load("user", ["a", "b"]); rows[:, 0] = [1.0, 2.0]
>>> store.save("user", ["a", "b"], rows)
>>> store.get("user", "b").tolist(), store.count("user")
([2.0, 0.0, 0.0], 2)
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import riskstream.features.spec as S

DEFAULT_WIDTHS: dict[str, int] = dict(S.WIDTHS)


class StateStore(ABC):
    """Abstract per-entity state store (see module docstring for the contract)."""

    widths: dict[str, int]
    #: Safe for concurrent calls from several threads (and shared by processes): the pipeline
    #: overlaps a batch's writes with the next batch's scoring only over such a store.
    thread_safe: bool = False

    @abstractmethod
    def load(self, namespace: str, keys: Sequence[str]) -> np.ndarray: ...

    @abstractmethod
    def save(self, namespace: str, keys: Sequence[str], rows: np.ndarray) -> None: ...

    @abstractmethod
    def get(self, namespace: str, key: str) -> np.ndarray | None: ...

    @abstractmethod
    def count(self, namespace: str) -> int: ...

    def load_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
        """:meth:`load` of each ``(namespace, keys)``; backends with a round trip per call
        (Redis) answer them all in one."""
        return [self.load(namespace, keys) for namespace, keys in requests]

    def save_many(self, updates: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> None:
        """Save several namespaces' rows (one batch's user *and* merchant change) as one unit.

        Every shape is checked before anything is written. The default saves namespace by
        namespace; backends shared between processes (Redis) apply the whole call atomically,
        so a crash never leaves a batch's users saved and its merchants not.
        """
        for namespace, keys, rows in updates:
            _check_shape(self, namespace, keys, rows)
        for namespace, keys, rows in updates:
            self.save(namespace, keys, rows)

    def clear(self) -> None:
        """Delete every record of every namespace (``riskstream profiles rebuild``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be cleared")

    def ping(self) -> bool:
        """True when the backend is reachable."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""


def _check_shape(store: StateStore, namespace: str, keys: Sequence[str], rows: np.ndarray) -> None:
    """``ValueError`` unless ``rows`` is ``(len(keys), width)`` for a known namespace."""
    width = store.widths[namespace]
    if rows.shape != (len(keys), width):
        raise ValueError(f"rows must have shape ({len(keys)}, {width}), got {rows.shape}")


class InMemoryStateStore(StateStore):
    """Process-local store; optionally snapshotted to a ``.npz`` file (see :meth:`snapshot`)."""

    def __init__(self, widths: dict[str, int] | None = None, initial_capacity: int = 1024) -> None:
        self.widths = dict(widths or DEFAULT_WIDTHS)
        self._rows: dict[str, dict[str, int]] = {ns: {} for ns in self.widths}
        self._data: dict[str, np.ndarray] = {
            ns: np.zeros((initial_capacity, w)) for ns, w in self.widths.items()
        }
        self._lock = threading.Lock()

    def _slots(self, namespace: str, keys: Sequence[str], create: bool) -> np.ndarray:
        index = self._rows[namespace]
        slots = np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        if create and (missing := np.flatnonzero(slots < 0)).size:
            for j in missing:
                key = keys[j]
                slot = index.get(key)
                if slot is None:
                    slot = index[key] = len(index)
                slots[j] = slot
            data = self._data[namespace]
            if len(index) > data.shape[0]:
                grown = np.zeros((max(2 * data.shape[0], len(index)), data.shape[1]))
                grown[: data.shape[0]] = data
                self._data[namespace] = grown
        return slots

    def load(self, namespace: str, keys: Sequence[str]) -> np.ndarray:
        with self._lock:
            slots = self._slots(namespace, keys, create=False)
            out = np.zeros((len(keys), self.widths[namespace]))
            known = slots >= 0
            out[known] = self._data[namespace][slots[known]]
            return out

    def save(self, namespace: str, keys: Sequence[str], rows: np.ndarray) -> None:
        _check_shape(self, namespace, keys, rows)
        with self._lock:
            slots = self._slots(namespace, keys, create=True)
            self._data[namespace][slots] = rows

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        with self._lock:
            slot = self._rows[namespace].get(key)
            return None if slot is None else self._data[namespace][slot].copy()

    def count(self, namespace: str) -> int:
        return len(self._rows[namespace])

    def clear(self) -> None:
        with self._lock:
            for ns in self.widths:
                self._rows[ns] = {}
                self._data[ns][:] = 0.0

    # -- persistence for the embedded run: state survives a restart ----------------------------
    def snapshot(self, path: str | Path) -> None:
        """Write every record to ``path`` atomically (write to a temp file, then rename)."""
        path = Path(path)
        tmp = path.with_suffix(".tmp.npz")
        with self._lock:
            arrays: dict[str, np.ndarray] = {}
            for ns, index in self._rows.items():
                arrays[f"{ns}__keys"] = np.array(list(index.keys()), dtype=np.str_)
                arrays[f"{ns}__rows"] = self._data[ns][: len(index)]
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def restore(cls, path: str | Path, widths: dict[str, int] | None = None) -> InMemoryStateStore:
        store = cls(widths)
        with np.load(Path(path), allow_pickle=False) as data:
            for ns in store.widths:
                if f"{ns}__keys" in data:
                    keys = data[f"{ns}__keys"].tolist()
                    if keys:
                        store.save(ns, keys, data[f"{ns}__rows"])
        return store
