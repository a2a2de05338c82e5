"""``riskstream labels``: outcome labels from files (chargeback exports, case-management
dumps) into the results store, where running services pick them up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from riskstream.cli.common import DB_URL, HOME, load_settings

labels_app = typer.Typer(no_args_is_help=True, help="Outcome labels (fraud reported later).")
#: Refused rows shown in full; the rest are counted.
SHOWN_ERRORS = 10


@labels_app.command("import")
def import_labels(
    file: Annotated[Path, typer.Argument(help="CSV/CSV.gz/Parquet: transaction_id,label"
                                              "[,reported_at]")],
    source: Annotated[str, typer.Option(help="Recorded with each label")] = "import",
    db_url: DB_URL = None,
    home: HOME = None,
) -> None:
    """Store outcome labels (idempotent: importing a file twice changes nothing).

    ``label`` is 1/0, true/false or fraud/legitimate; ``reported_at`` (ISO-8601 UTC or epoch
    seconds) defaults to now. A label counts for the label-aware features of events after
    its ``reported_at``; running services fold new ones in within ``RISKSTREAM_LABEL_SWEEP_S``.
    """
    from riskstream.io import read_labels
    from riskstream.schema import validate_labels
    from riskstream.storage.sql import SQLResultsStore

    if not file.exists():
        raise typer.BadParameter(f"{file} does not exist", param_hint="FILE")
    valid, errors = validate_labels(read_labels(file), time.time())
    for e in errors[:SHOWN_ERRORS]:
        typer.echo(f"  row {e.index + 2}: {e.reason}", err=True)  # +2: header, 1-based
    settings = load_settings(home=home, db_url=db_url)
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    if len(valid):
        store = SQLResultsStore(settings.resolved_db_url(), migrate=settings.db_auto_migrate)
        try:
            counts = store.upsert_labels(valid, source[:32])
        finally:
            store.close()
    typer.echo(f"imported {len(valid):,} labels (new {counts['new']:,}, updated "
               f"{counts['updated']:,}, unchanged {counts['unchanged']:,}); refused "
               f"{len(errors):,}")
    if not len(valid):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels")
