"""Columnar results (``ResultBatch``): every rendering gives back the values of the row path.

* ``pipeline.result_batch(scored).to_rows()`` equals the rows the former per-row builder made
  (kept below as the reference);
* what the PostgreSQL COPY text and the SQLite insert store reads back equal to ``to_rows()``:
  NULL and NaN coordinates, unicode, tabs, newlines, backslashes, quotes, ``%`` and a literal
  ``\\N`` in text, special floats;
* ``json_rows()`` parses to ``to_rows()`` (the ``transactions.scored`` records), and the Kafka
  results publisher sends the same records from columns as from row dicts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from riskstream.features import InMemoryStateStore
from riskstream.features.spec import FEATURES
from riskstream.pipeline import result_batch, result_rows
from riskstream.schema import CANONICAL_COLUMNS
from riskstream.scoring.core import DECISIONS, ScoredBatch, ScoringCore
from riskstream.storage import SQLResultsStore
from riskstream.storage.batch import COPY_NULL, Const, Matrix, ResultBatch, _float_texts
from riskstream.storage.tables import feature_set_id
from riskstream.storage.tables import scored as scored_table
from riskstream.transport.kafka import KafkaTopics, ResultsPublisher

NASTY = [
    "Tab\there",
    "new\nline",
    "cr\rreturn",
    "back\\slash",
    'quote" and \'single\'',
    "é 東京 🚀",
    "\\N",
    "100% sure %s %d",
    "",
    "ctrl\x01\x1f",
]


def reference_rows(scored: ScoredBatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The former per-row builder of ``pipeline.result_rows`` (before columns), verbatim in
    what it produced: the columnar path must keep every value."""
    f = scored.frame
    n = len(f)
    flagged = np.flatnonzero(scored.anomalous)
    reasons_flagged = scored.reasons(flagged) if flagged.size else []
    reasons: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i, r in zip(flagged, reasons_flagged, strict=True):
        reasons[i] = r
    feats = np.round(scored.features, 5).tolist()
    cols = {c: f[c].tolist() for c in CANONICAL_COLUMNS}
    members = np.round(scored.contributions, 6).tolist()
    rows = []
    for i in range(n):
        row = {c: cols[c][i] for c in CANONICAL_COLUMNS}
        row["lat"] = None if row["lat"] != row["lat"] else row["lat"]
        row["lon"] = None if row["lon"] != row["lon"] else row["lon"]
        row.update(
            score=float(scored.scores[i]),
            decision=DECISIONS[int(scored.decisions[i])],
            reasons=reasons[i],
            features=dict(zip(FEATURES, feats[i], strict=True)),
            model_version=scored.model_version,
            latency_ms=scored.elapsed_ms / max(n, 1),
            scored_at=None,  # wall clock: compared separately
            detector_scores=dict(zip(scored.detectors, members[i], strict=True)),
            shadow_score=None if scored.shadow_scores is None else float(scored.shadow_scores[i]),
            shadow_version=scored.shadow_version,
        )
        rows.append(row)
    alerts = [
        {
            "transaction_id": rows[i]["transaction_id"],
            "timestamp": rows[i]["timestamp"],
            "user_id": rows[i]["user_id"],
            "amount": rows[i]["amount"],
            "score": rows[i]["score"],
            "decision": rows[i]["decision"],
            "reasons": reasons[i],
            "model_version": scored.model_version,
            "status": "open",
            "created_at": None,
        }
        for i in flagged.tolist()
    ]
    return rows, alerts


@pytest.fixture(scope="module")
def scored(tiny_bundle: Any, sim_history: pd.DataFrame) -> ScoredBatch:
    """A scored batch with anomalies, nasty text and missing coordinates."""
    from riskstream.schema import validate_frame

    frame = sim_history.drop(columns=["label", "scenario"], errors="ignore").iloc[:400]
    valid, errors = validate_frame(frame.reset_index(drop=True))
    assert not errors
    valid = valid.copy()
    for k, text in enumerate(NASTY):
        valid.loc[k, "city"] = text
        valid.loc[k + 20, "merchant_category"] = text
    valid.loc[3:6, ["lat", "lon"]] = np.nan
    core = ScoringCore(tiny_bundle, InMemoryStateStore())
    out = core.score(valid)
    # Make sure some rows are flagged whatever the model thinks of the sample.
    out.decisions[[1, 2, 7]] = [1, 2, 1]
    return out


