"""Settings: one YAML file, then `COST_API_<KEY>` environment variables, then command-line flags.

Everything is validated once, at start-up, by msgspec; a bad value stops the service with a
message naming the key's path (`alerts.ratio: Expected `float`, got `str``).
Every key is documented in docs/configuration.md (tests/test_config.py keeps them in step).
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

from cost_api.store.url import DatabaseURLError, parse_database_url

ENV_PREFIX = "COST_API_"
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """A configuration problem; the message names the key."""


class Duration:
    """A duration written as a string (`500ms`, `60s`, `15m`, `1h`, `7d`)."""

    __slots__ = ("seconds", "text")

    def __init__(self, text: str) -> None:
        match = _DURATION.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"expected a duration like 500ms, 60s, 15m, 1h or 7d, got {text!r}")
        self.text = text
        self.seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.seconds == self.seconds

    def __hash__(self) -> int:
        return hash(self.seconds)


def _duration(text: str) -> Any:
    return msgspec.field(default_factory=lambda: Duration(text))


class _Strict(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class Budget(_Strict):
    endpoint: str
    limit_usd: Annotated[float, msgspec.Meta(gt=0)]
    period: Literal["day", "week", "month"]
    warn_at_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] = 80.0


class Retry(_Strict):
    attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 6
    first_delay: Duration = _duration("1s")
    max_delay: Duration = _duration("5m")


class Alerts(_Strict):
    webhook_url: str | None = None
    webhook_secret: str | None = None
    interval: Duration = _duration("60s")
    ratio: Annotated[float, msgspec.Meta(gt=1)] = 2.5
    min_spend_per_hour: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    min_requests_per_minute: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    dimensions: list[Literal["endpoint", "token", "provider", "model"]] = msgspec.field(
        default_factory=lambda: ["endpoint", "token", "provider", "model"]
    )
    retry: Retry = msgspec.field(default_factory=Retry)


class Settings(_Strict):
    database_url: str = "sqlite:///cost.db"
    tz: str = "UTC"
    api_keys: list[str] = msgspec.field(default_factory=list)
    api_key_hashes: list[Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]] = msgspec.field(default_factory=list)
    cors_origins: list[str] = msgspec.field(default_factory=list)
    query_timeout: Duration = _duration("10s")
    max_concurrent_queries: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4
    pricing_overrides: str | None = None
    rollup_grace: Duration = _duration("15m")
    budget_refresh: Duration = _duration("2s")
    budget_max_age: Duration = _duration("60s")
    budget_fail_mode: Literal["open", "closed"] = "open"
    budgets: list[Budget] = msgspec.field(default_factory=list)
    alerts: Alerts = msgspec.field(default_factory=Alerts)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz)


# Environment values are strings; these keys take a comma-separated list, nested ones YAML.
_LIST_KEYS = {"api_keys", "api_key_hashes", "cors_origins"}
_YAML_KEYS = {"budgets", "alerts"}
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
    url = settings.alerts.webhook_url
    if url is not None and not _url(url, origin=False):
        raise ConfigError(
            f"alerts.webhook_url: expected an http:// or https:// URL with a host, like "
            f"https://hooks.example.com/cost-api, got {url!r}"
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


def documented_keys() -> set[str]:
    """Every settable key as a dotted path (`alerts.retry.attempts`, `budgets[].endpoint`)."""

    def walk(struct: type[msgspec.Struct], prefix: str) -> set[str]:
        keys: set[str] = set()
        for name in struct.__struct_fields__:
            keys.add(prefix + name)
            nested = {"alerts": Alerts, "retry": Retry}.get(name)
            if nested is not None:
                keys |= walk(nested, f"{prefix}{name}.")
            elif name == "budgets":
                keys |= walk(Budget, f"{prefix}{name}[].")
        return keys

    return walk(Settings, "")
