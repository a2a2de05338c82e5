"""Validation rules: the record model and the vectorised frame path must agree, field by field.

Three paths: ``Transaction`` (one body), ``validate_frame`` on a plain frame (the stream), and
``validate_frame(request_frame(...))`` (API bodies, batched). The stream requires a timestamp
and knows no aliases; otherwise all three accept and refuse the same records.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from riskstream.schema import (
    CANONICAL_COLUMNS,
    FIELD_ALIASES,
    MAX_AMOUNT,
    RECEIVED_AT,
    REFUSED_ATTR,
    RecordError,
    Transaction,
    errors_from_validation,
    request_frame,
    validate_frame,
    validate_requests,
)

EPOCH_2024 = 1_704_067_200.0  # 2024-01-01T00:00:00Z
RECEIVED = EPOCH_2024 + 3600.0  # the server's receive time in these tests
TxFactory = Callable[..., dict[str, Any]]  # the make_tx fixture (tests/conftest.py)


def model(rec: Any) -> Transaction:
    return Transaction.model_validate(rec, context={RECEIVED_AT: RECEIVED})


def model_error(rec: Any) -> RecordError | None:
    try:
        model(rec)
    except ValidationError as exc:
        tx = rec.get("transaction_id") if isinstance(rec, dict) else None
        return errors_from_validation(exc, tx_id=tx)
    return None


def request_error(rec: Any) -> RecordError | None:
    valid, errors = validate_frame(request_frame([rec], RECEIVED))
    assert len(valid) + len(errors) == 1
    return errors[0] if errors else None


def request_row(rec: dict[str, Any]) -> pd.Series:
    valid, errors = validate_frame(request_frame([rec], RECEIVED))
    assert errors == []
    return valid.iloc[0]


def frame_error(rec: dict[str, Any]) -> RecordError | None:
    valid, errors = validate_frame(pd.DataFrame([rec]))
    assert len(valid) + len(errors) == 1
    return errors[0] if errors else None


def both_errors(rec: dict[str, Any]) -> tuple[RecordError, RecordError]:
    m, f = model_error(rec), frame_error(rec)
    assert m is not None, f"model accepted {rec}"
    assert f is not None, f"validate_frame accepted {rec}"
    return m, f


def frame_row(rec: dict[str, Any]) -> pd.Series:
    valid, errors = validate_frame(pd.DataFrame([rec]))
    assert errors == []
    assert len(valid) == 1
    return valid.iloc[0]


# --- required fields ---------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["transaction_id", "user_id", "amount"])
def test_missing_required_field(make_tx: TxFactory, field: str) -> None:
    m, f = both_errors(make_tx(drop=(field,)))
    q = request_error(make_tx(drop=(field,)))
    assert q is not None
    assert m.field == f.field == q.field == field
    assert m.rule == f.rule == q.rule == "Field required"
    assert m.reason == f"{field}: Field required"


@pytest.mark.parametrize("rec_kw", [{"drop": ("timestamp",)}, {"timestamp": None}])
def test_stream_still_requires_a_timestamp(make_tx: TxFactory, rec_kw: dict[str, Any]) -> None:
    f = frame_error(make_tx(**rec_kw))
    assert f is not None and (f.field, f.rule) == ("timestamp", "Field required")


@pytest.mark.parametrize(
    "rec_kw", [{"drop": ("timestamp",)}, {"timestamp": None}, {"timestamp": math.nan}]
)
def test_request_without_timestamp_gets_the_receive_time(
    make_tx: TxFactory, rec_kw: dict[str, Any]
) -> None:
    rec = make_tx(**rec_kw)
    assert model(rec).timestamp == RECEIVED
    assert request_row(rec)["timestamp"] == RECEIVED


def test_model_without_context_uses_the_validation_time(make_tx: TxFactory) -> None:
    before = time.time()
    ts = Transaction.model_validate(make_tx(drop=("timestamp",))).timestamp
    assert before <= ts <= time.time()


def test_each_request_gets_its_own_receive_time(make_tx: TxFactory) -> None:
    recs = [
        make_tx(transaction_id="a", drop=("timestamp",)),
        make_tx(transaction_id="b", timestamp="2024-01-01T00:00:00Z"),
        make_tx(transaction_id="c", timestamp=None),
        make_tx(transaction_id="d", timestamp=EPOCH_2024 + 5),
    ]
    received = np.array([RECEIVED, RECEIVED + 1, RECEIVED + 2, RECEIVED + 3])
    valid, errors = validate_frame(request_frame(recs, received))
    assert errors == []
    assert valid["timestamp"].tolist() == [RECEIVED, EPOCH_2024, RECEIVED + 2, EPOCH_2024 + 5]
    with pytest.raises(ValueError):
        request_frame(recs, received[:2])


@pytest.mark.parametrize("field", ["transaction_id", "user_id"])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_id(make_tx: TxFactory, field: str, value: str) -> None:
    m, f = both_errors(make_tx(**{field: value}))
    assert m.field == f.field == field
    assert m.rule == f.rule == "String should have at least 1 character"


def test_id_too_long(make_tx: TxFactory) -> None:
    m, f = both_errors(make_tx(user_id="u" * 129))
    assert m.field == f.field == "user_id"
    assert m.rule == f.rule == "String should have at most 128 characters"
    assert model_error(make_tx(user_id="u" * 128)) is None
    assert frame_error(make_tx(user_id="u" * 128)) is None


# --- amount ------------------------------------------------------------------------------------
@pytest.mark.parametrize("amount", [-0.01, -100])
def test_amount_negative(make_tx: TxFactory, amount: float) -> None:
    m, f = both_errors(make_tx(amount=amount))
    assert m.field == f.field == "amount"
    assert m.rule == f.rule == "Input should be greater than or equal to 0"


@pytest.mark.parametrize("amount", [0, 0.0])
def test_zero_amount_authorisations_are_valid(make_tx: TxFactory, amount: float) -> None:
    assert model_error(make_tx(amount=amount)) is None
    assert frame_error(make_tx(amount=amount)) is None


@pytest.mark.parametrize("amount", [math.nan, math.inf, -math.inf])
def test_amount_not_finite(make_tx: TxFactory, amount: float) -> None:
    m, f = both_errors(make_tx(amount=amount))
    assert m.field == f.field == "amount"
    assert m.rule == "Input should be a finite number"


def test_amount_non_numeric_string(make_tx: TxFactory) -> None:
    m, f = both_errors(make_tx(amount="twelve"))
    assert m.field == f.field == "amount"
    assert f.rule == "Input should be a valid number"
    assert m.rule.startswith("Input should be a valid number")


def test_amount_numeric_string_accepted(make_tx: TxFactory) -> None:
    assert Transaction.model_validate(make_tx(amount="12.5")).amount == 12.5
    assert frame_row(make_tx(amount="12.5"))["amount"] == 12.5


def test_amount_above_max(make_tx: TxFactory) -> None:
    m, f = both_errors(make_tx(amount=MAX_AMOUNT * 1.5))
    assert m.field == f.field == "amount"
    assert m.rule.startswith("Input should be less than or equal to")
    assert f.rule.startswith("Input should be less than or equal to")
    # The bound itself is allowed.
    assert Transaction.model_validate(make_tx(amount=MAX_AMOUNT)).amount == MAX_AMOUNT
    assert frame_row(make_tx(amount=MAX_AMOUNT))["amount"] == MAX_AMOUNT


# --- timestamp ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value", ["2024-01-01T00:00:00", "2024-01-01", "garbage", "", "2024-13-01T00:00:00Z"]
)
def test_timestamp_rejected(make_tx: TxFactory, value: str) -> None:
    m, f = both_errors(make_tx(timestamp=value))
    assert m.field == f.field == "timestamp"


def test_timestamp_without_zone_names_the_zone(make_tx: TxFactory) -> None:
    m = model_error(make_tx(timestamp="2024-01-01T00:00:00"))
    assert m is not None and "zone" in m.rule


@pytest.mark.parametrize("value", [1.7e12, 1_700_000_000_000, 9.0e8, "1700000000000"])
def test_timestamp_out_of_epoch_range(make_tx: TxFactory, value: Any) -> None:
    m, f = both_errors(make_tx(timestamp=value))
    assert m.field == f.field == "timestamp"
    assert m.rule == f.rule
    assert "not ms" in m.rule


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T00:00:00Z", EPOCH_2024),
        ("2024-01-01T02:00:00+02:00", EPOCH_2024),
        ("2023-12-31T19:00:00-05:00", EPOCH_2024),
        ("2024-01-01T00:30:00Z", EPOCH_2024 + 1800),
        (EPOCH_2024, EPOCH_2024),
        (int(EPOCH_2024), EPOCH_2024),
        ("1704067200", EPOCH_2024),
    ],
)
def test_timestamp_converted(make_tx: TxFactory, value: Any, expected: float) -> None:
    rec = make_tx(timestamp=value)
    assert Transaction.model_validate(rec).timestamp == expected
    assert frame_row(rec)["timestamp"] == expected


def test_timestamp_offset_differs_from_utc(make_tx: TxFactory) -> None:
    # Same wall clock, +02:00 is two hours *earlier* than Z.
    rec_z = make_tx(timestamp="2024-01-01T12:00:00Z")
    rec_off = make_tx(timestamp="2024-01-01T12:00:00+02:00")
    assert (
        Transaction.model_validate(rec_z).timestamp
        - Transaction.model_validate(rec_off).timestamp
        == 7200.0
    )
    assert frame_row(rec_z)["timestamp"] - frame_row(rec_off)["timestamp"] == 7200.0


# --- currency ----------------------------------------------------------------------------------
def test_currency_lower_case_upper_cased(make_tx: TxFactory) -> None:
    rec = make_tx(currency="gbp")
    assert Transaction.model_validate(rec).currency == "GBP"
    assert frame_row(rec)["currency"] == "GBP"


@pytest.mark.parametrize("code", ["XXX1", "EURO", "ZZZ"])
def test_currency_unknown_rejected(make_tx: TxFactory, code: str) -> None:
    m, f = both_errors(make_tx(currency=code))
    assert m.field == f.field == "currency"
    assert m.rule == f.rule == "must be an ISO 4217 currency code"


@pytest.mark.parametrize("rec_kw", [{"drop": ("currency",)}, {"currency": None}, {"currency": ""}])
def test_currency_missing_defaults_to_usd(make_tx: TxFactory, rec_kw: dict[str, Any]) -> None:
    rec = make_tx(**rec_kw)
    assert Transaction.model_validate(rec).currency == "USD"
    assert frame_row(rec)["currency"] == "USD"


# --- location ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("lat", 91.0, "Input should be less than or equal to 90"),
        ("lat", -90.5, "Input should be greater than or equal to -90"),
        ("lon", -181.0, "Input should be greater than or equal to -180"),
        ("lon", 180.01, "Input should be less than or equal to 180"),
    ],
)
def test_coordinates_out_of_range(make_tx: TxFactory, field: str, value: float, rule: str) -> None:
    m, f = both_errors(make_tx(**{field: value}))
    assert m.field == f.field == field
    assert m.rule == f.rule == rule


def test_coordinate_not_a_number(make_tx: TxFactory) -> None:
    m, f = both_errors(make_tx(lat="north"))
    assert m.field == f.field == "lat"


@pytest.mark.parametrize(
    "rec_kw",
    [{"drop": ("lat", "lon")}, {"lat": None, "lon": None}, {"lat": math.nan, "lon": math.nan}],
)
def test_coordinates_missing_ok(make_tx: TxFactory, rec_kw: dict[str, Any]) -> None:
    rec = make_tx(**rec_kw)
    tx = Transaction.model_validate(rec)
    assert tx.lat is None and tx.lon is None
    row = frame_row(rec)
    assert np.isnan(row["lat"]) and np.isnan(row["lon"])


def test_coordinates_boundaries_ok(make_tx: TxFactory) -> None:
    rec = make_tx(lat=-90, lon=180)
    tx = Transaction.model_validate(rec)
    assert (tx.lat, tx.lon) == (-90.0, 180.0)
    row = frame_row(rec)
    assert (row["lat"], row["lon"]) == (-90.0, 180.0)


# --- channel -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [("atm", "atm"), ("ATM", "atm"), ("", "")])
def test_channel_accepted(make_tx: TxFactory, value: str, expected: str) -> None:
    rec = make_tx(channel=value)
    assert Transaction.model_validate(rec).channel == expected
    assert frame_row(rec)["channel"] == expected


def test_channel_missing_is_empty(make_tx: TxFactory) -> None:
    rec = make_tx(drop=("channel",))
    assert Transaction.model_validate(rec).channel == ""
    assert frame_row(rec)["channel"] == ""


def test_channel_unknown_rejected(make_tx: TxFactory) -> None:
    m, f = both_errors(make_tx(channel="fax"))
    assert m.field == f.field == "channel"
    assert f.rule.startswith("Input should be 'pos', 'ecom', 'atm', 'transfer'")


# --- optional text, ids and extras -------------------------------------------------------------
def test_optional_text_missing_normalised_to_empty(make_tx: TxFactory) -> None:
    names = ("merchant_id", "merchant_category", "city", "country", "device_id")
    rec = make_tx(drop=names)
    tx = Transaction.model_validate(rec)
    row = frame_row(rec)
    for name in names:
        assert getattr(tx, name) == ""
        assert row[name] == ""


def test_integer_ids_accepted_as_text(make_tx: TxFactory) -> None:
    rec = make_tx(transaction_id=1001, user_id=7, merchant_id=55)
    tx = Transaction.model_validate(rec)
    assert (tx.transaction_id, tx.user_id, tx.merchant_id) == ("1001", "7", "55")
    row = frame_row(rec)
    assert (row["transaction_id"], row["user_id"], row["merchant_id"]) == ("1001", "7", "55")


def test_integer_id_column_with_gaps(make_tx: TxFactory) -> None:
    # pandas turns an int column with a gap into floats; ids must still read "12", not "12.0".
    frame = pd.DataFrame([make_tx(user_id=12), make_tx(transaction_id="tx-2", user_id=None)])
    assert frame["user_id"].dtype == np.float64
    valid, errors = validate_frame(frame)
    assert valid["user_id"].tolist() == ["12"]
    assert [(e.index, e.field, e.rule) for e in errors] == [(1, "user_id", "Field required")]
    assert errors[0].transaction_id == "tx-2"


def test_whitespace_stripped(make_tx: TxFactory) -> None:
    rec = make_tx(transaction_id="  tx-9 ", user_id=" u ", currency=" eur ")
    tx = Transaction.model_validate(rec)
    row = frame_row(rec)
    assert (tx.transaction_id, tx.user_id, tx.currency) == ("tx-9", "u", "EUR")
    assert (row["transaction_id"], row["user_id"], row["currency"]) == ("tx-9", "u", "EUR")


def test_extra_columns_carried_through(make_tx: TxFactory) -> None:
    recs = [
        make_tx(transaction_id="a", label=1, scenario="card_testing"),
        make_tx(transaction_id="b", amount=-1, label=0, scenario=""),
        make_tx(transaction_id="c", label=0, scenario=""),
    ]
    tx = Transaction.model_validate(recs[0])
    assert tx.model_extra == {"label": 1, "scenario": "card_testing"}
    assert "label" not in Transaction.model_fields

    valid, errors = validate_frame(pd.DataFrame(recs))
    assert list(valid.columns) == [*CANONICAL_COLUMNS, "label", "scenario"]
    assert valid["transaction_id"].tolist() == ["a", "c"]
    assert valid["label"].tolist() == [1, 0]
    assert valid["scenario"].tolist() == ["card_testing", ""]
    assert [(e.index, e.field, e.transaction_id) for e in errors] == [(1, "amount", "b")]


def test_validate_frame_keeps_input_order_and_reports_indices(make_tx: TxFactory) -> None:
    recs = [make_tx(transaction_id=f"t{i}", amount=float(i) - 3.0) for i in range(6)]
    frame = pd.DataFrame(recs, index=[10, 11, 12, 13, 14, 15])  # a non-default index
    valid, errors = validate_frame(frame)
    assert valid["transaction_id"].tolist() == ["t3", "t4", "t5"]
    assert list(valid.index) == [0, 1, 2]
    assert [e.index for e in errors] == [0, 1, 2]
    assert {e.field for e in errors} == {"amount"}


def test_first_failing_rule_is_reported(make_tx: TxFactory) -> None:
    # Several bad fields: both paths report the first one in field order.
    rec = make_tx(amount=-1, currency="XXX1", channel="fax")
    m, f = both_errors(rec)
    assert m.field == f.field == "amount"


# --- the paths agree on a mixed set of records ------------------------------------------------
def _agreement_records(make_tx: TxFactory) -> list[dict[str, Any]]:
    return [
        make_tx(),
        make_tx(drop=("transaction_id",)),
        make_tx(drop=("timestamp",)),
        make_tx(drop=("user_id",)),
        make_tx(drop=("amount",)),
        make_tx(transaction_id=""),
        make_tx(user_id=""),
        make_tx(amount=-3.5),
        make_tx(amount=math.inf),
        make_tx(amount="abc"),
        make_tx(amount=2e12),
        make_tx(amount="19.99"),
        make_tx(timestamp="2024-01-01T00:00:00"),
        make_tx(timestamp="not a time"),
        make_tx(timestamp=1.7e12),
        make_tx(timestamp="2024-01-01T00:00:00Z"),
        make_tx(timestamp="2024-06-01T10:00:00+02:00"),
        make_tx(timestamp=1_700_000_000),
        make_tx(currency="usd"),
        make_tx(currency="XXX1"),
        make_tx(drop=("currency",)),
        make_tx(lat=91.0),
        make_tx(lon=-181.0),
        make_tx(drop=("lat", "lon")),
        make_tx(channel="atm"),
        make_tx(channel="fax"),
        make_tx(channel="ATM"),
        make_tx(transaction_id=123, user_id=456),
        make_tx(label=1, scenario="account_takeover"),
        make_tx(merchant_id="m" * 200),
    ]


def _request_records(make_tx: TxFactory) -> list[Any]:
    """What only API bodies may do: aliases (the stream knows none), null timestamps."""
    no_canon = ("merchant_id", "merchant_category", "city")
    return [
        make_tx(timestamp=None),
        make_tx(merchant="m-9", category="travel", location="Lyon", drop=no_canon),
        make_tx(merchant="m-1"),  # the same value under both names
        make_tx(merchant=" m-1 ", category="grocery"),  # the same once stripped
        make_tx(merchant_id=55, merchant="55"),  # an integer id is its text
        make_tx(merchant="m-2"),  # a conflict
        make_tx(location="Lyon", city=None),  # null canonical: the alias fills it
        make_tx(merchant=None),  # null alias: ignored
        make_tx(location={"lat": 48.8, "lon": 2.3}, drop=("city",)),  # an object is not text
        make_tx(category="c" * 200, drop=("merchant_category",)),  # named as the canonical
        make_tx(amount=-1, merchant="m-2"),  # amount's error comes first
        make_tx(channel="fax", category="travel"),  # the conflict comes before channel
        make_tx(drop=("timestamp",), location="Paris", city="Lyon"),
        "not an object",
        {},
    ]


_COMPARED = ("transaction_id", "timestamp", "user_id", "amount", "currency", "merchant_id",
             "merchant_category", "city", "country", "device_id", "channel")


def _check_valid_row_matches_model(rec: dict[str, Any], row: pd.Series) -> None:
    tx = model(rec)
    for name in _COMPARED:
        assert row[name] == getattr(tx, name), name
    for name in ("lat", "lon"):
        value = getattr(tx, name)
        assert (np.isnan(row[name]) and value is None) or row[name] == value, name


def test_both_paths_agree_record_by_record(make_tx: TxFactory) -> None:
    records = _agreement_records(make_tx)
    n_bad = 0
    for rec in records:
        m, f = model_error(rec), frame_error(rec)
        if "timestamp" not in rec:  # the one difference: the stream requires it
            assert m is None and f is not None and f.field == "timestamp"
            continue
        assert (m is None) == (f is None), (rec, m, f)
        if m is not None and f is not None:
            n_bad += 1
            assert m.field == f.field, (rec, m, f)
        else:
            _check_valid_row_matches_model(rec, frame_row(rec))
    assert 0 < n_bad < len(records)
    assert n_bad == 17  # amount 0 is valid now


def test_model_and_request_path_agree_record_by_record(make_tx: TxFactory) -> None:
    records = _agreement_records(make_tx) + _request_records(make_tx)
    n_bad = 0
    for rec in records:
        m, q = model_error(rec), request_error(rec)
        assert (m is None) == (q is None), (rec, m, q)
        if m is not None and q is not None:
            n_bad += 1
            assert m.field == q.field, (rec, m, q)
        else:
            _check_valid_row_matches_model(rec, request_row(rec))
    assert n_bad == 17 + 8  # amount 0 is valid now


def test_both_paths_agree_on_one_mixed_frame(make_tx: TxFactory) -> None:
    records = [r for r in _agreement_records(make_tx) if "timestamp" in r]
    valid, errors = validate_frame(pd.DataFrame(records))
    frame_fields = {e.index: e.field for e in errors}
    model_fields = {i: e.field for i, r in enumerate(records) if (e := model_error(r)) is not None}
    assert frame_fields == model_fields
    kept = [r for i, r in enumerate(records) if i not in model_fields]
    assert len(valid) == len(kept)
    for rec, (_, row) in zip(kept, valid.iterrows(), strict=True):
        _check_valid_row_matches_model(rec, row)


def test_model_and_request_path_agree_on_one_batch(make_tx: TxFactory) -> None:
    records = _agreement_records(make_tx) + _request_records(make_tx)
    batch = validate_requests(records, RECEIVED)
    request_fields = {e.index: e.field for e in batch.errors}
    model_fields = {i: e.field for i, r in enumerate(records) if (e := model_error(r)) is not None}
    assert request_fields == model_fields
    assert batch.rows.tolist() == [i for i in range(len(records)) if i not in model_fields]
    for i, (_, row) in zip(batch.rows.tolist(), batch.valid.iterrows(), strict=True):
        _check_valid_row_matches_model(records[i], row)


# --- API requests: aliases and the receive time ------------------------------------------------
def test_aliases_and_no_timestamp_give_the_canonical_frame(make_tx: TxFactory) -> None:
    canonical = make_tx(timestamp=RECEIVED)
    alias_of = {canon: alias for alias, canon in FIELD_ALIASES.items()}
    common = {alias_of.get(k, k): v for k, v in make_tx(drop=("timestamp",)).items()}
    assert {"merchant", "category", "location"} <= set(common) and "timestamp" not in common
    got, errors = validate_frame(request_frame([common], RECEIVED))
    assert errors == []
    want, _ = validate_frame(pd.DataFrame([canonical]))
    pd.testing.assert_frame_equal(got, want)
    assert list(got.columns) == list(CANONICAL_COLUMNS)  # no alias left over as an extra
    tx = model(common)
    assert tx == model(canonical) and tx.model_extra == {}


def test_alias_and_canonical_mixed_across_rows(make_tx: TxFactory) -> None:
    recs = [
        make_tx(transaction_id="a", merchant_id="m-a"),
        make_tx(transaction_id="b", merchant="m-b", drop=("merchant_id",)),
        make_tx(transaction_id="c", merchant_id=None, merchant="m-c"),
        make_tx(transaction_id="d", merchant_id="m-d", merchant=None),
    ]
    valid, errors = validate_frame(request_frame(recs, RECEIVED))
    assert errors == []
    assert valid["merchant_id"].tolist() == ["m-a", "m-b", "m-c", "m-d"]
    assert "merchant" not in valid.columns
    assert [model(r).merchant_id for r in recs] == ["m-a", "m-b", "m-c", "m-d"]


@pytest.mark.parametrize(("alias", "canon"), list(FIELD_ALIASES.items()))
def test_conflicting_alias_is_refused_at_the_field(
    make_tx: TxFactory, alias: str, canon: str
) -> None:
    rec = make_tx(**{canon: "one", alias: "two"})
    m, q = model_error(rec), request_error(rec)
    assert m is not None and q is not None
    rule = f"given both as '{canon}' and as its alias '{alias}', with different values"
    assert (m.field, m.rule) == (q.field, q.rule) == (canon, rule)
    assert q.transaction_id == "tx-1"
    # The same value under both names is no conflict.
    assert model(make_tx(**{canon: "one", alias: " one"})).model_dump()[canon] == "one"
    assert request_row(make_tx(**{canon: "one", alias: " one"}))[canon] == "one"


def test_request_path_leaves_the_bodies_alone(make_tx: TxFactory) -> None:
    recs = [make_tx(merchant="m-2", drop=("merchant_id", "timestamp")), make_tx(timestamp=None)]
    before = [dict(r) for r in recs]
    validate_requests(recs, RECEIVED)
    for r in recs:
        model(r)
    assert recs == before


def test_refusals_travel_in_attrs_only_when_there_are_some(make_tx: TxFactory) -> None:
    assert REFUSED_ATTR not in request_frame([make_tx(merchant="m-1")], RECEIVED).attrs
    frame = request_frame([make_tx(), make_tx(merchant="m-2")], RECEIVED)
    assert [e.index for e in frame.attrs[REFUSED_ATTR]] == [1]
    valid, _ = validate_frame(frame)
    assert valid.attrs == {}  # scoring never carries them


def test_stream_knows_no_aliases(make_tx: TxFactory) -> None:
    # A stream message with an alias key: an extra column, as before; merchant_id untouched.
    valid, errors = validate_frame(pd.DataFrame([make_tx(merchant="m-2", location="Lyon")]))
    assert errors == []
    assert valid["merchant_id"].iat[0] == "m-1" and valid["merchant"].iat[0] == "m-2"


def test_empty_request_batch() -> None:
    batch = validate_requests([], RECEIVED)
    assert len(batch.valid) == 0 and batch.errors == [] and batch.rows.size == 0
    assert list(batch.valid.columns) == list(CANONICAL_COLUMNS)


def test_transaction_json_schema() -> None:
    schema = Transaction.model_json_schema()
    assert schema["required"] == ["transaction_id", "user_id", "amount"]
    ts = schema["properties"]["timestamp"]
    assert {"type": "string", "format": "date-time"} in ts["anyOf"]
    assert "receive time" in ts["description"]
    for alias, canon in FIELD_ALIASES.items():
        assert alias in schema["properties"][canon]["description"]
    json.dumps(schema)


def test_valid_frame_owns_its_columns(make_tx: TxFactory) -> None:
    """Numbers are passed through without a conversion, text as the input's own Arrow chunks:
    the valid frame must still be a copy, so scoring can never write into the caller's data."""
    frame = pd.DataFrame([make_tx(timestamp=1.7e9), make_tx(timestamp=1.7e9 + 1)])
    assert frame["timestamp"].dtype == np.float64  # as JSON numbers decode
    frame["user_id"] = frame["user_id"].astype("string[pyarrow]")
    valid, errors = validate_frame(frame)
    assert not errors
    for name in ("timestamp", "amount"):
        assert not np.shares_memory(valid[name].to_numpy(), frame[name].to_numpy())
    before = frame.copy()
    valid.loc[0, "timestamp"] = 0.0
    valid.loc[0, "user_id"] = "changed"
    pd.testing.assert_frame_equal(frame, before)
