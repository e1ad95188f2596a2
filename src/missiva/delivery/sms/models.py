"""Tables of the SMS channel: per-account and per-list settings, transports, submitted parts, receipts.

The send ledger (``send_ledger``) stays the record of each recipient; SMS adds what email does not
need: the SMSC message id of every submitted part (receipts name parts, not messages), an inbox of
receipts written before they are acknowledged to the SMSC (so none is lost, even when it arrives
before the part it refers to is recorded), and the log of inbound messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, BigId, JSONType, UTCDateTime, utcnow


class SmsAccountSettings(Base):
    """An account's SMS defaults: sender id, opt-out text, STOP keywords, inbound callback token."""

    __tablename__ = "sms_settings"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    sender_id: Mapped[str | None] = mapped_column(String(16))
    opt_out_text: Mapped[str | None] = mapped_column(String(160))
    # None: the default keywords (missiva.delivery.sms.keywords.DEFAULT_STOP_KEYWORDS).
    stop_keywords: Mapped[list[str] | None] = mapped_column(JSONType)
    # SHA-256 of the token in the public inbound URL; the token itself is shown once.
    inbound_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SmsListSettings(Base):
    """A list's SMS sender id and opt-out text (each falls back to the account's)."""

    __tablename__ = "sms_list_settings"

    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    sender_id: Mapped[str | None] = mapped_column(String(16))
    opt_out_text: Mapped[str | None] = mapped_column(String(160))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SmsTransportConfig(Base):
    """One SMPP account or HTTP gateway of an account; secrets are stored Fernet-encrypted."""

    __tablename__ = "sms_transports"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(8))  # smpp | http
    priority: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Non-secret settings (host, port, system_id, URL template, response mapping...).
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Fernet token of a JSON object with the secrets (password, auth); never returned by the API.
    secret: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SmsPart(Base):
    """One submitted part of an SMS: the SMSC's id for it, and its final receipt state."""

    __tablename__ = "sms_parts"
    __table_args__ = (
        Index("ix_sms_parts_smsc_id", "account_id", "smsc_id"),
        Index("ix_sms_parts_ledger", "ledger_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailings.id", ondelete="CASCADE"))
    ledger_id: Mapped[int] = mapped_column(BigId)
    part: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(40))
    smsc_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmsReceipt(Base):
    """A delivery receipt as received, before and after it was matched to its part.

    Written (and committed) before the SMSC gets its deliver_sm_resp; matched to ``sms_parts`` as
    soon as the part is recorded, which may be after the receipt arrived.
    """

    __tablename__ = "sms_receipts"
    __table_args__ = (Index("ix_sms_receipts_pending", "account_id", "applied_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    transport: Mapped[str] = mapped_column(String(40))
    smsc_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    raw_status: Mapped[str] = mapped_column(String(16), default="")
    err: Mapped[str | None] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(20), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When it was matched to its part (or set aside as an orphan); None while it waits.
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmsInbound(Base):
    """A mobile-originated message received for an account, and what was done about it."""

    __tablename__ = "sms_inbound"
    __table_args__ = (Index("ix_sms_inbound_account", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))
    dest: Mapped[str] = mapped_column(String(20), default="")
    text: Mapped[str] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(40), default="")
    recipient_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(16))  # stop | none | unknown_number
    unsubscribed_lists: Mapped[list[int]] = mapped_column(JSONType, default=list)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
