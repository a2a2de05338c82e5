"""Per-user and per-merchant behavioural features, computed online in O(1) per event.

Contract: :class:`FeatureEngine` turns a validated micro-batch into a ``(n, len(FEATURES))``
matrix (columns named by :data:`FEATURES`) using state from a :class:`StateStore`, and returns
the state change separately so callers persist it only after results are durable. The same
engine serves stream, API, training replay and backfill: features are identical everywhere.
Outcome labels reach the features as :class:`LabelChanges` folded in between events: a label
counts only for events later than the time it was reported (never for its own transaction).
"""

from riskstream.features.engine import (
    FeatureBatch,
    FeatureEngine,
    LabelChanges,
    StateUpdate,
    hash_column,
)
from riskstream.features.spec import FEATURES, FeatureParams, FeatureSpec
from riskstream.features.state import InMemoryStateStore, StateStore

__all__ = [
    "FEATURES",
    "FeatureBatch",
    "FeatureEngine",
    "FeatureParams",
    "FeatureSpec",
    "InMemoryStateStore",
    "LabelChanges",
    "StateStore",
    "StateUpdate",
    "hash_column",
]
