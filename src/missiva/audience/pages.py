"""Recipient-facing pages: the double opt-in confirmation link, in the list's language."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.audience import subscriptions as subs_svc
from missiva.audience.confirmation import read_token
from missiva.errors import NotFound
from missiva.i18n import gettext_for
from missiva.web.deps import client_ip, get_session

router = APIRouter(tags=["public pages"], include_in_schema=False)
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def render_page(language: str, title: str, message: str, status: int = 200) -> HTMLResponse:
    """A minimal, localised page."""
    html = _templates.get_template("page.html").render(lang=language, title=title, message=message)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _confirm(token: str, request: Request, session: Session) -> HTMLResponse:
    lang = _accepted_language(request)
    parsed = read_token(runtime.settings().secret_key, token)
    if parsed is not None:
        try:
            result = subs_svc.confirm(session, parsed[0], parsed[1], ip=client_ip(request))
            session.commit()
        except NotFound:
            session.rollback()
        else:
            _ = gettext_for(result.list.language)
            text = (
                _("Thank you: you are now subscribed to %(list)s.")
                if result.newly_confirmed
                else _("You were already subscribed to %(list)s.")
            ) % {"list": result.list.name}
            return render_page(result.list.language, _("Subscription confirmed"), text)
    _ = gettext_for(lang)
    return render_page(
        lang,
        _("Link not valid"),
        _("This confirmation link is not valid or has expired. Please subscribe again."),
        404,
    )


def _accepted_language(request: Request) -> str:
    header = request.headers.get("accept-language", "")
    return "it" if header.lower().startswith("it") else "en"


@router.get("/c/{token}", response_class=HTMLResponse)
def confirm_get(token: str, request: Request, session: Session = Depends(get_session)) -> HTMLResponse:
    """Confirm a pending subscription from the link in the confirmation mail and say so."""
    return _confirm(token, request, session)


@router.post("/c/{token}", response_class=HTMLResponse)
def confirm_post(token: str, request: Request, session: Session = Depends(get_session)) -> HTMLResponse:
    """The same confirmation, for forms that POST."""
    return _confirm(token, request, session)
