"""Feature engine: one micro-batch of validated transactions -> feature matrix + new state.

This is the only place features are computed: the stream, ``/predict``, ``train``, ``score``
and the benchmark all call :meth:`FeatureEngine.compute`. The state change is returned, not
applied, so the caller saves it only once the results are durably written (and a failed batch
can be retried with identical features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import riskstream.features.spec as S
from riskstream.features.kernel import apply_labels, run_kernel
from riskstream.features.state import StateStore

#: Hashes are kept to 52 bits so they are exact in a float64 state slot; 0 means "empty".
_HASH_MASK = np.uint64((1 << 52) - 1)
#: Up to this many values, :func:`hash_column` hashes each one rather than each distinct one
#: (measured: equal cost near 1,000 rows of high-cardinality ids; below, no factorize wins).
_HASH_DIRECT_MAX = 512


def hash_column(values: pd.Series | np.ndarray) -> np.ndarray:
    """Stable 52-bit hashes of text values as float64; empty/missing -> 0.

    >>> h = hash_column(pd.Series(["a", "", "a"])); bool(h[0] == h[2] and h[1] == 0)
    True
    """
    # pandas' siphash of each value (the hashes live in stored user state: they must not
    # change). Small batches hash every value: factorizing first costs a fixed ~90 us per
    # column, which is most of the time on the few dozen rows of a batch at a low rate.
    if len(values) <= _HASH_DIRECT_MAX:
        arr = (values.to_numpy(dtype=object) if isinstance(values, pd.Series)
               else np.asarray(values, dtype=object))
        missing = pd.isna(arr)
        return _hash52(np.where(missing, "", arr) if missing.any() else arr)
    # Larger ones hash each distinct value, spread by the factorize codes: the same hashes as
    # pd.util.hash_array(categorize=True), which factorizes too, but through an object array
    # and pandas' own hash table -- 2.5-4x slower on Arrow-backed text, where pd.factorize
    # runs in Arrow.
    codes, uniques = pd.factorize(values)  # missing: code -1
    table = np.append(_hash52(np.asarray(uniques, dtype=object)), 0.0)  # index -1: missing -> 0
    return table[codes]


def _hash52(text: np.ndarray) -> np.ndarray:
    """52-bit siphash of each value of an object array of text as float64; "" -> 0."""
    out = ((pd.util.hash_array(text, categorize=False) & _HASH_MASK) | np.uint64(1)).astype(
        np.float64
    )
    out[text == ""] = 0.0
    return out


_EMPTY_F = np.zeros(0)
_EMPTY_I = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class LabelChanges:
    """Outcome-label changes to fold into the label-aware state, sorted by ``at``.

    Each change names the labelled transaction (its user, merchant and time) and what it adds:
    ``fraud`` +1 for a new fraud, -1 for a withdrawn one, 0 otherwise; ``counted`` +1 for a
    transaction labelled for the first time. A change applies to events strictly later than
    its ``at`` (``-inf``: before the whole batch it is given with).

    >>> ch = LabelChanges.from_records([{"transaction_id": "t1", "label": 1, "applied": None,
    ...     "user_id": "u", "merchant_id": "m", "timestamp": 10.0, "reported_at": 20.0}])
    >>> ch.fraud.tolist(), ch.counted.tolist(), ch.at.tolist()
    ([1.0], [1.0], [20.0])
    """

    transaction_ids: np.ndarray
    labels: np.ndarray  # the label values applied (what the store marks as applied)
    user_id: np.ndarray
    merchant_id: np.ndarray
    tx_ts: np.ndarray
    fraud: np.ndarray
    counted: np.ndarray
    at: np.ndarray

    def __len__(self) -> int:
        return len(self.transaction_ids)

    @classmethod
    def build(
        cls,
        transaction_ids: np.ndarray,
        labels: np.ndarray,
        applied: np.ndarray,
        user_id: np.ndarray,
        merchant_id: np.ndarray,
        tx_ts: np.ndarray,
        at: np.ndarray,
    ) -> LabelChanges:
        """From new label values and what was applied before (NaN: nothing yet)."""
        labels = np.asarray(labels, dtype=np.float64)
        applied = np.asarray(applied, dtype=np.float64)
        was = np.isnan(applied)
        # Never before the transaction itself: a label known "early" (reported before its
        # transaction arrived) must not change that transaction's own score.
        at = np.maximum(np.asarray(at, dtype=np.float64), np.asarray(tx_ts, dtype=np.float64))
        order = np.argsort(at, kind="stable")
        return cls(
            np.asarray(transaction_ids, dtype=object)[order],
            labels[order].astype(np.int8),
            np.asarray(user_id, dtype=object)[order],
            np.asarray(merchant_id, dtype=object)[order],
            np.asarray(tx_ts, dtype=np.float64)[order],
            (labels - np.where(was, 0.0, applied))[order],
            was.astype(np.float64)[order],
            at[order],
        )

    @classmethod
    def from_records(cls, rows: list[dict], at: float | None = None) -> LabelChanges:
        """From store rows (``ResultsStore.labels_to_apply``); ``at`` overrides every row's
        ``reported_at`` (online: ``-inf``, the changes come before the next batch)."""
        get = lambda k: [r[k] for r in rows]  # noqa: E731
        applied = [np.nan if r["applied"] is None else r["applied"] for r in rows]
        when = get("reported_at") if at is None else [at] * len(rows)
        return cls.build(
            np.array(get("transaction_id"), dtype=object),
            np.array(get("label")),
            np.array(applied, dtype=np.float64),
            np.array([r["user_id"] for r in rows], dtype=object),
            np.array([r["merchant_id"] or "" for r in rows], dtype=object),
            np.array(get("timestamp"), dtype=np.float64),
            np.array(when, dtype=np.float64),
        )

    def take(self, rows: np.ndarray | slice) -> LabelChanges:
        return LabelChanges(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: list[LabelChanges]) -> LabelChanges:
        """Several change sets as one, re-sorted by ``at``."""
        if len(parts) == 1:
            return parts[0]
        joined = cls(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in cls.__dataclass_fields__))
        return joined.take(np.argsort(joined.at, kind="stable"))

    def applied_pairs(self) -> list[tuple[str, int]]:
        """``(transaction_id, label)`` of each change, to mark as applied."""
        return list(zip(self.transaction_ids.tolist(), self.labels.tolist(), strict=True))


@dataclass
class StateUpdate:
    """State rows to save once the batch's results are durable."""

    user_keys: list[str]
    user_rows: np.ndarray
    merchant_keys: list[str]
    merchant_rows: np.ndarray
    applied: np.ndarray  # per event (input order): its update was applied (not a replay)
    user_label_rows: np.ndarray | None = None
    merchant_label_rows: np.ndarray | None = None
    #: The label changes folded into these rows (marked applied once they are saved).
    labels: LabelChanges | None = None
    #: Keys of the label records when they are not the batch's users / merchants (a change
    #: of labels alone, :meth:`FeatureEngine.fold_labels`).
    user_label_keys: list[str] | None = None
    merchant_label_keys: list[str] | None = None

    def groups(self) -> list[tuple[str, list[str], np.ndarray]]:
        """The change as ``StateStore.save_many`` takes it: (namespace, keys, rows) with keys."""
        groups: list[tuple[str, list[str], np.ndarray | None]] = [
            ("user", self.user_keys, self.user_rows),
            ("merchant", self.merchant_keys, self.merchant_rows),
            ("user_label", self.user_label_keys or self.user_keys, self.user_label_rows),
            ("merchant_label", self.merchant_label_keys or self.merchant_keys,
             self.merchant_label_rows),
        ]
        return [(ns, keys, rows) for ns, keys, rows in groups if keys and rows is not None]

    def save(self, store: StateStore) -> None:
        """Save users and merchants (and their label records) as one unit (atomic where the
        backend can be)."""
        updates = self.groups()
        if updates:
            store.save_many(updates)


