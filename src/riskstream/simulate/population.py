"""The synthetic world: cities, merchants and users with stable spending habits.

Contract
--------
* :func:`build_population` is a pure function of its arguments and the generator it is given:
  the same seed gives the same users, merchants and devices.
* Everything is stored as flat numpy arrays (one row per user / merchant / device) so the
  event generator can draw millions of transactions with vectorised indexing only.
* Merchants either have a location (a city, jittered coordinates, channel ``pos``/``atm``) or
  none (online merchants: ``city == -1``, NaN coordinates, channel ``ecom``/``transfer``).
* A user's usual categories are drawn only among categories that are actually served in their
  home city (or online), so every "usual" purchase has at least one merchant to go to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskstream.schema import CHANNELS

__all__ = [
    "CATEGORIES",
    "CITIES",
    "COUNTRY_CURRENCY",
    "City",
    "Merchants",
    "Pool",
    "Population",
    "Users",
    "build_population",
    "haversine_km",
]


@dataclass(frozen=True, slots=True)
class City:
    """A city users live in and merchants trade in. ``population`` is in millions."""

    name: str
    country: str
    lat: float
    lon: float
    utc_offset: float  # standard-time offset in hours; DST is ignored (a few % of hours)
    population: float


# ~35 real cities with real coordinates. Most users live in the US; the other countries give
# account takeovers, impossible travel and legitimate trips somewhere far to go to.
CITIES: tuple[City, ...] = (
    City("New York", "US", 40.7128, -74.0060, -5, 8.3),
    City("Los Angeles", "US", 34.0522, -118.2437, -8, 3.9),
    City("Chicago", "US", 41.8781, -87.6298, -6, 2.7),
    City("Houston", "US", 29.7604, -95.3698, -6, 2.3),
    City("Phoenix", "US", 33.4484, -112.0740, -7, 1.6),
    City("Philadelphia", "US", 39.9526, -75.1652, -5, 1.6),
    City("San Antonio", "US", 29.4241, -98.4936, -6, 1.5),
    City("San Diego", "US", 32.7157, -117.1611, -8, 1.4),
    City("Dallas", "US", 32.7767, -96.7970, -6, 1.3),
    City("San Francisco", "US", 37.7749, -122.4194, -8, 0.9),
    City("Seattle", "US", 47.6062, -122.3321, -8, 0.75),
    City("Denver", "US", 39.7392, -104.9903, -7, 0.7),
    City("Boston", "US", 42.3601, -71.0589, -5, 0.65),
    City("Las Vegas", "US", 36.1699, -115.1398, -8, 0.65),
    City("Detroit", "US", 42.3314, -83.0458, -5, 0.63),
    City("Atlanta", "US", 33.7490, -84.3880, -5, 0.5),
    City("Miami", "US", 25.7617, -80.1918, -5, 0.45),
    City("Minneapolis", "US", 44.9778, -93.2650, -6, 0.43),
    City("Toronto", "CA", 43.6532, -79.3832, -5, 2.8),
    City("Montreal", "CA", 45.5019, -73.5674, -5, 1.8),
    City("Vancouver", "CA", 49.2827, -123.1207, -8, 0.7),
    City("London", "GB", 51.5074, -0.1278, 0, 9.0),
    City("Manchester", "GB", 53.4808, -2.2426, 0, 0.55),
    City("Edinburgh", "GB", 55.9533, -3.1883, 0, 0.5),
    City("Dublin", "IE", 53.3498, -6.2603, 0, 0.55),
    City("Paris", "FR", 48.8566, 2.3522, 1, 2.1),
    City("Lyon", "FR", 45.7640, 4.8357, 1, 0.5),
    City("Berlin", "DE", 52.5200, 13.4050, 1, 3.6),
    City("Munich", "DE", 48.1351, 11.5820, 1, 1.5),
    City("Madrid", "ES", 40.4168, -3.7038, 1, 3.3),
    City("Barcelona", "ES", 41.3874, 2.1686, 1, 1.6),
    City("Rome", "IT", 41.9028, 12.4964, 1, 2.8),
    City("Milan", "IT", 45.4642, 9.1900, 1, 1.4),
    City("Amsterdam", "NL", 52.3676, 4.9041, 1, 0.9),
)

COUNTRY_CURRENCY: dict[str, str] = {
    "US": "USD",
    "CA": "CAD",
    "GB": "GBP",
    "IE": "EUR",
    "FR": "EUR",
    "DE": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "NL": "EUR",
}

# Relative weight of a city's population among *our users*: the simulated issuer is a US bank,
# so foreign residents are rare (~7% of users with the table above).
_HOME_SHARE = {"US": 1.0}
_FOREIGN_HOME_SHARE = 0.08

CATEGORIES: tuple[str, ...] = (
    "grocery",
    "fuel",
    "restaurant",
    "online_retail",
    "travel",
    "electronics",
    "pharmacy",
    "entertainment",
    "utilities",
    "cash_withdrawal",
    "money_transfer",
)
CAT = {name: i for i, name in enumerate(CATEGORIES)}
CHANNEL = {name: i for i, name in enumerate(CHANNELS)}

#: Typical ticket of a category relative to the user's own median (groceries = 1).
AMOUNT_MULTIPLIER = np.array(
    [1.0, 1.1, 0.8, 1.2, 3.0, 2.5, 0.7, 0.9, 2.0, 2.0, 1.5], dtype=float
)
# Category mix of merchants with a shop front (ATMs are "merchants" of cash_withdrawal).
_LOCATED_CATEGORY_WEIGHTS = {
    "grocery": 0.20,
    "fuel": 0.12,
    "restaurant": 0.25,
    "travel": 0.05,
    "electronics": 0.06,
    "pharmacy": 0.08,
    "entertainment": 0.10,
    "cash_withdrawal": 0.14,
}
# Category mix of location-less merchants (web shops, billers, streaming, transfer rails).
_ONLINE_CATEGORY_WEIGHTS = {
    "online_retail": 0.55,
    "utilities": 0.15,
    "money_transfer": 0.10,
    "entertainment": 0.10,
    "travel": 0.10,
}
#: Share of merchants that are online (no location). The first one is always online_retail
#: so card testing always has a web shop to hit.
ONLINE_MERCHANT_SHARE = 0.15
# How popular a category is as one of a user's habits (top-k sampled without replacement).
_USER_CATEGORY_WEIGHTS = np.array(
    [1.0, 0.6, 0.9, 0.9, 0.25, 0.25, 0.4, 0.5, 0.15, 0.6, 0.1], dtype=float
)
MIN_USER_CATEGORIES, MAX_USER_CATEGORIES = 2, 5
# Merchants sit within a few km of the city centre (1 degree of latitude ≈ 111 km).
_MERCHANT_JITTER_DEG = 0.04
_HOME_JITTER_DEG = 0.06


def haversine_km(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in km (broadcasting; NaN in → NaN out).

    >>> round(float(haversine_km(40.7128, -74.0060, 51.5074, -0.1278)))
    5570
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass(frozen=True, eq=False)
class Pool:
    """Merchants grouped by an integer key (CSR layout) for vectorised uniform picks.

    ``members[start[k] : start[k] + count[k]]`` are the merchants with key ``k``.
    """

    members: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def build(cls, keys: np.ndarray, n_keys: int, include: np.ndarray) -> Pool:
        """Group the merchants where ``include`` is true by ``keys`` (values in ``[0, n_keys)``)."""
        idx = np.flatnonzero(include)
        order = idx[np.argsort(keys[idx], kind="stable")]
        count = np.bincount(keys[idx], minlength=n_keys).astype(np.int64)
        start = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
        return cls(order, start, count)

    def pick(self, key: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One member per key, uniformly (``u`` uniform in [0, 1)); every key must be non-empty."""
        return self.members[self.start[key] + (u * self.count[key]).astype(np.int64)]


