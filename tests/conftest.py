"""Shared test factories. Keep each fixture small and documented; append new ones below."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support import free_port, kept

from riskstream.features import FeatureEngine, InMemoryStateStore
from riskstream.features.spec import FeatureSpec
from riskstream.models import ModelBundle
from riskstream.schema import CANONICAL_COLUMNS

#: 2024-01-01T00:00:00Z: a Monday, midnight UTC (hour of day 0).
T0 = 1_704_067_200.0

# Fixture types. Test modules spell them out locally (``Callable[..., pd.DataFrame]``) rather
# than importing this file, which is not an importable module under pytest's rules.
TxFactory = Callable[..., dict[str, Any]]
FrameFactory = Callable[..., pd.DataFrame]
StreamFactory = Callable[..., pd.DataFrame]


@pytest.fixture(scope="session")
def make_tx() -> TxFactory:
    """A valid raw transaction record (dict); ``drop=`` removes fields, kwargs override.

    E.g. ``make_tx(amount=-1, drop=("currency",))``.
    """

    def factory(*, drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "transaction_id": "tx-1",
            "timestamp": "2024-01-01T12:00:00Z",
            "user_id": "user-1",
            "amount": 42.5,
            "currency": "EUR",
            "merchant_id": "m-1",
            "merchant_category": "grocery",
            "city": "Paris",
            "country": "FR",
            "lat": 48.8566,
            "lon": 2.3522,
            "device_id": "dev-1",
            "channel": "pos",
        }
        rec.update(overrides)
        for name in drop:
            rec.pop(name, None)
        return rec

    return factory


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    defaults: dict[str, Any] = {
        "user_id": "u1",
        "amount": 50.0,
        "currency": "USD",
        "merchant_id": "",
        "merchant_category": "",
        "city": "",
        "country": "",
        "lat": np.nan,
        "lon": np.nan,
        "device_id": "",
        "channel": "pos",
    }
    filled = []
    for i, row in enumerate(rows):
        rec = {"transaction_id": f"tx-{i:06d}", "timestamp": T0 + i, **defaults, **row}
        filled.append(rec)
    frame = pd.DataFrame(filled)
    extras = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    frame = frame[list(CANONICAL_COLUMNS) + extras]
    frame["timestamp"] = frame["timestamp"].astype(np.float64)
    frame["amount"] = frame["amount"].astype(np.float64)
    frame["lat"] = frame["lat"].astype(np.float64)
    frame["lon"] = frame["lon"].astype(np.float64)
    return frame


@pytest.fixture(scope="session")
def make_frame() -> FrameFactory:
    """A validated-looking canonical batch from partial rows (epoch-second timestamps).

    Unset columns get neutral defaults: user ``u1``, amount 50, no merchant/device/location;
    ``transaction_id`` defaults to ``tx-<row>`` and ``timestamp`` to ``T0 + row``.
    """
    return _frame


def _stream(n: int = 2000, n_users: int = 40, n_merchants: int = 25, seed: int = 0,
            start: float = T0, days: float = 7.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # Distinct whole seconds: no two events tie, so any split into batches is in engine order.
    ts = start + np.sort(rng.choice(int(days * 86400), size=n, replace=False)).astype(float)
    users = rng.integers(0, n_users, n)
    merchants = rng.integers(0, n_merchants, n)
    # Each user lives in one of a few cities and has a typical spend level.
    cities = np.array([[48.8566, 2.3522], [51.5074, -0.1278], [52.52, 13.405], [40.4168, -3.7038]])
    home = users % len(cities)
    level = 20.0 + 10.0 * (users % 7)
    amount = np.round(level * rng.lognormal(0.0, 0.4, n), 2)
    return _frame(
        [
            {
                "timestamp": float(ts[i]),
                "user_id": f"u{users[i]}",
                "amount": float(amount[i]),
                "merchant_id": f"m{merchants[i]}",
                "merchant_category": f"cat{merchants[i] % 6}",
                "country": ("FR", "GB", "DE", "ES")[home[i]],
                "lat": float(cities[home[i], 0] + rng.normal(0, 0.02)),
                "lon": float(cities[home[i], 1] + rng.normal(0, 0.02)),
                "device_id": f"d{users[i]}-{int(rng.random() < 0.1)}",
            }
            for i in range(n)
        ]
    )


@pytest.fixture(scope="session")
def make_stream() -> StreamFactory:
    """A reproducible synthetic canonical stream, sorted by time (no fraud injected)."""
    return _stream


# -- system fixtures: a small trained model, a runtime on a temporary home ---------------------
@pytest.fixture(scope="session")
def sim_history() -> pd.DataFrame:
    """Two simulated days with every fraud scenario (labels included)."""
    from riskstream.simulate import SimConfig, simulate

    return simulate(SimConfig(n_users=300, n_merchants=80, days=4.0, seed=3, fraud_rate=0.02))


@pytest.fixture(scope="session")
def tiny_bundle(sim_history: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A model trained on the simulated history (labels dropped), saved once per session."""
    from riskstream.models import ModelBundle
    from riskstream.offline import replay

    bundle = replay.train(sim_history.drop(columns=["label", "scenario"]))
    path = tmp_path_factory.mktemp("model") / "current.npz"
    bundle.save(path)
    return ModelBundle.load(path)