def _without_clock(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [{**r, key: None} for r in rows]


def test_result_batch_rows_equal_the_row_path(scored: ScoredBatch) -> None:
    batch = result_batch(scored)
    rows, alerts = reference_rows(scored)
    got = batch.to_rows()
    assert len(batch) == len(rows) == len(scored)
    assert list(got[0]) == list(rows[0])  # same keys, same order
    assert len({r["scored_at"] for r in got}) == 1
    assert _without_clock(got, "scored_at") == rows
    assert _without_clock(batch.alerts, "created_at") == alerts
    assert [a["created_at"] for a in batch.alerts] == [got[0]["scored_at"]] * len(alerts)
    assert got[3]["lat"] is None and got[0]["city"] == NASTY[0]
    # result_rows is the same builder, as dicts.
    rows2, alerts2 = result_rows(scored)
    assert _without_clock(rows2, "scored_at") == rows
    assert len(alerts2) == len(alerts) >= 3


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          make_pg_url: Callable[..., str]) -> Iterator[SQLResultsStore]:
    url = (f"sqlite:///{tmp_path / 'results.db'}" if request.param == "sqlite"
           else make_pg_url())
    s = SQLResultsStore(url)
    yield s
    s.close()


def test_columns_round_trip_through_the_store(store: SQLResultsStore,
                                              scored: ScoredBatch) -> None:
    batch = result_batch(scored)
    assert store.write(batch, batch.alerts) == len(batch)
    stored = {r["transaction_id"]: r for r in store.transactions(limit=10_000)}
    for row in batch.to_rows():
        assert stored[row["transaction_id"]] == row  # floats exact, JSON equal, NULLs kept
    got = {a["transaction_id"]: a for a in store.alerts(limit=100)}
    assert set(got) == {a["transaction_id"] for a in batch.alerts}
    for a in batch.alerts:
        assert {k: got[a["transaction_id"]][k] for k in a} == a
    # A replay of the same columns adds nothing (the staging path on PostgreSQL).
    again = result_batch(scored)
    assert store.write(again, again.alerts) == 0
    assert store.counts()["transactions"] == len(batch)


def test_features_are_stored_as_arrays_and_read_as_objects(
        store: SQLResultsStore, scored: ScoredBatch) -> None:
    """Revision 0006: the names are kept once, in feature_sets; a row holds its values. Rows
    stored as objects (before it, or written as row dicts) read as they are, and a store
    that never wrote a set reads it from the database."""
    from sqlalchemy import text

    batch = result_batch(scored)
    store.write(batch, batch.alerts)
    legacy = {**batch.to_rows()[0], "transaction_id": "legacy"}
    store.write([legacy], [])
    with store.engine.connect() as conn:
        raw = dict(conn.execute(text(
            "SELECT transaction_id, features FROM scored_transactions")).all())
        sets = conn.execute(text("SELECT id, names FROM feature_sets")).all()
        stored_set = conn.execute(text(
            "SELECT DISTINCT feature_set FROM scored_transactions "
            "WHERE transaction_id <> 'legacy'")).scalar_one()
    fid = feature_set_id(FEATURES)
    assert stored_set == fid and len(sets) == 1 and sets[0][0] == fid
    first = batch.to_rows()[1]
    assert orjson.loads(raw[first["transaction_id"]]) == list(first["features"].values())
    assert orjson.loads(raw["legacy"]) == legacy["features"]
    assert len(str(raw[first["transaction_id"]])) < len(str(raw["legacy"])) / 2
    fresh = SQLResultsStore(store.url)
    try:
        rows = {r["transaction_id"]: r for r in fresh.transactions(limit=10_000)}
        assert rows[first["transaction_id"]] == first and rows["legacy"] == legacy
        assert "feature_set" not in rows["legacy"]
        alert = fresh.alerts(limit=1)[0]
        detail = fresh.get_alert(alert["id"])
        assert detail is not None
        assert detail["transaction"]["features"] == rows[alert["transaction_id"]]["features"]
    finally:
        fresh.close()


