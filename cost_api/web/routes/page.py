"""The dashboard: `GET /` serves one static page, `/static/*` its script (native ES modules: `app.js` and
the `js/` it imports), styles and vendored chart library.

No build step and no CDN: the files under `cost_api/web/static/` ship inside the package and the page
reads only the public /v1 JSON routes, sending the API key (when one is configured) with each call.
Both routes are open without a key (`auth.OPEN_PATHS`): they hold no data.
"""

from __future__ import annotations

import hashlib
import mimetypes
from functools import cache
from pathlib import Path, PurePath
from typing import Annotated, Any

from litestar import Request, Response, get, head
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import PathParameter

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Everything the page loads comes from this server: its files and the /v1 routes.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The script is native ES modules (app.js and the js/ it imports): a browser runs a module only when it
# comes as JavaScript. Python's guess for a suffix depends on the platform (an old /etc/mime.types, a
# Windows registry), so the page's two text types are pinned to their RFC 9239 / RFC 2318 names.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/css", ".css")
# The files are not content-hashed: let the browser keep them, but revalidate (ETag) before use.
REVALIDATE = CacheControlHeader(no_cache=True)


@cache
def _index() -> bytes:
    return (STATIC_DIR / "index.html").read_bytes()


@get("/", include_in_schema=False, cache_control=REVALIDATE)
async def dashboard() -> Response[bytes]:
    return Response(_index(), media_type=MediaType.HTML, headers=SECURITY_HEADERS)


class StaticFile:
    """One file under static/, read once: its bytes, its type and a strong ETag of its content."""

    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def matches(self, if_none_match: str | None) -> bool:
        """RFC 9110 13.1.2: any listed tag equal to ours, compared weakly, or `*`."""
        if if_none_match is None:
            return False
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or self.etag in tags


@cache
def _static_files() -> dict[str, StaticFile]:
    """Every file the page may load, by its path under /static/: a fixed set known at start, so a request
    names a key of this map or nothing (no path ever reaches the file system)."""
    return {p.relative_to(STATIC_DIR).as_posix(): StaticFile(p) for p in STATIC_DIR.rglob("*") if p.is_file()}


def _find(file_path: PurePath) -> StaticFile:
    found = _static_files().get(file_path.as_posix().lstrip("/"))
    if found is None:
        raise NotFoundException()
    return found


def _headers(found: StaticFile) -> dict[str, str]:
    # nosniff: each file as its declared type only (a script or style sheet with another type is refused)
    return {"ETag": found.etag, "X-Content-Type-Options": "nosniff"}


@get("/static/{file_path:path}", include_in_schema=False, cache_control=REVALIDATE)
async def static_file(
    file_path: Annotated[PurePath, PathParameter()], request: Request[Any, Any, Any]
) -> Response[bytes]:
    """A file of the page; 304 with no body when the browser's copy is current (`If-None-Match`)."""
    found = _find(file_path)
    if found.matches(request.headers.get("if-none-match")):
        return Response(b"", status_code=304, headers=_headers(found))
    return Response(found.body, media_type=found.media_type, headers=_headers(found))


@head("/static/{file_path:path}", include_in_schema=False, cache_control=REVALIDATE)
async def static_head(file_path: Annotated[PurePath, PathParameter()]) -> Response[None]:
    """The GET's headers, its length included, with no body."""
    found = _find(file_path)
    headers = {**_headers(found), "Content-Length": str(len(found.body))}
    return Response(None, media_type=found.media_type, headers=headers)


def page_routes() -> list[BaseRouteHandler]:
    """The page and its static files, for `Litestar(route_handlers=[...])`."""
    return [dashboard, static_file, static_head]
