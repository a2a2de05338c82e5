"""The canonical transaction record and its validation rules.

Contract
--------
* ``Transaction`` validates one record (API body, one stream message). Errors name the field
  and the rule, e.g. ``amount: Input should be greater than or equal to 0``.
* ``validate_frame`` applies *the same rules*, vectorised, to a whole column batch (files,
  micro-batches). It returns the valid rows, normalised, plus one :class:`RecordError` per
  invalid row. A shared test asserts both paths accept and reject the same records.
* Unknown extra columns (``label``, ``scenario``...) are carried through untouched and are never
  used as features.
* API requests (not stream messages) may leave ``timestamp`` out -- the server's receive time,
  UTC, is used -- and may name three fields as fraud APIs commonly do: ``merchant``,
  ``category`` and ``location`` for ``merchant_id``, ``merchant_category`` and ``city``
  (:data:`FIELD_ALIASES`). ``Transaction`` accepts both; ``validate_frame(request_frame(...))``
  (or :func:`validate_requests`) is the same contract vectorised over a micro-batch of request
  bodies. A field given under both names is refused unless the two values agree. The stream
  keeps requiring a timestamp and knows no aliases: ``validate_frame`` on a plain frame still
  refuses a record without one.
* ``PredictResponse`` and ``PREDICT_REQUEST_EXAMPLES`` describe ``POST /predict`` for OpenAPI.

Timestamps are normalised to float epoch seconds (UTC). Optional text fields are normalised to
``""`` when missing, so downstream code never sees ``None``/NaN in them.

>>> Transaction.model_validate({"transaction_id": "t1", "timestamp": "2024-01-01T00:00:00Z",
...                             "user_id": "u1", "amount": 12.5}).timestamp
1704067200.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

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
#: Request field names common in fraud-API documentation -> the canonical field each fills.
#: Requests only: stream messages and files use the canonical names.
FIELD_ALIASES: dict[str, str] = {
    "merchant": "merchant_id",
    "category": "merchant_category",
    "location": "city",
}
#: ``Transaction.model_validate(body, context={RECEIVED_AT: t})``: the receive time (epoch
#: seconds) a body without a timestamp gets; without it, the time of validation.
RECEIVED_AT = "received_at"
#: ``frame.attrs`` key under which :func:`request_frame` hands :func:`validate_frame` the
#: errors only the request bodies show. Stream frames never carry it.
REFUSED_ATTR = "riskstream.refused"
#: The order in which ``Transaction`` reports a body's first error: the body, then its fields.
_FIELD_RANK: dict[str, int] = {"record": -1, **{c: i for i, c in enumerate(CANONICAL_COLUMNS)}}


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


def alias_conflict_rule(field: str, alias: str) -> str:
    """The rule broken by a request that names a field twice with different values.

    >>> alias_conflict_rule("city", "location")
    "given both as 'city' and as its alias 'location', with different values"
    """
    return f"given both as '{field}' and as its alias '{alias}', with different values"


@dataclass(frozen=True, slots=True)
class _AliasConflict:
    """Stands in for a field sent under both its names with different values.

    Put in the field's place before validation, so that the field's own validator refuses it
    and the error is located at the field (a model-level error would have no field name).
    A dataclass, so FastAPI can encode it as the error's ``input``.
    """

    field: str
    alias: str


def _alias_key(value: Any) -> Any:
    # Two spellings of one value agree: text is stripped and integer ids are text, as the
    # field's own validation normalises them.
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _absent(value: Any) -> bool:
    # A column batch cannot tell null from NaN, so neither can a single body.
    return value is None or (isinstance(value, float) and math.isnan(value))


def _received_time(context: Any) -> float:
    if isinstance(context, Mapping) and context.get(RECEIVED_AT) is not None:
        return float(context[RECEIVED_AT])
    return time.time()


#: What ``timestamp`` accepts, for OpenAPI (the field itself is the parsed float).
_TIMESTAMP_INPUT_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}]
}


class Transaction(BaseModel):
    """One payment transaction, validated. Extra fields are kept (``model_extra``).

    A body without ``timestamp`` (or with ``null``) gets the receive time, passed as
    ``context={RECEIVED_AT: epoch_seconds}`` or else the time of validation:

    >>> Transaction.model_validate({"transaction_id": "t1", "user_id": "u1", "amount": 5,
    ...     "merchant": "m-7"}, context={RECEIVED_AT: 1704067200.0}).timestamp
    1704067200.0
    """

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    transaction_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    timestamp: Annotated[float, WithJsonSchema(_TIMESTAMP_INPUT_SCHEMA, mode="validation")] = Field(
        default_factory=time.time,
        description="When the payment happened: ISO-8601 with a zone, or epoch seconds. "
        "Default: the server's receive time, UTC.",
        examples=["2024-01-01T12:00:00Z"],
    )
    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    # Zero is valid: a $0 authorisation (card verification) is a transaction, and a burst of
    # them is the card-testing pattern. Negative amounts (refunds) are not payments.
    amount: float = Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)
    currency: str = Field(default="USD", description="ISO 4217 code. Default: USD.")
    merchant_id: str = Field(
        default="",
        max_length=MAX_ID_LENGTH,
        validation_alias=AliasChoices("merchant_id", "merchant"),
        description="Alias: merchant.",
    )
    merchant_category: str = Field(
        default="",
        max_length=MAX_ID_LENGTH,
        validation_alias=AliasChoices("merchant_category", "category"),
        description="Alias: category.",
    )
    city: str = Field(
        default="",
        max_length=MAX_ID_LENGTH,
        validation_alias=AliasChoices("city", "location"),
        description="Alias: location.",
    )
    country: str = Field(default="", max_length=MAX_ID_LENGTH)
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    device_id: str = Field(default="", max_length=MAX_ID_LENGTH)
    channel: Literal["pos", "ecom", "atm", "transfer", ""] = ""

    @model_validator(mode="before")
    @classmethod
    def _request_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """Receive time for a missing timestamp; one value per aliased field.

        An alias fills its field only where the canonical name is absent or null, the rule
        :func:`request_frame` applies to a batch; both names with different values are refused.
        """
        if not isinstance(data, dict):
            return data
        no_time = _absent(data.get("timestamp"))
        aliases = [a for a in FIELD_ALIASES if a in data]
        if not (no_time or aliases):
            return data  # the usual body: no copy
        data = dict(data)  # the caller's dict stays as it was
        if no_time:
            data["timestamp"] = _received_time(info.context)
        for alias in aliases:
            # Moved to the canonical key (not read by AliasChoices, which would also keep a
            # second spelling as an extra): an error then names the canonical field, as
            # validate_frame's do.
            canon = FIELD_ALIASES[alias]
            value, current = data.pop(alias), data.get(canon)
            if _absent(value):
                continue
            if _absent(current):
                data[canon] = value
            elif _alias_key(current) != _alias_key(value):
                data[canon] = _AliasConflict(canon, alias)
        return data

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
        if isinstance(v, _AliasConflict):
            raise ValueError(alias_conflict_rule(v.field, v.alias))
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
    refused row, with ``index`` its position in ``frame``. A frame from :func:`request_frame`
    also brings the errors found in the request bodies (``frame.attrs[REFUSED_ATTR]``); they
    are merged in.

    >>> ok, bad = validate_frame(pd.DataFrame({"transaction_id": ["a", "b"],
    ...     "timestamp": [1.7e9, 1.7e9], "user_id": ["u", "u"], "amount": [5.0, -1.0]}))
    >>> len(ok), bad[0].reason
    (1, 'amount: Input should be greater than or equal to 0')
    """
    n = len(frame)
    refused: list[RecordError] = frame.attrs.get(REFUSED_ATTR, [])  # see request_frame
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
            flag(amt < 0, "amount", "Input should be greater than or equal to 0")
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

    for e in refused:
        prev = first_error[e.index]
        # The body's first failing field in the model's order; on a tie the body's own error
        # (the model never gets to the later check).
        if prev is None or _FIELD_RANK[e.field] <= _FIELD_RANK.get(prev[0], len(_FIELD_RANK)):
            first_error[e.index] = (e.field, e.rule)
            bad[e.index] = True

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
    """Validated models as a canonical column batch (extras kept, in first-seen order).

    Built in one ``DataFrame`` call from column lists: from row dicts, then reordered and
    retyped, a one-row frame cost ~8 ms (measured), most of an inline call's CPU.
    """
    rows = [r.model_dump() for r in records]
    names = list(CANONICAL_COLUMNS)
    seen = set(names)
    for row in rows:
        for name in row:
            if name not in seen:
                seen.add(name)
                names.append(name)
    data: dict[str, Any] = {}
    for name in names:
        if name in ("lat", "lon"):
            data[name] = np.array([row.get(name) for row in rows], dtype=float)
        else:
            default = "" if name in CANONICAL_COLUMNS else None
            data[name] = [row.get(name, default) for row in rows]
    return pd.DataFrame(data)


