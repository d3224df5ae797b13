"""`cost-api demo`: write a realistic request log, with three stories to find, into a database it creates.

The log covers `days` days up to `now`: 8 providers with real model ids, 40 endpoints and a few hundred
API tokens on skewed popularity, a daily and weekly rhythm, month-over-month growth, response-cache hits,
provider prompt caching, long-context requests, an unpriced model, errors. The stories:

1. `leaked-ci-token`: silent until 10 days before `now`, then about $40/day of claude-opus-4-1, day and night.
2. `/agent-proxy-claude`: 3× its usual requests (and spend) from the most recent Monday 00:00 in `tz`.
3. A retry storm: ~50 requests/s of gpt-4o-mini at `/classify-intent` over the 20 minutes before `now`.

Columns are generated with numpy per day (or per second when following) and written in large transactions.
The demo writes only into a database it created, which it marks with a `cost_api_demo` table holding
its parameters, so that `--follow` continues the same log with the same distributions.

The modules, each importing only from those after it (a contract in pyproject.toml):

- `run`: `run_demo`, the CLI's entry: a one-shot generation, and `--follow`, the live feeder;
- `stores`: the database the demo creates and writes, on sqlite3 or asyncpg (the only drivers it imports);
- `stories`: `StoriesLog`, the second generated log (bench/alerts.py): other seed, six other stories;
- `generator`: `LogGenerator`, the request-log columns for any time span, from the `Params` of a log;
- `catalogue`: what the log is made of: models, endpoints, API tokens, the rhythm, the stories' numbers.
"""
