"""Tables of the audience domain: lists, groups, fields, recipients, subscriptions, audience events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, BigId, JSONType, UTCDateTime, utcnow


class MailingList(Base):
    """A list (MailUp `idList` + `listGUID`) with its sender defaults and opt-in mode."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    guid: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(200))
    sender_name: Mapped[str] = mapped_column(String(200), default="")
    sender_email: Mapped[str] = mapped_column(String(254), default="")
    opt_in: Mapped[str] = mapped_column(String(10), default="double")
    language: Mapped[str] = mapped_column(String(5), default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Group(Base):
    """A group inside one list."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("list_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    notes: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Field(Base):
    """A numbered personal-data field of an account (MailUp `campoN`)."""

    __tablename__ = "fields"
    __table_args__ = (UniqueConstraint("account_id", "number"), UniqueConstraint("account_id", "name"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(50))


class Recipient(Base):
    """A person: normalised email and/or E.164 mobile, unique per account, with field values."""

    __tablename__ = "recipients"
    __table_args__ = (UniqueConstraint("account_id", "email"), UniqueConstraint("account_id", "mobile"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(20))
    # Field values keyed by field number as a string ("1": "Mario"), MailUp's campoN.
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """A recipient's status on one list and channel, with the history needed for exports and consent."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("recipient_id", "list_id", "channel"),
        Index("ix_subscriptions_list_status", "list_id", "channel", "status", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribe_reason: Mapped[str | None] = mapped_column(String(20))
    unsubscribe_source: Mapped[str | None] = mapped_column(String(20))
    unsubscribe_mailing_id: Mapped[int | None] = mapped_column(Integer)
    # Consent evidence: how, when and from where the recipient agreed.
    consent_method: Mapped[str | None] = mapped_column(String(40))
    consent_ip: Mapped[str | None] = mapped_column(String(45))
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GroupMember(Base):
    """A recipient's membership of a group."""

    __tablename__ = "group_members"
    __table_args__ = (Index("ix_group_members_recipient", "recipient_id"),)

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AudienceEvent(Base):
    """Append-only record of one audience change, written in the transaction of the change itself.

    `data` is a snapshot of the recipient at the time (email, mobile, fields, groups) so webhooks and
    the feed need no join and stay right after later changes. Recipient ids carry no foreign key: the
    event outlives a deleted recipient.
    """

    __tablename__ = "audience_events"
    __table_args__ = (
        Index("ix_audience_events_account_id", "account_id", "id"),
        Index("ix_audience_events_recipient", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    list_id: Mapped[int | None] = mapped_column(Integer)
    recipient_id: Mapped[int | None] = mapped_column(BigId)
    channel: Mapped[str | None] = mapped_column(String(5))
    source: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(20))
    mailing_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
