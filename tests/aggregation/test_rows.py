"""The open-hours row store against a real SQLite log: a read that another database overtakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cost_api.aggregation.aggregator import threshold_params
from cost_api.aggregation.groups import Vocab
from cost_api.aggregation.rows import RowStore
from cost_api.config import load_settings
from cost_api.web.service import build_service

from ..clock import FakeClock
from ..logdb import Row, SqliteLog, at

NOW = at("2026-11-20T12:00:00Z")


async def test_a_read_overtaken_by_another_database_keeps_nothing(tmp_path: Path) -> None:
    """`forget` (another file behind the URL) may run while `refresh` or `reread_open` waits on the
    database, outside the aggregator's lock: what that read brings back belongs to the old file and is
    dropped, instead of being joined to open rows that are gone (a 500 under load, once)."""
    log = SqliteLog(tmp_path / "log.db")
    await log.insert([Row(at("2026-11-20T11:30:00Z"), prompt_tokens=1_000)])
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    store: RowStore | None = None
    overtaken = False

    async def fetch(name: str, **params: Any) -> list[Any]:
        rows = await service.db.fetch(name, **params)
        if overtaken and store is not None:
            store.forget()
        return rows

    try:
        store = RowStore(fetch, Vocab(), service.pricing, threshold_params(service.pricing), FakeClock(NOW))
        await store.start(int(at("2026-11-20T11:00:00Z").timestamp() * 1000), 0)
        assert store.started and len(store.open or []) == 0  # ids up to 0: the row comes through refresh
        overtaken = True
        late = await store.refresh()
        assert len(late) == 0 and not store.started  # nothing kept, nothing joined: read anew on start
        await store.start(int(at("2026-11-20T11:00:00Z").timestamp() * 1000), 0)
        await store.reread_open()
        assert not store.started
    finally:
        await service.close()
