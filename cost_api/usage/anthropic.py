"""Anthropic's usage: the Messages API's bodies and streams, with the 1-hour part of the cache writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cost_api.usage.base import Counts, State, UsageError, count, mapping, set_model

__all__ = ["observe_anthropic"]


def _anthropic_counts(provider: str, usage: Mapping[str, Any]) -> Counts:
    path = "usage"
    return (
        count(provider, usage, "input_tokens", path, required=True),
        count(provider, usage, "output_tokens", path, required=True),
        count(provider, usage, "cache_read_input_tokens", path),
        count(provider, usage, "cache_creation_input_tokens", path),
    )


def _anthropic_write_1h(provider: str, usage: Mapping[str, Any], written: int) -> int:
    """`cache_creation.ephemeral_1h_input_tokens`: the 1-hour part of `cache_creation_input_tokens`
    (the total of both cache lifetimes), billed at 2x input instead of 1.25x."""
    path = "usage.cache_creation"
    one_hour = count(provider, mapping(provider, usage.get("cache_creation"), path), "ephemeral_1h_input_tokens", path)
    if one_hour > written:
        raise UsageError(
            provider,
            f"{path}.ephemeral_1h_input_tokens",
            f"{one_hour} 1-hour cache writes exceed the {written} of cache_creation_input_tokens",
        )
    return one_hour


def observe_anthropic(provider: str, doc: Mapping[str, Any], state: State) -> None:
    kind = doc.get("type")
    if kind == "message_start":
        message = mapping(provider, doc.get("message"), "message")
        set_model(state, message.get("model"))
        usage = message.get("usage")
    elif kind in ("message_delta", "message"):  # cumulative totals / a whole non-streamed body
        set_model(state, doc.get("model"))
        usage = doc.get("usage")
    else:
        return
    if usage is None:
        return
    # message_delta counts are running totals: overwrite, never add; absent fields keep their value.
    fields = mapping(provider, usage, "usage")
    state.anthropic.update((key, value) for key, value in fields.items() if value is not None)
    state.counts = _anthropic_counts(provider, state.anthropic)
    state.write_1h = _anthropic_write_1h(provider, state.anthropic, state.counts[3])
    state.final = kind != "message_start"  # message_start's output_tokens is a placeholder
