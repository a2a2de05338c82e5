"""One router per resource: ``health`` (``/``, ``/health``, ``/metrics``), ``transactions``
(``/predict``, ``/transactions``), ``alerts`` (``/alerts``, verdicts), ``users``."""

from riskstream.api.routes import alerts, health, transactions, users

ROUTERS = (health.router, transactions.router, alerts.router, users.router)

__all__ = ["ROUTERS"]
