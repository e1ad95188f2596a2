"""Use cases for webhook endpoints and their delivery log: create, change, rotate, redeliver, test.

Every function is scoped by account: another account's endpoint or delivery is NotFound.
"""

from __future__ import annotations

import secrets as random_secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.audience import lists as lists_svc
from missiva.audience.enums import EventType, Source
from missiva.db import utcnow
from missiva.errors import Conflict, InvalidInput, NotFound
from missiva.events import mailup_format, outbox, vault
from missiva.events.enums import MESSAGE_EVENT_TYPES, DeliveryStatus, Encryption, Format, HttpMethod
from missiva.events.mailup_format import EventTypeCase
from missiva.events.models import WebhookDelivery, WebhookEndpoint
from missiva.events.outgoing import endpoint_context, mailup_request, signed_json
from missiva.events.payload import dumps, timestamp
from missiva.events.signing import new_secret

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_URL = 2000


@dataclass(frozen=True)
class MailupOptions:
    """How a MailUp-format endpoint wants its calls."""

    params: list[list[str]]
    method: str = HttpMethod.POST
    encryption: str = Encryption.NONE
    key: str | None = None
    event_type_case: str = EventTypeCase.TITLE


def _installation_secret() -> str:
    return runtime.settings().secret_key


def check_url(url: str) -> str:
    """An http(s) URL with a host; InvalidInput naming `url` otherwise."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL or any(ch.isspace() for ch in url):
        raise InvalidInput(f"the URL must be 1 to {MAX_URL} characters without spaces", field="url")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput("only http and https URLs can receive webhooks", field="url")
    if not parts.hostname:
        raise InvalidInput("the URL has no host name", field="url")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise InvalidInput(f"the URL's port is not valid: {exc}", field="url") from exc
    return url


def _check_choices(values: Iterable[str], allowed: type[Any], field: str) -> list[str]:
    known = {m.value for m in allowed}
    if allowed is EventType:
        known.update(MESSAGE_EVENT_TYPES)
    out = list(dict.fromkeys(str(v) for v in values))
    for value in out:
        if value not in known:
            raise InvalidInput(
                f"unknown {field[:-1].replace('_', ' ')} {value!r}; known: {sorted(known)}", field=field
            )
    return out


MAX_BATCH = 500
"""The most message events one request may carry (the dispatcher claims 200 rows at a time by default)."""


def _check_batch(batch_size: int, fmt: str) -> int:
    if not 1 <= int(batch_size) <= MAX_BATCH:
        raise InvalidInput(f"the batch size must be 1 to {MAX_BATCH} events", field="batch_size")
    if batch_size > 1 and fmt != Format.NATIVE:
        raise InvalidInput("only native-format endpoints take batches", field="batch_size")
    return int(batch_size)


def _check_list(session: Session, account_id: int, list_id: int | None) -> int | None:
    if list_id is None:
        return None
    try:
        lists_svc.get_list(session, account_id, list_id)
    except NotFound as exc:
        raise InvalidInput(f"list {list_id} does not exist", field="list_id") from exc
    return list_id


def _mailup_config(options: MailupOptions) -> tuple[dict[str, Any], str | None]:
    """The stored MailUp settings and the sealed key."""
    try:
        method = HttpMethod(options.method.upper())
        encryption = Encryption(options.encryption)
        case = EventTypeCase(options.event_type_case)
    except ValueError as exc:
        raise InvalidInput(f"invalid MailUp option: {exc}", field="mailup") from exc
    params = mailup_format.check_params(options.params)
    sealed = None
    if encryption is not Encryption.NONE:
        key = options.key or ""
        if not 1 <= len(key.encode()) <= 256:
            raise InvalidInput("encryption needs a key of 1 to 256 bytes", field="mailup.key")
        sealed = vault.seal(_installation_secret(), key)
    config = {
        "method": method.value,
        "params": params,
        "encryption": encryption.value,
        "event_type_case": case.value,
    }
    return config, sealed


def create_endpoint(
    session: Session,
    account_id: int,
    *,
    url: str,
    format: str = Format.NATIVE,
    description: str = "",
    event_types: Iterable[str] = (),
    sources: Iterable[str] = (),
    list_id: int | None = None,
    active: bool = True,
    mailup: MailupOptions | None = None,
    batch_size: int = 1,
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it with its signing secret (`whsec_...`), shown only on request.

    Raises InvalidInput naming the bad URL, event type, source, list or MailUp option.
    """
    try:
        fmt = Format(format)
    except ValueError as exc:
        raise InvalidInput(f"unknown format {format!r}; use native or mailup", field="format") from exc
    if len(description) > 200:
        raise InvalidInput("the description is longer than 200 characters", field="description")
    mailup_config: dict[str, Any] = {}
    sealed_key = None
    if fmt is Format.MAILUP:
        if mailup is None:
            raise InvalidInput("a MailUp-format endpoint needs its parameters", field="mailup")
        mailup_config, sealed_key = _mailup_config(mailup)
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        account_id=account_id,
        url=check_url(url),
        description=description,
        format=fmt.value,
        event_types=_check_choices(event_types, EventType, "event_types"),
        sources=_check_choices(sources, Source, "sources"),
        list_id=_check_list(session, account_id, list_id),
        batch_size=_check_batch(batch_size, fmt.value),
        active=active,
        secret=vault.seal(_installation_secret(), secret),
        mailup=mailup_config,
        mailup_key=sealed_key,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    outbox.forget_endpoints(session)
    return endpoint, secret


