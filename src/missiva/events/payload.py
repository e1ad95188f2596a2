"""The native event payload: one JSON object per audience event, the same in webhooks and the feed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.models import AudienceEvent, MailingList
from missiva.events.models import message_id

# Keys of the event snapshot that describe the recipient; every other key is event detail (`data`).
_RECIPIENT_KEYS = ("email", "mobile", "fields", "groups")

ListInfo = dict[str, Any]


def list_infos(session: Session, list_ids: Iterable[int | None]) -> dict[int, ListInfo]:
    """`{id, guid, name}` of each list, looked up once for a batch of events."""
    wanted = {i for i in list_ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(MailingList.id, MailingList.guid, MailingList.name).where(MailingList.id.in_(wanted))
    )
    found = {r.id: {"id": r.id, "guid": r.guid, "name": r.name} for r in rows}
    # A list deleted since the event still identifies itself by id.
    return {i: found.get(i, {"id": i, "guid": None, "name": None}) for i in wanted}


def timestamp(at: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, as every payload writes times."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def native_payload(event: AudienceEvent, lists: dict[int, ListInfo]) -> dict[str, Any]:
    """The JSON object describing `event`; `lists` comes from `list_infos`."""
    data = dict(event.data or {})
    recipient: dict[str, Any] = {"id": event.recipient_id}
    for key in _RECIPIENT_KEYS:
        recipient[key] = data.pop(key, None)
    recipient["fields"] = recipient["fields"] or {}
    recipient["groups"] = recipient["groups"] or []
    return {
        "id": message_id(event.id, 0),
        "type": event.type,
        "occurred_at": timestamp(event.occurred_at),
        "account_id": event.account_id,
        "list": lists.get(event.list_id) if event.list_id is not None else None,
        "recipient": recipient,
        "channel": event.channel,
        "reason": event.reason,
        "source": event.source,
        "mailing_id": event.mailing_id,
        "data": data,
    }


def dumps(payload: dict[str, Any]) -> str:
    """The body as sent: compact JSON, UTF-8 characters kept (the signature covers exactly this text)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
