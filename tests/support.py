"""Plain helpers shared by test suites (importable: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from riskstream.streaming.tansu import free_port

__all__ = ["free_port", "wait_for"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; HTTP errors
    count as "not yet". Fail after ``timeout`` seconds naming ``what`` (and the last error)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last})")
