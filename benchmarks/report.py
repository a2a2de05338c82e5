"""Run the benchmarks one at a time and render docs/performance.md from their JSON results.

    .venv/bin/python benchmarks/report.py run core          # riskstream bench, 1 M rows
    .venv/bin/python benchmarks/report.py run core-ensemble # the same with --detectors seed
    .venv/bin/python benchmarks/report.py run core-supervised  # with labels: trees beside IF
    .venv/bin/python benchmarks/report.py run fdh-labels --fdh /path/to/transactions.csv.gz
    .venv/bin/python benchmarks/report.py run fdh-gbm-choice --fdh /path/to/transactions.csv.gz
    .venv/bin/python benchmarks/report.py run score --fdh /path/to/transactions.csv.gz
    .venv/bin/python benchmarks/report.py run kafka         # benchmarks/kafka_e2e.py
    .venv/bin/python benchmarks/report.py run stores        # benchmarks/stores.py
    .venv/bin/python benchmarks/report.py run http          # wrk against `riskstream run`
    .venv/bin/python benchmarks/report.py run api           # inline decisions: /predict(/batch)
    .venv/bin/python benchmarks/report.py render            # rewrite the tables in the docs
    .venv/bin/python benchmarks/report.py check             # exit 1 if a table is stale

``run NAME`` runs one benchmark (never two at once: they share the machine's cores) and appends
the run to ``benchmarks/results/NAME.json`` (the last three are kept: one run on a shared host
says little, a few show the spread): the benchmark's own result under ``result``, plus what a
reader needs to judge it: the exact commands, the machine (CPU model from ``/proc/cpuinfo``,
cores), the load average before and after (other work on the host moves every figure) and the
commit it ran on. ``core``, ``kafka`` and ``stores`` run the benchmark's own command, which
writes the result JSON. ``score`` and ``http`` are measured here: ``score`` times
``riskstream score`` over the whole Fraud Detection Handbook file (after training the model
documented in docs/models.md); ``http`` starts ``riskstream run`` on a free loopback port in a
temporary home, waits for ``/health``, runs ``wrk`` (a Lua script builds each ``/predict``
body and prints wrk's summary as JSON) for ``GET /health`` and ``POST /predict`` at 1, 4 and
16 connections, then stops the run. ``api`` starts the service the same way and measures
inline decisions: ``POST /predict`` with the common fraud-API body (no timestamp; a unique
transaction id per request, 500 users in turn) under wrk at 1, 8 and 64 connections, then
``POST /predict/batch`` with 1,000 transactions per call, 20 calls in sequence after a
warm-up (an endpoint that is not there is recorded, not an error). Traffic goes to 127.0.0.1
only.

``render`` replaces what sits between ``<!-- BEGIN report:NAME -->`` and
``<!-- END report:NAME -->`` in docs/performance.md (and the README's ``headline`` block) with
the table rendered from the JSON files; ``tests/test_docs.py`` checks that the committed
documents are exactly that.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
README = ROOT / "README.md"
VENV_BIN = ROOT / ".venv" / "bin"
#: The Fraud Detection Handbook file (docs/models.md); never copied into the repository.
FDH_DEFAULT = Path("/work/shared/datasets/fdh_simulated_transactions/transactions.csv.gz")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: HTTP benchmark: connections per run, seconds per run, wrk threads at most.
HTTP_CONNECTIONS = (1, 4, 16)
HTTP_SECONDS = 10
HTTP_MAX_THREADS = 2
#: API benchmark (inline decisions): connections per ``/predict`` run, seconds per run,
#: distinct users the requests cycle through; ``/predict/batch`` calls and their size.
API_CONNECTIONS = (1, 8, 64)
API_SECONDS = 15
API_USERS = 500
API_BATCH_SIZE = 1000
API_BATCH_CALLS = 20
#: Runs kept per result file (oldest dropped first).
KEEP_RUNS = 3


# -- the machine and the conditions ---------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model (``/proc/cpuinfo``), cores, Python and kernel of this host."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return {
        "cpu_model": model,
        "cores": os.cpu_count() or 0,
        "usable_cores": usable,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def code_version() -> dict[str, Any]:
    """The commit the benchmark ran on and whether the working tree had local changes
    (read-only git: ``GIT_OPTIONAL_LOCKS=0`` keeps ``git status`` from touching the index)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                             env=env, check=False)
        return out.stdout.strip()

    return {
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "local_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def speed_probe() -> float:
    """Seconds a fresh interpreter takes for ``sum(range(10**8))``: how fast the shared host
    is right now (the same benchmark moves with it, by 2-3x between days)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "sum(range(10**8))"], check=True)
    return round(time.perf_counter() - t0, 2)


def _rel(path: Path | str) -> str:
    """A path as a reader would type it: relative to the repository when inside it."""
    p = Path(path)
    with contextlib.suppress(ValueError):
        return str(p.resolve().relative_to(ROOT))
    return str(p)


def _cmd_text(cmd: list[str]) -> str:
    """A command line for the document: the venv's executables by their usual short names."""
    words = []
    for word in cmd:
        if word == sys.executable or word == str(VENV_BIN / "python"):
            words.append(".venv/bin/python")
        elif word.startswith(str(VENV_BIN) + "/"):
            words.append(".venv/bin/" + word.rsplit("/", 1)[1])
        elif word.startswith(str(ROOT) + "/"):
            words.append(_rel(word))
        else:
            words.append(word)
    return " ".join(words)


def _timed(cmd: list[str], log: Path, cwd: Path = ROOT) -> dict[str, float]:
    """Run ``cmd`` to completion (output to ``log``): wall time, and CPU and peak memory of
    that child alone (``wait4``; its own children, if any, are not counted)."""
    t0 = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "max_rss_mb": round(usage.ru_maxrss / 1024),  # KiB on Linux
    }


