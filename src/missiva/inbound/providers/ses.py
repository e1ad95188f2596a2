"""Amazon SES bounce and complaint notifications, delivered by Amazon SNS.

SNS signs every message: the signing certificate comes from `SigningCertURL`, which must be an https
URL on `sns.<region>.amazonaws.com` (anything else is refused before fetching), and the signature
covers a canonical string of the message's fields (SignatureVersion 1: SHA1, 2: SHA256). The
certificate fetcher is injectable so a deployment can cache or proxy it and tests can sign with their
own key. A `SubscriptionConfirmation` is returned as such for the endpoint to record (and confirm).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature as _BadSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from missiva.inbound import actions
from missiva.inbound.actions import Notification
from missiva.inbound.classify import Kind, failure_kind
from missiva.inbound.providers import InvalidSignature, MalformedNotification, id_hint

CERT_URL = re.compile(r"^https://sns\.[a-z0-9-]{1,40}\.amazonaws\.com(\.cn)?/[A-Za-z0-9._/-]{1,200}\.pem$")
CertificateFetcher = Callable[[str], bytes]

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


def fetch_certificate(url: str) -> bytes:
    """Download a signing certificate (only from an SNS host; see CERT_URL)."""
    if not CERT_URL.match(url):
        raise InvalidSignature(
            f"signing certificate URL {url!r} is not on an sns.<region>.amazonaws.com host"
        )
    response = httpx.get(url, timeout=10, follow_redirects=False)
    response.raise_for_status()
    return response.content


class SnsVerifier:
    """Checks SNS signatures; certificates are fetched once per URL and kept."""

    def __init__(self, fetch: CertificateFetcher = fetch_certificate) -> None:
        self._fetch = fetch
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def _key(self, url: str) -> rsa.RSAPublicKey:
        if not isinstance(url, str) or not CERT_URL.match(url):
            raise InvalidSignature(f"SigningCertURL {url!r} is not on an sns.<region>.amazonaws.com host")
        with self._lock:
            key = self._keys.get(url)
        if key is None:
            try:
                cert = x509.load_pem_x509_certificate(self._fetch(url))
            except (ValueError, httpx.HTTPError) as exc:
                raise InvalidSignature(f"cannot load the SNS signing certificate: {exc}") from exc
            public = cert.public_key()
            if not isinstance(public, rsa.RSAPublicKey):
                raise InvalidSignature("the SNS signing certificate does not hold an RSA key")
            key = public
            with self._lock:
                self._keys[url] = key
        return key

    def verify(self, message: dict[str, Any]) -> None:
        """Raise InvalidSignature unless `message` carries a valid SNS signature."""
        version = str(message.get("SignatureVersion", ""))
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # noqa: S303 - SNS SignatureVersion 1 is defined with SHA1
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise InvalidSignature(f"unsupported SNS SignatureVersion {version!r}")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidSignature("the SNS Signature is not base64") from exc
        key = self._key(message.get("SigningCertURL", ""))
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
        except _BadSignature as exc:
            raise InvalidSignature("the SNS signature does not match the message") from exc


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical text SNS signs: chosen fields as `name\\nvalue\\n`, in this order, when present."""
    names = _NOTIFICATION_FIELDS if message.get("Type") == "Notification" else _SUBSCRIPTION_FIELDS
    out = []
    for name in names:
        if name in message and message[name] is not None:
            out.append(f"{name}\n{message[name]}\n")
    return "".join(out).encode("utf-8")


@dataclass(frozen=True)
class SnsMessage:
    """A verified SNS message: its type, topic, and the notifications it carries."""

    type: str
    topic_arn: str
    message_id: str
    subscribe_url: str | None = None
    notes: list[Notification] = field(default_factory=list)


