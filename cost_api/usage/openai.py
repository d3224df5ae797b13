"""OpenAI's usage, and that of the providers with its API (Groq, Mistral, Together): Chat Completions
and Responses, bodies and streams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cost_api.usage.base import Counts, State, UsageError, cached_count, count, mapping, set_model

__all__ = ["observe_openai_compatible"]


def _openai_counts(provider: str, usage: Mapping[str, Any], path: str, names: tuple[str, str, str]) -> Counts:
    """Chat Completions (prompt/completion) and Responses (input/output) share one shape.

    The prompt total includes cache reads and cache writes (gpt-5.6+ bill writes apart): the
    full-rate rest is what remains once both are taken out.
    """
    prompt_key, completion_key, details_key = names
    prompt = count(provider, usage, prompt_key, path, required=True)
    completion = count(provider, usage, completion_key, path, required=True)
    details_path = f"{path}.{details_key}"
    details = mapping(provider, usage.get(details_key), details_path)
    cached = cached_count(provider, prompt, details, "cached_tokens", details_path)
    written = count(provider, details, "cache_write_tokens", details_path)
    if cached + written > prompt:
        raise UsageError(
            provider,
            f"{details_path}.cache_write_tokens",
            f"{cached} cached and {written} cache-write tokens exceed the prompt's {prompt}",
        )
    return prompt - cached - written, completion, cached, written


_OPENAI_CHAT = ("prompt_tokens", "completion_tokens", "prompt_tokens_details")
_OPENAI_RESPONSES = ("input_tokens", "output_tokens", "input_tokens_details")

_OPENAI_TIERS = {"default": "standard"}  # OpenAI's name for the standard tier

_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def observe_openai_compatible(provider: str, doc: Mapping[str, Any], state: State) -> None:
    if doc.get("type") in _RESPONSES_TERMINAL:  # Responses API stream: the final event wraps the body
        doc = mapping(provider, doc.get("response"), "response")
    set_model(state, doc.get("model"))
    tier = doc.get("service_tier")
    if provider == "openai" and isinstance(tier, str) and tier:  # on every chunk and in response bodies
        state.tier = _OPENAI_TIERS.get(tier.lower(), tier.lower())
    path, usage = "usage", doc.get("usage")
    if provider == "groq" and isinstance(doc.get("x_groq"), Mapping) and doc["x_groq"].get("usage"):
        path, usage = "x_groq.usage", doc["x_groq"]["usage"]
    if usage is None:  # every chat chunk but the include_usage one carries "usage": null
        return
    usage = mapping(provider, usage, path)
    is_responses = "input_tokens" in usage or "output_tokens" in usage
    state.counts = _openai_counts(provider, usage, path, _OPENAI_RESPONSES if is_responses else _OPENAI_CHAT)
    state.final = True
