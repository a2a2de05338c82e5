"""Reading transaction files (CSV, CSV.gz, Parquet) into canonical columns.

``read_transactions(path, mapping=...)`` renames source columns to canonical names. A preset
covers the Fraud Detection Handbook data (``--map fdh``): its TERMINAL_ID is the merchant,
TX_DATETIME is naive and taken as UTC, TX_FRAUD/TX_FRAUD_SCENARIO become the ``label`` and
``scenario`` extras (carried, never used as features).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from riskstream.schema import epoch_seconds

PRESETS: dict[str, dict[str, str]] = {
    "fdh": {
        "TRANSACTION_ID": "transaction_id",
        "TX_DATETIME": "timestamp",
        "CUSTOMER_ID": "user_id",
        "TERMINAL_ID": "merchant_id",
        "TX_AMOUNT": "amount",
        "TX_FRAUD": "label",
        "TX_FRAUD_SCENARIO": "scenario",
    },
}
#: Presets whose timestamps carry no zone and are documented as UTC.
NAIVE_UTC = {"fdh"}
#: Source columns a preset drops because they are derived or would leak.
DROP = {"fdh": ["TX_TIME_SECONDS", "TX_TIME_DAYS"]}


#: Columns of each preset that identify its layout (the label columns may be absent).
_LABEL_SOURCES = {"TX_FRAUD", "TX_FRAUD_SCENARIO"}


def _detected_preset(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        columns = set(pq.read_schema(path).names)
    elif name.endswith((".csv", ".csv.gz")):
        columns = set(pd.read_csv(path, nrows=0).columns)
    else:
        return None
    for preset, rename in PRESETS.items():
        if set(rename) - _LABEL_SOURCES <= columns:
            return preset
    return None


def parse_mapping(spec: str | None) -> tuple[dict[str, str], bool, list[str]]:
    """``"fdh"`` or ``"SRC=dst,SRC2=dst2"`` -> (rename map, naive-is-UTC, columns to drop)."""
    if not spec:
        return {}, False, []
    if spec in PRESETS:
        return dict(PRESETS[spec]), spec in NAIVE_UTC, DROP.get(spec, [])
    mapping = {}
    for part in spec.split(","):
        src, sep, dst = part.partition("=")
        if not sep:
            raise ValueError(f"bad --map entry {part!r}: use SRC=dst or a preset {list(PRESETS)}")
        mapping[src.strip()] = dst.strip()
    return mapping, False, []


def read_transactions(path: str | Path, mapping: str | None = None) -> pd.DataFrame:
    """A transaction file in canonical columns: ``mapping`` as :func:`parse_mapping` takes
    it; without one, a file in a preset's own layout (every source column of the preset but
    its label ones) is read with that preset."""
    path = Path(path)
    if mapping is None:
        mapping = _detected_preset(path)
    rename, naive_utc, drop = parse_mapping(mapping)
    name = path.name.lower()
    if name.endswith(".parquet"):
        frame = pd.read_parquet(path)
    elif name.endswith((".csv", ".csv.gz")):
        # ids stay text: "007" and "7" are different customers.
        frame = pd.read_csv(
            path,
            dtype={"transaction_id": str, "user_id": str, "merchant_id": str, "device_id": str},
        )
    else:
        raise ValueError(f"unsupported file type: {path.name} (csv, csv.gz or parquet)")
    frame = frame.drop(columns=[c for c in drop if c in frame.columns]).rename(columns=rename)
    if naive_utc and "timestamp" in frame.columns:
        frame["timestamp"] = epoch_seconds(pd.to_datetime(frame["timestamp"]))
    return frame


def read_labels(path: str | Path) -> pd.DataFrame:
    """An outcome-labels file (CSV, CSV.gz or Parquet) as read, ids as text; validate it with
    :func:`riskstream.schema.validate_labels`."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        frame = pd.read_parquet(path)
        if "transaction_id" in frame:
            frame["transaction_id"] = frame["transaction_id"].astype(str)
        return frame
    return pd.read_csv(path, dtype={"transaction_id": str, "label": str, "reported_at": str},
                       keep_default_na=False, na_values=[""])
