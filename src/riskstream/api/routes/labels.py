"""Outcome labels: ``POST /labels`` (one, or many at once) and ``GET /labels/{id}``.

A label is the truth about a transaction learnt after the fact (a chargeback, a customer
report, an analyst's verdict). Stored with the time it was reported, idempotently (re-sending
changes nothing), and folded into the label-aware features from the next batch on; a label
for a transaction not seen yet waits for it. Bad items are refused one by one, naming the
field; the rest go in.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from riskstream.api.deps import Auth, RuntimeDep, iso
from riskstream.storage.outcomes import alert_quality_summary

router = APIRouter()

#: Labels per call: a day of a large issuer's chargebacks in one request.
MAX_LABELS = 100_000
_ITEM = {
    "type": "object",
    "required": ["transaction_id", "label"],
    "properties": {
        "transaction_id": {"type": "string", "maxLength": 128},
        "label": {"description": "1 / 0, true / false, or fraud / legitimate",
                  "examples": [1, "fraud"]},
        "reported_at": {"description": "ISO-8601 with a zone or epoch seconds; default now",
                        "examples": ["2024-01-08T09:30:00Z"]},
        "source": {"type": "string", "maxLength": 32, "examples": ["chargebacks"]},
    },
}
_BODY = {"oneOf": [_ITEM, {"type": "array", "items": _ITEM},
                   {"type": "object", "properties": {"labels": {"type": "array",
                                                                "items": _ITEM}}}]}


def _refuse(msg: str, loc: list[str | int] | None = None) -> HTTPException:
    return HTTPException(422, detail=[{"loc": loc or ["body"], "msg": msg}])


def _items(body: bytes) -> list[Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _refuse(f"invalid JSON: {exc}") from None
    if isinstance(value, dict) and "labels" in value:
        value = value["labels"]
    elif isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise _refuse("must be a label object, a JSON array of them, or {\"labels\": [...]}")
    if not 1 <= len(value) <= MAX_LABELS:
        raise _refuse(f"1 to {MAX_LABELS} labels per call")
    return value


@router.post(
    "/labels",
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/json": {"schema": _BODY}}}},
    responses={422: {"description": "not JSON, not labels, or every label invalid"}},
)
async def post_labels(request: Request, _: Auth, runtime: RuntimeDep) -> Response:
    """Store outcome labels; ``new`` / ``updated`` / ``unchanged`` say what each did, and
    ``errors`` name the field of each refused item (200 when at least one was accepted)."""
    items = _items(await request.body())
    done = runtime.ingest_labels(items, "api")
    errors = done.pop("errors")
    if not done["accepted"]:
        raise HTTPException(422, detail=[{"loc": ["body", e["index"], e["field"]],
                                          "msg": e["reason"]} for e in errors[:100]])
    body = {"received": len(items), **done, "rejected": len(errors), "errors": errors[:1000]}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/labels/quality")
def label_quality(
    _: Auth, runtime: RuntimeDep, days: Annotated[int, Query(ge=1, le=366)] = 14
) -> dict[str, Any]:
    """Alert quality learnt from outcome labels, per UTC day of transaction time (the last
    ``days``, today included): alerts, those resolved (with an outcome), confirmed fraud,
    ``precision``; frauds reported, alerted, missed, ``recall``; and the window's totals."""
    return alert_quality_summary(runtime.results, days)


@router.get("/labels/{transaction_id}")
def get_label(transaction_id: str, _: Auth, runtime: RuntimeDep) -> dict[str, Any]:
    """The stored outcome label of a transaction (404 if none), and whether the online
    label-aware state holds it yet."""
    row = runtime.results.get_label(transaction_id)
    if row is None:
        raise HTTPException(404, detail=f"no label for transaction {transaction_id!r}")
    return {
        "transaction_id": transaction_id,
        "label": int(row["label"]),
        "reported_at": iso(float(row["reported_at"])),
        "source": row["source"],
        "applied": row["applied"] == row["label"],
    }
