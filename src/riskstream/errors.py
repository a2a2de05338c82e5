"""Named errors, so that retry loops catch outages and nothing else.

Contract: a backend (results store, state store, transport, model registry) raises a subclass
of :class:`Unavailable` when the service behind it cannot be reached or cannot take the
operation *right now* (connection refused or lost, timeout, disk full, broker down); retrying
the same operation later may succeed. Everything else -- a ``TypeError``, a ``KeyError``, a
schema mismatch -- is a bug or bad configuration and must surface at once, not be retried
forever and reported as an outage.

The built-in ``ConnectionError`` and ``TimeoutError`` count as outages too (:func:`is_outage`):
client libraries and our own waits raise them for exactly that.

>>> is_outage(StoreUnavailable("results", "connection refused"))
True
>>> is_outage(TimeoutError("no ack in 30 s")), is_outage(TypeError("bug"))
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class RiskstreamError(Exception):
    """Base of riskstream's own errors."""


class Unavailable(RiskstreamError):
    """A dependency is down or cannot take the operation now; retrying later may succeed."""

    #: Component name used in health reports and the ``pipeline_up{component}`` metric.
    component = "dependency"

    def __init__(self, component: str | None = None, reason: str = "") -> None:
        if component is not None:
            self.component = component
        self.reason = reason
        super().__init__(f"{self.component} unavailable: {reason}" if reason else
                         f"{self.component} unavailable")


class StoreUnavailable(Unavailable):
    """The results store (SQLite file, PostgreSQL) cannot be written or read now."""

    component = "results"


class StateUnavailable(Unavailable):
    """The state store (Redis) cannot be reached now."""

    component = "state"


class TransportUnavailable(Unavailable):
    """The broker (or another source or sink) cannot be reached or did not acknowledge."""

    component = "transport"


class RegistryUnavailable(Unavailable):
    """The model registry cannot be read now."""

    component = "registry"


class ConfigurationError(RiskstreamError, ValueError):
    """Settings that cannot work (an unknown backend, a missing bootstrap); fix and restart."""


class IncompatibleModel(RiskstreamError, ValueError):
    """A model that cannot be served with the running feature parameters."""


#: What counts as an outage besides :class:`Unavailable` (see module docstring).
OUTAGES: tuple[type[BaseException], ...] = (Unavailable, ConnectionError, TimeoutError)


def is_outage(exc: BaseException) -> bool:
    """True for errors a retry may cure (:data:`OUTAGES`), False for bugs."""
    return isinstance(exc, OUTAGES)


@contextmanager
def translated(
    error: type[Unavailable], causes: tuple[type[BaseException], ...], component: str | None = None
) -> Iterator[None]:
    """Re-raise ``causes`` (a client library's connection errors) as ``error``, chained.

    >>> try:
    ...     with translated(StateUnavailable, (OSError,)):
    ...         raise OSError("connection reset")
    ... except StateUnavailable as exc:
    ...     print(exc)
    state unavailable: OSError: connection reset
    """
    try:
        yield
    except causes as exc:
        if isinstance(exc, Unavailable):
            raise
        raise error(component, f"{type(exc).__name__}: {exc}") from exc
