"""MailUp's real-time frontend calls (`/frontend/xml*.aspx`), wire-compatible with existing clients.

Thin adapter: read MailUp-shaped parameters, call the audience use cases, answer HTTP 200 with the bare
integer return code and CRLF. Which account a call is for: the one whose console host the request
names, else the owner of the first list id; then the caller's IP must be on that account's allowlist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.audience import lists as lists_svc
from missiva.audience import recipients as recipients_svc
from missiva.audience import subscriptions as subs_svc
from missiva.audience.enums import Channel, Reason, Source, Status
from missiva.audience.models import MailingList
from missiva.compat.mailup import codes
from missiva.compat.mailup.params import BadRequest, int_list, read_params, truthy
from missiva.errors import DomainError, InvalidEmail, InvalidMobile, NotSubscribed
from missiva.tenancy import service as tenancy
from missiva.web.deps import client_ip

log = logging.getLogger(__name__)
router = APIRouter(tags=["MailUp compatibility"])

Params = dict[str, str]


class CallError(Exception):
    """Stops a call with a MailUp return code."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


@dataclass
class Call:
    """One frontend call: its parameters and where it came from."""

    params: Params
    host: str
    ip: str


def _reply(code: int) -> Response:
    return Response(f"{code}\r\n", media_type="text/plain; charset=utf-8")


# -- shared steps --------------------------------------------------------------------------------


def _account_and_lists(session: Session, call: Call, generic: int) -> tuple[int, list[MailingList]]:
    """Resolve the account, check the caller's IP, and load the named lists (all the account's)."""
    try:
        list_ids = int_list(call.params.get("list"), ",;")
    except ValueError as exc:
        raise CallError(generic, f"List {call.params.get('list')!r} is not a list id") from exc
    account = tenancy.account_by_host(session, call.host) if call.host else None
    account_id = account.id if account else None
    if account_id is None and list_ids:
        account_id = lists_svc.find_list_owner(session, list_ids[0])
    if account_id is None:
        raise CallError(generic, "no account for this host and list")
    if not tenancy.ip_allowed(session, account_id, call.ip):
        raise CallError(codes.IP_NOT_REGISTERED, f"caller {call.ip} is not on the allowlist")
    if not list_ids:
        raise CallError(generic, "List is missing")
    try:
        lists = [lists_svc.get_list(session, account_id, lid) for lid in list_ids]
    except DomainError as exc:
        raise CallError(generic, exc.message) from exc
    guid = call.params.get("listguid")
    if guid and guid.strip().strip("{}").lower() != lists[0].guid.lower():
        raise CallError(generic, "ListGuid does not match the list")
    return account_id, lists


def _fields(call: Call, generic: int, *, forbid_double_dash: bool = False) -> dict[str, str]:
    """csvFldNames/csvFldValues as {name: value}; counts must match (a `;` inside a value breaks it)."""
    names_raw, values_raw = call.params.get("csvfldnames"), call.params.get("csvfldvalues")
    if names_raw is None and values_raw is None:
        return {}
    names = (names_raw or "").split(";")
    values = (values_raw or "").split(";")
    if len(names) != len(values):
        raise CallError(generic, f"csvFldNames has {len(names)} names but csvFldValues {len(values)} values")
    out = {}
    for name, value in zip(names, values, strict=True):
        if not name.strip():
            raise CallError(generic, "empty field name in csvFldNames")
        if forbid_double_dash and "--" in value:
            raise CallError(generic, "a field value contains '--'")
        out[name.strip()] = value.strip()
    return out


def _identity(call: Call) -> tuple[str | None, str | None]:
    return call.params.get("email"), call.params.get("sms")


def _channels(email: str | None, sms: str | None) -> list[Channel]:
    return ([Channel.EMAIL] if email else []) + ([Channel.SMS] if sms else [])


# -- the calls -----------------------------------------------------------------------------------


