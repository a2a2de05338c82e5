"""Alembic revision scripts (``revision = "NNNN"``, applied in ``down_revision`` order)."""
