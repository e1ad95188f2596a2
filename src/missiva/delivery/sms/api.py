"""REST routes of the SMS channel: settings, transports, text analysis, inbound log, and the public
callback an HTTP gateway calls with delivery reports and replies (authenticated by a per-account token).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from missiva import runtime
from missiva.delivery.sms import inbound, receipt_matching, settings, transports
from missiva.delivery.sms.content import analysis_view
from missiva.delivery.sms.encoding import SmsTextError, analyse, split_text
from missiva.delivery.sms.events import Receipt
from missiva.delivery.sms.http_gateway import CallbackError, CallbackFields, parse_callback
from missiva.delivery.sms.models import SmsInbound, SmsTransportConfig
from missiva.delivery.sms.schemas import (
    AnalyseIn,
    AnalyseOut,
    CallbackOut,
    InboundOut,
    InboundTokenOut,
    ListSmsIn,
    ListSmsOut,
    SmsSettingsIn,
    SmsSettingsOut,
    TransportIn,
    TransportOut,
    TransportPatch,
)
from missiva.errors import InvalidInput
from missiva.web.deps import Caller, get_session, require_caller

router = APIRouter(prefix="/api/v1", tags=["sms"])
public = APIRouter(tags=["sms callbacks"])


def _settings_out(session: Session, account_id: int) -> SmsSettingsOut:
    row = settings.account_settings(session, account_id)
    return SmsSettingsOut(
        sender_id=row.sender_id,
        opt_out_text=row.opt_out_text,
        stop_keywords=list(settings.stop_keywords(session, account_id)),
        inbound_token_set=row.inbound_token_hash is not None,
    )


@router.get("/sms/settings", response_model=SmsSettingsOut)
def get_sms_settings(caller: Caller = Depends(require_caller), session: Session = Depends(get_session)):
    """The account's SMS defaults: sender id, opt-out text, STOP keywords."""
    out = _settings_out(session, caller.account_id)
    session.commit()
    return out