def xml_subscribe(session: Session, call: Call) -> int:
    """xmlSubscribe: 0 done, 1 error, 2 invalid email or mobile, 3 already subscribed."""
    generic = codes.Subscribe.GENERIC_ERROR
    account_id, lists = _account_and_lists(session, call, generic)
    email, sms = _identity(call)
    if not email and not sms:
        return codes.Subscribe.INVALID_ADDRESS
    fields = _fields(call, generic)
    try:
        group_ids = int_list(call.params.get("group"))
    except ValueError:
        return generic
    confirm = truthy(call.params.get("confirm"), default=True)
    try:
        groups_by_list: dict[int, list[int]] = {}
        for gid in group_ids:
            group = lists_svc.get_group(session, account_id, gid)
            groups_by_list.setdefault(group.list_id, []).append(gid)
        if set(groups_by_list) - {lst.id for lst in lists}:
            return generic
        outcomes = []
        for lst in lists:
            for channel in _channels(email, sms):
                result = subs_svc.subscribe(
                    session,
                    account_id,
                    lst.id,
                    email=email,
                    mobile=sms,
                    channel=channel,
                    fields=fields,
                    groups=groups_by_list.get(lst.id, []),
                    double_opt_in=confirm,
                    source=Source.API,
                    consent=subs_svc.Consent(method="mailup_xmlsubscribe", ip=call.params.get("ipaddress")),
                )
                outcomes.append(result.outcome)
    except (InvalidEmail, InvalidMobile):
        session.rollback()
        return codes.Subscribe.INVALID_ADDRESS
    except DomainError as exc:
        session.rollback()
        log.info("xmlSubscribe refused: %s", exc.message)
        return generic
    session.commit()
    if all(o is subs_svc.Outcome.ALREADY_SUBSCRIBED for o in outcomes):
        return codes.Subscribe.ALREADY_SUBSCRIBED
    return codes.Subscribe.DONE


def xml_unsubscribe(session: Session, call: Call) -> int:
    """xmlUnsubscribe: 0 unsubscribed, 1 error, 3 unknown / already unsubscribed / not confirmed."""
    generic = codes.Unsubscribe.GENERIC_ERROR
    account_id, lists = _account_and_lists(session, call, generic)
    email, sms = _identity(call)
    if not email and not sms:
        return generic
    done = 0
    try:
        for lst in lists:
            for channel in _channels(email, sms):
                try:
                    subs_svc.unsubscribe(
                        session,
                        account_id,
                        lst.id,
                        email=email,
                        mobile=sms,
                        channel=channel,
                        reason=Reason.API,
                        source=Source.API,
                    )
                    done += 1
                except NotSubscribed:
                    continue
    except DomainError as exc:
        session.rollback()
        log.info("xmlUnsubscribe refused: %s", exc.message)
        return generic
    session.commit()
    return codes.Unsubscribe.DONE if done else codes.Unsubscribe.NOT_SUBSCRIBED


_CHECK = {
    Status.SUBSCRIBED: codes.Check.SUBSCRIBED,
    Status.UNSUBSCRIBED: codes.Check.UNSUBSCRIBED,
    Status.PENDING: codes.Check.PENDING,
}


def xml_chk_subscriber(session: Session, call: Call) -> int:
    """xmlChkSubscriber: 2 subscribed, 3 unsubscribed, 4 pending, 1 not a recipient or error."""
    account_id, lists = _account_and_lists(session, call, codes.Check.UNKNOWN)
    email, sms = _identity(call)
    if not email and not sms:
        return codes.Check.UNKNOWN
    try:
        sub = subs_svc.status(
            session,
            account_id,
            lists[0].id,
            email=email,
            mobile=sms,
            channel=Channel.EMAIL if email else Channel.SMS,
        )
    except DomainError:
        return codes.Check.UNKNOWN
    return _CHECK.get(Status(sub.status), codes.Check.UNKNOWN) if sub else codes.Check.UNKNOWN


def xml_upd_subscriber(session: Session, call: Call) -> int:
    """xmlUpdSubscriber: 0 updated, 1 error (bad list, not in list, fields mismatch, `--` in a value)."""
    generic = codes.Update.GENERIC_ERROR
    account_id, lists = _account_and_lists(session, call, generic)
    lst = lists[0]
    email, sms = _identity(call)
    if not email and not sms:
        return generic
    fields = _fields(call, generic, forbid_double_dash=True)
    try:
        group_ids = int_list(call.params.get("group"), ";,")
    except ValueError:
        return generic
    replace = truthy(call.params.get("replace"), default=False)
    try:
        ident = recipients_svc.identity(session, account_id, email, sms)
        recipient = recipients_svc.find(session, account_id, ident)
        if recipient is None or not any(
            s.list_id == lst.id for s in recipients_svc.subscriptions_of(session, recipient.id)
        ):
            return generic
        for gid in group_ids:
            lists_svc.get_group(session, account_id, gid, list_id=lst.id)
        recipients_svc.update_profile(
            session,
            account_id,
            recipient,
            source=Source.API,
            fields=fields,
            groups=group_ids,
            replace_groups_in=[lst.id] if replace else (),
            list_id=lst.id,
        )
    except DomainError as exc:
        session.rollback()
        log.info("xmlUpdSubscriber refused: %s", exc.message)
        return generic
    session.commit()
    return codes.Update.DONE


