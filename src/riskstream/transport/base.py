"""Source and sink interfaces (see package docstring).

Optional capabilities are declared here with their defaults, so callers never probe for
them: :meth:`Sink.publish_results` takes a batch's result columns (a sink that can render
them without row dicts overrides it). Outages are raised as
:class:`~riskstream.errors.TransportUnavailable` (or another
:class:`~riskstream.errors.Unavailable`), which the pipeline retries; any other error is a bug.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from riskstream.storage.batch import ResultBatch


@dataclass
class Batch:
    """Raw records of one micro-batch: a frame (already columnar) and/or byte messages."""

    frame: pd.DataFrame | None = None
    messages: list[bytes] = field(default_factory=list)
    position: Any = None  # what commit() acknowledges
    #: Per-message transport metadata aligned with ``messages`` (Kafka: partition, offset,
    #: timestamp, key), or empty. Dead letters carry it so they can point at their origin.
    meta: list[Any] = field(default_factory=list)
    source: str = ""
    received_at: float = 0.0

    def __len__(self) -> int:
        return (0 if self.frame is None else len(self.frame)) + len(self.messages)


class Source(ABC):
    @abstractmethod
    def poll(self, max_records: int, timeout_s: float) -> Batch | None: ...

    @abstractmethod
    def commit(self, batch: Batch) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Sink(ABC):
    @abstractmethod
    def publish(self, records: list[dict[str, Any]]) -> None:
        """Publish and wait for acknowledgement."""

    def publish_results(self, batch: ResultBatch) -> None:
        """Publish a batch's stored result rows (default: as row dicts, through
        :meth:`publish`); a sink that renders the columns itself overrides this."""
        self.publish(batch.to_rows())

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
