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

import httpx

from cost_api import __version__
from cost_api.aggregation.aggregator import money
from cost_api.watch.anomalies import Episode, Reading, ratio_json
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


def event_text(event: str, e: Episode, reading: Reading) -> str:
    """The Slack-compatible one-line summary of an event."""
    since = iso(e.started_at)
    if event == "fired":
        icon = ":warning:" if e.rule in ("budget_warning", "budget_forecast") else ":rotating_light:"
        return _slack(f"{icon} {_subject(e)}: {reading.words} (since {since})")
    span = f"{since} to {iso(e.ended_at)}" if e.ended_at else f"since {since}"
    peak = ratio_json(e.peak_ratio)
    peaked = f", peak {peak}×" if peak is not None else ""
    return _slack(f":white_check_mark: resolved: {_subject(e)}, {span}{peaked}, ${e.spend:,.2f} spent")


def event_body(event: str, e: Episode) -> dict[str, Any]:
    """The webhook's JSON body."""
    reading = e.last if event == "fired" else (e.after or e.last)
    return {
        "id": e.id,
        "event": event,
        "rule": e.rule,
        "dimension": e.dimension,
        "key": e.key,
        "started_at": iso(e.started_at),
        "recent_spend_per_hour": None if reading.recent is None else money(reading.recent),
        "baseline_spend_per_hour": None if reading.baseline is None else money(reading.baseline),
        "ratio": ratio_json(reading.ratio),
        "text": event_text(event, e, reading),
    }


@dataclass(slots=True)
class Delivery:
    """One event and how its delivery went: `pending` (being tried), `delivered` or `failed`."""

    event: str
    episode: Episode
    body: bytes
    queued_at: datetime
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    text: str = field(default="")

    def as_json(self) -> dict[str, Any]:
        e = self.episode
        return {
            "id": e.id,
            "event": self.event,
            "rule": e.rule,
            "dimension": e.dimension,
            "key": e.key,
            "started_at": iso(e.started_at),
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
