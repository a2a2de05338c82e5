"""Redis state store: per-user and per-merchant records shared by workers and the API.

Satisfies the :class:`~riskstream.features.state.StateStore` contract, plus:

* **Bulk I/O.** ``load`` is one ``MGET`` per namespace and batch; ``save``/``save_many`` is one
  Lua script call per batch (``EVALSHA``) — never a round trip per event or per key.
* **Atomic per batch.** The script applies a batch's user *and* merchant rows together: Redis
  runs a script to completion with no other command in between, so a crash or a lost
  connection leaves either the whole batch's state or none of it.
* **Replay guard.** Every record carries the position of the last event applied to it (users:
  ``(U_LAST_TS, U_LAST_TB)``; merchants: ``(M_LAST_TS, M_N)``, which only grows). The script
  writes a row only if its position is not older than the stored one, so a stale writer (a
  batch retried after a newer one was saved, a worker that lost its partition) cannot rewind
  a profile; re-saving the same batch is harmless. Together with the kernel's own guard this
  means a replayed batch counts nothing twice.
* **Expiry.** With ``ttl_s > 0`` every record written (or re-confirmed) gets that TTL, so users
  inactive for ``ttl_s`` seconds disappear and their memory is returned.
* **Bounded memory.** A record is ``width`` float64 values packed little-endian
  (``rows.tobytes()``): ``8 * USER_WIDTH`` bytes per user (856 at 107 slots) and 56 per
  merchant, whatever the history length. With the key, Redis overheads and the expiry index
  entry a user costs about ``8 * USER_WIDTH + 340`` bytes (~1.2 KB; measured in
  ``docs/stores.md``).

Key layout (``prefix`` defaults to ``rs:``)::

    {prefix}user:{user_id}       STRING  packed float64 record, TTL = ttl_s
    {prefix}merchant:{id}        STRING  packed float64 record, TTL = ttl_s
    {prefix}idx:user             ZSET    member user_id, score = expiry time (ms); ``count``
    {prefix}idx:merchant         ZSET    same for merchants
    {prefix}meta                 STRING  record layout (JSON); a mismatch refuses to start

The expiry index is what makes ``count`` exact and O(log n) without scanning the keyspace;
expired members are pruned by each save. All keys of one store share the prefix, so
:meth:`clear` (and test clean-up) deletes by prefix. Not Redis-Cluster aware: the script
touches many keys, so one store needs one Redis (or one hash slot).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

import riskstream.features.spec as S
from riskstream.errors import StateUnavailable, translated
from riskstream.features.state import DEFAULT_WIDTHS, StateStore, _check_shape

log = logging.getLogger("riskstream.redis_state")

#: Redis errors that mean "not now" (the pipeline retries them as a state outage): lost or
#: refused connections and timeouts (``BusyLoadingError`` is one), a replica that is read-only
#: or has lost its master during a failover, and a server out of memory. A ``ResponseError``
#: of any other kind is a bug (a wrong command or argument) and is not retried.
OUTAGES: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.OutOfMemoryError,
)


def _unavailable() -> Any:
    return translated(StateUnavailable, OUTAGES)

#: Replay-guard slots per namespace: (primary, secondary) compared lexicographically. A user's
#: (last timestamp, tiebreak) strictly grows with each applied event; a merchant's tiebreak may
#: go down (events of different users share a timestamp), its event count never does.
DEFAULT_GUARDS: dict[str, tuple[int, int]] = {
    "user": (S.U_LAST_TS, S.U_LAST_TB),
    "merchant": (S.M_LAST_TS, S.M_N),
    # Label records count their changes in one slot that only grows.
    "user_label": (S.L_VER, S.L_VER),
    "merchant_label": (S.L_VER, S.L_VER),
}

#: Default time to live of a record: 90 days without activity. Long enough for monthly
#: payers to keep their profile, short enough that churned cards do not pile up.
DEFAULT_TTL_S = 90 * 86400

#: Socket timeouts (seconds): a dead or blackholed Redis must surface as an error the
#: pipeline's retry policy sees within a few seconds, not as a hang.
CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 10.0

# Save script. KEYS: the expiry index of each namespace. ARGV: ttl_ms, number of namespaces,
# then per namespace (n, guard slot a, guard slot b, record size, records packed as ONE
# string, key prefix, ids concatenated as ONE string, id byte lengths as ONE string of
# little-endian uint32). Three strings per namespace instead of one argument per key: the
# client encodes and the server parses 3 arguments, not ~5,000 (measured: argument encoding
# was most of redis-py's ~12 ms of CPU per 5,000-user save). Not declaring the record keys in
# KEYS is what Redis Cluster would object to; this store needs one Redis primary anyway.
# Each record is written with ``SET .. GET`` (Redis >= 6.2), which returns the record it
# replaced: one call per key instead of GET then SET (-20 % of the script's server time). A
# stale row -- older than what was stored, rare: a retried or late writer -- is undone by
# writing the stored record back; the script is atomic, so nobody sees the interval.
# ZADD arguments per call: Lua's ``unpack`` is limited by the C stack (LUAI_MAXCSTACK = 8000
# slots), so they go 1000 members at a time.
_SAVE_LUA = """
local call = redis.call
local sub = string.sub
local unpack_s = struct.unpack
local ttl_arg = ARGV[1]
local ttl = tonumber(ttl_arg)
local ngroups = tonumber(ARGV[2])
local t = call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = '+inf'
if ttl > 0 then deadline = string.format('%d', now_ms + ttl) end
local stale = 0
for g = 0, ngroups - 1 do
  local base = 3 + 8 * g
  local n = tonumber(ARGV[base])
  local ga = tonumber(ARGV[base + 1]) * 8 + 1
  local gb = tonumber(ARGV[base + 2]) * 8 + 1
  local size = tonumber(ARGV[base + 3])
  local blob = ARGV[base + 4]
  local prefix = ARGV[base + 5]
  local ids = ARGV[base + 6]
  local lens = ARGV[base + 7]
  local index = KEYS[g + 1]
  local z = {}
  local nz = 0
  local stop = 0
  local at = 1
  for i = 1, n do
    local len = unpack_s('<I4', lens, 4 * i - 3)
    local id = sub(ids, at, at + len - 1)
    at = at + len
    local key = prefix .. id
    local start = stop + 1
    stop = stop + size
    local val = sub(blob, start, stop)
    local cur
    if ttl > 0 then
      cur = call('SET', key, val, 'PX', ttl_arg, 'GET')
    else
      cur = call('SET', key, val, 'GET')
    end
    if cur and #cur == size then
      local ca = unpack_s('<d', cur, ga)
      local na = unpack_s('<d', val, ga)
      if na < ca or (na == ca and unpack_s('<d', val, gb) < unpack_s('<d', cur, gb)) then
        -- Stale: put the stored record back (TTL refreshed, as for a fresh write).
        stale = stale + 1
        if ttl > 0 then call('SET', key, cur, 'PX', ttl_arg) else call('SET', key, cur) end
      end
    end
    z[nz + 1] = deadline
    z[nz + 2] = id
    nz = nz + 2
    if nz >= 2000 then
      call('ZADD', index, unpack(z, 1, nz))
      nz = 0
    end
  end
  if nz > 0 then call('ZADD', index, unpack(z, 1, nz)) end
  if ttl > 0 then call('ZREMRANGEBYSCORE', index, '-inf', now_ms) end
