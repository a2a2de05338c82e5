"""The canonical transaction record and its validation rules.

Contract
--------
* ``Transaction`` validates one record (API body, one stream message). Errors name the field
  and the rule, e.g. ``amount: Input should be greater than 0``.
* ``validate_frame`` applies *the same rules*, vectorised, to a whole column batch (files,
  micro-batches). It returns the valid rows, normalised, plus one :class:`RecordError` per
  invalid row. A shared test asserts both paths accept and reject the same records.
* Unknown extra columns (``label``, ``scenario``...) are carried through untouched and are never
  used as features.

Timestamps are normalised to float epoch seconds (UTC). Optional text fields are normalised to
``""`` when missing, so downstream code never sees ``None``/NaN in them.

>>> Transaction.model_validate({"transaction_id": "t1", "timestamp": "2024-01-01T00:00:00Z",
...                             "user_id": "u1", "amount": 12.5}).timestamp
1704067200.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm", "transfer")
REQUIRED_FIELDS: tuple[str, ...] = ("transaction_id", "timestamp", "user_id", "amount")
TEXT_FIELDS: tuple[str, ...] = (
    "currency",
    "merchant_id",
    "merchant_category",
    "city",
    "country",
    "device_id",
    "channel",
)
CANONICAL_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "user_id",
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "city",
    "country",
    "lat",
    "lon",
    "device_id",
    "channel",
)
#: Amounts above this are refused: no card or transfer rail we target moves 10^12 in one go,
#: and it keeps log-amount features finite and meaningful.
MAX_AMOUNT = 1e12
#: Accepted epoch range (2000-01-01 .. 2100-01-01): catches milliseconds sent as seconds.
MIN_EPOCH, MAX_EPOCH = 946_684_800.0, 4_102_444_800.0
MAX_ID_LENGTH = 128


def _iso4217_codes() -> frozenset[str]:
    # The active ISO 4217 alphabetic codes. Kept inline (no extra dependency); the list changes
    # rarely and an unknown code is a validation error, not a crash.
    return frozenset(
        """
        AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL
        BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP
        ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR
        IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL
        LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
        NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
        SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
        USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
        """.split()
    )


CURRENCIES = _iso4217_codes()
#: The same sets as pyarrow arrays, for ``pc.is_in`` (built once, not per batch).
_CURRENCY_SET = pa.array(sorted(CURRENCIES), pa.string())
_CHANNEL_SET = pa.array([*CHANNELS, ""], pa.string())


def parse_timestamp(value: Any) -> float:
    """Epoch seconds (UTC) from an ISO-8601 string *with zone* or a number of epoch seconds.

    >>> parse_timestamp("2024-01-01T01:00:00+01:00")
    1704067200.0
    >>> parse_timestamp(1704067200)
    1704067200.0
    """
    if isinstance(value, bool):
        raise ValueError("must be ISO-8601 with a zone or epoch seconds")
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("ISO-8601 timestamp needs a zone (e.g. 'Z' or '+00:00')")
        ts = value.timestamp()
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("must be ISO-8601 with a zone or epoch seconds") from None
            if dt.tzinfo is None:
                raise ValueError("ISO-8601 timestamp needs a zone (e.g. 'Z' or '+00:00')") from None
            ts = dt.timestamp()
    else:
        raise ValueError("must be ISO-8601 with a zone or epoch seconds")
    if not math.isfinite(ts) or not (MIN_EPOCH <= ts <= MAX_EPOCH):
        raise ValueError("must be between 2000-01-01 and 2100-01-01 (epoch seconds, not ms)")
    return ts


class Transaction(BaseModel):
    """One payment transaction, validated. Extra fields are kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    transaction_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    timestamp: float
    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    amount: float = Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)
    currency: str = "USD"
    merchant_id: str = Field(default="", max_length=MAX_ID_LENGTH)
    merchant_category: str = Field(default="", max_length=MAX_ID_LENGTH)
    city: str = Field(default="", max_length=MAX_ID_LENGTH)
    country: str = Field(default="", max_length=MAX_ID_LENGTH)
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    device_id: str = Field(default="", max_length=MAX_ID_LENGTH)
    channel: Literal["pos", "ecom", "atm", "transfer", ""] = ""

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, v: Any) -> float:
        return parse_timestamp(v)

    @field_validator("transaction_id", "user_id", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        # Integer ids are common in exports (FDH's CUSTOMER_ID); accept them as text.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator(
        "merchant_id", "merchant_category", "city", "country", "device_id", "channel",
        mode="before",
    )
    @classmethod
    def _optional_text(cls, v: Any) -> Any:
        if v is None:
            return ""
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("channel", mode="before")
    @classmethod
    def _channel(cls, v: Any) -> Any:
        # Case-insensitive, as in validate_frame: "ATM" -> "atm".
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("lat", "lon", mode="before")
    @classmethod
    def _coordinate(cls, v: Any) -> Any:
        # Missing as validate_frame sees it: "" or NaN (a gap in a column) is no location.
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, float) and math.isnan(v):
            return None
        return v

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, v: Any) -> Any:
        if v is None or v == "":
            return "USD"
        if isinstance(v, str):
            code = v.strip().upper()
            if code not in CURRENCIES:
                raise ValueError("must be an ISO 4217 currency code")
            return code
        return v


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one record was refused: ``field`` and ``rule`` are machine-readable."""

    index: int
    field: str
    rule: str
    transaction_id: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.rule}"


def errors_from_validation(exc: ValidationError, index: int = 0, tx_id: Any = None) -> RecordError:
    """The first pydantic error of a record, as a :class:`RecordError`."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "record"
    rule = err["msg"].removeprefix("Value error, ")
    return RecordError(index, field, rule, None if tx_id is None else str(tx_id))