@pytest.fixture
def make_runtime(tmp_path: Any, tiny_bundle: Any) -> Callable[..., Any]:
    """``make_runtime(**settings)``: a Runtime on a fresh home directory with the tiny model."""
    from riskstream.service.runtime import Runtime
    from riskstream.settings import Settings

    def factory(**overrides: Any) -> Any:
        settings = Settings(home=tmp_path / "home", **overrides)
        return keep(Runtime.build(settings, bundle=tiny_bundle))

    with kept(lambda runtime: runtime.results.close()) as keep:
        yield factory  # type: ignore[misc]


@pytest.fixture(scope="session")
def training_features(make_stream: StreamFactory) -> np.ndarray:
    """Feature matrix (columns = FEATURES) of a 3000-event synthetic stream, replayed from empty
    state. Read-only: copy before changing it."""
    feats = FeatureEngine().compute(make_stream(n=3000, n_users=60, seed=100),
                                    InMemoryStateStore()).features
    feats.flags.writeable = False
    return feats


@pytest.fixture(scope="session")
def trained_bundle(training_features: np.ndarray) -> ModelBundle:
    """A small default model bundle trained on ``training_features`` (treat as read-only)."""
    return ModelBundle.train(training_features, FeatureSpec(), info={"source": "tests"})


@pytest.fixture(scope="session")
def make_scored() -> Callable[..., tuple[dict[str, Any], dict[str, Any] | None]]:
    """``make_scored(i, **overrides)``: one results-store row and, unless its decision is
    ``allow``, its alert row — shaped like ``pipeline.result_rows`` output, for writing with
    ``ResultsStore.write([row], [alert])``. Transaction ``tx-<i>``, event time ``T0 + 60 i``,
    scored now; overrides apply to both rows (unknown keys to the scored row only)."""
    import time

    from riskstream.features.spec import FEATURES

    def factory(i: int, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        row: dict[str, Any] = {
            "transaction_id": f"tx-{i}",
            "timestamp": T0 + 60.0 * i,
            "user_id": "user-1",
            "amount": 42.0,
            "currency": "EUR",
            "merchant_id": "m-1",
            "merchant_category": "grocery",
            "city": "Paris",
            "country": "FR",
            "lat": 48.85,
            "lon": 2.35,
            "device_id": "dev-1",
            "channel": "pos",
            "score": 0.5,
            "decision": "allow",
            "reasons": [],
            "features": dict.fromkeys(FEATURES, 0.0),
            "model_version": "test-model",
            "latency_ms": 0.05,
            "scored_at": time.time(),
        }
        row.update(overrides)
        if row["decision"] == "allow":
            return row, None
        alert = {
            k: row[k]
            for k in ("transaction_id", "timestamp", "user_id", "amount", "score", "decision",
                      "reasons", "model_version")
        }
        alert.update(status="open", created_at=row["scored_at"])
        return row, alert

    return factory


# -- a results store that fails like a database restarting ----------------------------------------
class FlakyResultsStore:
    """Wraps a real results store; ``write_new`` (and so ``write``) raises while ``down`` or
    for the first ``fail_first`` calls. Everything else passes through."""

    def __init__(self, inner: Any, fail_first: int = 0, down: bool = False) -> None:
        self.inner, self.fail_first, self.down = inner, fail_first, down
        self.calls = self.refused = 0

    def write_new(self, rows: Any, alerts: list[dict[str, Any]]) -> set[str]:
        self.calls += 1
        if self.down or self.calls <= self.fail_first:
            self.refused += 1
            raise ConnectionError("database restarting")
        new: set[str] = self.inner.write_new(rows, alerts)
        return new

    def write(self, rows: Any, alerts: list[dict[str, Any]]) -> int:
        return len(self.write_new(rows, alerts))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def flaky_store() -> type[FlakyResultsStore]:
    """The :class:`FlakyResultsStore` class (conftest is not importable from tests)."""
    return FlakyResultsStore




# -- TCP proxy: make a real server unreachable without touching it ------------------------------
class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``. :meth:`cut` closes every forwarded
    connection (both ends, so the server rolls back open transactions) and refuses new ones
    until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._down = threading.Event()
        self._stop = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
                with self._lock:
                    self._open.discard(s)

    def cut(self) -> None:
        self._down.set()
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def restore(self) -> None:
        self._down.clear()

    def restore_after(self, seconds: float) -> threading.Thread:
        thread = threading.Thread(target=lambda: (time.sleep(seconds), self.restore()),
                                  daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._listener.close()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[tuple[str, int]], TcpProxy]]:
    """``tcp_proxy((host, port))``: a cuttable forwarder to ``host:port``."""
    with kept(TcpProxy.close) as keep:
        yield lambda target: keep(TcpProxy(target))


@pytest.fixture
def stop_process() -> Callable[..., str]:
    """``stop_process(proc, timeout=45)``: Ctrl-C a subprocess, wait for it, return its output;
    fail (after killing it) if it does not stop in time."""

    def stop(proc: subprocess.Popen[str], timeout: float = 45) -> str:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError(f"did not stop within {timeout} s of Ctrl-C:\n{out}") from None
        return out

    return stop
