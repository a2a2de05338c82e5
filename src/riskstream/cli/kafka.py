"""Kafka commands of the ``riskstream`` CLI: ``produce``, ``worker``, ``topics`` (and
the ``run --kafka`` all-in-one). Registered by :func:`register`.

Nothing here imports ``confluent_kafka`` at module level, so the CLI works without the
``kafka`` extra until a Kafka command is used. Design and guarantees: docs/streaming.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from riskstream.cli.common import HOME, load_settings, setup_logging

BOOTSTRAP = Annotated[
    str | None,
    typer.Option(help="Kafka bootstrap servers host:port,... (env RISKSTREAM_KAFKA_BOOTSTRAP)"),
]


def _need_bootstrap(settings: Any) -> None:
    if not settings.kafka_bootstrap:
        raise typer.BadParameter("no Kafka cluster: pass --bootstrap or set "
                                 "RISKSTREAM_KAFKA_BOOTSTRAP")


def produce(
    bootstrap: BOOTSTRAP = None,
    topic: Annotated[str | None, typer.Option(help="Default: RISKSTREAM_KAFKA_TOPIC_TRANSACTIONS")]
    = None,
    input: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="CSV/Parquet file to replay (default: simulate)"),
    ] = None,
    map: Annotated[str | None, typer.Option("--map", help="Column mapping ('fdh', SRC=dst)")]
    = None,
    rate: Annotated[
        float | None,
        typer.Option(help="Events per second (default: 1000 simulated; a file: unpaced)"),
    ] = None,
    recorded_speed: Annotated[
        bool, typer.Option("--recorded-speed", help="Replay a file at its timestamps' pace")
    ] = False,
    speedup: Annotated[float, typer.Option(help="With --recorded-speed: this many times faster")]
    = 1.0,
    count: Annotated[
        int | None, typer.Option(help="Stop after this many (simulated default 10,000; 0: never)")
    ] = None,
    users: Annotated[int, typer.Option(help="Simulated users")] = 2000,
    seed: Annotated[int, typer.Option(help="Simulation seed")] = 11,
    fraud_rate: Annotated[float, typer.Option(help="Simulated fraud share")] = 0.01,
    keep_labels: Annotated[
        bool, typer.Option(help="Keep label/scenario columns in the messages")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Publish transactions to the input topic, keyed by user_id: simulated or from a file."""
    from riskstream.transport.kafka import TransactionProducer, client_config, ensure_topics
    from riskstream.transport.kafka.produce import file_frames, simulated_frames
    from riskstream.transport.kafka.produce import produce as run_produce

    settings = load_settings(kafka_bootstrap=bootstrap)
    _need_bootstrap(settings)
    setup_logging("WARNING")
    if recorded_speed and input is None:
        raise typer.BadParameter("--recorded-speed replays a file: give --input")
    name = topic or settings.kafka_topic_transactions
    config = client_config(settings)
    if settings.kafka_create_topics:
        from riskstream.transport.kafka import topic_configs

        ensure_topics(config, [name], settings.kafka_partitions, settings.kafka_replication,
                      topic_configs(settings) if name == settings.kafka_topic_transactions
                      else None)
    if input is not None:
        frames = file_frames(input, map)
        limit = count or None
    else:
        frames = simulated_frames(users, seed, fraud_rate)
        rate = 1000.0 if rate is None else rate
        limit = 10_000 if count is None else (count or None)
    producer = TransactionProducer(config, name,
                                   max_message_bytes=settings.kafka_max_message_bytes)
    kw: dict[str, Any] = {
        "rate": None if recorded_speed else rate,
        "recorded_speed": speedup if recorded_speed else None,
        "limit": limit,
        "keep_labels": keep_labels,
    }
    if progress and limit:
        with typer.progressbar(length=limit, label=f"producing to {name}", file=sys.stderr) as bar:
            stats = run_produce(producer, frames, progress=bar.update, **kw)
    else:
        try:
            stats = run_produce(producer, frames, **kw)
        except KeyboardInterrupt:  # pragma: no cover - interactive
            producer.flush()
            raise
    refused = ", ".join(f"{n:,} {why}" for why, n in stats.refused.items()) or "0"
    typer.echo(
        f"sent {stats.sent:,} to {name} in {stats.seconds:.1f}s ({stats.rate:,.0f}/s); "
        f"refused {refused}; failed {stats.failed:,}; unacknowledged {stats.unacknowledged:,}"
    )
    if stats.failed or stats.unacknowledged:
        raise typer.Exit(1)


def worker(
    bootstrap: BOOTSTRAP = None,
    home: HOME = None,
    host: str | None = None,
    port: int | None = None,
    group: Annotated[str | None, typer.Option(help="Consumer group (RISKSTREAM_KAFKA_GROUP_ID)")]
    = None,
    api: Annotated[bool, typer.Option(help="Serve the API, /health and /metrics")] = True,
) -> None:
    """Run one scorer worker of the consumer group (Ctrl-C/SIGTERM drains and commits)."""
    from riskstream.api import create_app
    from riskstream.service.worker import serve

    settings = load_settings(kafka_bootstrap=bootstrap, home=home, host=host, port=port,
                         kafka_group_id=group)
    _need_bootstrap(settings)
    setup_logging(settings.log_level)
    serve(settings, app_factory=create_app if api else None)


def run_kafka(settings: Any) -> None:
    """``riskstream run --kafka BOOTSTRAP``: a worker plus a simulated feed into the input
    topic (at ``RISKSTREAM_SIM_RATE``), API and metrics on one port, in one process."""
    from riskstream.api import create_app
    from riskstream.service.worker import serve
    from riskstream.transport.feeder import Feeder
    from riskstream.transport.kafka import TransactionProducer, client_config
    from riskstream.transport.kafka.produce import records_of, simulated_frames

    setup_logging(settings.log_level)
    producer = TransactionProducer(client_config(settings), settings.kafka_topic_transactions)
    # A different traffic seed from the first-run training history, as in the embedded run.
    frames = simulated_frames(settings.sim_users, settings.sim_seed + 1, batch_size=100)
    feed = Feeder(records_of(frames), producer.send_records, settings.sim_rate, per_row=True,
                  finish=producer.flush, name="simulated-feed")
    serve(settings, app_factory=create_app, background=[feed])


def topics(
    bootstrap: BOOTSTRAP = None,
    partitions: Annotated[int | None, typer.Option(help="For created topics")] = None,
    replication: Annotated[int | None, typer.Option(help="For created topics")] = None,
) -> None:
    """Create the missing riskstream topics and list them with their partition counts."""
    from riskstream.transport.kafka import KafkaTopics, client_config, ensure_topics, topic_configs

    settings = load_settings(kafka_bootstrap=bootstrap, kafka_partitions=partitions,
                         kafka_replication=replication)
    _need_bootstrap(settings)
    config = client_config(settings)
    names = KafkaTopics.from_settings(settings).all()
    created = ensure_topics(config, names, settings.kafka_partitions,
                            settings.kafka_replication, topic_configs(settings))
    from confluent_kafka.admin import AdminClient

    meta = AdminClient(config).list_topics(timeout=15).topics
    for name in names:
        mark = " (created)" if name in created else ""
        typer.echo(f"{name}: {len(meta[name].partitions)} partitions{mark}")


def register(app: typer.Typer) -> None:
    """Add the Kafka commands to the ``riskstream`` app."""
    app.command("produce")(produce)
    app.command("worker")(worker)
    app.command("topics")(topics)