# -- API requests: the same contract, vectorised over a micro-batch of bodies --------------------
#: Fields whose value must be text (or an integer id): a JSON object or array in one of them is
#: refused, as ``Transaction`` refuses it (``validate_frame`` alone would keep its ``str()``).
_TEXT_INPUTS: frozenset[str] = frozenset(("transaction_id", "user_id", *TEXT_FIELDS))
_NOT_AN_OBJECT = "Input should be a valid dictionary or instance of Transaction"


def request_frame(
    records: Sequence[Any], received_at: float | Sequence[float] | np.ndarray
) -> pd.DataFrame:
    """One frame for a micro-batch of API request bodies (JSON objects), for
    :func:`validate_frame`: ``validate_frame(request_frame(bodies, t))`` accepts and refuses
    what ``Transaction`` does with ``context={RECEIVED_AT: t[i]}`` -- the same fields, the same
    normalised values, errors naming the same (canonical) field.

    Row ``i`` is ``records[i]``. Per row: an alias (:data:`FIELD_ALIASES`) fills its canonical
    field where that is absent or null, and both with different values is refused (at the
    canonical field); a missing or null ``timestamp`` becomes ``received_at[i]`` (epoch seconds,
    UTC; one number serves the whole batch). Types, ranges and required fields are left to
    ``validate_frame``. What only the bodies show (not an object, an alias conflict, an object
    where text belongs) travels with the frame, in ``frame.attrs``, for ``validate_frame`` to
    report: pass the frame on as it is (its row positions are those errors' indexes).
    Column-wise: no Python work per row beyond building the frame, except for rows in error.

    >>> frame = request_frame(
    ...     [{"transaction_id": "a", "user_id": "u", "amount": 5, "location": "Paris"},
    ...      {"transaction_id": "b", "user_id": "u", "amount": 5, "city": "Lyon",
    ...       "location": "Paris", "timestamp": "2024-01-01T00:00:00Z"}], 1704067200.0)
    >>> frame[["timestamp", "city"]].values.tolist()
    [[1704067200.0, 'Paris'], ['2024-01-01T00:00:00Z', 'Lyon']]
    >>> valid, errors = validate_frame(frame)
    >>> valid["transaction_id"].tolist(), [e.reason for e in errors]
    (['a'], ["city: given both as 'city' and as its alias 'location', with different values"])
    """
    n = len(records)
    received = np.broadcast_to(np.asarray(received_at, dtype=np.float64), (n,))
    refused: list[RecordError] = []
    if not all(isinstance(r, dict) for r in records):
        refused += [
            RecordError(i, "record", _NOT_AN_OBJECT)
            for i, r in enumerate(records)
            if not isinstance(r, dict)
        ]
        records = [r if isinstance(r, dict) else {} for r in records]
    frame = pd.DataFrame.from_records(records) if n else pd.DataFrame()
    if len(frame) != n:  # only empty objects: from_records gives no rows at all
        frame = pd.DataFrame(index=pd.RangeIndex(n))

    # Column names are looked up in a plain set and renamed in one go: on the small batches an
    # API sees, pandas' per-call costs (an Index per rename) would outweigh the rows' work.
    present = set(frame.columns.tolist())
    renames: dict[str, str] = {}
    for alias, canon in FIELD_ALIASES.items():
        if alias not in present:
            continue
        if canon not in present:
            renames[alias] = canon
            continue
        # Both names occur in the batch (not necessarily in one row): coalesce row by row.
        given, current = frame[alias], frame[canon]
        has_alias, has_canon = ~_missing(given), ~_missing(current)
        both = has_alias & has_canon
        if both.any():
            differ = both & (
                _text_column(frame, alias).to_numpy() != _text_column(frame, canon).to_numpy()
            )
            refused += [
                RecordError(int(i), canon, alias_conflict_rule(canon, alias))
                for i in np.flatnonzero(differ)
            ]
        fill = has_alias & ~has_canon
        if fill.any():
            frame[canon] = current.where(~fill, given)
        frame = frame.drop(columns=alias)
    if renames:
        frame.columns = [renames.get(c, c) for c in frame.columns.tolist()]

    for name, dtype in zip(frame.columns.tolist(), frame.dtypes.tolist(), strict=True):
        if dtype == np.dtype(object) and name in _TEXT_INPUTS:
            # Only columns pandas could not type as text: mixed values, where an object may be.
            col = frame[name].to_numpy()
            nested = np.fromiter((isinstance(v, dict | list) for v in col), bool, len(col))
            refused += [
                RecordError(int(i), name, "Input should be a valid string")
                for i in np.flatnonzero(nested)
            ]

    if "timestamp" not in present:
        frame["timestamp"] = received  # the common body: a plain float column
    else:
        col = frame["timestamp"]
        missing = _missing(col)
        if missing.all():
            frame["timestamp"] = received
        elif missing.any():
            if col.dtype == np.float64:
                frame["timestamp"] = np.where(missing, received, col.to_numpy())
            else:
                # ISO text and epoch numbers side by side: validate_frame parses such a column.
                frame["timestamp"] = col.astype(object).where(~missing, pd.Series(received))
    if refused:
        # Only then: pandas deep-copies non-empty attrs into every column it hands out.
        frame.attrs[REFUSED_ATTR] = refused
    return frame


