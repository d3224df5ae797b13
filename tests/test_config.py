"""The settings loader: file, then environment, then flags; every key documented."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from cost_api.cli import main
from cost_api.config import ConfigError, load_settings
from cost_api.config.docs import documented_keys, settings_table, with_settings_table

DOCS = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.database_url == "sqlite:///cost.db"
    assert settings.tz == "UTC"
    assert settings.query_timeout.seconds == 10
    assert settings.rollup_grace.seconds == 900
    assert settings.alerts.retry.max_delay.seconds == 300
    assert settings.budget_fail_mode == "open"


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "tz: Europe/Berlin\nquery_timeout: 500ms\ndatabase_url: sqlite:///a.db\n"
        "budgets:\n  - {endpoint: /x, limit_usd: 5, period: day}\n"
    )
    env = {"COST_API_TZ": "Asia/Kolkata", "COST_API_KEYS": "k1, k2", "COST_API_MAX_CONCURRENT_QUERIES": "9"}
    settings = load_settings(config, environ=env, overrides={"database_url": "sqlite:///b.db"})
    assert settings.tz == "Asia/Kolkata"
    assert settings.api_keys == ["k1", "k2"]
    assert settings.max_concurrent_queries == 9
    assert settings.query_timeout.seconds == 0.5
    assert settings.database_url == "sqlite:///b.db"
    assert settings.budgets[0].endpoint == "/x"
    assert settings.budgets[0].warn_at_pct == 80


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("tz: Asia/Kathmandu\n")
    assert load_settings(environ={"COST_API_CONFIG": str(config)}).tz == "Asia/Kathmandu"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alerts:\n  ratio: lots\n", "alerts.ratio: Expected `float`, got `str`"),
        ("query_timeout: soon\n", "query_timeout: expected a duration"),
        ("alerts:\n  retry:\n    first_delay: 3x\n", "alerts.retry.first_delay: expected a duration"),
        ("colour: blue\n", "colour: unknown key"),
        ("alerts:\n  colour: blue\n", "alerts.colour: unknown key"),
        ("budgets:\n  - {endpoint: /x, limit_usd: 5, period: fortnight}\n", "budgets[0].period"),
        ("budgets:\n  - {endpoint: /x, limit_usd: -1, period: day}\n", "budgets[0].limit_usd"),
        ("tz: Mars/Olympus\n", "tz: unknown time zone 'Mars/Olympus'"),
        ("budget_fail_mode: maybe\n", "budget_fail_mode"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    assert message in str(info.value)


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="max_concurrent_queries"):
        load_settings(environ={"COST_API_MAX_CONCURRENT_QUERIES": "many"})


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_the_settings_table_is_the_one_generated_from_the_code() -> None:
    """docs/configuration.md's table is rendered from cost_api/config/ (`cost-api settings --write`)."""
    text = DOCS.read_text()
    assert with_settings_table(text) == text, "stale: run `cost-api settings --write docs/configuration.md`"
    documented = set(re.findall(r"^\| `([a-z_\[\].]+)` \|", text, flags=re.M))
    assert documented == documented_keys()
    assert "alerts.retry.attempts" in documented and "budgets[].limit_usd" in documented


def test_the_table_shows_each_setting_s_type_default_and_environment_variable() -> None:
    rows = {line.split(" | ")[0]: line for line in settings_table().splitlines() if line.startswith("| `")}
    assert rows["| `max_concurrent_queries`"] == (
        "| `max_concurrent_queries` | integer, ≥ 1, ≤ 256 | `4` | `COST_API_MAX_CONCURRENT_QUERIES` | Database "
        "connections, and heavy queries at once; beyond it a request gets 503 with `Retry-After`. |"
    )
    assert " | duration | `15m` | `COST_API_ROLLUP_GRACE` | " in rows["| `rollup_grace`"]
    assert " | `COST_API_KEYS` | " in rows["| `api_keys`"]
    assert " | number, > 0 | required |  | " in rows["| `budgets[].limit_usd`"]


def test_config_docs_writes_the_table_into_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(DOCS.read_text().replace("`COST_API_TZ`", "`COST_API_ZONE`"))
    assert main(["settings", "--write", str(stale)]) == 0
    assert stale.read_text() == DOCS.read_text()
    assert main(["settings"]) == 0
    assert capsys.readouterr().out.strip() == settings_table()


def test_a_file_without_the_markers_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.md"
    plain.write_text("# Configuration\n")
    assert main(["settings", "--write", str(plain)]) == 2
    assert "no generated settings table" in capsys.readouterr().err
    assert plain.read_text() == "# Configuration\n"


# "Fixed by design": every constant the docs list has the value they give.
FIXED = re.compile(r"^\| `(\w+)` \(`([\w.]+)`\) \| `([\d.]+)`", re.M)


def test_every_fixed_limit_in_the_docs_has_the_code_s_value() -> None:
    found = FIXED.findall(DOCS.read_text())
    assert len(found) >= 10
    for name, module, value in found:
        assert getattr(importlib.import_module(module), name) == float(value), f"{module}.{name}"


def test_example_config_is_valid() -> None:
    settings = load_settings(DOCS.parent / "examples" / "config.yaml", environ={})
    assert {b.endpoint for b in settings.budgets} == {"/summarise-ticket", "/agent-proxy-claude"}