def _envelope(name: str, description: str, commands: list[str], load_before: list[float],
              result: Any, wall: float) -> dict[str, Any]:
    return {
        "benchmark": name,
        "description": description,
        "commands": commands,
        "reproduce": f".venv/bin/python benchmarks/report.py run {name}",
        "machine": machine(),
        "code": code_version(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "wall_seconds": round(wall, 1),
        "result": result,
    }


def _write(name: str, data: dict[str, Any]) -> Path:
    """Append a run to ``benchmarks/results/NAME.json``, keeping the last :data:`KEEP_RUNS`
    (one run of a shared host says little; a few show the spread)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    runs = [*runs, data][-KEEP_RUNS:]
    path.write_text(json.dumps({"benchmark": name, "runs": runs}, indent=2) + "\n")
    return path


# -- runners ---------------------------------------------------------------------------------


def _run_own_json(name: str, description: str, cmd: list[str], json_path: Path,
                  log: Path) -> dict[str, Any]:
    """Run a benchmark that writes its own JSON result, and wrap it."""
    load_before = load_average()
    t0 = time.perf_counter()
    _timed(cmd, log)
    wall = time.perf_counter() - t0
    result = json.loads(json_path.read_text())
    # Shown without the options that only say where files go (they move no figure).
    shown, skip = [], False
    for word in cmd:
        if skip:
            skip = False
        elif word in ("--json", "--out"):
            skip = True
        else:
            shown.append(word)
    return _envelope(name, description, [_cmd_text(shown)], load_before, result, wall)


def run_core(tmp: Path, detectors: str | None = None, supervised: bool = False
             ) -> dict[str, Any]:
    name = "core-ensemble" if detectors else "core-supervised" if supervised else "core"
    out = tmp / "core.json"
    cmd = [str(VENV_BIN / "riskstream"), "bench", "--rows", "1000000", "--batch-size", "10000"]
    if detectors:
        cmd += ["--detectors", detectors]
    if supervised:
        cmd += ["--supervised"]
    cmd += ["--json", str(out)]
    return _run_own_json(name, "scoring core in-process (features, detectors, calibration, "
                         "reasons), one process pinned to one core", cmd, out, tmp / "log")


def run_fdh_labels(tmp: Path, fdh: Path) -> dict[str, Any]:
    """Detection with outcome labels reported 7 days late on FDH: 4 prequential folds and
    the unsupervised default beside them (benchmarks/fdh_labels.py, docs/models.md)."""
    if not fdh.exists():
        raise SystemExit(f"FDH file not found: {fdh}")
    out = tmp / "fdh-labels.json"
    cmd = [str(VENV_BIN / "python"), str(ROOT / "benchmarks" / "fdh_labels.py"), str(fdh),
           "--folds", "4", "--no-labels", "--out", str(out)]
    return _run_own_json("fdh-labels", "detection with outcome labels (each reported 7 days "
                         "after its transaction), FDH, handbook and every-row views", cmd, out,
                         tmp / "log")


def run_fdh_gbm_choice(tmp: Path, fdh: Path) -> dict[str, Any]:
    """Which boosted-trees library for the supervised member: scikit-learn, LightGBM,
    XGBoost on the product's FDH training matrix (benchmarks/fdh_gbm_choice.py)."""
    if not fdh.exists():
        raise SystemExit(f"FDH file not found: {fdh}")
    out = tmp / "fdh-gbm-choice.json"
    cmd = [str(VENV_BIN / "python"), str(ROOT / "benchmarks" / "fdh_gbm_choice.py"), str(fdh),
           "--out", str(out)]
    return _run_own_json("fdh-gbm-choice", "boosted-trees libraries on the supervised member's "
                         "FDH training matrix: holdout AP, fit time, call latency", cmd, out,
                         tmp / "log")


def run_kafka(tmp: Path) -> dict[str, Any]:
    out = tmp / "kafka.json"
    cmd = [str(VENV_BIN / "python"), str(ROOT / "benchmarks" / "kafka_e2e.py"),
           "--rows", "300000", "--db-url", PG_URL, "--out", str(tmp / "work"),
           "--json", str(out)]
    return _run_own_json("kafka", "riskstream worker processes, local Tansu broker, "
                         "PostgreSQL results", cmd, out, tmp / "log")


def run_stores(tmp: Path) -> dict[str, Any]:
    out = tmp / "stores.json"
    cmd = [str(VENV_BIN / "python"), str(ROOT / "benchmarks" / "stores.py"),
           "--rows", "300000", "--batch-size", "5000", "--gc-freeze", "--pg-url", PG_URL,
           "--json", str(out)]
    return _run_own_json("stores", "the pipeline on Redis state + PostgreSQL results, one "
                         "worker", cmd, out, tmp / "log")


def run_score(tmp: Path, fdh: Path) -> dict[str, Any]:
    """Train the documented FDH model (untimed), then time ``riskstream score`` over the whole
    file; evaluate the test week afterwards as a check that the scores are the documented
    ones (docs/models.md)."""
    if not fdh.exists():
        raise SystemExit(f"FDH file not found: {fdh}")
    home = Path("/tmp/rs-fdh")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    model, scored = home / "fdh.npz", home / "fdh_scored.csv"
    rs = str(VENV_BIN / "riskstream")
    train = [rs, "train", "-i", str(fdh), "--map", "fdh", "--since", "2018-07-25",
             "--until", "2018-08-01", "--features", "amount", "--detectors", "marginal_tails",
             "--model-out", str(model), "--home", str(home)]
    score = [rs, "score", "-i", str(fdh), "--map", "fdh", "--model", str(model), "-o",
             str(scored), "--home", str(home)]
    evaluate = [rs, "evaluate", "-i", str(scored), "--start", "2018-08-08", "--end",
                "2018-08-15", "--baselines", "fdh", "--out", str(home / "eval")]
    log = tmp / "log"
    load_before = load_average()
    t0 = time.perf_counter()
    trained = _timed(train, log)
    load_score = load_average()
    timed = _timed(score, log)
    load_after_score = load_average()
    _timed(evaluate, log)
    wall = time.perf_counter() - t0
    rows = _count_rows(scored)
    report = json.loads((home / "eval" / "evaluation.json").read_text())
    result = {
        "file": str(fdh),
        "file_bytes": fdh.stat().st_size,
        "rows": rows,
        "model": "marginal tails, `amount` features (the FDH recipe, docs/models.md)",
        "train": trained,
        "score": {**timed, "tx_per_second": round(rows / timed["wall_seconds"]),
                  "load_average_before": load_score, "load_average_after": load_after_score},
        "output": "CSV, one row per input row",
        "evaluation_check": _eval_summary(report),
    }
    return _envelope("score", "riskstream score over the whole FDH file (read, map, validate, "
                     "replay through the scoring core in time order, write CSV)",
                     [_cmd_text(train), _cmd_text(score)], load_before, result, wall)


def _count_rows(csv: Path) -> int:
    with csv.open("rb") as fh:
        return sum(1 for _ in fh) - 1


def _eval_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of ``evaluate``'s report on the test week."""
    r = report["results"][0]
    return {
        "transactions": r["n"],
        "frauds": r["n_fraud"],
        "average_precision": round(r["average_precision"], 3),
        "roc_auc": round(r["roc_auc"], 3),
        "card_precision_at_100": round(r["card_precision_at_100"], 3),
        "recall_at_1pct_by_scenario": {k: round(v["recall_at"]["1%"], 3)
                                       for k, v in sorted(r["scenarios"].items())},
    }


# -- HTTP ------------------------------------------------------------------------------------

#: wrk prints its summary as one JSON line after this marker (the ``done`` hook below).
_WRK_MARK = "WRK_JSON "
_WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}' .. "\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""
#: One new transaction per request: unique id, 5,000 users, wall-clock event time.
_WRK_PREDICT = r"""
tid = 0
counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
request = function()
  counter = counter + 1
  local user = (counter * 7 + tid * 131) % 5000
  local body = string.format(
    '{"transaction_id":"wrk-%d-%d","timestamp":"%s","user_id":"wrk-u-%d",' ..
    '"amount":%.2f,"currency":"EUR","merchant_id":"wrk-m-%d","country":"FR",' ..
    '"lat":48.85,"lon":2.35,"device_id":"wrk-d-%d","channel":"pos"}',
    tid, counter, os.date("!%Y-%m-%dT%H:%M:%SZ"), user, 5 + (counter % 200),
    counter % 300, user)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"riskstream run exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return time.perf_counter() - t0
        time.sleep(1.0)
    raise SystemExit(f"{url} not healthy within {timeout:.0f} s")


@contextlib.contextmanager
def _riskstream_run(home: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    log = (home / "run.log").open("wb")
    proc = subprocess.Popen([str(VENV_BIN / "riskstream"), "run", "--home", str(home),
                             "--port", str(port)], cwd=home, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # finishes the batch in hand, snapshots, exits
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _wrk(url: str, connections: int, seconds: int, script: Path, args: tuple[str, ...] = (),
         latency: bool = False) -> tuple[list[str], dict]:
    """Run wrk (``args``: the script's own, after ``--``; ``latency``: also print the
    latency distribution); its summary, parsed."""
    threads = min(HTTP_MAX_THREADS, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
           *(["--latency"] if latency else []), "-s", str(script), url,
           *(["--", *args] if args else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    line = next(x for x in out.splitlines() if x.startswith(_WRK_MARK))
    return cmd, json.loads(line[len(_WRK_MARK):])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk_row(proc: subprocess.Popen[bytes], base: str, tmp: Path, method: str, path: str,
             connections: int, seconds: int, script: Path, args: tuple[str, ...] = (),
             latency: bool = False) -> dict[str, Any]:
    """One wrk run against the server ``proc`` at ``base``, as a result row: requests/s,
    latency, wrk's error counts, the server's CPU (cores) over the run, the load before it
    and the command (temporary paths and the port left out)."""
    load = load_average()
    cpu0 = _cpu_seconds(proc.pid)
    cmd, summary = _wrk(base + path, connections, seconds, script, args, latency)
    cpu = _cpu_seconds(proc.pid) - cpu0
    took = summary["duration_us"] / 1e6
    lat = summary["latency_us"]
    shown = [w.replace(str(tmp) + "/", "") for w in cmd]
    shown[shown.index(base + path)] = "http://127.0.0.1:$PORT" + path
    return {
        "method": method,
        "path": path,
        "connections": connections,
        "threads": min(HTTP_MAX_THREADS, connections),
        "seconds": round(took, 2),
        "requests": summary["requests"],
        "requests_per_second": round(summary["requests"] / took),
        "latency_ms": {k: round(lat[k] / 1000, 2) for k in ("mean", "p50", "p90", "p99", "max")},
        "errors": summary["errors"],
        "server_cpu_cores": round(cpu / took, 2),
        "load_average_before": load,
        "command": " ".join(shown),
    }


#: The server both wrk benchmarks drive, as their results describe it.
_EMBEDDED_SERVER = ("riskstream run (embedded: simulator at its default rate, in-memory state, "
                    "SQLite results, one uvicorn worker)")


def _need_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get update && apt-get install -y wrk")


@contextlib.contextmanager
def _warm_run(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str, float]]:
    """``riskstream run`` in ``home`` (created here) on a free port, answering ``/health`` and
    past its first batches: (process, port, base URL, seconds until it was healthy)."""
    home.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with _riskstream_run(home, port) as proc:
        ready = _wait_health(base + "/health", proc, timeout=600)
        time.sleep(5.0)  # let the first batches of the embedded stream go by
        yield proc, port, base, ready


def run_http(tmp: Path) -> dict[str, Any]:
    _need_wrk()
    get_lua, post_lua = tmp / "get.lua", tmp / "predict.lua"
    get_lua.write_text(_WRK_DONE)
    post_lua.write_text(_WRK_PREDICT + _WRK_DONE)
    load_before = load_average()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with _warm_run(tmp / "home") as (proc, _port, base, ready):
        _wrk(base + "/predict", 4, 3, post_lua)  # warm-up, not recorded
        for method, path, script in (("GET", "/health", get_lua),
                                     ("POST", "/predict", post_lua)):
            for conns in HTTP_CONNECTIONS:
                rows.append(_wrk_row(proc, base, tmp, method, path, conns, HTTP_SECONDS,
                                     script))
    wall = time.perf_counter() - t0
    result = {
        "server": _EMBEDDED_SERVER,
        "health_ready_seconds": round(ready, 1),
        "runs": rows,
    }
    return _envelope("http", "wrk against riskstream run on 127.0.0.1 (client and server "
                     "share the machine)",
                     [".venv/bin/riskstream run --home $(mktemp -d) --port $PORT",
                      "wrk -t<=2 -c{1,4,16} -d10s --timeout 5s -s {get,predict}.lua URL "
                      "(scripts in benchmarks/report.py)"],
                     load_before, result, wall)


#: The common fraud-API body, no timestamp (the server's receive time is used): a unique id
#: per request (the run's nonce from ``init``'s argument, the thread from ``setup``, the
#: thread's counter), users cycling through API_USERS.
_WRK_API = r"""
tid = 0
nonce = "0"
counter = 0
local threads = 0
local categories = {"grocery", "electronics", "travel", "fuel", "restaurants"}
local cities = {"Paris", "Lyon", "Berlin", "Madrid", "Milan"}
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  nonce = args[1] or tostring(os.time())
end
request = function()
  counter = counter + 1
  local user = (tid * 97 + counter) % USERS
  local body = string.format(
    '{"transaction_id":"api-%s-%d-%d","user_id":"api-u-%d","amount":%.2f,' ..
    '"merchant":"api-m-%d","category":"%s","location":"%s","device_id":"api-d-%d"}',
    nonce, tid, counter, user, 5 + (counter % 200) + (counter % 7) * 0.13, counter % 300,
    categories[counter % 5 + 1], cities[user % 5 + 1], user)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
