"""GET /v1/requests — the rows behind any number: newest first, each priced as a group of one (the
pricing every answer's groups get), keyset-paginated.

The cursor is opaque to clients: base64url (unpadded) of the JSON `[created_at_us, id]` of the last
row of a page (epoch microseconds: Postgres keeps them, and a keyset position must be exact).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cost_api.aggregation.aggregator import (
    Aggregator,
    Filters,
    TokenDirectory,
    data_quality_block,
    money,
    pricing_block,
)
from cost_api.aggregation.groups import QUALITY, Groups
from cost_api.errors import BadParameter
from cost_api.windows import Window, iso

if TYPE_CHECKING:
    from cost_api.store.result import Rows

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


def _items(rows: Rows, priced: Groups, directory: TokenDirectory, cutoff: datetime) -> list[dict[str, Any]]:
    """The audit rows, each with its price as a group of one (`priced`, in the rows' order). A row every
    figure leaves out (a bad row, or one dated after `cutoff`) is priced as nothing, and `excluded`
    says why (the `data_quality` reason it is counted under)."""
    vocab = priced.vocab
    items = []
    for i, row in enumerate(rows.pick(*_READ)):
        (row_id, created_us, request_id, provider, model, endpoint, token_id, status, streamed) = row[:9]
        p, c, cr, cw, cw1h, tier, estimated, hit, pa, ca, latency, cache_key, quality = row[9:]
        at = _instant(int(created_us))
        token, name = directory.display(token_id)
        excluded = QUALITY[quality] if quality else "future_created_at" if at > cutoff else None
        entry = 0 if excluded else int(priced.priced_as[i])
        items.append(
            {
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
                "priced_as": vocab.value(entry) if entry else None,
                "cost": money(priced.spend[i]) if entry else None,
                "saved": money(priced.saved[i]) if entry else None,
                "excluded": excluded,
            }
        )
    return items


# the `request_rows` columns an item shows, in `_items`' order
_READ = (
    "id",
    "created_at_us",
    "request_id",
    "provider",
    "model",
    "endpoint",
    "token_id",
    "status_code",
    "streamed",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "tier",
    "estimated_requests",
    "cache_hit",
    "prompt_tokens_avoided",
    "completion_tokens_avoided",
    "latency_ms",
    "cache_key",
    "quality",
)


async def requests(
    agg: Aggregator, window: Window, *, limit: int, cursor: str | None, filters: Filters
) -> dict[str, Any]:
    c_at, c_id = decode_cursor(cursor) if cursor else (window.range.end, 0)
    directory = await agg.tokens()
    rows, priced = await agg.request_page(window.range, c_at, c_id, limit + 1, filters, directory)
    groups = await agg.groups(window.range, filters=filters, directory=directory)
    fresh = await agg.freshness()
    last = rows[limit - 1] if len(rows) > limit else None  # more rows follow this one
    return {
        "range": window.range.as_json(),
        "items": _items(rows, priced, directory, fresh.cutoff)[:limit],
        "next": None if last is None else encode_cursor(int(last[rows.at("created_at_us")]), int(last[rows.at("id")])),
        "pricing": pricing_block(groups, agg.pricing),
        "data_quality": data_quality_block(groups, fresh),
        "as_of": iso(fresh.now),
        "latest_request_at": iso(fresh.latest) if fresh.latest else None,
    }