@pytest.mark.parametrize(
    ("environ", "text", "message"),
    [
        ({"COST_API_KEYS": " "}, "", "COST_API_KEYS: a blank API key"),
        ({"COST_API_KEYS": ""}, "", "COST_API_KEYS: a blank API key"),
        ({"COST_API_KEYS": "k1, ,k2"}, "", "COST_API_KEYS: a blank API key"),
        ({"COST_API_KEYS": "k1,"}, "", "COST_API_KEYS: a blank API key"),
        ({}, "api_keys: [good, '  ']\n", "api_keys[1]: a blank API key"),
    ],
)
def test_a_blank_api_key_stops_start_up(tmp_path: Path, environ: dict[str, str], text: str, message: str) -> None:
    """A blank key is no key: the service would start open (on loopback) where keys were meant."""
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ=environ)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alerts: {webhook_url: '127.0.0.1:9000'}\n", "alerts.webhook_url: expected an http:// or https:// URL"),
        ("alerts: {webhook_url: 'localhost:9000/hook'}\n", "alerts.webhook_url: expected an http:// or https:// URL"),
        ("alerts: {webhook_url: 'ftp://hooks.example.com/x'}\n", "alerts.webhook_url: expected an http:// or https://"),
        ("alerts: {webhook_url: 'https:///no-host'}\n", "alerts.webhook_url: expected an http:// or https:// URL"),
        ("alerts: {webhook_url: 'http://hooks.example.com:99999/x'}\n", "alerts.webhook_url: expected an http://"),
        ("cors_origins: [https://ok.example.com, grafana.example.com]\n", "cors_origins[1]: expected an origin"),
        ("cors_origins: ['https://grafana.example.com/']\n", "cors_origins[0]: expected an origin"),
        ("cors_origins: ['https://grafana.example.com/d/x']\n", "cors_origins[0]: expected an origin"),
        ("database_url: cost.db\n", "database_url 'cost.db': expected sqlite:///relative.db"),
        ("database_url: 'sqlite:///'\n", "database_url 'sqlite:///': no file path after sqlite:///"),
    ],
)
def test_every_url_setting_is_checked_at_start_up(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    assert str(info.value).startswith(message), info.value


def test_good_urls_are_taken() -> None:
    overrides = {
        "database_url": "postgresql://reader@db.internal:5432/gateway",
        "cors_origins": ["https://grafana.example.com", "http://127.0.0.1:3000"],
        "alerts": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x?y=1"},
    }
    settings = load_settings(environ={}, overrides=overrides)
    assert settings.alerts.webhook_url == "https://hooks.slack.com/services/T0/B0/x?y=1"
    assert settings.cors_origins == ["https://grafana.example.com", "http://127.0.0.1:3000"]


def test_serve_names_the_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COST_API_KEYS", " ")
    assert main(["serve", "--db", "sqlite:///never-opened.db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cost-api: COST_API_KEYS: a blank API key") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "token_tags: [{token: t1, prefix: pg, tags: {team: a}}]\n",
            "token_tags[0]: give exactly one of token, prefix",
        ),
        ("token_tags: [{tags: {team: a}}]\n", "token_tags[0]: give exactly one of token, prefix or name (got none)"),
        ("token_tags: [{token: t1, tags: {}}]\n", "token_tags[0].tags: give at least one tag"),
        ("token_tags: [{token: t1, tags: {'a b': x}}]\n", "token_tags[0].tags: key 'a b' must be 1–64 letters"),
        ("token_tags: [{token: t1, tags: {team: '(untagged)'}}]\n", "token_tags[0].tags.team: '(untagged)' is not"),
        ("token_tags: [{token: ' ', tags: {team: a}}]\n", "token_tags[0].token: blank"),
        ("token_tags: [{token: t1, tags: {team: a}, since: 2026-11-01T09:30:00Z}]\n", "token_tags[0].since: must fall"),
        ("token_tags: [{token: t1, tags: {team: a}, since: '2026-11-01T09:00:00'}]\n", "token_tags[0].since: give a"),
        ("token_tags: [{token: t1, tags: {team: a}, since: soon}]\n", "token_tags[0].since: expected a date"),
        ("token_tags: [{token: t1, tags: {team: a}, team: b}]\n", "token_tags[0].team: unknown key"),
    ],
)
def test_token_tag_rules_are_checked_at_start_up(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    assert str(info.value).startswith(message), info.value


def test_token_tag_rules_are_taken() -> None:
    rules = [{"name": "ci-*", "tags": {"env": "ci"}, "since": "2026-11-01T09:00:00+00:00"}]
    (rule,) = load_settings(environ={}, overrides={"token_tags": rules}).token_tags
    assert (rule.name, rule.tags, rule.since and rule.since.ms) == ("ci-*", {"env": "ci"}, 1_793_523_600_000)


def test_the_token_spend_ceiling_is_on_by_default_and_an_empty_map_turns_it_off(tmp_path: Path) -> None:
    assert load_settings(environ={}).alerts.max_spend_per_hour == {"token": 50.0}
    config = tmp_path / "cost-api.yaml"
    config.write_text("alerts:\n  max_spend_per_hour: {}\n")
    assert load_settings(config, environ={}).alerts.max_spend_per_hour == {}
