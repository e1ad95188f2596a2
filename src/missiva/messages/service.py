"""Use cases for messages: create, change, check, preview; and the snapshot a mailing sends.

A message is checked when it is saved: its templates are compiled and rendered once for an empty
recipient, so a bad merge tag, a Jinja2 syntax error or a sandbox escape is refused with the part, line
and tag at fault instead of failing a mailing later.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.lists import get_list, list_fields
from missiva.audience.models import MailingList
from missiva.delivery.sms import content as sms_content
from missiva.errors import InvalidInput, NotFound
from missiva.messages.content import Attachment, ContentError, MessageContent
from missiva.messages.mime import LinkValues, MessageError, MessageSkeleton, Recipient, SendingDomain
from missiva.messages.models import Message
from missiva.messages.templating import FieldMap, TemplateError

MAX_ATTACHMENTS_BYTES = 10 * 1024 * 1024
_EDITABLE = (
    "name",
    "subject",
    "html",
    "text",
    "from_name",
    "from_email",
    "reply_to",
    "preheader",
    "mode",
    "sender_id",
    "opt_out",
)
_CHECK_DOMAIN = SendingDomain("example.invalid", verp_secret=b"check")


class TemplateInvalid(InvalidInput):
    """A message template does not compile or render; the message names part, line and tag."""

    code = "template_invalid"

    def __init__(self, error: TemplateError) -> None:
        super().__init__(str(error), field=error.part)
        self.line = error.line
        self.tag = error.tag


def field_map(session: Session, account_id: int) -> FieldMap:
    """The account's field names and numbers, as merge tags and Jinja2 variables see them."""
    return FieldMap({f.name: f.number for f in list_fields(session, account_id)})


