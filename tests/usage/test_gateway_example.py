"""docs/gateway-integration.md: its example runs, and the page shows the files it names unchanged."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cost_api.resources import sql_dir

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gateway-integration.md"
EXAMPLE = ROOT / "docs" / "examples" / "gateway_write.py"
STREAM = Path(__file__).parents[1] / "fixtures" / "usage" / "openai_chat_stream.sse"

COLUMNS = (
    "created_at, request_id, provider, model, endpoint, token_id, status_code, streamed, prompt_tokens, "
    "completion_tokens, cache_read_tokens, cache_write_tokens, cache_hit, prompt_tokens_avoided, "
    "completion_tokens_avoided, latency_ms, cache_key, cache_write_1h_tokens, service_tier, usage_exact"
)


def _fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_doc_shows_the_example_file_unchanged() -> None:
    assert EXAMPLE.read_text() in _fenced("python")


def test_doc_shows_the_sqlite_schema_unchanged() -> None:
    assert (sql_dir() / "schema" / "sqlite.sql").read_text() in _fenced("sql")


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("gateway_write", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.executescript((sql_dir() / "schema" / "sqlite.sql").read_text())
    yield conn
    conn.close()


def _rows(conn: sqlite3.Connection) -> list[dict[str, object]]:
    return [dict(row) for row in conn.execute(f"SELECT {COLUMNS} FROM request_log ORDER BY id")]


# The request-log contract's worked example: claude-3-5-sonnet, 14320 prompt and 642 completion tokens.
ANTHROPIC_BODY = (
    b'{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet-20241022",'
    b' "content": [{"type": "text", "text": "Refund approved."}], "stop_reason": "end_turn",'
    b' "usage": {"input_tokens": 14320, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,'
    b' "output_tokens": 642}}'
)


def test_provider_call_then_cache_hit(example: ModuleType, conn: sqlite3.Connection) -> None:
    call = example.Call(
        provider="anthropic",
        model="claude-3-5-sonnet",
        endpoint="/summarise-ticket",
        token_id="tok_customer_a",
        request_id="req-1",
        latency_ms=1830,
        cache_key="sha256:9f2c",
        created_at=1_760_000_000_000,
    )
    usage = example.log_response(conn, call, ANTHROPIC_BODY)
    hit = example.Call(
        provider="anthropic",
        model="claude-3-5-sonnet",
        endpoint="/summarise-ticket",
        token_id="tok_customer_b",
        request_id="req-2",
        latency_ms=4,
        cache_key="sha256:9f2c",
        created_at=1_760_000_060_000,
    )
    example.log_cache_hit(conn, hit, usage)

    common = {"provider": "anthropic", "model": "claude-3-5-sonnet-20241022", "endpoint": "/summarise-ticket"}
    common |= {"status_code": 200, "streamed": 0, "cache_key": "sha256:9f2c"}
    assert _rows(conn) == [
        common
        | {
            "created_at": 1_760_000_000_000,
            "request_id": "req-1",
            "token_id": "tok_customer_a",
            "prompt_tokens": 14320,
            "completion_tokens": 642,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cache_hit": 0,
            "prompt_tokens_avoided": 0,
            "completion_tokens_avoided": 0,
            "latency_ms": 1830,
            "cache_write_1h_tokens": 0,
            "service_tier": None,
            "usage_exact": 1,
        },
        common
        | {
            "created_at": 1_760_000_060_000,
            "request_id": "req-2",
            "token_id": "tok_customer_b",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cache_hit": 1,
            "prompt_tokens_avoided": 14320,
            "completion_tokens_avoided": 642,
            "latency_ms": 4,
            "cache_write_1h_tokens": 0,
            "service_tier": None,
            "usage_exact": None,
        },
    ]


def test_cache_hit_avoids_cached_input_too(example: ModuleType, conn: sqlite3.Connection) -> None:
    usage = {
        "input_tokens": 25,
        "cache_creation_input_tokens": 1800,
        "cache_read_input_tokens": 200,
        "output_tokens": 412,
    }
    body = {"type": "message", "model": "claude-sonnet-4-5", "usage": usage}
    call = example.Call(provider="anthropic", model="claude-sonnet-4-5", endpoint="/triage", cache_key="k1")
    example.log_cache_hit(conn, call, example.log_response(conn, call, body))
    rows = _rows(conn)
    assert [(r["prompt_tokens"], r["cache_write_tokens"], r["cache_read_tokens"]) for r in rows] == [
        (25, 1800, 200),
        (0, 0, 0),
    ]
    assert (rows[1]["prompt_tokens_avoided"], rows[1]["completion_tokens_avoided"]) == (25 + 1800 + 200, 412)


def test_one_hour_cache_writes_and_service_tiers(example: ModuleType, conn: sqlite3.Connection) -> None:
    usage = {
        "input_tokens": 25,
        "cache_creation_input_tokens": 1800,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 1200},
        "output_tokens": 412,
    }
    claude = example.Call(provider="anthropic", model="claude-sonnet-4-5", endpoint="/triage")
    example.log_response(conn, claude, {"type": "message", "model": "claude-sonnet-4-5", "usage": usage})
    flex = {"model": "o3", "service_tier": "flex", "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    example.log_response(conn, example.Call(provider="openai", model="o3", endpoint="/chat"), flex)
    # a Batch API result: its body says "default"; the gateway knows it was a batch
    batched = example.Call(provider="openai", model="o3", endpoint="/nightly", service_tier="batch")
    example.log_response(conn, batched, {**flex, "service_tier": "default"})
    rows = _rows(conn)
    assert [(r["cache_write_tokens"], r["cache_write_1h_tokens"], r["service_tier"]) for r in rows] == [
        (1800, 1200, None),  # 1200 of the 1800 written went to the 1-hour cache
        (0, 0, "flex"),
        (0, 0, "batch"),
    ]


def test_streamed_call(example: ModuleType, conn: sqlite3.Connection) -> None:
    call = example.Call(provider="openai", model="gpt-4o", endpoint="/chat", streamed=True)
    usage = example.log_stream(conn, call, STREAM.read_text().splitlines())
    assert usage.exact
    [row] = _rows(conn)
    assert (row["model"], row["streamed"], row["cache_hit"]) == ("gpt-4o-2024-08-06", 1, 0)
    # 1200 prompt − 1024 cached, 300 completion.
    assert (row["prompt_tokens"], row["cache_read_tokens"], row["completion_tokens"]) == (176, 1024, 300)
    assert row["usage_exact"] == 1
    assert row["created_at"] > 1_700_000_000_000  # defaulted to now, in milliseconds


def test_missing_usage_is_logged_and_flagged(
    example: ModuleType, conn: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    call = example.Call(provider="cohere", model="command-r-08-2024", endpoint="/chat", status_code=429)
    usage = example.log_response(conn, call, {"message": "too many requests"})
    assert not usage.exact
    [row] = _rows(conn)
    assert (row["model"], row["status_code"], row["prompt_tokens"], row["completion_tokens"]) == (
        "command-r-08-2024",
        429,
        0,
        0,
    )
    assert row["usage_exact"] == 0  # counted by the API as a request with estimated usage
    assert "no final usage report" in caplog.text
