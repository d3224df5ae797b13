"""`KeptDirectory` (aggregation/directory.py): one read shared by the answers that begin within
`refresh` of it, read again after it, when the clock goes back or another database is behind the URL;
a read that failed is not kept. On a moved clock: no sleeps."""

from __future__ import annotations

import asyncio

import pytest

from cost_api.aggregation.directory import KeptDirectory
from cost_api.aggregation.params import TokenDirectory
from cost_api.store.database import DatabaseUnavailable

from ..clock import FakeClock


class Table:
    """What `api_tokens` holds now, and how many times it was read; `gate`: a read waits for it."""

    def __init__(self) -> None:
        self.name = "alpha"
        self.reads = 0
        self.generation = 1
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def read(self) -> TokenDirectory:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise DatabaseUnavailable("down")
        return TokenDirectory([("tok_1", "pg_live_aaa", self.name)])


def kept(table: Table, clock: FakeClock, refresh: float = 5.0) -> KeptDirectory:
    return KeptDirectory(table.read, clock, refresh, lambda: table.generation)


async def test_kept_for_refresh_then_read_again() -> None:
    table, clock = Table(), FakeClock(1000.0)
    directory = kept(table, clock)
    first = await directory.get()
    table.name = "renamed"
    clock.advance(4.999)
    assert await directory.get() is first  # within 5 s of the read: the same directory, its tag book too
    clock.advance(0.001)
    again = await directory.get()
    assert again.labels["tok_1"] == ("pg_live_aaa", "renamed")
    assert table.reads == 2


async def test_concurrent_answers_share_one_read() -> None:
    table, clock = Table(), FakeClock(1000.0)
    table.gate = asyncio.Event()
    directory = kept(table, clock)
    waiting = [asyncio.ensure_future(directory.get()) for _ in range(3)]
    await asyncio.sleep(0)
    table.gate.set()
    got = await asyncio.gather(*waiting)
    assert table.reads == 1 and got[0] is got[1] is got[2]


async def test_a_failed_read_is_not_kept() -> None:
    table, clock = Table(), FakeClock(1000.0)
    directory = kept(table, clock)
    table.fail = True
    with pytest.raises(DatabaseUnavailable):
        await directory.get()
    table.fail = False
    assert (await directory.get()).labels["tok_1"][1] == "alpha"  # at the same instant: read again
    assert table.reads == 2


async def test_another_database_or_a_clock_gone_back_reads_again() -> None:
    table, clock = Table(), FakeClock(1000.0)
    directory = kept(table, clock)
    await directory.get()
    table.generation = 2
    await directory.get()
    clock.advance(-1)
    await directory.get()
    assert table.reads == 3


async def test_a_read_every_answer_left_is_cancelled_one_still_awaited_goes_on() -> None:
    table, clock = Table(), FakeClock(1000.0)
    table.gate = asyncio.Event()
    directory = kept(table, clock)
    first, second = asyncio.ensure_future(directory.get()), asyncio.ensure_future(directory.get())
    await asyncio.sleep(0)
    first.cancel()  # one client left: the other still waits for the same read
    table.gate.set()
    assert (await second).labels["tok_1"][1] == "alpha" and table.reads == 1
    clock.advance(5)
    table.gate = asyncio.Event()
    alone = asyncio.ensure_future(directory.get())
    await asyncio.sleep(0)
    alone.cancel()  # its only client left: the read is cancelled (its query stops), not kept
    with pytest.raises(asyncio.CancelledError):
        await alone
    table.gate.set()
    assert (await directory.get()).labels["tok_1"][1] == "alpha" and table.reads == 3
