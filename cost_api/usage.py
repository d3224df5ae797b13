"""Turn a provider's usage report into the request log's token columns.

For gateways: `from_response(provider, body)` reads a non-streamed JSON body;
`StreamUsage(provider)` is fed a stream as it arrives (decoded SSE events, raw lines, whole SSE
events, or the pieces of Gemini's JSON-array stream) and `.result()` gives the same `Usage`.
The rules are the normalisation table of docs/gateway-integration.md: `prompt_tokens` excludes
cache reads and writes, `completion_tokens` includes reasoning. Anthropic's 1-hour cache writes
(`cache_write_1h_tokens`, a part of `cache_write_tokens`) and OpenAI's `service_tier` fill the log's
optional columns (docs/request-log.md).

Pure: no I/O. A frame that breaks the provider's contract (a count that is negative or not an
integer, cached tokens above the prompt) raises `UsageError`; a stream that ended without its
final usage report, or that carried text it could not read, gives `Usage.exact == False` rather
than counts passed off as real.
"""

from __future__ import annotations

import codecs
import re
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
    `cache_write_1h_tokens` is the part of `cache_write_tokens` written to Anthropic's 1-hour cache;
    `service_tier` the tier OpenAI says served the call (`standard`, `flex`, `priority`, …; None
    when the provider does not say): the log's optional columns, with `exact` as `usage_exact`.
    """

    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str | None = None
    exact: bool = True
    cache_write_1h_tokens: int = 0
    service_tier: str | None = None

    @property
    def total_prompt_tokens(self) -> int:
        """Every input token the call sent: full-rate, cache-read and cache-write."""
        return self.prompt_tokens + self.cache_read_tokens + self.cache_write_tokens


_Counts = tuple[int, int, int, int]  # prompt, completion, cache_read, cache_write


class _State:
    __slots__ = ("anthropic", "counts", "final", "model", "tier", "write_1h")

    def __init__(self) -> None:
        self.counts: _Counts | None = None  # the latest normalised report
        self.final = False  # the report seen is the provider's last word
        self.model: str | None = None
        self.anthropic: dict[str, Any] = {}  # message_start usage, overwritten by message_delta
        self.write_1h = 0  # the part of the cache writes that went to the 1-hour cache (Anthropic)
        self.tier: str | None = None  # the service tier that served the call (OpenAI)


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


def _anthropic_write_1h(provider: str, usage: Mapping[str, Any], written: int) -> int:
    """`cache_creation.ephemeral_1h_input_tokens`: the 1-hour part of `cache_creation_input_tokens`
    (the total of both cache lifetimes), billed at 2x input instead of 1.25x."""
    path = "usage.cache_creation"
    one_hour = _count(provider, _object(provider, usage.get("cache_creation"), path), "ephemeral_1h_input_tokens", path)
    if one_hour > written:
        raise UsageError(
            provider,
            f"{path}.ephemeral_1h_input_tokens",
            f"{one_hour} 1-hour cache writes exceed the {written} of cache_creation_input_tokens",
        )
    return one_hour


_OPENAI_TIERS = {"default": "standard"}  # OpenAI's name for the standard tier


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
    tier = doc.get("service_tier")
    if provider == "openai" and isinstance(tier, str) and tier:  # on every chunk and in response bodies
        state.tier = _OPENAI_TIERS.get(tier.lower(), tier.lower())
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
    state.write_1h = _anthropic_write_1h(provider, state.anthropic, state.counts[3])
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


_SSE_FIELDS = ("data", "event", "id", "retry")


def _sse(provider: str, text: str) -> tuple[list[Mapping[str, Any]], bool]:
    """The JSON documents in SSE text, and whether some of the text could not be read.

    The text is one line or whole events (`event:` and `data:` lines, blank lines between events):
    an event's `data:` lines are joined with newlines into one payload, as the SSE spec says.
    `event:`, `id:`, `retry:`, comments, blank lines and `[DONE]` (with or without `data:`) carry
    nothing to read; a bare `{...}` line is an event's payload or one of Ollama's NDJSON objects.
    Any other line is text this stream cannot read (a piece of a frame, an unknown field): the
    caller marks the result inexact.
    """
    docs: list[Mapping[str, Any]] = []
    unread = False
    data: list[str] = []

    def end_event() -> None:
        payload = "\n".join(data).strip()
        data.clear()
        if payload and payload != "[DONE]":
            docs.append(_decode(provider, payload, "data"))

    for line in text.splitlines():
        line = line.strip()
        field = line.partition(":")[0]
        if not line:
            end_event()
        elif field == "data":
            data.append(line.partition(":")[2])
        elif line.startswith("{"):
            end_event()
            docs.append(_decode(provider, line, "line"))
        elif not (line.startswith(":") or field in _SSE_FIELDS or line == "[DONE]"):
            unread = True
    end_event()
    return docs, unread


_IN_STRING = re.compile(r'[\\"]')
_IN_ELEMENT = re.compile(r'[\[\]{}"]')


class _JsonArray:
    """The elements of a JSON array that arrives in pieces split anywhere.

    Gemini's `streamGenerateContent` without `alt=sse` streams one array of response objects,
    `[{...},\r\n{...}]`. Each complete element is handed back as text; `lost` tells whether
    text outside any element was not part of the array, or an element was left unfinished.
    """

    __slots__ = ("_buffer", "_closed", "_depth", "_in_string", "_pos", "_start", "_stray")

    def __init__(self) -> None:
        self._buffer = ""  # from the start of the unfinished element, if any
        self._pos = 0  # scanned up to here in _buffer
        self._start = 0  # where the unfinished element starts in _buffer
        self._depth = 0  # 0 outside the array, 1 between its elements, 2+ inside one
        self._in_string = False
        self._closed = False
        self._stray = False  # text where the array allows none

    @property
    def lost(self) -> bool:
        return self._stray or self._depth > 1

    def feed(self, text: str) -> list[str]:
        buffer, i, elements = self._buffer + text, self._pos, []
        while i < len(buffer):
            if self._depth > 1:
                found = (_IN_STRING if self._in_string else _IN_ELEMENT).search(buffer, i)
                if found is None:
                    i = len(buffer)
                    break
                i, char = found.start(), found.group()
                if char == "\\":
                    i += 2  # the escaped character, which may be in the next piece
                    continue
                if char == '"':
                    self._in_string = not self._in_string
                elif char in "{[":
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        elements.append(buffer[self._start : i + 1])
            else:
                char = buffer[i]
                if char in "{[" and self._depth == 1:
                    self._depth, self._start = 2, i
                elif char == "[" and self._depth == 0 and not self._closed:
                    self._depth = 1
                elif char == "]" and self._depth == 1:
                    self._depth, self._closed = 0, True
                elif not (char.isspace() or (char == "," and self._depth == 1)):
                    self._stray = True
            i += 1
        if self._depth > 1:  # keep only the unfinished element
            self._buffer, self._pos, self._start = buffer[self._start :], i - self._start, 0
        else:
            self._buffer, self._pos = "", 0
        return elements


def _usage(state: _State, *, exact: bool) -> Usage:
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
        self._state = _State()
        self._decoder = codecs.getincrementaldecoder("utf-8")()  # bytes may split a character
        self._array: _JsonArray | None = None
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
            self._array = _JsonArray()
        if self._array is not None:
            docs = [_decode(self.provider, element, "element") for element in self._array.feed(text)]
        else:
            docs, unread = _sse(self.provider, text)
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
    doc = body if isinstance(body, Mapping) else _decode(provider, body, "body")
    state = _State()
    observe(provider, doc, state)
    return _usage(state, exact=state.counts is not None)
