"""ClickHouse over HTTP (`clickhouse://user:pass@host:8123/db`, `clickhouses://` for TLS): a server or a
cluster, through the official async client (`clickhouse-connect`, an optional dependency: `pip install
'cost-api[clickhouse]'`). The settings, errors and answers are `clickhouse.ClickHouseDatabase`'s; each
query carries an id of its own, by which one the service gives up on is killed on the server
(`KILL QUERY WHERE query_id = …`, on a connection of the service's own that is not read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from cost_api.store.clickhouse import UNRESPONSIVE, ClickHouseDatabase, Decoded, ch_value
from cost_api.store.errors import DatabaseUnavailable
from cost_api.store.queries import Registry
from cost_api.store.url import DatabaseURL


class ClickHouseHttpDatabase(ClickHouseDatabase):
    def __init__(self, url: DatabaseURL, registry: Registry, timeout: float, pool_size: int) -> None:
        super().__init__(registry, timeout)
        assert url.dsn is not None
        self.dsn = url.dsn
        self._size = pool_size
        self._client: Any = None
        self._lock = asyncio.Lock()

    def _options(self) -> dict[str, Any]:
        return {**http_options(self.dsn, self.timeout), "connector_limit": self._size}

    async def _connect(self) -> Any:
        try:
            import clickhouse_connect
        except ImportError as exc:
            raise DatabaseUnavailable(
                "clickhouse:// needs clickhouse-connect: pip install 'cost-api[clickhouse]'"
            ) from exc
        try:
            return await clickhouse_connect.get_async_client(**self._options())
        except Exception as exc:
            raise DatabaseUnavailable(f"ClickHouse is unavailable: {exc}") from exc

    async def _get_client(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()
            return self._client

    async def _ask(
        self, name: str, deadline: float, params: dict[str, Any], fmt: str, decode: Callable[[bytes], Decoded]
    ) -> Decoded:
        query = self.registry[name]
        # None as None: the client sends it as \N itself
        values = {p: None if v is None else ch_value(v) for p, v in zip(query.params, query.bind(params), strict=True)}
        query_id = f"cost-api-{uuid.uuid4().hex}"
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                client = await self._get_client()
        except TimeoutError as exc:
            raise DatabaseUnavailable(f"ClickHouse is unavailable: no connection within {self.timeout:g}s") from exc
        settings = {**self._settings(deadline, params), "query_id": query_id}
        running: asyncio.Future[bytes] = asyncio.ensure_future(
            client.raw_query(query.sql.rstrip().rstrip(";"), parameters=values, settings=settings, fmt=fmt)
        )

        async def kill() -> None:  # the request stops waiting, the server stops the query
            running.cancel()
            await self.kill_where("query_id = {id:String}", {"id": query_id})

        return await self._answer(name, deadline, running, kill, decode)

    def _failed(self, name: str, exc: Exception) -> Exception:
        failed = super()._failed(name, exc)
        if failed is exc and _unreachable(exc):
            return DatabaseUnavailable(f"ClickHouse is unavailable: {exc}")
        return failed

    async def kill_where(self, condition: str, parameters: dict[str, str] | None = None) -> None:
        """`KILL QUERY WHERE condition SYNC`, from a client of its own (not read-only: KILL is refused
        there), within `UNRESPONSIVE`; a server away is given up on."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(UNRESPONSIVE):
                killer = await self._connect()
                try:
                    await killer.command(f"KILL QUERY WHERE {condition} SYNC", parameters=parameters)
                finally:
                    await killer.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def http_options(dsn: str, timeout: float) -> dict[str, Any]:
    """clickhouse-connect's arguments for `clickhouse://user:pass@host:port/db` (`clickhouses://`: TLS)."""
    parts = urlsplit(dsn)
    secure = parts.scheme == "clickhouses"
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or (8443 if secure else 8123),
        "username": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or "default",
        "secure": secure,
        "compress": False,
        "connect_timeout": timeout,
        "send_receive_timeout": timeout + UNRESPONSIVE,
    }


def _unreachable(exc: BaseException) -> bool:
    """An error of the connection (refused, reset, a proxy's 502), not of the query: the client's
    OperationalError, told by its type."""
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, OperationalError | OSError)
