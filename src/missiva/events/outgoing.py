"""The HTTP request an endpoint gets for an event, in its format (native signed JSON, or MailUp's form)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from missiva import __version__
from missiva.audience.models import AudienceEvent
from missiva.events import mailup_format, vault
from missiva.events.enums import Encryption, Format, HttpMethod
from missiva.events.mailup_format import EventTypeCase, OutgoingRequest
from missiva.events.models import WebhookEndpoint
from missiva.events.payload import ListInfo, dumps, native_payload
from missiva.events.signing import Signer

USER_AGENT = f"Missiva-Webhooks/{__version__}"


@dataclass(frozen=True)
class EndpointContext:
    """An endpoint with its secrets opened, ready to build requests (one per dispatcher batch)."""

    id: int
    url: str
    format: str
    signer: Signer | None
    method: str = HttpMethod.POST
    params: Sequence[Sequence[str]] = ()
    encryption: str = Encryption.NONE
    key: str | None = None
    case: EventTypeCase = EventTypeCase.TITLE
    list_id: int | None = None
    batch_size: int = 1


def endpoint_context(endpoint: WebhookEndpoint, installation_secret: str, now: datetime) -> EndpointContext:
    """Open the endpoint's secrets; the previous signing secret counts until its overlap ends."""
    secrets = [vault.unseal(installation_secret, endpoint.secret)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(vault.unseal(installation_secret, endpoint.previous_secret))
    mailup: dict[str, Any] = endpoint.mailup or {}
    return EndpointContext(
        id=endpoint.id,
        url=endpoint.url,
        format=endpoint.format,
        signer=Signer(secrets),
        method=mailup.get("method", HttpMethod.POST),
        params=[tuple(p) for p in mailup.get("params", [])],
        encryption=mailup.get("encryption", Encryption.NONE),
        key=vault.unseal(installation_secret, endpoint.mailup_key) if endpoint.mailup_key else None,
        case=EventTypeCase(mailup.get("event_type_case", EventTypeCase.TITLE)),
        list_id=endpoint.list_id,
        batch_size=endpoint.batch_size or 1,
    )


def signed_json(ctx: EndpointContext, msg_id: str, body: str, now: datetime) -> OutgoingRequest:
    """A native request: the JSON body with its Standard Webhooks headers."""
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    if ctx.signer is not None:
        headers.update(ctx.signer.headers(msg_id, body, now))
    return OutgoingRequest("POST", ctx.url, headers, body.encode())


def mailup_request(ctx: EndpointContext, msg_id: str, pairs: Sequence[tuple[str, str]]) -> OutgoingRequest:
    """A MailUp-style request carrying `pairs`; `webhook-id` lets a receiver that wants to deduplicate."""
    request = mailup_format.build_request(ctx.url, ctx.method, pairs, ctx.encryption, ctx.key)
    request.headers.update({"user-agent": USER_AGENT, "webhook-id": msg_id})
    return request


@dataclass(frozen=True)
class Rendered:
    """What to send for one delivery: a body to sign at send time, MailUp pairs, or nothing at all."""

    msg_id: str
    body: str | None = None
    pairs: Sequence[tuple[str, str]] | None = None
    nothing_reason: str | None = None

    def request(self, ctx: EndpointContext, now: datetime) -> OutgoingRequest:
        """The request, signed at `now` (Standard Webhooks timestamps must be fresh)."""
        if self.body is not None:
            return signed_json(ctx, self.msg_id, self.body, now)
        assert self.pairs is not None
        return mailup_request(ctx, self.msg_id, self.pairs)


def batch_id(delivery_ids: Sequence[int]) -> str:
    """The `webhook-id` of a batch: the same for the same deliveries, whichever attempt carries them."""
    digest = hashlib.sha256(",".join(map(str, sorted(delivery_ids))).encode()).hexdigest()
    return f"batch_{digest[:24]}"


def render_batch(msg_id: str, bodies: Sequence[str]) -> Rendered:
    """One request carrying several events' native payloads: `{"type": "batch", "count", "events"}`."""
    body = f'{{"type":"batch","id":"{msg_id}","count":{len(bodies)},"events":[{",".join(bodies)}]}}'
    return Rendered(msg_id, body=body)


def render(
    ctx: EndpointContext, event: AudienceEvent, part: int, msg_id: str, lists: dict[int, ListInfo]
) -> Rendered:
    """The content of delivery `part` of `event` for this endpoint."""
    if ctx.format == Format.NATIVE:
        return Rendered(msg_id, body=dumps(native_payload(event, lists)))
    calls = [] if (event.data or {}).get("erased") else mailup_format.calls(event, ctx.list_id)
    if part >= len(calls):
        # The recipient was deleted (and its personal data erased) before this was delivered.
        return Rendered(msg_id, nothing_reason="the event's personal data was erased before delivery")
    values = mailup_format.placeholder_values(calls[part], event, ctx.case)
    return Rendered(msg_id, pairs=mailup_format.render_params(ctx.params, values))
