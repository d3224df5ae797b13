"""The store: the only layer that talks to a database driver. Read-only connections, the query
registry (`sql/<dialect>/*.sql`), `fetch(name, **params)`, and the errors every layer above maps.

`database` is what the rest imports: `Database` (`base`: deadlines, the schema check, the log's
optional columns), its drivers (`sqlite`, `postgres`: the only modules that import one, with
`leadership`), `open_database`; `queries` the registry, `result` the `Rows` a query answers with
(read by column name), `errors`, `timing` (per-query metrics), `url`."""
