"""Google Gemini's usage: `usageMetadata`, a running snapshot on each chunk of a stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cost_api.usage.base import Counts, State, cached_count, count, mapping, set_model

__all__ = ["observe_google"]


def _gemini_counts(provider: str, meta: Mapping[str, Any]) -> Counts:
    # proto3 JSON leaves out zero counts, so every field is optional.
    path = "usageMetadata"
    prompt = count(provider, meta, "promptTokenCount", path)
    cached = cached_count(provider, prompt, meta, "cachedContentTokenCount", path)
    tool_prompt = count(provider, meta, "toolUsePromptTokenCount", path)
    candidates = count(provider, meta, "candidatesTokenCount", path)
    thoughts = count(provider, meta, "thoughtsTokenCount", path)
    return prompt - cached + tool_prompt, candidates + thoughts, cached, 0


def observe_google(provider: str, doc: Mapping[str, Any], state: State) -> None:
    set_model(state, doc.get("modelVersion"))
    meta = doc.get("usageMetadata")
    if meta is None:
        return
    # Each chunk's usageMetadata is a running snapshot: the latest replaces, never adds.
    state.counts = _gemini_counts(provider, mapping(provider, meta, "usageMetadata"))
    candidates = doc.get("candidates") or []
    finished = any(isinstance(c, Mapping) and c.get("finishReason") for c in candidates)
    blocked = bool(mapping(provider, doc.get("promptFeedback"), "promptFeedback").get("blockReason"))
    state.final = state.final or finished or blocked