def test_hand_built_columns_with_every_kind(store: SQLResultsStore) -> None:
    n = len(NASTY)
    lat = np.linspace(-45.5, 45.5, n)
    lat[[1, 4]] = np.nan
    columns: dict[str, Any] = {
        "transaction_id": [f"t{i}\t{s}" for i, s in enumerate(NASTY)],
        "timestamp": np.arange(n, dtype=np.float64) * 0.1 + 1.7e9,
        "user_id": ["ü" * (i + 1) for i in range(n)],
        "amount": [0.1 * (i + 1) for i in range(n)],
        "currency": ["EUR"] * n,
        "merchant_id": NASTY[::-1],
        "merchant_category": [None if i % 3 == 0 else s for i, s in enumerate(NASTY)],
        "city": NASTY,
        "country": ["FR"] * n,
        "lat": lat,
        "lon": [None if i % 2 else 1 / 3 for i in range(n)],
        "device_id": ["d"] * n,
        "channel": ["pos"] * n,
        "score": np.linspace(0, 1, n),
        "decision": ["allow"] * n,
        "reasons": [[{"code": "X", "text": s}] if s else [] for s in NASTY],
        "features": Matrix(("a%s", 'b"q', "c\\d"), np.arange(3 * n, dtype=float).reshape(n, 3)
                           / 7),
        "model_version": Const("m-100%\t1"),
        "latency_ms": Const(1e-7),
        "scored_at": Const(1.7e9 + 0.5),
        "detector_scores": Matrix(("isolation_forest",), np.full((n, 1), 0.25)),
        "shadow_score": Const(None),
        "shadow_version": Const(None),
    }
    batch = ResultBatch(n, columns)
    assert store.write(batch, []) == n
    stored = {r["transaction_id"]: r for r in store.transactions(limit=100)}
    for row in batch.to_rows():
        assert stored[row["transaction_id"]] == row
    assert stored["t6\t\\N"]["city"] == "\\N"  # a literal backslash-N is text, not NULL
    assert stored["t0\tTab\there"]["merchant_category"] is None
    # JSON records parse back to the same rows (NaN coordinates are null).
    for text, row in zip(batch.json_rows(), batch.to_rows(), strict=True):
        assert orjson.loads(text) == row


def test_copy_and_json_texts_do_not_depend_on_which_is_rendered_first() -> None:
    """Number texts and plain-string findings are cached per column and shared with the
    store's compact view: NULLs spelled for COPY must not leak into JSON, or back."""
    n = len(NASTY)
    lat = np.linspace(-1.0, 1.0, n)
    lat[[0, 3]] = [np.nan, np.inf]

    def fresh() -> ResultBatch:
        return ResultBatch(n, {"transaction_id": [f"t{i}" for i in range(n)], "lat": lat,
                               "city": list(NASTY), "country": ["FR"] * n,
                               "lon": [None, *([0.5] * (n - 1))]})

    names, kinds = ["transaction_id", "lat", "city", "country", "lon"], {
        "lat": "float", "lon": "float"}
    copy_alone, json_alone = fresh().copy_text(names, kinds), fresh().json_rows()
    first = fresh()
    view = first.sharing_texts(dict(first.columns))
    assert view._number_cache is first._number_cache and view._plain_cache is first._plain_cache
    assert view.copy_text(names, kinds) == copy_alone and first.json_rows() == json_alone
    second = fresh()
    assert second.json_rows() == json_alone and second.copy_text(names, kinds) == copy_alone
    assert "\\N" in copy_alone and "Infinity" in copy_alone and '"lat":null' in json_alone[0]


def test_json_rows_of_a_scored_batch(scored: ScoredBatch) -> None:
    batch = result_batch(scored)
    texts = batch.json_rows()
    assert [orjson.loads(t) for t in texts] == batch.to_rows()
    rows = ResultBatch.from_rows(batch.to_rows())  # the same through plain lists
    assert [orjson.loads(t) for t in rows.json_rows()] == batch.to_rows()


def test_float_texts_tell_null_from_special_values() -> None:
    assert _float_texts([1.5, None, math.nan, math.inf, -math.inf, 2]) == [
        "1.5", COPY_NULL, "NaN", "Infinity", "-Infinity", "2.0"]
    arr = np.array([0.1, np.nan, np.inf, 1e-7, 1e300])
    texts = _float_texts(arr)
    assert texts[1] == COPY_NULL and texts[2] == "Infinity"
    assert [float(t) for t in (texts[0], texts[3], texts[4])] == [0.1, 1e-7, 1e300]
    assert _float_texts([]) == [] and _float_texts(np.empty(0)) == []


def test_empty_and_constant_only_batches() -> None:
    empty = ResultBatch(0, {"transaction_id": [], "features": Matrix(("a",), np.empty((0, 1)))})
    assert empty.to_rows() == [] and empty.json_rows() == []
    assert empty.copy_text(["transaction_id", "features"], {"features": "json"}) == ""
    const = ResultBatch(2, {"model_version": Const("100%"), "x": Const(None)})
    assert [orjson.loads(t) for t in const.json_rows()] == [
        {"model_version": "100%", "x": None}] * 2
    assert const.copy_text(["model_version", "x", "missing"], {}) == (
        f"100%\t{COPY_NULL}\t{COPY_NULL}\n" * 2)


