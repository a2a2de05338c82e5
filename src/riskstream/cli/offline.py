"""Offline commands on the one scoring core: ``simulate``, ``score`` (replay a file) and
``evaluate`` (detection quality on labelled data)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from riskstream.cli.common import HOME, LABELS, load_labels, load_settings, parse_time


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



def score(
    input: Annotated[Path, typer.Option("--input", "-i")],
    output: Annotated[Path, typer.Option("--output", "-o", help=".csv/.csv.gz/.parquet")],
    model: Annotated[
        Path | None, typer.Option(help="Default: RISKSTREAM_HOME/models/current.npz")
    ] = None,
    map: Annotated[str | None, typer.Option("--map")] = None,
    review: float = 0.99,
    block: float = 0.999,
    labels: LABELS = None,
    home: HOME = None,
) -> None:
    """Replay a whole file through the scoring core; one output row per input row.

    With ``--labels`` the label-aware features see each label from its ``reported_at`` on,
    as online; a row's own label never reaches its score.
    """
    from riskstream.io import read_transactions
    from riskstream.models import ModelBundle
    from riskstream.offline import replay
    from riskstream.scoring.core import Thresholds

    t0 = time.perf_counter()
    bundle = ModelBundle.load(model or load_settings(home=home).resolved_model_path())
    frame = read_transactions(input, map)
    out = replay.score(frame, bundle, Thresholds(review, block), labels=load_labels(labels))
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
    protocol: Annotated[
        str,
        typer.Option(
            help="every: every row of --start..--end | handbook: less the cards already known "
            "compromised (7-day label delay, the handbook's test set; needs --start) | both"
        ),
    ] = "every",
    prequential: Annotated[
        int,
        typer.Option(
            help="Train and test N weekly folds from --start on the raw labelled --input "
            "(each trained on the rows before its week less the 7-day label delay)",
            min=0,
        ),
    ] = 0,
    labels: LABELS = None,
    home: HOME = None,
) -> None:
    """Detection quality on labelled data: AP, ROC AUC, budgets, CP@100, per scenario.

    `riskstream evaluate -i data.csv --compare champion challenger` scores the file with both
    registered models and reports them side by side.
    """
    import pandas as pd

    from riskstream.io import read_transactions
    from riskstream.models.registry import load_model
    from riskstream.offline import replay
    from riskstream.offline.evaluate import (
        DAY_S,
        FDH_BASELINES,
        evaluation_rows,
        handbook_view,
    )
    from riskstream.offline.evaluate import prequential as prequential_folds
    from riskstream.offline.evaluation import evaluate as evaluate_frame
    from riskstream.offline.evaluation import write_report

    if protocol not in ("every", "handbook", "both"):
        raise typer.BadParameter("one of every, handbook, both", param_hint="--protocol")
    lo, hi = parse_time(start), parse_time(end)
    if (protocol != "every" or prequential) and lo is None:
        raise typer.BadParameter("the handbook and prequential protocols need --start",
                                 param_hint="--start")
    views = ["every", "handbook"] if protocol == "both" else [protocol]
    outcomes = load_labels(labels)
    sets: list[tuple[str, pd.DataFrame]] = []  # (row name, evaluated rows)
    refs = [r for r in (compare or []) if r != "--compare"] or list(model or [])
    if prequential:
        assert lo is not None
        raw = read_transactions(input, map)
        if "label" not in raw.columns:
            raise typer.BadParameter("the prequential protocol trains: --input must be the "
                                     "raw labelled transactions", param_hint="--input")
        aps: dict[str, list[float]] = {v: [] for v in views}
        for k, fold in enumerate(prequential_folds(raw, outcomes, lo, prequential)):
            day = str(pd.Timestamp(fold["test_start"], unit="s").date())
            for view in views:
                rows = fold["views"][view]
                sets.append((f"{name} fold {k + 1}, {day} ({view})", rows))
                aps[view].append(evaluate_frame(rows, name="").get("average_precision") or 0.0)
        for view, values in aps.items():
            typer.echo(f"prequential mean AP ({view}, {len(values)} folds): "
                       f"{sum(values) / len(values):.4f}")
    else:
        if refs:
            raw = read_transactions(input, map)
            runs = []
            for ref in refs:
                bundle, label = load_model(ref, load_settings(home=home).home)
                runs.append((label, replay.score(raw, bundle, labels=outcomes)))
        else:
            scored = (pd.read_parquet(input) if input.name.endswith(".parquet")
                      else pd.read_csv(input))
            runs = [(name, scored)]
        for label, scored_frame in runs:
            for view in views:
                try:
                    if view == "every":
                        frame = evaluation_rows(scored_frame, score_col, lo, hi)
                    else:  # the two weeks before are read for the known-compromised cards
                        assert lo is not None
                        history = evaluation_rows(scored_frame, score_col, lo - 14 * DAY_S, hi)
                        days = 7 if hi is None else max(round((hi - lo) / DAY_S), 1)
                        frame = handbook_view(history, lo, test_days=days)
                except ValueError as exc:
                    raise typer.BadParameter(str(exc)) from None
                sets.append((label if len(views) == 1 else f"{label} ({view})", frame))
    results, curves = [], {}
    for set_name, frame in sets:
        members = [c for c in frame.columns if c.startswith("score_")] if per_detector else []
        columns = [(set_name, score_col)] + (
            [(f"{set_name} / {c[6:]}", c) for c in members] if len(members) > 1 else []
        )
        for row_name, col in columns:
            results.append(evaluate_frame(frame, score_col=col, name=row_name))
            curves[row_name] = (frame["label"].to_numpy(), frame[col].to_numpy())
    base = FDH_BASELINES if baselines == "fdh" else None
    paths = write_report(results, curves, out, baselines=base)
    typer.echo(paths["markdown"].read_text())
    typer.echo(json.dumps({k: str(v) for k, v in paths.items()}))



def register(app: typer.Typer) -> None:
    app.command()(simulate)
    app.command()(score)
    app.command()(evaluate)
