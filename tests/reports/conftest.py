"""Helpers for the tracking tests: render a tracked message for recipients and pull its URLs out."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

from missiva.messages.content import MessageContent
from missiva.messages.mime import MessageSkeleton, Recipient, SendingDomain
from missiva.messages.templating import FieldMap
from missiva.reports import plan

_CLICK = re.compile(r"https?://[^\s\"'<>()]+/t/c/[A-Za-z0-9_-]+")
_PIXEL = re.compile(r"https?://[^\s\"'<>()]+/t/o/[A-Za-z0-9_-]+\.gif")


@dataclass
class Received:
    """One rendered message, parsed as a mail client would, with its tracked URLs."""

    message: EmailMessage
    html: str
    text: str
    clicks: list[str]
    text_clicks: list[str]
    pixel: str | None


def parse(data: bytes) -> Received:
    """A raw message as a recipient sees it: decoded parts and the tracking URLs in them."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    html = html_part.get_content() if html_part is not None else ""
    text = text_part.get_content() if text_part is not None else ""
    pixels = _PIXEL.findall(html)
    return Received(
        message, html, text, _CLICK.findall(html), _CLICK.findall(text), pixels[0] if pixels else None
    )


def path_of(url: str) -> str:
    """The path of a tracking URL, to request it from the test client."""
    return urlsplit(url).path


def render_tracked(
    session,
    *,
    mailing_id: int,
    account_id: int,
    html: str,
    recipients: list[tuple[int, str]],
    text: str | None = None,
) -> dict[int, Received]:
    """Prepare tracking for a mailing and render it for (recipient id, address) pairs."""
    tracking = plan.prepare_mailing(
        session, mailing_id=mailing_id, account_id=account_id, html=html, text=text
    )
    assert tracking is not None
    content = MessageContent(
        subject="News",
        html=tracking.content.html,
        text=tracking.content.text,
        from_address="news@shop.example",
    )
    skeleton = MessageSkeleton(
        content,
        mailing_id=mailing_id,
        domain=SendingDomain("shop.example", verp_secret=b"test-verp"),
        fields=FieldMap({"nome": 1}),
        link_values=tracking.link_values,
    )
    out = {}
    for recipient_id, address in recipients:
        rendered = skeleton.render(
            Recipient(recipient_id, address, "https://missiva.test/u/x", "unsubscribe+x@bounces.shop.example")
        )
        out[recipient_id] = parse(rendered.data)
    return out


# The sending engine's fixtures: a recording SMTP sink, https settings, an account with a list.
from tests.delivery.conftest import _sink_server, sending, shop, sink  # noqa: E402, F401
