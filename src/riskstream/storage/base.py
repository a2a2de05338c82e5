"""Abstract results store (see package docstring for the contract)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class ResultsStore(ABC):
    @abstractmethod
    def write(self, rows: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> int:
        """Store scored rows and alerts atomically; return how many rows were new."""

    @abstractmethod
    def write_dead_letters(self, letters: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    def transactions(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    def alerts(
        self,
        *,
        user_id: str | None = None,
        decision: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    def dead_letters(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]: ...

    @abstractmethod
    def counts(self) -> dict[str, int]: ...

    @abstractmethod
    def record_model(self, version: str, info: dict[str, Any]) -> None: ...

    def ping(self) -> bool:
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
