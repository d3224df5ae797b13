"""Everything a running service holds: settings, the price table, the database, the aggregator (and
its clock, the service's one)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cost_api.aggregation.aggregator import Aggregator
from cost_api.aggregation.memory import MemoryCap
from cost_api.aggregation.snapshot import Snapshots, snapshot_path
from cost_api.clock import Clock
from cost_api.config import ConfigError, Settings
from cost_api.pricing.file import PricingError
from cost_api.pricing.table import PriceTable, load_table
from cost_api.resources import builtin_pricing, sql_dir
from cost_api.store.database import Database, open_database
from cost_api.store.leadership import lock_directory
from cost_api.store.queries import Registry
from cost_api.store.url import parse_database_url
from cost_api.windows import iso

log = logging.getLogger("cost_api.web.service")


@dataclass
class Service:
    settings: Settings
    pricing: PriceTable
    db: Database
    aggregator: Aggregator
    price_books: dict[str, PriceTable] = field(default_factory=dict)  # whatif_price_books, loaded

    @property
    def clock(self) -> Clock:
        """What time it is for everything the service answers: the aggregator's clock."""
        return self.aggregator.clock

    async def readiness(self) -> dict[str, Any]:
        """What `GET /readyz` says when ready: the log can be read as the contract says (else the
        store's error, a 503), which optional columns it has, whether it is a replica behind its primary,
        and the rollups' state."""
        await self.db.check_schema()
        columns = await self.db.read_log_columns()  # the optional columns read (docs/request-log.md)
        recovering, replayed = await self.db.replica()
        rollups = self.aggregator.rollups
        return {
            "status": "ready",
            "dialect": self.db.dialect,
            # a hot standby answers as of what it has replayed: this says when that committed
            "replica": {"last_replayed_commit_at": None if replayed is None else iso(replayed)} if recovering else None,
            "rollups": {
                "ready": rollups.ready,
                "warm_seconds": rollups.warm_seconds,
                "hours_restored": rollups.hours_restored,
                "hours_read": rollups.hours_read,
                "snapshot_due": rollups.snapshot_due(),
            },
            "optional_columns": columns.as_json(),
            "token_tags": await self.token_tags(),
        }

    async def token_tags(self) -> dict[str, Any]:
        """Where the tokens' tags come from: the `api_tokens.tags` column (read now) and the rules."""
        book = await self.aggregator.tag_book()
        column = bool(self.aggregator.tag_books.column)
        return {"column": column, "rules": len(self.settings.token_tags), "keys": book.keys}

    async def close(self) -> None:
        await self.db.close()


def load_pricing(settings: Settings) -> PriceTable:
    overrides = Path(settings.pricing_overrides) if settings.pricing_overrides else None
    return load_table(builtin_pricing(), overrides)


def load_price_books(settings: Settings) -> dict[str, PriceTable]:
    """The `whatif_price_books`, each merged over the built-in table; a broken one stops the start."""
    books = {}
    for name, path in settings.whatif_price_books.items():
        try:
            books[name] = load_table(builtin_pricing(), Path(path))
        except PricingError as exc:
            raise ConfigError(f"whatif_price_books.{name}: {exc}") from exc
    return books


def build_service(settings: Settings, clock: Clock | None = None) -> Service:
    """Load and check everything that can fail before serving: pricing, queries, the URL. `clock`: the
    real one unless a test (in-process) gives another."""
    pricing = load_pricing(settings)
    books = load_price_books(settings)
    url = parse_database_url(settings.database_url)
    registry = Registry.load(sql_dir(), url.dialect)
    db = open_database(
        url,
        registry,
        timeout=settings.query_timeout.seconds,
        pool_size=settings.max_concurrent_queries,
    )
    snapshots = rollup_snapshots(settings, pricing, db)
    aggregator = Aggregator(
        db,
        pricing,
        clock=clock or Clock(),
        rollup_grace=settings.rollup_grace.seconds,
        snapshots=snapshots,
        tag_rules=settings.token_tags,
        memory_cap=MemoryCap.of(settings.rollup_memory_mb),
        token_refresh=settings.token_refresh.seconds,
    )
    return Service(settings, pricing, db, aggregator, books)


def rollup_snapshots(settings: Settings, pricing: PriceTable, db: Database) -> Snapshots | None:
    """The rollups' snapshot file of this database in `cache_dir` (None: `off`, or no cache directory)."""
    if settings.cache_dir == "off":
        return None
    try:
        directory = Path(settings.cache_dir).expanduser() if settings.cache_dir else lock_directory()
    except OSError as exc:
        log.warning("no rollup snapshot (every start reads every closed hour): %s", exc)
        return None
    return Snapshots(snapshot_path(directory, settings.database_url), pricing, db.fetch)
