"""The run loop and what it is built from: decode (:mod:`.decode`), result columns
(:mod:`.results`), the one write path shared with ``POST /predict`` (:mod:`.writer`), the
loop itself (:mod:`.loop`) and write-behind (:mod:`.writebehind`).

Contract: a batch's results are durable before its state change is saved, and its state is
saved before its source position is committed; a crash anywhere replays the batch, and the
stores make the replay a no-op. Bad records become dead letters and never stop the loop. Only
outages (:class:`~riskstream.errors.Unavailable`) are retried; a bug raises at once.
"""

from riskstream.pipeline.decode import decode, decode_indexed
from riskstream.pipeline.loop import ErrorPolicy, Pipeline, Stopped, backoff, settle_gc
from riskstream.pipeline.results import result_batch, result_rows
from riskstream.pipeline.writer import ResultWriter

__all__ = [
    "ErrorPolicy",
    "Pipeline",
    "ResultWriter",
    "Stopped",
    "backoff",
    "decode",
    "decode_indexed",
    "result_batch",
    "result_rows",
    "settle_gc",
]
