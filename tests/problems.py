"""The one check of an error answer: an RFC 9457 problem document of the API's shape."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import httpx

SHAPE = {"type", "title", "status", "detail", "errors"}


def assert_problem(
    response: httpx.Response, status: int, *, kind: str | None = None, extension: Set[str] | None = frozenset()
) -> dict[str, Any]:
    """The problem document of `status` (of type `/problems/<kind>` when given): the five members,
    plus exactly the `extension` members (any, when None); a 503 says when to retry; no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    if extension is None:
        assert set(body) >= SHAPE, body
    else:
        assert set(body) == SHAPE | extension, body
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"].startswith("/problems/"), body
    if kind is not None:
        assert body["type"] == f"/problems/{kind}", body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    for error in body["errors"]:
        assert set(error) == {"field", "message"}
        assert all(isinstance(v, str) and v for v in error.values())
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1
    for trace in ("Traceback", 'File "', "site-packages"):
        assert trace not in response.text
    return body
