"""Mailgun webhooks (JSON): permanent failures, complaints and unsubscribes.

Mailgun signs each POST: `signature.signature` is the hex HMAC-SHA256 of `timestamp + token` under the
account's webhook signing key. Mailing and recipient ids come back as the user variables
`missiva_mailing_id` / `missiva_recipient_id` (`v:` variables when sending).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from missiva.inbound import actions
from missiva.inbound.actions import Notification
from missiva.inbound.classify import Kind, failure_kind
from missiva.inbound.providers import InvalidSignature, MalformedNotification, id_hint


def read(body: bytes) -> dict[str, Any]:
    """The JSON object of a webhook POST."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedNotification(f"Mailgun body is not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("event-data"), dict):
        raise MalformedNotification("Mailgun webhook without an event-data object")
    return payload


def verify(payload: dict[str, Any], signing_key: str) -> None:
    """Raise InvalidSignature unless the payload's signature block is valid for `signing_key`."""
    block = payload.get("signature")
    if not isinstance(block, dict):
        raise InvalidSignature("Mailgun webhook without a signature block")
    timestamp, token, signature = (str(block.get(k) or "") for k in ("timestamp", "token", "signature"))
    if not (timestamp and token and signature):
        raise InvalidSignature("Mailgun signature block misses timestamp, token or signature")
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise InvalidSignature("the Mailgun signature does not match")


def parse(payload: dict[str, Any]) -> list[Notification]:
    """The notification of one Mailgun event; deliveries, opens and the like give none."""
    data = payload["event-data"]
    name = data.get("event")
    status_block = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    diagnostic = " ".join(
        str(status_block.get(k)) for k in ("code", "message", "description") if status_block.get(k)
    )[:300]
    status = None
    if name == "failed":
        if data.get("severity") != "permanent":
            kind = Kind.UNKNOWN  # Mailgun retries temporary failures itself: recorded only
        else:
            enhanced = status_block.get("enhanced-code")
            kind, status = failure_kind(
                enhanced if isinstance(enhanced, str) else None,
                f"{diagnostic} {data.get('reason') or ''}",
                temporary=False,
                unrecognised=Kind.HARD,
            )
    elif name == "complained":
        kind = Kind.COMPLAINT
    elif name == "unsubscribed":
        kind = Kind.UNSUBSCRIBE
    else:
        return []
    address = str(data.get("recipient") or "")
    mailing_id, recipient_id = id_hint(data.get("user-variables"))
    event_id = str(data.get("id") or json.dumps(data, sort_keys=True))
    return [
        Notification(
            kind=kind,
            fingerprint=actions.fingerprint("mailgun", event_id),
            source="mailgun",
            address=address or None,
            status=status,
            diagnostic=f"{name}: {diagnostic}"[:300],
            mailing_id=mailing_id,
            recipient_id=recipient_id,
        )
    ]