""".replace("USERS", str(API_USERS))
_CATEGORIES = ("grocery", "electronics", "travel", "fuel", "restaurants")
_CITIES = ("Paris", "Lyon", "Berlin", "Madrid", "Milan")


def _api_body(tx_id: str, n: int) -> dict[str, Any]:
    """The body the Lua script sends, from Python (the probe and ``/predict/batch``)."""
    user = n % API_USERS
    return {"transaction_id": tx_id, "user_id": f"api-u-{user}",
            "amount": round(5 + n % 200 + (n % 7) * 0.13, 2), "merchant": f"api-m-{n % 300}",
            "category": _CATEGORIES[n % 5], "location": _CITIES[user % 5],
            "device_id": f"api-d-{user}"}


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes, float]:
    """POST ``body`` on a kept-alive connection: status, response body, seconds to the last
    byte of the response."""
    t0 = time.perf_counter()
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data, time.perf_counter() - t0


def _nearest_rank(values: list[float], pct: float) -> float:
    ranked = sorted(values)
    return ranked[max(0, math.ceil(pct / 100 * len(ranked)) - 1)]


def _api_probe(port: int, nonce: str) -> dict[str, Any]:
    """One ``/predict`` with the benchmark's body before the timed runs: does the service
    take it (status, and the answer's start)?"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps(_api_body(f"api-{nonce}-probe", 0)).encode()
        status, data, took = _post(conn, "/predict", body)
    finally:
        conn.close()
    return {"status": status, "ms": round(took * 1000, 2),
            "response": data.decode("utf-8", "replace")[:300]}


def _api_batch(proc: subprocess.Popen[bytes], port: int, nonce: str) -> dict[str, Any]:
    """A warm-up call, then :data:`API_BATCH_CALLS` sequential ``POST /predict/batch`` calls
    of :data:`API_BATCH_SIZE` new transactions each on one kept-alive connection (bodies
    built beforehand). An endpoint that is not there (404/405), or any other refusal, is
    recorded, not raised."""
    bodies = [json.dumps([_api_body(f"api-{nonce}-b{call}-{i}", call * API_BATCH_SIZE + i)
                          for i in range(API_BATCH_SIZE)]).encode()
              for call in range(API_BATCH_CALLS + 1)]
    result: dict[str, Any] = {"transactions_per_call": API_BATCH_SIZE,
                              "calls": API_BATCH_CALLS, "request_bytes": len(bodies[0])}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        status, data, took = _post(conn, "/predict/batch", bodies[0])
        result["warm_up"] = {"status": status, "ms": round(took * 1000, 1)}
        if status in (404, 405):
            return {**result, "available": False, "status": status}
        if status != 200:
            return {**result, "available": True, "status": status,
                    "error": data.decode("utf-8", "replace")[:500]}
        load = load_average()
        cpu0 = _cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        times, scored, refused, statuses = [], 0, 0, {}
        for body in bodies[1:]:
            status, data, took = _post(conn, "/predict/batch", body)
            times.append(took)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            with contextlib.suppress(ValueError, KeyError, TypeError):
                answer = json.loads(data)
                scored += int(answer["scored"])
                refused += int(answer["refused"])
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds(proc.pid) - cpu0
    except OSError as exc:  # connection refused/reset, timeout
        return {**result, "available": None, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()
    return {
        **result,
        "available": True,
        "status": 200,
        "statuses": statuses,
        "seconds": round(wall, 3),
        "scored": scored,
        "refused": refused,
        "tx_per_second": round(scored / wall),
        "call_latency_ms": {"p50": round(_nearest_rank(times, 50) * 1000, 1),
                            "p99": round(_nearest_rank(times, 99) * 1000, 1),
                            "max": round(max(times) * 1000, 1)},
        "server_cpu_cores": round(cpu / wall, 2),
        "load_average_before": load,
        "command": f"POST /predict/batch, {API_BATCH_CALLS} sequential calls of "
                   f"{API_BATCH_SIZE:,} transactions after a warm-up call, one kept-alive "
                   "connection (http.client)",
    }


def run_api(tmp: Path) -> dict[str, Any]:
    """Inline decisions: ``POST /predict`` with the common fraud-API body under wrk at
    :data:`API_CONNECTIONS`, then ``POST /predict/batch``; the server as ``run_http`` starts
    it."""
    _need_wrk()
    home = tmp / "home"
    script = tmp / "api.lua"
    script.write_text(_WRK_API + _WRK_DONE)
    nonce = secrets.token_hex(4)  # ids never repeat across runs of the benchmark
    load_before = load_average()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with _warm_run(home) as (proc, port, base, ready):
        probe = _api_probe(port, nonce)
        _wrk(base + "/predict", 8, 3, script, (f"{nonce}-w",))  # warm-up, not recorded
        for conns in API_CONNECTIONS:
            row = _wrk_row(proc, base, tmp, "POST", "/predict", conns, API_SECONDS, script,
                           (f"{nonce}-c{conns}",), latency=True)
            e = row["errors"]
            row["non_2xx"] = e["status"]  # wrk: "Non-2xx or 3xx responses"
            row["socket_errors"] = e["connect"] + e["read"] + e["write"]
            row["timeouts"] = e["timeout"]
            row["command"] = row["command"].replace(nonce, "$NONCE")
            rows.append(row)
        batch = _api_batch(proc, port, nonce)
    wall = time.perf_counter() - t0
    log = (home / "run.log").read_text(errors="replace").splitlines()
    errors = [line for line in log if re.match(r"^\w+(\.\w+)*(Error|Exception):", line)]
    result = {
        "server": _EMBEDDED_SERVER,
        "health_ready_seconds": round(ready, 1),
        "body": "common fraud-API body without a timestamp: transaction_id, user_id, amount, "
                "merchant, category, location, device_id",
        "users": API_USERS,
        "probe_request": probe,
        "runs": rows,
        "batch": batch,
        # What the server logged as it failed requests (a 5xx is an exception in its log).
        "server_exceptions": {"count": len(errors), "last": errors[-1] if errors else None},
    }
    return _envelope("api", "inline decisions: wrk POST /predict with the common fraud-API "
                     "body, and POST /predict/batch, against riskstream run on 127.0.0.1 "
                     "(client and server share the machine)",
                     [".venv/bin/riskstream run --home $(mktemp -d) --port $PORT",
                      f"wrk -t<=2 -c{{{','.join(map(str, API_CONNECTIONS))}}} "
                      f"-d{API_SECONDS}s --timeout 5s --latency -s api.lua "
                      "http://127.0.0.1:$PORT/predict -- $NONCE (script in "
                      "benchmarks/report.py)",
                      f"{API_BATCH_CALLS} x POST /predict/batch of {API_BATCH_SIZE:,} "
                      "transactions (benchmarks/report.py)"],
                     load_before, result, wall)


#: Runners that read the FDH file (``--fdh``).
FDH_RUNNERS = ("score", "fdh-labels", "fdh-gbm-choice")
RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "core": run_core,
    "core-ensemble": lambda tmp: run_core(tmp, detectors="seed"),
    "core-supervised": lambda tmp: run_core(tmp, supervised=True),
    "fdh-labels": run_fdh_labels,
    "fdh-gbm-choice": run_fdh_gbm_choice,
    "score": run_score,
    "kafka": run_kafka,
    "stores": run_stores,
    "http": run_http,
    "api": run_api,
}


# -- rendering -------------------------------------------------------------------------------

Results = dict[str, list[dict[str, Any]]]


def _n(x: float | int | None, digits: int = 0) -> str:
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def _spread(values: list[float], digits: int = 0) -> str:
    lo, hi = min(values), max(values)
    return _n(lo, digits) if lo == hi else f"{_n(lo, digits)} – {_n(hi, digits)}"


def _machine(data: dict[str, Any]) -> str:
    m = data["machine"]
    return f"{m['cpu_model']}, {m['cores']} cores"


def _load(before: list[float], after: list[float] | None = None) -> str:
    if after is None:
        return f"{before[0]:.2f}"
    return f"{before[0]:.2f} → {after[0]:.2f}"


def _probe(data: dict[str, Any]) -> str:
    probe = data.get("speed_probe_seconds_before")
    return "—" if probe is None else f"{probe:.2f} s"



def _header(*columns: str) -> list[str]:
    """A markdown table's header and rule lines; every table ends with the provenance columns."""
    names = [*columns, "load", "host probe", "machine", "command"]
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def _provenance(data: dict[str, Any], command: str, load: dict[str, Any] | None = None) -> str:
    """The last cells of a row: load before -> after, host probe, machine, command."""
    timing = data if load is None else load
    return (f"{_load(timing['load_average_before'], timing.get('load_average_after'))} | "
            f"{_probe(data)} | {_machine(data)} | {_code(command)}")

def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _conditions(runs: list[dict[str, Any]]) -> str:
    """The footnote every table shares: machines, Python, commits, how to reproduce."""
    machines = sorted({f"{_machine(d)} (Python {d['machine']['python']})" for d in runs})
    commits = sorted({d["code"]["commit"] for d in runs})
    changes = " plus local changes" if any(d["code"]["local_changes"] for d in runs) else ""
    reproduce = sorted({d["reproduce"] for d in runs})
    return (f"Machine: {'; '.join(machines)}. Load: the 1-minute load average before → after "
            "the run (it includes the benchmark's own processes). Host probe: how long "
            "`python -c \"sum(range(10**8))\"` took just before the run. Commit "
            f"{', '.join(f'`{c}`' for c in commits)}{changes}. Reproduce with "
            + " or ".join(f"`{r}`" for r in reproduce) + ".")


def _missing(name: str) -> str:
    return f"_Not measured yet: no {name} result in benchmarks/results._"


def render_core(results: Results) -> str:
    runs = [d for k in ("core", "core-supervised", "core-ensemble") for d in results.get(k, [])]
    if not runs:
        return _missing("core")
    lines = _header("detectors", "tx/s", "batch p50 / p95 / p99 (ms)")
    for data in runs:
        r = data["result"]
        lat = r["batch_latency_ms"]
        trees = " + trees (labels)" if r.get("supervised") else ""
        lines.append(
            f"| {_code(r['detectors'])}{trees} | **{_n(r['tx_per_second'])}** | "
            f"{_n(lat['p50'], 1)} / {_n(lat['p95'], 1)} / {_n(lat['p99'], 1)} | "
            f"{_provenance(data, data['commands'][0])} |")
    first = runs[0]["result"]
    lines += ["", f"{_n(first['transactions'])} timed transactions in batches of "
              f"{_n(first['batch_size'])}, {_n(first['users'])} users; pinned to one core: "
              f"{'yes' if first['pinned_to_one_core'] else 'no'}. " + _conditions(runs)]
    return "\n".join(lines)


def _eval_text(r: dict[str, Any]) -> str:
    e = r.get("evaluation_check")
    if not e or "average_precision" not in e:
        return ""
    recall = " / ".join(f"{v:.3f}" for v in e["recall_at_1pct_by_scenario"].values())
    return (f"Check, the test week of the scored file (`riskstream evaluate --start 2018-08-08 "
            f"--end 2018-08-15`, {_n(e['transactions'])} transactions, {e['frauds']} frauds): "
            f"AP {e['average_precision']:.3f}, ROC AUC {e['roc_auc']:.3f}, CP@100 "
            f"{e['card_precision_at_100']:.3f}, recall at a 1 % budget per scenario "
            f"{recall} — the marginal-tails row of [models.md](models.md). ")


def render_score(results: Results) -> str:
    runs = results.get("score", [])
    if not runs:
        return _missing("score")
    lines = _header("rows scored", "wall (s)", "tx/s", "CPU (s)", "peak memory",
                    "train before it: wall / CPU (s)")
    for data in runs:
        r = data["result"]
        sc, t = r["score"], r["train"]
        lines.append(
            f"| {_n(r['rows'])} | {sc['wall_seconds']:.1f} | **{_n(sc['tx_per_second'])}** | "
            f"{sc['cpu_seconds']:.1f} | {_n(sc['max_rss_mb'])} MB | {t['wall_seconds']:.1f} / "
            f"{t['cpu_seconds']:.1f} | "
            f"{_provenance(data, data['commands'][1], load=sc)} |")
    last = runs[-1]
    r = last["result"]
    lines += ["", f"Model: {r['model']}, trained by {_code(last['commands'][0])}. Output: "
              f"{r['output']}. " + _eval_text(r) + _conditions(runs)]
    return "\n".join(lines)


def render_kafka(results: Results) -> str:
    runs = results.get("kafka", [])
    if not runs:
        return _missing("kafka")
    lines = _header("run", "result", "CPU")
    for data in runs:
        r = data["result"]
        cells = _provenance(data, data["commands"][0])
        for t in r["throughput"]:
            cpu = (f"workers {_n(t.get('worker_cpu_us_per_tx_during_drain'), 1)} µs/tx, broker "
                   f"{_n(t.get('broker_cores_during_drain'), 2)} cores, machine "
                   f"{_n(t.get('machine_cpu_busy_share_during_drain'), 2)} busy")
            lines.append(f"| drain {_n(t['transactions'])} transactions, {t['workers']} "
                         f"worker{'s' if t['workers'] > 1 else ''} | "
                         f"**{_n(t['tx_per_s'])} tx/s** | {cpu} | {cells} |")
        lat = r["latency"]
        lines.append(
            f"| latency, {lat['workers']} workers at {_n(lat['offered_tx_per_s'])} tx/s offered "
            f"| p50 / p90 / p99 **{_n(lat['p50_ms'], 1)} / {_n(lat['p90_ms'], 1)} / "
            f"{_n(lat['p99_ms'], 1)} ms** (max {_n(lat['max_ms'], 1)}; {_n(lat['measured'])} "
            f"measured) | machine {_n(lat.get('machine_cpu_busy_share'), 2)} busy | {cells} |")
    r = runs[-1]["result"]
    st = r["stages_us_per_tx"]
    stages = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in st.items()
                       if k not in ("total", "implied_tx_per_s_one_core"))
    lines += ["", f"Stage profile of one worker's {_n(r['batch_size'])}-row batch (latest run), "
              f"µs per transaction: {stages}; total {st['total']:.2f}. Broker: {r['broker']}; "
              f"results: {r['results_store']}; {r['partitions']} partitions, messages "
              f"{r['message_bytes_mean']} bytes on average. " + _conditions(runs)]
    return "\n".join(lines)


