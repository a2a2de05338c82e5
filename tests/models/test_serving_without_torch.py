"""Serving must not need PyTorch: a full ensemble loads and scores with torch unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from riskstream.models.bundle import parse_detectors
from riskstream.offline import replay

SCRIPT = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
from riskstream.scoring.core import ScoringCore
from riskstream.features import InMemoryStateStore
from riskstream.models import ModelBundle
import pandas as pd
bundle = ModelBundle.load(sys.argv[1])
frame = pd.read_parquet(sys.argv[2])
scored = ScoringCore(bundle, InMemoryStateStore()).score(frame)
pd.DataFrame({"score": scored.scores}).to_parquet(sys.argv[3])
print(",".join(bundle.member_names))
"""


def test_full_ensemble_scores_without_torch(sim_history: pd.DataFrame, tmp_path: Path) -> None:
    history = sim_history.drop(columns=["label", "scenario"])
    bundle = replay.train(history, detectors=parse_detectors(
        "isolation_forest:0.4,autoencoder:0.4,sequence:0.2,half_space_trees:0.1"))
    model = bundle.save(tmp_path / "ensemble.npz")
    valid, _, _ = replay.prepare(history)
    batch = valid.iloc[:500]
    batch.to_parquet(tmp_path / "batch.parquet")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model), str(tmp_path / "batch.parquet"),
         str(tmp_path / "scores.parquet")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "isolation_forest,autoencoder,sequence,half_space_trees"
    from riskstream.features import InMemoryStateStore
    from riskstream.scoring.core import ScoringCore

    here = ScoringCore(bundle, InMemoryStateStore()).score(batch).scores
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "scores.parquet")["score"], here)
