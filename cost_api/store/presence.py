"""One holder among servers on one ClickHouse, which has no advisory lock, and which the API may not
write to: a lease kept by standing queries.

Each contender keeps a read-only query running on the server, tagged with the lock's key and the
contender's token — the instant it first tried (nanoseconds) and a random part, so that tokens sort by
age. A standing query lasts `query_timeout` (`max_execution_time` bounds it too) and the next one starts
halfway through it, so one is always listed in `system.processes`. The holder is the contender with
the smallest token among the queries listed there: the oldest, for as long as it keeps its query
running. A contender that stops (`release`) kills its queries (`KILL QUERY … SYNC`) and the next
oldest holds at its next try; one that dies leaves a query that the server cancels when its client's
connection closes (`cancel_http_readonly_queries_on_client_close`) or that ends by itself within
`query_timeout`: that long, at most, nobody acts.

Every contender must reach the same server: `system.processes` lists one server's queries (on a
cluster, point the API's replicas at one node, or at the same node through the load balancer's
stickiness; docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from typing import Any

from cost_api.store.clickhouse_http import ClickHouseHttpDatabase

_TAG = "cost-api-leader"


class Presence:
    def __init__(self, db: ClickHouseHttpDatabase, key: int) -> None:
        self._db = db
        self.tag = f"{_TAG} {key:x}"
        self.token = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        self._keeper: asyncio.Task[None] | None = None
        self._standing: set[asyncio.Task[Any]] = set()
        self._listed = asyncio.Event()

    async def hold(self) -> bool:
        """Whether this contender holds now: its standing query is listed, and no older one is."""
        if self._keeper is None or self._keeper.done():
            self._listed.clear()
            self._keeper = asyncio.create_task(self._keep())
        async with asyncio.timeout(self._db.timeout):
            await self._listed.wait()
        tokens = await self.present()
        return bool(tokens) and min(tokens) == self.token

    async def present(self) -> list[str]:
        """The tokens of the standing queries of this key on the server."""
        # the tag split in two: this query's own text must not match it
        head, tail = self.tag.split(" ", 1)
        sql = (
            "SELECT query FROM system.processes "
            f"WHERE position(query, concat('{head}', ' {tail} ')) > 0 FORMAT JSONCompact"
        )
        client = await self._db._get_client()
        body = await client.raw_query(sql, settings=self._db._settings(time.monotonic() + self._db.timeout, {}))
        found = re.findall(rf"{re.escape(self.tag)} ([0-9]+-[0-9a-f]+)", body.decode())
        return sorted(set(found))

    async def _keep(self) -> None:
        """Start a standing query every half `query_timeout`, each lasting `query_timeout`."""
        period = max(self._db.timeout, 1.0)
        while True:
            task = asyncio.create_task(self._stand(period))
            self._standing.add(task)
            task.add_done_callback(self._standing.discard)
            if not self._listed.is_set():
                await self._wait_listed()
            await asyncio.sleep(period / 2)

    async def _wait_listed(self) -> None:
        while self.token not in await self.present():
            await asyncio.sleep(0.05)
        self._listed.set()

    async def _stand(self, seconds: float) -> None:
        rows = max(int(seconds / 0.25), 1)
        sql = f"SELECT sleepEachRow(0.25) AS slept FROM numbers({rows}) /* {self.tag} {self.token} */"
        settings = {
            **self._db._settings(time.monotonic() + seconds + 2, {}),
            "max_block_size": 1,
            "cancel_http_readonly_queries_on_client_close": 1,
        }
        with contextlib.suppress(Exception):  # ended, killed, or the server away: the next one follows
            client = await self._db._get_client()
            await client.raw_query(sql, settings=settings, fmt="JSONCompact")

    async def release(self) -> None:
        """Stop standing: the keeper, then this contender's queries on the server (SYNC)."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper
        head, tail = self.tag.split(" ", 1)
        await self._db.kill_where(f"position(query, concat('{head}', ' {tail} {self.token}')) > 0")
        for task in list(self._standing):
            task.cancel()
        self._listed.clear()
