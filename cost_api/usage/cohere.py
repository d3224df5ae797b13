"""Cohere's usage (API v2): billed on `billed_units`, in a body or a stream's `message-end` event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cost_api.usage.base import Counts, State, UsageError, count, mapping

__all__ = ["observe_cohere"]


def _cohere_counts(provider: str, usage: Mapping[str, Any], path: str) -> Counts:
    # Bill on billed_units: usage.tokens also counts the unbilled prompt template.
    path = f"{path}.billed_units"
    if usage.get("billed_units") is None:
        raise UsageError(provider, path, "missing")
    billed = mapping(provider, usage["billed_units"], path)
    return (
        count(provider, billed, "input_tokens", path),
        count(provider, billed, "output_tokens", path),
        0,
        0,
    )


def observe_cohere(provider: str, doc: Mapping[str, Any], state: State) -> None:
    if "type" not in doc:  # a non-streamed body
        path, usage = "usage", doc.get("usage")
    elif doc["type"] == "message-end":
        path = "delta.usage"
        usage = mapping(provider, doc.get("delta"), "delta").get("usage")
    else:
        return
    if usage is None:
        return
    state.counts = _cohere_counts(provider, mapping(provider, usage, path), path)
    state.final = True
