"""Tables of the events domain: webhook endpoints and their deliveries (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, BigId, JSONType, UTCDateTime, utcnow
from missiva.events.enums import DeliveryStatus, Format, Health


class WebhookEndpoint(Base):
    """A URL of an account's system that wants audience events, with its filters and format.

    Secrets (the signing secret, the MailUp RC4 key) are stored sealed with the installation key, never
    in clear. During a rotation the previous signing secret stays valid until `previous_secret_expires_at`
    and requests carry both signatures.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    format: Mapped[str] = mapped_column(String(10), default=Format.NATIVE)
    # Filters; an empty list matches everything. No foreign key on list_id: a deleted list must not
    # silently widen the filter to every list.
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    sources: Mapped[list[str]] = mapped_column(JSONType, default=list)
    list_id: Mapped[int | None] = mapped_column(Integer)
    # Message events (delivered, bounced, opened...) per request; 1 sends each event on its own.
    batch_size: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    secret: Mapped[str] = mapped_column(String(500))
    previous_secret: Mapped[str | None] = mapped_column(String(500))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # MailUp format: {"method", "params": [[name, template], ...], "encryption", "event_type_case"}.
    mailup: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    mailup_key: Mapped[str | None] = mapped_column(String(500))
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unhealthy_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def health(self) -> Health:
        """Disabled, unhealthy (failing for long), failing, or healthy."""
        if not self.active:
            return Health.DISABLED
        if self.unhealthy_since is not None:
            return Health.UNHEALTHY
        if self.failing_since is not None:
            return Health.FAILING
        return Health.HEALTHY


class WebhookDelivery(Base):
    """One event to send to one endpoint (one request; a MailUp email change needs two, `part` 0 and 1).

    Written in the transaction of the audience change, so nothing accepted is lost. `order_key` (the
    recipient) orders deliveries: a dispatcher only takes the oldest pending row of an endpoint and
    recipient. A claim moves `next_attempt_at` to the end of the claim's lease, so a dispatcher killed
    mid-send leaves rows that simply become due again.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", "part"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_order",
            "endpoint_id",
            "order_key",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("audience_events.id", ondelete="CASCADE"))
    part: Mapped[int] = mapped_column(SmallInteger, default=0)
    order_key: Mapped[int] = mapped_column(BigId, default=0)
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Start of the retry window; a manual redelivery opens a new one.
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` of this delivery: the same on every attempt, so receivers can deduplicate."""
        return message_id(self.event_id, self.part)


def message_id(event_id: int, part: int) -> str:
    """`evt_<event id>` (the native payload's id), with `.<part>` for the second request of a pair."""
    return f"evt_{event_id}" if part == 0 else f"evt_{event_id}.{part}"