def ws_activation(session: Session, call: Call) -> str:
    """WSActivation: register the caller's IP for the account of `usr`/`pwd`; an XML answer."""
    p = call.params
    missing = (
        (2 if not p.get("ws_name") else 0)
        | (4 if not p.get("usr") else 0)
        | (8 if not p.get("pwd") else 0)
        | (16 if not p.get("nl_url") else 0)
    )
    code: int
    if missing:
        code = -missing
    else:
        user = tenancy.authenticate_user(session, p["usr"], p["pwd"])
        if user is None:
            code = (
                codes.Activation.BAD_PASSWORD
                if tenancy.find_user(session, p["usr"])
                else codes.Activation.INVALID_ACCOUNT
            )
        else:
            account = tenancy.get_account(session, user.account_id)
            url_host = p["nl_url"].split("://")[-1].split("/")[0]
            if account.status != "active":
                code = codes.Activation.SUSPENDED
            elif account.host and tenancy.normalise_host(url_host) != account.host:
                code = codes.Activation.INVALID_ACCOUNT
            elif tenancy.ip_allowed(session, account.id, call.ip):
                code = codes.Activation.ALREADY_ACTIVE
            else:
                try:
                    tenancy.add_allowed_ip(session, account.id, call.ip, note=f"WSActivation {p['ws_name']}")
                    session.commit()
                    code = codes.Activation.OK
                except DomainError:
                    session.rollback()
                    code = codes.Activation.IP_REGISTRATION_ERROR
    now = datetime.now(UTC).strftime("%d/%m/%Y %H:%M:%S")
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<mailupMessage><mailupBody><ReturnCode>{int(code)}</ReturnCode>"
        f"<WS_Activation><WS_Name>{escape(p.get('ws_name', ''))}</WS_Name>"
        f"<DateOfRequest>{now}</DateOfRequest><User>{escape(p.get('usr', ''))}</User></WS_Activation>"
        "</mailupBody></mailupMessage>"
    )


PAGES: dict[str, Callable[[Session, Call], int]] = {
    "xmlsubscribe": xml_subscribe,
    "xmlunsubscribe": xml_unsubscribe,
    "xmlchksubscriber": xml_chk_subscriber,
    "xmlupdsubscriber": xml_upd_subscriber,
}
_GENERIC = {"xmlsubscribe": 1, "xmlunsubscribe": 1, "xmlchksubscriber": 1, "xmlupdsubscriber": 1}


def _page_name(page: str) -> str:
    name = page.lower()
    for suffix in (".aspx", ".xml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _run(name: str, call: Call) -> int | str:
    with runtime.database().sessionmaker() as session:
        if name == "wsactivation":
            return ws_activation(session, call)
        try:
            return PAGES[name](session, call)
        except CallError as exc:
            session.rollback()
            log.info("%s answered %s: %s", name, exc.code, exc)
            return exc.code


@router.api_route("/frontend/{page}", methods=["GET", "POST"], include_in_schema=False)
async def frontend(page: str, request: Request) -> Response:
    """Dispatch `/frontend/<Page>.aspx` (any case, `.aspx`, `.xml` or no suffix)."""
    name = _page_name(page)
    if name not in PAGES and name != "wsactivation":
        return Response("Not Found", status_code=404, media_type="text/plain")
    try:
        params = await read_params(request)
    except BadRequest:
        return _reply(_GENERIC.get(name, codes.Activation.UNRECOGNISED))
    call = Call(params=params, host=request.headers.get("host", ""), ip=client_ip(request))
    result = await run_in_threadpool(_run, name, call)
    if isinstance(result, str):
        return Response(result, media_type="text/xml; charset=utf-8")
    return _reply(result)
