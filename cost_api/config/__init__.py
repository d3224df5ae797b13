"""Settings: one YAML file, then `COST_API_<KEY>` environment variables, then command-line flags.

Everything is validated once, at start-up, by msgspec; a bad value stops the service with a
message naming the key's path (`alerts.ratio: Expected `float`, got `str``).
Each setting carries its description next to its type and default; docs/configuration.md's table is
generated from them (`config/docs.py`: `cost-api settings --write`, checked by tests/test_config.py).
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from cost_api.config.base import ConfigError as ConfigError  # re-exported: the settings' error
from cost_api.config.base import Duration as Duration  # re-exported
from cost_api.config.base import Strict, doc, duration
from cost_api.config.scopes import ScopedKey, check_scoped_keys
from cost_api.config.tags import Since, TokenTagRule, check_rules
from cost_api.config.watch import WATCH_PATTERN as WATCH_PATTERN  # re-exported: docs.py renders it
from cost_api.config.watch import Alerts as Alerts  # re-exported: the watch layer imports it from here
from cost_api.config.watch import Budget as Budget  # the same
from cost_api.store.url import DatabaseURLError, parse_database_url

ENV_PREFIX = "COST_API_"


class Settings(Strict, frozen=True):
    database_url: Annotated[
        str,
        doc(
            "`sqlite:///relative.db`, `sqlite:////abs/path.db`, `postgresql://user@host/db`, "
            "`clickhouse://user:pass@host:8123/db` (`clickhouses://` for TLS) or `chdb:///relative/dir`, "
            "`chdb:////abs/dir` (ClickHouse in-process, `?database=name` for another database than `default`); "
            "ClickHouse needs `cost-api[clickhouse]` (docs/scale-out.md). SQLite is opened read-only; Postgres "
            "sessions are read-only transactions; every ClickHouse query runs with `readonly=1`."
        ),
    ] = "sqlite:///cost.db"
    tz: Annotated[
        str, doc("IANA zone for day buckets, calendar windows (`today`, `week`, `month`) and budget periods.")
    ] = "UTC"
    api_keys: Annotated[
        list[str],
        doc(
            "API keys; with any set, every data route needs `Authorization: Bearer <key>` or `X-API-Key`. "
            "From the environment: `COST_API_KEYS=k1,k2`. A blank key (`COST_API_KEYS=' '`, an empty item as "
            "in `k1,`) stops the start-up naming it; for no keys, set none."
        ),
    ] = msgspec.field(default_factory=list)
    api_key_hashes: Annotated[
        list[Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]],
        doc("SHA-256 hex digests of keys, to keep the keys themselves out of the file."),
    ] = msgspec.field(default_factory=list)
    scoped_keys: Annotated[
        list[ScopedKey],
        doc(
            "Keys that see only a scope: `{key or key_hash, tags, endpoints, tokens}`; every answer is limited "
            "to it, a filter outside it is a 403 ([security](security.md#scoped-keys)). From the environment: YAML."
        ),
    ] = msgspec.field(default_factory=list)
    cors_origins: Annotated[
        list[str],
        doc(
            "Origins allowed to call the API from a browser (an allow-list; empty: no CORS headers). Each is "
            "`http(s)://host[:port]`, without a path (`https://grafana.example.com`)."
        ),
    ] = msgspec.field(default_factory=list)
    query_timeout: Annotated[
        Duration,
        doc(
            "What one HTTP request may take in all, across every query its answer runs (each query gets what "
            "is left; SQLite: the progress handler, Postgres: a cancel request, `statement_timeout` behind "
            "it); past it the answer is a 504 ([security](security.md)). Background reads give each query "
            "this long."
        ),
    ] = duration("10s")
    max_concurrent_queries: Annotated[
        int,
        doc(
            "Database connections, and heavy queries at once; beyond it a request gets 503 with `Retry-After`.",
            ge=1,
            le=256,
        ),
    ] = 4
    pricing_overrides: Annotated[
        str | None,
        doc(
            "Path to a second pricing file in the `pricing.yaml` format: replaces built-in entries with the "
            "same provider and model, adds others."
        ),
    ] = None
    whatif_price_books: Annotated[
        dict[str, str],
        doc(
            "Named price books for `/v1/whatif?book=name`: name → path of a file in the `pricing.yaml` format, "
            "merged over the built-in table like `pricing_overrides` ([api](api.md#what-if))."
        ),
    ] = msgspec.field(default_factory=dict)
    rollup_grace: Annotated[
        Duration,
        doc(
            "An hour counts as closed (its rows move into the in-memory rollups) this long after it ends; a "
            "row dated in a closed hour still counts at the next answer ([performance](performance.md))."
        ),
    ] = duration("15m")
    rollup_memory_mb: Annotated[
        float,
        doc(
            "The most memory (MiB) the in-memory rollups may hold. The token rollup, which grows with the "
            "number of tokens, is held only while it fits beside the others; past the cap it is dropped and "
            "answers by token are asked of the database, which sums them; what they read of closed days is "
            "kept within the same cap, and a read by token or cache key holds at most the cap over 512 bytes "
            "of groups at once (65,536 at the least; past that it is read in parts: "
            "[scale-out](scale-out.md#the-memory-cap)). The default fits the demo log with room to spare.",
            gt=0,
        ),
    ] = 1024.0
    cache_dir: Annotated[
        str | None,
        doc(
            "Where the rollups' snapshot of closed hours is saved, so that a restart reads only the hours "
            "that changed ([performance](performance.md#restart)); unset: `$XDG_CACHE_HOME/cost-api` or "
            "`~/.cache/cost-api`; `off`: no snapshot. Never in the gateway's database."
        ),
    ] = None
    budget_refresh: Annotated[Duration, doc("How often the in-memory budget figures are refreshed.")] = duration("2s")
    budget_max_age: Annotated[
        Duration,
        doc("Older budget figures are stale (the database cannot be read); the check then follows `budget_fail_mode`."),
    ] = duration("60s")
    budget_fail_mode: Annotated[
        Literal["open", "closed"],
        doc('`open`: a stale check answers 200 with `"stale": true`; `closed`: it answers 503.'),
    ] = "open"
    budgets: Annotated[
        list[Budget],
        doc(
            "Spending caps per endpoint, token or tag value ([budgets](budgets.md)); several per one allowed. "
            "From the environment: YAML, `COST_API_BUDGETS='[{endpoint: /x, limit_usd: 5, period: day}]'`."
        ),
    ] = msgspec.field(default_factory=list)
    alerts: Annotated[
        Alerts, doc("Anomaly rules and the webhook ([alerts](alerts.md)). From the environment: YAML.")
    ] = msgspec.field(default_factory=Alerts)
    summary_top_tags: Annotated[
        str | None,
        doc("A tag key whose top values `/v1/summary` lists in `top_tags` when the request names none."),
    ] = None
    token_tags: Annotated[
        list[TokenTagRule],
        doc(
            "Tags given to tokens at query time, by id, prefix or name pattern, each from an optional `since` "
            "on; they win over the `api_tokens.tags` column for the same key ([tags](tags.md)). From the "
            "environment: YAML."
        ),
    ] = msgspec.field(default_factory=list)

    token_refresh: Annotated[
        Duration,
        doc(
            "How long the token directory (`api_tokens`: every token's prefix, name and `tags`) is kept "
            "between answers: a change to a token's name, prefix or tags shows in every answer that begins "
            "at most this long after it; `0s`: read for every answer ([tags](tags.md#when-changes-show))."
        ),
    ] = duration("5s")

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz)


# Environment values are strings; these keys take a comma-separated list, nested ones YAML.
_LIST_KEYS = {"api_keys", "api_key_hashes", "cors_origins"}
_YAML_KEYS = {"budgets", "alerts", "whatif_price_books", "token_tags", "scoped_keys"}
_ENV_NAMES = {"api_keys": "COST_API_KEYS"}


def env_name(key: str) -> str:
    return _ENV_NAMES.get(key, ENV_PREFIX + key.upper())


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in Settings.__struct_fields__:
        raw = environ.get(env_name(key))
        if raw is None:
            continue
        if key == "api_keys":  # a blank item stays, to be refused: it is no key (`load_settings`)
            values[key] = [item.strip() for item in raw.split(",")]
        elif key in _LIST_KEYS:
            values[key] = [item.strip() for item in raw.split(",") if item.strip()]
        elif key in _YAML_KEYS:
            try:
                values[key] = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{env_name(key)}: not valid YAML: {exc}") from exc
        else:
            values[key] = None if raw == "" and key == "pricing_overrides" else raw
    return values


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Duration:
        return Duration(obj)
    if type_ is Since:
        return Since(obj)
    raise NotImplementedError


def _describe(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    match = re.match(r"^(.*) - at `\$\.?(.*)`$", text)
    if match:
        message, path = match.groups()
        unknown = re.match(r"Object contains unknown field `(.*)`", message)
        if unknown:
            return f"{path}.{unknown.group(1)}: unknown key"
        return f"{path}: {message}"
    unknown = re.match(r"Object contains unknown field `(.*)`", text)
    if unknown:
        return f"{unknown.group(1)}: unknown key"
    return text


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """File (`path`, else `COST_API_CONFIG`), then environment, then flags (`overrides`)."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("COST_API_CONFIG")
    merged: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of keys at the top level")
        merged.update(loaded or {})
    from_env = _from_env(environ)
    merged.update(from_env)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        settings = msgspec.convert(merged, Settings, dec_hook=_dec_hook, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    try:
        settings.zone  # noqa: B018 - validates the zone name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"tz: unknown time zone {settings.tz!r}") from exc
    _check_keys(settings, "api_keys" in from_env)
    problem = check_rules(settings.token_tags) or check_scoped_keys(
        settings.scoped_keys, settings.api_keys, settings.api_key_hashes
    )
    if problem:
        raise ConfigError(problem)
    _check_urls(settings)
    return settings


def _check_keys(settings: Settings, from_env: bool) -> None:
    """A blank API key is no key: with it, the service would start open (on loopback) where keys
    were meant to be required."""
    for i, key in enumerate(settings.api_keys):
        if not key.strip():
            where = env_name("api_keys") if from_env else f"api_keys[{i}]"
            raise ConfigError(f"{where}: a blank API key; remove it (to run without keys, on loopback only, set none)")


def _check_urls(settings: Settings) -> None:
    """Every URL setting, so that a typo stops the start rather than every later use."""
    try:
        parse_database_url(settings.database_url)
    except DatabaseURLError as exc:
        raise ConfigError(str(exc)) from exc
    for i, origin in enumerate(settings.cors_origins):
        if not _url(origin, origin=True):
            raise ConfigError(
                f"cors_origins[{i}]: expected an origin like https://grafana.example.com (scheme, host and an "
                f"optional port, no path), got {origin!r}"
            )
    for name, example in (
        ("webhook_url", "https://hooks.example.com/cost-api"),
        ("public_url", "https://cost.example.com"),
    ):
        url = getattr(settings.alerts, name)
        if url is not None and not _url(url, origin=False):
            raise ConfigError(
                f"alerts.{name}: expected an http:// or https:// URL with a host, like {example}, got {url!r}"
            )


def _url(text: str, *, origin: bool) -> bool:
    """An http(s) URL with a host (and a valid port, if any); an origin has nothing after the port."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return not origin or not (parts.path or parts.query or parts.fragment)
