"""Configuration, whole-history simulation, file output and live streaming.

Contract
--------
* :func:`simulate` is a pure function of :class:`SimConfig`: the same config gives an
  identical frame. Columns are ``CANONICAL_COLUMNS + ("label", "scenario")``, rows sorted by
  ``timestamp`` (float epoch seconds, UTC, millisecond resolution, stable sort), ids
  ``tx-00000001``... in time order.
* Randomness: the population (users, merchants, devices) comes from ``seed`` alone; the
  traffic of window ``k`` (``k = 0`` for :func:`simulate`) from ``(seed, k)``. So a stream's
  successive windows are new days for the *same* people and merchants.
* :func:`write` picks the format from the suffix; CSV timestamps are ISO-8601 UTC with ``Z``.
* :func:`stream` yields micro-batches forever, rebased to the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from riskstream.schema import CANONICAL_COLUMNS, CHANNELS, parse_timestamp
from riskstream.simulate.events import DAY, Events, legit_traffic
from riskstream.simulate.population import CATEGORIES, Population, build_population
from riskstream.simulate.scenarios import (
    ALL_SCENARIOS,
    SCENARIO_FUNCTIONS,
    Context,
    scenario_code,
)

__all__ = ["OUTPUT_COLUMNS", "SimConfig", "simulate", "stream", "write"]

OUTPUT_COLUMNS: tuple[str, ...] = (*CANONICAL_COLUMNS, "label", "scenario")
# Fraud rates at or above this would make "fraud" the usual behaviour of the population.
_MAX_FRAUD_RATE = 0.5
# Stream pacing never sleeps less than this (avoids busy-looping on sub-ms sleeps).
_MIN_SLEEP_S = 1e-3

_SCENARIO_NAMES = np.array(["", *ALL_SCENARIOS], dtype=object)
_CATEGORY_NAMES = np.array(CATEGORIES, dtype=object)
_CHANNEL_NAMES = np.array(CHANNELS, dtype=object)


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Invalid values raise ``ValueError`` at construction.

    ``fraud_rate`` is the approximate fraction of output rows labelled fraud, split evenly
    across the enabled ``scenarios`` (any subset of :data:`ALL_SCENARIOS`, order irrelevant;
    an empty tuple gives legitimate traffic only).
    """

    n_users: int = 2000
    n_merchants: int = 500
    days: float = 7.0
    start: str = "2024-01-01T00:00:00Z"  # ISO-8601 with a zone
    seed: int = 42
    fraud_rate: float = 0.01
    scenarios: tuple[str, ...] = ALL_SCENARIOS

    def __post_init__(self) -> None:
        # Accept any iterable of names (e.g. a list from a CLI) but store a tuple.
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        if self.n_users < 1:
            raise ValueError("n_users must be >= 1")
        if self.n_merchants < 2:
            raise ValueError("n_merchants must be >= 2 (at least one online, one in person)")
        if not self.days > 0:
            raise ValueError("days must be > 0")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if not 0.0 <= self.fraud_rate < _MAX_FRAUD_RATE:
            raise ValueError(f"fraud_rate must be in [0, {_MAX_FRAUD_RATE})")
        unknown = sorted(set(self.scenarios) - set(ALL_SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenarios {unknown}; choose from {list(ALL_SCENARIOS)}")
        # Raises ValueError for a missing zone or an out-of-range date.
        end = self.start_epoch + self.span_seconds
        parse_timestamp(end)

    @property
    def start_epoch(self) -> float:
        """``start`` as epoch seconds (UTC)."""
        return parse_timestamp(self.start)

    @property
    def span_seconds(self) -> float:
        """Length of one simulation window in seconds."""
        return float(self.days) * DAY


def _population(config: SimConfig) -> Population:
    rng = np.random.default_rng([config.seed, 0])
    return build_population(config.n_users, config.n_merchants, rng)


def _window_events(
    config: SimConfig, pop: Population, window: int
) -> tuple[Events, np.ndarray]:
    """Legitimate traffic plus injected fraud of one window, and the device id table."""
    rng = np.random.default_rng([config.seed, 1, window])
    span = config.span_seconds
    legit = legit_traffic(pop, rng, span)
    ctx = Context(pop, rng, span, legit, n_devices=len(pop.device_ids))
    enabled = [s for s in ALL_SCENARIOS if s in config.scenarios]
    parts = [legit]
    if enabled and config.fraud_rate > 0:
        # Injected rows add to the total, so aim at rate / (1 - rate) of the legit count.
        target = config.fraud_rate / (1.0 - config.fraud_rate) * len(legit) / len(enabled)
        for name in enabled:
            injection = SCENARIO_FUNCTIONS[name](ctx, target)
            parts.append(injection.events)
            legit.scenario[injection.relabel] = scenario_code(name)
    devices = np.concatenate([pop.device_ids, *ctx.new_device_ids])
    return Events.concat(parts), devices


def _to_frame(
    pop: Population, ev: Events, devices: np.ndarray, start_epoch: float, first_id: int
) -> pd.DataFrame:
    """Materialise integer-coded events as the output frame, sorted by time."""
    order = np.argsort(ev.t, kind="stable")
    user, merchant = ev.user[order], ev.merchant[order]
    m = pop.merchants
    city = m.city[merchant]  # -1 (online) indexes the "" sentinel at the end of the tables
    located = city >= 0
    currency = np.where(
        located,
        pop.city_currency[np.where(located, city, 0)],
        pop.city_currency[pop.users.home_city[user]],
    )
    n = len(order)
    scenario = ev.scenario[order]
    return pd.DataFrame(
        {
            "transaction_id": [f"tx-{i:08d}" for i in range(first_id, first_id + n)],
            "timestamp": np.round(start_epoch + ev.t[order], 3),
            "user_id": pop.users.ids[user],
            "amount": ev.amount[order],
            "currency": currency,
            "merchant_id": m.ids[merchant],
            "merchant_category": _CATEGORY_NAMES[m.category[merchant]],
            "city": pop.city_names[city],
            "country": pop.city_country[city],
            "lat": m.lat[merchant],
            "lon": m.lon[merchant],
            "device_id": devices[ev.device[order]],
            "channel": _CHANNEL_NAMES[m.channel[merchant]],
            "label": (scenario > 0).astype(np.int64),
            "scenario": _SCENARIO_NAMES[scenario],
        },
        columns=list(OUTPUT_COLUMNS),
    )


def simulate(config: SimConfig) -> pd.DataFrame:
    """The whole simulated history for ``config`` (see the module contract).

    >>> frame = simulate(SimConfig(n_users=30, n_merchants=20, days=1, seed=3))
    >>> frame["transaction_id"].iloc[0], bool(frame["timestamp"].is_monotonic_increasing)
    ('tx-00000001', True)
    """
    pop = _population(config)
    events, devices = _window_events(config, pop, 0)
    return _to_frame(pop, events, devices, config.start_epoch, first_id=1)


def write(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as ``.csv``, ``.csv.gz`` or ``.parquet`` (chosen by suffix).

    CSV gets ISO-8601 UTC timestamps with millisecond precision and a ``Z``
    (``2024-01-01T00:00:31.250Z``) and round-trips through
    :func:`riskstream.schema.validate_frame`; Parquet keeps float epoch seconds.
    Parent directories are created.
    """
    path = Path(path)
    name = path.name.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith((".csv", ".csv.gz")):
        out = frame
        ts = frame.get("timestamp")
        if ts is not None and pd.api.types.is_numeric_dtype(ts):
            ms = np.round(ts.to_numpy(dtype=float) * 1000.0).astype(np.int64)
            out = frame.copy()
            out["timestamp"] = np.datetime_as_string(
                ms.astype("datetime64[ms]"), unit="ms", timezone="UTC"
            )
        # gzip level 6 (the gzip CLI default): ~30% faster than Python's 9, nearly as small.
        compression = {"method": "gzip", "compresslevel": 6} if name.endswith(".gz") else None
        out.to_csv(path, index=False, compression=compression)
    else:
        raise ValueError(f"unsupported output format {path.name!r}: use .csv, .csv.gz or .parquet")


def stream(
    config: SimConfig, rate: float | None = None, batch_size: int = 500
) -> Iterator[pd.DataFrame]:
    """Yield time-ordered micro-batches of ``batch_size`` rows, indefinitely.

    Window ``k`` is the simulation of ``config`` with traffic seed ``(seed, k)`` and the same
    population; windows follow each other in time and transaction ids keep counting, so ids
    are unique across the whole stream. Timestamps are rebased to the wall clock: the first
    event is stamped ``time.time()`` at the first batch, and simulated time is scaled by one
    factor so that about ``rate`` events fall in each wall-clock second (``rate=None``: real
    simulated spacing, no sleeping). With a ``rate``, each batch is held back until the wall
    clock reaches its last timestamp (one ``time.sleep`` per batch); a slow consumer is not
    caught up by bursting, batches are then simply emitted without sleeping.
    """
    if rate is not None and not rate > 0:
        raise ValueError("rate must be > 0 events per second (or None)")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    pop = _population(config)
    span = config.span_seconds
    next_id = 1
    pending: pd.DataFrame | None = None
    wall0 = t_first = scale = 0.0
    window = 0
    while True:
        events, devices = _window_events(config, pop, window)
        frame = _to_frame(pop, events, devices, 0.0, first_id=next_id)
        next_id += len(frame)
        if window == 0:
            if len(frame) == 0:
                raise ValueError("the configuration produces no transactions to stream")
            t_first = float(frame["timestamp"].iat[0])
            # Wall seconds per simulated second: window 0 sets the pace for the whole stream.
            scale = 1.0 if rate is None else len(frame) / rate / span
            wall0 = time.time()
        sim = window * span + frame["timestamp"].to_numpy()
        frame["timestamp"] = np.round(wall0 + (sim - t_first) * scale, 3)
        window += 1
        buffer = frame if pending is None else pd.concat([pending, frame], ignore_index=True)
        n_full = len(buffer) // batch_size * batch_size
        for lo in range(0, n_full, batch_size):
            batch = buffer.iloc[lo : lo + batch_size].reset_index(drop=True)
            if rate is not None:
                wait = float(batch["timestamp"].iat[-1]) - time.time()
                if wait > _MIN_SLEEP_S:
                    time.sleep(wait)
            yield batch
        pending = buffer.iloc[n_full:].reset_index(drop=True)
