"""An account's SMS transports: stored settings with encrypted credentials, and opening them for a send.

Each transport is an SMPP account (:class:`SmppClient`) or an HTTP gateway (:class:`HttpGateway`)
with a priority and a weight; an account with several sends through :class:`FailoverTransport`.
Passwords, tokens and API keys are kept apart from the other settings and stored as a Fernet token
keyed from ``MISSIVA_SECRET_KEY`` (:func:`missiva.keys.fernet`), so a database dump alone does not reveal
them and the API never returns them.

``receipt_id_type`` says how the SMSC writes message ids in receipts compared with its submit
responses (SMSCs differ, as Kannel's ``msg-id-type`` records): ``same``, ``submit_hex_receipt_dec`` or
``submit_dec_receipt_hex``. Receipts are converted to the submit form before they are matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva import keys
from missiva.db import Database
from missiva.delivery.sms.events import InboundSms, Receipt
from missiva.delivery.sms.failover import FailoverTransport, Route
from missiva.delivery.sms.http_gateway import (
    BasicAuth,
    BearerAuth,
    CallbackFields,
    GatewayConfigError,
    HeaderAuth,
    HttpGateway,
    HttpGatewaySettings,
)
from missiva.delivery.sms.models import SmsTransportConfig
from missiva.delivery.sms.smpp.client import SmppClient, SmppConnectError, SmppSettings
from missiva.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

KINDS = ("smpp", "http")
RECEIPT_ID_TYPES = ("same", "submit_hex_receipt_dec", "submit_dec_receipt_hex")
SMPP_SECRETS = frozenset({"password"})
HTTP_SECRETS = frozenset({"auth"})
# Settings every transport accepts besides its own.
COMMON = frozenset({"receipt_id_type", "callback"})
_SMPP_FIELDS = frozenset(f.name for f in fields(SmppSettings)) - {"name"} - SMPP_SECRETS
_HTTP_FIELDS = frozenset(f.name for f in fields(HttpGatewaySettings)) - {"name", "auth"}

EventHandler = Callable[[Receipt | InboundSms], Awaitable[None]]


class TransportConfigError(InvalidInput):
    """A transport's settings cannot work, or its credentials cannot be decrypted."""

    code = "transport_invalid"


class NoTransport(InvalidInput):
    """The account has no enabled SMS transport."""

    code = "no_sms_transport"


class TransportsUnavailable(Exception):
    """No configured transport could be opened (every SMPP bind failed)."""


def _fernet() -> Fernet:
    return keys.fernet("sms-transport-credentials")


def encrypt_secrets(values: Mapping[str, Any]) -> str:
    """A Fernet token of the secrets as JSON."""
    return _fernet().encrypt(json.dumps(dict(values)).encode()).decode()


def decrypt_secrets(row: SmsTransportConfig) -> dict[str, Any]:
    """The transport's secrets; TransportConfigError if the key changed or the token was altered."""
    if not row.secret:
        return {}
    try:
        return json.loads(_fernet().decrypt(row.secret.encode()))
    except InvalidToken:
        raise TransportConfigError(
            f"credentials of transport {row.name!r} cannot be decrypted (was MISSIVA_SECRET_KEY changed?)",
            field="secrets",
        ) from None


def _auth(value: Any) -> BasicAuth | BearerAuth | HeaderAuth | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TransportConfigError("auth must be an object with a type", field="secrets.auth")
    kind = value.get("type")
    try:
        if kind == "basic":
            return BasicAuth(str(value["username"]), str(value["password"]))
        if kind == "bearer":
            return BearerAuth(str(value["token"]))
        if kind == "header":
            return HeaderAuth(str(value["header"]), str(value["value"]))
    except KeyError as exc:
        raise TransportConfigError(f"auth of type {kind!r} needs {exc}", field="secrets.auth") from None
    raise TransportConfigError("auth type must be basic, bearer or header", field="secrets.auth.type")


def smpp_settings(name: str, values: Mapping[str, Any], secrets: Mapping[str, Any]) -> SmppSettings:
    """SmppSettings from stored values; TransportConfigError naming what is wrong."""
    unknown = set(values) - _SMPP_FIELDS - COMMON
    if unknown:
        raise TransportConfigError(f"unknown SMPP setting(s): {', '.join(sorted(unknown))}", field="settings")
    own = {k: v for k, v in values.items() if k in _SMPP_FIELDS}
    for required in ("host", "port", "system_id"):
        if required not in own:
            raise TransportConfigError(f"SMPP transport needs {required}", field=f"settings.{required}")
    # Receipts come back as fast as submits go out: let many wait on one group commit.
    own.setdefault("inbound_concurrency", 256)
    try:
        return SmppSettings(name=name, password=str(secrets.get("password", "")), **own)
    except (TypeError, ValueError) as exc:
        raise TransportConfigError(f"SMPP settings: {exc}", field="settings") from None


