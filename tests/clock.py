"""`FakeClock`: the service's clock (cost_api/clock.py) as a test sets and moves it.

Frozen between moves. A sleep or a wait on it ends only when a move reaches its deadline (or its
event is set): a background task (the budget refresh, the alert rules) runs exactly when the test
moves the clock past its next tick, never by the wall clock. Tests give it to `build_service`; a
server started from the command line always has the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from cost_api.clock import Clock

from .logdb import at


class FakeClock(Clock):
    def __init__(self, start: str | datetime | float) -> None:
        self.seconds = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.set(start)

    def time(self) -> float:
        return self.seconds

    def set(self, value: str | datetime | float, *, wake: bool = True) -> None:
        """Move to `value`; `wake=False` leaves the sleepers whose deadline passed asleep for now (a
        timer firing late: what the service does before it fires)."""
        if isinstance(value, str):
            value = at(value)
        self.seconds = value.astimezone(UTC).timestamp() if isinstance(value, datetime) else float(value)
        if wake:
            due = [entry for entry in self._sleepers if entry[0] <= self.seconds]
            for entry in due:
                with contextlib.suppress(ValueError):  # cancelled meanwhile
                    self._sleepers.remove(entry)
                # the app's tasks may run on another thread's loop (a test client's portal)
                entry[1].get_loop().call_soon_threadsafe(_wake, entry[1])

    def advance(self, seconds: float) -> None:
        self.set(self.seconds + seconds)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        entry = (self.seconds + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            with contextlib.suppress(ValueError):  # already removed by the move that woke it
                self._sleepers.remove(entry)

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(self.sleep(seconds)), asyncio.ensure_future(event.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    @property
    def sleepers(self) -> list[float]:
        """The deadlines (epoch seconds) of the sleeps not woken yet."""
        return sorted(deadline for deadline, _ in self._sleepers)

    async def asleep(self, count: int = 1) -> None:
        """Wait (on the loop, whatever the time it takes) until `count` tasks sleep on this clock."""
        async with asyncio.timeout(60):  # a guard against a hang, no bound on the time it takes
            while len(self._sleepers) < count:
                await asyncio.sleep(0.005)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
