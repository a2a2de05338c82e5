"""Fixtures for the dashboard tests: a live ``riskstream run`` process, Debian's Chromium driven
by Playwright (screenshots of failures go to ``tmp/artifacts``), and a throwaway PostgreSQL
database. Chromium and PostgreSQL are prerequisites of ``make test`` (scripts/test-prereqs.sh):
when missing, these tests fail with how to get them rather than skip silently."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port, launch_run, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
#: Where failing browser tests leave a screenshot (CI can collect the directory).
ARTIFACTS = Path(os.environ.get("RISKSTREAM_TEST_ARTIFACTS", "tmp/artifacts"))






@dataclass
class LiveApp:
    """A ``riskstream run`` process on a free port with its own home directory."""

    proc: subprocess.Popen[str]
    base: str
    home: Path
    output: str = field(default="")

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(self.base + path, params=params, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def stop(self, timeout: float = 45) -> str:
        """Ctrl-C, wait for a clean exit; return the process output (idempotent)."""
        if self.proc.returncode is not None:
            return self.output
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
            raise AssertionError(f"did not stop within {timeout} s:\n{self.output}") from None
        return self.output


def start_app(home: Path, rate: int, users: int = 500) -> LiveApp:
    """Start ``riskstream run`` (simulator at ``rate`` tx/s) and wait until it has alerts."""
    port = free_port()
    proc = launch_run(home, port, sim_rate=rate, sim_users=users)
    app = LiveApp(proc, f"http://127.0.0.1:{port}", home)
    try:
        wait_for(lambda: httpx.get(app.base + "/health", timeout=2).is_success, 90, "/health")
        wait_for(lambda: app.get("/alerts", limit=1)["items"], 60, "a first alert")
    except AssertionError:
        app.stop()
        raise AssertionError("riskstream run did not come up:\n" + app.output) from None
    return app


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., LiveApp]]:
    """``make_app(rate, users=500)``: a private ``riskstream run`` for one test (stopped
    afterwards if the test did not stop it)."""
    apps: list[LiveApp] = []

    def factory(rate: int, users: int = 500) -> LiveApp:
        apps.append(start_app(tmp_path / f"home{len(apps)}", rate=rate, users=users))
        return apps[-1]

    yield factory
    for app in apps:
        app.stop()


@pytest.fixture(scope="session")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The system streaming at 300 tx/s for the whole session (shared by browser tests)."""
    app = start_app(tmp_path_factory.mktemp("live") / "home", rate=300)
    yield app
    out = app.stop()
    assert app.proc.returncode == 0, out


# -- browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (never a downloaded browser)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class Page:
    """A Playwright page plus every URL it requested (to prove nothing comes from a CDN)."""

    page: Any
    requests: list[str]


@pytest.fixture
def make_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """``make_page(width=1440, height=900)``: a fresh browser page; on test failure a
    full-page screenshot is saved to ``tmp/artifacts/<test>.png``."""
    made: list[Page] = []

    def factory(width: int = 1440, height: int = 900) -> Page:
        ctx = browser.new_context(viewport={"width": width, "height": height})
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        made.append(Page(page, urls))
        return made[-1]

    yield factory
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for k, p in enumerate(made):
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name) + (f"-{k}" if k else "")
            p.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        p.page.context.close()


# -- PostgreSQL -------------------------------------------------------------------------------
PG_HOST = os.environ.get("RISKSTREAM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RISKSTREAM_TEST_PG_PORT", "5432"))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards) as a SQLAlchemy URL."""
    import psycopg

    name = f"rs_dash_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname="test", autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} ({exc}); "
                    "see scripts/test-prereqs.sh")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
