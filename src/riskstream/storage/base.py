"""Abstract results store (see package docstring for the contract).

Every method a caller uses through the :class:`ResultsStore` type is declared here. The
pipeline's writes and the API's basic queries are abstract; the analyst workflow, the
dashboard queries and the maintenance reports are optional: their default raises
``NotImplementedError``, so a minimal store (a test double, a sink-only deployment) needs
only the abstract ones. A store that cannot reach its database raises
:class:`~riskstream.errors.StoreUnavailable` (retried by the pipeline); any other error is a
bug or bad input and is not retried.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from riskstream.storage.batch import ResultBatch

if TYPE_CHECKING:
    import pandas as pd

#: Analyst verdict -> alert status once labelled (``open`` before any label).
VERDICT_STATUS: dict[str, str] = {"fraud": "confirmed", "legitimate": "dismissed"}
ALERT_STATUSES: tuple[str, ...] = ("open", "confirmed", "dismissed")
#: Columns :meth:`ResultsStore.breakdown` may group by.
BREAKDOWN_COLUMNS: tuple[str, ...] = (
    "country",
    "city",
    "merchant_category",
    "channel",
    "decision",
    "model_version",
)


class ResultsStore(ABC):
    """Scored transactions, alerts, labels, dead letters and model versions (module docstring)."""

    # -- what every store implements: the pipeline's writes, the API's queries --------------
    @abstractmethod
    def write_new(
        self, rows: ResultBatch | Sequence[dict[str, Any]], alerts: Sequence[dict[str, Any]]
    ) -> set[str]:
        """Store scored rows and alerts atomically; return the ``transaction_id`` of each row
        that was new (a row whose id is stored already is left as it is: first write wins).

        ``rows`` is a :class:`~riskstream.storage.batch.ResultBatch` (the pipeline's columns)
        or row dicts (``ResultBatch.from_rows`` turns them into one); both store the same."""

    def write(
        self, rows: ResultBatch | Sequence[dict[str, Any]], alerts: Sequence[dict[str, Any]]
    ) -> int:
        """:meth:`write_new`, counted: how many rows were new."""
        return len(self.write_new(rows, alerts))

    @abstractmethod
    def write_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        """Store records that failed decoding or validation (payloads may be truncated)."""

    @abstractmethod
    def record_model(self, version: str, info: dict[str, Any]) -> None:
        """Remember a model version that scores (or shadow-scores); the first record wins."""

    @abstractmethod
    def transactions(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Scored transactions with ``since <= timestamp < until``, newest event first."""

    @abstractmethod
    def alerts(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Alerts with ``since <= timestamp < until``, newest event first."""

    @abstractmethod
    def dead_letters(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Dead letters, newest first."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Rows of ``transactions``, ``alerts``, ``dead_letters``, and ``decision_<name>``."""

    # -- optional: analyst workflow, dashboard, maintenance (default: NotImplementedError) ----
    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        """The alert row plus ``labels`` (oldest first) and ``transaction`` (its scored row,
        features included, or None); None when there is no alert ``alert_id``."""
        raise NotImplementedError

    def label_alert(
        self, alert_id: int, verdict: str, analyst: str | None = None, note: str | None = None
    ) -> dict[str, Any] | None:
        """Store an analyst's verdict on an alert; return :meth:`get_alert` (None: unknown id).

        One transaction: a ``labels`` row (transaction_id, verdict, analyst, note, created_at)
        is added, ``alerts.status`` becomes ``VERDICT_STATUS[verdict]`` and the verdict is
        stored as the transaction's outcome label (fraud 1, legitimate 0; source
        ``analyst``). Labels accumulate
        (a correction is a new label); the latest one sets the status. ``ValueError`` for a
        verdict not in ``VERDICT_STATUS``.
        """
        raise NotImplementedError

    # -- outcome labels (optional) -----------------------------------------------------------
    def upsert_labels(self, rows: pd.DataFrame, source: str) -> dict[str, int]:
        """Store outcome labels (``transaction_id, label, reported_at``, as
        :func:`riskstream.schema.validate_labels` returns them); ``{"new", "updated",
        "unchanged"}`` counts. Idempotent: the same label again is unchanged and keeps its
        first ``reported_at``; a different one replaces label, ``reported_at`` and source. A
        label may name a transaction not stored yet (it waits for it)."""
        raise NotImplementedError

    def labels_to_apply(
        self,
        transaction_ids: Sequence[str] | None = None,
        limit: int = 10_000,
        lease_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Labels whose value is not the one folded into the label-aware state (``applied``)
        and whose transaction is stored, oldest report first, at most ``limit``: dicts of
        ``transaction_id, label, applied, reported_at, user_id, merchant_id, timestamp``
        (the transaction's). ``transaction_ids`` restricts to those. With ``lease_s`` the
        labels are *claimed*: only those no other caller holds are returned, and they are
        held for ``lease_s`` seconds or until :meth:`mark_labels_applied` (so processes
        sharing one state never both fold in the same label)."""
        raise NotImplementedError

    def mark_labels_applied(self, pairs: Sequence[tuple[str, int]]) -> None:
        """The state now holds these ``(transaction_id, label)`` values; a label changed
        since keeps its other value and stays to apply."""
        raise NotImplementedError

    def get_label(self, transaction_id: str) -> dict[str, Any] | None:
        """The label row (``transaction_id, label, reported_at, source, updated_at,
        applied``) of one transaction, or None."""
        raise NotImplementedError

    def labels_frame(self, until: float | None = None) -> pd.DataFrame:
        """Every label as ``transaction_id, label, reported_at`` (reported before
        ``until``): training from the product's own data."""
        raise NotImplementedError

    def label_counts(self) -> dict[str, int]:
        """``{"labels", "fraud", "pending"}``: pending labels name no stored transaction."""
        raise NotImplementedError

    def alert_quality(
        self, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Alert quality from outcome labels, one dict per UTC day of transaction time in
        ``[since, until)``, oldest first: ``day`` (ISO date), ``alerts``, ``resolved``
        (alerts whose transaction has an outcome label), ``confirmed`` (of those, fraud),
        ``precision`` = confirmed / resolved, ``frauds_reported``, ``frauds_alerted``
        (reported frauds that had raised an alert), ``frauds_missed``, ``recall`` =
        alerted / reported (None where the denominator is 0)."""
        raise NotImplementedError

    def alert_queue(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        status: str | None = None,
        reason: str | None = None,
        transaction_id: str | None = None,
        min_score: float | None = None,
        since: float | None = None,
        until: float | None = None,
        sort: str = "time",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Alerts for review: filters as :meth:`alerts` plus ``reason`` (a reason code the
        alert carries), ``transaction_id``, ``min_score``, and ``status="reviewed"`` (any
        status but ``open``); ``sort`` by ``time`` (event time), ``score`` or ``amount``."""
        raise NotImplementedError

    def latest_transactions(
        self, limit: int = 200, *, user_id: str | None = None, decision: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest scored transactions by event time, newest first, without ``features``
        (display columns, ``reasons``, ``scored_at``): the live feed's query."""
        raise NotImplementedError

    def recent_activity(self, since: float, limit: int) -> dict[str, list[Any]]:
        """Columns ``scored_at, decision, score, latency_ms, model_version`` (one list each,
        same length) of the newest ``limit`` transactions (by event time) that were scored at
        or after ``since`` (wall clock). Columnar: the dashboard reads tens of thousands."""
        raise NotImplementedError

    def breakdown(
        self, column: str, since: float, limit: int, top: int = 10
    ) -> list[dict[str, Any]]:
        """``{key, count, amount, anomalies}`` grouped by ``column`` (one of
        ``BREAKDOWN_COLUMNS``) over the :meth:`recent_activity` window; largest amount first,
        at most ``top`` groups."""
        raise NotImplementedError

    def alert_reason_counts(self, since: float, limit: int) -> Counter[str]:
        """How often each reason code appears on the newest ``limit`` alerts (by event time)
        created at or after ``since``."""
        raise NotImplementedError

    def alert_status_counts(self) -> dict[str, int]:
        """Alerts per status (``open``, ``confirmed``, ``dismissed``), zeros included."""
        raise NotImplementedError

    def stats(
        self, since: float | None = None, until: float | None = None, top: int = 10
    ) -> dict[str, Any]:
        """Volumes, decisions, anomaly rate, latency percentiles and the ``top`` reason codes,
        overall and per model version, for transactions with ``since <= timestamp < until``
        (the ``riskstream stats`` report)."""
        raise NotImplementedError

    def history(self, chunk: int = 50_000) -> Iterator[pd.DataFrame]:
        """Every stored transaction in event order, as canonical frames of about ``chunk``
        rows, a timestamp never split between two (``riskstream profiles rebuild``)."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------
    def ping(self) -> bool:
        """Whether the store answers now; never raises. Default: True (nothing to reach)."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Default: nothing to release."""
