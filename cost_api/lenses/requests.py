"""GET /v1/requests — the rows behind any number: newest first, priced one by one, keyset-paginated.

The cursor is opaque to clients: base64url (unpadded) of the JSON `[created_at_us, id]` of the last
row of a page (epoch microseconds: Postgres keeps them, and a keyset position must be exact).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cost_api.aggregation.aggregator import (
    Aggregator,
    Filters,
    TokenDirectory,
    data_quality_block,
    money,
    pricing_block,
)
from cost_api.aggregation.groups import QUALITY
from cost_api.errors import BadParameter
from cost_api.pricing.table import PriceTable
from cost_api.windows import Window, iso

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = (
    "id",
    "created_at",
    "request_id",
    "provider",
    "model",
    "endpoint",
    "token",
    "name",
    "status_code",
    "streamed",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "service_tier",
    "usage_exact",
    "cache_hit",
    "prompt_tokens_avoided",
    "completion_tokens_avoided",
    "latency_ms",
    "cache_key",
    "priced_as",
    "cost",
    "saved",
    "excluded",
)


def _instant(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def encode_cursor(created_at_us: int, row_id: int) -> str:
    raw = json.dumps([created_at_us, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The keyset position a `next` cursor names, or a 400 naming `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at_us, row_id = json.loads(raw)
        if type(created_at_us) is not int or type(row_id) is not int or not -(2**63) <= row_id < 2**63:
            raise ValueError
        return _instant(created_at_us), row_id
    except (binascii.Error, ValueError, TypeError, OverflowError) as exc:
        raise BadParameter(
            "cursor", "not a cursor this API issued; pass the `next` value of the previous page as is"
        ) from exc


def _item(row: tuple[Any, ...], directory: TokenDirectory, pricing: PriceTable, cutoff: datetime) -> dict[str, Any]:
    """One audit row. A row every figure leaves out (a bad row, or one dated after `cutoff`) is priced
    as nothing, and `excluded` says why (the `data_quality` reason it is counted under)."""
    (row_id, created_us, request_id, provider, model, endpoint, token_id, status, streamed) = row[:9]
    p, c, cr, cw, hit, pa, ca, latency, cache_key, quality, cw1h, tier, estimated = row[9:]
    at = _instant(int(created_us))
    token, name = directory.display(token_id)
    excluded = QUALITY[quality] if quality else "future_created_at" if at > cutoff else None
    entry = None if excluded else pricing.match(provider, model)
    cost = saved = None
    if entry is not None:
        cost = 0.0 if hit else money(pricing.cost(entry, at, int(p), int(c), int(cr), int(cw), int(cw1h), tier))
        saved = money(pricing.saved(entry, at, int(pa), int(ca), tier)) if hit else 0.0
    return {
        "id": row_id,
        "created_at": iso(at),
        "request_id": request_id,
        "provider": provider,
        "model": model,
        "endpoint": endpoint,
        "token": token,
        "name": name,
        "status_code": status,
        "streamed": None if streamed is None else bool(streamed),
        "prompt_tokens": p,
        "completion_tokens": c,
        "cache_read_tokens": cr,
        "cache_write_tokens": cw,
        "cache_write_1h_tokens": cw1h,
        "service_tier": tier or "standard",
        "usage_exact": not estimated,
        "cache_hit": bool(hit),
        "prompt_tokens_avoided": pa,
        "completion_tokens_avoided": ca,
        "latency_ms": latency,
        "cache_key": None if cache_key is None else cache_key[:12],
        "priced_as": None if entry is None else entry.key,
        "cost": cost,
        "saved": saved,
        "excluded": excluded,
    }


async def requests(
    agg: Aggregator, window: Window, *, limit: int, cursor: str | None, filters: Filters
) -> dict[str, Any]:
    c_at, c_id = decode_cursor(cursor) if cursor else (window.range.end, 0)
    directory = await agg.tokens()
    rows = await agg.request_page(window.range, c_at, c_id, limit + 1, filters, directory)
    page = rows[:limit]
    groups = await agg.groups(window.range, filters=filters, directory=directory)
    fresh = await agg.freshness()
    more = len(rows) > limit
    return {
        "range": window.range.as_json(),
        "items": [_item(row, directory, agg.pricing, fresh.cutoff) for row in page],
        "next": encode_cursor(int(page[-1][1]), int(page[-1][0])) if more else None,
        "pricing": pricing_block(groups, agg.pricing),
        "data_quality": data_quality_block(groups, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }
