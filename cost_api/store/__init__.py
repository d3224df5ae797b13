"""The store: the only layer that talks to a database driver. Read-only connections, the query
registry (`sql/<dialect>/*.sql`), `fetch(name, **params)`, and the errors every layer above maps."""
