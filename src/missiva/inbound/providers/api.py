"""HTTP side of provider webhooks: the public endpoints the services POST to, and their management API.

`POST /webhooks/inbound/{provider}/{token}`: the token names the account's endpoint, then the provider's
own signature is checked (SNS certificate signature, SendGrid ECDSA, Mailgun HMAC, Postmark basic auth
when configured) before anything is read. All notifications of one POST are applied in one
transaction; the same event posted again (providers retry) changes nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from missiva import runtime
from missiva.errors import InvalidInput, NotFound
from missiva.inbound import actions
from missiva.inbound.actions import Notification, Policy
from missiva.inbound.models import InboundWebhook
from missiva.inbound.providers import endpoints, mailgun, postmark, sendgrid, ses
from missiva.web.deps import Caller, get_session, require_caller

MAX_BODY = 5 * 1024 * 1024
SUBSCRIBE_URL = re.compile(
    r"^https://sns\.[a-z0-9-]{1,40}\.amazonaws\.com(\.cn)?/\?Action=ConfirmSubscription&"
)

public = APIRouter(tags=["inbound webhooks"])
router = APIRouter(prefix="/api/v1/inbound", tags=["inbound"])

_verifier = ses.SnsVerifier()


def get_sns_verifier() -> ses.SnsVerifier:
    """The process's SNS verifier (its certificate cache is shared); tests override this dependency."""
    return _verifier


def confirm_subscription(url: str) -> bool:
    """Confirm an SNS subscription by visiting its SubscribeURL (an AWS host only); whether it worked."""
    if not SUBSCRIBE_URL.match(url):
        return False
    try:
        return httpx.get(url, timeout=10, follow_redirects=False).status_code == 200
    except httpx.HTTPError:
        return False


def get_subscription_confirmer() -> Callable[[str], bool]:
    """How SubscriptionConfirmation messages are confirmed; tests override this dependency."""
    return confirm_subscription


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise InvalidInput(f"notification body larger than {MAX_BODY} bytes", field="body")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidInput(f"notification body larger than {MAX_BODY} bytes", field="body")
    return body


@public.post("/webhooks/inbound/{provider}/{token}", include_in_schema=False)
async def receive(
    provider: str,
    token: str,
    request: Request,
    session: Session = Depends(get_session),
    verifier: ses.SnsVerifier = Depends(get_sns_verifier),
    confirmer: Callable[[str], bool] = Depends(get_subscription_confirmer),
) -> dict[str, Any]:
    """Receive one provider POST; 404 for an unknown endpoint, 401 for a bad signature."""
    body = await _body(request)
    headers = dict(request.headers)
    return await run_in_threadpool(_receive, session, provider, token, body, headers, verifier, confirmer)


def _receive(
    session: Session,
    provider: str,
    token: str,
    body: bytes,
    headers: dict[str, str],
    verifier: ses.SnsVerifier,
    confirmer: Callable[[str], bool],
) -> dict[str, Any]:
    hook = endpoints.find(session, provider, token)
    if hook is None:
        raise NotFound("no such inbound webhook endpoint", field="token")
    options = hook.options or {}
    if provider == "ses":
        message = ses.parse(body, verifier, topic_arn=options.get("topic_arn"))
        if message.type == "SubscriptionConfirmation":
            confirmed = bool(message.subscribe_url) and confirmer(message.subscribe_url or "")
            endpoints.record_subscription(hook, message.topic_arn, message.subscribe_url, confirmed)
            session.commit()
            return {"subscription": "confirmed" if confirmed else "recorded"}
        notes = message.notes
    elif provider == "sendgrid":
        sendgrid.verify(
            body,
            headers.get(sendgrid.SIGNATURE_HEADER.lower()),
            headers.get(sendgrid.TIMESTAMP_HEADER.lower()),
            options["public_key"],
        )
        notes = sendgrid.parse(body)
    elif provider == "mailgun":
        payload = mailgun.read(body)
        mailgun.verify(payload, options["signing_key"])
        notes = mailgun.parse(payload)
    else:
        if "password_hash" in options:
            postmark.check_basic_auth(
                headers.get("authorization"), options["username"], options["password_hash"]
            )
        notes = postmark.parse(body)
    return _apply(session, hook, notes)


def _apply(session: Session, hook: InboundWebhook, notes: list[Notification]) -> dict[str, Any]:
    policy = Policy.from_settings(runtime.settings())
    done: Counter[str] = Counter()
    for note in notes:
        result = actions.apply(session, note, account_id=hook.account_id, policy=policy)
        done["duplicate" if result.duplicate else result.action.value] += 1
    session.commit()
    return {"received": len(notes), "actions": dict(done)}


# -- management ----------------------------------------------------------------------------------


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str
    topic_arn: str | None = None  # SES: only this SNS topic may post
    public_key: str | None = None  # SendGrid: the Event Webhook verification key
    signing_key: str | None = None  # Mailgun: the HTTP webhook signing key
    username: str | None = None  # Postmark: optional basic auth
    password: str | None = None


def _out(hook: InboundWebhook, token: str | None = None) -> dict[str, Any]:
    options = hook.options or {}
    out: dict[str, Any] = {
        "id": hook.id,
        "provider": hook.provider,
        "created_at": hook.created_at,
        "topic_arn": options.get("topic_arn"),
        "basic_auth": "password_hash" in options,
        "subscription": options.get("subscription"),
    }
    if token is not None:
        path = endpoints.PATH.format(provider=hook.provider, token=token)
        out["url"] = runtime.settings().base_url + path
    return out


@router.post("/webhooks", status_code=201)
def create_webhook(
    body: WebhookIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """Create an endpoint for an email service; the answer's `url` (with its secret token) is shown once."""
    hook, token = endpoints.create(
        session, caller.account_id, body.provider, **body.model_dump(exclude={"provider"})
    )
    session.commit()
    return _out(hook, token)


@router.get("/webhooks")
def list_webhooks(
    caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> list[dict[str, Any]]:
    """The account's endpoints (without their tokens), with any SNS subscription to confirm."""
    return [_out(hook) for hook in endpoints.for_account(session, caller.account_id)]


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(
    webhook_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Response:
    """Remove an endpoint; the service's later POSTs get 404."""
    endpoints.delete(session, caller.account_id, webhook_id)
    session.commit()
    return Response(status_code=204)
