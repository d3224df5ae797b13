"""The service's one clock: what time it is in the log's world.

Every reading of "now" (a window ending now, the hours the rollups hold as closed, budget periods and
the ages of their figures, the alert rules' evaluation time, `as_of`) goes through the `Clock` the
service holds (`Service.clock`, the aggregator's), so that a test can give it another and move it
(tests/clock.py). Timeouts and latencies are not the log's time: they stay on `time.monotonic()` and
the event loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime


class Clock:
    """Wall time (UTC), and the waits measured on it: the real ones here."""

    def time(self) -> float:
        """Now, in epoch seconds."""
        return time.time()

    def now(self) -> datetime:
        """Now, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        """Wait until `event` is set, or `seconds` of this clock's time have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
