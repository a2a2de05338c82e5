"""Inline scoring through the coalescer: concurrent calls share batches, ``/predict/batch``
takes many at once, and a transaction gets the same score on every path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from riskstream.api import create_app
from riskstream.errors import StoreUnavailable
from riskstream.offline import replay
from riskstream.pipeline import Pipeline
from riskstream.transport import Batch, InProcessQueue

T0 = 1_704_067_200


def stream_of(make_tx: Callable[..., dict[str, Any]], users: int = 4, each: int = 10) -> list[
    dict[str, Any]
]:
    """Transactions of a few users, interleaved in time order, one outlier per user."""
    out = []
    for i in range(each):
        for u in range(users):
            out.append(make_tx(
                transaction_id=f"t{u}-{i}", user_id=f"user-{u}", timestamp=T0 + i * 3600 + u,
                amount=2500.0 if i == each - 1 else 40.0 + (i * 7 + u) % 9,
                device_id="evil" if i == each - 1 else f"dev-{u}",
            ))
    return out


def runtime_on(make_runtime: Callable[..., Any], tmp_path: Path, name: str) -> Any:
    return make_runtime(db_url=f"sqlite:///{tmp_path / f'{name}.db'}")


async def post_concurrently(app: Any, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return list(await asyncio.gather(*(client.post("/predict", json=b) for b in bodies)))


def test_concurrent_calls_are_scored_in_shared_batches(
    make_runtime: Callable[..., Any], make_tx: Callable[..., dict[str, Any]]
) -> None:
    app = create_app(make_runtime())
    bodies = [make_tx(transaction_id=f"c{i}", user_id=f"user-{i % 7}", timestamp=T0 + i)
              for i in range(60)]
    responses = asyncio.run(post_concurrently(app, bodies))
    assert [r.status_code for r in responses] == [200] * 60
    assert [r.json()["transaction_id"] for r in responses] == [b["transaction_id"] for b in bodies]
    assert app.state.coalescer.batches < 60  # calls waited for each other, not one by one
    counts = app.state.runtime.results.counts()
    assert counts["transactions"] == 60  # every answered call was stored


def test_same_score_through_predict_batch_stream_and_offline_replay(
    make_runtime: Callable[..., Any], make_tx: Callable[..., dict[str, Any]],
    tiny_bundle: Any, tmp_path: Path,
) -> None:
    txs = stream_of(make_tx)
    one = TestClient(create_app(runtime_on(make_runtime, tmp_path, "one")))
    single = {}
    for tx in txs:
        body = one.post("/predict", json=tx).json()
        single[body["transaction_id"]] = body["anomaly_score"]
    bulk = TestClient(create_app(runtime_on(make_runtime, tmp_path, "bulk")))
    answer = bulk.post("/predict/batch", json=txs).json()
    assert answer["scored"] == len(txs) and answer["refused"] == 0
    batched = {r["transaction_id"]: r["anomaly_score"] for r in answer["results"]}

    rt = runtime_on(make_runtime, tmp_path, "stream")
    Pipeline(rt.core, InProcessQueue(), rt.results, rt.metrics).process(
        Batch(frame=pd.DataFrame(txs), position=1))
    streamed = {r["transaction_id"]: r["score"] for r in rt.results.transactions(limit=1000)}

    offline = replay.score(pd.DataFrame(txs), tiny_bundle)
    replayed = dict(zip(offline["transaction_id"], offline["score"], strict=True))
    for tx in single:
        assert batched[tx] == pytest.approx(single[tx], abs=1e-6)
        assert streamed[tx] == pytest.approx(single[tx], abs=1e-6)
        assert replayed[tx] == pytest.approx(single[tx], abs=1e-6)
    assert max(single.values()) > 0.99  # the outliers are there to be seen, not all alike


def test_predict_batch_answers_each_item_and_refuses_only_the_bad_ones(
    make_runtime: Callable[..., Any], make_tx: Callable[..., dict[str, Any]]
) -> None:
    client = TestClient(create_app(make_runtime()))
    items = [make_tx(transaction_id="ok-1"), make_tx(transaction_id="bad", amount=-5),
             make_tx(transaction_id="ok-2", timestamp=T0 + 60)]
    body = client.post("/predict/batch", json=items).json()
    assert (body["scored"], body["refused"]) == (2, 1)
    refused = body["results"][1]
    assert refused["index"] == 1 and refused["transaction_id"] == "bad"
    assert refused["errors"][0]["loc"] == ["body", 1, "amount"]
    assert [r.get("transaction_id") for r in body["results"]] == ["ok-1", "bad", "ok-2"]
    stored = {r["transaction_id"] for r in client.get("/transactions").json()["items"]}
    assert stored == {"ok-1", "ok-2"}


@pytest.mark.parametrize(
    ("payload", "status"),
    [({"not": "a list"}, 422), ([], 422), ([1, 2], 422), ([{"amount": -1}], 422)],
)
def test_predict_batch_refuses_what_is_not_a_list_of_transactions(
    make_runtime: Callable[..., Any], payload: Any, status: int
) -> None:
    client = TestClient(create_app(make_runtime()))
    assert client.post("/predict/batch", json=payload).status_code == status


def test_predict_batch_caps_the_number_of_transactions(
    make_runtime: Callable[..., Any], make_tx: Callable[..., dict[str, Any]]
) -> None:
    client = TestClient(create_app(make_runtime(predict_batch_max=3)))
    items = [make_tx(transaction_id=f"x{i}") for i in range(4)]
    response = client.post("/predict/batch", json=items)
    assert response.status_code == 422 and "1 to 3" in response.json()["detail"][0]["msg"]


def test_a_repeated_id_in_one_batch_is_scored_once(
    make_runtime: Callable[..., Any], make_tx: Callable[..., dict[str, Any]]
) -> None:
    client = TestClient(create_app(make_runtime()))
    body = client.post("/predict/batch", json=[make_tx(), make_tx()]).json()
    first, again = body["results"]
    assert first["duplicate"] is False and again["duplicate"] is True
    assert again["anomaly_score"] == first["anomaly_score"]
    assert client.get("/users/user-1").json()["profile"]["transactions_seen"] == 1


def test_invalid_json_and_non_objects_are_422_naming_the_body(
    make_runtime: Callable[..., Any],
) -> None:
    client = TestClient(create_app(make_runtime()))
    for raw in (b"{not json", b"[1, 2]", b'"text"', b'{"amount": NaN}'):
        response = client.post("/predict", content=raw,
                               headers={"content-type": "application/json"})
        assert response.status_code == 422, raw
        assert response.json()["detail"][0]["loc"] == ["body"]


def test_a_store_outage_is_a_503_naming_it_and_the_next_call_succeeds(
    make_runtime: Callable[..., Any], make_tx: Callable[..., dict[str, Any]],
) -> None:
    rt = make_runtime()
    rt.results.write_new = _outage_once(rt.results.write_new)
    client = TestClient(create_app(rt))
    down = client.post("/predict", json=make_tx())
    assert down.status_code == 503 and down.json()["detail"].startswith("results unavailable")
    assert down.headers["retry-after"] == "1"
    again = client.post("/predict", json=make_tx())
    assert again.status_code == 200 and again.json()["duplicate"] is False


def _outage_once(write: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreUnavailable("results", "connection refused")
        return write(*args)

    return flaky
