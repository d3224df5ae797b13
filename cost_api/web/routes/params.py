"""The query parameters every /v1 analytics endpoint shares, the `common` dependency (declared once on
the app, in create_app); and what no path or query parameter of any route may hold."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter

from cost_api.aggregation.aggregator import Filters
from cost_api.config.tags import TAG_KEY
from cost_api.errors import BadParameter
from cost_api.text import has_control, refuse_control
from cost_api.web.scope import key_scope, narrow
from cost_api.web.service import Service
from cost_api.windows import Window, parse_window, parse_zone

# The query parameters of the lenses that answer items per key, shared by their routes.
GroupBy = Annotated[str, QueryParameter(description="provider, endpoint, token, model or tag:<key>")]
Limit = Annotated[int, QueryParameter(description="items (1–1000); the rest go to others")]


def limit_param(value: int) -> int:
    """`limit`, checked: a whole number from 1 to 1000, else a 400 naming it."""
    if not 1 <= value <= 1000:
        raise BadParameter("limit", f"expected a whole number from 1 to 1000; got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Common:
    window_raw: str | None
    from_raw: str | None
    to_raw: str | None
    tz: zoneinfo.ZoneInfo
    filters: Filters  # a scoped key's: its scope ∩ the request's
    asked: Filters  # the request's own
    now: datetime  # the service's clock when the request came

    def window(self, default: str) -> Window:
        return parse_window(
            window=self.window_raw, from_=self.from_raw, to=self.to_raw, tz=self.tz, default=default, now=self.now
        )


def tag_filter(value: str) -> tuple[str, str]:
    """One `tag=key:value` filter, checked (the key against the tokens' tags when read)."""
    key, sep, tag_value = value.partition(":")
    if not sep or not TAG_KEY.match(key) or not tag_value:
        raise BadParameter("tag", f"expected key:value (e.g. team:search); got {value!r}")
    return key, tag_value


async def refuse_control_characters(request: Request[Any, Any, Any]) -> None:
    """Before every route handler: a path with a control character names no route or file (a 404;
    `/static/app.js%00.png` reached the file system), a query parameter with one is a 400 naming it,
    whether the route takes that parameter or not."""
    if has_control(request.scope["path"]):
        raise NotFoundException()
    for name, value in request.query_params.multi_items():
        refuse_control(name, name)
        refuse_control(name, value)


async def common(
    request: Request[Any, Any, Any],
    service: NamedDependency[Service],
    window: Annotated[
        str | None, QueryParameter(description="A duration (15m, 24h, 7d, 30d) or today, week, month")
    ] = None,
    from_: Annotated[
        str | None, QueryParameter(name="from", description="RFC 3339 or epoch ms; wins over window")
    ] = None,
    to: Annotated[str | None, QueryParameter(description="RFC 3339 or epoch ms; default now")] = None,
    tz: Annotated[str | None, QueryParameter(description="IANA zone for days and calendar spans")] = None,
    provider: Annotated[list[str] | None, QueryParameter(description="repeatable filter")] = None,
    model: Annotated[list[str] | None, QueryParameter(description="repeatable filter")] = None,
    endpoint: Annotated[list[str] | None, QueryParameter(description="repeatable filter")] = None,
    token: Annotated[list[str] | None, QueryParameter(description="token id or displayed prefix; repeatable")] = None,
    tag: Annotated[
        list[str] | None,
        QueryParameter(description="key:value of the tokens' tags, e.g. team:search; repeatable (docs/tags.md)"),
    ] = None,
) -> Common:
    """The shared parameters; a scoped key's filters are its scope ∩ the request's (a 403 outside it)."""
    settings = service.settings
    key = key_scope(request.scope)
    filters = Filters(
        providers=tuple(provider or ()),
        models=tuple(model or ()),
        endpoints=tuple(endpoint or ()),
        tokens=tuple(token or ()),
        tags=tuple(tag_filter(value) for value in tag or ()),
    )
    directory = await service.aggregator.tokens() if key is not None and key.tokens else None
    return Common(
        window_raw=window,
        from_raw=from_,
        to_raw=to,
        tz=parse_zone(tz, settings.tz),
        filters=narrow(key, filters, directory),
        asked=filters,
        now=service.clock.now(),
    )
