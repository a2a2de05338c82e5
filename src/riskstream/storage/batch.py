"""Scored results as columns: what the pipeline hands to a results store and a results sink.

A micro-batch of 5,000 scored transactions used to become 5,000 row dicts (26 keys each, two
nested dicts) before the store turned them back into columns for ``COPY`` and the Kafka sink
turned each into JSON: 12-14 µs of Python per transaction (more with the cyclic GC running),
the largest single cost of a worker. :class:`ResultBatch` keeps the columns as they come out
of scoring (lists, one constant per batch where every row shares the value, a float matrix for
the features) and renders each output in bulk, a column at a time:

* :meth:`ResultBatch.copy_chunks` / :meth:`ResultBatch.copy_text` -- PostgreSQL ``COPY``
  text (numbers spelled by orjson for a whole column at once, text escaped only when a column
  needs it), in chunks so the server parses one while the next is rendered;
* :meth:`ResultBatch.json_records` / :meth:`ResultBatch.json_rows` -- one JSON object per row
  (the ``transactions.scored`` records);
* :meth:`ResultBatch.to_rows` -- the row dicts, for code that wants them (SQLite, tests).

Both renderings are laid out by :func:`_render`: constants and per-row string lists placed
into one flat list by slice assignments and joined once -- no Python code per row or value.
A matrix's numbers are turned into text once per batch and shared by both.

Every rendering gives back the same values: a row read from the store, or parsed from its JSON,
equals the corresponding :meth:`to_rows` dict (``tests/storage/test_result_batch.py``).

Column kinds (``ResultBatch.columns`` maps a stored column name to one of them):

* ``list`` -- one Python value per row; ``None`` is SQL ``NULL`` / JSON ``null``;
* ``np.ndarray`` -- 1-D float64, one value per row; ``NaN`` is ``NULL`` / ``null`` (as for a
  transaction without coordinates);
* :class:`Const` -- one value shared by every row (model version, batch time);
* :class:`Matrix` -- a 2-D float array rendered as one JSON object per row, ``names`` as keys
  (features, per-detector scores); or, ``keyed=False``, as one JSON array per row in the order
  of ``names`` (how the results store keeps features: :meth:`Matrix.unkeyed`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from riskstream.storage.numtext import json_arrays, json_objects

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: COPY text spelling of SQL NULL.
COPY_NULL = "\\N"
#: COPY's text format gives backslash, tab, newline and CR a meaning: escaped in values.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
#: Characters JSON must escape inside a string (RFC 8259: quote, backslash, U+0000-U+001F).
_JSON_SPECIAL = re.compile(r'["\\\x00-\x1f]')


@dataclass(frozen=True)
class Const:
    """A column whose value is the same for every row of the batch."""

    value: Any


@dataclass(frozen=True)
class Matrix:
    """A column of JSON objects ``{names[j]: values[i, j]}``, one per row ``i``."""

    names: tuple[str, ...]
    values: np.ndarray  # (n, len(names)) float64
    #: Set when every value is rounded to this many decimals (see :meth:`rounded`): the rows
    #: are then spelled by a compiled loop (:mod:`riskstream.storage.numtext`).
    decimals: int | None = None
    #: False: each row is a JSON array of its values in ``names`` order, not an object.
    keyed: bool = True

    @classmethod
    def rounded(cls, names: Sequence[str], values: np.ndarray, decimals: int) -> Matrix:
        """``values`` rounded to ``decimals`` places (what is stored and published)."""
        return cls(tuple(names), np.round(values, decimals), decimals)

    def unkeyed(self) -> Matrix:
        """The same values, each row rendered as a JSON array (``names`` kept aside)."""
        return Matrix(self.names, self.values, self.decimals, keyed=False)

    def dicts(self) -> list[dict[str, float | None]] | list[list[float | None]]:
        """Each row as a dict (``names`` as keys), or as a list if not :attr:`keyed`."""
        rows = self.values.tolist()
        if not np.isfinite(self.values).all():  # JSON has no NaN/inf: orjson writes null
            rows = [[v if math.isfinite(v) else None for v in r] for r in rows]
        if not self.keyed:
            return rows
        names = self.names
        return [dict(zip(names, r, strict=True)) for r in rows]


Column = list[Any] | np.ndarray | Const | Matrix


@dataclass
class ResultBatch:
    """Scored transactions (``columns``, in stored order) and the alerts of the flagged ones."""

    n: int
    columns: dict[str, Column]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: Each Matrix column's values as text, one list per key (rendered once per batch for the
    #: COPY text and the JSON records alike).
    _matrix_cache: dict[str, list[list[str]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: A rounded Matrix column's whole JSON object per row (or None: not renderable so).
    _object_cache: dict[str, list[str] | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: A float array column's orjson texts, and whether a list column is all plain strings
    #: (:func:`_plain_strings`), by name: found once for the COPY text and the JSON records.
    #: The results store's compact view of a batch (same columns but the features) shares
    #: them (:meth:`sharing_texts`).
    _number_cache: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _plain_cache: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return self.n

    def sharing_texts(self, columns: dict[str, Column]) -> ResultBatch:
        """This batch with ``columns`` instead, sharing the number and plain-string findings
        (its columns of the same name must be the very same objects); matrix texts are not
        shared."""
        return ResultBatch(self.n, columns, self.alerts, _number_cache=self._number_cache,
                           _plain_cache=self._plain_cache)

    # -- construction from rows (tests, the API's single-row path, other writers) -------------
    @classmethod
    def from_rows(
        cls, rows: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]] = ()
    ) -> ResultBatch:
        """Columns of ``rows`` (every key any row has; a row lacking one has ``None``)."""
        names: dict[str, None] = {}
        for r in rows:
            names.update(dict.fromkeys(r))
        columns: dict[str, Column] = {k: [r.get(k) for r in rows] for k in names}
        return cls(len(rows), columns, [dict(a) for a in alerts])

    # -- values ---------------------------------------------------------------------------------
    def values(self, name: str) -> list[Any]:
        """Column ``name`` as Python values (``None`` for NULL; missing columns are all None)."""
        col = self.columns.get(name)
        if col is None:
            return [None] * self.n
        if isinstance(col, list):
            return col
        if isinstance(col, Const):
            return [col.value] * self.n
        if isinstance(col, Matrix):
            return col.dicts()  # type: ignore[return-value]
        out = col.tolist()
        if np.isnan(col).any():
            out = [None if v != v else v for v in out]
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per row, keys in column order."""
        keys = tuple(self.columns)
        cols = [self.values(k) for k in keys]
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*cols, strict=True)]

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict (for the few rows that need one, e.g. alerts)."""
        out: dict[str, Any] = {}
        for k, col in self.columns.items():
            if isinstance(col, Const):
                out[k] = col.value
            elif isinstance(col, Matrix):
                out[k] = Matrix(col.names, col.values[i : i + 1], keyed=col.keyed).dicts()[0]
            elif isinstance(col, np.ndarray):
                v = float(col[i])
                out[k] = None if v != v else v
            else:
                out[k] = col[i]
        return out

    # -- PostgreSQL COPY (text format) ------------------------------------------------------
    def copy_chunks(
        self,
        names: Sequence[str],
        kinds: Mapping[str, str],
        prefix: Sequence[str] | None = None,
        rows: int = 1000,
    ) -> Iterator[str]:
        """:meth:`copy_text` in pieces of ``rows`` rows, rendered as they are asked for: the
        database parses one while the next is built (one text for 5,000 rows measured ~15 %
        slower end to end: the server idled until it was complete)."""
        pieces = self._copy_pieces(names, kinds, prefix)
        for start in range(0, self.n, rows):
            stop = min(start + rows, self.n)
            yield _render(
                [p if isinstance(p, str) else p[start:stop] for p in pieces], stop - start
            )

    def copy_text(
        self,
        names: Sequence[str],
        kinds: Mapping[str, str],
        prefix: Sequence[str] | None = None,
    ) -> str:
        """COPY ``FROM STDIN`` text of the columns ``names`` (every row, ``\\n``-terminated).

        ``kinds[name]`` is ``"float"``, ``"json"`` or ``"text"`` (anything else). ``prefix``
        (optional): one more leading field per row, already COPY-safe (e.g. a row number).

        Built as *pieces*: a constant (separators, JSON keys, a batch-wide value) or one
        string per row (a column's values). :func:`_render` lays them out row after row with
        slice assignments and one ``join``: no Python code runs per row or per value.
        """
        return _render(self._copy_pieces(names, kinds, prefix), self.n)

    def _copy_pieces(
        self, names: Sequence[str], kinds: Mapping[str, str], prefix: Sequence[str] | None
    ) -> list[Piece]:
        pieces: list[Piece] = []
        if prefix is not None:
            pieces += [list(prefix), "\t"]
        for j, name in enumerate(names):
            if j:
                pieces.append("\t")
            col = self.columns.get(name)
            kind = kinds.get(name, "text")
            if col is None:
                pieces.append(COPY_NULL)
            elif isinstance(col, Const):
                pieces.append(_copy_scalar(col.value, kind))
            elif kind == "float":
                numbers = self._numbers(name, col) if isinstance(col, np.ndarray) else None
                pieces.append(_float_texts(col, numbers))  # type: ignore[arg-type]
            elif kind == "json" and isinstance(col, Matrix):
                # Numbers never need COPY escaping; a key might (escaped with its piece).
                pieces += [p if isinstance(p, list) else _escape(p)
                           for p in self._matrix_pieces(name, col)]
            elif kind == "json":
                pieces.append(_copy_escaped(self._json_texts(col)))
            elif isinstance(col, list) and self._plain(name, col):
                pieces.append(col)  # plain for JSON: no COPY escape either, and no NULL
            else:
                pieces.append(_copy_escaped(_texts(col)))  # type: ignore[arg-type]
        pieces.append("\n")
        return pieces

    # -- JSON (transactions.scored records) -----------------------------------------------------
    def json_rows(self) -> list[str]:
        """One JSON object per row, keys in column order (as ``orjson.dumps(row)`` of
        :meth:`to_rows`, up to number spelling), built like :meth:`copy_text`."""
        return self._json_text_rows().split("\n")[:-1]

    def json_records(self) -> list[bytes]:
        """:meth:`json_rows` as UTF-8 bytes (message values): the text is encoded once and
        split, not encoded row by row."""
        return self._json_text_rows().encode().split(b"\n")[:-1]

    def _json_text_rows(self) -> str:
        """Every row's JSON object followed by a newline."""
        if not self.n:
            return ""
        pieces: list[Piece] = ["{"]
        for j, (name, col) in enumerate(self.columns.items()):
            pieces.append(("," if j else "") + _json_text(name) + ":")
            if isinstance(col, Const):
                pieces.append(_json_text(col.value))
            elif isinstance(col, Matrix):
                pieces += self._matrix_pieces(name, col)
            elif isinstance(col, list) and self._plain(name, col):
                pieces += ['"', col, '"']  # nothing to escape: the quotes are the encoding
            else:
                pieces.append(self._json_texts(col, nulls=True, name=name))
        # JSON text holds no raw newline (orjson escapes control characters; plain strings
        # have none), so one is a safe row separator.
        pieces.append("}\n")
        return _render(pieces, self.n)

    def _matrix_pieces(self, name: str | None, col: Matrix) -> list[Piece]:
        """``{"a":`` values of a ``,"b":`` values of b ``}`` (the values of the column
        ``name`` rendered once a batch; ``None``: a matrix not in ``columns``, not cached).
        A rounded matrix comes as one piece: each row's whole object, compiled-loop spelled.
        An unkeyed matrix likewise, as one JSON array per row."""
        rounded = col.decimals is not None and self.n
        whole = _array_rows if not col.keyed else _object_rows if rounded else None
        if whole is not None:
            rows = self._whole_rows(name, col, whole)
            if rows is not None:  # _array_rows always renders; _object_rows may decline
                return [rows]
        values = None if name is None else self._matrix_cache.get(name)
        if values is None:
            values = _matrix_values(col)
            if name is not None:
                self._matrix_cache[name] = values
        if not col.names:
            return ["{}"]
        out: list[Piece] = []
        for k, (key, texts) in enumerate(zip(col.names, values, strict=True)):
            out += [("{" if k == 0 else ",") + _json_text(key) + ":", texts]
        out.append("}")
        return out

    def _whole_rows(
        self, name: str | None, col: Matrix, build: Callable[[Matrix], list[str] | None]
    ) -> list[str] | None:
        """``build(col)``: each row's whole JSON text (or None), cached under ``name``."""
        if name is None:
            return build(col)
        if name not in self._object_cache:
            self._object_cache[name] = build(col)
        return self._object_cache[name]

    def _numbers(self, name: str | None, col: np.ndarray) -> list[str]:
        """:func:`_number_texts` of column ``name`` (None: not cached). Shared: copy the list
        before changing it."""
        if name is None:
            return _number_texts(col)
        texts = self._number_cache.get(name)
        if texts is None:
            texts = self._number_cache[name] = _number_texts(col)
        return texts

    def _plain(self, name: str, col: list[Any]) -> bool:
        """:func:`_plain_strings` of column ``name``, cached."""
        plain = self._plain_cache.get(name)
        if plain is None:
            plain = self._plain_cache[name] = _plain_strings(col)
        return plain

    def _json_texts(self, col: Column, nulls: bool = False, name: str | None = None) -> list[Any]:
        """JSON text of each value; ``None`` (NULL) stays ``None`` unless ``nulls``
        (then ``"null"``). ``name``: the column's, to share its number texts."""
        null: Any = "null" if nulls else None
        if not self.n:
            return []
        if isinstance(col, Matrix):
            return _render([*self._matrix_pieces(None, col), "\n"], self.n).split("\n")[:-1]
        if isinstance(col, Const):
            return [_json_text(col.value)] * self.n
        if isinstance(col, np.ndarray):
            texts = self._numbers(name, col)
            if null is None and "null" in texts:
                texts = [None if t == "null" else t for t in texts]
            return texts
        # Most rows have no reasons: "[]" without a call to orjson.
        return [
            null if v is None else "[]" if type(v) is list and not v else _json_text(v)
            for v in col
        ]


#: Part of a rendered row: a constant, or one string per row.
Piece = str | list[str]


def _render(pieces: list[Piece], n: int) -> str:
    """Rows ``0..n-1`` of ``pieces`` concatenated: row ``i`` is every piece in order, a
    constant as is, a list by its ``i``-th string. Adjacent constants are merged, then each
    piece fills every ``m``-th slot of one flat list (a C-level slice assignment), and one
    ``join`` makes the text -- measured faster than a ``%`` template per row."""
    if not n:
        return ""
    merged: list[Piece] = []
    for p in pieces:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + p
        else:
            merged.append(p)
    m = len(merged)
    flat: list[str] = [""] * (n * m)
    for j, p in enumerate(merged):
        flat[j::m] = [p] * n if isinstance(p, str) else p
    return "".join(flat)


def _object_rows(m: Matrix) -> list[str] | None:
    """Each row's JSON object via :func:`numtext.json_objects`, or None where that does not
    apply: a matrix the fixed-point writer declines, or a key whose JSON spelling holds a
    backslash (the rows go into COPY text unescaped)."""
    if m.decimals is None:
        return None
    if any("\\" in _json_text(k) for k in m.names):
        return None
    return json_objects(m.names, m.values, m.decimals)


def _array_rows(m: Matrix) -> list[str]:
    """Each row as a JSON array: compiled-loop spelled when rounded, else through orjson
    (``null`` for NaN and infinities either way)."""
    rows = None if m.decimals is None else json_arrays(m.values, m.decimals)
    if rows is None:
        values = np.ascontiguousarray(m.values, dtype=np.float64)
        rows = [orjson.dumps(r, option=_NUMPY).decode() for r in values]
    return rows


def _matrix_values(m: Matrix) -> list[list[str]]:
    """The matrix's values as text, one list per column (key): the whole matrix goes through
    orjson once, transposed (``null`` for NaN and infinities, as orjson writes them)."""
    n = m.values.shape[0]
    if not m.names or not n:
        return [[] for _ in m.names]
    text = orjson.dumps(np.ascontiguousarray(m.values.T, dtype=np.float64), option=_NUMPY)
    return [c.split(",") for c in text.decode()[2:-2].split("],[")]


def _number_texts(col: np.ndarray) -> list[str]:
    """orjson's spelling of each value of a float array (``null`` for NaN and infinities)."""
    if not col.shape[0]:
        return []
    col = np.ascontiguousarray(col, dtype=np.float64)
    return orjson.dumps(col, option=_NUMPY).decode()[1:-1].split(",")


def _all_str(col: list[Any]) -> bool:
    return set(map(type, col)) <= {str}  # C-level: no Python bytecode per value


def _joined(col: list[Any]) -> str | None:
    """Every value's text joined, or None if one is not a str (``None`` included): ``join``
    checks each item in C, so one call both tests a column and gives the text to scan (the
    type scan and ``None`` scan it replaces measured ~3x the join itself; a str subclass
    counts as its text, as orjson writes it)."""
    try:
        return "".join(col)
    except TypeError:
        return None


def _plain_strings(col: list[Any]) -> bool:
    """True if every value is a str that JSON encodes as itself between quotes."""
    text = _joined(col)
    return text is not None and _JSON_SPECIAL.search(text) is None


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=_NUMPY, default=str).decode()