@dataclass(frozen=True, slots=True)
class RequestBatch:
    """A validated micro-batch of request bodies.

    ``valid`` holds the accepted rows (as :func:`validate_frame` returns them, in request
    order); ``rows[k]`` is the request index of ``valid`` row ``k``; ``errors`` has the first
    failing rule of each refused request, with ``index`` its request index.
    """

    valid: pd.DataFrame
    rows: np.ndarray
    errors: list[RecordError]


def validate_requests(
    records: Sequence[Any], received_at: float | Sequence[float] | np.ndarray
) -> RequestBatch:
    """``validate_frame(request_frame(records, received_at))``, with each valid row's request.

    >>> batch = validate_requests([
    ...     {"transaction_id": "a", "user_id": "u", "amount": -5},
    ...     {"transaction_id": "b", "user_id": "u", "amount": 5, "merchant": "m-1"}],
    ...     1704067200.0)
    >>> batch.valid[["timestamp", "merchant_id"]].values.tolist(), batch.rows.tolist()
    ([[1704067200.0, 'm-1']], [1])
    >>> [(error_detail(e)["loc"], error_detail(e)["msg"]) for e in batch.errors]
    [(['body', 'amount'], 'Input should be greater than or equal to 0')]
    """
    valid, errors = validate_frame(request_frame(records, received_at))
    keep = np.ones(len(records), dtype=bool)
    keep[[e.index for e in errors]] = False
    return RequestBatch(valid, np.flatnonzero(keep), errors)


