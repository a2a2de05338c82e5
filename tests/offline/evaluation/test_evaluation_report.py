"""Report files: JSON round-trip, Markdown tables, a real PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstream.offline.evaluation import evaluate, format_markdown, write_report
from riskstream.offline.evaluation.report import MAX_CURVE_POINTS, _thin

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASELINES = {
    "handbook random forest (supervised)": {"average_precision": 0.658},
    "handbook logistic regression (supervised)": {"card_precision_at_100": 0.291},
}


def _frame(seed: int = 0, n: int = 2_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.05
    return pd.DataFrame(
        {
            "score": rng.random(n) + 0.5 * label,
            "challenger": rng.random(n) + 0.2 * label,
            "label": label.astype(int),
            "timestamp": 1704067200.0 + rng.random(n) * 3 * 86_400,
            "user_id": rng.integers(0, 200, n).astype(str),
            "scenario": np.where(label, rng.choice(["ato", "card_testing"], n), ""),
        }
    )


@pytest.fixture()
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture()
def results(frame: pd.DataFrame) -> list[dict]:
    return [
        evaluate(frame, name="champion"),
        evaluate(frame, score_col="challenger", name="challenger"),
    ]


def test_write_report_creates_three_files(
    tmp_path: Path, frame: pd.DataFrame, results: list[dict]
) -> None:
    frames = {
        "champion": (frame["label"].to_numpy(), frame["score"].to_numpy()),
        "challenger": (frame["label"].to_numpy(), frame["challenger"].to_numpy()),
    }
    out_dir = tmp_path / "nested" / "report"
    paths = write_report(results, frames, out_dir, title="Q1 review", baselines=BASELINES)

    assert set(paths) == {"json", "markdown", "plot"}
    assert paths == {
        "json": out_dir / "evaluation.json",
        "markdown": out_dir / "summary.md",
        "plot": out_dir / "pr_curve.png",
    }
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert paths["plot"].read_bytes()[:8] == PNG_MAGIC

    payload = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert payload["title"] == "Q1 review"
    assert [r["name"] for r in payload["results"]] == ["champion", "challenger"]
    assert payload["results"][0]["average_precision"] == pytest.approx(
        results[0]["average_precision"]
    )
    assert payload["baselines"] == BASELINES

    md = paths["markdown"].read_text(encoding="utf-8")
    assert md.startswith("# Q1 review")
    assert "| champion |" in md and "| challenger |" in md
    assert "| handbook random forest (supervised) | 0.658 | — | — |" in md
    assert "| handbook logistic regression (supervised) | — | — | 0.291 |" in md
    assert "| ato | champion |" in md and "| card_testing | challenger |" in md


def test_write_report_without_frames_still_writes_a_png(
    tmp_path: Path, results: list[dict]
) -> None:
    paths = write_report(results, None, tmp_path)
    assert paths["plot"].read_bytes()[:8] == PNG_MAGIC
    assert "## Reference baselines" not in paths["markdown"].read_text(encoding="utf-8")
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["baselines"] == {}


def test_write_report_skips_curves_without_fraud_and_nulls_nan(tmp_path: Path) -> None:
    legit_only = _frame(1, 500).assign(label=0)
    result = evaluate(legit_only, name="quiet week")
    result["roc_auc"] = float("nan")  # a NaN from elsewhere must still give strict JSON
    frames = {"quiet week": (legit_only["label"].to_numpy(), legit_only["score"].to_numpy())}
    paths = write_report([result], frames, tmp_path)
    assert paths["plot"].read_bytes()[:8] == PNG_MAGIC
    payload = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert payload["results"][0]["roc_auc"] is None
    assert payload["results"][0]["average_precision"] is None


def test_write_report_uses_agg_backend(tmp_path: Path, results: list[dict]) -> None:
    import matplotlib

    write_report(results, None, tmp_path)
    assert matplotlib.get_backend().lower() == "agg"


def test_format_markdown_tables(results: list[dict]) -> None:
    md = format_markdown(results, BASELINES, title="t")
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| model |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    for column in ("AP", "ROC AUC", "CP@100", "P@0.5%", "R@0.5%", "P@1%", "R@1%", "P@2%", "R@2%"):
        assert column in columns
    champion = next(line for line in lines if line.startswith("| champion |"))
    assert f"{results[0]['average_precision']:.3f}" in champion
    assert f"{results[0]['card_precision_at_100']:.3f}" in champion
    assert "| scenario | model | n | AP | recall@1% |" in md
    n_ato = results[0]["scenarios"]["ato"]["n"]
    assert f"| ato | champion | {n_ato:,} |" in md
    assert "not computed on this data" in md  # baselines carry their caveat


def test_format_markdown_missing_values_and_escaping() -> None:
    md = format_markdown(
        [{"name": "a|b", "average_precision": None, "roc_auc": float("nan"), "budgets": {}}]
    )
    row = next(line for line in md.splitlines() if line.startswith("| a\\|b |"))
    assert row.count("—") >= 3
    assert "## Per scenario" not in md and "## Reference baselines" not in md


def test_thin_keeps_ends_and_bounds_points() -> None:
    idx = _thin(2_000_000)
    assert idx[0] == 0 and idx[-1] == 1_999_999
    assert len(idx) <= MAX_CURVE_POINTS + 2 and np.all(np.diff(idx) > 0)
    assert np.array_equal(_thin(10), np.arange(10))