def http_settings(name: str, values: Mapping[str, Any], secrets: Mapping[str, Any]) -> HttpGatewaySettings:
    """HttpGatewaySettings from stored values; TransportConfigError naming what is wrong."""
    unknown = set(values) - _HTTP_FIELDS - COMMON
    if unknown:
        raise TransportConfigError(f"unknown HTTP setting(s): {', '.join(sorted(unknown))}", field="settings")
    own = {k: v for k, v in values.items() if k in _HTTP_FIELDS}
    if "url_template" not in own:
        raise TransportConfigError("HTTP gateway needs url_template", field="settings.url_template")
    for key in ("success_statuses", "retry_statuses"):
        if key in own:
            own[key] = frozenset(int(s) for s in own[key])
    try:
        return HttpGatewaySettings(name=name, auth=_auth(secrets.get("auth")), **own)
    except (TypeError, ValueError, GatewayConfigError) as exc:
        raise TransportConfigError(f"HTTP gateway settings: {exc}", field="settings") from None


def callback_fields(values: Mapping[str, Any]) -> CallbackFields:
    """Parameter names of the gateway's inbound callback (``settings.callback``), defaults otherwise."""
    raw = values.get("callback") or {}
    allowed = {"source", "dest", "text", "message_id", "status", "err"}
    if not isinstance(raw, Mapping) or set(raw) - allowed:
        raise TransportConfigError(
            f"callback maps parameter names: keys among {', '.join(sorted(allowed))}",
            field="settings.callback",
        )
    return CallbackFields(**{k: str(v) for k, v in raw.items()})


def _validate(kind: str, name: str, values: Mapping[str, Any], secrets: Mapping[str, Any]) -> None:
    if kind not in KINDS:
        raise TransportConfigError("kind must be 'smpp' or 'http'", field="kind")
    id_type = values.get("receipt_id_type", "same")
    if id_type not in RECEIPT_ID_TYPES:
        raise TransportConfigError(
            f"receipt_id_type must be one of {', '.join(RECEIPT_ID_TYPES)}", field="settings.receipt_id_type"
        )
    allowed = SMPP_SECRETS if kind == "smpp" else HTTP_SECRETS
    if set(secrets) - allowed:
        raise TransportConfigError(
            f"{kind} secrets are {', '.join(sorted(allowed))}; got {', '.join(sorted(secrets))}",
            field="secrets",
        )
    callback_fields(values)
    if kind == "smpp":
        smpp_settings(name, values, secrets)
    else:
        http_settings(name, values, secrets)


# -- use cases -----------------------------------------------------------------------------------


def create(session: Session, account_id: int, values: dict[str, Any]) -> SmsTransportConfig:
    """Add a transport; Conflict when the name is taken, TransportConfigError when it cannot work."""
    name = str(values.get("name") or "").strip()
    if not name or len(name) > 40:
        raise InvalidInput("a transport needs a name of 1-40 characters", field="name")
    kind = str(values.get("kind") or "")
    settings = dict(values.get("settings") or {})
    secrets = dict(values.get("secrets") or {})
    _validate(kind, name, settings, secrets)
    taken = session.scalar(
        select(SmsTransportConfig.id).where(
            SmsTransportConfig.account_id == account_id, SmsTransportConfig.name == name
        )
    )
    if taken is not None:
        raise Conflict(f"a transport named {name!r} exists", field="name")
    row = SmsTransportConfig(
        account_id=account_id,
        name=name,
        kind=kind,
        priority=int(values.get("priority") or 0),
        weight=_weight(values.get("weight", 1.0)),
        enabled=bool(values.get("enabled", True)),
        settings=settings,
        secret=encrypt_secrets(secrets) if secrets else None,
    )
    session.add(row)
    session.flush()
    return row


def _weight(value: Any) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = 0.0
    if not weight > 0:
        raise InvalidInput("weight must be a positive number", field="weight")
    return weight


def get(session: Session, account_id: int, transport_id: int) -> SmsTransportConfig:
    """One transport of the account; NotFound otherwise."""
    row = session.get(SmsTransportConfig, transport_id)
    if row is None or row.account_id != account_id:
        raise NotFound(f"SMS transport {transport_id} not found", field="transport_id")
    return row


