"""Tables of the messages domain: a list's email and SMS messages (content and template mode)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, JSONType, UTCDateTime, utcnow


class Message(Base):
    """An email message of one list; sender fields fall back to the list's defaults when empty.

    `attachments` holds ``{"filename", "content_type", "content"}`` with base64 content: attachments
    are small by policy (the API caps them) and travel with the message as one row.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(998))
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_email: Mapped[str] = mapped_column(String(254), default="")
    reply_to: Mapped[str | None] = mapped_column(String(254))
    preheader: Mapped[str | None] = mapped_column(String(500))
    mode: Mapped[str] = mapped_column(String(10), default="merge")
    # "email", or "sms": then `text` is the SMS text, `subject` is empty and there is no html.
    channel: Mapped[str] = mapped_column(String(5), default="email")
    # SMS sender id (alphanumeric or number); None: the list's, then the account's.
    sender_id: Mapped[str | None] = mapped_column(String(16))
    # SMS: append the list's (or account's) opt-out text ("STOP al 4321").
    opt_out: Mapped[bool] = mapped_column(default=False)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
