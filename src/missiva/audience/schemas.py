"""Shapes of the audience domain on the native REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FieldValues = dict[str, str | None]


class ListIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    sender_name: str | None = Field(default=None, max_length=200)
    sender_email: str | None = Field(default=None, max_length=254)
    opt_in: Literal["single", "double"] | None = None
    language: Literal["en", "it"] | None = None


class ListPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    sender_name: str | None = Field(default=None, max_length=200)
    sender_email: str | None = Field(default=None, max_length=254)
    opt_in: Literal["single", "double"] | None = None
    language: Literal["en", "it"] | None = None


class ListOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    guid: str
    name: str
    sender_name: str
    sender_email: str
    opt_in: str
    language: str
    created_at: datetime


class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    notes: str = Field(default="", max_length=500)


class GroupPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    notes: str | None = Field(default=None, max_length=500)


class GroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    list_id: int
    name: str
    notes: str


class FieldIn(BaseModel):
    name: str = Field(min_length=1, max_length=50)


class FieldOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    name: str


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    list_id: int
    channel: str
    status: str
    requested_at: datetime | None
    subscribed_at: datetime | None
    unsubscribed_at: datetime | None
    unsubscribe_reason: str | None
    unsubscribe_source: str | None
    consent_method: str | None
    consent_ip: str | None
    consent_at: datetime | None


class RecipientOut(BaseModel):
    id: int
    email: str | None
    mobile: str | None
    fields: dict[str, Any]
    groups: list[int]
    subscriptions: list[SubscriptionOut]
    created_at: datetime
    updated_at: datetime


class RecipientPage(BaseModel):
    items: list[RecipientOut]
    next_after: int | None = Field(description="pass as `after` to get the next page; null on the last")


class SubscribeIn(BaseModel):
    email: str | None = Field(default=None, max_length=254)
    mobile: str | None = Field(default=None, max_length=32)
    channel: Literal["email", "sms"] | None = None
    fields: FieldValues | None = Field(default=None, description="values by field number, campoN or name")
    groups: list[int] = Field(default_factory=list, description="group ids of this list to join")
    replace_groups: bool = Field(default=False, description="leave this list's other groups")
    double_opt_in: bool | None = Field(default=None, description="default: the list's opt-in mode")
    force: bool = Field(default=False, description="subscribe even if unsubscribed or pending")
    consent_ip: str | None = Field(default=None, max_length=45)


class SubscribeOut(BaseModel):
    outcome: Literal["subscribed", "pending", "already_subscribed"]
    created: bool
    recipient: RecipientOut


class BatchSubscribeIn(BaseModel):
    items: list[SubscribeIn] = Field(min_length=1, max_length=1000)


class BatchItemOut(BaseModel):
    index: int
    outcome: str | None = None
    recipient_id: int | None = None
    error: dict[str, Any] | None = None


class BatchSubscribeOut(BaseModel):
    results: list[BatchItemOut]
    counts: dict[str, int]


class UnsubscribeIn(BaseModel):
    email: str | None = Field(default=None, max_length=254)
    mobile: str | None = Field(default=None, max_length=32)
    channel: Literal["email", "sms"] | None = None
    reason: str = "api"


class StatusOut(BaseModel):
    list_id: int
    channel: str
    status: Literal["subscribed", "pending", "unsubscribed", "unknown"]
    subscription: SubscriptionOut | None


class RecipientPatch(BaseModel):
    email: str | None = Field(default=None, max_length=254)
    mobile: str | None = Field(default=None, max_length=32)
    fields: FieldValues | None = None
    groups: list[int] = Field(default_factory=list, description="group ids to join")
    replace_groups_in: list[int] = Field(
        default_factory=list, description="list ids whose group memberships become exactly `groups`"
    )
