"""Subscription rules (pure): what a Subscription asks for, and the notifications it gets.

Two kinds are served, both with rest-hook channels:
- R4 criteria (spec R4B subscription.html): Subscription.criteria is a search query,
  "Task?owner=Organization/x&status=requested".
- Topic-based, per the Subscriptions R5 Backport IG for R4B
  (hl7.org/fhir/uv/subscriptions-backport, StructureDefinition-backport-subscription.html):
  Subscription.criteria is a SubscriptionTopic canonical and the filters are
  backport-filter-criteria extensions on it; payload content is the backport-payload-content
  extension on channel.payload; the heartbeat period is backport-heartbeat-period.

Notifications of both kinds are backport notification Bundles (type history) whose first
entry is a SubscriptionStatus (R4B has the resource), as the IG's
StructureDefinition-backport-subscription-notification.html describes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from app.clock import format_instant
from app.fhir.errors import ResourceInvalid

_BACKPORT: Final = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
FILTER_CRITERIA_URL: Final = _BACKPORT + "backport-filter-criteria"
PAYLOAD_CONTENT_URL: Final = _BACKPORT + "backport-payload-content"
HEARTBEAT_PERIOD_URL: Final = _BACKPORT + "backport-heartbeat-period"
NOTIFICATION_PROFILE: Final = _BACKPORT + "backport-subscription-notification"
SUBSCRIPTION_PROFILE: Final = _BACKPORT + "backport-subscription"

PAYLOAD_CONTENTS: Final = ("empty", "id-only", "full-resource")
_PAYLOAD_TYPES: Final = ("application/fhir+json", "application/json", "application/json+fhir")
TOPICS_PATH: Final = (
    Path(__file__).resolve().parents[2] / "schemas" / "fhir" / "subscription_topics.json"
)
# Statuses a client may write; active and error are the server's to set (subscription.html).
CLIENT_STATUSES: Final = ("requested", "active", "off", "error")
_HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n\x00]*)$")
# Headers the server itself sets on every notification POST.
_RESERVED_HEADERS: Final = frozenset(
    {"host", "content-type", "content-length", "transfer-encoding", "connection"}
)
MAX_HEARTBEAT_S: Final = 86_400


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What one Subscription resource asks for, checked."""

    status: str
    resource_type: str
    # Filter parameters of the search query that selects matching resources.
    params: tuple[tuple[str, str], ...]
    topic: str | None
    payload: str
    endpoint: str
    headers: tuple[str, ...]
    heartbeat_s: int

    @property
    def query(self) -> str:
        """The criteria as one search query string (stored, shown in errors)."""
        return f"{self.resource_type}?{urlencode(self.params)}"


@cache
def topics() -> dict[str, dict[str, Any]]:
    """The SubscriptionTopics this server ships, by canonical url."""
    loaded: list[dict[str, Any]] = orjson.loads(TOPICS_PATH.read_bytes())
    return {t["url"]: t for t in loaded}


def topic_by_id(topic_id: str) -> dict[str, Any] | None:
    """A shipped SubscriptionTopic by its logical id."""
    return next((t for t in topics().values() if t["id"] == topic_id), None)


def _topic(criteria: str, own_base: str) -> dict[str, Any] | None:
    found = topics().get(criteria)
    if found is not None:
        return found
    # The topic as this server serves it: {base}/SubscriptionTopic/{id}.
    prefix = f"{own_base}/SubscriptionTopic/"
    if criteria.startswith(prefix):
        return topic_by_id(criteria[len(prefix) :])
    return None


def _invalid(message: str, expression: str) -> ResourceInvalid:
    return ResourceInvalid(message, expression=(expression,))