def check_attachments(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    total = 0
    for index, item in enumerate(raw or []):
        where = f"attachments.{index}"
        try:
            data = base64.b64decode(item["content"], validate=True)
            name = str(item["filename"]).strip()
        except (KeyError, TypeError, binascii.Error) as exc:
            raise InvalidInput(f"attachment needs filename and base64 content ({exc})", field=where) from exc
        if not name:
            raise InvalidInput("attachment without a file name", field=where)
        total += len(data)
        if total > MAX_ATTACHMENTS_BYTES:
            raise InvalidInput(f"attachments exceed {MAX_ATTACHMENTS_BYTES} bytes", field=where)
        out.append(
            {
                "filename": name,
                "content_type": str(item.get("content_type") or "application/octet-stream"),
                "content": item["content"],
            }
        )
    return out


def content_of(message: Message, lst: MailingList | None) -> dict[str, Any]:
    """The snapshot a mailing keeps of its message (sender falls back to the list's defaults)."""
    return {
        "subject": message.subject,
        "html": message.html,
        "text": message.text,
        "from_name": message.from_name or (lst.sender_name if lst else ""),
        "from_email": message.from_email or (lst.sender_email if lst else ""),
        "reply_to": message.reply_to,
        "preheader": message.preheader,
        "mode": message.mode,
        "attachments": list(message.attachments or []),
    }


def message_content(snapshot: dict[str, Any]) -> MessageContent:
    """A snapshot as the renderer's MessageContent; raises InvalidInput when no sender is known."""
    if not snapshot.get("from_email"):
        raise InvalidInput("the message has no sender address and its list none either", field="from_email")
    return MessageContent(
        subject=snapshot["subject"],
        html=snapshot.get("html"),
        text=snapshot.get("text"),
        from_address=snapshot["from_email"],
        from_name=snapshot.get("from_name") or "",
        reply_to=snapshot.get("reply_to"),
        preheader=snapshot.get("preheader"),
        mode=snapshot.get("mode") or "merge",
        attachments=tuple(
            Attachment(a["filename"], base64.b64decode(a["content"]), a["content_type"])
            for a in snapshot.get("attachments") or []
        ),
    )


def compile_snapshot(
    snapshot: dict[str, Any],
    fields: FieldMap,
    *,
    mailing_id: int = 0,
    domain: SendingDomain = _CHECK_DOMAIN,
    link_values: LinkValues | None = None,
) -> MessageSkeleton:
    """Compile a snapshot; template and content problems become InvalidInput naming what is wrong.

    `link_values` fills the link slots tracking put into the content (`missiva.reports.plan`).
    """
    try:
        return MessageSkeleton(
            message_content(snapshot),
            mailing_id=mailing_id,
            domain=domain,
            fields=fields,
            link_values=link_values,
        )
    except TemplateError as exc:
        raise TemplateInvalid(exc) from None
    except (ContentError, MessageError) as exc:
        raise InvalidInput(str(exc), field="message") from None


def render_sample(
    skeleton: MessageSkeleton, email_address: str, values: dict[int, object], recipient_id: int = 0
) -> EmailMessage:
    """Render one recipient and parse it back (preview, and the save-time check)."""
    try:
        rendered = skeleton.render(
            Recipient(
                id=recipient_id,
                email=email_address,
                unsubscribe_url="https://example.invalid/u/preview",
                unsubscribe_mailto="unsubscribe+preview@example.invalid",
                fields=values,
            )
        )
    except TemplateError as exc:
        raise TemplateInvalid(exc) from None
    except MessageError as exc:
        raise InvalidInput(str(exc), field="recipient") from None
    parsed = email.message_from_bytes(rendered.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def check(session: Session, account_id: int, message: Message) -> None:
    """Compile and render the message once for an empty recipient; raises TemplateInvalid/InvalidInput."""
    if message.channel == "sms":
        sms_content.check_message(session, field_map(session, account_id), message)
        return
    lst = session.get(MailingList, message.list_id)
    snapshot = content_of(message, lst)
    if not snapshot["from_email"]:
        snapshot["from_email"] = "check@example.invalid"
    skeleton = compile_snapshot(snapshot, field_map(session, account_id))
    render_sample(skeleton, "someone@example.invalid", {})


def _apply(message: Message, values: dict[str, Any]) -> None:
    nullable = ("reply_to", "preheader", "text", "html", "sender_id")
    for key in _EDITABLE:
        if key in values and (values[key] is not None or key in nullable):
            setattr(message, key, values[key])
    if "attachments" in values:
        message.attachments = check_attachments(values["attachments"])
    if message.mode not in ("merge", "jinja"):
        raise InvalidInput("mode must be 'merge' or 'jinja'", field="mode")
    if message.channel == "sms":
        return  # checked by sms_content.check_message
    if not (message.subject or "").strip():
        raise InvalidInput("a subject is required", field="subject")
    if not message.html and not message.text:
        raise InvalidInput("a message needs html, text or both", field="html")


def create(session: Session, account_id: int, list_id: int, values: dict[str, Any]) -> Message:
    """Create a checked message for a list."""
    get_list(session, account_id, list_id)
    channel = values.get("channel") or "email"
    if channel not in ("email", "sms"):
        raise InvalidInput("channel must be 'email' or 'sms'", field="channel")
    message = Message(
        account_id=account_id,
        list_id=list_id,
        subject="",
        mode="merge",
        attachments=[],
        channel=channel,
        opt_out=False,
    )
    _apply(message, values)
    check(session, account_id, message)
    session.add(message)
    session.flush()
    return message


def get(session: Session, account_id: int, message_id: int) -> Message:
    """One message of the account; NotFound otherwise (also for another account's message)."""
    message = session.get(Message, message_id)
    if message is None or message.account_id != account_id:
        raise NotFound(f"message {message_id} not found", field="message_id")
    return message


def update(session: Session, account_id: int, message_id: int, values: dict[str, Any]) -> Message:
    """Change a message; the result is checked like a new one."""
    message = get(session, account_id, message_id)
    _apply(message, values)
    check(session, account_id, message)
    session.flush()
    return message


def delete(session: Session, account_id: int, message_id: int) -> None:
    """Delete a message (mailings keep their own snapshot)."""
    session.delete(get(session, account_id, message_id))


def list_for(session: Session, account_id: int, list_id: int) -> list[Message]:
    """The messages of a list."""
    get_list(session, account_id, list_id)
    return list(
        session.scalars(
            select(Message)
            .where(Message.account_id == account_id, Message.list_id == list_id)
            .order_by(Message.id)
        )
    )


def preview(
    session: Session, account_id: int, message_id: int, *, recipient_id: int | None = None
) -> dict[str, Any]:
    """The message as one recipient (or an empty sample recipient) would see it."""
    from missiva.audience import recipients

    message = get(session, account_id, message_id)
    lst = session.get(MailingList, message.list_id)
    address, values = "recipient@example.com", {}
    mobile = ""
    if recipient_id is not None:
        person = recipients.get(session, account_id, recipient_id)
        address = person.email or address
        mobile = person.mobile or ""
        values = {int(k): v for k, v in (person.fields or {}).items() if str(k).isdigit()}
    if message.channel == "sms":
        fields = field_map(session, account_id)
        email = address if recipient_id is not None else ""
        return sms_content.preview(session, fields, message, mobile=mobile, email=email, values=values)
    snapshot = content_of(message, lst)
    snapshot["from_email"] = snapshot["from_email"] or "sender@example.invalid"
    parsed = render_sample(compile_snapshot(snapshot, field_map(session, account_id)), address, values)
    html_part = parsed.get_body(("html",))
    text_part = parsed.get_body(("plain",))
    return {
        "channel": "email",
        "subject": str(parsed["Subject"]),
        "from": str(parsed["From"]),
        "to": address,
        "html": html_part.get_content() if html_part is not None else None,
        "text": text_part.get_content() if text_part is not None else None,
    }
