"""The two ways in: `from_response` for a non-streamed body, `StreamUsage` for a stream; each provider's
frames go to its observer, which reads them into the state a `Usage` is made of."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Mapping
from typing import Any

from cost_api.usage.anthropic import observe_anthropic
from cost_api.usage.base import State, Usage, UsageError
from cost_api.usage.cohere import observe_cohere
from cost_api.usage.frames import JsonArray, decode, sse
from cost_api.usage.gemini import observe_google
from cost_api.usage.ollama import observe_ollama
from cost_api.usage.openai import observe_openai_compatible

__all__ = ["PROVIDERS", "StreamUsage", "from_response"]

PROVIDERS = ("anthropic", "cohere", "google", "groq", "mistral", "ollama", "openai", "together")


_Observer = Callable[[str, Mapping[str, Any], State], None]

_OBSERVERS: dict[str, _Observer] = {
    "anthropic": observe_anthropic,
    "cohere": observe_cohere,
    "google": observe_google,
    "groq": observe_openai_compatible,
    "mistral": observe_openai_compatible,
    "ollama": observe_ollama,
    "openai": observe_openai_compatible,
    "together": observe_openai_compatible,
}


def _observer(provider: str) -> _Observer:
    try:
        return _OBSERVERS[provider]
    except KeyError:
        raise UsageError(provider, "provider", f"unknown provider; expected one of {PROVIDERS}") from None


def _usage(state: State, *, exact: bool) -> Usage:
    prompt, completion, cache_read, cache_write = state.counts or (0, 0, 0, 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        model=state.model,
        exact=exact,
        cache_write_1h_tokens=state.write_1h,
        service_tier=state.tier,
    )


class StreamUsage:
    """Collects a streamed call's usage: feed every event, then read `result()`."""

    __slots__ = ("_array", "_decoder", "_observe", "_state", "_unread", "provider")

    def __init__(self, provider: str) -> None:
        self._observe = _observer(provider)
        self.provider = provider
        self._state = State()
        self._decoder = codecs.getincrementaldecoder("utf-8")()  # bytes may split a character
        self._array: JsonArray | None = None
        self._unread = False

    def feed(self, event: Mapping[str, Any] | str | bytes) -> None:
        """One piece of the stream, as text or bytes, or an event an SSE client already decoded.

        Text is an SSE line (`data: {...}`; other fields are skipped), one or more whole SSE
        events, an NDJSON line (Ollama), or a piece of a JSON array streamed without SSE
        (Gemini without `alt=sse`: pieces split anywhere, fed in order).
        """
        if isinstance(event, Mapping):
            self._observe(self.provider, event, self._state)
            return
        text = event if isinstance(event, str) else self._decoder.decode(event)
        if self._array is None and text.lstrip().startswith("[") and text.strip() != "[DONE]":
            self._array = JsonArray()
        if self._array is not None:
            docs = [decode(self.provider, element, "element") for element in self._array.feed(text)]
        else:
            docs, unread = sse(self.provider, text)
            self._unread = self._unread or unread
        for doc in docs:
            self._observe(self.provider, doc, self._state)

    def result(self) -> Usage:
        """Exact only when the provider's final report arrived and nothing fed was left unread."""
        lost = self._unread or (self._array is not None and self._array.lost)
        return _usage(self._state, exact=self._state.final and not lost)


def from_response(provider: str, body: Mapping[str, Any] | str | bytes) -> Usage:
    """Usage of a non-streamed response body. A body without usage (an error) is not exact."""
    observe = _observer(provider)
    doc = body if isinstance(body, Mapping) else decode(provider, body, "body")
    state = State()
    observe(provider, doc, state)
    return _usage(state, exact=state.counts is not None)
