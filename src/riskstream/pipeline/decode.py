"""Raw messages -> a records frame, and dead letters for what cannot be decoded.

A dead letter names the field and the rule that failed and keeps the payload (cut to
:data:`TOO_LARGE_KEEP` bytes for a message over the size limit), so nothing is dropped
silently.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pandas as pd

from riskstream.schema import CANONICAL_COLUMNS
from riskstream.transport.base import Batch

#: A too-large message keeps this much of itself in its dead letter's stored payload.
TOO_LARGE_KEEP = 8192


def decode(
    batch: Batch, max_message_bytes: int | None = None
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Raw batch -> (records frame, dead letters for undecodable messages).

    Messages longer than ``max_message_bytes`` (if given) are dead-lettered unread.
    """
    frame, letters, _, _ = decode_indexed(batch, max_message_bytes)
    return frame, letters


def decode_indexed(
    batch: Batch, max_message_bytes: int | None = None
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[int], np.ndarray]:
    """:func:`decode`, plus the origin of each letter and of each frame row: the index of its
    message in ``batch.messages`` (-1 for rows of ``batch.frame``)."""
    letters: list[dict[str, Any]] = []
    letter_msgs: list[int] = []
    frames = [] if batch.frame is None else [batch.frame]
    row_msgs = [] if batch.frame is None else [np.full(len(batch.frame), -1, dtype=np.int64)]
    if batch.messages:
        records, kept = [], []
        for i, raw in enumerate(batch.messages):
            if max_message_bytes is not None and len(raw) > max_message_bytes:
                reason = f"too large: {len(raw)} bytes > {max_message_bytes}"
                letters.append(dead_letter(batch, "message", reason, raw[:TOO_LARGE_KEEP]))
                letter_msgs.append(i)
                continue
            try:
                value = orjson.loads(raw)
                if not isinstance(value, dict):
                    raise ValueError("message must be a JSON object")
                records.append(value)
                kept.append(i)
            except (orjson.JSONDecodeError, ValueError) as exc:
                letters.append(dead_letter(batch, "message", f"invalid JSON: {exc}", raw))
                letter_msgs.append(i)
        if records:
            frames.append(pd.DataFrame.from_records(records))
            row_msgs.append(np.asarray(kept, dtype=np.int64))
    frame = (
        pd.concat(frames, ignore_index=True)
        if len(frames) > 1
        else (frames[0] if frames else pd.DataFrame(columns=list(CANONICAL_COLUMNS)))
    )
    rows = np.concatenate(row_msgs) if row_msgs else np.empty(0, dtype=np.int64)
    return frame, letters, letter_msgs, rows


def dead_letter(
    batch: Batch, field_: str, reason: str, payload: Any, tx: str | None = None
) -> dict[str, Any]:
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    elif not isinstance(payload, str):
        payload = orjson.dumps(payload, default=str).decode()
    return {
        "received_at": time.time(),
        "source": batch.source,
        "field": field_,
        "reason": reason,
        "transaction_id": tx,
        "payload": payload,
    }