def render_stores(results: Results) -> str:
    runs = results.get("stores", [])
    if not runs:
        return _missing("stores")
    lines = _header("run", "tx/s", "batch p50 / p95 / p99 (ms)", "client CPU",
                    "per batch: Redis load / PostgreSQL write / Redis save (ms)")
    for data in runs:
        r = data["result"]
        lat, per = r["batch_latency_ms"], r["ms_per_batch_in"]
        lines.append(
            f"| {_n(r['transactions'])} transactions, batch {_n(r['batch_size'])}, one worker, "
            f"{'write-behind' if r['write_behind'] else 'sequential'} | "
            f"**{_n(r['tx_per_second'])}** | {lat['p50']:.1f} / {lat['p95']:.1f} / "
            f"{lat['p99']:.1f} | {r['client_cpu_us_per_tx']:.1f} µs/tx | "
            f"{per.get('redis_load', 0):.1f} / {per.get('postgres_write', 0):.1f} / "
            f"{per.get('redis_save', 0):.1f} | "
            f"{_provenance(data, data['commands'][0])} |")
    r = runs[-1]["result"]
    lines += ["", f"Redis: {r.get('redis', '—')}; {_n(r['users'])} users, "
              f"{_n(r['redis_bytes_per_user']['record'])} bytes per user record + "
              f"{_n(r['redis_bytes_per_user']['expiry_index'])} in the expiry index. With "
              "write-behind the batch latency is the time to hand a batch over "
              "([stores.md](stores.md)). " + _conditions(runs)]
    return "\n".join(lines)


