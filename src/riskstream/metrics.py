"""Prometheus metrics. One registry per runtime (tests run several in one process).

Exported names (the Grafana dashboard and its test rely on them):
``transactions_processed_total``, ``anomalies_total{decision}``,
``processing_latency_seconds`` (per micro-batch, core + durable write),
``batch_size``, ``dead_letters_total{reason}``, ``model_info{version}``, ``state_users``,
``late_events_total``, ``pipeline_up{component}``, ``labels_total{source,outcome}``
(outcome labels received: ``accepted`` or ``rejected``), ``labels_applied_total`` (label
changes folded into the label-aware state), ``alert_precision{window}`` (share of the alerts
with an outcome that were fraud) and ``fraud_recall{window}`` (share of the reported frauds
that had raised an alert), over the last ``7d`` / ``30d`` of transaction time (NaN: nothing
to divide by yet).

Kafka workers add ``kafka_consumer_lag{topic,partition}`` (messages behind the high watermark
reported with fetched messages), ``end_to_end_latency_seconds`` (broker timestamp of an input
message -> its result durable and published), ``kafka_assigned_partitions`` and
``kafka_rebalances_total{event}``.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

#: Alert-quality gauge windows, in days of transaction time.
QUALITY_WINDOWS = {"7d": 7, "30d": 30}


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
        self.labels = Counter(
            "labels", "Outcome labels received, by source and outcome (accepted | rejected)",
            ["source", "outcome"], registry=r,
        )
        self.labels_applied = Counter(
            "labels_applied", "Outcome-label changes folded into the label-aware state",
            registry=r,
        )
        self.alert_precision = Gauge(
            "alert_precision", "Alerts with an outcome label that were fraud (share), by window",
            ["window"], registry=r,
        )
        self.fraud_recall = Gauge(
            "fraud_recall", "Reported frauds that had raised an alert (share), by window",
            ["window"], registry=r,
        )
        for window in QUALITY_WINDOWS:
            self.alert_precision.labels(window).set(float("nan"))
            self.fraud_recall.labels(window).set(float("nan"))
        for decision in ("review", "block"):
            self.anomalies.labels(decision)
        # -- Kafka workers (docs/streaming.md) ------------------------------------------------
        self.consumer_lag = Gauge(
            "kafka_consumer_lag",
            "Messages behind the partition's high watermark (as reported with fetched messages)",
            ["topic", "partition"],
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "end_to_end_latency_seconds",
            "Broker timestamp of an input message -> its result durable and published",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "kafka_assigned_partitions", "Input partitions assigned to this worker", registry=r
        )
        self.rebalances = Counter(
            "kafka_rebalances", "Partition assignment changes, by event", ["event"], registry=r
        )

    def value(self, name: str, **labels: str) -> float:
        """The current value of an exported sample (0 if it has none yet), through the
        registry's public API.

        >>> m = Metrics(); m.anomalies.labels("review").inc(2)
        >>> m.value("anomalies_total", decision="review"), m.value("transactions_processed_total")
        (2.0, 0.0)
        """
        found = self.registry.get_sample_value(name, labels or None)
        return 0.0 if found is None else found


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every value, in one pass (a 5,000-message batch costs one
    ``searchsorted`` instead of 5,000 calls). Uses prometheus_client's per-bucket counters,
    which ``observe`` itself uses; falls back to ``observe`` if they ever change."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values.tolist():
            histogram.observe(v)
        return
    # Bucket i counts values <= bounds[i] and > bounds[i-1], like observe(); the last is +Inf.
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)
    total.inc(float(values.sum()))
