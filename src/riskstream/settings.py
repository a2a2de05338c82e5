"""Frozen, validated settings from ``RISKSTREAM_*`` environment variables and CLI flags.

Everything has a safe embedded default for development (one machine, no servers, data under
``RISKSTREAM_HOME``). Outside development, defaults that are unsafe there are refused: an
API reachable from other hosts without an API key, and a results database nobody chose.

>>> Settings(home="/tmp/rs").resolved_db_url()
'sqlite:////tmp/rs/results.db'
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RISKSTREAM_", frozen=True, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    home: Path = Path(".riskstream")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: Results database (SQLAlchemy URL). Default: SQLite file under ``home``.
    db_url: str | None = None
    #: Per-user state backend: ``memory://`` (snapshotted under ``home``).
    state_url: str = "memory://"
    #: Model bundle to serve. Default: ``home/models/current.npz``.
    model_path: Path | None = None
    review_threshold: float = Field(0.99, gt=0, le=1)
    block_threshold: float = Field(0.999, gt=0, le=1)
    #: Micro-batch: at most this many events, or whatever arrived within ``batch_timeout_ms``.
    batch_size: int = Field(500, ge=1, le=100_000)
    batch_timeout_ms: int = Field(200, ge=1, le=60_000)
    #: Embedded simulator feeding ``riskstream run``: events per second and population.
    sim_rate: float = Field(200.0, gt=0)
    sim_users: int = Field(2000, ge=10)
    sim_seed: int = 7
    #: State snapshot period for the in-memory store (seconds).
    snapshot_every_s: float = Field(30.0, gt=0)
    #: Largest accepted request body; /predict takes one transaction (~1 KiB).
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    api_key: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        if self.review_threshold > self.block_threshold:
            raise ValueError("review_threshold must be <= block_threshold")
        if self.env != "development":
            if self.host not in LOOPBACK and self.api_key is None:
                raise ValueError(
                    f"refusing to serve on {self.host} without RISKSTREAM_API_KEY outside "
                    "development"
                )
            if self.env == "production" and self.db_url is None:
                raise ValueError("set RISKSTREAM_DB_URL explicitly in production")
        return self

    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home.resolve() / 'results.db'}"

    def resolved_model_path(self) -> Path:
        return self.model_path or self.home / "models" / "current.npz"

    @property
    def state_snapshot_path(self) -> Path:
        return self.home / "state.npz"
