"""JSON text of rounded float matrices, one object (or array) per row, written by a compiled loop.

A scored batch stores each transaction's features (21 values rounded to 5 decimals) and
per-detector scores as JSON objects: for 5,000 rows that is 105,000 numbers. Spelling them
through orjson gives one Python string per *value*, which then has to be laid out between the
keys -- measured ~2/3 of the cost of rendering a batch's COPY text and ``transactions.scored``
records. Here a numba loop writes every row's whole object into one byte buffer, and Python
makes one string per *row*.

Exact, not approximate: a value rounded to ``d`` decimals is ``k / 10**d`` for an integer
``k`` (numpy's ``round`` is ``rint(v * 10**d) / 10**d``, and the division is correctly
rounded, so the stored double is the one nearest that decimal fraction). Writing ``k`` with
the decimal point ``d`` places from the right therefore parses back to the very same double:
``json.loads`` of a row equals the matrix row, bit for bit (tests/storage/test_result_batch.py).
The spelling can differ from orjson's shortest form (``0.00001`` rather than ``1e-05``);
never the value.

NaN and infinities become ``null`` (as orjson writes them). A value too large for a 53-bit
``k``, or more than :data:`MAX_DECIMALS` decimals, makes :func:`json_objects` (and
:func:`json_arrays`, the same rows without keys, as the results store keeps features)
return ``None``: the caller falls back to orjson.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson
from numba import njit

#: |k| must stay below 2**53 for ``rint(v * 10**d)`` to be the exact integer numpy used.
_MAX_SCALED = 2.0**53
#: Most decimals written: 10**15 still leaves integer digits within 2**53.
MAX_DECIMALS = 15
#: Upper bound of one number's text: sign, 16 integer digits, point, up to 15 decimals.
_NUMBER_WIDTH = 34


@njit(cache=True)
def _write_rows(
    values: np.ndarray,
    decimals: int,
    keys: np.ndarray,
    key_end: np.ndarray,
    close: int,
    out: np.ndarray,
) -> int:
    """Write ``{key0 v, key1 v, ...}\\n`` per row into ``out``; return the bytes written, or
    -1 if a value is too large (``keys`` holds each key's ``{"name":`` / ``,"name":`` prefix
    back to back, ``key_end[j]`` where prefix ``j`` ends; ``close`` is the byte that ends a
    row's text: ``}``, or ``]`` when the prefixes are ``[`` and ``,``)."""
    n, m = values.shape
    scale = 10.0**decimals
    unit = np.uint64(1)  # 10**decimals, exact
    for _ in range(decimals):
        unit *= np.uint64(10)
    digits = np.empty(24, dtype=np.uint8)
    pos = 0
    for i in range(n):
        start = 0
        for j in range(m):
            for b in range(start, key_end[j]):
                out[pos] = keys[b]
                pos += 1
            start = key_end[j]
            v = values[i, j]
            if not np.isfinite(v):
                out[pos] = 110  # null
                out[pos + 1] = 117
                out[pos + 2] = 108
                out[pos + 3] = 108
                pos += 4
                continue
            y = np.rint(v * scale)
            if y < 0:
                out[pos] = 45  # '-'
                pos += 1
                y = -y
            if y >= _MAX_SCALED:
                return -1
            # Integer and fraction parts written apart: a whole number (features are often
            # 0 or 1) costs no fraction digits, and trailing zeros no digit writes. Measured
            # 0.61 -> 0.43 us per 21-value row against writing all decimals + 1 digits first.
            k = np.uint64(y)
            whole = k // unit
            frac = k - whole * unit
            if whole == 0:
                out[pos] = 48
                pos += 1
            else:
                nd = 0
                while whole > 0:
                    digits[nd] = 48 + np.uint8(whole % np.uint64(10))
                    whole //= np.uint64(10)
                    nd += 1
                for t in range(nd - 1, -1, -1):
                    out[pos] = digits[t]
                    pos += 1
            out[pos] = 46  # '.'
            pos += 1
            if frac == 0:  # one digit always stays: "1.0"
                out[pos] = 48
                pos += 1
                continue
            width = decimals  # trailing zeros of the fraction are dropped
            while frac % np.uint64(10) == 0:
                frac //= np.uint64(10)
                width -= 1
            for t in range(width - 1, -1, -1):  # leading zeros kept: 0.00001
                out[pos + t] = 48 + np.uint8(frac % np.uint64(10))
                frac //= np.uint64(10)
            pos += width
        out[pos] = close
        out[pos + 1] = 10  # '\n'
        pos += 2
    return pos


def json_objects(names: Sequence[str], values: np.ndarray, decimals: int) -> list[str] | None:
    """One JSON object per row of ``values`` (already rounded to ``decimals`` places), keys
    ``names``; ``None`` if a value is too large for the exact fixed-point spelling.

    >>> json_objects(("a", "b"), np.array([[1.5, -0.00001], [float("nan"), 120.0]]), 5)
    ['{"a":1.5,"b":-0.00001}', '{"a":null,"b":120.0}']
    """
    if not names:
        return ["{}"] * values.shape[0]
    prefixes = [
        ("{" if j == 0 else ",").encode() + orjson.dumps(str(k)) + b":"
        for j, k in enumerate(names)
    ]
    return _rows(values, decimals, prefixes, ord("}"))


def json_arrays(values: np.ndarray, decimals: int) -> list[str] | None:
    """One JSON array per row of ``values`` (already rounded to ``decimals`` places); ``None``
    as for :func:`json_objects`.

    >>> json_arrays(np.array([[1.5, -0.00001], [float("nan"), 120.0]]), 5)
    ['[1.5,-0.00001]', '[null,120.0]']
    """
    if not values.shape[1]:
        return ["[]"] * values.shape[0]
    return _rows(values, decimals, [b"["] + [b","] * (values.shape[1] - 1), ord("]"))


def _rows(values: np.ndarray, decimals: int, prefixes: list[bytes], close: int) -> list[str] | None:
    if not 0 <= decimals <= MAX_DECIMALS:
        return None
    n = values.shape[0]
    if not n:
        return []
    keys = np.frombuffer(b"".join(prefixes), dtype=np.uint8)
    key_end = np.cumsum([len(p) for p in prefixes]).astype(np.int64)
    out = np.empty(n * (len(keys) + len(prefixes) * _NUMBER_WIDTH + 2), dtype=np.uint8)
    size = _write_rows(
        np.ascontiguousarray(values, dtype=np.float64), int(decimals), keys, key_end, close, out
    )
    if size < 0:
        return None
    return out[:size].tobytes().decode().split("\n")[:-1]
