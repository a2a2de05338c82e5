"""``riskstream labels import``: a labels file into the results store, bad rows named."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from riskstream.cli import app
from riskstream.storage.sql import SQLResultsStore

runner = CliRunner()


def test_import_is_idempotent_and_names_bad_rows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = tmp_path / "labels.csv"
    path.write_text("transaction_id,label,reported_at\n"
                    "t1,1,2024-01-08T00:00:00Z\n"
                    "t2,legitimate,\n"
                    "t3,maybe,2024-01-08T00:00:00Z\n"
                    "t4,1,last tuesday\n")
    first = runner.invoke(app, ["labels", "import", str(path), "--home", str(home)])
    assert first.exit_code == 0, first.output
    assert "imported 2 labels (new 2, updated 0, unchanged 0); refused 2" in first.output
    assert "row 4: label: must be 1/0" in first.output
    assert "row 5: reported_at: must be ISO-8601" in first.output
    again = runner.invoke(app, ["labels", "import", str(path), "--home", str(home)])
    assert "(new 0, updated 0, unchanged 2)" in again.output
    store = SQLResultsStore(f"sqlite:///{home / 'results.db'}")
    try:
        got = store.get_label("t1")
        assert got is not None and got["label"] == 1 and got["source"] == "import"
        assert store.label_counts() == {"labels": 2, "fraud": 1, "pending": 2}
    finally:
        store.close()


def test_a_file_without_a_valid_label_fails(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("transaction_id,verdict\nt1,1\n")
    result = runner.invoke(app, ["labels", "import", str(path), "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert "label: Field required" in result.output
