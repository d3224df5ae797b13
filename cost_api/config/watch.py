"""The watch settings: budgets (per endpoint, token or tag value) and the anomaly rules with their
webhook (docs/budgets.md, docs/alerts.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from cost_api.config.base import Duration, Strict, doc, duration
from cost_api.config.tags import TAG_KEY, UNTAGGED


class Budget(Strict, frozen=True, kw_only=True):
    endpoint: Annotated[str | None, doc("The gateway route, as logged in `request_log.endpoint`.")] = None
    token: Annotated[str | None, doc("A token: its id (`api_tokens.id`) or its displayed prefix (`sk-live-a1b…`).")] = (
        None
    )
    tag: Annotated[
        str | None, doc("A tag value, `key:value` (`team:search`): the tokens carrying it at each hour.")
    ] = None
    limit_usd: Annotated[float, doc("The cap in USD; the check answers 422 once spent ≥ limit.", gt=0)]
    period: Annotated[
        Literal["day", "week", "month"], doc("`week` is ISO (from Monday); each a calendar span in `tz`.")
    ]
    warn_at_pct: Annotated[float, doc("Status `warning` from this share of the limit (%).", gt=0, le=100)] = 80.0

    def __post_init__(self) -> None:
        named = [(kind, value) for kind, value in self.subject_fields() if value is not None]
        if len(named) != 1:
            got = ", ".join(kind for kind, _ in named) or "none"
            raise ValueError(f"give exactly one of endpoint, token or tag (got {got})")
        kind, value = named[0]
        if not value.strip():
            raise ValueError(f"{kind}: blank")
        if kind == "token" and value.removesuffix("…") == "anonymous":
            raise ValueError("token: anonymous calls carry no token; cap them with an endpoint budget")
        if kind == "tag":
            key, colon, tag_value = value.partition(":")
            if not colon or not TAG_KEY.match(key) or not tag_value.strip():
                raise ValueError(f"tag: expected key:value, like team:search; got {value!r}")
            if tag_value == UNTAGGED:
                raise ValueError(f"tag: {UNTAGGED} is no tag value; untagged tokens are in no tag budget")

    def subject_fields(self) -> tuple[tuple[str, str | None], ...]:
        return (("endpoint", self.endpoint), ("token", self.token), ("tag", self.tag))

    @property
    def subject(self) -> tuple[Literal["endpoint", "token", "tag"], str]:
        """What the budget caps: ("endpoint", "/x"), ("token", id or prefix) or ("tag", "team:search")."""
        if self.endpoint is not None:
            return "endpoint", self.endpoint
        if self.token is not None:
            return "token", self.token.removesuffix("…")
        assert self.tag is not None  # __post_init__: exactly one is given
        return "tag", self.tag


class Retry(Strict, frozen=True):
    attempts: Annotated[int, doc("Delivery attempts per event.", ge=1, le=100)] = 6
    first_delay: Annotated[Duration, doc("Delay before the first retry; doubled after each failure.")] = duration("1s")
    max_delay: Annotated[Duration, doc("The longest delay between retries.")] = duration("5m")


WATCH_PATTERN = r"^(endpoint|token|provider|model|tag:[A-Za-z0-9_.-]{1,64})$"
WatchDimension = Annotated[str, msgspec.Meta(pattern=WATCH_PATTERN)]


class Alerts(Strict, frozen=True):
    webhook_url: Annotated[
        str | None,
        doc(
            "Where `fired` / `resolved` events are POSTed (an `http://` or `https://` URL with a host); "
            "without it anomalies are listed but nothing is sent."
        ),
    ] = None
    webhook_secret: Annotated[str | None, doc("Key for the `X-Cost-Signature` HMAC-SHA256 header.")] = None
    interval: Annotated[Duration, doc("How often the live engine evaluates the rules.")] = duration("60s")
    ratio: Annotated[float, doc("`burn_rate` and `request_storm` fire at this multiple of their baseline.", gt=1)] = 2.5
    min_spend_per_hour: Annotated[
        float, doc("`burn_rate` and `new_spender` ignore spend below this (USD per hour).", ge=0)
    ] = 1.0
    min_requests_per_minute: Annotated[float, doc("`request_storm` ignores rates below this.", ge=0)] = 60.0
    min_requests: Annotated[
        int,
        doc(
            "`burn_rate` holds on a window (the last hour, the last 24 hours) only when it holds at least this "
            "many requests: one expensive request in a quiet hour is no burn.",
            ge=0,
        ),
    ] = 10
    max_spend_per_hour: Annotated[
        dict[WatchDimension, Annotated[float, msgspec.Meta(gt=0)]],
        doc(
            "`spend_ceiling`: a key of the dimension that spends at least this much in an hour (USD), "
            "whatever its history — it judges a log's first hours too. By default a token at $50 an hour "
            "(`{}` turns it off; docs/alerts.md gives the measurement)."
        ),
    ] = msgspec.field(default_factory=lambda: {"token": 50.0})
    min_impact: Annotated[
        float,
        doc(
            "An incident of the hourly rules is listed and sent only once its spend over the baseline reaches "
            "this (USD over the incident); one with a request storm or a new token's spend, and budget "
            "incidents, always are.",
            ge=0,
        ),
    ] = 5.0
    public_url: Annotated[
        str | None,
        doc(
            "The API's address as a reader of the alerts reaches it (`https://cost.example.com`); with it "
            "each webhook event links to the incident's requests (`/v1/requests?…`)."
        ),
    ] = None
    dimensions: Annotated[
        list[WatchDimension],
        doc("The dimensions whose values the rules watch; `tag:<key>` watches a tag's values (a team's burn rate)."),
    ] = msgspec.field(default_factory=lambda: ["endpoint", "token", "provider", "model"])
    retry: Annotated[Retry, doc("Webhook delivery retries.")] = msgspec.field(default_factory=Retry)
