"""The queries a database runs, recorded by name and parameters while they still run: what a test
asserts an answer read (or did not read); and the rollups' reads of the log held at a gate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from cost_api.aggregation.aggregator import Aggregator


def recorded_reads(monkeypatch: pytest.MonkeyPatch, db: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every query `db` runs from now on (until the test ends), in order."""
    reads: list[tuple[str, dict[str, Any]]] = []
    fetch = db.fetch

    async def recorded(name: str, **params: Any) -> Any:
        reads.append((name, params))
        return await fetch(name, **params)

    monkeypatch.setattr(db, "fetch", recorded)
    return reads


class Gate:
    """Holds the rollups' reads of the log (`holds`: those of its (dim, h0, h1) it is true of; every one
    without it) until `open()`; `reached` once the warm-up is held."""

    def __init__(
        self,
        agg: Aggregator,
        monkeypatch: pytest.MonkeyPatch,
        holds: Callable[[str | None, int, int], bool] | None = None,
    ) -> None:
        self.reached = asyncio.Event()
        self._open = asyncio.Event()
        read = agg.rollups._read

        async def held(dim: str | None, h0: int, h1: int, *args: Any) -> Any:
            if holds is None or holds(dim, h0, h1):
                self.reached.set()
                await self._open.wait()
            return await read(dim, h0, h1, *args)

        monkeypatch.setattr(agg.rollups, "_read", held)

    def open(self) -> None:
        self._open.set()
