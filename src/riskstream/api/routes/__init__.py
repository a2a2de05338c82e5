"""One router per resource: ``health`` (``/``, ``/health``, ``/metrics``), ``transactions``
(``/predict``, ``/transactions``), ``alerts`` (``/alerts``, verdicts), ``labels`` (outcome
labels), ``users``."""

from riskstream.api.routes import alerts, health, labels, transactions, users

ROUTERS = (health.router, transactions.router, alerts.router, labels.router, users.router)

__all__ = ["ROUTERS"]