def get_endpoint(session: Session, account_id: int, endpoint_id: int) -> WebhookEndpoint:
    """The account's endpoint; NotFound for a missing id or another account's."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.account_id != account_id:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist", field="webhook")
    return endpoint


def list_endpoints(session: Session, account_id: int) -> list[WebhookEndpoint]:
    """The account's endpoints, by id."""
    stmt = (
        select(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id).order_by(WebhookEndpoint.id)
    )
    return list(session.scalars(stmt))


def update_endpoint(
    session: Session, account_id: int, endpoint_id: int, changes: Mapping[str, Any]
) -> WebhookEndpoint:
    """Change an endpoint's URL, description, filters, active flag or MailUp options.

    Re-activating an endpoint (after a 410 or a pause) clears its failure state.
    """
    endpoint = get_endpoint(session, account_id, endpoint_id)
    for key, value in changes.items():
        if key == "url":
            endpoint.url = check_url(value)
        elif key == "description":
            if len(value or "") > 200:
                raise InvalidInput("the description is longer than 200 characters", field="description")
            endpoint.description = value or ""
        elif key == "event_types":
            endpoint.event_types = _check_choices(value or (), EventType, "event_types")
        elif key == "sources":
            endpoint.sources = _check_choices(value or (), Source, "sources")
        elif key == "list_id":
            endpoint.list_id = _check_list(session, account_id, value)
        elif key == "active":
            if value and not endpoint.active:
                endpoint.disabled_reason = None
                endpoint.failing_since = None
                endpoint.unhealthy_since = None
            endpoint.active = bool(value)
        elif key == "batch_size":
            endpoint.batch_size = _check_batch(value, endpoint.format)
        elif key == "mailup":
            if endpoint.format != Format.MAILUP:
                raise InvalidInput("only MailUp-format endpoints have MailUp options", field="mailup")
            options = value if isinstance(value, MailupOptions) else MailupOptions(**value)
            endpoint.mailup, endpoint.mailup_key = _mailup_config(options)
        else:
            raise InvalidInput(f"{key!r} cannot be changed", field=key)
    endpoint.updated_at = utcnow()
    session.flush()
    outbox.forget_endpoints(session)
    return endpoint