def _wrk_rows(runs: list[dict[str, Any]], lead: Callable[[dict[str, Any]], str],
              errors: Callable[[dict[str, Any]], str]) -> list[str]:
    """One row per wrk run of ``runs``: ``lead`` cells, latency p50 / p90 / p99, ``errors``
    cells, server CPU, provenance."""
    out = []
    for data in runs:
        for run in data["result"]["runs"]:
            lat = run["latency_ms"]
            out.append(f"| {lead(run)} | {lat['p50']:.2f} / {lat['p90']:.2f} / {lat['p99']:.2f} "
                       f"| {errors(run)} | {run['server_cpu_cores']:.2f} cores | "
                       f"{_provenance(data, run['command'], load=run)} |")
    return out


def render_http(results: Results) -> str:
    runs = results.get("http", [])
    if not runs:
        return _missing("http")
    lines = _header("request", "connections", "requests/s", "latency p50 / p90 / p99 (ms)",
                    "errors", "server CPU")
    lines += _wrk_rows(
        runs,
        lambda run: (f"`{run['method']} {run['path']}` | {run['connections']} | "
                     f"**{_n(run['requests_per_second'])}**"),
        lambda run: str(sum(run["errors"].values())),
    )
    r = runs[-1]["result"]
    lines += ["", f"Server: {r['server']}, started by {_code(runs[-1]['commands'][0])}; "
              f"`/health` answered {r['health_ready_seconds']:.0f} s after start (a first "
              "start trains a model). Each `/predict` body is a new transaction (unique id, one "
              "of 5,000 users), so every request is validated, scored, stored and applied to "
              "the user's state. Server CPU includes the embedded stream; wrk runs on the same "
              "cores; load is the 1-minute load average before each row. " + _conditions(runs)]
    return "\n".join(lines)


