"""Request and response bodies of the messages API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AttachmentIn(BaseModel):
    filename: str = Field(max_length=255)
    content: str  # base64
    content_type: str = "application/octet-stream"


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["email", "sms"] = "email"
    name: str = Field(default="", max_length=200)
    subject: str = Field(default="", max_length=998)
    html: str | None = None
    text: str | None = None
    from_name: str = Field(default="", max_length=200)
    from_email: str = Field(default="", max_length=254)
    reply_to: str | None = Field(default=None, max_length=254)
    preheader: str | None = Field(default=None, max_length=500)
    mode: str = "merge"
    attachments: list[AttachmentIn] = Field(default_factory=list)
    sender_id: str | None = Field(default=None, max_length=16, description="SMS: sender id")
    opt_out: bool = Field(default=False, description="SMS: append the list's opt-out text")


class MessagePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    subject: str | None = Field(default=None, max_length=998)
    html: str | None = None
    text: str | None = None
    from_name: str | None = Field(default=None, max_length=200)
    from_email: str | None = Field(default=None, max_length=254)
    reply_to: str | None = Field(default=None, max_length=254)
    preheader: str | None = Field(default=None, max_length=500)
    mode: str | None = None
    attachments: list[AttachmentIn] | None = None
    sender_id: str | None = Field(default=None, max_length=16)
    opt_out: bool | None = None


class AttachmentOut(BaseModel):
    filename: str
    content_type: str
    size: int


class MessageOut(BaseModel):
    id: int
    list_id: int
    channel: str
    sender_id: str | None
    opt_out: bool
    name: str
    subject: str
    html: str | None
    text: str | None
    from_name: str
    from_email: str
    reply_to: str | None
    preheader: str | None
    mode: str
    attachments: list[AttachmentOut]
    created_at: datetime
    updated_at: datetime


class SmsAnalysisOut(BaseModel):
    """How an SMS text will be submitted: alphabet, parts, and the characters that forced UCS-2."""

    encoding: Literal["gsm7", "ucs2"]
    segments: int
    length: int = Field(description="septets (gsm7) or UTF-16 units (ucs2)")
    per_segment_limit: int
    unencodable: list[str]


class PreviewOut(BaseModel):
    channel: str = "email"
    subject: str | None
    from_: str = Field(alias="from")
    to: str
    html: str | None
    text: str | None
    sms: SmsAnalysisOut | None = None
    model_config = ConfigDict(populate_by_name=True)


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    addresses: list[str] = Field(min_length=1, max_length=20)


class TestSendOut(BaseModel):
    sends: list[dict[str, Any]]