def parse(body: bytes, verifier: SnsVerifier, *, topic_arn: str | None = None) -> SnsMessage:
    """Verify and read an SNS POST body; `topic_arn` restricts which topic may post here."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedNotification(f"SNS body is not JSON: {exc}") from exc
    if not isinstance(message, dict) or message.get("Type") not in _TYPES:
        raise MalformedNotification(
            "not an SNS message (Type must be Notification or SubscriptionConfirmation)"
        )
    for name in ("MessageId", "TopicArn", "Message", "Timestamp"):
        if not isinstance(message.get(name), str):
            raise MalformedNotification(f"SNS message without {name}")
    verifier.verify(message)
    if topic_arn and message["TopicArn"] != topic_arn:
        raise InvalidSignature(f"topic {message['TopicArn']} is not the one configured for this endpoint")
    if message["Type"] != "Notification":
        return SnsMessage(
            message["Type"],
            message["TopicArn"],
            message["MessageId"],
            subscribe_url=message.get("SubscribeURL"),
        )
    return SnsMessage(
        "Notification", message["TopicArn"], message["MessageId"], notes=notifications(message["Message"])
    )


def notifications(text: str) -> list[Notification]:
    """The bounce/complaint notifications in an SES event (the SNS `Message`); others give none."""
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise MalformedNotification(f"SNS Message is not an SES event: {exc}") from exc
    if not isinstance(event, dict):
        raise MalformedNotification("SNS Message is not an SES event object")
    kind_name = event.get("notificationType") or event.get("eventType")
    mail = event.get("mail") if isinstance(event.get("mail"), dict) else {}
    mailing_id, recipient_id = _ids(mail)
    source_id = str(mail.get("messageId", ""))
    notes: list[Notification] = []
    if kind_name == "Bounce":
        bounce = _object(event, "bounce")
        permanent = bounce.get("bounceType") == "Permanent"
        for rcpt in _list(bounce, "bouncedRecipients"):
            diagnostic = str(rcpt.get("diagnosticCode") or bounce.get("bounceSubType") or "")
            kind, status = failure_kind(
                rcpt.get("status") if isinstance(rcpt.get("status"), str) else None,
                diagnostic,
                temporary=not permanent,
                unrecognised=Kind.HARD if permanent else Kind.SOFT,
            )
            notes.append(_note(kind, rcpt, status, diagnostic, source_id, mailing_id, recipient_id))
    elif kind_name == "Complaint":
        complaint = _object(event, "complaint")
        feedback = str(complaint.get("complaintFeedbackType") or "abuse")
        kind = Kind.UNKNOWN if feedback == "not-spam" else Kind.COMPLAINT
        for rcpt in _list(complaint, "complainedRecipients"):
            notes.append(
                _note(kind, rcpt, None, f"complaint: {feedback}", source_id, mailing_id, recipient_id)
            )
    return notes


def _object(event: dict[str, Any], name: str) -> dict[str, Any]:
    value = event.get(name)
    if not isinstance(value, dict):
        raise MalformedNotification(f"SES {name} notification without its {name!r} object")
    return value


def _list(obj: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = obj.get(name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MalformedNotification(f"SES notification without a {name} list")
    return value


def _ids(mail: dict[str, Any]) -> tuple[int | None, int | None]:
    """Mailing/recipient from the X-Missiva-* headers SES echoes (when headers are included) or tags."""
    headers = {
        str(h.get("name", "")).lower(): h.get("value")
        for h in mail.get("headers") or []
        if isinstance(h, dict)
    }
    values = {
        "missiva_mailing_id": headers.get("x-missiva-mailing"),
        "missiva_recipient_id": headers.get("x-missiva-recipient"),
    }
    tags = mail.get("tags") if isinstance(mail.get("tags"), dict) else {}
    for key in values:
        if values[key] is None and isinstance(tags.get(key), list) and tags[key]:
            values[key] = tags[key][0]
    return id_hint(values)


def _note(
    kind: Kind,
    rcpt: dict[str, Any],
    status: str | None,
    diagnostic: str,
    source_id: str,
    mailing_id: int | None,
    recipient_id: int | None,
) -> Notification:
    address = str(rcpt.get("emailAddress") or "")
    return Notification(
        kind=kind,
        fingerprint=actions.fingerprint("ses", source_id, str(kind), address.lower()),
        source="ses",
        address=address or None,
        status=status,
        diagnostic=diagnostic[:300],
        mailing_id=mailing_id,
        recipient_id=recipient_id,
    )
