"""The 422 problem `GET /v1/budgets/check` answers once a budget of the endpoint is exceeded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from cost_api.errors import BudgetExceeded

if TYPE_CHECKING:
    from cost_api.watch.budgets import BudgetStatus


def _usd(value: float) -> str:
    return "$" + f"{value:,.6f}".rstrip("0").rstrip(".")


def budget_exceeded(
    endpoint: str,
    exceeded: list[BudgetStatus],
    items: list[BudgetStatus],
    age: float | None,
    stale: bool,
) -> BudgetExceeded:
    """The 422 problem, naming the exceeded budget that resets last (the one that decides when calls
    are allowed again); `budgets` lists every budget of the endpoint."""
    worst = max(exceeded, key=lambda item: item.resets_at)
    assert worst.spent is not None  # exceeded: it has a figure
    return BudgetExceeded(
        f"{endpoint} has spent {_usd(worst.spent)} of its {_usd(worst.limit_usd)} "
        f"{worst.period} budget; it resets at {worst.resets_at}",
        extra={
            "endpoint": endpoint,
            "period": worst.period,
            "limit_usd": worst.limit_usd,
            "spent": worst.spent,
            "resets_at": worst.resets_at,
            "budgets": msgspec.to_builtins(items),
            "age_seconds": age,
            "stale": stale,
        },
    )
