"""cost_api.usage: provider usage frames → the request log's token columns.

Fixtures in tests/fixtures/usage/ are recorded-shape frames: the providers' field names, nesting
and event order, with hand-chosen counts. Expected columns are computed by hand from the
normalisation table, not by the code under test.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cost_api.usage import PROVIDERS, StreamUsage, Usage, UsageError, from_response

FIXTURES = Path(__file__).parents[1] / "fixtures" / "usage"


def _stream(provider: str, lines: list[str] | list[dict[str, Any]]) -> Usage:
    stream = StreamUsage(provider)
    for line in lines:
        stream.feed(line)
    return stream.result()


def _fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def _data_events(name: str) -> list[dict[str, Any]]:
    """The fixture's frames as decoded dicts, the way an SSE client library hands them over."""
    lines = _fixture_lines(name)
    return [json.loads(line.removeprefix("data:")) for line in lines if line.strip().startswith(("data: {", "{"))]


def U(
    prompt: int,
    completion: int,
    read: int = 0,
    write: int = 0,
    model: str | None = None,
    *,
    write_1h: int = 0,
    tier: str | None = None,
) -> Usage:
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_tokens=read,
        cache_write_tokens=write,
        model=model,
        cache_write_1h_tokens=write_1h,
        service_tier=tier,
    )


STREAMS = [
    # 1200 prompt − 1024 cached; usage: null chunks before it are ignored.
    ("openai", "openai_chat_stream.sse", U(176, 300, 1024, model="gpt-4o-2024-08-06")),
    # response.completed: 2000 − 1536 cached; 900 output already includes 640 reasoning.
    ("openai", "openai_responses_stream.sse", U(464, 900, 1536, model="o4-mini-2025-04-16")),
    # message_start (25 in, 1800 cache write, 1 out) then cumulative message_delta (412 out):
    # taking the last gives 25/412, adding would give 50/413.
    ("anthropic", "anthropic_stream.sse", U(25, 412, 0, 1800, model="claude-sonnet-4-5-20250929")),
    # billed_units 17/12, not tokens 215/12.
    ("cohere", "cohere_stream.sse", U(17, 12)),
    # Last snapshot: 220 prompt − 128 cached; 5 candidates + 185 thoughts. Summing the three
    # snapshots would give 276 prompt and 580 completion.
    ("google", "google_stream.sse", U(92, 190, 128, model="gemini-2.5-flash")),
    ("mistral", "mistral_stream.sse", U(10, 25, model="mistral-large-2411")),
    # Groq's usage in the last chunk's x_groq.usage.
    ("groq", "groq_stream.sse", U(18, 439, model="llama-3.3-70b-versatile")),
    ("together", "together_stream.sse", U(44, 3, model="meta-llama/Llama-3.3-70B-Instruct-Turbo")),
    ("ollama", "ollama_stream.ndjson", U(26, 298, model="llama3.2")),
]

RESPONSES = [
    # 2048 − 1792 cached; 830 completion includes 768 reasoning. service_tier "default": standard.
    ("openai", "openai_chat_response.json", U(256, 830, 1792, model="o3-mini-2025-01-31", tier="standard")),
    ("openai", "openai_responses_response.json", U(328, 52, 0, model="gpt-4.1-2025-04-14")),
    ("anthropic", "anthropic_response.json", U(14320, 642, 2048, 0, model="claude-3-5-sonnet-20241022")),
    # Counts typed float (5.0) as Cohere's SDK serialises them.
    ("cohere", "cohere_response.json", U(5, 418)),
    # 1500 − 1024 cached + 96 tool-use prompt; 40 candidates + 310 thoughts.
    ("google", "google_response.json", U(572, 350, 1024, model="gemini-2.5-pro")),
    ("mistral", "mistral_response.json", U(88, 2, model="mistral-small-2503")),
    ("groq", "groq_response.json", U(41, 27, model="llama-3.3-70b-versatile")),
    ("together", "together_response.json", U(120, 9, model="meta-llama/Llama-3.3-70B-Instruct-Turbo")),
    ("ollama", "ollama_response.json", U(26, 3, model="qwen2.5:7b")),
]


@pytest.mark.parametrize(("provider", "name", "expected"), STREAMS, ids=[s[1] for s in STREAMS])
def test_stream_fixture_raw_lines(provider: str, name: str, expected: Usage) -> None:
    assert _stream(provider, _fixture_lines(name)) == expected