@dataclass
class FeatureBatch:
    features: np.ndarray  # (n, len(FEATURES)) in input order
    update: StateUpdate
    sequences: np.ndarray | None = None  # (n, len(SEQUENCE)): each user's recent steps


class FeatureEngine:
    """Computes features for a batch against a :class:`StateStore` (see module docstring)."""

    def __init__(self, spec: S.FeatureSpec | None = None) -> None:
        self.spec = spec or S.FeatureSpec()
        self._params = self.spec.params.as_array()

    def compute(
        self,
        batch: pd.DataFrame,
        store: StateStore,
        apply: bool = True,
        labels: LabelChanges | None = None,
    ) -> FeatureBatch:
        """Features for ``batch`` (canonical, validated columns), in input order.

        Events are processed in ``(timestamp, transaction_id hash)`` order; ``labels`` are
        folded in between them, each before the first event later than its ``at``. With
        ``apply=False`` (dry runs) the returned update changes nothing and labels are ignored.
        """
        if not apply or (labels is not None and not len(labels)):
            labels = None
        n = len(batch)
        ts = batch["timestamp"].to_numpy(dtype=np.float64)
        tiebreak = hash_column(batch["transaction_id"])
        order = np.lexsort((tiebreak, ts))
        sorted_ = bool((order == np.arange(n)).all())

        def col(values: np.ndarray) -> np.ndarray:
            return values if sorted_ else values[order]

        user_col = batch["user_id"].to_numpy(dtype=object)
        merchant = batch["merchant_id"].to_numpy(dtype=object)
        if labels is not None:  # the labels' entities are loaded (and saved) with the batch's
            user_col = np.concatenate([user_col, labels.user_id])
            merchant_all = np.concatenate([merchant, labels.merchant_id])
        else:
            merchant_all = merchant
        user_codes, user_keys = pd.factorize(user_col)
        mer_codes, mer_keys = pd.factorize(merchant_all)
        mer_empty = np.flatnonzero(mer_keys == "")
        if mer_empty.size:  # no merchant: no merchant state
            mer_codes = np.where(mer_codes == mer_empty[0], -1, mer_codes)
        user_keys_l = [str(k) for k in user_keys]
        mer_keys_l = [str(k) for k in mer_keys]
        users, merchants, user_lab, mer_lab = store.load_many([
            ("user", user_keys_l), ("merchant", mer_keys_l),
            ("user_label", user_keys_l), ("merchant_label", mer_keys_l),
        ])
        if labels is not None:
            lab_user = user_codes[n:].astype(np.int64)
            lab_mer = mer_codes[n:].astype(np.int64)
            user_codes, mer_codes = user_codes[:n], mer_codes[:n]
            lab = (labels.at, lab_user, lab_mer, labels.tx_ts, labels.fraud, labels.counted)
        else:
            lab = (_EMPTY_F, _EMPTY_I, _EMPTY_I, _EMPTY_F, _EMPTY_F, _EMPTY_F)
        hour = ((ts // 3600.0) % 24).astype(np.int64)
        out = np.empty((n, len(S.FEATURES)))
        seq = np.empty((n, len(S.SEQUENCE)))
        applied = np.zeros(n, dtype=np.bool_)
        run_kernel(
            col(ts),
            col(tiebreak),
            col(batch["amount"].to_numpy(dtype=np.float64)),
            col(batch["lat"].to_numpy(dtype=np.float64)),
            col(batch["lon"].to_numpy(dtype=np.float64)),
            col(hour),
            col(hash_column(batch["device_id"])),
            col(hash_column(merchant)),
            col(hash_column(batch["merchant_category"])),
            col(hash_column(batch["country"])),
            col(user_codes.astype(np.int64)),
            col(mer_codes.astype(np.int64)),
            users,
            merchants,
            self._params,
            apply,
            out,
            applied,
            seq,
            user_lab,
            mer_lab,
            *lab,
        )
        if not sorted_:
            inv = np.empty(n, dtype=np.int64)
            inv[order] = np.arange(n)
            out = out[inv]
            seq = seq[inv]
            applied = applied[inv]
        if not apply:
            user_keys_l, mer_keys_l = [], []
            users, user_lab = users[:0], user_lab[:0]
            merchants, mer_lab = merchants[:0], mer_lab[:0]
        elif mer_empty.size:
            keep = np.arange(len(mer_keys_l)) != mer_empty[0]
            merchants, mer_lab = merchants[keep], mer_lab[keep]
            mer_keys_l = [k for k, ok in zip(mer_keys_l, keep, strict=True) if ok]
        update = StateUpdate(
            user_keys_l, users, mer_keys_l, merchants, applied, user_lab, mer_lab, labels
        )
        return FeatureBatch(out, update, seq)

    def fold_labels(self, labels: LabelChanges, store: StateStore) -> StateUpdate:
        """The state change of ``labels`` alone (no transactions), e.g. labels imported while
        no event flows: the label records of their users and merchants, updated."""
        user_codes, user_keys = pd.factorize(labels.user_id)
        mer_codes, mer_keys = pd.factorize(labels.merchant_id)
        mer_empty = np.flatnonzero(mer_keys == "")
        if mer_empty.size:
            mer_codes = np.where(mer_codes == mer_empty[0], -1, mer_codes)
        user_keys_l = [str(k) for k in user_keys]
        mer_keys_l = [str(k) for k in mer_keys]
        user_lab, mer_lab = store.load_many(
            [("user_label", user_keys_l), ("merchant_label", mer_keys_l)]
        )
        apply_labels(user_lab, mer_lab, user_codes.astype(np.int64), mer_codes.astype(np.int64),
                     labels.tx_ts, labels.fraud, labels.counted, self._params, 0, len(labels))
        if mer_empty.size:
            keep = np.arange(len(mer_keys_l)) != mer_empty[0]
            mer_lab = mer_lab[keep]
            mer_keys_l = [k for k, ok in zip(mer_keys_l, keep, strict=True) if ok]
        return StateUpdate(
            [], np.zeros((0, S.USER_WIDTH)), [], np.zeros((0, S.MERCHANT_WIDTH)),
            np.zeros(0, dtype=bool), user_lab, mer_lab, labels, user_keys_l, mer_keys_l,
        )
