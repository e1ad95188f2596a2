"""REST routes for messages: CRUD per list, preview for a recipient, test send to given addresses."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from missiva.delivery import transactional
from missiva.delivery.models import MailingKind
from missiva.messages import service
from missiva.messages.models import Message
from missiva.messages.schemas import (
    AttachmentOut,
    MessageIn,
    MessageOut,
    MessagePatch,
    PreviewOut,
    TestSendIn,
    TestSendOut,
)
from missiva.web.deps import Caller, get_session, require_caller

router = APIRouter(prefix="/api/v1", tags=["messages"])


def message_out(m: Message) -> MessageOut:
    """The API view of a message (attachments by name and size, not content)."""
    return MessageOut(
        id=m.id,
        list_id=m.list_id,
        channel=m.channel,
        sender_id=m.sender_id,
        opt_out=m.opt_out,
        name=m.name,
        subject=m.subject,
        html=m.html,
        text=m.text,
        from_name=m.from_name,
        from_email=m.from_email,
        reply_to=m.reply_to,
        preheader=m.preheader,
        mode=m.mode,
        attachments=[
            AttachmentOut(
                filename=a["filename"],
                content_type=a["content_type"],
                size=len(base64.b64decode(a["content"])),
            )
            for a in m.attachments or []
        ],
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


@router.get("/lists/{list_id}/messages", response_model=list[MessageOut])
def get_messages(
    list_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """The messages of a list."""
    return [message_out(m) for m in service.list_for(session, caller.account_id, list_id)]


@router.post("/lists/{list_id}/messages", response_model=MessageOut, status_code=201)
def create_message(
    list_id: int,
    body: MessageIn,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Create a message; a template error is a 422 naming the part, line and tag."""
    message = service.create(session, caller.account_id, list_id, body.model_dump())
    session.commit()
    return message_out(message)


@router.get("/messages/{message_id}", response_model=MessageOut)
def get_message(
    message_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """One message."""
    return message_out(service.get(session, caller.account_id, message_id))


@router.patch("/messages/{message_id}", response_model=MessageOut)
def patch_message(
    message_id: int,
    body: MessagePatch,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Change a message (checked again as a whole)."""
    message = service.update(session, caller.account_id, message_id, body.model_dump(exclude_unset=True))
    session.commit()
    return message_out(message)


@router.delete("/messages/{message_id}", status_code=204)
def delete_message(
    message_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
):
    """Delete a message; mailings keep the copy they were sent with."""
    service.delete(session, caller.account_id, message_id)
    session.commit()
    return Response(status_code=204)


@router.get("/messages/{message_id}/preview", response_model=PreviewOut, response_model_by_alias=True)
def preview_message(
    message_id: int,
    recipient_id: int | None = None,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """The message as a given recipient (or a blank sample) would receive it."""
    return service.preview(session, caller.account_id, message_id, recipient_id=recipient_id)


@router.post("/messages/{message_id}/test", response_model=TestSendOut, status_code=202)
def test_send(
    message_id: int,
    body: TestSendIn,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
):
    """Send the message to a few addresses now (the suppression list still applies)."""
    service.get(session, caller.account_id, message_id)
    ids = []
    for address in body.addresses:
        mailing, _row = transactional.send(
            session, caller.account_id, {"to": address, "message_id": message_id}, kind=MailingKind.TEST
        )
        ids.append(mailing.id)
    session.commit()
    out = []
    for mailing_id in ids:
        session.expire_all()
        mailing, row = transactional.status(session, caller.account_id, mailing_id)
        out.append({"id": mailing.id, "to": row.address, "status": row.state, "reason": row.reason})
    return TestSendOut(sends=out)
