"""Evaluation reports: JSON for machines, Markdown for people, a precision-recall plot.

Contract
--------
* :func:`write_report` takes one :func:`~riskstream.offline.evaluation.metrics.evaluate` dict per
  model (champion vs challenger, one per detector...) and writes three files into
  ``out_dir`` (created if needed): ``evaluation.json`` (title, all results, baselines; strict
  JSON, NaN written as ``null``), ``summary.md`` (:func:`format_markdown`) and
  ``pr_curve.png`` (one precision-recall curve per entry of ``frames``; a placeholder
  figure when no frames are given). It returns ``{"json": path, "markdown": path,
  "plot": path}``.
* Baselines are *reference numbers from elsewhere* (e.g. the Fraud Detection Handbook's
  supervised models on its own simulated data). They are shown in their own table with a
  caveat, never mixed into the model rows: they were not computed on this data, and the
  handbook's CP@100 removes already-detected cards while ours does not. Missing metrics
  show as ``—``.
* Plotting uses matplotlib's Agg backend, selected with ``matplotlib.use("Agg")`` right
  before pyplot is first needed (not at import, so importing this package never changes
  the backend of an interactive session).

>>> text = format_markdown([{"name": "champion", "average_precision": 0.5}],
...                        baselines={"handbook random forest": {"average_precision": 0.658}})
>>> "| champion |" in text, "| handbook random forest | 0.658 | — | — |" in text
(True, True)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from riskstream.offline.evaluation.metrics import _plain, average_precision, pr_curve

__all__ = ["format_markdown", "write_report"]

DASH = "—"
#: Metrics shown for every model and baseline, in column order: (key, header).
HEADLINE: tuple[tuple[str, str], ...] = (
    ("average_precision", "AP"),
    ("roc_auc", "ROC AUC"),
    ("card_precision_at_100", "CP@100"),
)
#: Most points drawn per precision-recall curve (denser at the top of the ranking).
MAX_CURVE_POINTS = 4000

_DEFINITIONS = """\
## Definitions

- **AP**: average precision, the area under the step precision-recall curve (sklearn's
  definition); the fraud rate is what a random ranking scores.
