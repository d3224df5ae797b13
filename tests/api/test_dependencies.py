"""The route dependencies are declared once, on the app: handlers name what they need (`service`,
`budgets`, `alerts`, `common`), none reads `app.state` by hand, and none of it is an OpenAPI parameter."""

from __future__ import annotations

import ast
from pathlib import Path

from cost_api.config import load_settings
from cost_api.watch.alerts import AlertEngine
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.app import create_app
from cost_api.web.service import build_service

from ..conftest import ClientFactory

PACKAGE = Path(__file__).resolve().parents[2] / "cost_api"
ROUTES = PACKAGE / "web" / "routes"
INJECTED = {"service", "budgets", "alerts", "answers", "common"}


def _is_app(node: ast.expr) -> bool:
    """`app`, `request.app`, `self.app`, `connection.app`, …"""
    return (isinstance(node, ast.Name) and node.id == "app") or (isinstance(node, ast.Attribute) and node.attr == "app")


def app_state_uses(source: str) -> list[tuple[int, str]]:
    """Each use of `app.state` in `source`: (line, "read" or "write"); a write is an assignment to one
    of its attributes (`app.state.x = …`), anything else reads it."""
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "state" and _is_app(node.value):
            parent = parents.get(node)
            writes = isinstance(parent, ast.Attribute) and isinstance(parent.ctx, ast.Store | ast.Del)
            found.append((node.lineno, "write" if writes else "read"))
    return sorted(found)


def test_the_check_finds_app_state_however_it_is_reached() -> None:
    source = (
        "def f(request, app, self):\n"
        "    a = request.app.state.service\n"
        "    b = getattr(app.state, 'budgets')\n"
        "    c = self.app.state['alerts']\n"
        "    app.state.service = a\n"
        "    d = request.state.x\n"  # the connection's own state, not the app's
    )
    assert app_state_uses(source) == [(2, "read"), (3, "read"), (4, "read"), (5, "write")]


def test_no_route_module_touches_app_state() -> None:
    modules = sorted(ROUTES.glob("*.py"))
    assert len(modules) >= 8
    uses = {path.name: app_state_uses(path.read_text()) for path in modules}
    assert {name: found for name, found in uses.items() if found} == {}


def test_nothing_in_the_package_reads_app_state() -> None:
    """create_app may still leave the objects on app.state for tests and tools; no code of ours reads them."""
    reads = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := [line for line, kind in app_state_uses(path.read_text()) if kind == "read"])
    }
    assert reads == {}


def test_the_dependencies_are_declared_on_the_app_alone() -> None:
    settings = load_settings(environ={}, overrides={"database_url": "sqlite:///never-opened.db"})
    service = build_service(settings)
    budgets = BudgetTracker(settings, service.aggregator)
    alerts = AlertEngine(settings, service, budgets)
    app = create_app(settings, service, budgets, alerts)

    assert set(app.dependencies) == INJECTED
    # each provider hands over the very object create_app was given
    for name, given in (("service", service), ("budgets", budgets), ("alerts", alerts)):
        assert app.dependencies[name].dependency() is given, name

    handlers = [handler for route in app.routes for handler in getattr(route, "route_handlers", ())]
    assert len(handlers) > 30
    for handler in handlers:
        for layer in handler.ownership_layers:
            if layer is not app:
                assert not layer.dependencies, (handler.handler_name, layer)


async def test_the_openapi_document_lists_no_dependency_as_a_parameter(client_for: ClientFactory) -> None:
    async with client_for() as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    listed: dict[str, set[str]] = {}
    for path, item in response.json()["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict):
                listed[f"{method.upper()} {path}"] = {p["name"] for p in operation.get("parameters", [])}

    assert {op: names & INJECTED for op, names in listed.items() if names & INJECTED} == {}
    # the query parameters `common` reads are still documented on each route that takes it
    shared = {"window", "from", "to", "tz", "provider", "model", "endpoint", "token"}
    for op in ("GET /v1/summary", "GET /v1/spend", "GET /v1/anomalies", "GET /v1/pricing/unpriced"):
        assert shared <= listed[op], op
    assert listed["GET /v1/budgets/check"] == {"endpoint", "token"}
    assert listed["GET /readyz"] == set()
    assert listed["POST /grafana/query"] == set()
