"""REST routes of reports and tracking settings.

GET /api/v1/reports/mailings/{id}              one mailing (?format=csv for CSV)
GET /api/v1/reports/mailings?ids=1,2,3         side by side (?format=csv: one row per mailing)
GET /api/v1/reports/mailings/{id}/events.csv   raw opens and clicks, streamed
GET /api/v1/reports/recipients/{id}            one recipient (MailUp ReportByUser)
GET /api/v1/reports/recipients?email=...       the same, by address
GET/PUT /api/v1/tracking/settings              account tracking defaults and privacy mode
PUT /api/v1/tracking/mailings/{id}             opens / clicks on or off for a mailing not yet started
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.errors import InvalidInput
from missiva.reports import csv_export, plan, service
from missiva.web.deps import Caller, get_session, require_caller

router = APIRouter(prefix="/api/v1", tags=["reports"])
Format = Literal["json", "csv"]


class PreferencesIn(BaseModel):
    privacy_mode: bool | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None


class PreferencesOut(BaseModel):
    privacy_mode: bool
    track_opens: bool
    track_clicks: bool


class MailingTrackingIn(BaseModel):
    opens: bool | None = None
    clicks: bool | None = None


class MailingTrackingOut(BaseModel):
    mailing_id: int
    opens: bool
    clicks: bool
    privacy_mode: bool


def _csv(body: str, filename: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _ids(raw: str) -> list[int]:
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInput(f"ids must be comma-separated mailing ids, got {raw!r}", field="ids") from exc
    return list(dict.fromkeys(ids))


@router.get("/reports/mailings")
def mailings_side_by_side(
    ids: str = Query(..., description="comma-separated mailing ids, e.g. 1,2,3"),
    format: Format = "json",
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
) -> Any:
    """Several mailings' reports in the order asked, to compare them."""
    reports = service.mailing_reports(session, caller.account_id, _ids(ids))
    if format == "csv":
        return _csv(csv_export.mailing_reports_csv(reports), "mailings.csv")
    return {"mailings": reports}


@router.get("/reports/mailings/{mailing_id}")
def mailing_report(
    mailing_id: int,
    format: Format = "json",
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
) -> Any:
    """What happened to one mailing: audience, suppressions, delivery, bounces, unsubscribes, opens..."""
    report = service.mailing_report(session, caller.account_id, mailing_id)
    if format == "csv":
        return _csv(csv_export.mailing_reports_csv([report]), f"mailing-{mailing_id}.csv")
    return report


@router.get("/reports/mailings/{mailing_id}/events.csv")
def mailing_events(
    mailing_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> StreamingResponse:
    """Every open and click of the mailing as CSV, streamed (flags say which were proxies or bots)."""
    service.mailing_report(session, caller.account_id, mailing_id)  # ownership check and roll-up
    session.close()
    return StreamingResponse(
        csv_export.stream_events(runtime.database(), mailing_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="mailing-{mailing_id}-events.csv"'},
    )


@router.get("/reports/recipients/{recipient_id}")
def recipient_report(
    recipient_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """One recipient: subscriptions, each mailing received with its outcome, opens and clicks."""
    return service.recipient_report(session, caller.account_id, recipient_id=recipient_id)


@router.get("/reports/recipients")
def recipient_report_by_email(
    email: str, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """The recipient report for an email address."""
    return service.recipient_report(session, caller.account_id, email=email)


@router.get("/tracking/settings", response_model=PreferencesOut)
def get_preferences(
    caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> PreferencesOut:
    """The account's tracking defaults and privacy mode."""
    prefs = plan.preferences(session, caller.account_id)
    return PreferencesOut(**prefs.__dict__)


@router.put("/tracking/settings", response_model=PreferencesOut)
def put_preferences(
    body: PreferencesIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> PreferencesOut:
    """Change the defaults; privacy mode applies to mailings that start from now on."""
    prefs = plan.set_preferences(session, caller.account_id, **body.model_dump())
    session.commit()
    return PreferencesOut(**prefs.__dict__)


@router.put("/tracking/mailings/{mailing_id}", response_model=MailingTrackingOut)
def put_mailing_tracking(
    mailing_id: int,
    body: MailingTrackingIn,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
) -> MailingTrackingOut:
    """Turn opens or clicks tracking on or off for a mailing that has not started (409 after)."""
    service.mailing_exists(session, caller.account_id, mailing_id)
    row = plan.configure_mailing(session, caller.account_id, mailing_id, opens=body.opens, clicks=body.clicks)
    session.commit()
    return MailingTrackingOut(
        mailing_id=mailing_id, opens=row.track_opens, clicks=row.track_clicks, privacy_mode=row.privacy_mode
    )