- **ROC AUC**: probability that a random fraud outranks a random legitimate transaction.
- **CP@100**: card precision top-100 (Fraud Detection Handbook, ch. 4.2), plain per-day
  variant: per UTC day, cards ranked by their max score that day, share of the top 100
  cards that had a fraud that day, averaged over days. Cards detected on earlier days are
  *not* removed (the handbook's default removes them), so values are not like-for-like.
- **P@b / R@b**: precision / recall when the top ceil(b·n) transactions are alerted (ties
  broken by row order).
- **Per scenario**: AP of that scenario's frauds ranked against all legitimate rows;
  recall of that scenario's frauds within the global top-ceil(b·n) alerts.
"""


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or isinstance(value, bool):
        return DASH if value is None else str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return DASH if not np.isfinite(value) else f"{float(value):.{digits}f}"
    return _text(value)


def _text(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _percent(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return DASH
    return f"{100 * number:.3f}%" if np.isfinite(number) else DASH


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _budget_labels(results: Sequence[Mapping[str, Any]]) -> list[str]:
    labels: list[str] = []
    for result in results:
        for label in result.get("budgets") or {}:
            if label not in labels:
                labels.append(label)
    return labels


def _period(result: Mapping[str, Any]) -> str:
    period = result.get("period") or {}
    start, end = period.get("start"), period.get("end")
    if not start or not end:
        return DASH
    return f"{str(start)[:10]} → {str(end)[:10]}"


def _overall(results: Sequence[Mapping[str, Any]]) -> list[str]:
    budgets = _budget_labels(results)
    header = ["model", "transactions", "frauds", "fraud rate", "period (UTC)"]
    header += [h for _, h in HEADLINE]
    header += [f"{kind}@{b}" for b in budgets for kind in ("P", "R")]
    rows = []
    for result in results:
        row = [
            _text(result.get("name", DASH)),
            _cell(result.get("n")),
            _cell(result.get("n_fraud")),
            _percent(result.get("fraud_rate")),
            _period(result),
        ]
        row += [_cell(result.get(key)) for key, _ in HEADLINE]
        stats = result.get("budgets") or {}
        for b in budgets:
            at = stats.get(b) or {}
            row += [_cell(at.get("precision")), _cell(at.get("recall"))]
        rows.append(row)
    return _table(header, rows)


def _alert_days(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per day, each model's alerts (its decisions): precision and the frauds' recall."""
    rows = [
        [_text(d["day"]), _text(r.get("name", DASH)), _cell(d["alerts"]), _cell(d["confirmed"]),
         _cell(d["precision"]), _cell(d["frauds"]), _cell(d["frauds_missed"]),
         _cell(d["recall"])]
        for r in results for d in (r.get("alert_quality") or [])
    ]
    if not rows:
        return []
    header = ["day (UTC)", "model", "alerts", "fraud", "precision", "frauds", "missed", "recall"]
    return ["## Alerts per day (the decisions served: review or block)", "",
            *_table(header, rows), ""]


def _scenarios(results: Sequence[Mapping[str, Any]]) -> list[str]:
    names = sorted({s for r in results for s in (r.get("scenarios") or {})})
    if not names:
        return []
    budgets = _budget_labels(results)
    recall_key = "1%" if "1%" in budgets or not budgets else budgets[0]
    rows = []
    for scenario in names:
        for result in results:
            stats = (result.get("scenarios") or {}).get(scenario)
            if stats is None:
                continue
            rows.append(
                [
                    _text(scenario),
                    _text(result.get("name", DASH)),
                    _cell(stats.get("n")),
                    _cell(stats.get("ap")),
                    _cell((stats.get("recall_at") or {}).get(recall_key)),
                ]
            )
    header = ["scenario", "model", "n", "AP", f"recall@{recall_key}"]
    return ["## Per scenario", "", *_table(header, rows), ""]


def _baselines(baselines: Mapping[str, Mapping[str, Any]]) -> list[str]:
    known = [key for key, _ in HEADLINE]
    extra: list[str] = []
    for metrics in baselines.values():
        extra += [k for k in metrics if k not in known and k not in extra]
    header = ["baseline", *(h for _, h in HEADLINE), *extra]
    rows = [
        [_text(name), *(_cell(metrics.get(key)) for key in known + extra)]
        for name, metrics in baselines.items()
    ]
    note = (
        "> Reference numbers reported elsewhere, not computed on this data (different "
        "transactions, fraud mix and, for CP@100, possibly a different variant). Context, "
        "not a like-for-like comparison."
    )
    return ["## Reference baselines", "", note, "", *_table(header, rows), ""]


def format_markdown(
    results: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "riskstream evaluation",
) -> str:
    """The Markdown summary: overall table, per-scenario table, baselines, definitions.

    ``results`` are :func:`~riskstream.offline.evaluation.metrics.evaluate` dicts (one row per
    model); ``baselines`` maps a reference name to whichever metrics it has (``AP``,
    ``ROC AUC``, ``CP@100``, plus any other keys as extra columns). Missing or undefined
    values print as ``—``.
    """
    lines = [f"# {title}", "", "## Overall", "", *_overall(results), ""]
    lines += _scenarios(results)
    lines += _alert_days(results)
    if baselines:
        lines += _baselines(baselines)
    lines.append(_DEFINITIONS)
    return "\n".join(lines)


def _thin(n: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices to draw from an ``n``-point curve: log-spaced (detail at the top) + linear."""
    if n <= limit:
        return np.arange(n)
    half = limit // 2
    picks = np.concatenate((np.geomspace(1, n, half) - 1, np.linspace(0, n - 1, half), [0, n - 1]))
    return np.unique(picks.astype(np.int64))


def _plot(frames: Mapping[str, tuple[ArrayLike, ArrayLike]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    try:
        drawn = 0
        for name, (labels, scores) in frames.items():
            y = np.asarray(labels)
            if not np.any(y == 1):
                continue  # no fraud: the curve is undefined
            recall, precision = pr_curve(y, scores)
            idx = _thin(len(recall))
            ap = average_precision(y, scores)
            (line,) = ax.plot(
                recall[idx],
                precision[idx],
                drawstyle="steps-pre",
                label=f"{name} (AP={ap:.3f})",
            )
            ax.axhline(float(np.mean(y == 1)), color=line.get_color(), ls=":", lw=0.8)
            drawn += 1
        if drawn == 0:
            ax.text(
                0.5,
                0.5,
                "no scored, labelled data with fraud supplied",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        else:
            ax.legend(loc="upper right", fontsize="small")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            xlabel="Recall",
            ylabel="Precision",
            title=f"{title}: precision-recall (dotted: fraud rate)",
        )
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def write_report(
    results: list[dict[str, Any]],
    frames: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    out_dir: str | Path,
    title: str = "riskstream evaluation",
    baselines: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write ``evaluation.json``, ``summary.md`` and ``pr_curve.png`` into ``out_dir``.

    ``frames`` maps a model name to ``(labels, scores)`` for its precision-recall curve;
    models without fraud in their labels are left off the plot. Returns the three paths
    under the keys ``"json"``, ``"markdown"`` and ``"plot"``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "evaluation.json",
        "markdown": out / "summary.md",
        "plot": out / "pr_curve.png",
    }
    payload = _plain({"title": title, "results": results, "baselines": baselines or {}})
    paths["json"].write_text(
        json.dumps(payload, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    paths["markdown"].write_text(format_markdown(results, baselines, title=title), encoding="utf-8")
    _plot(frames or {}, paths["plot"], title)
    return paths
