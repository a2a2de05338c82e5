"""Scoring inline (``POST /predict``, ``POST /predict/batch``) and the scored history.

Both scoring endpoints parse the body themselves (orjson) and hand the records to the app's
:class:`~riskstream.api.coalesce.Coalescer`, which scores concurrent calls together with the
one core and records them through the stream's write path; validation is the stream's
column-wise validator, so a field is refused the same way on every path. The request schema
in the OpenAPI document is :class:`~riskstream.schema.Transaction`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from riskstream.api.coalesce import Coalescer, Outcome
from riskstream.api.deps import Auth, FiltersDep, RuntimeDep, clean
from riskstream.schema import PREDICT_REQUEST_EXAMPLES, PredictResponse, Transaction

router = APIRouter()

DryRun = Annotated[bool, Query(description="score without recording (no state change)")]


def _body_schema(schema: dict[str, Any], examples: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = examples
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


_TRANSACTION = Transaction.model_json_schema(ref_template="#/components/schemas/{model}")


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def _unprocessable(detail: list[dict[str, Any]]) -> HTTPException:
    return HTTPException(422, detail=detail)


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _unprocessable(
            [{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]
        ) from None


def _object(value: Any, loc: list[str | int]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unprocessable(
            [{"loc": loc, "msg": "must be a JSON object (one transaction)", "type": "dict_type"}]
        )
    return value


def coalescer(request: Request) -> Coalescer:
    found: Coalescer = request.app.state.coalescer
    return found


@router.post(
    "/predict",
    response_model=PredictResponse,
    openapi_extra=_body_schema(_TRANSACTION, PREDICT_REQUEST_EXAMPLES),
    responses={422: {"description": "a field is invalid (named in ``detail[].loc``)"}},
)
async def predict(request: Request, _: Auth, dry_run: DryRun = False) -> Response:
    """Score one transaction with the stream's core; unless ``dry_run``, it is stored, and the
    user's state updated, before the answer is sent (``duplicate``: stored already)."""
    record = _object(_parse(await request.body()), ["body"])
    [outcome] = await coalescer(request).submit([record], dry_run)
    if outcome.errors:
        raise _unprocessable(outcome.errors)
    return _json(outcome.result)


@router.post(
    "/predict/batch",
    openapi_extra=_body_schema({"type": "array", "items": _TRANSACTION}),
    responses={422: {"description": "not a list of objects, too many, or every one invalid"}},
)
async def predict_batch(
    request: Request, _: Auth, runtime: RuntimeDep, dry_run: DryRun = False
) -> Response:
    """Score up to ``RISKSTREAM_PREDICT_BATCH_MAX`` transactions in one call, with the same
    core and writes as ``/predict``. ``results`` follows the input order: each item is the
    transaction's result, or ``{"index", "transaction_id", "errors"}`` if it was refused;
    200 when at least one was scored."""
    items = _parse(await request.body())
    if isinstance(items, dict) and isinstance(items.get("transactions"), list):
        items = items["transactions"]
    if not isinstance(items, list):
        raise _unprocessable(
            [{"loc": ["body"], "msg": "must be a JSON array of transactions", "type": "list_type"}]
        )
    limit = runtime.settings.predict_batch_max
    if not 1 <= len(items) <= limit:
        raise _unprocessable([{"loc": ["body"], "msg": f"1 to {limit} transactions per call",
                               "type": "too_long"}])
    records = [_object(item, ["body", i]) for i, item in enumerate(items)]
    outcomes = await coalescer(request).submit(records, dry_run)
    results = [_batch_item(i, r, o) for i, (r, o) in enumerate(zip(records, outcomes, strict=True))]
    refused = sum(1 for o in outcomes if o.errors)
    body = {"results": results, "scored": len(results) - refused, "refused": refused}
    return _json(body, 422 if refused == len(results) else 200)


def _batch_item(index: int, record: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    if outcome.result is not None:
        return outcome.result
    errors = [{**e, "loc": ["body", index, *e["loc"][1:]]} for e in outcome.errors]
    return {"index": index, "transaction_id": record.get("transaction_id"), "errors": errors}


@router.get("/transactions")
def transactions(_: Auth, runtime: RuntimeDep, q: FiltersDep) -> dict[str, Any]:
    rows = runtime.results.transactions(**q.query())
    return {"items": [clean(r) for r in rows], "limit": q.limit, "offset": q.offset}