def error_detail(error: RecordError) -> dict[str, Any]:
    """One item of a FastAPI 422 ``detail`` list for a refused body.

    >>> error_detail(RecordError(0, "user_id", "Field required"))
    {'type': 'missing', 'loc': ['body', 'user_id'], 'msg': 'Field required'}
    """
    loc: list[str] = ["body"] if error.field == "record" else ["body", error.field]
    kind = "missing" if error.rule == "Field required" else "value_error"
    return {"type": kind, "loc": loc, "msg": error.rule}


# -- POST /predict: the response, and request examples for OpenAPI ------------------------------
Decision = Literal["allow", "review", "block"]
#: What kind of anomaly a scored transaction shows: the family of its strongest reason code
#: (the table is ``riskstream.scoring.reasons.FAMILY``). ``normal``: not flagged; ``other``:
#: flagged by the detectors with no reason code firing.
AnomalyType = Literal[
    "normal",
    "amount_spike",
    "velocity",
    "new_device",
    "geo_velocity",
    "unusual_time",
    "category_shift",
    "new_merchant",
    "new_country",
    "merchant_risk",
    "compromised_card",
    "other",
]
ANOMALY_TYPES: tuple[str, ...] = get_args(AnomalyType)


class Reason(BaseModel):
    """One fired reason code, strongest first in ``reasons``."""

    code: str = Field(examples=["AMOUNT_FAR_ABOVE_USUAL"])
    feature: str = Field(description="The feature the rule reads.", examples=["amount_ratio"])
    value: float = Field(description="That feature's value (rounded).", examples=[12.4])
    text: str = Field(examples=["amount 12.4x this user's usual"])


