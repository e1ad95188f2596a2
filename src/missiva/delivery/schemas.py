"""Request and response bodies of the sending API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FieldCondition(BaseModel):
    field: str | int
    op: str = "eq"
    value: str | int | float | None = None


class AudienceFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: list[str] = Field(default_factory=list)
    fields: list[FieldCondition] = Field(default_factory=list)


class AudienceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: list[int] = Field(default_factory=list)
    exclude_groups: list[int] = Field(default_factory=list)
    filter: AudienceFilter | None = None
    recipients: list[str] = Field(default_factory=list)


class MailingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: int
    name: str | None = None
    audience: AudienceIn = Field(default_factory=AudienceIn)
    timezone: str = "UTC"
    per_minute: int | None = None
    per_hour: int | None = None
    per_domain_per_minute: int | None = None
    start: bool = False
    scheduled_at: datetime | None = None


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheduled_at: datetime | None = None


class Counters(BaseModel):
    audience: int
    queued: int
    sent: int
    deferred: int
    hard_bounced: int
    failed: int
    uncertain: int
    suppressed: int
    cancelled: int
    suppressed_by_reason: dict[str, int]
    segments: int = Field(default=0, description="SMS parts accepted by the SMSC")
    delivered: int = Field(default=0, description="SMS delivery receipts: delivered")
    expired: int = 0
    undeliverable: int = 0
    rejected: int = 0
    soft_bounced: int = 0  # reported after delivery (bounce mails, webhooks); not part of the sum above
    complaints: int = 0


class MailingOut(BaseModel):
    id: int
    kind: str
    channel: str = "email"
    name: str
    list_id: int | None
    message_id: int | None
    status: str
    audience: dict[str, Any]
    timezone: str
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    per_minute: int | None
    per_hour: int | None
    per_domain_per_minute: int | None
    counters: Counters


class LedgerRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    recipient_id: int | None
    address: str | None
    state: str
    reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    reply_code: int | None
    reply_status: str | None
    reply_text: str | None
    message_ref: str | None
    sent_at: datetime | None
    delivery: str | None = None
    delivered_at: datetime | None = None


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["email", "sms"] | None = Field(
        default=None, description="default: the message's, or email"
    )
    to: str = Field(description="an email address, or a mobile number for SMS")
    message_id: int | None = None
    list_id: int | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    preheader: str | None = None
    mode: str = "merge"
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    sender_id: str | None = Field(default=None, max_length=16, description="SMS sender id")
    opt_out: bool = Field(default=False, description="SMS: append the list's or account's opt-out text")


class SendOut(BaseModel):
    id: int
    channel: str = "email"
    status: str
    delivery: str | None = None
    reason: str | None = None
    message_id: str | None = None
    reply_code: int | None = None
    reply_text: str | None = None


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str
    reason: str = "manual"
    note: str | None = Field(default=None, max_length=500)


class SuppressionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    address: str
    reason: str
    source: str
    mailing_id: int | None
    note: str | None
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_after: int | None
    total: int


class ImportOut(BaseModel):
    added: int
    already: int
    errors: list[dict[str, Any]]
