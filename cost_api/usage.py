"""Turn a provider's usage report into the request log's four token columns.

For gateways: `from_response(provider, body)` reads a non-streamed JSON body;
`StreamUsage(provider)` is fed each decoded SSE event (or raw line) of a stream and `.result()`
gives the same `Usage`. The rules are the normalisation table of docs/gateway-integration.md:
`prompt_tokens` excludes cache reads and writes, `completion_tokens` includes reasoning.

Pure: no I/O. A frame that breaks the provider's contract (a count that is negative or not an
integer, cached tokens above the prompt) raises `UsageError`; a stream that ended without its
final usage report gives `Usage.exact == False` rather than zeros passed off as real.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

PROVIDERS = ("anthropic", "cohere", "google", "groq", "mistral", "ollama", "openai", "together")


class UsageError(ValueError):
    """A usage frame the provider's contract does not allow, or an unknown provider."""

    def __init__(self, provider: str, field: str, message: str) -> None:
        super().__init__(f"{provider}: {field}: {message}")
        self.provider = provider
        self.field = field


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """The request log's token columns for one call.

    `exact` is False when the provider's final usage report never arrived (a stream cut short,
    `include_usage` not requested, an error body): the counts are then what was seen, often 0.
    """

    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str | None = None
    exact: bool = True

    @property
    def total_prompt_tokens(self) -> int:
        """Every input token the call sent: full-rate, cache-read and cache-write."""
        return self.prompt_tokens + self.cache_read_tokens + self.cache_write_tokens


_Counts = tuple[int, int, int, int]  # prompt, completion, cache_read, cache_write


class _State:
    __slots__ = ("anthropic", "counts", "final", "model")

    def __init__(self) -> None:
        self.counts: _Counts | None = None  # the latest normalised report
        self.final = False  # the report seen is the provider's last word
        self.model: str | None = None
        self.anthropic: dict[str, Any] = {}  # message_start usage, overwritten by message_delta


# --- field access -------------------------------------------------------------------------


