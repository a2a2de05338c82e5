"""``riskstream run`` (the whole system in one process) and ``riskstream version``."""

from __future__ import annotations

from typing import Annotated

import typer

from riskstream import __version__
from riskstream.cli.common import HOME, load_settings, setup_logging


def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def run(
    home: HOME = None,
    host: str | None = None,
    port: int | None = None,
    rate: Annotated[float | None, typer.Option(help="Simulated events per second.")] = None,
    kafka: Annotated[
        str | None,
        typer.Option("--kafka", help="All-in-one through this Kafka cluster (BOOTSTRAP)."),
    ] = None,
) -> None:
    """Run the whole system embedded: simulator -> core -> SQLite, with API and metrics."""
    from riskstream.api import create_app
    from riskstream.cli.kafka import run_kafka
    from riskstream.service.embedded import run_embedded

    config = load_settings(home=home, host=host, port=port, sim_rate=rate, kafka_bootstrap=kafka)
    if kafka:  # simulator -> Kafka -> worker, docs/streaming.md
        run_kafka(config)
        return
    setup_logging(config.log_level)
    run_embedded(config, app_factory=create_app)




def register(app: typer.Typer) -> None:
    app.command()(version)
    app.command()(run)
