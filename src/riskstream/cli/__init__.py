"""The ``riskstream`` command line (Typer): one entry point, one module per command group.

``run`` (the whole system in one process), ``simulate`` / ``score`` / ``evaluate`` (offline, on
the one scoring core), ``train`` / ``promote`` / ``models`` (model lifecycle), ``db`` /
``profiles`` / ``stats`` (store maintenance), ``produce`` / ``worker`` / ``topics`` (Kafka),
``labels import`` (outcome labels from a file), ``bench`` (the core benchmark). Modules
import their heavy dependencies inside the command, so ``riskstream --help`` starts fast and
works without the optional extras.
"""

from __future__ import annotations

import os

import typer

from riskstream.cli import bench, kafka, labels, models, offline, ops, run

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Real-time anomaly and fraud detection for payment transactions.",
)
for group in (run, offline, models, labels, bench, ops, kafka):
    group.register(app)


def main() -> None:  # pragma: no cover
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    app()


__all__ = ["app", "main"]