class _CapturingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, Any]] = []

    def send(self, messages: Any) -> int:
        batch = list(messages)
        self.sent += batch
        return len(batch)


def test_results_publisher_sends_the_same_records_from_columns(scored: ScoredBatch) -> None:
    batch = result_batch(scored)
    topics = KafkaTopics("tx", "scored", "alerts", "dlq")
    from_columns, from_rows = _CapturingPublisher(), _CapturingPublisher()
    ResultsPublisher(from_columns, topics).publish_results(batch)  # type: ignore[arg-type]
    ResultsPublisher(from_rows, topics).publish(batch.to_rows())  # type: ignore[arg-type]

    def parsed(p: _CapturingPublisher) -> list[tuple[str, bytes | None, Any]]:
        return sorted(((t, k, orjson.loads(v)) for t, k, v, _ in p.sent),
                      key=lambda m: (m[0], m[2]["transaction_id"]))

    got = parsed(from_columns)
    assert got == parsed(from_rows)
    assert sum(t == "scored" for t, _, _ in got) == len(batch)
    alerts = [v for t, _, v in got if t == "alerts"]
    assert len(alerts) == len(batch.alerts)
    assert all(v["transaction"]["user_id"] == v["user_id"] for v in alerts)
    scored_rows = {v["transaction_id"]: v for t, _, v in got if t == "scored"}
    for row in batch.to_rows():
        assert scored_rows[row["transaction_id"]] == row


def test_store_accepts_row_dicts_missing_columns(store: SQLResultsStore) -> None:
    row = {c: None for c in CANONICAL_COLUMNS} | {
        "transaction_id": "only", "timestamp": 1.0, "user_id": "u", "amount": 2.0,
        "score": 0.5, "decision": "allow", "scored_at": time.time()}
    assert store.write([row], []) == 1
    got = store.transactions(limit=1)[0]
    assert got["features"] is None and got["detector_scores"] is None
    assert {k: got[k] for k in row} == row


def test_table_columns_are_known_to_the_builder(scored: ScoredBatch) -> None:
    # Every stored column comes out of result_batch (a new column needs a value there), but
    # feature_set: the store's own, naming the list its features arrays follow.
    assert [*result_batch(scored).columns, "feature_set"] == [
        c.name for c in scored_table.columns]


def test_copy_chunks_concatenate_to_the_copy_text(scored: ScoredBatch) -> None:
    batch = result_batch(scored)
    names = [c.name for c in scored_table.columns]
    kinds = {"features": "json", "detector_scores": "json", "reasons": "json",
             **{c: "float" for c in ("timestamp", "amount", "lat", "lon", "score",
                                     "latency_ms", "scored_at", "shadow_score")}}
    whole = batch.copy_text(names, kinds)
    assert whole.count("\n") == len(batch)
    for rows in (1, 7, 1000, 10_000):
        assert "".join(batch.copy_chunks(names, kinds, rows=rows)) == whole
    order = [str(i) for i in range(len(batch))]
    chunks = list(batch.copy_chunks(names, kinds, order, rows=64))
    assert len(chunks) == -(-len(batch) // 64)
    assert "".join(chunks) == "".join(f"{i}\t{line}\n" for i, line in
                                      enumerate(whole.split("\n")[:-1]))


def test_json_records_are_the_rows_as_utf8(scored: ScoredBatch) -> None:
    batch = result_batch(scored)
    assert batch.json_records() == [t.encode() for t in batch.json_rows()]
    assert ResultBatch(0, {}).json_records() == []


def test_results_publisher_can_leave_the_features_out(scored: ScoredBatch) -> None:
    batch = result_batch(scored)
    topics = KafkaTopics("tx", "scored", "alerts", "dlq")
    full, lean = _CapturingPublisher(), _CapturingPublisher()
    ResultsPublisher(full, topics).publish_results(batch)  # type: ignore[arg-type]
    ResultsPublisher(lean, topics, features=False).publish_results(batch)  # type: ignore[arg-type]
    assert len(lean.sent) == len(full.sent)
    for (t1, k1, v1, _), (t2, k2, v2, _) in zip(full.sent, lean.sent, strict=True):
        assert (t1, k1) == (t2, k2)
        a, b = orjson.loads(v1), orjson.loads(v2)
        if t1 == "scored":
            assert "features" in a and "features" not in b
            a.pop("features")
        assert a == b  # everything else as before; alerts never carried features
    # The batch itself is untouched: the store still gets the features.
    assert isinstance(batch.columns["features"], Matrix)
    assert "features" in batch.to_rows()[0]
