"""Request dependencies: a database session per request and the caller's account from its API key."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.tenancy import service as tenancy


async def get_session() -> AsyncIterator[Session]:
    """A session for this request; routes commit what they change, anything else is rolled back.

    Async so FastAPI does not spend a threadpool round trip on it: creating a session touches no
    connection, and closing one returns it to the pool.
    """
    session = runtime.database().sessionmaker()
    try:
        yield session
    finally:
        session.close()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the account the API key belongs to."""

    account_id: int
    key_id: int


def bearer_key(request: Request) -> str | None:
    """The API key in `Authorization: Bearer ...`, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def require_caller(request: Request, session: Session = Depends(get_session)) -> Caller:
    """The authenticated caller; 401 without a valid key.

    Async: a verified key is served from the in-process cache, so the rare database read (a cache miss)
    is cheaper inline than a threadpool hop on every request.
    """
    key = bearer_key(request)
    row = tenancy.authenticate_api_key(session, key) if key else None
    if row is None:
        raise HTTPException(
            401,
            "a valid API key is required (Authorization: Bearer msv_...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Caller(account_id=row.account_id, key_id=row.id)


def client_ip(request: Request) -> str:
    """The caller's address; X-Forwarded-For is believed only from MISSIVA_TRUSTED_PROXIES."""
    peer = request.client.host if request.client else ""
    trusted = runtime.settings().trusted_proxies
    if not trusted or not _in_networks(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop
    return peer


def _in_networks(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


# Route parameters every authenticated route takes: `caller: CallerDep, session: SessionDep`.
SessionDep = Annotated[Session, Depends(get_session)]
CallerDep = Annotated[Caller, Depends(require_caller)]
