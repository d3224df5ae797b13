"""What every provider's reader shares: the `Usage` it gives, the `UsageError` it raises, the
state a stream's frames are read into, and reading a count the way the providers' contracts allow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Counts", "State", "Usage", "UsageError", "cached_count", "count", "mapping", "set_model"]


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


Counts = tuple[int, int, int, int]  # prompt, completion, cache_read, cache_write


class State:
    __slots__ = ("anthropic", "counts", "final", "model", "tier", "write_1h")

    def __init__(self) -> None:
        self.counts: Counts | None = None  # the latest normalised report
        self.final = False  # the report seen is the provider's last word
        self.model: str | None = None
        self.anthropic: dict[str, Any] = {}  # message_start usage, overwritten by message_delta
        self.write_1h = 0  # the part of the cache writes that went to the 1-hour cache (Anthropic)
        self.tier: str | None = None  # the service tier that served the call (OpenAI)


# --- field access -------------------------------------------------------------------------


def count(provider: str, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> int:
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


def mapping(provider: str, value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UsageError(provider, path, f"expected an object, got {type(value).__name__}")
    return value


def cached_count(provider: str, prompt: int, details: Mapping[str, Any], key: str, path: str) -> int:
    cached = count(provider, details, key, path)
    if cached > prompt:
        raise UsageError(provider, f"{path}.{key}", f"{cached} cached tokens exceed the prompt's {prompt}")
    return cached


def set_model(state: State, value: Any) -> None:
    if isinstance(value, str) and value:
        state.model = value
