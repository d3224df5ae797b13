"""Rates as billed: a price's rates with the absent cache rates filled in, and a logged service tier
as priced. Rates are USD per 1,000,000 tokens."""

from __future__ import annotations

from dataclasses import dataclass

from cost_api.pricing.file import Price, Tier, TierPrice

__all__ = ["Rates", "resolve_rates", "service_tier"]


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens; absent cache rates already resolved (to `input`; 1-hour writes to `cache_write`)."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    cache_write_1h: float


def resolve_rates(rates: Price | Tier | TierPrice) -> Rates:
    """The rates as billed: an absent cache rate is the input rate, an absent 1-hour write rate the
    (5-minute) cache-write rate, as a log without `cache_write_1h_tokens` bills those writes."""
    cache_write = rates.input if rates.cache_write is None else rates.cache_write
    return Rates(
        input=rates.input,
        output=rates.output,
        cache_read=rates.input if rates.cache_read is None else rates.cache_read,
        cache_write=cache_write,
        cache_write_1h=cache_write if rates.cache_write_1h is None else rates.cache_write_1h,
    )


def service_tier(value: str | None) -> str | None:
    """A logged `service_tier` as priced: None for standard (NULL, blank, `standard`, or OpenAI's
    `default`), else lower case. The SQL queries apply the same rule."""
    tier = (value or "").strip().lower()
    return None if tier in ("", "standard", "default") else tier
