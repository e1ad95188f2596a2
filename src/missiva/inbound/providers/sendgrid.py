"""SendGrid's signed Event Webhook: bounces, blocks, spam reports and unsubscribes.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and sends the base64 DER signature in
`X-Twilio-Email-Event-Webhook-Signature`, the timestamp in `X-Twilio-Email-Event-Webhook-Timestamp`.
The account pastes SendGrid's verification key (base64 DER, or PEM) when it creates the endpoint.
Mailing and recipient ids come back as the custom args `missiva_mailing_id` / `missiva_recipient_id`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature as _BadSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from missiva.inbound import actions
from missiva.inbound.actions import Notification
from missiva.inbound.classify import Kind, failure_kind
from missiva.inbound.providers import InvalidSignature, MalformedNotification, id_hint

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key as shown in its settings (base64 DER) or as PEM.

    Raises MalformedNotification when it is not a P-256 public key (so a typo is caught at setup).
    """
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise MalformedNotification(f"not a SendGrid verification key: {exc}", field="public_key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise MalformedNotification(
            "the SendGrid verification key must be an ECDSA P-256 key", field="public_key"
        )
    return key


def verify(body: bytes, signature: str | None, timestamp: str | None, public_key: str) -> None:
    """Raise InvalidSignature unless `signature` is SendGrid's over `timestamp + body`."""
    if not signature or not timestamp:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("the SendGrid signature is not base64") from exc
    try:
        load_public_key(public_key).verify(
            raw_signature, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256())
        )
    except _BadSignature as exc:
        raise InvalidSignature("the SendGrid signature does not match the payload") from exc


def parse(body: bytes) -> list[Notification]:
    """The notifications in an Event Webhook POST (a JSON array of events); other events give none."""
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedNotification(f"SendGrid body is not JSON: {exc}") from exc
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise MalformedNotification("SendGrid events must be a JSON array of objects")
    notes = []
    for event in events:
        note = _note(event)
        if note is not None:
            notes.append(note)
    return notes


def _note(event: dict[str, Any]) -> Notification | None:
    name = event.get("event")
    diagnostic = str(event.get("reason") or event.get("response") or "")[:300]
    status = event.get("status") if isinstance(event.get("status"), str) else None
    if name == "bounce" and event.get("type") == "blocked":  # refused for policy or reputation
        kind, status = Kind.SOFT, failure_kind(status, diagnostic, temporary=False)[1]
    elif name == "bounce":
        kind, status = failure_kind(status, diagnostic, temporary=False, unrecognised=Kind.HARD)
    elif name == "spamreport":
        kind = Kind.COMPLAINT
    elif name in ("unsubscribe", "group_unsubscribe"):
        kind = Kind.UNSUBSCRIBE
    elif name in ("dropped", "deferred"):
        kind = Kind.UNKNOWN  # SendGrid's own suppression, or a retry still under way: recorded only
    else:
        return None  # processed, delivered, open, click...
    address = str(event.get("email") or "")
    mailing_id, recipient_id = id_hint(event)
    event_id = str(event.get("sg_event_id") or json.dumps(event, sort_keys=True))
    return Notification(
        kind=kind,
        fingerprint=actions.fingerprint("sendgrid", event_id),
        source="sendgrid",
        address=address or None,
        status=status,
        diagnostic=f"{event.get('type') or name}: {diagnostic}"[:300],
        mailing_id=mailing_id,
        recipient_id=recipient_id,
    )
