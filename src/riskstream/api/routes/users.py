"""A user's learned profile and latest transactions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException

import riskstream.features.spec as S
from riskstream.api.deps import Auth, RuntimeDep, clean, iso

router = APIRouter()

#: The most recent transactions ``GET /users/{id}`` returns at most.
MAX_RECENT = 200


@router.get("/users/{user_id}")
def user(user_id: str, _: Auth, runtime: RuntimeDep, recent: int = 20) -> dict[str, Any]:
    rec = runtime.core.state.get("user", user_id)
    if rec is None:
        raise HTTPException(404, detail=f"unknown user {user_id!r}")
    hours = rec[S.U_HOURS : S.U_HOURS + 24]
    profile = {
        "transactions_seen": int(rec[S.U_N]),
        "usual_amount": round(math.expm1(rec[S.U_MEAN]), 2),
        "amount_spread_log": round(math.sqrt(max(rec[S.U_VAR], 0.0)), 4),
        "last_seen": iso(float(rec[S.U_LAST_TS])),
        "last_location": None
        if rec[S.U_LOC_TS] == 0
        else {"lat": rec[S.U_LAT], "lon": rec[S.U_LON]},
        "usual_hours_utc": [int(h) for h in np.argsort(-hours)[:3] if hours[h] > 0],
        "known_devices": int(np.count_nonzero(rec[S.U_DEV : S.U_DEV + S.N_DEV])),
        "known_merchants": int(np.count_nonzero(rec[S.U_MER : S.U_MER + S.N_MER])),
        "known_countries": int(np.count_nonzero(rec[S.U_CTY : S.U_CTY + S.N_CTY])),
        "tx_last_24h_decayed": round(float(rec[S.U_C24H]), 3),
    }
    rows = runtime.results.transactions(user_id=user_id, limit=max(1, min(recent, MAX_RECENT)))
    return {"user_id": user_id, "profile": profile, "recent": [clean(r) for r in rows]}
