"""Bounce and complaint notifications of email services (SES, SendGrid, Mailgun, Postmark).

Customers who relay through such a service get its bounces by webhook instead of by mail. Each
provider module verifies the provider's own signature and turns its events into
`missiva.inbound.actions.Notification`s; `api` serves the endpoints. The errors below are the only
ones a provider module raises on bad input.
"""

from __future__ import annotations

from typing import Any

from missiva.errors import InvalidInput, PermissionDenied

PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark")
ID_KEYS = ("missiva_mailing_id", "missiva_recipient_id")  # custom args / metadata names we read


class InvalidSignature(PermissionDenied):
    """The notification's signature (or credentials) does not verify: it is not from the provider."""

    code = "invalid_signature"


class MalformedNotification(InvalidInput):
    """The body is not a notification of that provider (bad JSON, missing fields)."""

    code = "malformed_notification"


def id_hint(values: Any) -> tuple[int | None, int | None]:
    """(mailing id, recipient id) from a provider's custom-args/metadata mapping, when both are there.

    These come back from the service unsigned by us, so actions believe them only for the account the
    endpoint belongs to and the address the ledger row was sent to.
    """
    if not isinstance(values, dict):
        return None, None
    found = []
    for key in ID_KEYS:
        value = values.get(key)
        text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
        found.append(int(text) if text.isdigit() and len(text) <= 18 else None)
    return found[0], found[1]
