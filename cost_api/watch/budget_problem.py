"""The budget answers: `GET /v1/budgets`, the check's 200, and the 422 problem the check answers once a
budget that applies to the call is exceeded — the endpoint's, the token's, or one of its tags' (a
team's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from cost_api.aggregation.blocks import Block, Instant, Money, Pct
from cost_api.errors import BudgetExceeded

AgeSeconds = Annotated[
    Annotated[float, Meta(ge=0)] | None,
    Meta(description="how old the figures are, in seconds; null: not read since start-up"),
]


class BudgetStatus(Block):
    """One budget in its current period, as of the tracker's last refresh."""

    endpoint: Annotated[str | None, Meta(description="the endpoint capped (an endpoint budget), else null")]
    token: Annotated[str | None, Meta(description="the token capped, shown by its prefix (a token budget)")]
    tag: Annotated[str | None, Meta(description="the tag value capped, `key:value` (a tag budget)")]
    seen: Annotated[
        bool | None,
        Meta(
            description="whether the log has the endpoint, api_tokens the token, a token the tag; null: not looked yet"
        ),
    ]
    period: Literal["day", "week", "month"]
    period_start: Instant
    resets_at: Instant
    limit_usd: Money
    spent: Annotated[Money | None, Meta(description="null: no figure yet")]
    remaining: Annotated[Annotated[Money, Meta(ge=0)] | None, Meta(description="limit_usd − spent, never below 0")]
    used_pct: Pct | None
    unpriced_requests: int | None
    status: Literal["ok", "warning", "exceeded", "unknown"]
    projected: Annotated[
        Money | None, Meta(description="spent + the expected spend of the rest of the period (docs/forecast.md)")
    ]
    projected_exceed_at: Annotated[
        Instant | None, Meta(description="when spend is projected to reach the limit; null: not before resets_at")
    ]


class BudgetOverview(Block):
    """GET /v1/budgets: every configured budget, in configuration order."""

    items: list[BudgetStatus]
    age_seconds: AgeSeconds
    stale: Annotated[bool, Meta(description="older than budget_max_age")]


class BudgetCheck(Block):
    """GET /v1/budgets/check while calls are allowed (an exceeded budget is a 422 problem instead)."""

    allowed: Literal[True]
    budgets: Annotated[
        list[BudgetStatus], Meta(description="every budget that applies: the endpoint's, the token's, its tags'")
    ]
    age_seconds: AgeSeconds
    stale: Annotated[bool, Meta(description="older than budget_max_age: allowed because the fail mode is open")]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who checks: the endpoint, the token as shown (None: anonymous), the tags it carries now."""

    endpoint: str
    token: str | None
    tags: dict[str, str]


def _usd(value: float) -> str:
    return "$" + f"{value:,.6f}".rstrip("0").rstrip(".")


def capped(item: BudgetStatus) -> str:
    """What a budget caps, in words: `/agent`, `token sk-live-a1b…`, `tag team:search`."""
    if item.token is not None:
        return f"token {item.token}"
    if item.tag is not None:
        return f"tag {item.tag}"
    return str(item.endpoint)


def budget_exceeded(
    caller: Caller,
    exceeded: list[BudgetStatus],
    items: list[BudgetStatus],
    age: float | None,
    stale: bool,
) -> BudgetExceeded:
    """The 422 problem. `period`, `limit_usd`, `spent` and `resets_at` are those of the exceeded budget
    that resets last (the one that decides when calls are allowed again); `exceeded` names every
    exceeded budget (its `endpoint`, `token` or `tag`), `budgets` lists every budget that applies."""
    worst = max(exceeded, key=lambda item: item.resets_at)
    assert worst.spent is not None  # exceeded: it has a figure
    spent = "; ".join(
        f"{capped(item)} has spent {_usd(item.spent or 0.0)} of its {_usd(item.limit_usd)} {item.period} budget"
        for item in exceeded
    )
    resume = "it resets" if len(exceeded) == 1 else "calls resume"
    return BudgetExceeded(
        f"{spent}; {resume} at {worst.resets_at}",
        extra={
            "endpoint": caller.endpoint,
            "token": caller.token,
            "tags": caller.tags,
            "period": worst.period,
            "limit_usd": worst.limit_usd,
            "spent": worst.spent,
            "resets_at": worst.resets_at,
            "exceeded": msgspec.to_builtins(exceeded),
            "budgets": msgspec.to_builtins(items),
            "age_seconds": age,
            "stale": stale,
        },
    )
