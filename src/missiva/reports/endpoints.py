"""Public tracking routes: the open pixel and the click redirect.

``GET /t/o/<token>.gif`` answers a 1x1 transparent GIF, ``GET /t/c/<token>`` a 302 to the link's
original URL. A token that is not genuine, or names a link the mailing does not have, gets 404 and
records nothing. HEAD is answered like GET (link checkers use it) and recorded as a bot.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from missiva.reports import recording
from missiva.reports.classify import classify_request
from missiva.reports.tokens import InvalidToken
from missiva.web.deps import client_ip, get_session

router = APIRouter(tags=["tracking"], include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_NOT_FOUND = Response(status_code=404, content=b"not found\n", media_type="text/plain", headers=_NO_STORE)


def _record(request: Request, session: Session, token: str, *, want_open: bool) -> str | Response | None:
    try:
        parsed = recording.read_token(token)
        if parsed.is_open != want_open:
            raise InvalidToken("token of the other kind")
        verdict = classify_request(request.headers.get("user-agent"), client_ip(request), request.method)
        return recording.record(session, parsed, verdict)
    except (InvalidToken, recording.UnknownTarget):
        return _NOT_FOUND


@router.api_route("/t/o/{token}.gif", methods=["GET", "HEAD"])
def open_pixel(token: str, request: Request, session: Session = Depends(get_session)) -> Response:
    """The open pixel; records an open."""
    outcome = _record(request, session, token, want_open=True)
    if isinstance(outcome, Response):
        return outcome
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.api_route("/t/c/{token}", methods=["GET", "HEAD"])
def click(token: str, request: Request, session: Session = Depends(get_session)) -> Response:
    """A tracked link; records a click and redirects to the URL that was in the message."""
    outcome = _record(request, session, token, want_open=False)
    if isinstance(outcome, Response):
        return outcome
    assert outcome is not None
    location = quote(outcome, safe=_URL_SAFE)  # an IRI's non-ASCII characters, percent-encoded
    return Response(
        status_code=302, headers={"Location": location, "Referrer-Policy": "no-referrer", **_NO_STORE}
    )
