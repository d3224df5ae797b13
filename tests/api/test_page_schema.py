"""`/schema` offline: Swagger UI from the service's own vendored files, in a browser that can reach nothing
but the server, under the dashboard's CSP ('self' only: no inline script, no other site)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.testing import TestClient

from cost_api.web.routes.schema import OfflineSwagger

from .page_harness import STATIC, Watched


async def test_schema_viewer_works_offline(servers: dict[str, str], watched: Watched) -> None:
    base, page = servers["open"], watched.page
    elsewhere: list[str] = []

    async def only_the_server(route: Any) -> None:
        if route.request.url.startswith(base + "/"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_the_server)
    answer = await page.goto(base + "/schema")
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in (await answer.all_headers())["content-security-policy"]
    await page.locator(".opblock-summary-path", has_text="/v1/summary").first.wait_for()
    paths = await page.locator(".opblock-summary-path").all_text_contents()
    assert {"/v1/summary", "/v1/spend", "/v1/requests", "/v1/forecast"} <= {p.strip() for p in paths}
    assert elsewhere == []
    assert watched.errors == []  # a CSP violation (an inline script, say) would be here

    # The document itself, and the viewer's files with their licence, come from the service.
    assert httpx.get(base + "/schema/openapi.json").json()["info"]["title"] == "cost-api"
    html = httpx.get(base + "/schema").text
    assert "http" not in html.split("<script type='application/json'")[0]  # no URL of another site
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        served = httpx.get(f"{base}/static/vendor/swagger-ui/{name}")
        assert served.status_code == 200 and served.content == (STATIC / "vendor" / "swagger-ui" / name).read_bytes()


def test_schema_document_cannot_close_its_block() -> None:
    """The document sits in the page as a JSON data block: a `</script>` in its text cannot end the block
    (and run what follows), and the block still parses to the document."""
    hostile = "ends </script><script>alert(1)</script> here"
    config = OpenAPIConfig(title="t", version="1", description=hostile, render_plugins=[OfflineSwagger()])
    with TestClient(Litestar(route_handlers=[], openapi_config=config)) as client:
        html = client.get("/schema").text
    block = html.split("<script type='application/json' id='openapi'>", 1)[1]
    assert block.count("</script>") == 1 and block.endswith("</script></body></html>")
    assert json.loads(block.removesuffix("</script></body></html>"))["info"]["description"] == hostile
