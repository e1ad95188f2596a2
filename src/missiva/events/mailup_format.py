"""MailUp-compatible webhook calls: customer-named parameters bound to `[Placeholder]`s, GET or POST,
optionally RC4 + Base64 encrypted in the shapes MailUp's Magento and Joomla receivers decode.

MailUp webhooks are per list and know four events. Audience events map to them as follows:

- subscription.confirmed -> Subscribe; subscription.unsubscribed -> Unsubscribe (Reason = optout_type);
- recipient.updated -> Changeprofile on each list the recipient is subscribed or pending on, except an
  email change, which MailUp sends as Unsubscribe(old address) + Subscribe(new address) on each list the
  recipient is subscribed to;
- recipient.deleted -> Delete on each list the recipient was on;
- subscription.requested has no MailUp counterpart (MailUp tells nothing until the opt-in is confirmed).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

import phonenumbers

from missiva.audience.enums import Channel, EventType, Source, Status
from missiva.audience.models import AudienceEvent
from missiva.errors import InvalidInput
from missiva.events.enums import Encryption, HttpMethod
from missiva.events.rc4 import rc4

MAX_FIELD = 39
_FIELD = re.compile(r"field0*([1-9][0-9]?)")
_PLACEHOLDER = re.compile(r"\[([A-Za-z0-9]+)\]")
_NAMED = (
    "EventDate",
    "IdConsole",
    "IdList",
    "IdNL",
    "EventType",
    "EventSource",
    "Reason",
    "Email",
    "Prefix",
    "Number",
    "Groups",
    "Channel",
)
PLACEHOLDERS = (*_NAMED, *(f"Field{n:02d}" for n in range(1, MAX_FIELD + 1)))
_CANONICAL = {p.lower(): p for p in PLACEHOLDERS}

# MailUp's [EventSource] words; import and system are Missiva's own sources.
SOURCE_NAMES = {
    Source.API: "API",
    Source.CONSOLE: "Console",
    Source.RECIPIENT: "Recipient",
    Source.IMPORT: "Import",
    Source.SYSTEM: "System",
}
# MailUp's [Channel] codes: Unknown=-1, Mail=0, Sms=1.
CHANNEL_CODES = {Channel.EMAIL: "0", Channel.SMS: "1"}


class MailupEvent(StrEnum):
    SUBSCRIBE = "Subscribe"
    UNSUBSCRIBE = "Unsubscribe"
    CHANGEPROFILE = "Changeprofile"
    DELETE = "Delete"


class EventTypeCase(StrEnum):
    """How [EventType] is written: `Subscribe` (MailUp's documentation) or `SUBSCRIBE` (Joomla module)."""

    TITLE = "title"
    UPPER = "upper"


def canonical_placeholder(name: str) -> str | None:
    """The placeholder's canonical spelling (`[email]` -> `Email`, `[Field1]` -> `Field01`), or None."""
    lowered = name.lower()
    match = _FIELD.fullmatch(lowered)
    if match and 1 <= int(match.group(1)) <= MAX_FIELD:
        return f"Field{int(match.group(1)):02d}"
    return _CANONICAL.get(lowered)


def check_params(params: Sequence[Sequence[str]]) -> list[list[str]]:
    """Validate the `name = template` pairs; each template is text with `[Placeholder]`s.

    Raises InvalidInput naming the parameter with an empty or repeated name or an unknown placeholder.
    """
    if not params:
        raise InvalidInput("a MailUp webhook needs at least one parameter", field="mailup.params")
    seen: set[str] = set()
    checked: list[list[str]] = []
    for index, pair in enumerate(params):
        where = f"mailup.params.{index}"
        if len(pair) != 2:
            raise InvalidInput("each parameter is a [name, value] pair", field=where)
        name, template = str(pair[0]).strip(), str(pair[1])
        if not name or len(name) > 100:
            raise InvalidInput("a parameter name must have 1 to 100 characters", field=where)
        if name in seen:
            raise InvalidInput(f"parameter {name!r} is given twice", field=where)
        seen.add(name)
        if len(template) > 500:
            raise InvalidInput(f"the value of {name!r} is longer than 500 characters", field=where)
        for placeholder in _PLACEHOLDER.findall(template):
            if canonical_placeholder(placeholder) is None:
                raise InvalidInput(
                    f"unknown placeholder [{placeholder}] in parameter {name!r}; "
                    f"known: {', '.join(f'[{p}]' for p in _NAMED)}, [Field01]..[Field{MAX_FIELD}]",
                    field=where,
                )
        checked.append([name, template])
    return checked


@dataclass(frozen=True)
class Call:
    """One MailUp webhook request: an event on one list about one address."""

    type: MailupEvent
    list_id: int
    email: str | None
    channel: str


def calls(event: AudienceEvent, list_filter: int | None = None) -> list[Call]:
    """The MailUp requests `event` turns into (possibly none), in the order they must be sent."""
    data: dict[str, Any] = event.data or {}
    email = data.get("email")
    channel = event.channel or (Channel.EMAIL if email or not data.get("mobile") else Channel.SMS)
    subs = data.get("subscriptions") or []

    def lists_with(statuses: set[str]) -> list[int]:
        if event.list_id is not None:
            return [event.list_id]
        return sorted({s["list_id"] for s in subs if s.get("status") in statuses})

    def on(lists: list[int], kind: MailupEvent, address: str | None = email) -> list[Call]:
        return [
            Call(kind, list_id, address, channel)
            for list_id in lists
            if list_filter is None or list_id == list_filter
        ]

    if event.type == EventType.SUBSCRIPTION_CONFIRMED and event.list_id is not None:
        return on([event.list_id], MailupEvent.SUBSCRIBE)
    if event.type == EventType.SUBSCRIPTION_UNSUBSCRIBED and event.list_id is not None:
        return on([event.list_id], MailupEvent.UNSUBSCRIBE)
    if event.type == EventType.RECIPIENT_DELETED:
        lists = [event.list_id] if event.list_id is not None else sorted(data.get("lists") or [])
        return on(lists, MailupEvent.DELETE)
    if event.type == EventType.RECIPIENT_UPDATED:
        old_new = (data.get("changes") or {}).get("email")
        if old_new and old_new[0] and old_new[1]:
            out: list[Call] = []
            for list_id in lists_with({Status.SUBSCRIBED}):
                out += on([list_id], MailupEvent.UNSUBSCRIBE, old_new[0])
                out += on([list_id], MailupEvent.SUBSCRIBE, old_new[1])
            return out
        return on(lists_with({Status.SUBSCRIBED, Status.PENDING}), MailupEvent.CHANGEPROFILE)
    return []


def event_date(at: datetime) -> str:
    """[EventDate]: ISO 8601 with milliseconds and offset, e.g. `2012-09-12T09:18:37.664+00:00`."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def _split_mobile(mobile: str | None) -> tuple[str, str]:
    if not mobile:
        return "", ""
    try:
        number = phonenumbers.parse(mobile, None)
    except phonenumbers.NumberParseException:
        return "", mobile
    return f"+{number.country_code}", phonenumbers.national_significant_number(number)


def placeholder_values(
    call: Call, event: AudienceEvent, case: EventTypeCase = EventTypeCase.TITLE
) -> dict[str, str]:
    """The value of every placeholder for `call`."""
    data: dict[str, Any] = event.data or {}
    prefix, number = _split_mobile(data.get("mobile"))
    fields = data.get("fields") or {}
    groups = [g["id"] for g in data.get("groups") or [] if g.get("list_id") == call.list_id]
    is_unsubscribe = (
        call.type is MailupEvent.UNSUBSCRIBE and event.type == EventType.SUBSCRIPTION_UNSUBSCRIBED
    )
    reason = data.get("optout_type") if is_unsubscribe else None
    values = {
        "EventDate": event_date(event.occurred_at),
        "IdConsole": str(event.account_id),
        "IdList": str(call.list_id),
        "IdNL": "" if event.mailing_id is None else str(event.mailing_id),
        "EventType": call.type.value.upper() if case is EventTypeCase.UPPER else call.type.value,
        "EventSource": SOURCE_NAMES.get(event.source, str(event.source).title()),
        "Reason": "" if reason is None else str(reason),
        "Email": call.email or "",
        "Prefix": prefix,
        "Number": number,
        "Groups": ",".join(str(g) for g in groups),
        "Channel": CHANNEL_CODES.get(call.channel, "-1"),
    }
    for n in range(1, MAX_FIELD + 1):
        values[f"Field{n:02d}"] = str(fields.get(str(n)) or "")
    return values


def render_params(params: Sequence[Sequence[str]], values: dict[str, str]) -> list[tuple[str, str]]:
    """The configured `name = template` pairs with their placeholders filled in."""

    def fill(match: re.Match[str]) -> str:
        name = canonical_placeholder(match.group(1))
        return values.get(name, "") if name else match.group(0)

    return [(name, _PLACEHOLDER.sub(fill, template)) for name, template in params]


@dataclass(frozen=True)
class OutgoingRequest:
    """An HTTP request ready to send."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None


def build_request(
    url: str,
    method: str,
    pairs: Sequence[tuple[str, str]],
    encryption: str = Encryption.NONE,
    key: str | None = None,
) -> OutgoingRequest:
    """The request carrying `pairs` as MailUp sends them (query string for GET, form body for POST)."""
    query = urlencode(list(pairs))
    if encryption != Encryption.NONE:
        if not key:
            raise InvalidInput("an encrypted MailUp webhook needs a key", field="mailup.key")
        blob = quote(base64.b64encode(rc4(key.encode(), query.encode())).decode("ascii"), safe="")
        # Magento reads each parameter *name* as the encrypted data; Joomla the whole query string.
        query = f"{blob}=" if encryption == Encryption.MAGENTO else blob
    if method == HttpMethod.GET:
        separator = "&" if "?" in url else "?"
        return OutgoingRequest("GET", f"{url}{separator}{query}", {}, None)
    return OutgoingRequest(
        "POST", url, {"content-type": "application/x-www-form-urlencoded"}, query.encode("ascii")
    )
