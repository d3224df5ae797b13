"""The alert webhook: each event's JSON body and Slack-compatible text, its `X-Cost-Signature`
(HMAC-SHA256 over the timestamp and the raw body), and one POST of it. The engine (alerts.py) decides
what to send and retries; a receiver checks signatures with `verify` (docs/alerts.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from cost_api import __version__
from cost_api.aggregation.aggregator import money
from cost_api.watch.anomalies import Episode, ratio_json
from cost_api.watch.incidents import HOURLY_RULES, Incident
from cost_api.windows import iso

SIGNATURE_HEADER = "X-Cost-Signature"
SIGNATURE_TOLERANCE = 300  # seconds a receiver accepts between `t` and its clock


# --------------------------------------------------------------------------- signatures


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, header: str | None, body: bytes, *, tolerance: float = SIGNATURE_TOLERANCE, now: float | None = None
) -> bool:
    """Whether `header` signs `body` with `secret`, made within `tolerance` seconds of `now`."""
    try:
        parts = dict(item.split("=", 1) for item in (header or "").split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --------------------------------------------------------------------------- events


def _slack(text: str) -> str:
    """One line of Slack mrkdwn: control characters out, `& < >` escaped."""
    flat = " ".join(text.split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _subject(e: Episode) -> str:
    key = e.key.replace("`", "'")
    return f"{e.rule} on {e.dimension} `{key}`" + (f" ({e.name})" if e.name else "")


def audit_link(public_url: str, i: Incident, now: datetime) -> str:
    """`/v1/requests` filtered to the incident's root key over its hours (to its end, or `now`)."""
    root = i.root
    if root.dimension == "model":
        provider, model = root.key.split("/", 1)
        query = [("provider", provider), ("model", model)]
    elif root.dimension.startswith("tag:"):
        query = [("tag", f"{root.dimension[4:]}:{root.key}")]
    else:
        query = [(root.dimension, root.key)]  # a token as displayed: the filter takes it
    query += [("from", iso(i.started_at)), ("to", iso(i.ended_at or now))]
    return f"{public_url.rstrip('/')}/v1/requests?{urlencode(query)}"


def event_text(event: str, i: Incident, now: datetime, link: str | None) -> str:
    """The Slack-compatible one-line summary of an incident's event: its root, its dollars, since when,
    its related keys and, with a `link`, the root's audit rows."""
    root = i.root
    reading = root.last if event == "fired" else (root.after or root.last)
    since = iso(i.started_at)
    budget = root.rule not in HOURLY_RULES  # a budget's words are its dollars
    dollars = i.dollars(now)
    also = f"; {i.also()}" if i.related_keys() else ""
    if event == "fired":
        icon = ":warning:" if root.rule in ("budget_warning", "budget_forecast") else ":rotating_light:"
        what = f"{reading.words} (since {since})" if budget else f"{dollars} since {since}; now {reading.words}"
        text = _slack(f"{icon} {_subject(root)}: {what}{also}")
    else:
        span = f"{since} to {iso(i.ended_at)}" if i.ended_at else f"since {since}"
        peak = ratio_json(root.peak_ratio)
        peaked = f", peak {peak}×" if peak is not None else ""
        what = f"${root.spend:,.2f} spent" if budget else dollars
        text = _slack(f":white_check_mark: resolved: {_subject(root)}, {span}{peaked}, {what}{also}")
    return text if link is None else f"{text} <{_slack(link)}|audit rows>"


def event_body(event: str, incident_id: str, i: Incident, now: datetime, public_url: str | None) -> dict[str, Any]:
    """The webhook's JSON body: the incident, named by its root (rule, dimension, key and its reading)."""
    root = i.root
    reading = root.last if event == "fired" else (root.after or root.last)
    link = None if public_url is None else audit_link(public_url, i, now)
    incident = {k: v for k, v in i.as_json(now).items() if k not in ("id", "episodes")}  # as /v1/anomalies has it
    return {
        "id": incident_id,
        "event": event,
        **incident,
        "recent_spend_per_hour": None if reading.recent is None else money(reading.recent),
        "baseline_spend_per_hour": None if reading.baseline is None else money(reading.baseline),
        "ratio": ratio_json(reading.ratio),
        "baseline_days": reading.baseline_days,
        "link": link,
        "text": event_text(event, i, now, link),
    }


@dataclass(slots=True)
class Delivery:
    """One incident's event and how its delivery went: `pending` (being tried), `delivered` or `failed`."""

    event: str
    id: str  # the incident's, as first sent
    incident: Incident
    body: bytes
    queued_at: datetime
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    text: str = field(default="")

    def as_json(self) -> dict[str, Any]:
        root = self.incident.root
        return {
            "id": self.id,
            "event": self.event,
            "rule": root.rule,
            "dimension": root.dimension,
            "key": root.key,
            "started_at": iso(self.incident.started_at),
            "text": self.text,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "queued_at": iso(self.queued_at),
            "delivered_at": None if self.delivered_at is None else iso(self.delivered_at),
        }


# --------------------------------------------------------------------------- one attempt


async def post(client: httpx.AsyncClient, url: str, secret: str | None, d: Delivery) -> bool:
    """POST `d`'s body to `url`, signed when there is a `secret`; False (with `last_error`) on an error,
    a timeout or a non-2xx answer."""
    headers = {"Content-Type": "application/json", "User-Agent": f"cost-api/{__version__}"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), d.body)
    try:
        response = await client.post(url, content=d.body, headers=headers)
    except httpx.HTTPError as exc:
        d.last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return False
    if response.is_success:
        d.last_error = None
        return True
    d.last_error = f"HTTP {response.status_code}"
    return False
