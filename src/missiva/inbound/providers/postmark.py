"""Postmark bounce, spam-complaint and subscription-change webhooks.

Postmark does not sign its webhooks: the endpoint's secret URL token authenticates them, plus HTTP
basic auth when the account configured credentials (Postmark supports `https://user:pass@...` URLs).
Mailing and recipient ids come back in `Metadata` (`missiva_mailing_id` / `missiva_recipient_id`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from missiva.inbound import actions
from missiva.inbound.actions import Notification
from missiva.inbound.classify import Kind, failure_kind
from missiva.inbound.providers import InvalidSignature, MalformedNotification, id_hint
from missiva.tenancy.secrets import verify_password

# Postmark's bounce types (https://postmarkapp.com/developer/api/bounce-api#bounce-types) by what they mean.
HARD_TYPES = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
SOFT_TYPES = {"SoftBounce", "Transient", "DnsError", "Blocked", "DMARCPolicy", "SMTPApiError"}
AUTOREPLY_TYPES = {"AutoResponder", "AddressChange"}


def check_basic_auth(authorization: str | None, username: str, password_hash: str) -> None:
    """Raise InvalidSignature unless the Authorization header carries the configured credentials."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        raise InvalidSignature("Postmark endpoint requires HTTP basic auth")
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("malformed basic auth credentials") from exc
    if user != username or not verify_password(password, password_hash):
        raise InvalidSignature("wrong basic auth credentials for this Postmark endpoint")


def parse(body: bytes) -> list[Notification]:
    """The notification of one Postmark webhook record; deliveries, opens and the like give none."""
    try:
        record = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedNotification(f"Postmark body is not JSON: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("RecordType"), str):
        raise MalformedNotification("Postmark webhook without a RecordType")
    record_type = record["RecordType"]
    if record_type == "Bounce":
        return [_bounce(record)]
    if record_type == "SpamComplaint":
        return [_note(record, Kind.COMPLAINT, None, "spam complaint", record.get("Email"))]
    unsubscribed = (
        record.get("SuppressSending") is True and record.get("SuppressionReason") == "ManualSuppression"
    )
    if record_type == "SubscriptionChange" and unsubscribed:  # the recipient used Postmark's unsubscribe link
        return [_note(record, Kind.UNSUBSCRIBE, None, "unsubscribed", record.get("Recipient"))]
    return []  # Delivery, Open, Click, and suppressions Postmark also reports as Bounce/SpamComplaint


def _bounce(record: dict[str, Any]) -> Notification:
    bounce_type = str(record.get("Type") or "")
    diagnostic = " ".join(str(record.get(k) or "") for k in ("Description", "Details")).strip()
    if bounce_type == "HardBounce":  # Postmark's verdict, unless the text shows a policy block
        kind, status = failure_kind(None, diagnostic, temporary=False, unrecognised=Kind.HARD)
    elif bounce_type in HARD_TYPES:
        kind, status = Kind.HARD, failure_kind(None, diagnostic, temporary=False)[1]
    elif bounce_type in SOFT_TYPES:
        kind, status = Kind.SOFT, failure_kind(None, diagnostic, temporary=True)[1]
    elif bounce_type == "SpamComplaint":
        kind, status = Kind.COMPLAINT, None
    elif bounce_type in AUTOREPLY_TYPES:
        kind, status = Kind.AUTOREPLY, None
    else:
        kind, status = Kind.UNKNOWN, None
    return _note(record, kind, status, f"{bounce_type}: {diagnostic}", record.get("Email"))


def _note(
    record: dict[str, Any], kind: Kind, status: str | None, diagnostic: str, email: Any
) -> Notification:
    mailing_id, recipient_id = id_hint(record.get("Metadata"))
    event_id = str(record.get("ID") or record.get("MessageID") or json.dumps(record, sort_keys=True))
    return Notification(
        kind=kind,
        fingerprint=actions.fingerprint("postmark", str(record.get("RecordType")), event_id),
        source="postmark",
        address=str(email) if email else None,
        status=status,
        diagnostic=diagnostic[:300],
        mailing_id=mailing_id,
        recipient_id=recipient_id,
    )