@pytest.mark.parametrize(("provider", "name", "expected"), STREAMS, ids=[s[1] for s in STREAMS])
def test_stream_fixture_decoded_events(provider: str, name: str, expected: Usage) -> None:
    assert _stream(provider, _data_events(name)) == expected


@pytest.mark.parametrize(("provider", "name", "expected"), RESPONSES, ids=[r[1] for r in RESPONSES])
def test_response_fixture(provider: str, name: str, expected: Usage) -> None:
    raw = (FIXTURES / name).read_bytes()
    assert from_response(provider, raw) == expected
    assert from_response(provider, raw.decode()) == expected
    assert from_response(provider, json.loads(raw)) == expected


def test_raw_lines_as_bytes_and_without_space_after_data() -> None:
    lines = [line.encode() for line in _fixture_lines("anthropic_stream.sse")]
    assert _stream("anthropic", lines).completion_tokens == 412
    assert _stream("mistral", ['data:{"usage":{"prompt_tokens":3,"completion_tokens":4}}']) == U(3, 4)


def test_sse_comments_and_other_fields_are_ignored() -> None:
    lines = [": keep-alive", "id: 7", "retry: 1000", "event: completion", "", "data: [DONE]"]
    assert _stream("openai", lines) == Usage(prompt_tokens=0, completion_tokens=0, exact=False)


# --- stream pieces: whole SSE events at once, Gemini's JSON array in pieces -----------------

SSE_STREAMS = [s for s in STREAMS if s[1].endswith(".sse")]


@pytest.mark.parametrize(("provider", "name", "expected"), SSE_STREAMS, ids=[s[1] for s in SSE_STREAMS])
def test_whole_sse_events_fed_as_one_string(provider: str, name: str, expected: Usage) -> None:
    text = (FIXTURES / name).read_text()
    events = [block + "\n\n" for block in text.split("\n\n")]  # `event:` + `data:` lines per string
    assert _stream(provider, events) == expected
    assert _stream(provider, [text]) == expected  # the whole stream at once
    assert _stream(provider, [text.replace("\n", "\r\n").encode()]) == expected  # CRLF, as bytes


def test_an_events_data_lines_are_one_payload() -> None:
    # SSE joins an event's data: lines with "\n"; a JSON payload split over two lines is one document.
    event = (
        "event: message_delta\n"
        'data: {"type": "message_delta",\n'
        'data:  "usage": {"input_tokens": 7, "output_tokens": 9}}\n\n'
    )
    assert _stream("anthropic", [event]) == U(7, 9)


GEMINI_ARRAY = (FIXTURES / "google_stream_array.json").read_bytes()
# google_stream.sse's three snapshots as one JSON array (no alt=sse): the last one counts.
GEMINI_ARRAY_USAGE = U(92, 190, 128, model="gemini-2.5-flash")


@pytest.mark.parametrize("size", [1, 2, 7, 64, 500, len(GEMINI_ARRAY)])
def test_gemini_json_array_stream_in_pieces(size: int) -> None:
    # Pieces of every size split lines, strings, escapes ("\\", '\\"') and "é"'s two UTF-8 bytes.
    pieces = [GEMINI_ARRAY[i : i + size] for i in range(0, len(GEMINI_ARRAY), size)]
    assert _stream("google", pieces) == GEMINI_ARRAY_USAGE
    if size > 1:  # as text too (a piece of text never splits a character)
        text = GEMINI_ARRAY.decode()
        assert _stream("google", [text[i : i + size] for i in range(0, len(text), size)]) == GEMINI_ARRAY_USAGE


@given(st.lists(st.integers(min_value=0, max_value=len(GEMINI_ARRAY)), max_size=40))
def test_gemini_json_array_split_anywhere(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(GEMINI_ARRAY)]
    pieces = [GEMINI_ARRAY[a:b] for a, b in itertools.pairwise(bounds)]
    assert _stream("google", pieces) == GEMINI_ARRAY_USAGE


