"""Transports: where micro-batches come from and where alerts go.

Contract: a :class:`Source` yields :class:`Batch` objects (a column frame of raw records, or
raw byte messages, plus the position after them) via ``poll``; ``commit(batch)`` acknowledges
everything up to that batch and is called only after its results are durable. A :class:`Sink`
publishes alert records and returns once they are acknowledged. The core never knows which
transport it runs on.

A :class:`Feeder` hands batches from an iterator (the simulator) to a transport at a rate.

Transports: in-process (here) and Kafka (:mod:`riskstream.transport.kafka`, imported on its own
because it needs the ``kafka`` extra; docs/streaming.md).
"""

from riskstream.transport.base import Batch, Sink, Source
from riskstream.transport.feeder import Feeder
from riskstream.transport.inprocess import InProcessQueue, ListSink

__all__ = ["Batch", "Feeder", "InProcessQueue", "ListSink", "Sink", "Source"]