def _count(provider: str, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> int:
    value = obj.get(key)
    if value is None:
        if required:
            raise UsageError(provider, f"{path}.{key}", "missing")
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Cohere's SDK types counts as float; 17.0 is 17
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(provider, f"{path}.{key}", f"expected a whole number, got {value!r}")
    if value < 0:
        raise UsageError(provider, f"{path}.{key}", f"negative count {value}")
    return value


def _object(provider: str, value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UsageError(provider, path, f"expected an object, got {type(value).__name__}")
    return value


def _cached(provider: str, prompt: int, details: Mapping[str, Any], key: str, path: str) -> int:
    cached = _count(provider, details, key, path)
    if cached > prompt:
        raise UsageError(provider, f"{path}.{key}", f"{cached} cached tokens exceed the prompt's {prompt}")
    return cached


def _model(state: _State, value: Any) -> None:
    if isinstance(value, str) and value:
        state.model = value


# --- one normaliser per usage shape ----------------------------------------------------------


def _openai_counts(provider: str, usage: Mapping[str, Any], path: str, names: tuple[str, str, str]) -> _Counts:
    """Chat Completions (prompt/completion) and Responses (input/output) share one shape.

    The prompt total includes cache reads and cache writes (gpt-5.6+ bill writes apart): the
    full-rate rest is what remains once both are taken out.
    """
    prompt_key, completion_key, details_key = names
    prompt = _count(provider, usage, prompt_key, path, required=True)
    completion = _count(provider, usage, completion_key, path, required=True)
    details_path = f"{path}.{details_key}"
    details = _object(provider, usage.get(details_key), details_path)
    cached = _cached(provider, prompt, details, "cached_tokens", details_path)
    written = _count(provider, details, "cache_write_tokens", details_path)
    if cached + written > prompt:
        raise UsageError(
            provider,
            f"{details_path}.cache_write_tokens",
            f"{cached} cached and {written} cache-write tokens exceed the prompt's {prompt}",
        )
    return prompt - cached - written, completion, cached, written


_OPENAI_CHAT = ("prompt_tokens", "completion_tokens", "prompt_tokens_details")
_OPENAI_RESPONSES = ("input_tokens", "output_tokens", "input_tokens_details")


def _anthropic_counts(provider: str, usage: Mapping[str, Any]) -> _Counts:
    path = "usage"
    return (
        _count(provider, usage, "input_tokens", path, required=True),
        _count(provider, usage, "output_tokens", path, required=True),
        _count(provider, usage, "cache_read_input_tokens", path),
        _count(provider, usage, "cache_creation_input_tokens", path),
    )


def _gemini_counts(provider: str, meta: Mapping[str, Any]) -> _Counts:
    # proto3 JSON leaves out zero counts, so every field is optional.
    path = "usageMetadata"
    prompt = _count(provider, meta, "promptTokenCount", path)
    cached = _cached(provider, prompt, meta, "cachedContentTokenCount", path)
    tool_prompt = _count(provider, meta, "toolUsePromptTokenCount", path)
    candidates = _count(provider, meta, "candidatesTokenCount", path)
    thoughts = _count(provider, meta, "thoughtsTokenCount", path)
    return prompt - cached + tool_prompt, candidates + thoughts, cached, 0


def _cohere_counts(provider: str, usage: Mapping[str, Any], path: str) -> _Counts:
    # Bill on billed_units: usage.tokens also counts the unbilled prompt template.
    path = f"{path}.billed_units"
    if usage.get("billed_units") is None:
        raise UsageError(provider, path, "missing")
    billed = _object(provider, usage["billed_units"], path)
    return (
        _count(provider, billed, "input_tokens", path),
        _count(provider, billed, "output_tokens", path),
        0,
        0,
    )


# --- one observer per provider: read a frame (or a whole body) into the state ----------------

_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _observe_openai_compatible(provider: str, doc: Mapping[str, Any], state: _State) -> None:
    if doc.get("type") in _RESPONSES_TERMINAL:  # Responses API stream: the final event wraps the body
        doc = _object(provider, doc.get("response"), "response")
    _model(state, doc.get("model"))
    path, usage = "usage", doc.get("usage")
    if provider == "groq" and isinstance(doc.get("x_groq"), Mapping) and doc["x_groq"].get("usage"):
        path, usage = "x_groq.usage", doc["x_groq"]["usage"]
    if usage is None:  # every chat chunk but the include_usage one carries "usage": null
        return
    usage = _object(provider, usage, path)
    is_responses = "input_tokens" in usage or "output_tokens" in usage
    state.counts = _openai_counts(provider, usage, path, _OPENAI_RESPONSES if is_responses else _OPENAI_CHAT)
    state.final = True


def _observe_anthropic(provider: str, doc: Mapping[str, Any], state: _State) -> None:
    kind = doc.get("type")
    if kind == "message_start":
        message = _object(provider, doc.get("message"), "message")
        _model(state, message.get("model"))
        usage = message.get("usage")
    elif kind in ("message_delta", "message"):  # cumulative totals / a whole non-streamed body
        _model(state, doc.get("model"))
        usage = doc.get("usage")
    else:
        return
    if usage is None:
        return
    # message_delta counts are running totals: overwrite, never add; absent fields keep their value.
    fields = _object(provider, usage, "usage")
    state.anthropic.update((key, value) for key, value in fields.items() if value is not None)
    state.counts = _anthropic_counts(provider, state.anthropic)
    state.final = kind != "message_start"  # message_start's output_tokens is a placeholder


def _observe_google(provider: str, doc: Mapping[str, Any], state: _State) -> None:
    _model(state, doc.get("modelVersion"))
    meta = doc.get("usageMetadata")
    if meta is None:
        return
    # Each chunk's usageMetadata is a running snapshot: the latest replaces, never adds.
    state.counts = _gemini_counts(provider, _object(provider, meta, "usageMetadata"))
    candidates = doc.get("candidates") or []
    finished = any(isinstance(c, Mapping) and c.get("finishReason") for c in candidates)
    blocked = bool(_object(provider, doc.get("promptFeedback"), "promptFeedback").get("blockReason"))
    state.final = state.final or finished or blocked


def _observe_cohere(provider: str, doc: Mapping[str, Any], state: _State) -> None:
    if "type" not in doc:  # a non-streamed body
        path, usage = "usage", doc.get("usage")
    elif doc["type"] == "message-end":
        path = "delta.usage"
        usage = _object(provider, doc.get("delta"), "delta").get("usage")
    else:
        return
    if usage is None:
        return
    state.counts = _cohere_counts(provider, _object(provider, usage, path), path)
    state.final = True


def _observe_ollama(provider: str, doc: Mapping[str, Any], state: _State) -> None:
    _model(state, doc.get("model"))
    if doc.get("done") is not True:
        return
    # Ollama omits zero counts (e.g. prompt_eval_count on a fully cached prompt).
    state.counts = (
        _count(provider, doc, "prompt_eval_count", "$"),
        _count(provider, doc, "eval_count", "$"),
        0,
        0,
    )
    state.final = True


_Observer = Callable[[str, Mapping[str, Any], _State], None]

_OBSERVERS: dict[str, _Observer] = {
    "anthropic": _observe_anthropic,
    "cohere": _observe_cohere,
    "google": _observe_google,
    "groq": _observe_openai_compatible,
    "mistral": _observe_openai_compatible,
    "ollama": _observe_ollama,
    "openai": _observe_openai_compatible,
    "together": _observe_openai_compatible,
}


def _observer(provider: str) -> _Observer:
    try:
        return _OBSERVERS[provider]
    except KeyError:
        raise UsageError(provider, "provider", f"unknown provider; expected one of {PROVIDERS}") from None


def _decode(provider: str, raw: str | bytes, what: str) -> Mapping[str, Any]:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise UsageError(provider, what, f"not valid JSON: {exc}") from None
    return _object(provider, doc, what)


def _event(provider: str, event: Mapping[str, Any] | str | bytes) -> Mapping[str, Any] | None:
    """A decoded event, or None for lines that carry no JSON (`event:`, comments, `[DONE]`)."""
    if isinstance(event, Mapping):
        return event
    line = (event.decode() if isinstance(event, bytes) else event).strip()
    if line.startswith("data:"):
        payload = line.removeprefix("data:").strip()
        return None if payload == "[DONE]" else _decode(provider, payload, "data")
    if line.startswith("{"):  # Ollama streams NDJSON: one bare object per line
        return _decode(provider, line, "line")
    return None  # event:, id:, retry:, ": comment", blank


def _usage(state: _State, *, exact: bool) -> Usage:
    prompt, completion, cache_read, cache_write = state.counts or (0, 0, 0, 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        model=state.model,
        exact=exact,
    )


class StreamUsage:
    """Collects a streamed call's usage: feed every event, then read `result()`."""

    __slots__ = ("_observe", "_state", "provider")

    def __init__(self, provider: str) -> None:
        self._observe = _observer(provider)
        self.provider = provider
        self._state = _State()

    def feed(self, event: Mapping[str, Any] | str | bytes) -> None:
        """One SSE event: a decoded dict, or a raw line (`data: {...}`; others are ignored)."""
        doc = _event(self.provider, event)
        if doc is not None:
            self._observe(self.provider, doc, self._state)

    def result(self) -> Usage:
        return _usage(self._state, exact=self._state.final)


def from_response(provider: str, body: Mapping[str, Any] | str | bytes) -> Usage:
    """Usage of a non-streamed response body. A body without usage (an error) is not exact."""
    observe = _observer(provider)
    doc = body if isinstance(body, Mapping) else _decode(provider, body, "body")
    state = _State()
    observe(provider, doc, state)
    return _usage(state, exact=state.counts is not None)
