"""`SharedRead`: every call answered by a read that began after it, and calls made while a read runs
share the next one. The reads are gated by events, so the interleaving is the test's, not the clock's;
a call that never ends fails the test after a bounded number of loop turns instead of hanging it."""

from __future__ import annotations

import asyncio

import pytest

from cost_api.aggregation.concurrency import SharedRead


class Gated:
    """A read whose every run waits for the test to let it end, and returns its run number."""

    def __init__(self) -> None:
        self.runs = 0
        self.gates: list[asyncio.Event] = []
        self.fail_next = False

    async def __call__(self) -> int:
        self.runs += 1
        number = self.runs
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("down")
        return number

    async def open(self, index: int) -> None:
        for _ in range(TURNS):
            if len(self.gates) > index:
                self.gates[index].set()
                return
            await asyncio.sleep(0)
        raise AssertionError(f"read {index + 1} never began")


TURNS = 1_000  # event-loop turns a step may take; a handful suffice


async def answer(call: asyncio.Task[int]) -> int:
    """The call's result (or its exception), once it ended within TURNS turns of the loop."""
    for _ in range(TURNS):
        if call.done():
            return call.result()
        await asyncio.sleep(0)
    raise AssertionError("the call never ended")


async def test_calls_made_while_a_read_runs_share_the_next_read() -> None:
    read = Gated()
    shared = SharedRead(read)
    first = asyncio.create_task(shared())
    await asyncio.sleep(0)  # the first read has begun
    waiting = [asyncio.create_task(shared()) for _ in range(5)]
    await read.open(0)
    assert await answer(first) == 1
    await read.open(1)
    assert [await answer(call) for call in waiting] == [2] * 5  # one read for the five, begun after each
    assert read.runs == 2


async def test_a_call_after_a_read_ended_reads_again() -> None:
    read = Gated()
    shared = SharedRead(read)
    call = asyncio.create_task(shared())
    await read.open(0)
    assert await answer(call) == 1
    again = asyncio.create_task(shared())
    await read.open(1)
    assert await answer(again) == 2  # never the older result


async def test_a_failed_read_fails_the_calls_that_waited_and_a_later_call_reads_again() -> None:
    read = Gated()
    shared = SharedRead(read)
    first = asyncio.create_task(shared())
    await asyncio.sleep(0)
    read.fail_next = True
    waiting = [asyncio.create_task(shared()) for _ in range(3)]
    await asyncio.sleep(0)
    await read.open(0)
    for call in (first, *waiting):  # each waiting call gets the failure at once: no read of its own
        with pytest.raises(ConnectionError):
            await answer(call)
    assert read.runs == 1
    later = asyncio.create_task(shared())
    await read.open(1)
    assert await answer(later) == 2


async def test_a_cancelled_read_fails_no_one_and_the_waiting_calls_read_again() -> None:
    read = Gated()
    shared = SharedRead(read)
    first = asyncio.create_task(shared())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(shared())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await answer(first)
    await read.open(1)
    assert await answer(waiting) == 2


async def test_a_call_with_an_earlier_ticket_is_served_by_a_read_begun_after_it() -> None:
    """An answer's reads take one ticket when it arrives: a read begun after the ticket serves a call
    that comes while it runs (the summary's six reads share the first); one begun before does not."""
    read = Gated()
    shared = SharedRead(read)
    ticket = shared.ticket()
    first = asyncio.create_task(shared(since=ticket))
    await asyncio.sleep(0)  # read 1 has begun, after the ticket
    late = shared.ticket()  # taken after read 1 began
    same_answer = asyncio.create_task(shared(since=ticket))
    later_answer = asyncio.create_task(shared(since=late))
    await read.open(0)
    assert [await answer(first), await answer(same_answer)] == [1, 1]
    await read.open(1)
    assert await answer(later_answer) == 2  # read 1 began before its ticket
    assert read.runs == 2