@router.patch("/sms/settings", response_model=SmsSettingsOut)
def patch_sms_settings(
    body: SmsSettingsIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Change the account's SMS defaults (only the keys given)."""
    settings.update_account(session, caller.account_id, body.model_dump(exclude_unset=True))
    session.commit()
    return _settings_out(session, caller.account_id)


@router.post("/sms/settings/inbound-token", response_model=InboundTokenOut, status_code=201)
def new_inbound_token(caller: Caller = Depends(require_caller), session: Session = Depends(get_session)):
    """A new token for the inbound callback URL (the old one stops working); shown only now."""
    token = settings.new_inbound_token(session, caller.account_id)
    session.commit()
    return InboundTokenOut(token=token, url=f"{runtime.settings().base_url}/sms/inbound/{token}")


@router.get("/lists/{list_id}/sms", response_model=ListSmsOut)
def get_list_sms(
    list_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """A list's SMS sender id and opt-out text (null: the account's apply)."""
    row = settings.list_settings(session, caller.account_id, list_id)
    return ListSmsOut(list_id=list_id, sender_id=row.sender_id, opt_out_text=row.opt_out_text)


@router.put("/lists/{list_id}/sms", response_model=ListSmsOut)
def put_list_sms(
    list_id: int,
    body: ListSmsIn,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Set a list's SMS sender id and opt-out text."""
    row = settings.update_list(session, caller.account_id, list_id, body.model_dump())
    session.commit()
    return ListSmsOut(list_id=list_id, sender_id=row.sender_id, opt_out_text=row.opt_out_text)


@router.post("/sms/analyse", response_model=AnalyseOut)
def analyse_text(body: AnalyseIn, caller: Caller = Depends(require_caller)):
    """GSM-7 or UCS-2, segment count, the characters forcing UCS-2, and the parts as handsets split them."""
    try:
        parts = split_text(body.text)
    except SmsTextError as exc:
        raise InvalidInput(str(exc), field="text") from None
    return AnalyseOut(**analysis_view(analyse(body.text)), parts=parts)


# -- transports ----------------------------------------------------------------------------------


@router.get("/sms/transports", response_model=list[TransportOut])
def get_transports(caller: Caller = Depends(require_caller), session: Session = Depends(get_session)):
    """The account's SMS transports (secrets by name only)."""
    return [transports.view(row) for row in transports.list_for(session, caller.account_id)]


@router.post("/sms/transports", response_model=TransportOut, status_code=201)
def create_transport(
    body: TransportIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Add an SMPP account or HTTP gateway; its secrets are stored encrypted and never shown again."""
    row = transports.create(session, caller.account_id, body.model_dump())
    session.commit()
    return transports.view(row)


@router.get("/sms/transports/{transport_id}", response_model=TransportOut)
def get_transport(
    transport_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """One transport."""
    return transports.view(transports.get(session, caller.account_id, transport_id))


@router.patch("/sms/transports/{transport_id}", response_model=TransportOut)
def patch_transport(
    transport_id: int,
    body: TransportPatch,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Change a transport (`settings` and `secrets` are replaced as a whole when given)."""
    row = transports.update(session, caller.account_id, transport_id, body.model_dump(exclude_unset=True))
    session.commit()
    return transports.view(row)


@router.delete("/sms/transports/{transport_id}", status_code=204)
def delete_transport(
    transport_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Remove a transport."""
    transports.delete(session, caller.account_id, transport_id)
    session.commit()
    return Response(status_code=204)


@router.get("/sms/inbound", response_model=list[InboundOut])
def get_inbound(
    after: int = 0,
    limit: int = Query(100, ge=1, le=1000),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Inbound SMS received for the account, oldest first (keyset-paged by `after`)."""
    return list(
        session.scalars(
            select(SmsInbound)
            .where(SmsInbound.account_id == caller.account_id, SmsInbound.id > after)
            .order_by(SmsInbound.id)
            .limit(limit)
        )
    )


# -- public callback -----------------------------------------------------------------------------


async def _params(request: Request) -> dict[str, Any]:
    """Query parameters, then form fields or a flat JSON object of the body."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError as exc:
                raise InvalidInput(f"callback body is not JSON: {exc}", field="body") from None
            if not isinstance(body, dict):
                raise InvalidInput("callback JSON must be an object", field="body")
            params.update(body)
        else:
            params.update(dict(await request.form()))
    params.pop("transport", None)
    return params


def _callback_config(session: Session, account_id: int, name: str | None) -> tuple[CallbackFields, str, str]:
    if name is None:
        return CallbackFields(), "http", "same"
    row = session.scalar(
        select(SmsTransportConfig).where(
            SmsTransportConfig.account_id == account_id, SmsTransportConfig.name == name
        )
    )
    if row is None:
        raise InvalidInput(f"no transport named {name!r}", field="transport")
    values = row.settings or {}
    return transports.callback_fields(values), row.name, str(values.get("receipt_id_type", "same"))


@public.post("/sms/inbound/{token}", response_model=CallbackOut)
async def inbound_callback(
    token: str,
    request: Request,
    transport: str | None = None,
    session: Session = Depends(get_session),
):
    """An HTTP gateway's delivery report or inbound SMS (query, form or JSON parameters).

    `?transport=<name>` picks that transport's parameter names and receipt id form. A STOP-style
    reply unsubscribes the number from the account's SMS lists.
    """
    params = await _params(request)
    return await run_in_threadpool(_handle_callback, session, token, transport, params)


@public.get("/sms/inbound/{token}", response_model=CallbackOut)
async def inbound_callback_get(
    token: str,
    request: Request,
    transport: str | None = None,
    session: Session = Depends(get_session),
):
    """The same callback for gateways that call with GET and query parameters."""
    return await inbound_callback(token, request, transport, session)


def _handle_callback(
    session: Session, token: str, transport: str | None, params: dict[str, Any]
) -> CallbackOut:
    account_id = settings.account_for_token(session, token)
    fields, name, id_type = _callback_config(session, account_id, transport)
    try:
        event = parse_callback(params, fields, transport=name)
    except CallbackError as exc:
        raise InvalidInput(str(exc), field="body") from None
    if isinstance(event, Receipt):
        receipt_matching.store(session, account_id, [event], lambda _name: id_type)
        receipt_matching.apply_pending(session, account_id)
        session.commit()
        return CallbackOut(type="receipt")
    row = inbound.handle(session, account_id, event)
    session.commit()
    return CallbackOut(type="inbound", action=row.action)
