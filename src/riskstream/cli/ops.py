"""Maintenance commands of the production stores (registered on the main ``riskstream`` app).

``riskstream db init | migrate | reset | status``   results schema (Alembic)
``riskstream stats``                                volumes, anomaly rate, latency, reasons
``riskstream profiles rebuild``                     user/merchant state from stored history

Every command reads the same settings as the server (``RISKSTREAM_DB_URL``,
``RISKSTREAM_STATE_URL``, ...); ``--db-url`` and ``--home`` override them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from riskstream.cli.common import DB_URL, HOME, load_settings, parse_time

if TYPE_CHECKING:
    from riskstream.settings import Settings

db_app = typer.Typer(no_args_is_help=True, help="Results database schema (Alembic migrations).")
profiles_app = typer.Typer(no_args_is_help=True, help="Per-user state maintenance.")


def _settings(home: Path | None = None, db_url: str | None = None) -> Settings:
    return load_settings(home=home, db_url=db_url)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _engine(home: Path | None, db_url: str | None):  # type: ignore[no-untyped-def]
    from riskstream.storage.sql import make_engine

    url = _settings(home, db_url).resolved_db_url()
    return url, make_engine(url)


@db_app.command("init")
def db_init(db_url: DB_URL = None, home: HOME = None) -> None:
    """Create the schema (or bring an existing one to the current revision)."""
    from riskstream.storage import migrate

    url, engine = _engine(home, db_url)
    try:
        before, after = migrate.upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"{_redact(url)}: {before or 'empty'} -> {after}")


@db_app.command("migrate")
def db_migrate(
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
    db_url: DB_URL = None,
    home: HOME = None,
) -> None:
    """Apply pending migrations (to ``head`` unless ``--revision`` says otherwise)."""
    from riskstream.storage import migrate

    url, engine = _engine(home, db_url)
    try:
        before, after = migrate.upgrade(engine, revision)
    finally:
        engine.dispose()
    typer.echo(f"{_redact(url)}: {before or 'empty'} -> {after}")


@db_app.command("status")
def db_status(db_url: DB_URL = None, home: HOME = None) -> None:
    """Print the database's revision and the newest one this version knows."""
    from riskstream.storage import migrate

    url, engine = _engine(home, db_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    state = "up to date" if current == migrate.HEAD else "needs `riskstream db migrate`"
    typer.echo(f"{_redact(url)}: revision {current or 'none'}, head {migrate.HEAD} ({state})")


@db_app.command("reset")
def db_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    db_url: DB_URL = None,
    home: HOME = None,
) -> None:
    """Delete every stored result, alert, label and dead letter; recreate an empty schema."""
    from riskstream.storage import migrate

    url, engine = _engine(home, db_url)
    try:
        if not yes:
            typer.confirm(
                f"Delete ALL results, alerts, labels and dead letters in {_redact(url)}?",
                abort=True,
            )
        migrate.reset(engine)
    finally:
        engine.dispose()
    typer.echo(f"{_redact(url)}: reset, now at revision {migrate.HEAD}")


def stats(
    since: Annotated[str | None, typer.Option(help="From this event time (2024-01-10)")] = None,
    until: Annotated[str | None, typer.Option(help="Up to (not including) this time")] = None,
    top: Annotated[int, typer.Option(help="Reason codes to list")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    db_url: DB_URL = None,
    home: HOME = None,
) -> None:
    """Volumes, anomaly rate, latency percentiles and top reason codes, per model version."""
    from riskstream.storage.sql import SQLResultsStore

    settings = _settings(home, db_url)
    store = SQLResultsStore(settings.resolved_db_url(), migrate=settings.db_auto_migrate)
    try:
        report = store.stats(parse_time(since), parse_time(until), top=top)
    finally:
        store.close()
    typer.echo(json.dumps(report, indent=2) if as_json else format_stats(report))


def format_stats(report: dict[str, Any]) -> str:
    """The human-readable ``riskstream stats`` report."""

    def block(title: str, part: dict[str, Any]) -> list[str]:
        d, lat = part["decisions"], part["latency_ms"]
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        reasons = ", ".join(f"{r['code']} {r['count']:,}" for r in part["top_reasons"]) or "-"
        return [
            title,
            f"  transactions {part['transactions']:,}  allow {d['allow']:,}  "
            f"review {d['review']:,}  block {d['block']:,}  "
            f"anomaly rate {100 * part['anomaly_rate']:.3f} %",
            f"  latency ms/tx  p50 {fmt(lat['p50'])}  p95 {fmt(lat['p95'])}  "
            f"p99 {fmt(lat['p99'])}  max {fmt(lat['max'])}",
            f"  top reasons  {reasons}",
        ]

    lines = block("all model versions", report)
    lines.append(f"  alerts {report['alerts']:,}  dead letters (all time) "
                 f"{report['dead_letters_total']:,}")
    for model in report["models"]:
        lines += block(f"model {model['model_version']}", model)
    return "\n".join(lines)


@profiles_app.command("rebuild")
def profiles_rebuild(
    chunk: Annotated[int, typer.Option(help="Transactions per replayed chunk")] = 50_000,
    db_url: DB_URL = None,
    home: HOME = None,
) -> None:
    """Clear user/merchant state and rebuild it from the stored history (stop workers first)."""
    from riskstream.offline.profiles import rebuild
    from riskstream.service.runtime import Runtime

    settings = _settings(home, db_url)
    runtime = Runtime.build(settings)
    try:
        result = rebuild(
            runtime.results,
            runtime.core.state,
            runtime.core.engine,
            chunk=chunk,
            progress=lambda n: typer.echo(f"  replayed {n:,} transactions", err=True),
        )
    finally:
        runtime.close()  # snapshots in-memory state
    typer.echo(json.dumps(result))


def register(app: typer.Typer) -> None:
    """Add the ``db``, ``profiles`` and ``stats`` commands to ``app``."""
    app.add_typer(db_app, name="db")
    app.add_typer(profiles_app, name="profiles")
    app.command("stats")(stats)
