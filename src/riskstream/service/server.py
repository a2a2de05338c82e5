"""The one serve shell: the HTTP app on a background thread, and stop-on-signal handling.

``riskstream run`` and ``riskstream worker`` both serve the API, ``/health``, ``/metrics``
(and the dashboard) this way while their main thread drives the pipeline. The server installs
no signal handlers of its own: SIGINT/SIGTERM go to the service, which finishes and commits
the batch in hand first, then stops the server (:func:`stop_on_signals`). The app itself is
built by the caller's ``app_factory`` (``riskstream.api.create_app``), so this layer never
imports the interfaces above it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from riskstream.service.runtime import Runtime

log = logging.getLogger("riskstream")

#: Builds the ASGI app served for a runtime (``riskstream.api.create_app``).
AppFactory = Callable[[Runtime], Any]

#: How long a stopping server may take to finish its open requests (seconds).
STOP_TIMEOUT_S = 10.0


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` from a daemon thread."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.host, self.port = host, port
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        )
        # Signals belong to the service (it drains before the server stops).
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self) -> ApiServer:
        self.thread.start()
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=timeout_s)


@contextmanager
def serving(
    runtime: Runtime, app_factory: AppFactory | None, host: str, port: int
) -> Iterator[ApiServer | None]:
    """Serve ``app_factory(runtime)`` for the duration of the block (nothing if None)."""
    if app_factory is None:
        yield None
        return
    server = ApiServer(app_factory(runtime), host, port).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def stop_on_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call ``stop(signal name)`` (which must not block);
    the previous handlers come back afterwards."""

    def handler(signum: int, _frame: Any) -> None:
        stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
