"""The offline commands on the same core: simulate -> train -> score -> evaluate, and bench."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from riskstream.cli import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_offline_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "sim.csv"
    invoke(
        "simulate",
        "-o",
        str(data),
        "--users",
        "300",
        "--merchants",
        "80",
        "--days",
        "6",
        "--fraud-rate",
        "0.02",
        "--seed",
        "5",
    )
    frame = pd.read_csv(data)
    # Two broken rows: they must come out as 'invalid' rows, not vanish or stop the run.
    frame.loc[3, "amount"] = -1
    frame.loc[7, "timestamp"] = "not a time"
    frame.to_csv(data, index=False)

    model = tmp_path / "model.npz"
    home = str(tmp_path / "home")
    out = invoke("train", "-i", str(data), "--until", "2024-01-05", "--model-out", str(model),
                 "--home", home)
    assert "trained on" in out and model.exists()
    # Registered as challenger with time-ordered validation metrics (labels only used there).
    assert "registered version 1 as @challenger" in out and "val_average_precision=" in out

    scored_path = tmp_path / "scored.csv"
    invoke("score", "-i", str(data), "-o", str(scored_path), "--model", str(model))
    scored = pd.read_csv(scored_path, keep_default_na=False)
    assert len(scored) == len(frame)
    assert list(scored["transaction_id"]) == list(frame["transaction_id"].astype(str))
    assert {"transaction_id", "score", "decision", "reasons"} <= set(scored.columns)
    assert scored.loc[3, "decision"] == "invalid"
    assert scored.loc[3, "reasons"] == "amount: Input should be greater than or equal to 0"
    assert scored.loc[7, "decision"] == "invalid"
    flagged = scored[scored["decision"].isin(["review", "block"])]
    assert len(flagged) > 0 and (flagged["reasons"] != "").mean() > 0.5

    report = tmp_path / "report"
    invoke("evaluate", "-i", str(scored_path), "--start", "2024-01-05", "--out", str(report))
    result = json.loads((report / "evaluation.json").read_text())
    model_result = result["results"][0] if "results" in result else result
    assert model_result["average_precision"] > 0.2  # far above the ~2 % fraud rate
    assert "scenarios" in model_result and (report / "pr_curve.png").exists()
    assert (report / "summary.md").read_text().count("|") > 10


def test_bench_reports_throughput() -> None:
    out = invoke("bench", "--rows", "40000", "--batch-size", "5000", "--users", "2000")
    result = json.loads(out)
    assert result["tx_per_second"] > 1000
    assert set(result["batch_latency_ms"]) == {"p50", "p95", "p99"}


def test_the_cli_contract_with_labels_and_the_prequential_protocol(tmp_path: Path) -> None:
    data = tmp_path / "sim.csv"
    invoke("simulate", "-o", str(data), "--users", "300", "--merchants", "40", "--days", "24",
           "--fraud-rate", "0.02", "--seed", "9")
    frame = pd.read_csv(data)
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    # Each label reported two days after its transaction (ISO-8601 UTC, the contract's form).
    labels = tmp_path / "labels.csv"
    frame.assign(reported_at=(ts + pd.Timedelta(days=2)).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))[
        ["transaction_id", "label", "reported_at"]].to_csv(labels, index=False)
    home = str(tmp_path / "home")
    model = tmp_path / "m.npz"
    out = invoke("train", "-i", str(data), "--until", "2024-01-17", "--labels", str(labels),
                 "--model-out", str(model), "--home", home, "--no-register")
    assert "supervised:" in out
    scored = tmp_path / "scored.csv"
    invoke("score", "-i", str(data), "--model", str(model), "--labels", str(labels),
           "-o", str(scored))
    both = invoke("evaluate", "-i", str(scored), "--start", "2024-01-17", "--end", "2024-01-24",
                  "--protocol", "both", "--out", str(tmp_path / "r1"))
    assert "(every)" in both and "(handbook)" in both
    folds = invoke("evaluate", "-i", str(data), "--labels", str(labels), "--prequential", "2",
                   "--start", "2024-01-10", "--protocol", "both", "--out", str(tmp_path / "r2"),
                   "--no-per-detector")
    assert "prequential mean AP (handbook, 2 folds)" in folds
    result = json.loads((tmp_path / "r2" / "evaluation.json").read_text())["results"]
    assert [r["name"].split(",")[0] for r in result] == ["riskstream fold 1"] * 2 + [
        "riskstream fold 2"] * 2
    assert all(r["average_precision"] > 0.2 for r in result)
