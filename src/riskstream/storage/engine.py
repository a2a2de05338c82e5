"""The SQL results store's connection layer: engines, and connection failures as outages.

Contract:

* :func:`make_engine` gives every process the same connection settings: pool pre-ping,
  PostgreSQL connect and keepalive timeouts (:data:`PG_CONNECT_ARGS`), SQLite WAL with
  ``synchronous=FULL`` (a committed write survives a crash).
* :func:`reports_outages` wraps each public store method that touches the database: a
  failure to reach or use the database *now* (connection refused or lost, pool exhausted,
  SQLite file locked, disk full, I/O error) leaves it as
  :class:`~riskstream.errors.StoreUnavailable`, chained from the driver's error, which the
  pipeline retries; everything else (integrity and programming errors, a value the database
  rejects, a bad argument, SQLite's "no such table") propagates unchanged, never retried.
* :class:`SQLStoreBase` declares what the store's parts (:mod:`~riskstream.storage.writer`,
  :mod:`~riskstream.storage.queries`) share; :class:`~riskstream.storage.sql.SQLResultsStore`
  sets it up.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from riskstream.errors import StoreUnavailable
from riskstream.storage.base import ResultsStore

#: PostgreSQL connection options (libpq): fail a connection attempt after 5 s, and notice a
#: silently dead peer (cable cut, blackholed port) within ~30 s instead of hanging forever.
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with this project's connection settings (pool pre-ping, timeouts,
    SQLite pragmas)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    connect_args = PG_CONNECT_ARGS if url.startswith("postgresql") else {}
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets the API read while the pipeline writes; FULL makes each commit durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


# -- connection failures -> StoreUnavailable ---------------------------------------------------
#: SQLAlchemy's wrappers of a driver's connection-level errors, and its own pool and
#: disconnect errors (the last two are raised without a driver error underneath).
_SA_OUTAGES: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
#: SQLite's primary result code for a statement it rejects as written (syntax, no such table
#: or column). CPython raises it as ``OperationalError`` like a locked or full database, but
#: retrying cannot cure it.
_SQLITE_ERROR = 1


def _sqlite_rejects_statement(err: BaseException | None) -> bool:
    """True for a SQLite error about the statement or the API's use, not the database's state."""
    if not isinstance(err, sqlite3.Error):
        return False
    if not isinstance(err, sqlite3.OperationalError):
        return True  # InterfaceError (binding misuse) and the like
    code = getattr(err, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_ERROR


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached or used now (see module docstring).

    >>> is_connection_failure(sqlite3.OperationalError("database is locked"))
    True
    >>> is_connection_failure(sa_exc.IntegrityError("INSERT ..", {}, Exception("dup")))
    False
    """
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy recognised a disconnect
            return True
        return isinstance(exc, _SA_OUTAGES) and not _sqlite_rejects_statement(exc.orig)
    if isinstance(exc, _SA_OUTAGES):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return not _sqlite_rejects_statement(exc)
    # The PostgreSQL COPY path uses the psycopg connection itself, whose errors SQLAlchemy
    # does not wrap. psycopg is an optional extra: if it was never imported, it raised nothing.
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, (psycopg.OperationalError,
                                                    psycopg.InterfaceError))


@contextmanager
def outages_reported() -> Iterator[None]:
    """Re-raise connection failures (:func:`is_connection_failure`) as ``StoreUnavailable``,
    chained; let every other error through as it is."""
    try:
        yield
    except Exception as exc:
        if not is_connection_failure(exc):
            raise
        # The driver's message, without SQLAlchemy's statement and parameters around it.
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
        raise StoreUnavailable(None, f"{type(cause).__name__}: {str(cause).strip()}") from exc


P = ParamSpec("P")
R = TypeVar("R")


def reports_outages(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` under :func:`outages_reported`; a generator method for its whole
    iteration (its queries run while it is consumed, not when it is called)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(*args: P.args, **kwargs: P.kwargs) -> Iterator[Any]:
            with outages_reported():
                yield from cast(Iterator[Any], method(*args, **kwargs))

        return cast(Callable[P, R], generator)

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with outages_reported():
            return method(*args, **kwargs)

    return call


class SQLStoreBase(ResultsStore):
    """What the SQL store's parts share; :class:`~riskstream.storage.sql.SQLResultsStore`
    sets it up on construction. A ``ResultsStore`` so that one part may call the other's
    methods (a label returns the alert as read)."""

    url: str
    engine: Engine
    #: PostgreSQL (COPY writes, ``percentile_cont``) rather than SQLite.
    _pg: bool
    #: Feature sets this process has registered or read: id -> names.
    _feature_names: dict[str, tuple[str, ...]]

    def _label_verdict(self, conn: Any, transaction_id: str, verdict: str) -> None:
        """Record an analyst verdict as an outcome label (the outcomes part implements it)."""
        raise NotImplementedError
