"""The dashboard: `GET /` serves one static page, `/static/*` its script (native ES modules: `app.js` and
the `js/` it imports), styles and vendored chart library.

No build step and no CDN: the files under `cost_api/web/static/` ship inside the package and the page
reads only the public /v1 JSON routes, sending the API key (when one is configured) with each call.
Both routes are open without a key (`auth.OPEN_PATHS`): they hold no data.
"""

from __future__ import annotations

import mimetypes
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, cast

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.handlers import BaseRouteHandler
from litestar.response.base import ASGIResponse
from litestar.router import Router
from litestar.static_files import create_static_files_router

if TYPE_CHECKING:
    from litestar.types import AfterRequestHookHandler

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


async def _nosniff(response: ASGIResponse) -> ASGIResponse:
    """Every static file as its declared type only: a script or style sheet with another type is refused."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def page_routes() -> list[BaseRouteHandler | Router]:
    """The page and its static files, for `Litestar(route_handlers=[...])`."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        cache_control=REVALIDATE,
        # litestar's hook alias names Response or a bare ASGIApp; the static handler's hook is given
        # its ASGIFileResponse (an ASGIResponse), which is what _nosniff takes
        after_request=cast("AfterRequestHookHandler", _nosniff),
        include_in_schema=False,
    )
    return [dashboard, static]
