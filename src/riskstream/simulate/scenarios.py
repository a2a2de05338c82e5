"""Labelled fraud scenarios injected into the legitimate traffic of one window.

Contract
--------
Every scenario is a function ``(ctx, target_rows) -> Injection``: it aims at about
``target_rows`` fraudulent rows (at least one incident whenever ``target_rows > 0``), returns
the *new* rows it injects (``Injection.events``, scenario code already set) and the indices of
*legitimate* rows it relabels (``Injection.relabel``; only ``compromised_merchant`` does that).
Victims are drawn from users with some legitimate history, without replacement across all
scenarios of a window while enough users exist, so signatures do not overlap. Each incident
is placed so that it fits inside the window.

Signatures (what a detector can see):

* ``account_takeover``: a never-seen device, a city in another country far from home,
  2-5 transactions over a few hours at 3-10x the user's median amount.
* ``card_testing``: a new device hits web shops with 3-8 tiny amounts (0.50-2.00) a few
  seconds to ~1.5 min apart, then one large purchase within minutes.
* ``impossible_travel``: one purchase at a city >= 1500 km away, 5-60 min after a legitimate
  in-person purchase at home (implied speed > 1000 km/h); usual device, usual amounts.
* ``spending_spike``: one purchase at 5-20x the user's median, at a merchant and on a device
  the user already uses.
* ``compromised_merchant``: every transaction at a few in-person merchants during a 1-3 day
  window is fraud (a skimmer); amounts are normal, so only merchant-level aggregates or
  feedback reveal it.
* ``velocity_burst``: 8-20 transactions within 15-55 minutes on one of the user's own
  (already used) devices at assorted merchants, 0.5-2x the usual amount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from riskstream.simulate.events import (
    DAY,
    HOUR,
    Events,
    finish_amounts,
    typical_amount,
)
from riskstream.simulate.population import (
    CAT,
    Population,
    haversine_km,
    opaque_ids,
    pick_union,
)

__all__ = ["ALL_SCENARIOS", "SCENARIO_FUNCTIONS", "Context", "Injection", "scenario_code"]

ALL_SCENARIOS: tuple[str, ...] = (
    "account_takeover",
    "card_testing",
    "impossible_travel",
    "spending_spike",
    "compromised_merchant",
    "velocity_burst",
)
MINUTE = 60.0
#: Victims need this many legitimate transactions so "their usual" means something.
MIN_HISTORY = 3
#: "Far" for account takeover / impossible travel, in km. 1500 km in at most 1 h is > 1000 km/h.
ATO_MIN_KM = 1000.0
TRAVEL_MIN_KM = 1500.0
#: Impossible travel is capped so the implied speed is above this even for short hops.
TRAVEL_MIN_KMH = 1100.0


def scenario_code(name: str) -> int:
    """The int8 code stored in :attr:`Events.scenario` (0 is legitimate).

    >>> scenario_code("card_testing")
    2
    """
    return ALL_SCENARIOS.index(name) + 1


@dataclass(eq=False)
class Injection:
    """Rows a scenario adds and legitimate rows (indices into ``ctx.legit``) it relabels."""

    events: Events
    relabel: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(eq=False)
class Context:
    """What scenarios need about one window: the world, the legit traffic, a generator."""

    pop: Population
    rng: np.random.Generator
    span: float
    legit: Events
    n_devices: int  # population devices; new devices get indices from here on
    new_device_ids: list[np.ndarray] = field(default_factory=list)
    median: np.ndarray = field(init=False)
    _order: np.ndarray = field(init=False)
    _used: np.ndarray = field(init=False)
    _too_new: np.ndarray = field(init=False)
    _rows_start: np.ndarray = field(init=False)
    _rows_count: np.ndarray = field(init=False)
    _rows: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n_users = len(self.pop.users)
        user = self.legit.user
        counts = np.bincount(user, minlength=n_users)
        # Per-user median of legitimate amounts: sort by (user, amount), take the middle.
        order = np.lexsort((self.legit.amount, user))
        start = np.concatenate(([0], np.cumsum(counts)[:-1]))
        sorted_amount = self.legit.amount[order]
        lo = start + np.maximum(counts - 1, 0) // 2
        hi = start + counts // 2
        safe = counts > 0
        med = np.full(n_users, np.nan)
        med[safe] = 0.5 * (sorted_amount[lo[safe]] + sorted_amount[hi[safe]])
        self.median = med
        self._rows, self._rows_start, self._rows_count = order, start, counts
        self._order = self.rng.permutation(n_users)
        self._too_new = counts < MIN_HISTORY  # too little history to be a victim
        self._used = np.zeros(n_users, dtype=bool)

    def victims(self, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Up to ``n`` victims among ``allowed`` users (default: all), in a random order.

        Users not yet picked by any scenario come first; once those run out, already-picked
        users are reused (tiny populations only). Users with fewer than ``MIN_HISTORY``
        legitimate transactions are never picked.
        """
        ok = ~self._too_new if allowed is None else allowed & ~self._too_new
        ok_ordered = self._order[ok[self._order]]
        fresh = ok_ordered[~self._used[ok_ordered]]
        if n <= len(fresh) or len(ok_ordered) == 0:
            out = fresh[:n]
        else:
            out = np.concatenate([fresh, ok_ordered[np.arange(n - len(fresh)) % len(ok_ordered)]])
        self._used[out] = True
        return out.astype(np.int64)

    def user_rows(self, user: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A uniformly chosen legitimate row (index into ``legit``) of each user."""
        return self._rows[self._rows_start[user] + (u * self._rows_count[user]).astype(np.int64)]

    def new_devices(self, n: int) -> np.ndarray:
        """Indices of ``n`` brand-new devices (opaque ids, never used by anyone before)."""
        first = self.n_devices + sum(len(a) for a in self.new_device_ids)
        self.new_device_ids.append(opaque_ids(self.rng, n, "d-"))
        return np.arange(first, first + n, dtype=np.int64)

    def place(self, duration: np.ndarray) -> np.ndarray:
        """Incident start times so that ``[start, start + duration]`` fits in the window."""
        lo = 0.05 * self.span
        hi = np.maximum(lo, self.span - duration - 1.0)
        return lo + self.rng.random(len(duration)) * (hi - lo)


def _incidents(target_rows: float, rows_per_incident: float) -> int:
    if target_rows <= 0:
        return 0
    return max(1, round(target_rows / rows_per_incident))


def _bursts(
    ctx: Context, target_rows: float, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Victims of incidents of ``lo``..``hi`` rows each (uniform, ``target_rows`` in all) and
    their rows' layout: (victims, group of each row, position in it, group starts)."""
    victims = ctx.victims(_incidents(target_rows, (lo + hi) / 2))
    return (victims, *_group_layout(ctx.rng.integers(lo, hi + 1, len(victims))))


def _group_layout(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For groups of sizes ``k``: group of each row, position within the group, group starts."""
    starts = np.concatenate(([0], np.cumsum(k)[:-1])).astype(np.int64)
    group = np.repeat(np.arange(len(k), dtype=np.int64), k)
    pos = np.arange(int(k.sum()), dtype=np.int64) - starts[group]
    return group, pos, starts


def _cumulative_offsets(gaps: np.ndarray, group: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Within-group running sums of ``gaps``; the first row of each group is at 0."""
    gaps = gaps.copy()
    gaps[starts] = 0.0
    cs = np.cumsum(gaps)
    return cs - cs[starts][group]


def _far_city(
    ctx: Context,
    lat: np.ndarray,
    lon: np.ndarray,
    min_km: float,
    not_country: np.ndarray | None = None,
) -> np.ndarray:
    """A random city with merchants at least ``min_km`` from each point (and optionally in a
    different country); the farthest city with merchants when none qualifies."""
    pop = ctx.pop
    dist = haversine_km(lat[:, None], lon[:, None], pop.city_lat[None, :], pop.city_lon[None, :])
    ok = pop.city_has_merchants[None, :] & (dist >= min_km)
    if not_country is not None:
        ok &= pop.city_country[: pop.n_cities][None, :] != not_country[:, None]
    score = np.where(ok, ctx.rng.random(dist.shape), -1.0)
    best = np.argmax(score, axis=1)
    farthest = np.argmax(np.where(pop.city_has_merchants[None, :], dist, -1.0), axis=1)
    return np.where(ok.any(axis=1), best, farthest)


def _events(
    ctx: Context,
    name: str,
    t: np.ndarray,
    user: np.ndarray,
    merchant: np.ndarray,
    amount: np.ndarray,
    device: np.ndarray,
) -> Events:
    return Events(
        t=np.clip(t, 0.0, ctx.span - 1e-3),
        user=user.astype(np.int64),
        merchant=merchant.astype(np.int64),
        amount=finish_amounts(ctx.pop, merchant, amount),
        device=device.astype(np.int64),
        scenario=np.full(len(t), scenario_code(name), dtype=np.int8),
    )


def account_takeover(ctx: Context, target_rows: float) -> Injection:
    """A fraudster logs in from a new device abroad and spends big within a few hours."""
    rng, pop = ctx.rng, ctx.pop
    victims, group, pos, starts = _bursts(ctx, target_rows, 2, 5)
    n = len(victims)
    u = pop.users
    city = _far_city(
        ctx, u.home_lat[victims], u.home_lon[victims], ATO_MIN_KM,
        pop.city_country[u.home_city[victims]],
    )
    # Gaps between purchases: exponential, mean 25 min, so an incident lasts ~1-3 h.
    offsets = _cumulative_offsets(rng.exponential(25 * MINUTE, len(group)), group, starts)
    duration = np.zeros(n)
    np.maximum.at(duration, group, offsets)
    t = ctx.place(duration)[group] + offsets
    user = victims[group]
    # In person in the far city; after the first purchase, 30% cash out online/by transfer.
    merchant = pop.by_city.pick(city[group], rng.random(len(group)))
    online = (pos > 0) & (rng.random(len(group)) < 0.3)
    merchant[online] = pop.online.pick(
        np.zeros(int(online.sum()), dtype=np.int64), rng.random(int(online.sum()))
    )
    amount = ctx.median[user] * rng.uniform(3.0, 10.0, len(group))
    device = ctx.new_devices(n)[group]
    return Injection(_events(ctx, "account_takeover", t, user, merchant, amount, device))


def card_testing(ctx: Context, target_rows: float) -> Injection:
    """Tiny probes at web shops from a bot's device, then one large purchase."""
    rng, pop = ctx.rng, ctx.pop
    victims = ctx.victims(_incidents(target_rows, 6.5))  # 3-8 probes + 1 large, mean 6.5
    n = len(victims)
    n_probe = rng.integers(3, 9, n)
    k = n_probe + 1
    group, pos, starts = _group_layout(k)
    is_large = pos == n_probe[group]
    # Probes 5-90 s apart (scripted); the cash-out follows 30 s - 5 min after the last probe.
    gaps = np.where(
        is_large, rng.uniform(30.0, 300.0, len(group)), rng.uniform(5.0, 90.0, len(group))
    )
    offsets = _cumulative_offsets(gaps, group, starts)
    duration = offsets[starts + k - 1]
    t = ctx.place(duration)[group] + offsets
    user = victims[group]
    shop_key = np.full(len(group), CAT["online_retail"], dtype=np.int64)
    merchant = pop.online_by_category.pick(shop_key, rng.random(len(group)))
    large = np.maximum(100.0, ctx.median[user] * rng.uniform(5.0, 15.0, len(group)))
    amount = np.where(is_large, large, rng.uniform(0.5, 2.0, len(group)))
    device = ctx.new_devices(n)[group]
    return Injection(_events(ctx, "card_testing", t, user, merchant, amount, device))


def impossible_travel(ctx: Context, target_rows: float) -> Injection:
    """A cloned card used far away minutes after the real card was used at home."""
    rng, pop = ctx.rng, ctx.pop
    legit, m = ctx.legit, pop.merchants
    n = _incidents(target_rows, 1.0)
    # Anchors: in-person purchases in the user's home city, early enough to add up to 1 h.
    at_home = m.city[legit.merchant] == pop.users.home_city[legit.user]
    candidate = at_home & (legit.t < ctx.span - 2 * HOUR)
    has_anchor = np.bincount(legit.user[candidate], minlength=len(pop.users)) > 0
    victims = ctx.victims(n, allowed=has_anchor)
    if len(victims) == 0:
        return Injection(Events.empty())
    # One random anchor row per victim: a random candidate row of that user.
    cand = np.flatnonzero(candidate)
    cand = cand[np.argsort(legit.user[cand], kind="stable")]
    first = np.searchsorted(legit.user[cand], victims, side="left")
    count = np.searchsorted(legit.user[cand], victims, side="right") - first
    anchor = cand[first + (rng.random(len(victims)) * count).astype(np.int64)]
    a_lat, a_lon = m.lat[legit.merchant[anchor]], m.lon[legit.merchant[anchor]]
    city = _far_city(ctx, a_lat, a_lon, TRAVEL_MIN_KM)
    merchant = pop.by_city.pick(city, rng.random(len(victims)))
    dist = haversine_km(a_lat, a_lon, m.lat[merchant], m.lon[merchant])
    dt = rng.uniform(5 * MINUTE, 60 * MINUTE, len(victims))
    dt = np.minimum(dt, dist / TRAVEL_MIN_KMH * HOUR)  # short hops (tiny worlds) stay "impossible"
    t = legit.t[anchor] + np.maximum(dt, 1.0)
    amount = typical_amount(pop, victims, merchant, rng)
    device = legit.device[anchor]
    return Injection(_events(ctx, "impossible_travel", t, victims, merchant, amount, device))


def spending_spike(ctx: Context, target_rows: float) -> Injection:
    """One purchase 5-20x the user's median, at a merchant and device they already use."""
    rng = ctx.rng
    victims = ctx.victims(_incidents(target_rows, 1.0))
    template = ctx.user_rows(victims, rng.random(len(victims)))
    t = ctx.place(np.zeros(len(victims)))
    amount = ctx.median[victims] * rng.uniform(5.0, 20.0, len(victims))
    return Injection(
        _events(
            ctx, "spending_spike", t, victims, ctx.legit.merchant[template], amount,
            ctx.legit.device[template],
        )
    )


def compromised_merchant(ctx: Context, target_rows: float) -> Injection:
    """Relabel every legitimate transaction at a few in-person merchants for 1-3 days."""
    rng, legit = ctx.rng, ctx.legit
    if target_rows <= 0 or len(legit) == 0:
        return Injection(Events.empty())
    located = ctx.pop.merchants.located[legit.merchant]
    rows = np.flatnonzero(located)
    rows = rows[np.lexsort((legit.t[rows], legit.merchant[rows]))]
    merch, times = legit.merchant[rows], legit.t[rows]
    chosen: list[np.ndarray] = []
    total = 0
    for j in rng.permutation(np.unique(merch)):
        lo, hi = np.searchsorted(merch, [j, j + 1])
        # A window of 1-3 days (at most the whole window) around a random purchase there.
        length = min(rng.uniform(1.0, 3.0) * DAY, ctx.span)
        w0 = times[lo + int(rng.random() * (hi - lo))] - rng.random() * length
        a = lo + int(np.searchsorted(times[lo:hi], w0, side="left"))
        b = lo + int(np.searchsorted(times[lo:hi], w0 + length, side="right"))
        count = b - a
        # Stop before a merchant would overshoot the target by more than it fills it.
        if chosen and total + count - target_rows > target_rows - total:
            break
        chosen.append(rows[a:b])
        total += count
        if total >= target_rows:
            break
    relabel = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return Injection(Events.empty(), relabel.astype(np.int64))


def velocity_burst(ctx: Context, target_rows: float) -> Injection:
    """8-20 purchases within an hour from the user's own device at assorted merchants."""
    rng, pop = ctx.rng, ctx.pop
    victims, group, _, _ = _bursts(ctx, target_rows, 8, 20)
    n = len(victims)
    length = rng.uniform(15 * MINUTE, 55 * MINUTE, n)
    # Uniform times within the burst, sorted per incident (the group key dominates the sort).
    offsets = rng.random(len(group)) * length[group]
    offsets = offsets[np.lexsort((offsets, group))]
    t = ctx.place(length)[group] + offsets
    user = victims[group]
    merchant = _anywhere_usual(ctx, user)
    amount = typical_amount(pop, user, merchant, rng) * rng.uniform(0.5, 2.0, len(group))
    # The device of one of the user's own recent purchases: a device they really use.
    device = ctx.legit.device[ctx.user_rows(victims, rng.random(n))][group]
    return Injection(_events(ctx, "velocity_burst", t, user, merchant, amount, device))


def _anywhere_usual(ctx: Context, user: np.ndarray) -> np.ndarray:
    """Any merchant in the user's home city or online."""
    pop = ctx.pop
    return pick_union(
        pop.by_city,
        pop.users.home_city[user],
        pop.online,
        np.zeros(len(user), dtype=np.int64),
        ctx.rng.random(len(user)),
    )


ScenarioFunction = Callable[[Context, float], Injection]
SCENARIO_FUNCTIONS: dict[str, ScenarioFunction] = {
    "account_takeover": account_takeover,
    "card_testing": card_testing,
    "impossible_travel": impossible_travel,
    "spending_spike": spending_spike,
    "compromised_merchant": compromised_merchant,
    "velocity_burst": velocity_burst,
}
