"""The one write path of a scored batch: results durable, then published, then the state
change saved, then counted.

The stream (:class:`~riskstream.pipeline.Pipeline`) and ``POST /predict`` both record what
they scored through a :class:`ResultWriter`, so "answered" and "streamed" mean the same
thing: stored (idempotently, keyed by ``transaction_id``) before the state moves on. Each step
runs under a ``guard(component, action)``: the pipeline's retries outages with backoff; the
default runs the action once and lets an outage surface (the API answers 503).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from riskstream.errors import is_outage
from riskstream.metrics import Metrics
from riskstream.pipeline.results import result_batch
from riskstream.scoring.core import ScoredBatch, ScoringCore
from riskstream.storage.base import ResultsStore
from riskstream.storage.batch import ResultBatch
from riskstream.transport.base import Sink

log = logging.getLogger("riskstream.pipeline")

#: ``guard(component, action)`` runs ``action`` on behalf of ``component`` and returns its value.
Guard = Callable[[str, Callable[[], Any]], Any]


def once(component: str, action: Callable[[], Any]) -> Any:
    """The plain guard: run the action once."""
    return action()


class ResultWriter:
    """Writes scored batches in the order that makes a replay harmless (module docstring).

    ``results_sink`` gets every stored row (Kafka: ``transactions.scored`` and ``alerts``);
    ``sink`` gets the alert rows only. Both are optional.
    """

    def __init__(
        self,
        core: ScoringCore,
        results: ResultsStore,
        metrics: Metrics,
        *,
        results_sink: Sink | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.core = core
        self.results = results
        self.metrics = metrics
        self.results_sink = results_sink
        self.sink = sink

    def record(self, scored: ScoredBatch, guard: Guard = once) -> set[str]:
        """Results durable and published, state saved, metrics counted; the ids that were new
        (the others were stored already: a client's retry, a replayed message)."""
        new = self.write_results(result_batch(scored), guard)
        self.commit(scored, guard)
        self.observe(scored, scored.elapsed_ms / 1000.0)
        return new

    def write_results(self, results: ResultBatch, guard: Guard = once) -> set[str]:
        """Store the batch's rows and alerts, then publish them; the ids that were new."""
        alerts = results.alerts
        new: set[str] = guard("results", lambda: self.results.write_new(results, alerts))
        results_sink, sink = self.results_sink, self.sink
        if results_sink is not None:
            guard("sink", lambda: results_sink.publish_results(results))
        if sink is not None and alerts:
            guard("sink", lambda: sink.publish(alerts))
        return new

    def commit(self, scored: ScoredBatch, guard: Guard = once) -> None:
        """Save the batch's state change (after its results are durable); then mark the label
        changes it folded in as applied."""
        guard("state", lambda: self.core.commit(scored))
        labels = scored.update.labels
        if labels is not None and len(labels):
            pairs = labels.applied_pairs()
            guard("results", lambda: self.results.mark_labels_applied(pairs))
            self.core.labels_done(labels)
            self.metrics.labels_applied.inc(len(labels))

    def observe(self, scored: ScoredBatch, seconds: float) -> None:
        """Count a recorded batch in the metrics."""
        m = self.metrics
        m.processed.inc(len(scored))
        m.batch_size.observe(len(scored))
        m.latency.observe(seconds)
        for code, name in ((1, "review"), (2, "block")):
            k = int((scored.decisions == code).sum())
            if k:
                m.anomalies.labels(name).inc(k)
        late = int(len(scored) - scored.update.applied.sum())
        if late:
            m.late.inc(late)
        try:
            m.users.set(self.core.state.count("user"))
        except Exception as exc:
            if not is_outage(exc):
                raise
            # A gauge is not worth failing a durable batch for; the next batch sets it.
            log.debug("state_users not updated: %s", exc)
