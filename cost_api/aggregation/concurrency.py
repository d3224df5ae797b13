"""Running several reads of one answer side by side, and leaving nothing running when one fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def gather_or_cancel(*aws: Awaitable[T]) -> list[T]:
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
