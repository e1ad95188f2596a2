"""An account's webhook endpoints for email services: create (token shown once), find, list, delete.

The URL is `/webhooks/inbound/<provider>/<token>`; only a SHA-256 of the 192-bit token is stored, so
the database alone cannot be used to post notifications. What each provider's signature needs is kept
in `options`, checked when the endpoint is created so that a wrong key fails at setup, not silently
at the first bounce.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.db import utcnow
from missiva.errors import InvalidInput, NotFound
from missiva.inbound.models import InboundWebhook
from missiva.inbound.providers import PROVIDERS, sendgrid
from missiva.tenancy.secrets import hash_key_secret, hash_password

PATH = "/webhooks/inbound/{provider}/{token}"


def _options(provider: str, given: dict[str, Any]) -> dict[str, Any]:
    """The stored options of a new endpoint, validated per provider."""
    text = {k: str(v).strip() for k, v in given.items() if v is not None and str(v).strip()}
    allowed = {
        "ses": {"topic_arn"},
        "sendgrid": {"public_key"},
        "mailgun": {"signing_key"},
        "postmark": {"username", "password"},
    }[provider]
    unknown = set(text) - allowed
    if unknown:
        raise InvalidInput(
            f"{provider} endpoints take {', '.join(sorted(allowed))}; not {', '.join(sorted(unknown))}",
            field=sorted(unknown)[0],
        )
    if provider == "sendgrid":
        if "public_key" not in text:
            raise InvalidInput(
                "SendGrid endpoints need the Event Webhook verification key", field="public_key"
            )
        sendgrid.load_public_key(text["public_key"])
    if provider == "mailgun" and "signing_key" not in text:
        raise InvalidInput("Mailgun endpoints need the webhook signing key", field="signing_key")
    if provider == "postmark":
        if ("username" in text) != ("password" in text):
            raise InvalidInput("give both username and password for basic auth, or neither", field="password")
        if "password" in text:
            text["password_hash"] = hash_password(text.pop("password"))
    return text


def create(session: Session, account_id: int, provider: str, **options: Any) -> tuple[InboundWebhook, str]:
    """A new endpoint and its token (the only time the token is available)."""
    if provider not in PROVIDERS:
        raise InvalidInput(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})", field="provider")
    stored = _options(provider, options)
    token = secrets.token_urlsafe(24)
    hook = InboundWebhook(
        account_id=account_id,
        provider=provider,
        token_hash=hash_key_secret(token),
        options=stored,
        created_at=utcnow(),
    )
    session.add(hook)
    session.flush()
    return hook, token


def find(session: Session, provider: str, token: str) -> InboundWebhook | None:
    """The endpoint a URL names, or None (unknown token, or a token of another provider's endpoint)."""
    if not token or len(token) > 100:
        return None
    hook = session.scalar(select(InboundWebhook).where(InboundWebhook.token_hash == hash_key_secret(token)))
    return hook if hook is not None and hook.provider == provider else None


def for_account(session: Session, account_id: int) -> list[InboundWebhook]:
    """The account's endpoints, oldest first."""
    return list(
        session.scalars(
            select(InboundWebhook).where(InboundWebhook.account_id == account_id).order_by(InboundWebhook.id)
        )
    )


def delete(session: Session, account_id: int, webhook_id: int) -> None:
    """Remove an endpoint of the account; NotFound otherwise."""
    hook = session.get(InboundWebhook, webhook_id)
    if hook is None or hook.account_id != account_id:
        raise NotFound(f"inbound webhook {webhook_id} does not exist", field="id")
    session.delete(hook)


def record_subscription(
    hook: InboundWebhook, topic_arn: str, subscribe_url: str | None, confirmed: bool
) -> None:
    """Remember an SNS subscription request (shown to the account; confirmable by visiting the URL)."""
    hook.options = {
        **(hook.options or {}),
        "subscription": {
            "topic_arn": topic_arn,
            "subscribe_url": subscribe_url,
            "confirmed": confirmed,
            "received_at": utcnow().isoformat(),
        },
    }
