"""The `cost-api serve` command: a real server, started from another directory, and its refusals."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from cost_api.cli import main
from cost_api.resources import sql_dir

from ..logdb import LogDB, Row, at
from ..pgcluster import free_port
from ..server import serving

ROOT = Path(__file__).parents[2]


async def test_serves_from_another_directory(log: LogDB, tmp_path: Path) -> None:
    await log.insert(
        [Row(at("2026-11-19T10:00:00Z"), "anthropic", "claude-3-5-sonnet", prompt_tokens=14320, completion_tokens=642)]
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with serving(log.url, cwd=elsewhere) as base:
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 200
        assert ready.json()["dialect"] == log.dialect
        body = httpx.get(base + "/v1/summary", params={"to": "2026-11-20T00:00:00Z"}).json()
        assert body["spend"] == 0.05259  # 3 × 14320/1e6 + 15 × 642/1e6
        schema = httpx.get(base + "/schema/openapi.json").json()
        assert "/v1/summary" in schema["paths"]


def test_missing_sqlite_file_is_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--db", f"sqlite:///{tmp_path / 'nope.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.db does not exist" in err
    assert "Traceback" not in err


def test_database_without_schema_is_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE other (x INTEGER)").connection.close()
    code = main(["serve", "--db", f"sqlite:///{tmp_path / 'empty.db'}"])
    assert code == 2
    assert "the database has no request_log table" in capsys.readouterr().err


# What each fault does to the log, per dialect, and what the refusal must say.
SCHEMA_FAULTS = {
    "column-missing": (
        "ALTER TABLE request_log DROP COLUMN cache_key",
        "ALTER TABLE request_log DROP COLUMN cache_key",
        "request_log has no column cache_key",
    ),
    "created_at-without-zone": (
        "ALTER TABLE request_log RENAME TO old; CREATE TABLE request_log AS SELECT id, CAST(created_at AS TEXT)"
        " AS created_at, request_id, provider, model, endpoint, token_id, status_code, streamed, prompt_tokens,"
        " completion_tokens, cache_read_tokens, cache_write_tokens, cache_hit, prompt_tokens_avoided,"
        " completion_tokens_avoided, latency_ms, cache_key FROM old",
        "ALTER TABLE request_log ALTER created_at TYPE timestamp",
        "request_log.created_at is ",
    ),
    "cache_hit-integer": (
        "ALTER TABLE request_log RENAME COLUMN cache_hit TO hit; ALTER TABLE request_log ADD COLUMN cache_hit TEXT",
        "ALTER TABLE request_log ALTER cache_hit DROP DEFAULT, ALTER cache_hit TYPE integer USING cache_hit::int",
        "request_log.cache_hit is ",
    ),
}


@pytest.mark.parametrize("fault", SCHEMA_FAULTS)
async def test_a_log_the_queries_cannot_read_stops_the_start_up(
    log: LogDB, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A column missing, or of a type the queries cannot read (on SQLite: declared TEXT where a number
    belongs), stops `cost-api serve` with a message naming the column and what it should be."""
    on_sqlite, on_postgres, named = SCHEMA_FAULTS[fault]
    await log.execute(on_sqlite if log.dialect == "sqlite" else on_postgres)
    code = await asyncio.to_thread(main, ["serve", "--db", log.url])
    err = capsys.readouterr().err
    assert code == 2
    assert named in err
    if fault != "column-missing":
        assert "expected" in err
    assert "Traceback" not in err


def test_unreachable_postgres_is_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--db", f"postgresql://nobody@127.0.0.1:{free_port()}/none"])
    assert code == 2
    assert "Postgres is unavailable" in capsys.readouterr().err


def test_bad_url_and_bad_config_are_clear_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--db", "mysql://x"]) == 2
    assert "expected sqlite:///relative.db" in capsys.readouterr().err
    config = tmp_path / "c.yaml"
    config.write_text("alerts:\n  ratio: lots\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "alerts.ratio" in capsys.readouterr().err


def test_refuses_a_public_bind_without_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--host", "0.0.0.0"]) == 2
    assert "refusing to bind 0.0.0.0 without API keys" in capsys.readouterr().err


def test_wheel_ships_sql_and_pricing(tmp_path: Path) -> None:
    """A built wheel carries sql/ and pricing.yaml, and cost_api.resources finds them inside it."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cost_api-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(sql_dir()).as_posix() for p in sql_dir().rglob("*.sql")}
    assert {f"cost_api/_data/sql/{n}" for n in expected} <= names
    assert "cost_api/_data/pricing.yaml" in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = "import cost_api.resources as r; print(r.sql_dir()); print(r.builtin_pricing().is_file())"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", env={"PYTHONPATH": str(unpacked)}, capture_output=True, text=True
    )
    assert out.stdout.split() == [str(unpacked / "cost_api" / "_data" / "sql"), "True"], out.stderr


def test_with_workers_the_start_up_checks_stop_before_any_worker_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same refusals, from the supervising process: no worker is spawned to fail N times."""
    code = main(["serve", "--db", f"sqlite:///{tmp_path / 'nope.db'}", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.db does not exist" in err
    assert "Traceback" not in err and "uvicorn" not in err
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE other (x INTEGER)").connection.close()
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--workers", "3"]) == 2
    assert "the database has no request_log table" in capsys.readouterr().err
    assert main(["serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--host", "0.0.0.0", "--workers", "2"]) == 2
    assert "refusing to bind 0.0.0.0 without API keys" in capsys.readouterr().err