_RESPONSE_EXAMPLE: dict[str, Any] = {
    "transaction_id": "tx-1001",
    "anomaly_score": 0.999812,
    "is_anomalous": True,
    "decision": "block",
    "confidence": 0.8123,
    "reasons": [
        {
            "code": "AMOUNT_FAR_ABOVE_USUAL",
            "feature": "amount_ratio",
            "value": 12.4,
            "text": "amount 12.4x this user's usual",
        },
        {
            "code": "NEW_DEVICE",
            "feature": "new_device",
            "value": 1.0,
            "text": "device never seen for this user",
        },
    ],
    "detectors": {"isolation_forest": 0.999812},
    "features": {"log_amount": 6.857514, "amount_ratio": 12.4, "new_device": 1.0},
    "model_version": "isolation_forest-2024-01-01-3f9c2a1b",
    "processing_time_ms": 1.84,
    "anomaly_type": "amount_spike",
    "explanation": "Blocked: amount 12.4x this user's usual and device never seen for this user.",
    "timestamp": "2024-01-01T12:00:00.012Z",
    "duplicate": False,
}


class PredictResponse(BaseModel):
    """The answer of ``POST /predict``: ``ScoredBatch.result(i)``, plus ``duplicate``."""

    model_config = ConfigDict(json_schema_extra={"examples": [_RESPONSE_EXAMPLE]})

    transaction_id: str
    anomaly_score: float = Field(ge=0, le=1, description="Calibrated score: 1 = most unusual.")
    is_anomalous: bool = Field(description="decision is review or block.")
    decision: Decision
    confidence: float = Field(
        ge=0, le=1, description="How far the score is from the review threshold, 0..1."
    )
    reasons: list[Reason] = Field(description="Fired reason codes, strongest first.")
    detectors: dict[str, float] = Field(description="Each detector's calibrated score.")
    features: dict[str, float] = Field(description="Every model feature of the transaction.")
    model_version: str
    processing_time_ms: float = Field(description="Scoring time of the batch it was in.")
    anomaly_type: AnomalyType = Field(
        description="The family of the strongest reason; normal when not flagged, other when "
        "flagged with no reason code."
    )
    explanation: str = Field(description="One sentence for a human, from the reasons.")
    timestamp: str = Field(
        description="When the decision was made, ISO-8601 UTC.",
        json_schema_extra={"format": "date-time"},
    )
    duplicate: bool | None = Field(
        default=None,
        description="Recorded before (an idempotent retry). Absent on a dry run.",
    )


#: Request bodies for ``openapi_examples=`` of ``POST /predict``.
PREDICT_REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "common": {
        "summary": "The common fraud-API body",
        "description": "Aliases merchant, category and location; no timestamp, so the "
        "server's receive time (UTC) is used.",
        "value": {
            "transaction_id": "tx-1001",
            "user_id": "user-42",
            "amount": 950.0,
            "merchant": "m-electronics-7",
            "category": "electronics",
            "location": "Paris",
            "device_id": "dev-9f3a",
        },
    },
    "full": {
        "summary": "Every field, canonical names",
        "value": {
            "transaction_id": "tx-1002",
            "timestamp": "2024-01-01T12:00:00Z",
            "user_id": "user-42",
            "amount": 42.5,
            "currency": "EUR",
            "merchant_id": "m-grocery-3",
            "merchant_category": "grocery",
            "city": "Paris",
            "country": "FR",
            "lat": 48.8566,
            "lon": 2.3522,
            "device_id": "dev-9f3a",
            "channel": "pos",
        },
    },
}


