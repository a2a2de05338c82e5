"""Plain helpers shared by test suites (importable: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

import httpx
from tansu import free_port

__all__ = ["Kept", "free_port", "kept", "launch_run", "load_benchmark", "wait_for"]

T = TypeVar("T")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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


def load_benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` (not an installed module), imported once by file path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def launch_run(home: Path, port: int, **settings: str | int) -> subprocess.Popen[str]:
    """``riskstream run`` in a subprocess, as a user starts it, with ``RISKSTREAM_HOME``,
    ``RISKSTREAM_PORT`` and ``RISKSTREAM_<NAME>`` for each keyword; output in ``stdout``."""
    env = {**os.environ, "RISKSTREAM_HOME": str(home), "RISKSTREAM_PORT": str(port)}
    env.update({f"RISKSTREAM_{name.upper()}": str(value) for name, value in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "riskstream.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Kept(Generic[T]):
    """What a factory fixture made: ``kept(obj)`` records ``obj`` and returns it."""

    def __init__(self) -> None:
        self.items: list[T] = []

    def __call__(self, item: T) -> T:
        self.items.append(item)
        return item

    def __len__(self) -> int:
        return len(self.items)


@contextmanager
def kept(release: Callable[[T], Any]) -> Iterator[Kept[T]]:
    """The body of a factory fixture: everything kept in the block is released after it,
    in the order it was made.

    >>> closed = []
    >>> with kept(closed.append) as keep:
    ...     _ = keep("a"), keep("b")
    >>> closed
    ['a', 'b']
    """
    made: Kept[T] = Kept()
    try:
        yield made
    finally:
        for item in made.items:
            release(item)
