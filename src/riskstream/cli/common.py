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


LABELS = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="Outcome labels: CSV/Parquet transaction_id,label[,reported_at] (ISO-8601 UTC; "
        "default now). A label counts only for events after its reported_at.",
    ),
]


def load_labels(path: Path | None) -> Any:
    """The valid rows of a labels file (``None`` without one); refused rows are reported."""
    if path is None:
        return None
    import time

    from riskstream.io import read_labels
    from riskstream.schema import validate_labels

    frame, errors = validate_labels(read_labels(path), time.time())
    if errors:
        typer.echo(f"{len(errors):,} label rows refused, e.g. row {errors[0].index}: "
                   f"{errors[0].field}: {errors[0].reason}", err=True)
    if not len(frame):
        raise typer.BadParameter(f"no valid label in {path}", param_hint="--labels")
    return frame
