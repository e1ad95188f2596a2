"""Request and response bodies of the SMS API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SmsSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender_id: str | None = Field(default=None, max_length=16)
    opt_out_text: str | None = Field(default=None, max_length=160, description='e.g. "STOP al 4321"')
    stop_keywords: list[str] | None = Field(default=None, description="null: the default keywords")


class SmsSettingsOut(BaseModel):
    sender_id: str | None
    opt_out_text: str | None
    stop_keywords: list[str]
    inbound_token_set: bool


class InboundTokenOut(BaseModel):
    token: str
    url: str = Field(description="the callback URL to give the HTTP gateway (shown once)")


class ListSmsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender_id: str | None = Field(default=None, max_length=16)
    opt_out_text: str | None = Field(default=None, max_length=160)


class ListSmsOut(BaseModel):
    list_id: int
    sender_id: str | None
    opt_out_text: str | None


class AnalyseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=5000)


class AnalyseOut(BaseModel):
    encoding: Literal["gsm7", "ucs2"]
    segments: int
    length: int
    per_segment_limit: int
    unencodable: list[str]
    parts: list[str]


class TransportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=40)
    kind: Literal["smpp", "http"]
    priority: int = 0
    weight: float = 1.0
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, Any] = Field(
        default_factory=dict, description='smpp: {"password"}; http: {"auth": {"type": ...}}'
    )


class TransportPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int | None = None
    weight: float | None = None
    enabled: bool | None = None
    settings: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None


class TransportOut(BaseModel):
    id: int
    name: str
    kind: str
    priority: int
    weight: float
    enabled: bool
    settings: dict[str, Any]
    secrets_set: list[str]
    created_at: datetime


class InboundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    source: str
    dest: str
    text: str
    transport: str
    recipient_id: int | None
    action: str
    unsubscribed_lists: list[int]
    received_at: datetime


class CallbackOut(BaseModel):
    type: Literal["receipt", "inbound"]
    action: str | None = None
