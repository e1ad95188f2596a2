"""Shapes of webhook endpoints, deliveries and the event feed on the native REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class MailupIn(BaseModel):
    """MailUp-style call: `params` are [name, value] pairs whose values hold `[Placeholder]`s."""

    params: list[tuple[str, str]] = Field(min_length=1, max_length=60)
    method: Literal["GET", "POST"] = "POST"
    encryption: Literal["none", "magento", "joomla"] = "none"
    key: str | None = Field(default=None, max_length=256)
    event_type_case: Literal["title", "upper"] = "title"


class EndpointIn(BaseModel):
    url: str = Field(min_length=1, max_length=2000)
    format: Literal["native", "mailup"] = "native"
    description: str = Field(default="", max_length=200)
    event_types: list[str] = Field(default_factory=list, description="empty: every type")
    sources: list[str] = Field(default_factory=list, description="empty: every source")
    list_id: int | None = None
    active: bool = True
    mailup: MailupIn | None = None
    batch_size: int = Field(
        default=1, description="message events per request (native format); 1: one event per request"
    )


class EndpointPatch(BaseModel):
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    description: str | None = Field(default=None, max_length=200)
    event_types: list[str] | None = None
    sources: list[str] | None = None
    list_id: int | None = None
    active: bool | None = None
    mailup: MailupIn | None = None
    batch_size: int | None = None


class MailupOut(BaseModel):
    params: list[tuple[str, str]]
    method: str
    encryption: str
    event_type_case: str


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    format: str
    description: str
    event_types: list[str]
    sources: list[str]
    list_id: int | None
    batch_size: int
    active: bool
    health: str
    disabled_reason: str | None
    failing_since: datetime | None
    unhealthy_since: datetime | None
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None
    mailup: MailupOut | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret (whsec_...); also at GET /webhooks/{id}/secret")


class SecretOut(BaseModel):
    secret: str
    previous_valid_until: datetime | None = None


class RotateIn(BaseModel):
    overlap_hours: float = Field(default=24, ge=0, le=720)


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    webhook_id: str
    event_id: int
    part: int
    status: str
    attempts: int
    response_code: int | None
    latency_ms: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_before: int | None


class RedeliverOut(BaseModel):
    requeued: int


class TestOut(BaseModel):
    ok: bool
    status_code: int | None
    latency_ms: int | None
    error: str | None
    webhook_id: str


class FeedOut(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool
