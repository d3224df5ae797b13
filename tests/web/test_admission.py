"""`Admission`: slots up to the limit, a bounded wait for a free one, release. No server.

The waits are driven without waiting for real time to pass: `wait=0` gives up at once, and a waiter
with a long `wait` is handed a slot by a release from the test (its outcome never depends on how long
anything took: a minute is far beyond what any step here needs).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from cost_api.web.admission import ADMISSION_WAIT, LIGHT, Admission, heavy

LONG = 60.0  # a wait that no test lets run out


async def waiting(admission: Admission) -> asyncio.Task[bool]:
    """An `acquire()` that has found every slot taken and is waiting for one."""
    task = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)  # it runs up to its first wait
    assert not task.done()
    return task


async def settled(*tasks: asyncio.Task[bool]) -> set[asyncio.Task[bool]]:
    """The tasks that have finished once one has (bounded by LONG, never reached)."""
    done, _ = await asyncio.wait(tasks, timeout=LONG, return_when=asyncio.FIRST_COMPLETED)
    assert done, "no waiter took the free slot"
    return done


async def test_slots_are_taken_up_to_the_limit_at_once() -> None:
    admission = Admission(3, wait=0)
    assert [await admission.acquire() for _ in range(3)] == [True, True, True]
    assert admission.active == 3
    assert await admission.acquire() is False  # wait=0: every slot taken, no wait at all
    assert admission.active == 3  # a refused request takes nothing


async def test_a_released_slot_is_taken_again() -> None:
    admission = Admission(1, wait=0)
    assert await admission.acquire()
    assert not await admission.acquire()
    admission.release()
    assert admission.active == 0
    assert await admission.acquire()
    assert admission.active == 1


async def test_a_waiter_takes_the_slot_released_while_it_waits() -> None:
    admission = Admission(1, wait=LONG)
    assert await admission.acquire()
    waiter = await waiting(admission)
    admission.release()
    assert await asyncio.wait_for(waiter, LONG) is True
    assert admission.active == 1  # the slot went from the first request to the waiter


async def test_one_release_admits_one_waiter_only() -> None:
    admission = Admission(2, wait=LONG)
    assert await admission.acquire() and await admission.acquire()
    first, second, third = [await waiting(admission) for _ in range(3)]
    admission.release()
    done = await settled(first, second, third)
    assert len(done) == 1 and all(t.result() for t in done)
    assert admission.active == 2  # never more than the limit
    await asyncio.sleep(0)
    assert sum(t.done() for t in (first, second, third)) == 1
    admission.release()
    admission.release()
    rest = {first, second, third} - done
    assert await asyncio.wait_for(asyncio.gather(*rest), LONG) == [True, True]
    assert admission.active == 2


async def test_the_wait_is_bounded() -> None:
    admission = Admission(1, wait=0.02)  # runs out: nobody releases
    assert await admission.acquire()
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await admission.acquire() is False
    assert loop.time() - began >= 0.02  # it did wait, on the loop's clock, before giving up
    assert admission.active == 1
    admission.release()
    assert await admission.acquire() is True  # a slot freed after a give-up is there for the next


async def test_a_waiter_cancelled_while_waiting_takes_no_slot() -> None:
    admission = Admission(1, wait=LONG)
    assert await admission.acquire()
    waiter = await waiting(admission)
    waiter.cancel()
    await asyncio.wait({waiter})
    assert waiter.cancelled()
    admission.release()
    assert admission.active == 0
    assert await admission.acquire() and admission.active == 1


async def test_a_negative_or_zero_wait_never_sleeps() -> None:
    for wait in (0, -1.0):
        admission = Admission(1, wait=wait)
        assert await admission.acquire()
        assert await admission.acquire() is False


def test_the_default_wait_is_the_documented_tenth_of_a_second() -> None:
    assert ADMISSION_WAIT == 0.1  # docs/performance.md: "wait at most 0.1 s for a slot, then get 503"
    assert Admission(4).wait == ADMISSION_WAIT


def test_heavy_routes_are_the_api_s_except_those_declared_light() -> None:
    plain = SimpleNamespace(opt={})
    light = SimpleNamespace(opt=dict(LIGHT))
    assert heavy("/v1/summary", plain)
    assert heavy("/grafana/query", None)
    assert not heavy("/v1/budgets/check", light)
    assert not heavy("/healthz", plain)
    assert not heavy("/metrics", None)
    assert not heavy("/v1", plain)  # not under /v1/