def test_gemini_json_array_cut_inside_an_element_is_not_exact() -> None:
    text = GEMINI_ARRAY.decode()
    cut = text.rindex('"finishReason"')  # inside the last element, before its counts
    result = _stream("google", [text[:cut]])
    # the two complete snapshots before it: 220 − 128 cached; 4 candidates + 185 thoughts
    assert result == Usage(
        prompt_tokens=92,
        completion_tokens=189,
        cache_read_tokens=128,
        model="gemini-2.5-flash",
        exact=False,
    )


def test_gemini_json_array_with_stray_text_is_not_exact() -> None:
    result = _stream("google", [GEMINI_ARRAY, b"\n<html>502</html>"])
    assert (result.completion_tokens, result.exact) == (190, False)


def test_unreadable_stream_text_is_not_exact() -> None:
    lines = _fixture_lines("openai_chat_stream.sse")
    final = next(line for line in lines if '"choices":[]' in line)  # the include_usage chunk
    # that chunk cut in two and fed as two strings: its tail is neither an SSE line nor a JSON object
    cut = [*lines[: lines.index(final)], final[:80], final[80:], "data: [DONE]"]
    with pytest.raises(UsageError):  # the head is a `data:` line whose JSON is cut short
        _stream("openai", cut)
    result = _stream("openai", [line for line in cut if line != final[:80]])
    assert (result.prompt_tokens, result.exact) == (0, False)
    # an unknown field is unreadable too; the known ones and comments are not
    assert _stream("openai", [final, "usage: 12"]).exact is False
    assert _stream("openai", [final, ": ping", "id: 3", "retry: 10", "event: x", "[DONE]"]).exact is True


# --- missing usage: flagged, not zeros passed off as exact ----------------------------------


def test_openai_stream_without_include_usage_is_not_exact() -> None:
    lines = [line for line in _fixture_lines("openai_chat_stream.sse") if '"choices":[]' not in line]
    result = _stream("openai", lines)
    assert result == Usage(prompt_tokens=0, completion_tokens=0, model="gpt-4o-2024-08-06", exact=False)


def test_anthropic_stream_cut_before_message_delta_keeps_start_counts_but_is_not_exact() -> None:
    lines = _fixture_lines("anthropic_stream.sse")[:2]  # event: message_start + its data
    result = _stream("anthropic", lines)
    assert (result.prompt_tokens, result.completion_tokens, result.cache_write_tokens) == (25, 1, 1800)
    assert result.exact is False


def test_gemini_stream_cut_before_finish_reason_is_not_exact() -> None:
    result = _stream("google", _fixture_lines("google_stream.sse")[:3])  # two snapshots, no finishReason
    assert (result.prompt_tokens, result.completion_tokens, result.exact) == (92, 189, False)


def test_gemini_blocked_prompt_is_final() -> None:
    frame = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}
    assert _stream("google", [frame]) == U(9, 0)


