"""Double opt-in: signed confirmation links and the localised confirmation message."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from itsdangerous import BadSignature, URLSafeSerializer

from missiva.audience.models import MailingList
from missiva.config import Settings
from missiva.i18n import gettext_for

_SALT = "missiva.confirm.v1"


def make_token(secret: str, subscription_id: int, requested_at: datetime) -> str:
    """A link token naming one confirmation request; unforgeable without the installation secret."""
    stamp = round(requested_at.timestamp() * 1_000_000)
    return URLSafeSerializer(secret, salt=_SALT).dumps([subscription_id, stamp])


def read_token(secret: str, token: str) -> tuple[int, datetime] | None:
    """(subscription id, request time) from a genuine token, None for a forged or garbled one."""
    try:
        sub_id, stamp = URLSafeSerializer(secret, salt=_SALT).loads(token)
        return int(sub_id), datetime.fromtimestamp(int(stamp) / 1_000_000, UTC)
    except (BadSignature, ValueError, TypeError):
        return None


def confirmation_url(settings: Settings, token: str) -> str:
    """The public link a recipient follows to confirm."""
    return f"{settings.base_url}/c/{token}"


def build_message(settings: Settings, lst: MailingList, to: str, token: str) -> EmailMessage:
    """The confirmation request in the list's language, from the list's sender."""
    _ = gettext_for(lst.language)
    url = confirmation_url(settings, token)
    msg = EmailMessage()
    msg["Subject"] = _("Please confirm your subscription to %(list)s") % {"list": lst.name}
    sender = formataddr((lst.sender_name, lst.sender_email)) if lst.sender_email else settings.mail_from
    msg["From"] = sender
    msg["To"] = to
    msg["Message-ID"] = make_msgid(domain="missiva.local")
    msg["Auto-Submitted"] = "auto-generated"
    body = "\n\n".join(
        [
            _("Hello,"),
            _("you asked to receive %(list)s. Please confirm by opening this link:") % {"list": lst.name},
            url,
            _("If you did not ask for this, ignore this message: you will not be subscribed."),
        ]
    )
    msg.set_content(body + "\n")
    msg["Content-Language"] = lst.language
    return msg
