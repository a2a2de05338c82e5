"""The HTTP API (FastAPI): scoring, results, alerts, users, health and Prometheus metrics.

Contract: ``create_app(runtime)`` serves ``GET /``, ``/health``, ``POST /predict``,
``GET /transactions``, ``/alerts``, ``/alerts/{id}``, ``POST /alerts/{id}/label``,
``GET /users/{id}``, ``/metrics``, and the analyst dashboard (``/dashboard``,
``/stream/transactions``; :mod:`riskstream.dashboard`). ``GET /`` is JSON unless the client
asks for HTML (a browser), which is redirected to ``/dashboard``. ``/predict`` runs the same
:class:`~riskstream.scoring.core.ScoringCore` as the stream and records through its write path
(:class:`~riskstream.pipeline.ResultWriter`). Bad input is a 422 naming the field; bodies over
``max_body_bytes`` are refused with 413. Layout: one router per resource in :mod:`.routes`,
shared dependencies in :mod:`.deps`, middleware in :mod:`.middleware`.
"""

from riskstream.api.app import create_app

__all__ = ["create_app"]