def _extensions(element: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(element, dict):
        return []
    return [e for e in element.get("extension", []) if isinstance(e, dict) and e.get("url") == url]


def _query_params(text: str, expression: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError as exc:
        raise _invalid(f"The criteria {text[:200]!r} are not a search query", expression) from exc


def _r4_criteria(criteria: str) -> tuple[str, list[tuple[str, str]]]:
    resource_type, sep, query = criteria.partition("?")
    if not sep or not resource_type or not query:
        raise _invalid(
            "Subscription.criteria must be a SubscriptionTopic canonical this server offers, "
            f"or a search query Type?param=value; {criteria[:200]!r} is neither",
            "Subscription.criteria",
        )
    return resource_type, _query_params(query, "Subscription.criteria")


def _topic_criteria(
    topic: dict[str, Any], subscription: dict[str, Any]
) -> tuple[str, list[tuple[str, str]]]:
    resource_type = topic["canFilterBy"][0]["resource"]
    allowed = {f["filterParameter"] for f in topic["canFilterBy"]}
    params: list[tuple[str, str]] = []
    for extension in _extensions(subscription.get("_criteria"), FILTER_CRITERIA_URL):
        value = extension.get("valueString")
        where = "Subscription.criteria.extension('backport-filter-criteria')"
        if not isinstance(value, str) or not value:
            raise _invalid("backport-filter-criteria needs a valueString", where)
        # Either "Task?owner=x" or "owner=x" (the IG shows both shapes).
        head, sep, tail = value.partition("?")
        if sep:
            if head != resource_type:
                raise _invalid(
                    f"The filter {value[:200]!r} names {head!r}; topic {topic['url']} "
                    f"filters {resource_type}",
                    where,
                )
            value = tail
        for name, item in _query_params(value, where):
            if name.split(":")[0] not in allowed:
                raise _invalid(
                    f"Topic {topic['url']} cannot filter by {name!r}; it offers "
                    f"{', '.join(sorted(allowed))}",
                    where,
                )
            params.append((name, item))
    return resource_type, params


def _payload(channel: dict[str, Any], topic_based: bool) -> str:
    mime = channel.get("payload")
    if mime is not None and mime.split(";")[0].strip().lower() not in _PAYLOAD_TYPES:
        raise _invalid(
            f"Subscription.channel.payload {mime!r} is not served; use application/fhir+json",
            "Subscription.channel.payload",
        )
    found = _extensions(channel.get("_payload"), PAYLOAD_CONTENT_URL)
    content = [e.get("valueCode") for e in found]
    if len(content) > 1:
        raise _invalid("At most one backport-payload-content", "Subscription.channel.payload")
    if content:
        if content[0] not in PAYLOAD_CONTENTS:
            raise _invalid(
                f"backport-payload-content must be one of {', '.join(PAYLOAD_CONTENTS)}",
                "Subscription.channel.payload",
            )
        if content[0] != "empty" and mime is None:
            raise _invalid(
                "A payload other than empty needs channel.payload application/fhir+json",
                "Subscription.channel.payload",
            )
        return str(content[0])
    # R4 (subscription.html#channels): no payload type means an empty notification; the
    # backport IG's default for topic-based subscriptions with a type is id-only.
    if mime is None:
        return "empty"
    return "id-only" if topic_based else "full-resource"


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "0.0.0.0"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: Any, own_base: str) -> str:
    """A rest-hook endpoint: an absolute http(s) URL that is not this server itself.

    Delivering to the server's own origin would let a Subscription make the server POST to
    its own API, admin and auth paths as itself, so the whole origin is refused.
    """
    where = "Subscription.channel.endpoint"
    if not isinstance(endpoint, str) or not endpoint:
        raise _invalid("A rest-hook Subscription needs channel.endpoint", where)
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"channel.endpoint {endpoint[:200]!r} is not a URL", where) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(
            f"channel.endpoint must be an absolute http or https URL, not {endpoint[:200]!r}",
            where,
        )
    if parts.username or parts.password:
        raise _invalid("channel.endpoint must not carry credentials; use channel.header", where)
    own = urlsplit(own_base)
    default = {"http": 80, "https": 443}
    own_port = own.port or default.get(own.scheme)
    host = parts.hostname.lower()
    own_host = (own.hostname or "").lower()
    same_host = host == own_host or (_is_loopback(host) and _is_loopback(own_host))
    if same_host and (port or default[parts.scheme]) == own_port:
        raise _invalid(
            "channel.endpoint points at this server itself; notifications are not delivered "
            "to its own API, admin or auth paths",
            where,
        )
    return endpoint


