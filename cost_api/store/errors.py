"""The store's errors, which the web edge maps to problem documents (503, 504, a start-up refusal)."""

from __future__ import annotations


class DatabaseUnavailable(Exception):
    """The database cannot be reached (503)."""


class QueryTimeout(Exception):
    """A query ran past `query_timeout` and was cancelled (504)."""


class SchemaMissing(Exception):
    """The database is reachable but has no `request_log` table."""
