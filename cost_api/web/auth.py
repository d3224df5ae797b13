"""API keys: with any configured, every route but the open ones needs a key.

A key is sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are configured in clear
(`api_keys`, `COST_API_KEYS`) or as SHA-256 hex digests (`api_key_hashes`). Both are kept as digests:
the presented key is hashed once and compared with `hmac.compare_digest` against every configured
digest, all of them, whatever matched, so the time taken tells nothing about which key or how
much of it was right.

Open without a key: `/healthz`, the dashboard page `/` and `/static/*` (no data in them), CORS
preflight (any `OPTIONS` request: it answers allowed methods and headers, never data), and any
route handler declared with `opt={"public": True}`. Everything else (the /v1 data routes, Grafana,
`/readyz`, `/metrics`, `/schema`) answers 401 without a valid key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable

from litestar import Litestar
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import OpenAPI, Reference, SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from cost_api.config import Settings
from cost_api.config.scopes import ScopedKey, key_digest
from cost_api.web.problems import ProblemError, send_problem
from cost_api.web.scope import STATE_KEY

OPEN_PATHS = frozenset({"/healthz", "/"})
OPEN_PREFIXES = ("/static/",)
PUBLIC_OPT = "public"  # a route handler with opt={"public": True} needs no key


class KeyChecker:
    """Constant-time membership test of a presented key among the configured ones; a key of
    `scoped_keys` also gives its scope (docs/security.md#scoped-keys)."""

    def __init__(self, keys: Iterable[str], hashes: Iterable[str], scoped: Iterable[ScopedKey] = ()) -> None:
        self._digests: list[tuple[bytes, ScopedKey | None]] = [(_digest(key), None) for key in keys]
        self._digests += [(bytes.fromhex(h), None) for h in hashes]
        self._digests += [
            (bytes.fromhex(entry.key_hash) if entry.key_hash else _digest(entry.key or ""), entry) for entry in scoped
        ]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyChecker:
        return cls(settings.api_keys, settings.api_key_hashes, settings.scoped_keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    @property
    def scoped(self) -> bool:
        return any(entry is not None for _, entry in self._digests)

    def check(self, presented: str | None) -> bool:
        return self.match(presented)[0]

    def match(self, presented: str | None) -> tuple[bool, ScopedKey | None]:
        """Whether the key is configured, and its scope (None: it sees everything)."""
        digest = _digest(presented or "")
        matched = False
        scope: ScopedKey | None = None
        for reference, entry in self._digests:  # every digest, no early exit
            same = hmac.compare_digest(digest, reference)
            matched |= same
            scope = entry if same else scope
        return matched and bool(presented), scope


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def hash_key(key: str) -> str:
    """The `api_key_hashes` entry for a key (what `printf %s KEY | sha256sum` prints)."""
    return key_digest(key)


def presented_key(headers: Headers) -> str | None:
    """The key a request carries: `Authorization: Bearer <key>`, else `X-API-Key`."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


def open_path(path: str) -> bool:
    """A route template (or path) that needs no key by its place: health, the dashboard, its files."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or path == "/static"


def is_open(scope: Scope) -> bool:
    """Requests that need no key: open paths, CORS preflight, handlers declared `public`."""
    if scope.get("method") == "OPTIONS":
        return True
    handler = scope.get("route_handler")
    if handler is not None and handler.opt.get(PUBLIC_OPT):
        return True
    return open_path(scope.get("path_template") or scope["path"])


def open_paths(app: Litestar) -> Callable[[str], bool]:
    """A predicate on the app's route templates: True for the routes that need no key."""
    public = {
        route.path_format or "/"
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if handler.opt.get(PUBLIC_OPT)
    }
    return lambda path: path in public or open_path(path)


SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(type="http", scheme="bearer", description="Authorization: Bearer <key>"),
    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
}


def document_security(openapi: OpenAPI, is_open_path: Callable[[str], bool]) -> None:
    """Declare the two ways to send a key, and require one on every route that is not open."""
    openapi.components.security_schemes = {**(openapi.components.security_schemes or {}), **SECURITY_SCHEMES}
    for path, item in (openapi.paths or {}).items():
        if is_open_path(path):
            continue
        for method in ("get", "put", "post", "delete", "patch", "head"):
            operation = getattr(item, method, None)
            if operation is not None:
                operation.security = [{"bearer": []}, {"apiKey": []}]


class ApiKeyMiddleware(ASGIMiddleware):
    """401 problem document (with `WWW-Authenticate: Bearer`) unless a configured key is presented."""

    scopes = (ScopeType.HTTP,)
    should_bypass_for_scope = staticmethod(is_open)

    def __init__(self, checker: KeyChecker) -> None:
        self.checker = checker

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        presented = presented_key(Headers.from_scope(scope))
        matched, key_scope = self.checker.match(presented)
        if matched:
            if key_scope is not None:
                scope.setdefault("state", {})[STATE_KEY] = key_scope
            await next_app(scope, receive, send)
            return
        detail = "a valid API key is required" if presented else "an API key is required"
        problem = ProblemError(
            401,
            f"{detail}: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="cost-api"'},
        )
        await send_problem(scope, receive, send, problem)
