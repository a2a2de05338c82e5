"""Real-service fixtures for the store tests: PostgreSQL, Redis, and ways to break them.

* PostgreSQL (``RISKSTREAM_TEST_PG_HOST``/``_PORT``, default 127.0.0.1:5432, user postgres,
  database test): every ``make_pg_url()`` is a fresh schema ``rs_test_<session>_<n>``; all
  are dropped at the end of the session.
* Redis (``RISKSTREAM_TEST_REDIS_URL``, default DB 15): keys under ``rs-test-<uuid>:``,
  deleted by prefix afterwards.
* Outages without touching the shared services: ``redis_server()`` starts a throwaway
  ``redis-server`` (AOF, fsync always) that a test may kill and restart; ``pg_proxy()``
  forwards a loopback port to PostgreSQL and can cut every connection and refuse new ones.

An unreachable service FAILS the test with how to start it; nothing is skipped.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import free_port, kept

REDIS_URL = os.environ.get("RISKSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_HOST = os.environ.get("RISKSTREAM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RISKSTREAM_TEST_PG_PORT", "5432"))
SESSION = uuid.uuid4().hex[:8]
#: Every test connection carries this application_name, so teardown can end stray sessions.
APP_NAME = f"rs-test-{SESSION}"

START_PG = (
    f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (user postgres, database test). "
    "Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "(or: docker compose -f deploy/docker-compose.yml up -d postgres)."
)
START_REDIS = (
    f"Redis is not reachable at {REDIS_URL}. Start it: redis-server --daemonize yes --bind "
    "127.0.0.1 --port 6379 --save '' --appendonly no (or: docker compose -f "
    "deploy/docker-compose.yml up -d redis)."
)




# -- PostgreSQL -----------------------------------------------------------------------------
def pg_admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="test",
                               connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"{START_PG}\n({exc})", pytrace=False)


def pg_url(schema: str, host: str = PG_HOST, port: int = PG_PORT) -> str:
    """SQLAlchemy URL of database ``test`` with ``schema`` first on the search path."""
    return (f"postgresql+psycopg://postgres@{host}:{port}/test"
            f"?options=-csearch_path%3D{schema}&application_name={APP_NAME}")


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[list[str]]:
    """Schemas created this session; dropped (after ending stray sessions) at the end."""
    created: list[str] = []
    yield created
    if not created:
        return
    with pg_admin() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = %s AND pid <> pg_backend_pid()", (APP_NAME,))
        for schema in created:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_pg_url(pg_schemas: list[str]) -> Callable[..., str]:
    """``make_pg_url(host=, port=)``: URL of a fresh, empty schema (through a proxy if given)."""

    def factory(host: str = PG_HOST, port: int = PG_PORT) -> str:
        schema = f"rs_test_{SESSION}_{len(pg_schemas)}"
        with pg_admin() as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        pg_schemas.append(schema)
        return pg_url(schema, host, port)

    return factory


# -- Redis ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared test Redis (DB 15 by default), checked reachable."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"{START_REDIS}\n({exc})", pytrace=False)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix on the shared test Redis; every key under it is deleted after."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    prefix = f"rs-test-{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*", count=10_000))
    if keys:
        client.unlink(*keys)
    client.close()


class RedisProcess:
    """A throwaway ``redis-server`` on a free port, persisted with AOF (fsync always), so a
    kill -9 and restart keeps every acknowledged write — like a production Redis should."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        # Wait for the AOF to be loaded, as a client retrying after a restart would.
        while client.info("persistence").get("loading"):
            time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart_after(self, seconds: float) -> threading.Thread:
        thread = threading.Thread(target=lambda: (time.sleep(seconds), self.start()),
                                  daemon=True)
        thread.start()
        return thread


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[[], RedisProcess]]:
    """``redis_server()``: start a throwaway redis-server; killed at teardown."""
    def factory() -> RedisProcess:
        workdir = tmp_path / f"redis-{len(keep)}"
        workdir.mkdir()
        server = keep(RedisProcess(workdir))
        server.start()
        return server

    with kept(RedisProcess.kill) as keep:
        yield factory


@pytest.fixture
def pg_proxy(tcp_proxy: Callable[..., Any]) -> Callable[..., Any]:
    """``pg_proxy()``: a cuttable forwarder (root ``tcp_proxy``) to the test PostgreSQL."""
    return lambda target=(PG_HOST, PG_PORT): tcp_proxy(target)
