"""Alembic migrations of the results database (SQLite and PostgreSQL).

Run them through :mod:`riskstream.storage.migrate` (``riskstream db init|migrate|reset``), which
points Alembic at this directory; there is no ``alembic.ini``. One revision per schema change,
named ``vNNNN_<what>.py`` with ``revision = "NNNN"``.
"""
