"""Running several reads of one answer side by side, and leaving nothing running when one fails; and
sharing one read among the callers that wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, overload

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


class SharedRead(Generic[T]):
    """`read()`, each call answered by a read that began after the call was made: its own, or one that
    began while it waited, shared by every call waiting then. Six reads of one summary made at once
    run two reads (the first, and one for the five that arrived while it ran), one after the other,
    instead of six at once; none is answered by a read older than itself. With `since` (a `ticket()`
    taken when the answer arrived), a read that began after the ticket serves the call: the six reads
    of one summary then share the first. A read that fails (a database down or locked) fails every
    call waiting when it ended: each would otherwise wait out the same failure in turn, past its
    request's deadline. A cancelled read (its caller gone) fails no one."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._lock = asyncio.Lock()
        self._begun = 0  # reads begun
        self._ended = 0  # reads ended, well or not
        self._last: tuple[int, T] | None = None  # the last read that ended well: its number, its result
        self._failure: tuple[int, Exception] | None = None  # the last read, if it failed: when it ended, why

    def ticket(self) -> int:
        """Taken when an answer arrives: see `since` above."""
        return self._begun

    async def __call__(self, since: int | None = None) -> T:
        ticket, arrived = self._begun if since is None else since, self._ended
        async with self._lock:
            if self._failure is not None and self._failure[0] > arrived:  # ended while this call waited
                raise self._failure[1]
            if self._last is not None and self._last[0] > ticket:  # began after this call, and ended
                return self._last[1]
            self._begun += 1
            number = self._begun
            try:
                result = await self._read()
            except Exception as exc:
                self._ended += 1
                self._failure = (self._ended, exc)
                raise
            except BaseException:
                self._ended += 1
                raise
            self._ended += 1
            self._last, self._failure = (number, result), None
            return result
