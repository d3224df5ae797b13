"""The queries a database runs, recorded by name and parameters while they still run: what a test
asserts an answer read (or did not read)."""

from __future__ import annotations

from typing import Any

import pytest


def recorded_reads(monkeypatch: pytest.MonkeyPatch, db: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every query `db` runs from now on (until the test ends), in order."""
    reads: list[tuple[str, dict[str, Any]]] = []
    fetch = db.fetch

    async def recorded(name: str, **params: Any) -> Any:
        reads.append((name, params))
        return await fetch(name, **params)

    monkeypatch.setattr(db, "fetch", recorded)
    return reads
