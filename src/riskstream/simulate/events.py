"""Event arrays and legitimate traffic.

Contract
--------
* :class:`Events` is the columnar, integer-coded form of transactions inside one simulation
  window: time in seconds since the window start, user / merchant / device indices, amount and
  a scenario code (0 = legitimate, ``i + 1`` = ``ALL_SCENARIOS[i]``). Location, channel,
  category and currency are *derived from the merchant* when the frame is built, so every row
  is consistent by construction.
* :func:`legit_traffic` draws the legitimate history of every user for one window, fully
  vectorised (no per-event Python code): per-user Poisson counts, times clustered around the
  user's local peak hour, merchants from the user's usual categories in their home city (or
  online), lognormal amounts around the user's median, and occasional legitimate trips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskstream.simulate.population import (
    AMOUNT_MULTIPLIER,
    CAT,
    CATEGORIES,
    Population,
    haversine_km,
    pick_union,
)

__all__ = ["Events", "finish_amounts", "legit_traffic"]

DAY = 86_400.0
HOUR = 3_600.0
#: Share of purchases that are outside the user's usual categories ("exploration").
EXPLORE_SHARE = 0.05
#: Share of purchases timed around the peak hour; the rest are spread over the whole day.
PEAK_SHARE = 0.85
PEAK_SD_HOURS = 2.5
#: Share of users who take one legitimate trip per window (1-4 days, any other city).
TRIP_SHARE = 0.03
#: Travel speed used to block in-person purchases while "in the air" (airliner + margin),
#: plus a fixed airport/transfer time, so legitimate trips never look like impossible travel.
TRAVEL_KMH = 800.0
TRAVEL_OVERHEAD_S = 2 * HOUR
#: Probability that a user with several devices uses their primary one.
PRIMARY_DEVICE_SHARE = 0.8
#: ATMs dispense multiples of 20.
ATM_NOTE = 20.0


@dataclass(eq=False)
class Events:
    """Integer-coded transactions of one window (see module docstring)."""

    t: np.ndarray
    user: np.ndarray
    merchant: np.ndarray
    amount: np.ndarray
    device: np.ndarray
    scenario: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def empty(cls) -> Events:
        z = np.zeros(0, dtype=np.int64)
        return cls(np.zeros(0), z, z, np.zeros(0), z, np.zeros(0, dtype=np.int8))

    @classmethod
    def concat(cls, parts: list[Events]) -> Events:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.t for p in parts]).astype(float),
            np.concatenate([p.user for p in parts]).astype(np.int64),
            np.concatenate([p.merchant for p in parts]).astype(np.int64),
            np.concatenate([p.amount for p in parts]).astype(float),
            np.concatenate([p.device for p in parts]).astype(np.int64),
            np.concatenate([p.scenario for p in parts]).astype(np.int8),
        )


def finish_amounts(pop: Population, merchant: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Round to cents (min 0.01); ATM withdrawals become multiples of :data:`ATM_NOTE`."""
    atm = pop.merchants.category[merchant] == CAT["cash_withdrawal"]
    out = np.maximum(np.round(amount, 2), 0.01)
    out[atm] = np.maximum(np.round(amount[atm] / ATM_NOTE), 1.0) * ATM_NOTE
    return out


def typical_amount(
    pop: Population, user: np.ndarray, merchant: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A draw from the user's usual amount distribution at this merchant's category."""
    u = pop.users
    mult = AMOUNT_MULTIPLIER[pop.merchants.category[merchant]]
    return u.median_amount[user] * mult * np.exp(rng.normal(0.0, 1.0, len(user)) * u.spread[user])


def own_device(pop: Population, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the user's own devices: the primary one most of the time."""
    u = pop.users
    n_dev = u.n_devices[user]
    other = 1 + (rng.random(len(user)) * np.maximum(n_dev - 1, 1)).astype(np.int64)
    use_primary = (n_dev == 1) | (rng.random(len(user)) < PRIMARY_DEVICE_SHARE)
    return u.device_start[user] + np.where(use_primary, 0, other)


def legit_traffic(pop: Population, rng: np.random.Generator, span: float) -> Events:
    """All legitimate transactions of one window of ``span`` seconds (unsorted)."""
    u, m = pop.users, pop.merchants
    n_users, n_cat = len(u), len(CATEGORIES)
    counts = rng.poisson(u.rate_per_day * span / DAY)
    user = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    n = len(user)
    home = u.home_city[user]

    # Time: a uniform position picks the (local) day, the time of day clusters around the
    # user's peak hour. Times pushed out of the window by the offset wrap around its end.
    offset = pop.city_utc_offset[home] * HOUR
    local_day = np.floor((rng.random(n) * span + offset) / DAY)
    tod = np.where(
        rng.random(n) < PEAK_SHARE,
        rng.normal(u.peak_hour[user], PEAK_SD_HOURS),
        rng.uniform(0.0, 24.0, n),
    ) % 24.0
    t = (local_day * DAY + tod * HOUR - offset) % span

    # Merchant: a usual category (earlier = more used: rank = floor(k * U^1.5)), at home or
    # online; a few purchases anywhere at home/online.
    k = u.n_categories[user]
    rank = np.minimum((k * rng.random(n) ** 1.5).astype(np.int64), k - 1)
    cat = u.categories[user, rank]
    merchant = pick_union(
        pop.by_city_category, home * n_cat + cat, pop.online_by_category, cat, rng.random(n)
    )
    explore = rng.random(n) < EXPLORE_SHARE
    merchant[explore] = pick_union(
        pop.by_city,
        home[explore],
        pop.online,
        np.zeros(int(explore.sum()), dtype=np.int64),
        rng.random(int(explore.sum())),
    )

    # Trips: in-person purchases happen at the destination while there, and nowhere (online
    # only) while travelling, so the implied speed between two located purchases stays sane.
    traveller = rng.random(n_users) < TRIP_SHARE
    dest = (u.home_city + rng.integers(1, pop.n_cities, n_users)) % pop.n_cities
    dest_ok = pop.city_has_merchants[dest]
    trip_start = rng.random(n_users) * span
    trip_len = rng.uniform(1.0, 4.0, n_users) * DAY
    transit = (
        haversine_km(
            pop.city_lat[u.home_city], pop.city_lon[u.home_city], pop.city_lat[dest],
            pop.city_lon[dest],
        )
        / TRAVEL_KMH
        * HOUR
        + TRAVEL_OVERHEAD_S
    )
    on_trip = (traveller & dest_ok)[user]
    if on_trip.any():
        rows = np.flatnonzero(on_trip & m.located[merchant])
        ru = user[rows]
        rel = t[rows] - trip_start[ru]
        at_dest = (rel >= transit[ru]) & (rel <= trip_len[ru])
        moving = ((rel >= 0) & (rel < transit[ru])) | (
            (rel > trip_len[ru]) & (rel <= trip_len[ru] + transit[ru])
        )
        d_rows = rows[at_dest]
        merchant[d_rows] = pop.by_city.pick(dest[user[d_rows]], rng.random(len(d_rows)))
        mv_rows = rows[moving]
        merchant[mv_rows] = pop.online.pick(
            np.zeros(len(mv_rows), dtype=np.int64), rng.random(len(mv_rows))
        )

    amount = finish_amounts(pop, merchant, typical_amount(pop, user, merchant, rng))
    return Events(
        t=t,
        user=user,
        merchant=merchant,
        amount=amount,
        device=own_device(pop, user, rng),
        scenario=np.zeros(n, dtype=np.int8),
    )