def update(
    session: Session, account_id: int, transport_id: int, values: dict[str, Any]
) -> SmsTransportConfig:
    """Change a transport; `settings` replaces the settings, `secrets` (when given) the secrets."""
    row = get(session, account_id, transport_id)
    settings = dict(values["settings"]) if values.get("settings") is not None else dict(row.settings)
    secrets = dict(values["secrets"]) if values.get("secrets") is not None else decrypt_secrets(row)
    _validate(row.kind, row.name, settings, secrets)
    row.settings = settings
    row.secret = encrypt_secrets(secrets) if secrets else None
    if values.get("priority") is not None:
        row.priority = int(values["priority"])
    if values.get("weight") is not None:
        row.weight = _weight(values["weight"])
    if values.get("enabled") is not None:
        row.enabled = bool(values["enabled"])
    session.flush()
    return row


def delete(session: Session, account_id: int, transport_id: int) -> None:
    """Remove a transport."""
    session.delete(get(session, account_id, transport_id))


def list_for(session: Session, account_id: int) -> list[SmsTransportConfig]:
    """The account's transports by priority."""
    return list(
        session.scalars(
            select(SmsTransportConfig)
            .where(SmsTransportConfig.account_id == account_id)
            .order_by(SmsTransportConfig.priority, SmsTransportConfig.id)
        )
    )


def require(session: Session, account_id: int) -> None:
    """NoTransport unless the account has an enabled transport (checked before an SMS is queued)."""
    found = session.scalar(
        select(SmsTransportConfig.id)
        .where(SmsTransportConfig.account_id == account_id, SmsTransportConfig.enabled.is_(True))
        .limit(1)
    )
    if found is None:
        raise NoTransport(
            "the account has no enabled SMS transport (POST /api/v1/sms/transports)", field="transports"
        )


def view(row: SmsTransportConfig) -> dict[str, Any]:
    """The API view: settings and the names of the secrets that are set, never their values."""
    secret_names = sorted(decrypt_secrets(row)) if row.secret else []
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "priority": row.priority,
        "weight": row.weight,
        "enabled": row.enabled,
        "settings": dict(row.settings or {}),
        "secrets_set": secret_names,
        "created_at": row.created_at,
    }


def receipt_id_type(session: Session, account_id: int, name: str) -> str:
    """How transport `name` writes ids in receipts (``same`` when unknown)."""
    settings = session.scalar(
        select(SmsTransportConfig.settings).where(
            SmsTransportConfig.account_id == account_id, SmsTransportConfig.name == name
        )
    )
    return str((settings or {}).get("receipt_id_type", "same"))


# -- opening for a send --------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """The account's transports ready to submit, and how each writes receipt ids."""

    transport: FailoverTransport
    receipt_id_types: dict[str, str]


def _load(db: Database, account_id: int) -> list[tuple[SmsTransportConfig, dict[str, Any]]]:
    with db.session() as session:
        rows = [r for r in list_for(session, account_id) if r.enabled]
        return [(row, decrypt_secrets(row)) for row in rows]


@contextlib.asynccontextmanager
async def open_for_account(
    db: Database, account_id: int, on_event: EventHandler, *, kinds: tuple[str, ...] = KINDS
) -> AsyncIterator[Opened]:
    """Open (bind) the account's enabled transports for the duration of the block.

    SMPP transports that cannot bind are left out (logged); NoTransport when none is configured,
    TransportsUnavailable when none could be opened. Receipts and inbound messages arriving on SMPP
    binds go to `on_event`.
    """
    loaded = [(r, s) for r, s in await asyncio.to_thread(_load, db, account_id) if r.kind in kinds]
    if not loaded:
        raise NoTransport(
            "the account has no enabled SMS transport (POST /api/v1/sms/transports)", field="transports"
        )
    routes: list[Route] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    id_types: dict[str, str] = {}
    try:
        for row, secrets in loaded:
            id_types[row.name] = str(row.settings.get("receipt_id_type", "same"))
            if row.kind == "smpp":
                client = SmppClient(smpp_settings(row.name, row.settings, secrets), on_event=on_event)
                try:
                    await client.start()
                except SmppConnectError as exc:
                    log.warning("sms transport %s: %s; sending without it", row.name, exc)
                    continue
                routes.append(Route(client, row.priority, row.weight))
                closers.append(client.close)
            else:
                gateway = HttpGateway(http_settings(row.name, row.settings, secrets))
                routes.append(Route(gateway, row.priority, row.weight))
                closers.append(gateway.aclose)
        if not routes:
            raise TransportsUnavailable("no SMS transport of the account could be opened")
        yield Opened(FailoverTransport(routes, name=f"account-{account_id}"), id_types)
    finally:
        for close in closers:
            with contextlib.suppress(Exception):
                await close()
