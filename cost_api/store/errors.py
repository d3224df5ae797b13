"""The store's errors, which the web edge maps to problem documents (503, 504, a start-up refusal)."""

from __future__ import annotations


class DatabaseUnavailable(Exception):
    """The database cannot be reached (503)."""


class QueryTimeout(Exception):
    """A query ran past `query_timeout` and was cancelled (504)."""


class TooManyGroups(Exception):
    """A `groups` read passed its `max_groups`: ClickHouse stops the query as its hash table passes the
    limit (TOO_MANY_ROWS); SQLite and Postgres return one group more than it. The aggregator reads the
    same span again in parts by key (`Aggregator._read_split`)."""


class SchemaMissing(DatabaseUnavailable):
    """The database is reachable but its `request_log` cannot be read as the contract says: no such
    table (or view), a column missing, or a column of a type the queries cannot read. A 503 while it
    lasts (the log may be in the middle of a migration or a restore), a refusal at start-up."""


class NotInSchema(Exception):
    """A query names a table or column the database does not have, told by the driver's error type or
    code (SQLite: the statement could not be prepared, SQLITE_ERROR; Postgres: undefined_table 42P01,
    undefined_column 42703). Raised once `request_log` is known to be sound (else SchemaMissing): the
    optional `api_tokens` table absent is the expected case."""
