"""Model commands: ``train`` (fit by replaying a file), ``promote`` and ``models`` (registry)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from riskstream.cli.common import (
    DB_URL,
    HOME,
    LABELS,
    load_labels,
    load_settings,
    parse_time,
    setup_logging,
)

if TYPE_CHECKING:
    from riskstream.models.registry import Registry
    from riskstream.settings import Settings

FEATURES = Annotated[str, typer.Option(help="Feature set: default | amount | comma list")]
DETECTORS = Annotated[
    str | None,
    typer.Option(help="Ensemble: 'isolation_forest:0.4,autoencoder:0.4', or 'seed'"),
]


def _model_features(text: str) -> tuple[str, ...]:
    """``--features``: a named set or a comma list."""
    from riskstream.models.bundle import FEATURE_SETS

    return FEATURE_SETS.get(text) or tuple(f.strip() for f in text.split(","))


def _registry(config: Settings) -> Registry:
    """The registry of the configured model (``RISKSTREAM_MODEL_URI``'s name)."""
    from riskstream.models.registry import Registry, parse_model_uri

    target = parse_model_uri(config.model_uri)
    return Registry(config.home, name=target[0] if target else "riskstream-detector")


def train(
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="CSV/Parquet history")
    ] = None,
    from_db: Annotated[
        bool,
        typer.Option(
            "--from-db",
            help="Train on the stored transactions and outcome labels (instead of --input)",
        ),
    ] = False,
    model_out: Annotated[
        Path | None, typer.Option(help="Default: RISKSTREAM_HOME/models/current.npz")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Fit on rows before this time")] = None,
    since: Annotated[
        str | None, typer.Option(help="Fit on rows from this time (earlier rows only warm state)")
    ] = None,
    map: Annotated[
        str | None, typer.Option("--map", help="Column mapping: preset 'fdh' or SRC=dst,...")
    ] = None,
    features: FEATURES = "default",
    detectors: DETECTORS = None,
    combine: Annotated[
        str, typer.Option(help="Ensemble rule: max (any detector sure) | mean (all agree)")
    ] = "max",
    register: Annotated[
        bool, typer.Option(help="Log to MLflow and register as @challenger")
    ] = True,
    validation_days: Annotated[
        float, typer.Option(help="Days after --until scored for validation metrics")
    ] = 7.0,
    labels: LABELS = None,
    fraud_weight: Annotated[
        float,
        typer.Option(help="Weight of a fraud against a legitimate row in the supervised trees' "
                     "loss (1: unweighted; see docs/models.md for the measured trade-off)"),
    ] = 1.0,
    trees: int = 100,
    max_samples: int = 2048,
    seed: int = 0,
    db_url: DB_URL = None,
    home: HOME = None,
) -> None:
    """Fit the detector by replaying a file (or, ``--from-db``, the stored history) in time
    order.

    A ``label`` column of the input never reaches training (it only scores the validation
    window). Outcome labels given with ``--labels`` do: the label-aware features replay them
    as they were reported, and gradient-boosted trees learn from those of the rows before
    ``--until``, beside the unsupervised detectors.
    """
    from riskstream.io import read_transactions
    from riskstream.models.bundle import parse_detectors
    from riskstream.models.iforest import IsolationForestDetector
    from riskstream.offline import replay

    setup_logging()
    if (input is None) == (not from_db):
        raise typer.BadParameter("give one of --input FILE and --from-db", param_hint="--input")
    model_features = _model_features(features)
    t0 = time.perf_counter()
    config = load_settings(home=home, db_url=db_url)
    outcomes = load_labels(labels)
    if from_db:
        frame, stored = _stored_data(config)
        outcomes = outcomes if outcomes is not None else (stored if len(stored) else None)
        source = "results store"
    else:
        assert input is not None
        frame = read_transactions(input, map)
        source = str(input)
    # The input's own label column never reaches training: it is kept aside for the validation
    # metrics only.
    labels = frame if "label" in frame.columns else None
    frame = frame.drop(columns=[c for c in ("label", "scenario") if c in frame.columns])
    bundle = replay.train(
        frame,
        until=parse_time(until),
        since=parse_time(since),
        model_features=model_features,
        detector=None if detectors else IsolationForestDetector(trees, max_samples, seed),
        detectors=parse_detectors(detectors) if detectors else None,
        combine_rule=combine,
        labels=outcomes,
        supervised_params={"fraud_weight": fraud_weight} if fraud_weight != 1.0 else None,
    )
    bundle.info["source"] = source
    if bundle.info.get("features_dropped"):
        typer.echo(f"features: {len(bundle.model_features)} used; left out, constant in the "
                   f"training data (columns it does not carry): "
                   f"{', '.join(bundle.info['features_dropped'])}")
    if "supervised" in bundle.info:
        typer.echo(f"supervised: {bundle.info['supervised']}")
    out = model_out or config.resolved_model_path()
    bundle.save(out)
    if register:
        from riskstream.offline.evaluate import validation_metrics

        metrics = validation_metrics(
            labels, bundle, parse_time(until), validation_days, outcomes
        )
        registry = _registry(config)
        version = registry.register(
            out,
            bundle,
            metrics=metrics,
            params={
                "since": since,
                "until": until,
                "input": source,
                "trees": trees,
                "max_samples": max_samples,
                "seed": seed,
            },
        )
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        typer.echo(
            f"registered version {version} as @challenger ({shown or 'no labels'}); "
            "`riskstream promote` makes it champion"
        )
    typer.echo(
        f"model {bundle.version} trained on {bundle.info['rows_trained']:,} rows "
        f"in {time.perf_counter() - t0:.1f}s -> {out}"
    )


