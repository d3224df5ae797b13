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
from typing import TYPE_CHECKING, Annotated, Literal, cast

import msgspec
from msgspec import Meta

from cost_api.aggregation.aggregator import Aggregator, Filters, TokenDirectory
from cost_api.aggregation.blocks import (
    AsOf,
    Block,
    DataQuality,
    Instant,
    LatestRequestAt,
    Money,
    PricingCoverage,
    TimeRange,
    data_quality,
    money,
    pricing_coverage,
    time_range,
)
from cost_api.aggregation.groups import QUALITY, Groups
from cost_api.errors import BadParameter
from cost_api.windows import Window, iso

if TYPE_CHECKING:
    from cost_api.store.result import Rows

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


# why a row is in no figure: a bad group's data_quality reason, or a date past the cutoff
Excluded = Literal["negative_tokens", "missing_provider_or_model", "future_created_at"]


class RequestRow(Block):
    """One row of the log, priced as every aggregate prices it (the fields of COLUMNS, in this order)."""

    id: int
    created_at: Instant
    request_id: str | None
    provider: Annotated[str | None, Meta(description="as logged; null or empty only in an excluded row")]
    model: Annotated[str | None, Meta(description="as logged; null or empty only in an excluded row")]
    endpoint: str
    token: Annotated[str, Meta(description="prefix… or anonymous, never the id")]
    name: Annotated[str | None, Meta(description="the api_tokens name")]
    status_code: int | None
    streamed: bool | None
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    service_tier: Annotated[str, Meta(description="lower case; standard for NULL")]
    usage_exact: bool
    cache_hit: bool
    prompt_tokens_avoided: int
    completion_tokens_avoided: int
    latency_ms: int | None
    cache_key: Annotated[str | None, Meta(description="its first 12 characters")]
    priced_as: Annotated[str | None, Meta(description="the price entry matched, provider/model; null: unpriced")]
    cost: Annotated[Money | None, Meta(description="0 for a cache hit; null when unpriced or excluded")]
    saved: Annotated[Money | None, Meta(description="what a cache hit avoided; 0 for a miss; null as cost")]
    excluded: Annotated[
        Excluded | None,
        Meta(description="the data_quality reason a row in no figure is counted under; null: counted"),
    ]


COLUMNS = tuple(f.encode_name for f in msgspec.structs.fields(RequestRow))  # the CSV's, the JSON's order


class Requests(Block):
    """GET /v1/requests."""

    range: TimeRange
    items: list[RequestRow]
    next: Annotated[str | None, Meta(description="the cursor of the next page; null on the last page")]
    pricing: PricingCoverage
    data_quality: DataQuality
    as_of: AsOf
    latest_request_at: LatestRequestAt


def _items(rows: Rows, priced: Groups, directory: TokenDirectory, cutoff: datetime) -> list[RequestRow]:
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
        # a bad group's quality names one of QUALITY's reasons past `ok`: the first two of Excluded
        bad = cast(Excluded, QUALITY[quality]) if quality else None
        excluded: Excluded | None = bad or ("future_created_at" if at > cutoff else None)
        entry = 0 if excluded else int(priced.priced_as[i])
        items.append(
            RequestRow(
                id=row_id,
                created_at=iso(at),
                request_id=request_id,
                provider=provider,
                model=model,
                endpoint=endpoint,
                token=token,
                name=name,
                status_code=status,
                streamed=None if streamed is None else bool(streamed),
                prompt_tokens=p,
                completion_tokens=c,
                cache_read_tokens=cr,
                cache_write_tokens=cw,
                cache_write_1h_tokens=cw1h,
                service_tier=tier or "standard",
                usage_exact=not estimated,
                cache_hit=bool(hit),
                prompt_tokens_avoided=pa,
                completion_tokens_avoided=ca,
                latency_ms=latency,
                cache_key=None if cache_key is None else cache_key[:12],
                priced_as=vocab.value(entry) if entry else None,
                cost=money(priced.spend[i]) if entry else None,
                saved=money(priced.saved[i]) if entry else None,
                excluded=excluded,
            )
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


async def requests_answer(
    agg: Aggregator, window: Window, *, limit: int, cursor: str | None, filters: Filters
) -> Requests:
    c_at, c_id = decode_cursor(cursor) if cursor else (window.range.end, 0)
    directory = await agg.tokens()
    rows, priced = await agg.request_page(window.range, c_at, c_id, limit + 1, filters, directory)
    groups = await agg.groups(window.range, filters=filters, directory=directory)
    fresh = await agg.freshness()
    last = rows[limit - 1] if len(rows) > limit else None  # more rows follow this one
    return Requests(
        range=time_range(window.range),
        items=_items(rows, priced, directory, fresh.cutoff)[:limit],
        next=None if last is None else encode_cursor(int(last[rows.at("created_at_us")]), int(last[rows.at("id")])),
        pricing=pricing_coverage(groups, agg.pricing),
        data_quality=data_quality(groups, fresh),
        as_of=iso(fresh.now),
        latest_request_at=iso(fresh.latest) if fresh.latest else None,
    )