def _text_column(frame: pd.DataFrame, name: str, default: str = "") -> pd.Series:
    if name not in frame.columns:
        return pd.Series(default, index=frame.index, dtype=object)
    col = frame[name]
    if pd.api.types.is_float_dtype(col):
        # Integer ids read through a column that has gaps come back as floats: 12.0 -> "12".
        as_int = col.round()
        if bool(((as_int == col) | col.isna()).all()):
            out = as_int.astype("Int64").astype(object)
            return out.where(col.notna(), default).astype(str)
    # Vectorised (no per-value Python): non-text values become their str(), missing ones the
    # default, text is stripped.
    return col.astype("string").fillna(default).str.strip()


def _text_array(frame: pd.DataFrame, name: str, default: str = "") -> pa.ChunkedArray:
    """:func:`_text_column` as a pyarrow array, computed in Arrow where the column already is.

    The same values (pandas' own string methods on Arrow text are these compute functions),
    without pandas' fixed cost per Series operation (50-100 us): on a batch of a few dozen
    transactions those per-call costs were most of validation's ~8 ms.
    """
    if name not in frame.columns:
        return pa.chunked_array([pa.array([default] * len(frame), pa.string())])
    arr = _arrow_text(frame[name])
    if arr is not None:
        if arr.null_count:
            arr = pc.fill_null(arr, default)
        return pc.utf8_trim_whitespace(arr)
    return pa.chunked_array(pa.array(_text_column(frame, name, default)))


