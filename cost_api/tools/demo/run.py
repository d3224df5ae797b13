"""`run_demo`, what `cost-api demo` runs: generate a log into a new database, or with `follow` keep
appending the rows of each passing second (the live feeder) until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
from tqdm import tqdm

from cost_api.store.url import parse_database_url
from cost_api.tools.demo.catalogue import DAY, HOUR, TEAMS, TOKENS, epoch_ms
from cost_api.tools.demo.generator import DemoError, LogGenerator, Params
from cost_api.tools.demo.stores import MARKER, ClickHouseStore, PostgresStore, SqliteStore, Store

FOLLOW_TICK_S = 1.0


def run_demo(
    db_url: str,
    *,
    days: int = 60,
    requests_per_day: int = 5000,
    seed: int = 1,
    follow: bool = False,
    now: datetime | None = None,
    tz: str = "UTC",
    progress: bool = True,
    tokens: int = TOKENS,
    teams: int = TEAMS,
    make: Callable[[Params], LogGenerator] = LogGenerator,
) -> int:
    """Write a demo log of `days` days up to `now` into a database this creates; return the rows written.

    A database it created that already holds a log is left alone, or with `follow` continued with the
    parameters stored at its generation: rows are appended in real time (from the end of the log,
    catching up first) until SIGINT (Ctrl-C) or SIGTERM. `progress` shows a progress bar and messages
    on stderr. A naive `now` is taken as UTC. `tokens`: how many regular API tokens the traffic spreads
    over (the benchmark's many-tokens log), `teams` how many teams their tags name (docs/tags.md); a
    followed log goes on with the defaults. `make`: the generator of the log's rows
    (`stories.StoriesLog`: the second log, its other stories).
    """
    if days < 1 or requests_per_day < 1 or teams < 1:
        raise DemoError("days, requests_per_day and teams must be at least 1")
    url = parse_database_url(db_url)
    stores: dict[str, type[Store]] = {"sqlite": SqliteStore, "postgres": PostgresStore, "clickhouse": ClickHouseStore}
    store = stores[url.dialect](url)
    try:
        tables = store.tables()
        if tables and MARKER not in tables:
            raise DemoError(f"{url} was not created by cost-api demo; refusing to write into it")
        store.create_schema()
        params = store.params()
        written = 0
        if params is None:  # a new database, or a generation that was interrupted: (re)generate
            now = now or datetime.now(UTC)
            now_ms = epoch_ms(now if now.tzinfo else now.replace(tzinfo=UTC))
            params = Params(now_ms, seed, days, requests_per_day, tz, tokens, teams)
            generator = make(params)
            store.reset(generator.tokens, generator.tags)
            rng = np.random.default_rng([seed, 1])
            start = now_ms - days * DAY
            written = sum(_write_span(store, generator, start, now_ms, rng, progress=progress))
            store.mark(params)
        elif not follow:
            _say(progress, f"{url} already holds a demo log of {store.count():,} rows; nothing written")
            return 0
        if follow:
            _say(progress, f"following: appending live rows to {url} (Ctrl-C to stop)")
            written += _follow(store, LogGenerator(params), progress=progress)
    except BaseException:
        store.abort()
        raise
    store.close()
    return written


def _follow(store: Store, generator: LogGenerator, *, progress: bool) -> int:
    """Append the rows of each passing second until SIGINT or SIGTERM; return the rows written."""
    params = generator.params
    t0 = max(params.now_ms, (store.last_created_at() or 0) + 1)
    rng = np.random.default_rng([params.seed, 2, t0])
    written = 0
    with _stop_on_signals() as stopped:
        while not stopped():
            t1 = int(time.time() * 1000)
            if t1 > t0:
                catching_up = t1 - t0 > HOUR
                for rows in _write_span(store, generator, t0, t1, rng, progress=progress and catching_up):
                    written += rows
                    if stopped():
                        return written
                t0 = t1
            time.sleep(FOLLOW_TICK_S)
    return written


@contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT and SIGTERM set a flag instead of interrupting: a batch is never cut off half-written."""
    received: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda signum, _frame: received.append(signum)) for s in signals]
    try:
        yield lambda: bool(received)
    finally:
        for s, handler in zip(signals, previous, strict=True):
            signal.signal(s, handler)


def _write_span(
    store: Store, generator: LogGenerator, t0: int, t1: int, rng: np.random.Generator, *, progress: bool
) -> Iterator[int]:
    """Generate and insert [t0, t1), a day per transaction; yield the rows of each."""
    starts = range(t0, t1, DAY)
    written = 0
    with tqdm(total=len(starts), unit="day", desc="demo", file=sys.stderr, disable=not progress) as bar:
        for start in starts:
            batch = generator.batch(start, min(start + DAY, t1), rng)
            store.insert(batch)
            rows = len(batch["created_at"])
            written += rows
            bar.set_postfix_str(f"{written:,} rows", refresh=False)
            bar.update()
            yield rows


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"cost-api demo: {message}", file=sys.stderr)
