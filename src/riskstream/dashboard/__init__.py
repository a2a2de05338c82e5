"""The analyst dashboard, served by the riskstream app itself on the API's port.

Contract: :func:`mount_dashboard` adds ``/dashboard`` (server-rendered HTML + vanilla JS + CSS,
all package data, nothing from a CDN), ``/dashboard/api/summary`` and ``/dashboard/api/alerts``
(JSON), and ``/stream/transactions`` (Server-Sent Events) to a FastAPI app. Everything is read
through :class:`~riskstream.storage.ResultsStore`, so the page works the same over SQLite
(embedded) and PostgreSQL, whether the pipeline runs in-process or in separate workers.
"""

from riskstream.dashboard.routes import mount_dashboard

__all__ = ["mount_dashboard"]