def _headers(channel: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for value in channel.get("header", []):
        match = _HEADER.match(value) if isinstance(value, str) else None
        if match is None:
            raise _invalid(
                "Each channel.header must be one 'Name: value' line", "Subscription.channel.header"
            )
        if match.group(1).lower() in _RESERVED_HEADERS:
            raise _invalid(
                f"channel.header may not set {match.group(1)}; the server sets it",
                "Subscription.channel.header",
            )
        out.append(f"{match.group(1)}: {match.group(2).strip()}")
    return tuple(out)


def _heartbeat(channel: dict[str, Any]) -> int:
    found = _extensions(channel, HEARTBEAT_PERIOD_URL)
    if not found:
        return 0
    value = found[0].get("valueUnsignedInt")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_HEARTBEAT_S:
        raise _invalid(
            f"backport-heartbeat-period must be an unsignedInt of at most {MAX_HEARTBEAT_S} s",
            "Subscription.channel.extension('backport-heartbeat-period')",
        )
    return value


def read_subscription(subscription: dict[str, Any], *, own_base: str) -> SubscriptionSpec:
    """Check a (model-validated) Subscription and say what it asks for; 422 otherwise."""
    status = subscription.get("status")
    if status not in CLIENT_STATUSES:
        raise _invalid(
            f"Subscription.status must be one of {', '.join(CLIENT_STATUSES)}",
            "Subscription.status",
        )
    channel = subscription.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise _invalid(
            f"Only rest-hook channels are served, not {channel.get('type')!r}",
            "Subscription.channel.type",
        )
    criteria = subscription.get("criteria")
    if not isinstance(criteria, str) or not criteria:
        raise _invalid("Subscription.criteria is required", "Subscription.criteria")
    topic = _topic(criteria, own_base)
    if topic is not None:
        resource_type, params = _topic_criteria(topic, subscription)
    elif "?" not in criteria and "://" in criteria:
        raise _invalid(
            f"Unknown SubscriptionTopic {criteria[:200]!r}; see GET [base]/SubscriptionTopic",
            "Subscription.criteria",
        )
    else:
        resource_type, params = _r4_criteria(criteria)
    return SubscriptionSpec(
        status=str(status),
        resource_type=resource_type,
        params=tuple(params),
        topic=topic["url"] if topic is not None else None,
        payload=_payload(channel, topic is not None),
        endpoint=check_endpoint(channel.get("endpoint"), own_base),
        headers=_headers(channel),
        heartbeat_s=_heartbeat(channel),
    )


def same_channel(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """True when an update keeps the endpoint and criteria (no new handshake is needed)."""
    if old is None:
        return False
    old_channel, new_channel = old.get("channel") or {}, new.get("channel") or {}
    return bool(
        old.get("criteria") == new.get("criteria")
        and old_channel.get("endpoint") == new_channel.get("endpoint")
    )


# -- notifications ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusView:
    """A Subscription's state as SubscriptionStatus reports it."""

    subscription_id: str
    status: str
    topic: str | None
    events: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """One event to report: the version of the focus resource that caused it."""

    number: int
    occurred_at: datetime
    resource_type: str
    resource_id: str
    version_id: int
    method: str
    # The stored body of that version (full-resource payloads), None otherwise.
    body: bytes | None


def subscription_status(
    view: StatusView, *, kind: str, base_url: str, status_id: str, events: tuple[Event, ...] = ()
) -> dict[str, Any]:
    """A SubscriptionStatus (R4B subscriptionstatus.html) of the given notification type."""
    out: dict[str, Any] = {
        "resourceType": "SubscriptionStatus",
        "id": status_id,
        "status": view.status,
        "type": kind,
        "eventsSinceSubscriptionStart": str(view.events),
    }
    if events:
        out["notificationEvent"] = [
            {
                "eventNumber": str(e.number),
                "timestamp": format_instant(e.occurred_at),
                "focus": {"reference": f"{base_url}/{e.resource_type}/{e.resource_id}"},
            }
            for e in events
        ]
    out["subscription"] = {"reference": f"{base_url}/Subscription/{view.subscription_id}"}
    if view.topic is not None:
        out["topic"] = view.topic
    if view.error:
        out["error"] = [{"text": view.error}]
    return out


def notification_bundle(
    view: StatusView,
    *,
    kind: str,
    payload: str,
    base_url: str,
    now: datetime,
    bundle_id: str,
    events: tuple[Event, ...] = (),
) -> bytes:
    """A backport notification Bundle: type history, SubscriptionStatus first, then one
    entry per event focus unless the payload is empty (backport IG payloads.html)."""
    status = subscription_status(
        view, kind=kind, base_url=base_url, status_id=bundle_id, events=events
    )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{bundle_id}",
            "resource": status,
            "request": {
                "method": "GET",
                "url": f"{base_url}/Subscription/{view.subscription_id}/$status",
            },
            "response": {"status": "200"},
        }
    ]
    if payload != "empty":
        for event in events:
            entry: dict[str, Any] = {
                "fullUrl": f"{base_url}/{event.resource_type}/{event.resource_id}",
            }
            if payload == "full-resource" and event.body is not None:
                entry["resource"] = orjson.Fragment(event.body)
            entry["request"] = {
                "method": event.method,
                "url": f"{event.resource_type}/{event.resource_id}",
            }
            entry["response"] = {
                "status": "201" if event.method == "POST" else "200",
                "etag": f'W/"{event.version_id}"',
            }
            entries.append(entry)
    bundle = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": format_instant(now),
        "entry": entries,
    }
    return orjson.dumps(bundle)


def status_bundle(view: StatusView, *, base_url: str, status_id: str) -> dict[str, Any]:
    """The $status answer (backport IG OperationDefinition-backport-subscription-status):
    a searchset Bundle of one SubscriptionStatus of type query-status."""
    status = subscription_status(view, kind="query-status", base_url=base_url, status_id=status_id)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "link": [
            {"relation": "self", "url": f"{base_url}/Subscription/{view.subscription_id}/$status"}
        ],
        "entry": [
            {"fullUrl": f"urn:uuid:{status_id}", "resource": status, "search": {"mode": "match"}}
        ],
    }


def topics_bundle(found: list[dict[str, Any]], *, base_url: str) -> dict[str, Any]:
    """The shipped SubscriptionTopics as a searchset Bundle."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": f"{base_url}/SubscriptionTopic"}],
        "entry": [
            {
                "fullUrl": f"{base_url}/SubscriptionTopic/{t['id']}",
                "resource": t,
                "search": {"mode": "match"},
            }
            for t in found
        ],
    }


__all__ = [
    "FILTER_CRITERIA_URL",
    "HEARTBEAT_PERIOD_URL",
    "PAYLOAD_CONTENT_URL",
    "Event",
    "StatusView",
    "SubscriptionSpec",
    "check_endpoint",
    "notification_bundle",
    "read_subscription",
    "same_channel",
    "status_bundle",
    "subscription_status",
    "topic_by_id",
    "topics",
    "topics_bundle",
]
