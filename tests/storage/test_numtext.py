"""The compiled JSON writer of rounded matrices: exact values, nulls, fallbacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from riskstream.storage.batch import Matrix, ResultBatch
from riskstream.storage.numtext import json_arrays, json_objects


def parsed(rows: list[str]) -> np.ndarray:
    return np.array(
        [[np.nan if v is None else v for v in json.loads(r).values()] for r in rows]
    )


@pytest.mark.parametrize("decimals", [0, 1, 5, 6, 9])
def test_rows_parse_back_to_the_rounded_values_bit_for_bit(decimals: int) -> None:
    rng = np.random.default_rng(decimals)
    # Magnitudes from 1e-9 up to what fits 53 bits at this precision (1e9 at most), both
    # signs, exact zeros and integers among them.
    top = min(9, 15 - decimals)
    raw = rng.normal(size=(2000, 7)) * 10.0 ** rng.uniform(-9, top, size=(2000, 7))
    raw[::13, 2] = 0.0
    raw[::17, 3] = np.round(raw[::17, 3])
    m = Matrix.rounded(tuple("abcdefg"), raw, decimals)
    rows = json_objects(m.names, m.values, decimals)
    assert rows is not None and len(rows) == 2000
    back = parsed(rows)
    assert np.array_equal(back.view(np.uint64), (m.values + 0.0).view(np.uint64))  # -0.0 -> 0.0
    assert all(isinstance(v, float) for v in json.loads(rows[0]).values())  # "2.0", not "2"


def test_nan_and_infinities_are_null_and_keys_are_json_encoded() -> None:
    values = np.array([[np.nan, np.inf, -np.inf, -0.25]])
    rows = json_objects(('q"uote', "é", "x", "y"), values, 3)
    assert rows == ['{"q\\"uote":null,"é":null,"x":null,"y":-0.25}']


def test_too_large_for_fixed_point_falls_back() -> None:
    assert json_objects(("a",), np.array([[1e12]]), 5) is None  # 1e17 > 2**53
    assert json_objects(("a",), np.array([[1e10]]), 5) == ['{"a":10000000000.0}']


def test_batch_uses_the_writer_and_falls_back_to_orjson_with_equal_values() -> None:
    """A rounded Matrix renders through the compiled writer; one it cannot take (a huge value,
    a key that COPY would need escaped) through orjson -- the same values either way."""
    values = np.array([[1.5, 2.0], [3.25, -4.0]])
    fast = ResultBatch(2, {"f": Matrix.rounded(("a", "b"), values, 5)})
    plain = ResultBatch(2, {"f": Matrix(("a", "b"), values)})
    assert fast.json_rows() == ['{"f":{"a":1.5,"b":2.0}}', '{"f":{"a":3.25,"b":-4.0}}']
    assert fast.json_rows() == plain.json_rows()
    assert fast.copy_text(["f"], {"f": "json"}) == plain.copy_text(["f"], {"f": "json"})
    huge = ResultBatch(1, {"f": Matrix.rounded(("a",), np.array([[1e300]]), 5)})
    stored = float(huge.columns["f"].values[0, 0])  # type: ignore[union-attr]
    assert json.loads(huge.json_rows()[0]) == {"f": {"a": stored}}
    odd = ResultBatch(1, {"f": Matrix.rounded(("a\\b",), np.array([[0.5]]), 5)})
    assert odd.copy_text(["f"], {"f": "json"}) == '{"a\\\\\\\\b":0.5}\n'  # JSON \\ then COPY \\


def test_arrays_are_the_objects_values_in_key_order() -> None:
    rng = np.random.default_rng(7)
    m = Matrix.rounded(tuple("abcde"), rng.normal(size=(500, 5)) * 1000, 5)
    m.values[::11, 1] = np.nan
    objects = json_objects(m.names, m.values, 5)
    arrays = json_arrays(m.values, 5)
    assert objects is not None and arrays is not None
    assert [json.loads(a) for a in arrays] == [list(json.loads(o).values()) for o in objects]
    assert json_arrays(np.empty((2, 0)), 5) == ["[]", "[]"]
    assert json_arrays(np.array([[1e12]]), 5) is None  # too large: the caller uses orjson
