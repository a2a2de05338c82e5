"""The ``riskstream`` command line (Typer). One entry point for everything."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from riskstream import __version__, cli_kafka, cli_ops

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Real-time anomaly and fraud detection for payment transactions.",
)

HOME = Annotated[Path | None, typer.Option(help="Data directory (env RISKSTREAM_HOME).")]


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    from riskstream.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _time(value: str | None) -> float | None:
    if value is None:
        return None
    from riskstream.schema import parse_timestamp

    text = (
        value
        if any(c in value for c in "Zz+") or value.replace(".", "").isdigit()
        else value + ("T00:00:00Z" if len(value) == 10 else "Z")
    )
    return parse_timestamp(text)


def _log(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
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
    from riskstream.embedded import run_embedded

    settings = _settings(home=home, host=host, port=port, sim_rate=rate, kafka_bootstrap=kafka)
    if kafka:  # simulator -> Kafka -> worker, docs/streaming.md
        cli_kafka.run_kafka(settings)
        return
    _log(settings.log_level)
    run_embedded(settings)


@app.command()
def simulate(
    output: Annotated[Path, typer.Option("--output", "-o", help=".csv, .csv.gz or .parquet")],
    users: int = 2000,
    merchants: int = 500,
    days: float = 7.0,
    seed: int = 42,
    fraud_rate: float = 0.01,
    start: str = "2024-01-01T00:00:00Z",
) -> None:
    """Write a simulated, labelled transaction history."""
    from riskstream.simulate import SimConfig, write
    from riskstream.simulate import simulate as sim

    frame = sim(
        SimConfig(
            n_users=users,
            n_merchants=merchants,
            days=days,
            seed=seed,
            fraud_rate=fraud_rate,
            start=start,
        )
    )
    write(frame, output)
    typer.echo(
        f"wrote {len(frame):,} transactions ({int(frame['label'].sum()):,} fraud) to {output}"
    )


@app.command()
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
    from riskstream import replay
    from riskstream.io import read_transactions
    from riskstream.models.bundle import FEATURE_SETS, parse_detectors
    from riskstream.models.iforest import IsolationForestDetector

    _log()
    model_features = FEATURE_SETS.get(features) or tuple(f.strip() for f in features.split(","))
    t0 = time.perf_counter()
    frame = read_transactions(input, map)
    # Labels never reach training; they are kept aside for the validation metrics only.
    labels = frame if "label" in frame.columns else None
    frame = frame.drop(columns=[c for c in ("label", "scenario") if c in frame.columns])
    bundle = replay.train(
        frame,
        until=_time(until),
        since=_time(since),
        model_features=model_features,
        detector=None if detectors else IsolationForestDetector(trees, max_samples, seed),
        detectors=parse_detectors(detectors) if detectors else None,
        combine_rule=combine,
    )
    bundle.info["source"] = str(input)
    settings = _settings(home=home)
    out = model_out or settings.resolved_model_path()
    bundle.save(out)
    if register:
        from riskstream.models.registry import Registry, parse_model_uri

        metrics = _validation_metrics(labels, bundle, _time(until), validation_days)
        target = parse_model_uri(settings.model_uri)
        registry = Registry(settings.home, name=target[0] if target else "riskstream-detector")
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


def _validation_metrics(
    labelled,
    bundle,
    until: float | None,  # type: ignore[no-untyped-def]
    days: float,
) -> dict[str, float]:
    """AP and recall at a 1 % budget on the ``days`` after ``until`` (time-ordered hold-out)."""
    if labelled is None or until is None:
        return {}
    from riskstream import replay
    from riskstream.evaluation import average_precision, precision_recall_at_budget

    scored = replay.score(labelled, bundle)
    scored = scored[scored["decision"] != "invalid"]
    ts = _timestamps(scored["timestamp"]) if "timestamp" in scored else None
    if ts is None:
        return {}
    window = scored[(ts >= until) & (ts < until + days * 86400)]
    if window.empty or window["label"].nunique() < 2:
        return {}
    y, s = window["label"].to_numpy(), window["score"].to_numpy()
    precision, recall, _ = precision_recall_at_budget(y, s, 0.01)
    return {
        "val_average_precision": average_precision(y, s),
        "val_recall_at_1pct": recall,
        "val_precision_at_1pct": precision,
        "val_rows": float(len(window)),
    }


@app.command()
def promote(
    version: Annotated[
        str | None, typer.Argument(help="Registry version (default: @challenger)")
    ] = None,
    home: HOME = None,
) -> None:
    """Make a registered model version the champion; running servers swap to it."""
    from riskstream.models.registry import Registry

    done = Registry(_settings(home=home).home).promote(version)
    typer.echo(f"version {done} is now @champion")


@app.command()
def models(home: HOME = None) -> None:
    """List registered model versions and their aliases."""
    from riskstream.models.registry import Registry

    for row in Registry(_settings(home=home).home).versions():
        aliases = ",".join("@" + a for a in row["aliases"])
        typer.echo(f"v{row['version']:>3}  {row['model_version']:<40} {aliases}")


@app.command()
def score(
    input: Annotated[Path, typer.Option("--input", "-i")],
    output: Annotated[Path, typer.Option("--output", "-o", help=".csv/.csv.gz/.parquet")],
    model: Annotated[
        Path | None, typer.Option(help="Default: RISKSTREAM_HOME/models/current.npz")
    ] = None,
    map: Annotated[str | None, typer.Option("--map")] = None,
    review: float = 0.99,
    block: float = 0.999,
    home: HOME = None,
) -> None:
    """Replay a whole file through the scoring core; one output row per input row."""
    from riskstream import replay
    from riskstream.core import Thresholds
    from riskstream.io import read_transactions
    from riskstream.models import ModelBundle

    t0 = time.perf_counter()
    bundle = ModelBundle.load(model or _settings(home=home).resolved_model_path())
    frame = read_transactions(input, map)
    out = replay.score(frame, bundle, Thresholds(review, block))
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.name.endswith(".parquet"):
        out.to_parquet(output, index=False)
    else:
        out.to_csv(output, index=False)
    counts = out["decision"].value_counts().to_dict()
    typer.echo(
        f"scored {len(out):,} rows in {time.perf_counter() - t0:.1f}s with "
        f"{bundle.version}: {counts} -> {output}"
    )


@app.command()
def evaluate(
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="Scored file (from `score`) with labels, or a labelled file with --model",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Report directory")] = Path("reports/eval"),
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Score the input with this model first (file, models:/NAME@ALIAS, "
            "alias or registry version); repeat to compare"
        ),
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Argument(help="After --compare: models to compare, e.g. champion challenger"),
    ] = None,
    map: Annotated[str | None, typer.Option("--map")] = None,
    start: Annotated[
        str | None, typer.Option(help="Evaluate rows from this time (e.g. 2018-08-08)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="... up to (not including) this time")] = None,
    score_col: str = "score",
    name: str = "riskstream",
    per_detector: Annotated[
        bool, typer.Option(help="Also report each ensemble member on its own")
    ] = True,
    baselines: Annotated[
        str | None, typer.Option(help="'fdh' adds the handbook's supervised baselines")
    ] = None,
    home: HOME = None,
) -> None:
    """Detection quality on labelled data: AP, ROC AUC, budgets, CP@100, per scenario.

    `riskstream evaluate -i data.csv --compare champion challenger` scores the file with both
    registered models and reports them side by side.
    """
    import pandas as pd

    from riskstream import replay
    from riskstream.evaluation import evaluate as evaluate_frame
    from riskstream.evaluation import write_report
    from riskstream.io import read_transactions
    from riskstream.models.registry import load_model

    refs = [r for r in (compare or []) if r != "--compare"] or list(model or [])
    if refs:
        raw = read_transactions(input, map)
        runs = []
        for ref in refs:
            bundle, label = load_model(ref, _settings(home=home).home)
            runs.append((label, replay.score(raw, bundle)))
    else:
        scored = pd.read_parquet(input) if input.name.endswith(".parquet") else pd.read_csv(input)
        runs = [(name, scored)]
    results, curves = [], {}
    for label, frame in runs:
        frame = _evaluation_rows(frame, score_col, _time(start), _time(end))
        members = [c for c in frame.columns if c.startswith("score_")] if per_detector else []
        columns = [(label, score_col)] + (
            [(f"{label} / {c[6:]}", c) for c in members] if len(members) > 1 else []
        )
        for row_name, col in columns:
            results.append(evaluate_frame(frame, score_col=col, name=row_name))
            curves[row_name] = (frame["label"].to_numpy(), frame[col].to_numpy())
    base = FDH_BASELINES if baselines == "fdh" else None
    paths = write_report(results, curves, out, baselines=base)
    typer.echo(paths["markdown"].read_text())
    typer.echo(json.dumps({k: str(v) for k, v in paths.items()}))


def _evaluation_rows(frame, score_col: str, lo: float | None, hi: float | None):  # type: ignore[no-untyped-def]
    """Valid, labelled rows of the evaluation period, with numeric timestamps."""
    import pandas as pd

    for col in ("label", score_col, "timestamp", "user_id"):
        if col not in frame.columns:
            raise typer.BadParameter(f"input lacks column {col!r}")
    if "decision" in frame:
        frame = frame[frame["decision"] != "invalid"]
    if not pd.api.types.is_numeric_dtype(frame["timestamp"]):
        frame = frame.assign(timestamp=_timestamps(frame["timestamp"]))
    if lo is not None:
        frame = frame[frame["timestamp"] >= lo]
    if hi is not None:
        frame = frame[frame["timestamp"] < hi]
    return frame.assign(user_id=frame["user_id"].astype(str))


FDH_BASELINES = {
    "handbook random forest (supervised)": {"average_precision": 0.658},
    "handbook logistic regression (supervised)": {"card_precision_at_100": 0.291},
}


def _timestamps(col):  # type: ignore[no-untyped-def]
    import pandas as pd

    from riskstream.schema import validate_frame

    probe = pd.DataFrame({"transaction_id": "x", "user_id": "x", "amount": 1.0, "timestamp": col})
    valid, errors = validate_frame(probe)
    if errors:
        raise typer.BadParameter(f"bad timestamp: {errors[0].reason}")
    return valid["timestamp"].to_numpy()


@app.command()
def bench(
    rows: Annotated[int, typer.Option(help="Simulated transactions to replay")] = 1_000_000,
    batch_size: int = 10_000,
    users: int = 20_000,
    seed: int = 1,
    detectors: Annotated[
        str | None, typer.Option(help="Ensemble to benchmark, e.g. 'seed' (default: IF)")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Benchmark the scoring core in-process (features + scoring), pinned to one core."""
    from riskstream.bench import run_core_bench

    result = run_core_bench(
        rows=rows, batch_size=batch_size, users=users, seed=seed, detectors=detectors
    )
    typer.echo(json.dumps(result, indent=2))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))


cli_ops.register(app)  # db init|migrate|reset|status, stats, profiles rebuild (issue 4)
cli_kafka.register(app)  # produce, worker, topics, bench-kafka (issue 3)


def main() -> None:  # pragma: no cover
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