def _float_texts(col: list[Any] | np.ndarray, numbers: list[str] | None = None) -> list[str]:
    """COPY text of a float column: orjson's shortest round-trip spelling, ``\\N`` for NULL.
    ``numbers``: an array's :func:`_number_texts`, if known (not changed).

    orjson writes ``null`` for None, NaN and infinities alike; those few are told apart from
    the original values: an array's NaN is NULL (a missing coordinate), a list's None is NULL
    and its NaN/inf are stored as such (as the row path did).
    """
    if isinstance(col, np.ndarray):
        texts = _number_texts(col) if numbers is None else numbers
        if "null" in texts:
            texts = list(texts)
            for i in np.flatnonzero(~np.isfinite(col)).tolist():
                v = float(col[i])
                texts[i] = COPY_NULL if v != v else _pg_special(v)
        return texts
    values = [v if v is None or type(v) is float else float(v) for v in col]
    texts = orjson.dumps(values).decode()[1:-1].split(",") if values else []
    if "null" in texts:
        for i, v in enumerate(values):
            if v is None:
                texts[i] = COPY_NULL
            elif not math.isfinite(v):
                texts[i] = _pg_special(v)
    return texts


def _pg_special(v: float) -> str:
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _texts(col: list[Any]) -> list[Any]:
    if _all_str(col):
        return col
    return [None if v is None else str(v) for v in col]


def _needs_escape(text: str) -> bool:
    # Four substring scans (memchr-fast) beat one regex over megabytes.
    return "\\" in text or "\t" in text or "\n" in text or "\r" in text


def _copy_escaped(texts: list[Any]) -> list[str]:
    """COPY text fields: NULL as ``\\N``; backslash, tab, newline and CR escaped. A column is
    scanned once, joined: almost no value needs escaping."""
    has_null = None in texts
    present = [t for t in texts if t is not None] if has_null else texts
    if _needs_escape("".join(present)):
        texts = [None if t is None else _escape(t) for t in texts]
    if has_null:
        return [COPY_NULL if t is None else t for t in texts]
    return texts


def _escape(t: str) -> str:
    return t.translate(_COPY_ESCAPES) if _needs_escape(t) else t


def _copy_scalar(value: Any, kind: str) -> str:
    if value is None:
        return COPY_NULL
    if kind == "float":
        return _float_texts([value])[0]
    if kind == "json":
        return _escape(_json_text(value))
    return _escape(str(value))
