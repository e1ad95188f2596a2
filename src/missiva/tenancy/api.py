"""Native REST routes of the tenancy domain: the caller's account, its API keys and IP allowlist."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from missiva.tenancy import service as tenancy
from missiva.tenancy.models import ApiKey
from missiva.web.deps import CallerDep, SessionDep

router = APIRouter(prefix="/api/v1", tags=["account"])


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    host: str | None
    default_country: str | None
    created_at: datetime


class AllowedIpIn(BaseModel):
    network: str = Field(description="an IP address or CIDR network", max_length=64)
    note: str = Field(default="", max_length=200)


class AllowedIpOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    network: str
    note: str
    created_at: datetime


class ApiKeyIn(BaseModel):
    name: str = Field(default="", max_length=100)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class NewApiKeyOut(BaseModel):
    id: int
    name: str
    key: str = Field(description="shown only once")


@router.get("/account", response_model=AccountOut)
def get_account(caller: CallerDep, session: SessionDep):
    """The account the API key belongs to."""
    return tenancy.get_account(session, caller.account_id)


@router.get("/allowed-ips", response_model=list[AllowedIpOut])
def list_allowed_ips(caller: CallerDep, session: SessionDep):
    """Addresses allowed to call the MailUp frontend (`/frontend/xml*.aspx`) for this account."""
    return tenancy.list_allowed_ips(session, caller.account_id)


@router.post("/allowed-ips", response_model=AllowedIpOut, status_code=201)
def add_allowed_ip(body: AllowedIpIn, caller: CallerDep, session: SessionDep):
    """Allow an address or network."""
    row = tenancy.add_allowed_ip(session, caller.account_id, body.network, note=body.note)
    session.commit()
    return row


@router.delete("/allowed-ips/{entry_id}", status_code=204)
def remove_allowed_ip(entry_id: int, caller: CallerDep, session: SessionDep):
    """Remove an allowlist entry."""
    tenancy.remove_allowed_ip(session, caller.account_id, entry_id)
    session.commit()
    return Response(status_code=204)


@router.get("/api-keys", response_model=list[ApiKeyOut])
def list_api_keys(caller: CallerDep, session: SessionDep):
    """The account's API keys (never their secrets)."""
    stmt = select(ApiKey).where(ApiKey.account_id == caller.account_id).order_by(ApiKey.id)
    return list(session.scalars(stmt))


@router.post("/api-keys", response_model=NewApiKeyOut, status_code=201)
def create_api_key(body: ApiKeyIn, caller: CallerDep, session: SessionDep):
    """Create another key; its secret is in this response only."""
    key = tenancy.create_api_key(session, caller.account_id, name=body.name)
    session.commit()
    return NewApiKeyOut(id=key.id, name=key.name, key=key.key)


@router.delete("/api-keys/{key_id}", status_code=204)
def revoke_api_key(key_id: int, caller: CallerDep, session: SessionDep):
    """Revoke a key at once."""
    tenancy.revoke_api_key(session, caller.account_id, key_id)
    session.commit()
    return Response(status_code=204)