end
return stale
"""

_COUNT_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms, '+inf')
"""


#: Commands with at most this many arguments are packed by redis-py's Python serializer, which
#: sends large values as they are; hiredis's packer (used for the rest, e.g. an MGET of 5,000
#: keys, where it is several times faster) copies every argument into one buffer, which
#: measured 20 ms for one 4 MB state save.
_FEW_ARGS = 64


class _Packer:
    """Command packer: hiredis for many small arguments, Python for a few large ones."""

    def __init__(self) -> None:
        # redis-py internals (5.x - 8.x): connect() falls back to the default packer if they move.
        from redis._parsers.encoders import Encoder
        from redis.connection import HiredisRespSerializer, PythonRespSerializer
        from redis.utils import HIREDIS_AVAILABLE

        # 6000: redis-py's own buffer cutoff (larger arguments are sent without copying).
        self._python = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
        self._hiredis = HiredisRespSerializer() if HIREDIS_AVAILABLE else None

    def pack(self, *args: Any) -> list[bytes]:
        if self._hiredis is None or len(args) <= _FEW_ARGS:
            return self._python.pack(*args)  # type: ignore[no-any-return]
        return self._hiredis.pack(*args)


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A client for ``url`` with short timeouts and one quick reconnect attempt per command.

    Longer outages are the caller's business (the pipeline's retry policy backs off and
    reports the component as down); redis-py's own default would retry for tens of seconds.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        "health_check_interval": 30,
    }
    try:
        options["command_packer"] = _Packer()
    except (ImportError, AttributeError, TypeError) as exc:  # another redis-py: its own packer
        log.debug("redis-py's default command packer (%s)", exc)
    options.update(kwargs)
    return redis.Redis.from_url(url, **options)


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStateStore(StateStore):
    """Records in Redis (see module docstring for layout, atomicity, expiry and memory)."""

    #: Safe for concurrent calls from several threads (redis-py's pool gives each call its own
    #: connection; a save is one atomic script): the pipeline's write-behind relies on it.
    thread_safe = True

    def __init__(
        self,
        client: redis.Redis,
        widths: dict[str, int] | None = None,
        *,
        prefix: str = "rs:",
        ttl_s: float = DEFAULT_TTL_S,
        guards: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.client = client
        self.widths = dict(widths or DEFAULT_WIDTHS)
        self.prefix = prefix
        #: 0 disables expiry.
        self.ttl_ms = max(int(ttl_s * 1000), 0)
        guards = {**DEFAULT_GUARDS, **(guards or {})}
        self.guards = {ns: guards.get(ns, (0, 0)) for ns in self.widths}
        for ns, (a, b) in self.guards.items():
            if not (0 <= a < self.widths[ns] and 0 <= b < self.widths[ns]):
                raise ValueError(f"guard slots {a, b} outside the {ns!r} record")
        self._save = client.register_script(_SAVE_LUA)
        self._count = client.register_script(_COUNT_LUA)
        self._checked_layout = False
        #: Rows a save refused because the stored record was newer (stale writers).
        self.stale_rows = 0

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStateStore:
        """``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``)."""
        return cls(connect(url), **kwargs)

    # -- keys ------------------------------------------------------------------------------------
    def _key_prefix(self, namespace: str) -> str:
        if namespace not in self.widths:
            raise KeyError(f"unknown namespace {namespace!r}")
        return f"{self.prefix}{namespace}:"

    def _index(self, namespace: str) -> str:
        return f"{self.prefix}idx:{namespace}"

    def _ensure_layout(self) -> None:
        """Record the layout once; refuse to mix records of different widths in one prefix."""
        if self._checked_layout:
            return
        meta = json.dumps({"widths": self.widths, "dtype": "<f8"}, sort_keys=True)
        key = f"{self.prefix}meta"
        self.client.set(key, meta, nx=True)
        stored = self.client.get(key)
        if stored is not None and stored.decode() != meta:
            old = json.loads(stored)
            same = old.get("dtype") == "<f8" and all(
                self.widths.get(ns) == w for ns, w in old.get("widths", {}).items()
            )
            if not same:
                raise ValueError(
                    f"Redis prefix {self.prefix!r} holds state with another layout "
                    f"({stored!r}); use another prefix or clear it and run "
                    "`riskstream profiles rebuild`"
                )
            # Only namespaces were added (state written before the label records): the
            # stored records keep their layout, the new ones start empty.
            self.client.set(key, meta)
        self._checked_layout = True

    # -- contract --------------------------------------------------------------------------
    def load(self, namespace: str, keys: Sequence[str]) -> np.ndarray:
        return self.load_many([(namespace, keys)])[0]

    def load_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
        """One ``MGET`` for every namespace of a batch (behaviour and label records)."""
        wanted = [(ns, keys) for ns, keys in requests if len(keys)]
        values: list[Any] = []
        if wanted:
            names = [self._key_prefix(ns) + k for ns, keys in wanted for k in keys]
            with _unavailable():
                self._ensure_layout()
                # Plain MGET: measured faster than a Lua script returning one concatenated
                # string (Lua 5.1's table.concat copies megabytes several times over).
                values = self.client.mget(names)
        out, at = [], 0
        for ns, keys in requests:
            out.append(self._decode(ns, values[at : at + len(keys)]) if len(keys)
                       else np.zeros((0, self.widths[ns])))
            at += len(keys)
        return out

    def _decode(self, namespace: str, values: list[Any]) -> np.ndarray:
        width = self.widths[namespace]
        size = 8 * width
        zero = bytes(size)
        if any(v is not None and len(v) != size for v in values):
            raise ValueError(f"a stored {namespace!r} record is not {size} bytes: layout changed")
        # A fresh bytearray: the array viewing it is writable and owned by the caller (a copy).
        buf = bytearray().join(zero if v is None else v for v in values)
        out = np.frombuffer(buf, dtype="<f8").reshape(len(values), width)
        return out if out.dtype == np.float64 else out.astype(np.float64)

    def save(self, namespace: str, keys: Sequence[str], rows: np.ndarray) -> None:
        self.save_many([(namespace, keys, rows)])

    def save_many(self, updates: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> None:
        """One atomic script call for every namespace in ``updates`` (see module docstring)."""
        for namespace, keys, rows in updates:
            _check_shape(self, namespace, keys, rows)
        updates = [u for u in updates if len(u[1])]
        if not updates:
            return
        keys_arg: list[str] = []
        args: list[Any] = [self.ttl_ms, len(updates)]
        for namespace, keys, rows in updates:
            guard_a, guard_b = self.guards[namespace]
            keys_arg.append(self._index(namespace))
            ids = [k.encode() for k in keys]
            lengths = np.fromiter(map(len, ids), dtype="<u4", count=len(ids))
            packed = np.ascontiguousarray(rows, dtype="<f8").tobytes()
            args += [len(keys), guard_a, guard_b, 8 * rows.shape[1], packed,
                     self._key_prefix(namespace), b"".join(ids), lengths.tobytes()]
        with _unavailable():
            self._ensure_layout()
            self.stale_rows += int(self._save(keys=keys_arg, args=args))

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        kp = self._key_prefix(namespace)
        with _unavailable():
            value = self.client.get(kp + key)
        if value is None:
            return None
        width = self.widths[namespace]
        if len(value) != 8 * width:
            raise ValueError(f"stored {namespace!r} record {key!r} is not {8 * width} bytes")
        return np.frombuffer(value, dtype="<f8").astype(np.float64)

    def count(self, namespace: str) -> int:
        """Records that have not expired (exact; O(log n) on the expiry index)."""
        self._key_prefix(namespace)
        with _unavailable():
            return int(self._count(keys=[self._index(namespace)]))

    def clear(self) -> None:
        """Delete every key under this store's prefix (records, indexes, layout)."""
        pattern = _escape_glob(self.prefix) + "*"
        batch: list[bytes] = []
        with _unavailable():
            for key in self.client.scan_iter(match=pattern, count=10_000):
                batch.append(key)
                if len(batch) >= 10_000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)
        self._checked_layout = False

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.client.close()

    # -- diagnostics -----------------------------------------------------------------------------
    def memory_per_record(self, namespace: str, sample: int = 200) -> float:
        """Mean ``MEMORY USAGE`` of up to ``sample`` records (bytes, excluding the index)."""
        members = self.client.zrange(self._index(namespace), 0, sample - 1)
        kp = self._key_prefix(namespace)
        sizes = [self.client.memory_usage(kp + m.decode(), samples=0) for m in members]
        sizes = [s for s in sizes if s]
        return float(np.mean(sizes)) if sizes else 0.0

    def wait_until_ready(self, timeout_s: float = 30.0) -> None:
        """Block until Redis answers PING (start-up ordering in scripts and tests)."""
        deadline = time.monotonic() + timeout_s
        while not self.ping():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis not reachable within {timeout_s}s")
            time.sleep(0.1)
