"""Request and response bodies of the messages API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AttachmentIn(BaseModel):
    filename: str = Field(max_length=255)
    content: str  # base64
    content_type: str = "application/octet-stream"


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    subject: str = Field(max_length=998)
    html: str | None = None
    text: str | None = None
    from_name: str = Field(default="", max_length=200)
    from_email: str = Field(default="", max_length=254)
    reply_to: str | None = Field(default=None, max_length=254)
    preheader: str | None = Field(default=None, max_length=500)
    mode: str = "merge"
    attachments: list[AttachmentIn] = Field(default_factory=list)


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


class AttachmentOut(BaseModel):
    filename: str
    content_type: str
    size: int


class MessageOut(BaseModel):
    id: int
    list_id: int
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


class PreviewOut(BaseModel):
    subject: str
    from_: str = Field(alias="from")
    to: str
    html: str | None
    text: str | None
    model_config = ConfigDict(populate_by_name=True)


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    addresses: list[str] = Field(min_length=1, max_length=20)


class TestSendOut(BaseModel):
    sends: list[dict[str, Any]]
