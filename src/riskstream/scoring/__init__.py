"""The one scoring core: a validated micro-batch in; features, scores, decisions, reasons out.

Contract: stream workers, ``POST /predict``, ``riskstream score``/``train`` replays and the
benchmark all call :meth:`ScoringCore.score`; nothing else computes features or scores. The
state change of a batch travels with it (:attr:`ScoredBatch.update`) and is saved by
:meth:`ScoringCore.commit` only after the batch's results are durable.
"""

from riskstream.scoring.core import DECISIONS, ScoredBatch, ScoringCore, Thresholds

__all__ = ["DECISIONS", "ScoredBatch", "ScoringCore", "Thresholds"]
