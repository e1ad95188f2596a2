"""REST routes of the sending domain: mailings, transactional send, suppression list, one-click pages."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.orm import Session

from missiva.audience.pages import render_page
from missiva.delivery import mailings, one_click, suppression, transactional
from missiva.delivery.models import Mailing, MailingKind
from missiva.delivery.schemas import (
    Counters,
    ImportOut,
    LedgerRowOut,
    MailingIn,
    MailingOut,
    SendIn,
    SendOut,
    StartIn,
    SuppressionIn,
    SuppressionOut,
    SuppressionPage,
)
from missiva.errors import InvalidInput
from missiva.i18n import gettext_for
from missiva.web.deps import Caller, get_session, require_caller

router = APIRouter(prefix="/api/v1", tags=["sending"])
pages = APIRouter(tags=["public pages"], include_in_schema=False)


def mailing_out(m: Mailing) -> MailingOut:
    """The API view of a mailing with its live counters."""
    return MailingOut(
        id=m.id,
        kind=m.kind,
        channel=m.channel,
        name=m.name,
        list_id=m.list_id,
        message_id=m.message_id,
        status=m.status,
        audience=m.audience or {},
        timezone=m.timezone,
        scheduled_at=m.scheduled_at,
        started_at=m.started_at,
        finished_at=m.finished_at,
        per_minute=m.per_minute,
        per_hour=m.per_hour,
        per_domain_per_minute=m.per_domain_per_minute,
        counters=Counters(
            audience=m.audience_size,
            queued=m.queued,
            sent=m.sent,
            deferred=m.deferred,
            hard_bounced=m.hard_bounced,
            failed=m.failed,
            uncertain=m.uncertain,
            suppressed=m.suppressed,
            cancelled=m.cancelled_count,
            suppressed_by_reason=dict(m.suppressed_by_reason or {}),
            segments=m.segments,
            delivered=m.delivered,
            expired=m.expired,
            undeliverable=m.undeliverable,
            rejected=m.rejected,
            soft_bounced=m.soft_bounced,
            complaints=m.complaints,
        ),
    )


def _fresh(session: Session, caller: Caller, mailing_id: int) -> MailingOut:
    session.expire_all()
    return mailing_out(mailings.get(session, caller.account_id, mailing_id))


# -- mailings ------------------------------------------------------------------------------------


@router.post("/mailings", response_model=MailingOut, status_code=201)
def create_mailing(
    body: MailingIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Create a mailing (a draft; `start` or `scheduled_at` starts or schedules it at once)."""
    values = body.model_dump(exclude={"start", "scheduled_at"})
    values["audience"] = body.audience.model_dump(exclude_defaults=True)
    mailing = mailings.create(session, caller.account_id, values)
    if body.start or body.scheduled_at:
        mailings.start(session, caller.account_id, mailing.id, at=body.scheduled_at)
    session.commit()
    return _fresh(session, caller, mailing.id)