def _batch_cells(data: dict[str, Any]) -> str:
    """The ``/predict/batch`` row of one api run."""
    b = data["result"]["batch"]
    size = f"{b['calls']} × {_n(b['transactions_per_call'])}"
    if b.get("tx_per_second") is None:
        why = (f"endpoint not there (HTTP {b['status']})" if b.get("available") is False
               else f"failed (HTTP {b['status']})" if b.get("status")
               else f"failed: {b.get('error', '?')}")
        return (f"| {size} | {why} | — | — | — | "
                f"{_provenance(data, data['commands'][2])} |")
    lat = b["call_latency_ms"]
    return (f"| {size} | **{_n(b['tx_per_second'])}** | {_n(lat['p50'], 1)} / "
            f"{_n(lat['p99'], 1)} | {_n(b['scored'])} / {_n(b['refused'])} | "
            f"{b['server_cpu_cores']:.2f} cores | "
            f"{_provenance(data, data['commands'][2], load=b)} |")


def _server_exceptions(result: dict[str, Any]) -> str:
    found = result.get("server_exceptions") or {}
    if not found.get("count"):
        return ""
    return (f"; the server logged {_n(found['count'])} exceptions, the last "
            f"{_code(found['last'][:160])}")


def render_api(results: Results) -> str:
    runs = results.get("api", [])
    if not runs:
        return _missing("api")
    lines = _header("connections", "requests/s", "latency p50 / p90 / p99 (ms)", "non-2xx",
                    "socket errors / timeouts", "server CPU")
    lines += _wrk_rows(
        runs,
        lambda run: f"{run['connections']} | **{_n(run['requests_per_second'])}**",
        lambda run: (f"{_n(run['non_2xx'])} | {_n(run['socket_errors'])} / "
                     f"{_n(run['timeouts'])}"),
    )
    lines += ["", "`POST /predict/batch`:", "",
              "| calls × transactions | tx/s | per call p50 / p99 (ms) | scored / refused | "
              "server CPU | load | host probe | machine | how |",
              "|---|---|---|---|---|---|---|---|---|",
              *[_batch_cells(data) for data in runs]]
    last = runs[-1]
    r = last["result"]
    probe = r["probe_request"]
    lines += ["", f"Server: {r['server']}, started by {_code(last['commands'][0])}; "
              f"`/health` answered {r['health_ready_seconds']:.0f} s after start. Body: "
              f"{r['body']}; {_n(r['users'])} users in turn, every transaction id new. A "
              f"single `/predict` with that body before the timed runs (latest run) was "
              f"answered HTTP {probe['status']} in {probe['ms']:.1f} ms"
              + _server_exceptions(r) + ". wrk: "
              f"{_code(last['commands'][1])}; non-2xx is wrk's \"Non-2xx or 3xx responses\", "
              "socket errors its connect, read and write errors. With 20 calls, the batch "
              "p99 is the slowest call. Server CPU includes the embedded stream; the client "
              "runs on the same cores; load is the 1-minute load average before each row. "
              + _conditions(runs)]
    return "\n".join(lines)


