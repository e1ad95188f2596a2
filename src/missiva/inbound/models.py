"""Tables of inbound processing: the log of every notification handled, and provider webhook endpoints.

The log is also the memory the actions need: its unique fingerprint makes a notification processed
twice do nothing the second time, and its soft-bounce rows are what "N soft bounces within D days"
counts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, BigId, JSONType, UTCDateTime, utcnow


class Action(StrEnum):
    """What processing one notification did."""

    SUPPRESSED = "suppressed"  # hard bounce or complaint: suppressed (and unsubscribed where subscribed)
    COUNTED = "counted"  # a soft bounce below the threshold
    SOFT_LIMIT = "soft_limit"  # the soft bounce that reached the threshold: suppressed and unsubscribed
    UNSUBSCRIBED = "unsubscribed"  # an unsubscribe request with a genuine token
    RECORDED = "recorded"  # auto-replies, unknown messages, deliveries: nothing to do
    UNATTRIBUTED = "unattributed"  # nothing trustworthy says which account and recipient it is about


class InboundMessage(Base):
    """One bounce, complaint or unsubscribe request as received, with what was done about it."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_soft", "account_id", "address", "kind", "received_at"),
        Index("ix_inbound_messages_mailing", "mailing_id", "recipient_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # sha256 of the raw message, or of the provider's event id: the idempotency key.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # smtp, imap, ses, sendgrid, mailgun, postmark
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    mailing_id: Mapped[int | None] = mapped_column(Integer)
    recipient_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(12))
    status: Mapped[str | None] = mapped_column(String(12))
    address: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(16))
    diagnostic: Mapped[str] = mapped_column(String(300), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundWebhook(Base):
    """An account's endpoint for one email service's bounce/complaint notifications.

    The URL carries a random token (only its hash is stored); `options` holds what the provider's own
    signature needs (Mailgun signing key, SendGrid public key, Postmark basic-auth credentials hash,
    the SNS topic allowed) and, for SES, the last subscription confirmation received.
    """

    __tablename__ = "inbound_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
