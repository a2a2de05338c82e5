"""Results stores: scored transactions, alerts, analyst labels, dead letters, model versions.

Contract (``tests/storage/test_results_contract.py`` runs it per backend): ``write`` stores a
scored batch and its alerts in one transaction and is idempotent on ``transaction_id`` (the
first write wins; a replay writes nothing new); when it returns, the rows are durable. Queries
page with ``limit``/``offset`` and filter by time, user and decision.
"""

from riskstream.storage.base import ResultsStore
from riskstream.storage.sql import SQLResultsStore

__all__ = ["ResultsStore", "SQLResultsStore"]