def promote(
    version: Annotated[
        str | None, typer.Argument(help="Registry version (default: @challenger)")
    ] = None,
    home: HOME = None,
) -> None:
    """Make a registered model version the champion; running servers swap to it."""
    from riskstream.models.registry import Registry

    done = Registry(load_settings(home=home).home).promote(version)
    typer.echo(f"version {done} is now @champion")


def models(home: HOME = None) -> None:
    """List registered model versions and their aliases."""
    from riskstream.models.registry import Registry

    for row in Registry(load_settings(home=home).home).versions():
        aliases = ",".join("@" + a for a in row["aliases"])
        typer.echo(f"v{row['version']:>3}  {row['model_version']:<40} {aliases}")


def _stored_data(config: Settings) -> tuple[Any, Any]:
    """The results store's transactions and outcome labels."""
    from riskstream.offline.retrain import stored_data
    from riskstream.service.runtime import open_results

    results = open_results(config)
    try:
        return stored_data(results)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--from-db") from None
    finally:
        results.close()


def retrain(
    delay_days: Annotated[
        float, typer.Option(help="Label delay: the gate window ends this long before the newest "
                            "stored transaction")
    ] = 7.0,
    window_days: Annotated[float, typer.Option(help="Length of the gate window")] = 7.0,
    gate: Annotated[
        bool, typer.Option(help="Promote only if AP on the gate window does not drop")
    ] = True,
    features: FEATURES = "default",
    detectors: DETECTORS = None,
    db_url: DB_URL = None,
    home: HOME = None,
) -> None:
    """Retrain on the stored transactions and outcome labels; promote past the gate.

    For cron (or the worker's own schedule, ``RISKSTREAM_RETRAIN_EVERY_S``): trains a
    challenger on the stored history before the gate window, scores the window with it and
    with the champion, registers it (metrics ``gate_*`` in MLflow) and promotes it only when
    its average precision there is not below the champion's. Exit code 0 either way.
    """
    import json

    from riskstream.models.bundle import parse_detectors
    from riskstream.models.registry import CHAMPION
    from riskstream.offline.retrain import retrain as run_retrain

    setup_logging()
    config = load_settings(home=home, db_url=db_url)
    frame, labels = _stored_data(config)
    registry = _registry(config)
    current = registry.resolve(CHAMPION)
    result = run_retrain(
        frame,
        labels if len(labels) else None,
        None if current is None else current.bundle,
        delay_days=delay_days,
        window_days=window_days,
        gate=gate,
        model_features=_model_features(features),
        detectors=parse_detectors(detectors) if detectors else None,
    )
    out = config.home / "models" / f"{result.bundle.version}.npz"
    result.bundle.save(out)
    version = registry.register(
        out,
        result.bundle,
        metrics=result.metrics(),
        params={"source": "results store", "gate_window_start": result.window[0],
                "gate_window_end": result.window[1], "gate_reason": result.reason},
    )
    if result.promote:
        registry.promote(version)
    typer.echo(json.dumps({"version": version, **result.report()}))


def register(app: typer.Typer) -> None:
    app.command()(retrain)
    app.command()(train)
    app.command()(promote)
    app.command()(models)