def render_headline(results: Results) -> str:
    """The README's few lines: one figure per benchmark (the spread over the kept runs),
    details in docs/performance.md."""
    rows = []
    for key, label in (("core", "scoring core, one core, Isolation Forest"),
                       ("core-ensemble", "scoring core, one core, four-detector ensemble")):
        if results.get(key):
            rows.append((label, _spread([d["result"]["tx_per_second"] for d in results[key]])
                         + " tx/s"))
    if results.get("score"):
        score = [d["result"] for d in results["score"]]
        rows.append((f"`riskstream score`, whole FDH file ({_n(score[-1]['rows'])} rows)",
                     _spread([r["score"]["wall_seconds"] for r in score]) + " s ("
                     + _spread([r["score"]["tx_per_second"] for r in score]) + " tx/s)"))
    if results.get("kafka"):
        kafka = [d["result"] for d in results["kafka"]]
        most = max(t["workers"] for t in kafka[-1]["throughput"])
        rates = [t["tx_per_s"] for r in kafka for t in r["throughput"] if t["workers"] == most]
        rows.append((f"Kafka end to end, {most} workers, PostgreSQL results",
                     f"{_spread(rates)} tx/s; p99 "
                     f"{_spread([r['latency']['p99_ms'] for r in kafka])} ms at "
                     f"{_n(kafka[-1]['latency']['offered_tx_per_s'])} tx/s"))
    if results.get("stores"):
        rows.append(("Redis state + PostgreSQL results, one worker",
                     _spread([d["result"]["tx_per_second"] for d in results["stores"]])
                     + " tx/s"))
    if results.get("http"):
        pred = [run for d in results["http"] for run in d["result"]["runs"]
                if run["path"] == "/predict" and run["connections"] == 4]
        if pred:
            rows.append(("`POST /predict` over HTTP, 4 connections",
                         _spread([r["requests_per_second"] for r in pred]) + " requests/s, p99 "
                         + _spread([r["latency_ms"]["p99"] for r in pred]) + " ms"))
    if not rows:
        return "_No benchmark results yet._"
    everything = [d for runs in results.values() for d in runs]
    machines = sorted({_machine(d) for d in everything})
    probes = [d["speed_probe_seconds_before"] for d in everything
              if d.get("speed_probe_seconds_before") is not None]
    probe = (f"; `sum(range(10**8))` took {_spread(probes, 1)} s around the runs"
             if probes else "")
    targets = _targets(results)
    met = sum(t[3] > 0 for t in targets)
    lines = ["| measured | result |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], "",
             f"{', '.join(machines)}, shared with other work{probe}; {met} of "
             f"{len(targets)} throughput and latency targets met in at least one run. "
             "Commands, load, targets and every run: "
             "[docs/performance.md](docs/performance.md)."]
    return "\n".join(lines)