# -- outcome labels -------------------------------------------------------------------------------
#: How a label may be written: 1 / 0, true / false, fraud / legitimate (any case).
_LABEL_WORDS: dict[str, int] = {
    "1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0, "fraud": 1, "legitimate": 0,
}


def validate_labels(frame: pd.DataFrame, now: float) -> tuple[pd.DataFrame, list[RecordError]]:
    """Validate outcome labels column-wise: ``transaction_id`` (1..128 characters),
    ``label`` (1/0, true/false, fraud/legitimate) and optional ``reported_at`` (ISO-8601
    with a zone, or epoch seconds; missing or blank: ``now``).

    Returns ``(valid, errors)``: ``valid`` has exactly ``transaction_id`` (str), ``label``
    (int8) and ``reported_at`` (epoch s), in input order; a transaction given twice keeps
    its last row (a correction further down the file wins).

    >>> ok, bad = validate_labels(pd.DataFrame({"transaction_id": ["a", "b", "a", ""],
    ...     "label": ["fraud", "0", 0, 1], "reported_at": ["2024-01-01T00:00:00Z", None,
    ...     1.7e9, None]}), now=1.8e9)
    >>> ok.values.tolist()
    [['b', 0, 1800000000.0], ['a', 0, 1700000000.0]]
    >>> [e.reason for e in bad]
    ['transaction_id: String should have at least 1 character']
    """
    n = len(frame)
    frame = frame.reset_index(drop=True)
    bad = np.zeros(n, dtype=bool)
    errors: list[RecordError] = []

    def flag(mask: np.ndarray, field: str, rule: str) -> None:
        for i in np.flatnonzero(mask & ~bad):
            errors.append(RecordError(int(i), field, rule))
        bad[mask] = True

    if "transaction_id" in frame.columns:
        ids = frame["transaction_id"]
        missing = ids.isna().to_numpy()
        text = ids.astype(str).str.strip().where(~missing, "")
        lens = text.str.len().to_numpy()
        flag(lens < 1, "transaction_id", "String should have at least 1 character")
        flag(lens > MAX_ID_LENGTH, "transaction_id",
             f"String should have at most {MAX_ID_LENGTH} characters")
    else:
        text = pd.Series([""] * n, dtype=object)
        flag(np.ones(n, dtype=bool), "transaction_id", "Field required")
    if "label" in frame.columns:
        words = frame["label"].astype(str).str.strip().str.lower()
        value = words.map(_LABEL_WORDS)
        flag(frame["label"].isna().to_numpy(), "label", "Field required")
        flag(value.isna().to_numpy(), "label", "must be 1/0, true/false or fraud/legitimate")
        label = value.fillna(0).to_numpy().astype(np.int8)
    else:
        label = np.zeros(n, dtype=np.int8)
        flag(np.ones(n, dtype=bool), "label", "Field required")
    reported = np.full(n, float(now))
    if "reported_at" in frame.columns:
        raw = frame["reported_at"]
        blank = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
        ts = _timestamps(raw.where(~blank, None))
        flag(~blank & np.isnan(ts), "reported_at", "must be ISO-8601 with a zone or epoch seconds")
        flag(~blank & ~np.isnan(ts) & ((ts < MIN_EPOCH) | (ts > MAX_EPOCH)), "reported_at",
             "must be between 2000-01-01 and 2100-01-01 (epoch seconds, not ms)")
        reported = np.where(blank, float(now), ts)
    out = pd.DataFrame({"transaction_id": text.to_numpy(dtype=object), "label": label,
                        "reported_at": reported})[~bad]
    out = out.drop_duplicates("transaction_id", keep="last").reset_index(drop=True)
    return out, sorted(errors, key=lambda e: e.index)
