"""Alembic environment: migrate the connection handed over by :mod:`riskstream.storage.migrate`.

``riskstream.storage.migrate`` opens the connection (taking PostgreSQL's advisory lock, so two
workers starting at once do not both migrate) and passes it in ``config.attributes``; with a
plain ``sqlalchemy.url`` option instead, this opens its own engine (``alembic`` CLI use).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from riskstream.storage.tables import metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: Alembic's batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


try:
    _in_alembic = context.config is not None
except (NameError, AttributeError):  # imported outside Alembic, e.g. by doctest collection
    _in_alembic = False
if _in_alembic:
    run()