@router.get("/mailings", response_model=list[MailingOut])
def get_mailings(
    kind: str = Query(MailingKind.CAMPAIGN),
    limit: int = Query(100, ge=1, le=1000),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """The account's mailings, newest first."""
    return [
        mailing_out(m) for m in mailings.list_mailings(session, caller.account_id, kind=kind, limit=limit)
    ]


@router.get("/mailings/{mailing_id}", response_model=MailingOut)
def get_mailing(
    mailing_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """One mailing with its live counters."""
    return mailing_out(mailings.get(session, caller.account_id, mailing_id))


@router.post("/mailings/{mailing_id}/start", response_model=MailingOut)
def start_mailing(
    mailing_id: int,
    body: StartIn | None = None,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Start now, or schedule (`scheduled_at`; without an offset it is read in the mailing's time zone)."""
    mailings.start(session, caller.account_id, mailing_id, at=body.scheduled_at if body else None)
    session.commit()
    return _fresh(session, caller, mailing_id)


@router.post("/mailings/{mailing_id}/pause", response_model=MailingOut)
def pause_mailing(
    mailing_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Pause: no new recipient is started; messages in flight finish."""
    mailings.pause(session, caller.account_id, mailing_id)
    session.commit()
    return _fresh(session, caller, mailing_id)


@router.post("/mailings/{mailing_id}/resume", response_model=MailingOut)
def resume_mailing(
    mailing_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Resume a paused mailing."""
    mailings.resume(session, caller.account_id, mailing_id)
    session.commit()
    return _fresh(session, caller, mailing_id)


@router.post("/mailings/{mailing_id}/cancel", response_model=MailingOut)
def cancel_mailing(
    mailing_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Cancel: recipients not yet sent to are never sent to."""
    mailings.cancel(session, caller.account_id, mailing_id)
    session.commit()
    return _fresh(session, caller, mailing_id)


@router.post("/mailings/{mailing_id}/resend-uncertain", response_model=MailingOut)
def resend_uncertain(
    mailing_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Send again to the rows whose fate a crash left unknown (they may receive it twice)."""
    mailings.resend_uncertain(session, caller.account_id, mailing_id)
    session.commit()
    return _fresh(session, caller, mailing_id)


@router.get("/mailings/{mailing_id}/ledger", response_model=list[LedgerRowOut])
def get_ledger(
    mailing_id: int,
    state: str | None = None,
    after: int = 0,
    limit: int = Query(100, ge=1, le=1000),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """The mailing's ledger rows (recipient, state, server reply), keyset-paged by `after`."""
    return mailings.ledger_page(
        session, caller.account_id, mailing_id, state=state, after_id=after, limit=limit
    )


# -- transactional -------------------------------------------------------------------------------


def _send_out(session: Session, caller: Caller, mailing_id: int) -> SendOut:
    session.expire_all()
    mailing, row = transactional.status(session, caller.account_id, mailing_id)
    return SendOut(
        id=mailing.id,
        channel=mailing.channel,
        status=row.state,
        delivery=row.delivery,
        reason=row.reason,
        message_id=row.message_ref,
        reply_code=row.reply_code,
        reply_text=row.reply_text,
    )


@router.post("/send", response_model=SendOut, status_code=202)
def send(body: SendIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)):
    """Send one message to one address (or one SMS to one number) now, with the rules of mailings."""
    mailing, _row = transactional.send(session, caller.account_id, body.model_dump())
    session.commit()
    return _send_out(session, caller, mailing.id)


@router.get("/send/{send_id}", response_model=SendOut)
def get_send(send_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)):
    """What happened to a transactional send."""
    return _send_out(session, caller, send_id)


# -- suppression list ----------------------------------------------------------------------------


@router.get("/suppressions", response_model=SuppressionPage)
def get_suppressions(
    reason: str | None = None,
    after: int = 0,
    limit: int = Query(100, ge=1, le=1000),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """The suppression list in pages (`after` = the last id seen)."""
    rows = suppression.page(session, caller.account_id, reason=reason, after_id=after, limit=limit)
    return SuppressionPage(
        items=[SuppressionOut.model_validate(r) for r in rows],
        next_after=rows[-1].id if len(rows) == limit else None,
        total=suppression.count(session, caller.account_id),
    )


@router.post("/suppressions", response_model=SuppressionOut, status_code=201)
def add_suppression(
    body: SuppressionIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Suppress an address (201 also when it already was; the first reason stays)."""
    suppression.add(
        session, caller.account_id, body.address, reason=body.reason, source="api", note=body.note
    )
    session.commit()
    return suppression.find(session, caller.account_id, body.address)


@router.delete("/suppressions/{address}", status_code=204)
def remove_suppression(
    address: str, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Allow mail to an address again."""
    suppression.remove(session, caller.account_id, address)
    session.commit()
    return Response(status_code=204)


@router.post("/suppressions/import", response_model=ImportOut)
async def import_suppressions(
    request: Request,
    reason: str = "import",
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Suppress every address of a CSV body (first column, or the column named email)."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the CSV must be UTF-8", field="body") from exc
    result = suppression.import_csv(session, caller.account_id, text.splitlines(), reason=reason)
    session.commit()
    return ImportOut(added=result.added, already=result.already, errors=result.errors or [])


@router.get("/suppressions/export")
def export_suppressions(caller: Caller = Depends(require_caller), session: Session = Depends(get_session)):
    """The whole suppression list as CSV, streamed."""

    def body() -> Iterator[str]:
        yield from suppression.export_csv(session, caller.account_id)

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


# -- one-click unsubscribe (public) --------------------------------------------------------------

_CONFIRM_FORM = (
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">{label}</button></form>'
)


def _invalid(lang: str) -> HTMLResponse:
    _ = gettext_for(lang)
    return render_page(lang, _("Link not valid"), _("This unsubscribe link is not valid."), 404)


@pages.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, session: Session = Depends(get_session)) -> HTMLResponse:
    """The confirm page a person sees when following the link: one button that POSTs."""
    found = one_click.target(session, token)
    lang = found.list.language if found and found.list else "en"
    if found is None:
        return _invalid(lang)
    _ = gettext_for(lang)
    name = found.list.name if found.list else ""
    page = render_page(lang, _("Unsubscribe"), _("Stop receiving these emails?") + f" {name}".rstrip())
    html = page.body.decode().replace("</body>", _CONFIRM_FORM.format(label=_("Unsubscribe")) + "</body>")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@pages.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe_one_click(token: str, session: Session = Depends(get_session)) -> HTMLResponse:
    """RFC 8058: the POST (`List-Unsubscribe=One-Click`) unsubscribes at once, no further step."""
    found = one_click.target(session, token)
    if found is None:
        return _invalid("en")
    one_click.unsubscribe(session, found)
    session.commit()
    lang = found.list.language if found.list else "en"
    _ = gettext_for(lang)
    return render_page(lang, _("Unsubscribed"), _("You will not receive these emails any more."))