def pick_union(
    a: Pool, key_a: np.ndarray, b: Pool, key_b: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """A uniform pick from the union of ``a[key_a]`` and ``b[key_b]`` (at least one non-empty)."""
    na, nb = a.count[key_a], b.count[key_b]
    j = (u * (na + nb)).astype(np.int64)
    in_a = j < na
    out = np.empty(len(j), dtype=np.int64)
    out[in_a] = a.members[a.start[key_a[in_a]] + j[in_a]]
    rest = ~in_a
    out[rest] = b.members[b.start[key_b[rest]] + (j[rest] - na[rest])]
    return out


@dataclass(frozen=True, eq=False)
class Merchants:
    """Merchant table. ``city`` is -1 for online merchants (and ``lat``/``lon`` NaN)."""

    ids: np.ndarray  # object array of "m-0001" style ids
    city: np.ndarray
    category: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    channel: np.ndarray  # index into riskstream.schema.CHANNELS

    @property
    def located(self) -> np.ndarray:
        return self.city >= 0


@dataclass(frozen=True, eq=False)
class Users:
    """User table: home, habits and devices (``device_start + j``, ``j < n_devices``)."""

    ids: np.ndarray
    home_city: np.ndarray
    home_lat: np.ndarray
    home_lon: np.ndarray
    median_amount: np.ndarray  # typical ticket at a grocery (AMOUNT_MULTIPLIER == 1)
    spread: np.ndarray  # sigma of log(amount) around the category-adjusted median
    rate_per_day: np.ndarray
    peak_hour: np.ndarray  # local hour around which the user's purchases cluster
    categories: np.ndarray  # (n_users, MAX_USER_CATEGORIES), most-used first, -1 padded
    n_categories: np.ndarray
    device_start: np.ndarray
    n_devices: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class Population:
    """Users, merchants, devices and city tables, plus merchant pools for fast picking."""

    users: Users
    merchants: Merchants
    device_ids: np.ndarray  # object array, one opaque id per population device
    city_lat: np.ndarray
    city_lon: np.ndarray
    city_names: np.ndarray  # object array; index n_cities (== -1 after wrap) is ""
    city_country: np.ndarray  # object array; same "" sentinel at the end
    city_currency: np.ndarray  # object array of ISO 4217 codes
    city_utc_offset: np.ndarray
    city_has_merchants: np.ndarray
    by_city_category: Pool  # located merchants, key city * n_categories + category
    by_city: Pool  # located merchants, key city
    online_by_category: Pool  # online merchants, key category
    online: Pool  # online merchants, single key 0

    @property
    def n_cities(self) -> int:
        return len(self.city_lat)


def opaque_ids(rng: np.random.Generator, n: int, prefix: str) -> np.ndarray:
    """``n`` random 63-bit hex ids (a collision is ~1e-7 likely even among 10^6 ids)."""
    raw = rng.integers(0, np.iinfo(np.int64).max, size=n, dtype=np.int64)
    return np.array([f"{prefix}{v:016x}" for v in raw.tolist()], dtype=object)


def _ids(prefix: str, n: int, min_width: int) -> np.ndarray:
    width = max(min_width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _weights(table: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    cats = np.array([CAT[c] for c in table], dtype=np.int64)
    w = np.array(list(table.values()), dtype=float)
    return cats, w / w.sum()


def _build_merchants(rng: np.random.Generator, n_merchants: int) -> Merchants:
    n_cities = len(CITIES)
    n_online = max(1, round(ONLINE_MERCHANT_SHARE * n_merchants))
    n_located = n_merchants - n_online
    pop = np.array([c.population for c in CITIES])
    home = np.array([_HOME_SHARE.get(c.country, _FOREIGN_HOME_SHARE) for c in CITIES]) * pop
    # Merchants follow our users (where the issuer's cards are used) with a floor for
    # big foreign cities, so travellers and fraudsters find shops there too.
    w_city = 0.7 * home / home.sum() + 0.3 * pop / pop.sum()
    if n_located >= n_cities:
        # One merchant per city first, so every city is reachable, then the rest by weight.
        rest = rng.choice(n_cities, size=n_located - n_cities, p=w_city)
        city = np.concatenate([np.arange(n_cities), rest])
    else:
        city = rng.choice(n_cities, size=n_located, p=w_city)
    lc, lw = _weights(_LOCATED_CATEGORY_WEIGHTS)
    oc, ow = _weights(_ONLINE_CATEGORY_WEIGHTS)
    cat_located = lc[rng.choice(len(lc), size=n_located, p=lw)]
    cat_online = oc[rng.choice(len(oc), size=n_online, p=ow)]
    cat_online[0] = CAT["online_retail"]
    clat = np.array([c.lat for c in CITIES])
    clon = np.array([c.lon for c in CITIES])
    lat = clat[city] + rng.normal(0.0, _MERCHANT_JITTER_DEG, n_located)
    lon = clon[city] + rng.normal(0.0, _MERCHANT_JITTER_DEG, n_located)
    chan_located = np.where(
        cat_located == CAT["cash_withdrawal"], CHANNEL["atm"], CHANNEL["pos"]
    )
    # Bill payment and money transfers run on transfer rails; everything else online is ecom.
    chan_online = np.where(
        np.isin(cat_online, [CAT["utilities"], CAT["money_transfer"]]),
        CHANNEL["transfer"],
        CHANNEL["ecom"],
    )
    # Shuffle so merchant ids carry no information about location or category.
    perm = rng.permutation(n_merchants)
    nan = np.full(n_online, np.nan)
    return Merchants(
        ids=_ids("m-", n_merchants, 4),
        city=np.concatenate([city, np.full(n_online, -1)]).astype(np.int64)[perm],
        category=np.concatenate([cat_located, cat_online]).astype(np.int64)[perm],
        lat=np.round(np.concatenate([lat, nan]), 6)[perm],
        lon=np.round(np.concatenate([lon, nan]), 6)[perm],
        channel=np.concatenate([chan_located, chan_online]).astype(np.int8)[perm],
    )


def build_population(n_users: int, n_merchants: int, rng: np.random.Generator) -> Population:
    """Draw the world: ``n_merchants`` merchants (>= 2) and ``n_users`` users (>= 1).

    >>> pop = build_population(100, 50, np.random.default_rng(0))
    >>> len(pop.users), len(pop.merchants.ids), pop.merchants.ids[0]
    (100, 50, 'm-0001')
    """
    if n_users < 1 or n_merchants < 2:
        raise ValueError("need at least 1 user and 2 merchants")
    n_cities, n_cat = len(CITIES), len(CATEGORIES)
    m = _build_merchants(rng, n_merchants)
    located = m.located
    by_city_category = Pool.build(
        np.where(located, m.city * n_cat + m.category, 0), n_cities * n_cat, located
    )
    by_city = Pool.build(np.where(located, m.city, 0), n_cities, located)
    online_by_category = Pool.build(m.category, n_cat, ~located)
    online = Pool.build(np.zeros(n_merchants, dtype=np.int64), 1, ~located)
    has_merchants = by_city.count > 0

    # Home city: weighted by our-user share, only where someone sells something.
    pop = np.array([c.population for c in CITIES])
    w_home = np.array([_HOME_SHARE.get(c.country, _FOREIGN_HOME_SHARE) for c in CITIES]) * pop
    w_home = np.where(has_merchants, w_home, 0.0)
    home = rng.choice(n_cities, size=n_users, p=w_home / w_home.sum())
    clat = np.array([c.lat for c in CITIES])
    clon = np.array([c.lon for c in CITIES])

    # Usual categories: Gumbel top-k over the categories available at home or online.
    available = (by_city_category.count.reshape(n_cities, n_cat) > 0)[home]
    available |= online_by_category.count[None, :] > 0
    keys = np.log(_USER_CATEGORY_WEIGHTS)[None, :] + rng.gumbel(size=(n_users, n_cat))
    keys = np.where(available, keys, -np.inf)
    ranked = np.argsort(-keys, axis=1, kind="stable")[:, :MAX_USER_CATEGORIES]
    k = rng.integers(MIN_USER_CATEGORIES, MAX_USER_CATEGORIES + 1, size=n_users)
    k = np.minimum(k, available.sum(axis=1))
    cats = np.where(np.arange(MAX_USER_CATEGORIES)[None, :] < k[:, None], ranked, -1)

    # 1-3 devices (60/30/10%): phones, laptops, tablets.
    n_dev = rng.choice([1, 2, 3], size=n_users, p=[0.6, 0.3, 0.1])
    dev_start = np.concatenate(([0], np.cumsum(n_dev)[:-1]))
    users = Users(
        ids=_ids("u-", n_users, 6),
        home_city=home.astype(np.int64),
        home_lat=clat[home] + rng.normal(0.0, _HOME_JITTER_DEG, n_users),
        home_lon=clon[home] + rng.normal(0.0, _HOME_JITTER_DEG, n_users),
        # Median ticket ~35 with a 0.5 log-sd across users: 10% of users below ~18, 10% above ~66.
        median_amount=np.exp(rng.normal(np.log(35.0), 0.5, n_users)),
        spread=rng.uniform(0.35, 0.8, n_users),
        # Log-uniform 0.5-5 transactions a day (mean ~2).
        rate_per_day=np.exp(rng.uniform(np.log(0.5), np.log(5.0), n_users)),
        # Peak activity early afternoon, sd 3 h, kept within waking hours.
        peak_hour=np.clip(rng.normal(14.0, 3.0, n_users), 7.0, 22.0),
        categories=cats.astype(np.int64),
        n_categories=k.astype(np.int64),
        device_start=dev_start.astype(np.int64),
        n_devices=n_dev.astype(np.int64),
    )
    names = np.array([c.name for c in CITIES] + [""], dtype=object)
    countries = np.array([c.country for c in CITIES] + [""], dtype=object)
    return Population(
        users=users,
        merchants=m,
        device_ids=opaque_ids(rng, int(n_dev.sum()), "d-"),
        city_lat=clat,
        city_lon=clon,
        city_names=names,
        city_country=countries,
        city_currency=np.array([COUNTRY_CURRENCY[c.country] for c in CITIES], dtype=object),
        city_utc_offset=np.array([c.utc_offset for c in CITIES], dtype=float),
        city_has_merchants=has_merchants,
        by_city_category=by_city_category,
        by_city=by_city,
        online_by_category=online_by_category,
        online=online,
    )
