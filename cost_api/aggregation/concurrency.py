"""Running several reads of one answer side by side, and leaving nothing running when one fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar, overload

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")


# Two reads of different kinds typed one by one, as `asyncio.gather`'s stub does (a list at run time,
# unpacked by every caller of this form)
@overload
async def gather_or_cancel(first: Awaitable[T1], second: Awaitable[T2], /) -> tuple[T1, T2]: ...
@overload
async def gather_or_cancel(*aws: Awaitable[T]) -> list[T]: ...
async def gather_or_cancel(*aws: Awaitable[Any]) -> Any:
    """`asyncio.gather`, except that the first failure (a 504, a 503) cancels the other queries and
    waits until they have stopped before it is raised: a failed request leaves no query running.
    Cancelled itself, it waits the same way (plain `gather` returns at the first child cancelled),
    and cancels each query once: a second cancel would cut short its clean-up (closing the
    connection it was opening, waiting for the query it was running)."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            if not task.cancelling():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
