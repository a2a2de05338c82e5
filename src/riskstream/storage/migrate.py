"""Schema management of the results database with Alembic: init, migrate, reset, status.

The same revisions serve SQLite and PostgreSQL. There is no ``alembic.ini``: the script
directory ships inside the package (``riskstream/storage/migrations``).

* :func:`upgrade` (``riskstream db init`` / ``db migrate``) brings any database to ``head``:
  an empty one is created, an older one migrated. A database created by ``SQLResultsStore``
  before migrations existed (tables but no ``alembic_version``) is first stamped ``0001``,
  which is exactly that schema.
* On PostgreSQL the whole upgrade runs in one transaction (DDL is transactional there) under
  an advisory lock, so two processes starting together do not both migrate.
* :func:`ensure_schema` is what a store calls when it opens: one cheap query when the
  database is already at ``head``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from riskstream.storage.tables import metadata

#: The newest revision. ``tests/storage/test_migrations.py`` checks it is the script head.
HEAD = "0007"
#: The revision of the schema ``SQLResultsStore`` created before Alembic was introduced.
LEGACY = "0001"
#: pg_advisory_xact_lock key serialising migrations ("rsmg" in ASCII).
_LOCK_KEY = 0x72736D67

SCRIPT_LOCATION = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for this package's scripts, bound to ``connection`` or ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_head() -> str:
    """The head revision according to the scripts on disk."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision; ``None`` when it was never migrated (or is empty)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``revision`` (default: ``head``); returns ``(before, after)`` revisions."""
    with engine.begin() as conn:
        _lock(conn)
        before = MigrationContext.configure(conn).get_current_revision()
        cfg = alembic_config(conn)
        if before is None and inspect(conn).has_table("scored_transactions"):
            command.stamp(cfg, LEGACY)  # adopt a pre-migration database
            before = LEGACY
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"`` drops everything). For tests and rollbacks."""
    with engine.begin() as conn:
        _lock(conn)
        command.downgrade(alembic_config(conn), revision)


def ensure_schema(engine: Engine) -> None:
    """Upgrade to :data:`HEAD` unless the database is there already (one query if so)."""
    if current_revision(engine) != HEAD:
        upgrade(engine)


def reset(engine: Engine) -> None:
    """Drop every results table and the revision table, then create the schema at ``head``."""
    with engine.begin() as conn:
        _lock(conn)
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)
