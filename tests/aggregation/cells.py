"""Hand-made `Groups` for unit tests: one cell per dict, every column spelled out or defaulted.

Built through the `Groups` constructor (never `from_rows`, whose input layout is the SQL's)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cost_api.aggregation.groups import COUNTS, EXCLUDED, NO_TIER_RATE, Groups, Vocab
from cost_api.windows import HOUR_MS

COUNT_NAMES = (*COUNTS, EXCLUDED, NO_TIER_RATE)


def cell(
    slot: int,
    *,
    provider: str | None = "openai",
    model: str | None = "gpt-4o",
    key: str | None = None,
    requests: int = 1,
    spend: float = 0.0,
    saved: float = 0.0,
    cache_hit: bool = False,
    size_class: int = 0,
    priced_as: str | None = "openai/gpt-4o",
    quality: int = 0,
    tier: str | None = None,
    **counts: int,
) -> dict[str, Any]:
    """One group; `counts` names any other count (errors=2, prompt_tokens=100, excluded=3, …)."""
    unknown = set(counts) - set(COUNT_NAMES)
    assert not unknown, unknown
    return {
        "slot": slot,
        "provider": provider,
        "model": model,
        "key": key,
        "size_class": size_class,
        "cache_hit": cache_hit,
        "counts": {"requests": requests, **counts},
        "spend": spend,
        "saved": saved,
        "priced_as": priced_as,
        "quality": quality,
        "tier": tier,
    }


def groups(vocab: Vocab, cells: list[dict[str, Any]], slot_ms: int = HOUR_MS) -> Groups:
    """The cells as one `Groups`, in the order given."""
    n = len(cells)

    def column(name: str, dtype: Any) -> np.ndarray:
        return np.array([c[name] for c in cells], dtype=dtype).reshape(n)

    def coded(name: str) -> np.ndarray:
        return vocab.encode([c[name] for c in cells])

    return Groups(
        vocab,
        slot_ms,
        column("slot", np.int64),
        coded("provider"),
        coded("model"),
        coded("key"),
        column("size_class", np.int8),
        column("cache_hit", bool),
        {name: np.array([c["counts"].get(name, 0) for c in cells], dtype=np.int64).reshape(n) for name in COUNT_NAMES},
        column("spend", np.float64),
        column("saved", np.float64),
        coded("priced_as"),
        column("quality", np.int8),
        coded("tier"),
    )