def test_ollama_stream_without_done_is_not_exact() -> None:
    result = _stream("ollama", _fixture_lines("ollama_stream.ndjson")[:2])
    assert result == Usage(prompt_tokens=0, completion_tokens=0, model="llama3.2", exact=False)


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        (
            "openai",
            {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
        ),
        ("anthropic", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        (
            "google",
            {
                "error": {
                    "code": 429,
                    "message": "Resource has been exhausted",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
        ),
        ("cohere", {"id": "x", "message": "invalid request"}),
        ("ollama", {"error": "model 'llama9' not found"}),
    ],
)
def test_response_without_usage_is_not_exact(provider: str, body: dict[str, Any]) -> None:
    assert from_response(provider, body) == Usage(prompt_tokens=0, completion_tokens=0, exact=False)


# --- provider traps -------------------------------------------------------------------------


def test_anthropic_delta_without_input_fields_keeps_message_start_values() -> None:
    start = {
        "type": "message_start",
        "message": {
            "model": "claude-3-5-haiku-20241022",
            "usage": {"input_tokens": 300, "cache_read_input_tokens": 4000, "output_tokens": 1},
        },
    }
    # Older API versions: message_delta carries output_tokens only; newer ones send null for the rest.
    first = {"type": "message_delta", "usage": {"output_tokens": 50}}
    second = {"type": "message_delta", "usage": {"output_tokens": 120, "input_tokens": None}}
    assert _stream("anthropic", [start, first, second]) == U(300, 120, 4000, model="claude-3-5-haiku-20241022")


def test_openai_stream_usage_null_chunks_do_not_reset_the_total() -> None:
    final = {"model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    trailing = {"model": "gpt-4o-mini", "choices": [], "usage": None}
    assert _stream("openai", [final, trailing]) == U(10, 2, model="gpt-4o-mini")


def test_openai_responses_incomplete_event_is_final() -> None:
    event = {
        "type": "response.incomplete",
        "response": {
            "model": "o3",
            "status": "incomplete",
            "usage": {"input_tokens": 10, "output_tokens": 64},
        },
    }
    assert _stream("openai", [event]) == U(10, 64, model="o3")


# OpenAI's prompt-cache writes (gpt-5.6 and later): the prompt total counts them, so the full-rate
# prompt is prompt_tokens − cached − cache_write. 10,000 prompt tokens of which 8,000 written and
# none read: 2,000 at the input rate, 8,000 at the cache-write rate (not 10,000 at input).
_CHAT_WRITE = {
    "prompt_tokens": 10_000,
    "completion_tokens": 500,
    "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 8_000},
}
# Responses: 6,000 input of which 1,500 read and 2,500 written -> 6000 − 1500 − 2500 = 2,000 full rate.
_RESPONSES_WRITE = {
    "input_tokens": 6_000,
    "input_tokens_details": {"cached_tokens": 1_500, "cache_write_tokens": 2_500},
    "output_tokens": 700,
    "output_tokens_details": {"reasoning_tokens": 300},
}


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([{"model": "gpt-5.6", "usage": _CHAT_WRITE}], U(2_000, 500, 0, 8_000, model="gpt-5.6")),
        (
            [
                {"model": "gpt-5.6", "choices": [{"delta": {"content": "x"}}], "usage": None},
                {"model": "gpt-5.6", "choices": [], "usage": _CHAT_WRITE},
            ],
            U(2_000, 500, 0, 8_000, model="gpt-5.6"),
        ),
        ([{"model": "gpt-5.6", "usage": _RESPONSES_WRITE}], U(2_000, 700, 1_500, 2_500, model="gpt-5.6")),
        (
            [
                {"type": "response.created", "response": {"model": "gpt-5.6", "usage": None}},
                {"type": "response.completed", "response": {"model": "gpt-5.6", "usage": _RESPONSES_WRITE}},
            ],
            U(2_000, 700, 1_500, 2_500, model="gpt-5.6"),
        ),
    ],
    ids=["chat", "chat-stream", "responses", "responses-stream"],
)
def test_openai_cache_writes_leave_the_full_rate_prompt(frames: list[dict[str, Any]], expected: Usage) -> None:
    if len(frames) == 1:
        assert from_response("openai", frames[0]) == expected
    assert _stream("openai", [f"data: {json.dumps(frame)}" for frame in frames]) == expected


# Anthropic's 1-hour cache writes: cache_creation_input_tokens is the total of both lifetimes (5,000
# here), cache_creation.ephemeral_1h_input_tokens the 1-hour part (3,000), billed at 2x input.
_ANTHROPIC_1H = {
    "input_tokens": 40,
    "cache_creation_input_tokens": 5_000,
    "cache_read_input_tokens": 12_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 3_000},
    "output_tokens": 1,
}


