"""The HTTP half of errors — one error shape for every error: RFC 9457 problem documents
(`application/problem+json`). The domain's errors (cost_api/errors.py) are mapped here.

`{"type", "title", "status", "detail", "errors": [{"field", "message"}]}`, plus extension members
where a problem has them (a budget's `endpoint`, `limit_usd`, …). Never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)
from litestar.types import Receive, Scope, Send

from cost_api.errors import BadParameter, BudgetExceeded, CostApiError, RetryLater, Unpriced

log = logging.getLogger("cost_api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "/problems/"  # a relative URI reference, documented in docs/errors.md

_TITLES = {
    400: "Bad parameter",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    422: "Unprocessable",
    500: "Internal error",
    503: "Service unavailable",
    504: "Query timed out",
}
_TYPES = {
    400: "bad-parameter",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    500: "internal-error",
    503: "unavailable",  # also "overloaded": max_concurrent_queries already running
    504: "timeout",
}


class ProblemError(Exception):
    """Raised anywhere below a route; rendered as a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str | None = None,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = TYPE_BASE + (type_ or _TYPES.get(status, "error"))
        self.title = title or _TITLES.get(status, "Error")
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": self.errors,
            **self.extra,
        }


def from_domain(exc: CostApiError) -> ProblemError:
    """The problem document of a domain error: its status, type and title."""
    if isinstance(exc, BadParameter):
        return ProblemError(400, exc.detail, errors=[{"field": exc.field, "message": exc.message}], extra=exc.extra)
    if isinstance(exc, Unpriced):
        return ProblemError(404, exc.detail, type_="unpriced-model", title="Unpriced model", extra=exc.extra)
    if isinstance(exc, BudgetExceeded):
        return ProblemError(422, exc.detail, type_="budget-exceeded", title="Budget exceeded", extra=exc.extra)
    if isinstance(exc, RetryLater):
        return ProblemError(
            503,
            exc.detail,
            type_=exc.type_,
            title=exc.title,
            headers={"Retry-After": str(exc.retry_after)},
            extra=exc.extra,
        )
    return ProblemError(400, exc.detail, extra=exc.extra)


def problem_response(problem: ProblemError) -> Response[Any]:
    return Response(
        content=problem.body(),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


async def send_problem(scope: Scope, receive: Receive, send: Send, problem: ProblemError) -> None:
    """Answer from ASGI middleware (API keys, admission) with a problem document."""
    response = problem_response(problem).to_asgi_response(
        None, Request(scope, receive), is_head_response=scope.get("method") == "HEAD"
    )
    await response(scope, receive, send)


def handle_problem(_: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    return problem_response(exc)


def handle_domain(_: Request[Any, Any, Any], exc: CostApiError) -> Response[Any]:
    return problem_response(from_domain(exc))


def handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        errors = []
        for item in exc.extra if isinstance(exc.extra, list) else []:
            field = str(item.get("key") or item.get("source") or "request")
            errors.append({"field": field, "message": str(item.get("message", "invalid value"))})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or exc.detail
        return problem_response(ProblemError(400, detail, errors=errors))
    if isinstance(exc, NotFoundException):
        return problem_response(ProblemError(404, "no such path"))
    headers = dict(exc.headers or {})
    return problem_response(ProblemError(exc.status_code, exc.detail, headers=headers))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(ProblemError(500, "an unexpected error occurred; it has been logged"))


# The OpenAPI document describes every error answer as what it is: a problem document.
_PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "detail", "errors"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, description="a URI reference naming the problem"),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(
                type=OpenAPIType.OBJECT,
                required=["field", "message"],
                properties={"field": Schema(type=OpenAPIType.STRING), "message": Schema(type=OpenAPIType.STRING)},
            ),
        ),
    },
    description="RFC 9457 problem document; some problems add members (a budget's endpoint, limit_usd, …)",
)
_DESCRIPTIONS = {
    400: "A bad parameter: `errors` names it and what it accepts",
    401: "Missing or wrong API key",
    403: "A key of scoped_keys asked for a filter outside its scope (`errors` names it), or a route it may not see",
    503: "Database unavailable, or too many queries running: retry after `Retry-After` seconds",
    504: "The query ran past query_timeout and was cancelled",
}
_HEADERS: dict[int, dict[str, OpenAPIHeader | Reference]] = {
    401: {"WWW-Authenticate": OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING))},
    503: {"Retry-After": OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), description="seconds")},
}


def document_problems(openapi: OpenAPI, statuses: Callable[[str], Iterable[int]]) -> None:
    """Rewrite the error responses of every operation as problem documents, adding `statuses(path)`."""
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    openapi.components.schemas["Problem"] = _PROBLEM_SCHEMA
    content = {PROBLEM_JSON: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))}
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch", "head", "options"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses = dict(operation.responses or {})
            wanted = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            if operation.parameters or operation.request_body:  # any input can be a bad one
                wanted.add(400)
            for status in sorted(wanted | set(statuses(path))):
                old = responses.get(str(status))
                if isinstance(old, OpenAPIResponse) and PROBLEM_JSON in (old.content or {}):
                    continue  # declared by its route as a problem document already
                description = _DESCRIPTIONS.get(status) or (
                    old.description if isinstance(old, OpenAPIResponse) else _TITLES.get(status, "Error")
                )
                responses[str(status)] = OpenAPIResponse(
                    description=description, content=content, headers=_HEADERS.get(status)
                )
