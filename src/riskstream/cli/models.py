"""Model commands: ``train`` (fit by replaying a file), ``promote`` and ``models`` (registry)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from riskstream.cli.common import HOME, load_settings, parse_time, setup_logging


def train(
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV/Parquet history")],
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
    features: Annotated[
        str, typer.Option(help="Feature set: default | amount | comma list")
    ] = "default",
    detectors: Annotated[
        str | None,
        typer.Option(help="Ensemble: 'isolation_forest:0.4,autoencoder:0.4', or 'seed'"),
    ] = None,
    combine: Annotated[
        str, typer.Option(help="Ensemble rule: max (any detector sure) | mean (all agree)")
    ] = "max",
    register: Annotated[
        bool, typer.Option(help="Log to MLflow and register as @challenger")
    ] = True,
    validation_days: Annotated[
        float, typer.Option(help="Days after --until scored for validation metrics")
    ] = 7.0,
    trees: int = 100,
    max_samples: int = 2048,
    seed: int = 0,
    home: HOME = None,
) -> None:
    """Fit the detector by replaying a file in time order (labels never reach training)."""
    from riskstream.io import read_transactions
    from riskstream.models.bundle import FEATURE_SETS, parse_detectors
    from riskstream.models.iforest import IsolationForestDetector
    from riskstream.offline import replay

    setup_logging()
    model_features = FEATURE_SETS.get(features) or tuple(f.strip() for f in features.split(","))
    t0 = time.perf_counter()
    frame = read_transactions(input, map)
    # Labels never reach training; they are kept aside for the validation metrics only.
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
    )
    bundle.info["source"] = str(input)
    config = load_settings(home=home)
    out = model_out or config.resolved_model_path()
    bundle.save(out)
    if register:
        from riskstream.models.registry import Registry, parse_model_uri
        from riskstream.offline.evaluate import validation_metrics

        metrics = validation_metrics(labels, bundle, parse_time(until), validation_days)
        target = parse_model_uri(config.model_uri)
        registry = Registry(config.home, name=target[0] if target else "riskstream-detector")
        version = registry.register(
            out,
            bundle,
            metrics=metrics,
            params={
                "since": since,
                "until": until,
                "input": str(input),
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




def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(promote)
    app.command()(models)
