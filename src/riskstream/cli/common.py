"""What every command module shares: the common options, settings, logging, time parsing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from riskstream.settings import Settings

HOME = Annotated[Path | None, typer.Option(help="Data directory (env RISKSTREAM_HOME).")]
DB_URL = Annotated[
    str | None, typer.Option("--db-url", help="Results database URL (env RISKSTREAM_DB_URL).")
]


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options the user gave (None = not given)."""
    from riskstream.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def parse_time(value: str | None) -> float | None:
    """A command-line time (``2018-08-08``, ISO 8601 or epoch seconds) -> epoch seconds."""
    if value is None:
        return None
    from riskstream.schema import parse_timestamp

    text = (
        value
        if any(c in value for c in "Zz+") or value.replace(".", "").isdigit()
        else value + ("T00:00:00Z" if len(value) == 10 else "Z")
    )
    return parse_timestamp(text)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
