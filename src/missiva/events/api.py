"""REST routes for webhook endpoints, their delivery log, and the event feed; thin adapters over the
use cases in `service` and `feed`."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from missiva.events import feed, service
from missiva.events.enums import DeliveryStatus
from missiva.events.models import WebhookDelivery, WebhookEndpoint
from missiva.events.schemas import (
    DeliveryOut,
    DeliveryPage,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    FeedOut,
    MailupOut,
    RedeliverOut,
    RotateIn,
    SecretOut,
    TestOut,
)
from missiva.web.deps import Caller, get_session, require_caller

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    """The API view of an endpoint (never its secrets)."""
    mailup = endpoint.mailup or {}
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        format=endpoint.format,
        description=endpoint.description,
        event_types=list(endpoint.event_types or []),
        sources=list(endpoint.sources or []),
        list_id=endpoint.list_id,
        batch_size=endpoint.batch_size,
        active=endpoint.active,
        health=endpoint.health.value,
        disabled_reason=endpoint.disabled_reason,
        failing_since=endpoint.failing_since,
        unhealthy_since=endpoint.unhealthy_since,
        last_success_at=endpoint.last_success_at,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        mailup=MailupOut(**mailup) if mailup else None,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    """The API view of a delivery; `next_attempt_at` only while it is pending."""
    out = DeliveryOut.model_validate(delivery)
    if delivery.status != DeliveryStatus.PENDING:
        out.next_attempt_at = None
    return out


def _mailup_options(body: EndpointIn | EndpointPatch) -> service.MailupOptions | None:
    if body.mailup is None:
        return None
    return service.MailupOptions(
        params=[list(p) for p in body.mailup.params],
        method=body.mailup.method,
        encryption=body.mailup.encryption,
        key=body.mailup.key,
        event_type_case=body.mailup.event_type_case,
    )


@router.post("/webhooks", response_model=EndpointCreated, status_code=201)
def create_webhook(
    body: EndpointIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Register an endpoint; the answer carries its signing secret."""
    endpoint, secret = service.create_endpoint(
        session,
        caller.account_id,
        url=body.url,
        format=body.format,
        description=body.description,
        event_types=body.event_types,
        sources=body.sources,
        list_id=body.list_id,
        active=body.active,
        mailup=_mailup_options(body),
        batch_size=body.batch_size,
    )
    session.commit()
    return EndpointCreated(**endpoint_out(endpoint).model_dump(), secret=secret)


@router.get("/webhooks", response_model=list[EndpointOut])
def list_webhooks(caller: Caller = Depends(require_caller), session: Session = Depends(get_session)):
    """The account's endpoints."""
    return [endpoint_out(e) for e in service.list_endpoints(session, caller.account_id)]


@router.get("/webhooks/{endpoint_id}", response_model=EndpointOut)
def get_webhook(
    endpoint_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """One endpoint with its health."""
    return endpoint_out(service.get_endpoint(session, caller.account_id, endpoint_id))


@router.patch("/webhooks/{endpoint_id}", response_model=EndpointOut)
def patch_webhook(
    endpoint_id: int,
    body: EndpointPatch,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Change URL, filters, active flag or MailUp options; `active: true` re-enables a disabled endpoint."""
    changes = body.model_dump(exclude_unset=True)
    if "mailup" in changes:
        changes["mailup"] = _mailup_options(body)
    endpoint = service.update_endpoint(session, caller.account_id, endpoint_id, changes)
    session.commit()
    return endpoint_out(endpoint)


@router.delete("/webhooks/{endpoint_id}", status_code=204)
def delete_webhook(
    endpoint_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Delete an endpoint and its delivery log."""
    service.delete_endpoint(session, caller.account_id, endpoint_id)
    session.commit()
    return Response(status_code=204)


@router.get("/webhooks/{endpoint_id}/secret", response_model=SecretOut)
def get_secret(
    endpoint_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """The current signing secret."""
    endpoint = service.get_endpoint(session, caller.account_id, endpoint_id)
    return SecretOut(
        secret=service.reveal_secret(session, caller.account_id, endpoint_id),
        previous_valid_until=endpoint.previous_secret_expires_at,
    )


@router.post("/webhooks/{endpoint_id}/rotate-secret", response_model=SecretOut)
def rotate_secret(
    endpoint_id: int,
    body: RotateIn | None = None,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """A new signing secret; the old one stays valid (both signatures sent) for `overlap_hours`."""
    overlap = timedelta(hours=(body or RotateIn()).overlap_hours)
    rotation = service.rotate_secret(session, caller.account_id, endpoint_id, overlap=overlap)
    session.commit()
    return SecretOut(secret=rotation.secret, previous_valid_until=rotation.previous_valid_until)


@router.post("/webhooks/{endpoint_id}/test", response_model=TestOut)
def test_webhook(
    endpoint_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Send a `webhook.ping` now and report the endpoint's answer."""
    result = service.send_test(session, caller.account_id, endpoint_id)
    return TestOut(**result.__dict__)


@router.get("/webhooks/{endpoint_id}/deliveries", response_model=DeliveryPage)
def list_deliveries(
    endpoint_id: int,
    status: DeliveryStatus | None = None,
    before: int | None = Query(default=None, ge=1),
    limit: int = Query(default=50, ge=1, le=1000),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """The delivery log, newest first; page with `before=<next_before>`."""
    rows = service.list_deliveries(
        session,
        caller.account_id,
        endpoint_id,
        status=status.value if status else None,
        before=before,
        limit=limit + 1,
    )
    page = rows[:limit]
    return DeliveryPage(
        items=[delivery_out(d) for d in page], next_before=page[-1].id if len(rows) > limit else None
    )


@router.get("/webhooks/{endpoint_id}/deliveries/{delivery_id}", response_model=DeliveryOut)
def get_delivery(
    endpoint_id: int,
    delivery_id: int,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """One delivery: status, attempts, last answer."""
    return delivery_out(service.get_delivery(session, caller.account_id, endpoint_id, delivery_id))


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut)
def redeliver(
    endpoint_id: int,
    delivery_id: int,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Send a finished delivery again (same `webhook-id`); 409 while it is still pending."""
    delivery = service.redeliver(session, caller.account_id, endpoint_id, delivery_id)
    session.commit()
    return delivery_out(delivery)


@router.post("/webhooks/{endpoint_id}/redeliver-dead", response_model=RedeliverOut)
def redeliver_dead(
    endpoint_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Requeue every dead-lettered delivery of the endpoint."""
    count = service.redeliver_dead(session, caller.account_id, endpoint_id)
    session.commit()
    return RedeliverOut(requeued=count)


@router.get("/events", response_model=FeedOut, tags=["events"])
def read_feed(
    after: str | None = Query(default=None, max_length=100, description="cursor from a previous page"),
    types: str | None = Query(default=None, description="comma-separated event types"),
    limit: int = Query(default=100, ge=1, le=feed.MAX_LIMIT),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """The account's audience events in order; poll with `after=<next_cursor>`."""
    page = feed.read(
        session,
        caller.account_id,
        after=after,
        types=(types or "").split(","),
        limit=limit,
    )
    return FeedOut(items=page.items, next_cursor=page.next_cursor, has_more=page.has_more)
