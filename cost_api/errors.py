"""The domain's errors, in the product's terms: a bad parameter, an unpriced model, an exceeded or
unreadable budget. Raised anywhere below the web edge, which alone turns each into a problem
document with its status (web/problems.py)."""

from __future__ import annotations

from typing import Any


class CostApiError(Exception):
    """A problem a caller can act on; `extra`: members its problem document adds."""

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class BadParameter(CostApiError):
    """A parameter (or a field of a body) that cannot be used as given: a 400 naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Unpriced(CostApiError):
    """No entry of the price table matches a model that was asked about: a 404."""


class BudgetExceeded(CostApiError):
    """A budget that applies to the call is spent: a 422, before the provider is called."""


class RetryLater(CostApiError):
    """An answer that cannot be given now but will be soon: a 503 with Retry-After, of the problem type
    and title its class names (None: the plain 503's)."""

    type_: str | None = None
    title: str | None = None

    def __init__(self, detail: str, *, retry_after: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra=extra)
        self.retry_after = retry_after


class WarmingUp(RetryLater):
    """The rollups are still reading the log after a start, and the answer would read more of it in SQL
    than can end in time."""

    type_ = "warming-up"
    title = "Warming up"


class BudgetsStale(RetryLater):
    """The budget figures are too old to answer and the fail mode is closed."""
