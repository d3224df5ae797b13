"""`/schema`: the OpenAPI document (`/schema/openapi.json`) and Swagger UI to read it, served offline.

Litestar's render plugins load their viewer from a CDN (and its favicon from another), so without
internet `/schema` was a blank page. Here Swagger UI's files are vendored under
`static/vendor/swagger-ui/` (with their licence, docs/dashboard.md says where they come from) and served
by `/static/*` like the dashboard's; the page starts the viewer from `static/schema.js` and takes the
document from a JSON data block in the page, so it runs under the dashboard's policy (`'self'` only, no
inline script).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router
from litestar.datastructures import ResponseHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin

from cost_api import __version__
from cost_api.web.routes.page import SECURITY_HEADERS

VENDOR = "static/vendor/swagger-ui/"


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI from this server's static files, with no inline script (see the module)."""

    def __init__(self) -> None:
        super().__init__(
            js_url=VENDOR + "swagger-ui-bundle.js",
            css_url=VENDOR + "swagger-ui.css",
            path=["/", "/swagger"],
            favicon="<link rel='icon' href='data:,'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        root = request.scope.get("root_path", "") + "/"  # the files' URLs hold on any path under /schema
        # a JSON data block is never run; `</` escaped so the document cannot close it
        spec = self.render_json(request, openapi_schema).replace(b"</", b"<\\/")
        head = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{openapi_schema['info']['title']} API reference</title>{self.favicon}"
            f"<link rel='stylesheet' href='{root}{self.css_url}'>"
            f"<script src='{root}{self.js_url}' defer></script>"
            f"<script src='{root}static/schema.js' defer></script></head>"
        )
        body = b"<body><div id='swagger-container'></div><script type='application/json' id='openapi'>"
        return head.encode() + body + spec + b"</script></body></html>"

    def receive_router(self, router: Router) -> None:
        """Every `/schema` answer carries the dashboard's headers (CSP `'self'`, nosniff, no referrer)."""
        super().receive_router(router)
        router.response_headers = [ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()]


def openapi_config() -> OpenAPIConfig:
    """`/schema` (and `/schema/swagger`): the viewer; `/schema/openapi.json` and `.yaml`: the document."""
    return OpenAPIConfig(
        title="cost-api",
        version=__version__,
        path="/schema",
        render_plugins=[OfflineSwagger(), JsonRenderPlugin(), YamlRenderPlugin()],
    )