def test_anthropic_one_hour_cache_writes() -> None:
    body = {"type": "message", "model": "claude-sonnet-4-5", "usage": {**_ANTHROPIC_1H, "output_tokens": 250}}
    expected = U(40, 250, 12_000, 5_000, model="claude-sonnet-4-5", write_1h=3_000)
    assert from_response("anthropic", body) == expected
    # streamed: message_start has the breakdown; message_delta's cumulative totals leave it out
    # (an absent field keeps its message_start value), or repeat it
    start = {"type": "message_start", "message": {"model": "claude-sonnet-4-5", "usage": _ANTHROPIC_1H}}
    delta = {"type": "message_delta", "usage": {"output_tokens": 250}}
    assert _stream("anthropic", [start, delta]) == expected
    again = {"type": "message_delta", "usage": {**_ANTHROPIC_1H, "output_tokens": 250}}
    assert _stream("anthropic", [f"data: {json.dumps(start)}", f"data: {json.dumps(again)}"]) == expected
    # cut before message_delta: the start's counts, 1-hour writes included, not exact
    cut = _stream("anthropic", [start])
    assert (cut.cache_write_1h_tokens, cut.exact) == (3_000, False)
    # no breakdown (older API versions, or no 1-hour writes): 0
    plain = {"type": "message", "usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 9}}
    assert from_response("anthropic", plain).cache_write_1h_tokens == 0


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        (
            {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 10,
             "cache_creation": {"ephemeral_1h_input_tokens": 11}},
            "usage.cache_creation.ephemeral_1h_input_tokens",
        ),
        (
            {"input_tokens": 1, "output_tokens": 1, "cache_creation": {"ephemeral_1h_input_tokens": -1}},
            "usage.cache_creation.ephemeral_1h_input_tokens",
        ),
        ({"input_tokens": 1, "output_tokens": 1, "cache_creation": 7}, "usage.cache_creation"),
    ],
)  # fmt: skip
def test_anthropic_one_hour_writes_beyond_the_total_raise(usage: dict[str, Any], field: str) -> None:
    with pytest.raises(UsageError) as caught:
        from_response("anthropic", {"type": "message", "usage": usage})
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("reported", "tier"),
    [("default", "standard"), ("flex", "flex"), ("priority", "priority"), ("Scale", "scale"), (None, None)],
)
def test_openai_service_tier(reported: str | None, tier: str | None) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2}
    assert from_response("openai", {"model": "o3", "service_tier": reported, "usage": usage}).service_tier == tier
    # streamed: every chunk carries it; the usage chunk too
    chunks = [
        {"model": "o3", "service_tier": reported, "choices": [{"delta": {"content": "x"}}], "usage": None},
        {"model": "o3", "service_tier": reported, "choices": [], "usage": usage},
    ]
    assert _stream("openai", [f"data: {json.dumps(c)}" for c in chunks]).service_tier == tier
    # Responses: on the response object of response.completed
    event = {
        "type": "response.completed",
        "response": {"model": "o3", "service_tier": reported, "usage": {"input_tokens": 10, "output_tokens": 2}},
    }
    assert _stream("openai", [event]).service_tier == tier


def test_service_tier_is_read_for_openai_only() -> None:
    # Groq says "on_demand"; other providers' tiers are not OpenAI's, and are left to the gateway
    usage = {"prompt_tokens": 1, "completion_tokens": 1}
    body = {"model": "llama-3.1-8b-instant", "service_tier": "on_demand", "usage": usage}
    assert from_response("groq", body).service_tier is None


def test_groq_include_usage_chunk_at_top_level() -> None:
    chunk = {
        "model": "llama-3.1-8b-instant",
        "choices": [],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5},
    }
    assert _stream("groq", [chunk]) == U(7, 5, model="llama-3.1-8b-instant")


def test_ollama_omits_zero_prompt_eval_count() -> None:
    assert from_response("ollama", {"model": "llama3.2", "done": True, "eval_count": 12}) == U(0, 12, model="llama3.2")


def test_total_prompt_tokens() -> None:
    assert U(25, 412, 100, 1800).total_prompt_tokens == 1925


