"""Seeded, reproducible synthetic payment transactions with labelled fraud scenarios.

Contract
--------
* ``simulate(SimConfig(...))`` returns the whole history as a DataFrame with the columns
  ``riskstream.schema.CANONICAL_COLUMNS`` followed by ``label`` (int 0/1) and ``scenario``
  (``""`` for legitimate rows, otherwise one of :data:`ALL_SCENARIOS`), sorted by
  ``timestamp`` (float epoch seconds, UTC). ``transaction_id`` values are unique
  (``tx-00000001``...). The output validates through ``riskstream.schema.validate_frame``
  with no errors.
* The same config always gives an identical frame (numpy ``default_rng`` seeded from
  ``seed``; no global random state, no clock).
* ``fraud_rate`` is the approximate fraction of fraudulent rows, split evenly across the
  enabled scenarios. Fraud is *injected* into real users' histories (new rows), except
  ``compromised_merchant``, which relabels every transaction at a merchant for a period.
* ``write(frame, path)`` writes ``.csv`` / ``.csv.gz`` (ISO-8601 ``Z`` timestamps) or
  ``.parquet`` (epoch floats). ``stream(config, rate, batch_size)`` yields live,
  wall-clock-rebased micro-batches forever, optionally paced to ``rate`` events/s.
* Generation is vectorised numpy: about a million rows in a few seconds.

Modules: :mod:`.population` (cities, merchants, users), :mod:`.events` (legitimate traffic),
:mod:`.scenarios` (fraud injection), :mod:`.generator` (config, simulate, write, stream).

>>> from riskstream.simulate import SimConfig, simulate
>>> cfg = SimConfig(n_users=100, n_merchants=60, days=2, seed=7, fraud_rate=0.05)
>>> frame = simulate(cfg)
>>> list(frame.columns[-2:]), bool(frame["transaction_id"].is_unique)
(['label', 'scenario'], True)
>>> frame.equals(simulate(cfg))
True
>>> sorted(set(frame.loc[frame["label"] == 1, "scenario"])) == sorted(ALL_SCENARIOS)
True
"""

from riskstream.simulate.generator import OUTPUT_COLUMNS, SimConfig, simulate, stream, write
from riskstream.simulate.scenarios import ALL_SCENARIOS

__all__ = ["ALL_SCENARIOS", "OUTPUT_COLUMNS", "SimConfig", "simulate", "stream", "write"]