def delete_endpoint(session: Session, account_id: int, endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log."""
    session.delete(get_endpoint(session, account_id, endpoint_id))
    session.flush()
    outbox.forget_endpoints(session)


def reveal_secret(session: Session, account_id: int, endpoint_id: int) -> str:
    """The endpoint's current signing secret."""
    endpoint = get_endpoint(session, account_id, endpoint_id)
    return vault.unseal(_installation_secret(), endpoint.secret)


@dataclass(frozen=True)
class Rotation:
    secret: str
    previous_valid_until: datetime | None


def rotate_secret(
    session: Session,
    account_id: int,
    endpoint_id: int,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
) -> Rotation:
    """Give the endpoint a new signing secret; requests carry both signatures for `overlap`.

    A zero overlap drops the old secret at once (after a leak).
    """
    if overlap < timedelta(0) or overlap > timedelta(days=30):
        raise InvalidInput("the overlap must be between 0 and 30 days", field="overlap")
    endpoint = get_endpoint(session, account_id, endpoint_id)
    now = now or utcnow()
    secret = new_secret()
    if overlap > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + overlap
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = vault.seal(_installation_secret(), secret)
    endpoint.updated_at = now
    session.flush()
    return Rotation(secret, endpoint.previous_secret_expires_at)


# -- delivery log --------------------------------------------------------------------------------


def list_deliveries(
    session: Session,
    account_id: int,
    endpoint_id: int,
    *,
    status: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[WebhookDelivery]:
    """The endpoint's deliveries, newest first, keyset-paginated with `before` (a delivery id)."""
    get_endpoint(session, account_id, endpoint_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        try:
            stmt = stmt.where(WebhookDelivery.status == DeliveryStatus(status).value)
        except ValueError as exc:
            known = [s.value for s in DeliveryStatus]
            raise InvalidInput(f"unknown status {status!r}; known: {known}", field="status") from exc
    if before is not None:
        stmt = stmt.where(WebhookDelivery.id < before)
    stmt = stmt.order_by(WebhookDelivery.id.desc()).limit(max(1, min(limit, 1000)))
    return list(session.scalars(stmt))


def get_delivery(session: Session, account_id: int, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """One delivery of the account's endpoint; NotFound otherwise."""
    get_endpoint(session, account_id, endpoint_id)
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound(f"delivery {delivery_id} does not exist", field="delivery")
    return delivery


def redeliver(
    session: Session, account_id: int, endpoint_id: int, delivery_id: int, *, now: datetime | None = None
) -> WebhookDelivery:
    """Send a delivered, dead or cancelled delivery again, with the same `webhook-id` and a new retry
    window. Conflict if it is still pending."""
    delivery = get_delivery(session, account_id, endpoint_id, delivery_id)
    if delivery.status == DeliveryStatus.PENDING:
        raise Conflict(f"delivery {delivery_id} is still pending", field="delivery")
    _requeue(session, [delivery.id], now or utcnow())
    session.refresh(delivery)
    return delivery


def redeliver_dead(
    session: Session, account_id: int, endpoint_id: int, *, now: datetime | None = None
) -> int:
    """Requeue every dead delivery of the endpoint; how many."""
    get_endpoint(session, account_id, endpoint_id)
    ids = list(
        session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status == DeliveryStatus.DEAD.value,
            )
        )
    )
    _requeue(session, ids, now or utcnow())
    return len(ids)


def _requeue(session: Session, ids: list[int], now: datetime) -> None:
    if not ids:
        return
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(status=DeliveryStatus.PENDING.value, next_attempt_at=now, window_start=now, delivered_at=None)
    )
    outbox.request_dispatch(session)


# -- test call -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    ok: bool
    status_code: int | None
    latency_ms: int | None
    error: str | None
    webhook_id: str


def send_test(session: Session, account_id: int, endpoint_id: int, *, timeout: float = 10.0) -> TestResult:
    """Send a `webhook.ping` event (MailUp format: EventType `Test`) right now and report the answer.

    Nothing is queued or recorded; the ping is signed like every other request.
    """
    endpoint = get_endpoint(session, account_id, endpoint_id)
    now = utcnow()
    ctx = endpoint_context(endpoint, _installation_secret(), now)
    msg_id = f"ping_{random_secrets.token_hex(8)}"
    if endpoint.format == Format.NATIVE:
        body = {
            "id": msg_id,
            "type": "webhook.ping",
            "occurred_at": timestamp(now),
            "account_id": account_id,
            "list": None,
            "recipient": None,
            "channel": None,
            "reason": None,
            "source": Source.SYSTEM.value,
            "mailing_id": None,
            "data": {"endpoint_id": endpoint.id},
        }
        request = signed_json(ctx, msg_id, dumps(body), now)
    else:
        values = {p: "" for p in mailup_format.PLACEHOLDERS}
        values.update(
            EventDate=mailup_format.event_date(now),
            IdConsole=str(account_id),
            IdList="" if endpoint.list_id is None else str(endpoint.list_id),
            EventType="Test",
            EventSource="System",
        )
        request = mailup_request(ctx, msg_id, mailup_format.render_params(ctx.params, values))
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.request(
                request.method, request.url, content=request.content, headers=request.headers
            )
    except httpx.HTTPError as exc:
        return TestResult(False, None, None, f"{type(exc).__name__}: {exc}"[:500], msg_id)
    latency = round((time.perf_counter() - started) * 1000)
    ok = 200 <= response.status_code < 300
    error = None if ok else f"HTTP {response.status_code} {response.text[:200]}".strip()
    return TestResult(ok, response.status_code, latency, error, msg_id)
