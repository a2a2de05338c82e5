"""Prometheus metrics. One registry per runtime (tests run several in one process).

Exported names (the Grafana dashboard and its test rely on them):
``transactions_processed_total``, ``anomalies_total{decision}``,
``processing_latency_seconds`` (per micro-batch, core + durable write),
``batch_size``, ``dead_letters_total{reason}``, ``model_info{version}``, ``state_users``,
``late_events_total``, ``pipeline_up{component}``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.processed = Counter("transactions_processed", "Transactions scored", registry=r)
        self.anomalies = Counter(
            "anomalies", "Transactions flagged, by decision", ["decision"], registry=r
        )
        self.latency = Histogram(
            "processing_latency_seconds",
            "Per-batch processing time (score + durable write)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "batch_size",
            "Events per micro-batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 5000),
            registry=r,
        )
        self.dead_letters = Counter(
            "dead_letters", "Records refused, by reason", ["reason"], registry=r
        )
        self.late = Counter(
            "late_events", "Events older than their user's state (not applied)", registry=r
        )
        self.model = Info("model", "Model being served", registry=r)
        self.users = Gauge("state_users", "Users with state", registry=r)
        self.up = Gauge("pipeline_up", "1 when a component is healthy", ["component"], registry=r)
        for decision in ("review", "block"):
            self.anomalies.labels(decision)
