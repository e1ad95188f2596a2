"""Tables of the sending domain: mailings, the send ledger, the suppression list, live sender workers.

The ledger has one row per mailing x recipient x channel and is the single source of truth of a send:
audience resolution writes it (queued, or suppressed with the reason), the sender moves each row
through sending -> sent / hard_bounce / deferred / failed, and a crashed sender's in-flight rows
become uncertain. For SMS, delivery receipts later set `delivery` on sent rows. Counters on the
mailing are updated in the same transactions, so reports read one row instead of counting a million.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, BigId, JSONType, UTCDateTime, utcnow


class MailingKind(StrEnum):
    CAMPAIGN = "campaign"
    TRANSACTIONAL = "transactional"
    TEST = "test"


class MailingStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FINISHED = "finished"


class LedgerState(StrEnum):
    """Where one recipient of a mailing stands."""

    QUEUED = "queued"
    SENDING = "sending"  # committed before the SMTP transaction; a crash leaves it uncertain
    SENT = "sent"
    DEFERRED = "deferred"  # 4xx: retried at next_attempt_at
    HARD_BOUNCE = "hard_bounce"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"


class SuppressedBecause(StrEnum):
    """Why a recipient of the audience was not sent the mailing (counted on the mailing)."""

    DUPLICATE = "duplicate"
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"
    NOT_SUBSCRIBED = "not_subscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    IMPORT = "import"
    LIST_UNSUBSCRIBE = "list_unsubscribe"
    SOFT_BOUNCES = "soft_bounces"


class SuppressionReason(StrEnum):
    """Why an address is on the account-wide suppression list."""

    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    IMPORT = "import"
    LIST_UNSUBSCRIBE = "list_unsubscribe"
    SOFT_BOUNCES = "soft_bounces"  # too many soft bounces within the configured window (inbound mail)


class Mailing(Base):
    """One message sent to one audience (campaign) or to one address (transactional)."""

    __tablename__ = "mailings"
    __table_args__ = (Index("ix_mailings_status_scheduled", "status", "scheduled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16), default=MailingKind.CAMPAIGN)
    channel: Mapped[str] = mapped_column(String(5), default="email")
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(12), default=MailingStatus.DRAFT)
    # {"groups": [..], "exclude_groups": [..], "filter": {...}, "recipients": [emails]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Snapshot of the message taken when the mailing starts: later edits do not change a running send.
    content: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    per_minute: Mapped[int | None] = mapped_column(Integer)
    per_hour: Mapped[int | None] = mapped_column(Integer)
    per_domain_per_minute: Mapped[int | None] = mapped_column(Integer)
    # Fixed-window throttle counters shared by every worker: {"minute": [start, n], "hour": [start, n]}.
    throttle_state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    resolved: Mapped[bool] = mapped_column(default=False)
    resolved_upto: Mapped[int] = mapped_column(BigId, default=0)
    # Live counters, maintained incrementally in the ledger's own transactions.
    audience_size: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    deferred: Mapped[int] = mapped_column(Integer, default=0)
    hard_bounced: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    uncertain: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_count: Mapped[int] = mapped_column(Integer, default=0)
    # SMS: parts submitted, and final delivery receipts per recipient (see delivery.sms.receipts).
    segments: Mapped[int] = mapped_column(Integer, default=0)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
    undeliverable: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    suppressed_by_reason: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    # Reported after delivery by bounce mails, feedback loops and provider webhooks (one per recipient);
    # outside the sum above: a soft-bounced or complaining recipient's row stays `sent`.
    soft_bounced: Mapped[int] = mapped_column(Integer, default=0)
    complaints: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerEntry(Base):
    """One recipient of one mailing on one channel: state, provider reply, message id."""

    __tablename__ = "send_ledger"
    __table_args__ = (
        UniqueConstraint("mailing_id", "recipient_id", "channel"),
        Index("ix_send_ledger_claim", "mailing_id", "state", "id"),
        Index("ix_send_ledger_recipient", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailings.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(Integer)
    recipient_id: Mapped[int | None] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(5), default="email")
    address: Mapped[str | None] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    # Which of its sender's claims took the row: with the sender's hand-over mark (`SenderWorker`) it
    # tells rows that may have reached SMTP from rows claimed ahead and never handed over.
    claim_seq: Mapped[int | None] = mapped_column(Integer)
    reply_code: Mapped[int | None] = mapped_column(Integer)
    reply_status: Mapped[str | None] = mapped_column(String(12))
    reply_text: Mapped[str | None] = mapped_column(Text)
    message_ref: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SMS: what the delivery receipts said (delivered, expired, undeliverable, rejected), once final.
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Suppression(Base):
    """An address that no mailing of the account may reach on a channel, and why."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("account_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(5), default="email")
    address: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20), default="api")
    mailing_id: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SenderWorker(Base):
    """A sender process, so another one can tell a crashed sender's in-flight rows from live ones."""

    __tablename__ = "sender_workers"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The hand-over mark: the sender's rows up to (claim_seq, id) = (handed_seq, handed_id) may have
    # been handed to SMTP; its later rows certainly were not, so a crash returns them to the queue.
    # NULL: every row it claimed may have been handed (senders that keep no mark).
    handed_seq: Mapped[int | None] = mapped_column(Integer)
    handed_id: Mapped[int | None] = mapped_column(BigId)


class DomainWindow(Base):
    """How many messages of a mailing went to one destination domain in the current minute.

    The per-domain limit (`per_domain_per_minute`) is counted here rather than in each sender, so
    several senders sharing a mailing share its budget too. Rows of past minutes are deleted as the
    claims move on, so the table holds at most one row per mailing and domain.
    """

    __tablename__ = "send_domain_windows"

    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer)  # epoch seconds of the minute's start
    count: Mapped[int] = mapped_column(Integer, default=0)


class RelayRate(Base):
    """A rated relay's shared send schedule: when its next message slot is free.

    Every sender process reserves its slots of a relay's `rate` here (`missiva.delivery.relay_rates`),
    so the rate holds for all processes and machines sharing the database. One row per relay, login
    and rate (`missiva.delivery.smtp.rate.relay_key`, which never contains credentials).
    """

    __tablename__ = "relay_rates"

    relay_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Microseconds since the epoch (64-bit on both databases; BigId is BIGINT on PostgreSQL).
    next_slot_us: Mapped[int] = mapped_column(BigId)
