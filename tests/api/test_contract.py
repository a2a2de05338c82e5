"""The ``POST /predict`` contract in ``riskstream.schema``: request examples, the response
model, and 422 items, checked against real scored results and against FastAPI itself (on a
small app of its own, so the contract is tested apart from the routes that use it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, get_args

import pandas as pd
import pytest
from fastapi import Body, FastAPI
from fastapi.testclient import TestClient

from riskstream.features import FEATURES, InMemoryStateStore
from riskstream.models import ModelBundle
from riskstream.schema import (
    ANOMALY_TYPES,
    FIELD_ALIASES,
    PREDICT_REQUEST_EXAMPLES,
    RECEIVED_AT,
    Decision,
    PredictResponse,
    RecordError,
    Transaction,
    error_detail,
    validate_requests,
)
from riskstream.scoring.core import DECISIONS, ScoringCore, Thresholds
from riskstream.scoring.reasons import CODES, FAMILY, anomaly_family, explanation

StreamFactory = Callable[..., pd.DataFrame]  # the make_stream fixture (tests/conftest.py)
TxFactory = Callable[..., dict[str, Any]]  # the make_tx fixture
RECEIVED = 1_704_070_800.0


@pytest.fixture(scope="module")
def results(trained_bundle: ModelBundle, make_stream: StreamFactory) -> list[dict[str, Any]]:
    frame = make_stream(n=300, n_users=30, seed=200, start=1_705_000_000.0)
    frame.loc[frame.index[-5:], "amount"] = [5e3, 2e4, 1e5, 7.5e5, 3e6]
    frame.loc[frame.index[-5:], "device_id"] = "burner"
    scored = ScoringCore(trained_bundle, InMemoryStateStore(), Thresholds(0.9, 0.99)).score(frame)
    return [scored.result(i) for i in range(len(scored))]


@pytest.fixture(scope="module")
def client() -> TestClient:
    """An app with the contract as the routes are meant to use it: the model as the body,
    ``PredictResponse`` as the response model, the examples in OpenAPI."""
    app = FastAPI()

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_unset=True)
    def predict(
        tx: Annotated[Transaction, Body(openapi_examples=PREDICT_REQUEST_EXAMPLES)],
    ) -> dict[str, Any]:
        example = dict(PredictResponse.model_json_schema()["examples"][0])
        del example["duplicate"]  # as on a dry run
        return {**example, "transaction_id": tx.transaction_id, "echo": tx.model_dump()}

    return TestClient(app)


# --- the response model ------------------------------------------------------------------------
def test_every_scored_result_is_a_valid_response(results: list[dict[str, Any]]) -> None:
    assert {r["decision"] for r in results} == {"allow", "review", "block"}
    for res in results:
        recorded = {**res, "duplicate": False}
        for body in (res, recorded):  # a dry run has no duplicate field
            model = PredictResponse.model_validate(body)
            assert model.model_dump(exclude_unset=True) == body
    assert set(PredictResponse.model_fields) == set(results[0]) | {"duplicate"}


def test_response_vocabularies_match_the_core() -> None:
    assert get_args(Decision) == DECISIONS
    assert set(FAMILY.values()) <= set(ANOMALY_TYPES)


def test_response_example_is_a_real_response() -> None:
    [example] = PredictResponse.model_json_schema()["examples"]
    model = PredictResponse.model_validate(example)
    assert model.model_dump() == example
    reasons = example["reasons"]
    assert {r["code"] for r in reasons} <= set(CODES)
    assert set(example["features"]) <= set(FEATURES)
    assert example["anomaly_type"] == anomaly_family(reasons, example["is_anomalous"])
    assert example["explanation"] == explanation(example["decision"], reasons)


def test_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/predict"]["post"]
    content = op["requestBody"]["content"]["application/json"]
    assert set(content["examples"]) == set(PREDICT_REQUEST_EXAMPLES)
    schemas = doc["components"]["schemas"]
    assert schemas["Transaction"]["required"] == ["transaction_id", "user_id", "amount"]
    response = schemas["PredictResponse"]
    assert {"anomaly_type", "explanation", "timestamp"} <= set(response["required"])
    assert response["properties"]["timestamp"]["format"] == "date-time"
    json.dumps(doc)


# --- the request examples ----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PREDICT_REQUEST_EXAMPLES))
def test_request_examples_validate_on_both_paths(name: str) -> None:
    body = PREDICT_REQUEST_EXAMPLES[name]["value"]
    tx = Transaction.model_validate(body, context={RECEIVED_AT: RECEIVED})
    assert tx.model_extra == {}
    batch = validate_requests([body], RECEIVED)
    assert batch.errors == []
    row = batch.valid.iloc[0]
    for field in ("transaction_id", "timestamp", "amount", "merchant_id", "merchant_category",
                  "city", "device_id"):
        assert row[field] == getattr(tx, field), field


def test_common_example_is_the_common_body() -> None:
    common = PREDICT_REQUEST_EXAMPLES["common"]["value"]
    assert set(common) == {"transaction_id", "user_id", "amount", "merchant", "category",
                           "location", "device_id"}
    full = PREDICT_REQUEST_EXAMPLES["full"]["value"]
    assert set(full) == set(Transaction.model_fields)  # canonical names, every one
    assert not set(full) & set(FIELD_ALIASES)


def test_common_body_through_fastapi(client: TestClient) -> None:
    body = PREDICT_REQUEST_EXAMPLES["common"]["value"]
    resp = client.post("/predict", json=body)
    assert resp.status_code == 200
    out = resp.json()
    assert "duplicate" not in out  # unset stays out with response_model_exclude_unset
    assert "echo" not in out  # not a response field
    assert out["transaction_id"] == body["transaction_id"]


# --- 422 items ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "drop"),
    [({"amount": -5}, ()), ({"currency": "XYZ"}, ()), ({}, ("user_id",)),
     ({"merchant": "m-2"}, ()), ({"location": {"lat": 1.0}}, ("city",))],
)
def test_error_detail_matches_fastapi(
    client: TestClient, make_tx: TxFactory, override: dict[str, Any], drop: tuple[str, ...]
) -> None:
    body = make_tx(**override, drop=drop)
    resp = client.post("/predict", json=body)
    assert resp.status_code == 422
    theirs = resp.json()["detail"][0]
    [error] = validate_requests([body], RECEIVED).errors
    ours = error_detail(error)
    assert ours["loc"] == theirs["loc"]
    assert theirs["msg"].removeprefix("Value error, ").startswith(ours["msg"])
    assert set(ours) <= set(theirs)


def test_conflict_is_a_422_naming_the_field(client: TestClient, make_tx: TxFactory) -> None:
    resp = client.post("/predict", json=make_tx(category="travel"))
    assert resp.status_code == 422
    [item] = resp.json()["detail"]
    assert item["loc"] == ["body", "merchant_category"]
    assert "alias 'category'" in item["msg"]


def test_error_detail_of_a_body_that_is_not_an_object() -> None:
    [error] = validate_requests(["nope"], RECEIVED).errors
    assert error_detail(error)["loc"] == ["body"]
    assert error_detail(RecordError(0, "amount", "Field required"))["type"] == "missing"