def _arrow_text(col: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow array behind an Arrow-backed text column (zero-copy), else None."""
    if isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow":
        # The Arrow protocol hands over the column's own chunks (~0.3 us); pa.array(col)
        # goes through pandas' conversion first (~12 us, paid ~13 times per batch).
        arr = col.array.__arrow_array__()
        return arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    return None


def _missing(col: pd.Series) -> np.ndarray:
    """``col.isna()`` as a numpy mask, without a Series operation for the column types a
    decoded batch has (float64: NaN; Arrow text: its validity bitmap)."""
    if col.dtype == np.float64:
        return np.isnan(col.to_numpy())
    arr = _arrow_text(col)
    if arr is None:
        return col.isna().to_numpy()
    if not arr.null_count:
        return np.zeros(len(col), dtype=bool)
    return pc.is_null(arr).to_numpy(zero_copy_only=False)


def _text_values(arr: pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """Arrow text as the values of a ``string`` column (what :func:`_text_column` holds)."""
    return pd.arrays.ArrowStringArray(arr)


def _lengths(arr: pa.ChunkedArray) -> np.ndarray:
    return pc.utf8_length(arr).to_numpy()


def _is_in(arr: pa.ChunkedArray, values: pa.Array) -> np.ndarray:
    return pc.is_in(arr, value_set=values).to_numpy()


def epoch_seconds(col: pd.Series) -> np.ndarray:
    """Float epoch seconds of a datetime column (naive = UTC), NaN where missing.

    Independent of the column's time unit (pandas 3 defaults to microseconds).
    """
    if col.dt.tz is None:
        col = col.dt.tz_localize("UTC")
    delta = col - pd.Timestamp(0, tz="UTC")
    return (delta / pd.Timedelta(seconds=1)).to_numpy(dtype=float, na_value=np.nan)


def _numeric(col: pd.Series) -> np.ndarray:
    """Float values of a column, NaN where missing or not a number."""
    if col.dtype == np.float64:  # what JSON numbers decode to: no conversion, no copy
        return col.to_numpy()
    return pd.to_numeric(col, errors="coerce").astype(float).to_numpy()


def _timestamps(col: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return _numeric(col)  # epoch seconds (float64, as JSON numbers decode: no copy)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return epoch_seconds(col)
    text = col.astype(object)
    numeric = pd.to_numeric(text, errors="coerce")
    # copy=True: under pandas copy-on-write to_numpy() may return a read-only view.
    out = numeric.to_numpy(dtype=float, na_value=np.nan, copy=True)
    rest = np.isnan(out) & text.notna().to_numpy()
    if rest.any():
        sub = text[rest].astype(str).str.strip()
        # A zone is required: 'Z' or an explicit +hh:mm / -hh:mm offset after the time.
        has_zone = sub.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
        parsed = pd.to_datetime(sub.where(has_zone), errors="coerce", utc=True, format="ISO8601")
        out[rest] = epoch_seconds(parsed)
    return out


def validate_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RecordError]]:
    """Validate a batch of records column-wise; the same rules as :class:`Transaction`.

    Returns ``(valid, errors)``: ``valid`` holds the canonical columns (normalised) followed
    by any extra columns, in input order; ``errors`` has the first failing rule of each
    refused row, with ``index`` its position in ``frame``.

    >>> ok, bad = validate_frame(pd.DataFrame({"transaction_id": ["a", "b"],
    ...     "timestamp": [1.7e9, 1.7e9], "user_id": ["u", "u"], "amount": [5.0, -1.0]}))
    >>> len(ok), bad[0].reason
    (1, 'amount: Input should be greater than 0')
    """
    n = len(frame)
    if not (isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
            and frame.index.step == 1):
        frame = frame.reset_index(drop=True)
    first_error: list[tuple[str, str] | None] = [None] * n
    bad = np.zeros(n, dtype=bool)

    def flag(mask: np.ndarray, field: str, rule: str) -> None:
        new = mask & ~bad
        for i in np.flatnonzero(new):
            first_error[i] = (field, rule)
        bad[new] = True

    out: dict[str, Any] = {}
    for name in ("transaction_id", "user_id"):
        if name not in frame.columns:
            flag(np.ones(n, dtype=bool), name, "Field required")
            out[name] = np.full(n, "", dtype=object)
            continue
        text = _text_array(frame, name)
        flag(_missing(frame[name]), name, "Field required")
        lens = _lengths(text)
        flag(lens < 1, name, "String should have at least 1 character")
        flag(lens > MAX_ID_LENGTH, name, f"String should have at most {MAX_ID_LENGTH} characters")
        out[name] = _text_values(text)

    if "timestamp" in frame.columns:
        raw = frame["timestamp"]
        ts = _timestamps(raw)
        flag(_missing(raw), "timestamp", "Field required")
        flag(np.isnan(ts), "timestamp", "must be ISO-8601 with a zone or epoch seconds")
        flag(
            ~np.isnan(ts) & ((ts < MIN_EPOCH) | (ts > MAX_EPOCH)),
            "timestamp",
            "must be between 2000-01-01 and 2100-01-01 (epoch seconds, not ms)",
        )
    else:
        ts = np.full(n, np.nan)
        flag(np.ones(n, dtype=bool), "timestamp", "Field required")
    out["timestamp"] = ts

    if "amount" in frame.columns:
        raw = frame["amount"]
        amt = _numeric(raw)
        flag(_missing(raw), "amount", "Field required")
        flag(np.isnan(amt), "amount", "Input should be a valid number")
        with np.errstate(invalid="ignore"):
            flag(np.isinf(amt), "amount", "Input should be a finite number")
            flag(amt <= 0, "amount", "Input should be greater than 0")
            flag(amt > MAX_AMOUNT, "amount",
                 f"Input should be less than or equal to {MAX_AMOUNT:g}")
    else:
        amt = np.full(n, np.nan)
        flag(np.ones(n, dtype=bool), "amount", "Field required")
    out["amount"] = amt

    cur = pc.utf8_upper(_text_array(frame, "currency", "USD"))
    cur = pc.if_else(pc.equal(cur, ""), "USD", cur)
    flag(~_is_in(cur, _CURRENCY_SET), "currency", "must be an ISO 4217 currency code")
    out["currency"] = _text_values(cur)
    for name in ("merchant_id", "merchant_category", "city", "country", "device_id"):
        text = _text_array(frame, name)
        flag(
            _lengths(text) > MAX_ID_LENGTH,
            name,
            f"String should have at most {MAX_ID_LENGTH} characters",
        )
        out[name] = _text_values(text)
    for name, limit in (("lat", 90.0), ("lon", 180.0)):
        if name in frame.columns:
            raw = frame[name]
            vals = _numeric(raw)
            raw_missing = _missing(raw)
            if not pd.api.types.is_numeric_dtype(raw):
                # Blank text counts as missing. Only text columns need the check: str() of a
                # float column's every value cost ~15 % of validating a batch.
                blank = raw.astype(object).astype(str).str.strip() == ""
                raw_missing = raw_missing | blank.to_numpy()
            flag(np.isnan(vals) & ~raw_missing, name, "Input should be a valid number")
            with np.errstate(invalid="ignore"):
                flag(vals < -limit, name, f"Input should be greater than or equal to {-limit:g}")
                flag(vals > limit, name, f"Input should be less than or equal to {limit:g}")
        else:
            vals = np.full(n, np.nan)
        out[name] = vals
    chan = pc.utf8_lower(_text_array(frame, "channel"))
    flag(
        ~_is_in(chan, _CHANNEL_SET),
        "channel",
        "Input should be " + ", ".join(repr(c) for c in CHANNELS),
    )
    out["channel"] = _text_values(chan)

    # From arrays, not Series: no index alignment (a union of 13 indexes) per batch.
    valid = pd.DataFrame({c: out[c] for c in CANONICAL_COLUMNS})  # canonical order
    extras = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    for c in extras:
        valid[c] = frame[c].to_numpy()
    if not bad.any():  # the usual batch: no row to drop, no index to rebuild
        return valid, []
    keep = ~bad
    ids = out["transaction_id"]
    errors = [
        RecordError(int(i), *first_error[i], transaction_id=str(ids[i]) or None)  # type: ignore[misc]
        for i in np.flatnonzero(bad)
    ]
    return valid.loc[keep].reset_index(drop=True), errors


def records_to_frame(records: list[Transaction]) -> pd.DataFrame:
    """Validated models as a canonical column batch (extras kept)."""
    rows = [r.model_dump() for r in records]
    frame = pd.DataFrame(rows, columns=None)
    for c in CANONICAL_COLUMNS:
        if c not in frame.columns:
            frame[c] = np.nan if c in ("lat", "lon") else ""
    frame["lat"] = frame["lat"].astype(float)
    frame["lon"] = frame["lon"].astype(float)
    extras = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    return frame[list(CANONICAL_COLUMNS) + extras]
