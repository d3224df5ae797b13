"""The store's errors, which the web edge maps to problem documents (503, 504, a start-up refusal)."""

from __future__ import annotations


class DatabaseUnavailable(Exception):
    """The database cannot be reached (503)."""


class QueryTimeout(Exception):
    """A query ran past `query_timeout` and was cancelled (504)."""


class SchemaMissing(DatabaseUnavailable):
    """The database is reachable but its `request_log` cannot be read as the contract says: no such
    table (or view), a column missing, or a column of a type the queries cannot read. A 503 while it
    lasts (the log may be in the middle of a migration or a restore), a refusal at start-up."""