# --- malformed frames and unknown providers -------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "body", "field"),
    [
        ("openai", {"usage": {"prompt_tokens": -1, "completion_tokens": 2}}, "usage.prompt_tokens"),
        ("openai", {"usage": {"prompt_tokens": 1.5, "completion_tokens": 2}}, "usage.prompt_tokens"),
        ("openai", {"usage": {"prompt_tokens": "12", "completion_tokens": 2}}, "usage.prompt_tokens"),
        ("openai", {"usage": {"prompt_tokens": True, "completion_tokens": 2}}, "usage.prompt_tokens"),
        ("openai", {"usage": {"completion_tokens": 2}}, "usage.prompt_tokens"),
        (
            "openai",
            {
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 11},
                }
            },
            "usage.prompt_tokens_details.cached_tokens",
        ),
        (
            "openai",
            {
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 7},
                }
            },
            "usage.prompt_tokens_details.cache_write_tokens",
        ),
        (
            "openai",
            {"usage": {"input_tokens": 5, "output_tokens": 1, "input_tokens_details": {"cache_write_tokens": -1}}},
            "usage.input_tokens_details.cache_write_tokens",
        ),
        ("openai", {"usage": {"input_tokens": 5}}, "usage.output_tokens"),
        (
            "openai",
            {"usage": {"input_tokens": 5, "output_tokens": 1, "input_tokens_details": {"cached_tokens": 6}}},
            "usage.input_tokens_details.cached_tokens",
        ),
        ("openai", {"usage": [1, 2]}, "usage"),
        (
            "anthropic",
            {"type": "message", "usage": {"input_tokens": 3, "output_tokens": -4}},
            "usage.output_tokens",
        ),
        ("anthropic", {"type": "message", "usage": {"output_tokens": 4}}, "usage.input_tokens"),
        (
            "google",
            {"usageMetadata": {"promptTokenCount": 10, "cachedContentTokenCount": 20}},
            "usageMetadata.cachedContentTokenCount",
        ),
        ("google", {"usageMetadata": {"thoughtsTokenCount": 2.5}}, "usageMetadata.thoughtsTokenCount"),
        ("cohere", {"usage": {"tokens": {"input_tokens": 3}}}, "usage.billed_units"),
        ("cohere", {"usage": {"billed_units": {"input_tokens": -3}}}, "usage.billed_units.input_tokens"),
        (
            "groq",
            {"x_groq": {"usage": {"prompt_tokens": 1, "completion_tokens": -1}}},
            "x_groq.usage.completion_tokens",
        ),
        ("ollama", {"done": True, "eval_count": -2}, "$.eval_count"),
    ],
)
def test_malformed_frame_raises_naming_provider_and_field(provider: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(UsageError) as caught:
        from_response(provider, body)
    assert (caught.value.provider, caught.value.field) == (provider, field)
    assert str(caught.value).startswith(f"{provider}: {field}: ")
    assert isinstance(caught.value, ValueError)


def test_malformed_stream_frame_raises_on_feed() -> None:
    stream = StreamUsage("cohere")
    with pytest.raises(UsageError, match=r"cohere: delta\.usage\.billed_units\.output_tokens: negative"):
        stream.feed({"type": "message-end", "delta": {"usage": {"billed_units": {"output_tokens": -1}}}})


@pytest.mark.parametrize(
    ("feed", "field"),
    [("data: {not json", "data"), ("data: [1, 2]", "data"), ('{"done": tru', "line")],
)
def test_undecodable_line_raises(feed: str, field: str) -> None:
    with pytest.raises(UsageError) as caught:
        StreamUsage("ollama").feed(feed)
    assert caught.value.field == field


def test_undecodable_body_raises() -> None:
    with pytest.raises(UsageError, match="openai: body: not valid JSON"):
        from_response("openai", b"<html>502 Bad Gateway</html>")


@pytest.mark.parametrize("provider", ["bedrock", "OpenAI", ""])
def test_unknown_provider_raises(provider: str) -> None:
    with pytest.raises(UsageError) as caught:
        StreamUsage(provider)
    assert caught.value.field == "provider"
    with pytest.raises(UsageError):
        from_response(provider, {})


# --- properties -----------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=10**9)


@st.composite
def openai_usage(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """prompt total, cached (≤ prompt), cache-written (≤ the uncached rest), completion."""
    prompt = draw(counts)
    cached = draw(st.integers(min_value=0, max_value=prompt))
    return prompt, cached, draw(st.integers(min_value=0, max_value=prompt - cached)), draw(counts)


@given(openai_usage(), st.booleans())
def test_openai_chat_columns_add_up_to_provider_totals(usage: tuple[int, int, int, int], streamed: bool) -> None:
    prompt, cached, written, completion = usage
    report = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
    }
    if streamed:
        chunks = [{"choices": [{"delta": {"content": "x"}}], "usage": None}, {"choices": [], "usage": report}]
        result = _stream("openai", [f"data: {json.dumps(c)}" for c in chunks])
    else:
        result = from_response("openai", {"usage": report})
    assert result.exact
    assert result.total_prompt_tokens == prompt
    assert (result.cache_read_tokens, result.cache_write_tokens) == (cached, written)
    assert result.completion_tokens == completion
    assert result.prompt_tokens >= 0


@given(openai_usage())
def test_openai_responses_columns_add_up_to_provider_totals(usage: tuple[int, int, int, int]) -> None:
    prompt, cached, written, completion = usage
    report = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": completion,
    }
    result = _stream("openai", [{"type": "response.completed", "response": {"usage": report}}])
    assert result.total_prompt_tokens == prompt
    assert (result.cache_read_tokens, result.cache_write_tokens) == (cached, written)
    assert result.completion_tokens == completion