def _targets(results: Results) -> list[tuple[str, str, str, int, int]]:
    """(benchmark, target, the kept runs' values as text, how many runs met it, how many
    runs) for each target that has runs."""

    def core(key: str) -> list[float]:
        return [d["result"]["tx_per_second"] for d in results.get(key, [])]

    kafka = [d["result"] for d in results.get("kafka", [])]
    stores = [d["result"]["tx_per_second"] for d in results.get("stores", [])]
    two = [t["tx_per_s"] for r in kafka for t in r["throughput"] if t["workers"] == 2]
    p99 = [r["latency"]["p99_ms"] for r in kafka]
    rows = []
    for name, text, values, bar, higher in (
        ("core, Isolation Forest, one core", "≥ 100,000 tx/s", core("core"), 100_000, True),
        ("core, four-detector ensemble, one core", "≥ 50,000 tx/s", core("core-ensemble"),
         50_000, True),
        ("Kafka, 2 workers, PostgreSQL results", "≥ 50,000 tx/s", two, 50_000, True),
        ("Kafka latency, 2 workers at 5,000 tx/s", "p99 ≤ 100 ms", p99, 100, False),
        ("Redis + PostgreSQL pipeline, one worker", "≥ 30,000 tx/s", stores, 30_000, True),
    ):
        if values:
            met = sum(v >= bar if higher else v <= bar for v in values)
            kept = _spread(values, 0 if higher else 1) + (" tx/s" if higher else " ms")
            rows.append((name, text, kept, met, len(values)))
    return rows + _api_targets(results)


def _api_targets(results: Results) -> list[tuple[str, str, str, int, int]]:
    """The inline-decision targets (``api``): one row per kept run and connection count."""
    api = results.get("api", [])
    if not api:
        return []

    def at(conns: int) -> list[dict[str, Any]]:
        return [r for d in api for r in d["result"]["runs"] if r["connections"] == conns]

    rows = []
    eight, one = at(8), at(1)
    if eight:
        met = sum(r["requests_per_second"] >= 2000 and r["latency_ms"]["p99"] <= 10
                  and r["non_2xx"] == 0 for r in eight)
        kept = (f"{_spread([r['requests_per_second'] for r in eight])} requests/s, p99 "
                f"{_spread([r['latency_ms']['p99'] for r in eight], 1)} ms, non-2xx "
                f"{_spread([r['non_2xx'] for r in eight])}")
        rows.append(("`POST /predict`, 8 connections",
                     "≥ 2,000 requests/s with p99 ≤ 10 ms and no non-2xx", kept, met,
                     len(eight)))
    if one:
        p50 = [r["latency_ms"]["p50"] for r in one]
        rows.append(("`POST /predict`, 1 connection", "p50 ≤ 2 ms", _spread(p50, 2) + " ms",
                     sum(v <= 2 for v in p50), len(one)))
    batch = [d["result"]["batch"] for d in api]
    rates = [b["tx_per_second"] for b in batch if b.get("tx_per_second") is not None]
    kept = _spread(rates) + " tx/s" if rates else "—"
    if len(rates) < len(batch):
        kept += f" (not measured in {len(batch) - len(rates)}: endpoint absent or failing)"
    rows.append(("`POST /predict/batch` of 1,000", "≥ 50,000 tx/s", kept,
                 sum(v >= 50_000 for v in rates), len(batch)))
    return rows


def render_targets(results: Results) -> str:
    """Each throughput and latency target against the kept runs."""
    lines = ["| benchmark | target | kept runs | met in |", "|---|---|---|---|"]
    for name, text, kept, met, n in _targets(results):
        lines.append(f"| {name} | {text} | {kept} | {met} of {n} |")
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[Results], str]] = {
    "headline": render_headline,
    "targets": render_targets,
    "core": render_core,
    "score": render_score,
    "kafka": render_kafka,
    "stores": render_stores,
    "http": render_http,
    "api": render_api,
}


def load_results(directory: Path = RESULTS) -> Results:
    """The kept runs of every ``NAME.json`` in ``directory``, oldest first, by ``NAME``."""
    return {p.stem: json.loads(p.read_text())["runs"] for p in sorted(directory.glob("*.json"))}


def render(text: str, results: Results) -> str:
    """``text`` with every marked block replaced by its table; unknown markers raise."""
    pattern = re.compile(r"(<!-- BEGIN report:([\w-]+) -->\n)(.*?)(<!-- END report:\2 -->)",
                         re.S)

    def table(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in RENDERERS:
            raise KeyError(f"no renderer for marker report:{name}")
        return f"{match.group(1)}{RENDERERS[name](results)}\n{match.group(4)}"

    return pattern.sub(table, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("run", help="run one benchmark, write benchmarks/results/NAME.json")
    run.add_argument("name", choices=sorted(RUNNERS))
    run.add_argument("--fdh", type=Path, default=FDH_DEFAULT, help="FDH file (score)")
    sub.add_parser("render", help="rewrite the tables in docs/performance.md")
    sub.add_parser("check", help="exit 1 if docs/performance.md is not what render gives")
    args = parser.parse_args()
    if args.what == "run":
        with tempfile.TemporaryDirectory(prefix=f"rs-bench-{args.name}-") as tmp:
            kwargs = {"fdh": args.fdh} if args.name in FDH_RUNNERS else {}
            probe = speed_probe()
            try:
                data = RUNNERS[args.name](Path(tmp), **kwargs)
            except subprocess.CalledProcessError as exc:
                log = Path(tmp) / "log"
                if log.exists():
                    sys.stderr.write(log.read_text()[-5000:])
                raise SystemExit(f"benchmark failed: {exc}") from exc
        data["speed_probe_seconds_before"] = probe
        print(json.dumps(data, indent=2))
        print(f"wrote {_rel(_write(args.name, data))}", file=sys.stderr)
        return
    results = load_results()
    stale = []
    for path in (DOC, README):
        current = path.read_text()
        rendered = render(current, results)
        if args.what == "render":
            path.write_text(rendered)
        elif rendered != current:
            stale.append(_rel(path))
    if stale:
        raise SystemExit(f"stale: {', '.join(stale)}; run benchmarks/report.py render")


if __name__ == "__main__":
    main()
