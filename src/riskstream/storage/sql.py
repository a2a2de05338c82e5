"""SQLAlchemy 2 results store: SQLite (embedded default) and PostgreSQL (psycopg 3).

Contract: :class:`SQLResultsStore` is the :class:`~riskstream.storage.base.ResultsStore` of
both databases, assembled from its parts:

* :mod:`riskstream.storage.tables` -- the schema (tables, column types, feature-set ids);
* :mod:`riskstream.storage.engine` -- connection settings, and connection failures raised as
  :class:`~riskstream.errors.StoreUnavailable` by every method that touches the database;
* :mod:`riskstream.storage.writer` -- idempotent batch writes (SQLite ``INSERT .. ON
  CONFLICT``, PostgreSQL ``COPY``), alerts, dead letters, labels, model versions;
* :mod:`riskstream.storage.queries` -- what the API, the dashboard and maintenance read;
* :mod:`riskstream.storage.outcomes` -- outcome labels (fraud reported after the fact).

The schema is owned by Alembic (:mod:`riskstream.storage.migrate`); opening a store brings
the database to the current revision unless told not to. The names tools import from here
(``make_engine``, ``metadata``, ``scored``, ...) are re-exported from those modules.
"""

from __future__ import annotations

from sqlalchemy import text

from riskstream.storage.base import ResultsStore
from riskstream.storage.engine import PG_CONNECT_ARGS, make_engine, outages_reported
from riskstream.storage.migrate import ensure_schema
from riskstream.storage.outcomes import OutcomeLabels
from riskstream.storage.queries import ResultsQueries
from riskstream.storage.tables import feature_set_id, metadata, scored
from riskstream.storage.writer import MAX_PAYLOAD_CHARS, ResultsWriter

__all__ = [
    "MAX_PAYLOAD_CHARS",
    "PG_CONNECT_ARGS",
    "SQLResultsStore",
    "feature_set_id",
    "make_engine",
    "metadata",
    "scored",
]


class SQLResultsStore(ResultsWriter, ResultsQueries, OutcomeLabels, ResultsStore):
    """Results in SQLite or PostgreSQL (see module docstring).

    ``migrate=True`` (default) upgrades the schema to the current revision on open; with
    ``False`` the schema must already be there (``riskstream db init``) and opening does not
    connect. An unreachable database raises ``StoreUnavailable`` on open (when migrating) or
    on first use.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            with outages_reported():
                ensure_schema(self.engine)
        self._pg = self.engine.dialect.name == "postgresql"
        self._feature_names = {}
        if self._pg:
            self._prepare_copy()

    def ping(self) -> bool:
        """True when a trivial query succeeds; never raises (health checks poll it)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