@given(counts, counts, counts, st.lists(counts, min_size=1, max_size=6))
def test_anthropic_columns_add_up_and_deltas_are_not_added(
    input_tokens: int, cache_write: int, cache_read: int, outputs: list[int]
) -> None:
    outputs = sorted(outputs)  # cumulative: each message_delta repeats the running total
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }
    frames: list[dict[str, Any]] = [{"type": "message_start", "message": {"usage": {**usage, "output_tokens": 1}}}]
    frames += [{"type": "message_delta", "usage": {**usage, "output_tokens": out}} for out in outputs]
    result = _stream("anthropic", frames)
    assert result.total_prompt_tokens == input_tokens + cache_write + cache_read
    assert (result.prompt_tokens, result.cache_write_tokens, result.cache_read_tokens) == (
        input_tokens,
        cache_write,
        cache_read,
    )
    assert result.completion_tokens == outputs[-1]


@st.composite
def gemini_snapshots(draw: st.DrawFn) -> list[dict[str, int]]:
    prompt = draw(counts)
    fixed = {
        "promptTokenCount": prompt,
        "cachedContentTokenCount": draw(st.integers(min_value=0, max_value=prompt)),
        "toolUsePromptTokenCount": draw(counts),
        "thoughtsTokenCount": draw(counts),
    }
    candidates = sorted(draw(st.lists(counts, min_size=1, max_size=6)))  # a running count
    return [
        {
            **fixed,
            "candidatesTokenCount": n,
            "totalTokenCount": prompt + fixed["toolUsePromptTokenCount"] + fixed["thoughtsTokenCount"] + n,
        }
        for n in candidates
    ]


@given(gemini_snapshots())
def test_gemini_columns_add_up_and_snapshots_are_not_summed(snapshots: list[dict[str, int]]) -> None:
    frames: list[dict[str, Any]] = [{"usageMetadata": meta, "modelVersion": "gemini-2.5-pro"} for meta in snapshots]
    frames[-1]["candidates"] = [{"finishReason": "STOP"}]
    result = _stream("google", frames)
    last = snapshots[-1]
    assert result.exact
    assert result.prompt_tokens + result.cache_read_tokens == last["promptTokenCount"] + last["toolUsePromptTokenCount"]
    assert result.completion_tokens == last["candidatesTokenCount"] + last["thoughtsTokenCount"]
    assert result.prompt_tokens + result.completion_tokens + result.cache_read_tokens == last["totalTokenCount"]
    assert result.cache_read_tokens == last["cachedContentTokenCount"]


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)


def _bodies(provider: str, a: Any, b: Any, c: Any, d: Any) -> dict[str, Any]:
    openai_like = {"usage": {"prompt_tokens": a, "completion_tokens": b, "prompt_tokens_details": {"cached_tokens": c}}}
    return {
        "openai": openai_like,
        "mistral": openai_like,
        "together": openai_like,
        "groq": {"x_groq": {"usage": openai_like["usage"]}},
        "anthropic": {
            "type": "message",
            "usage": {
                "input_tokens": a,
                "output_tokens": b,
                "cache_read_input_tokens": c,
                "cache_creation_input_tokens": d,
            },
        },
        "google": {
            "usageMetadata": {
                "promptTokenCount": a,
                "candidatesTokenCount": b,
                "cachedContentTokenCount": c,
                "thoughtsTokenCount": d,
            }
        },
        "cohere": {"usage": {"billed_units": {"input_tokens": a, "output_tokens": b}}},
        "ollama": {"done": True, "prompt_eval_count": a, "eval_count": b},
    }[provider]


@given(st.sampled_from(PROVIDERS), anything, anything, anything, anything)
def test_counts_are_never_negative(provider: str, a: Any, b: Any, c: Any, d: Any) -> None:
    try:
        result = from_response(provider, _bodies(provider, a, b, c, d))
    except UsageError as exc:
        assert exc.provider == provider
    else:
        columns = (
            result.prompt_tokens,
            result.completion_tokens,
            result.cache_read_tokens,
            result.cache_write_tokens,
        )
        assert all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in columns)
