"""Native REST routes of the audience domain under /api/v1; thin adapters over the use cases."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from missiva.audience import lists as lists_svc
from missiva.audience import recipients as recipients_svc
from missiva.audience import subscriptions as subs_svc
from missiva.audience.enums import Source, Status
from missiva.audience.models import Recipient
from missiva.audience.schemas import (
    BatchItemOut,
    BatchSubscribeIn,
    BatchSubscribeOut,
    FieldIn,
    FieldOut,
    GroupIn,
    GroupOut,
    GroupPatch,
    ListIn,
    ListOut,
    ListPatch,
    RecipientOut,
    RecipientPage,
    RecipientPatch,
    StatusOut,
    SubscribeIn,
    SubscribeOut,
    SubscriptionOut,
    UnsubscribeIn,
)
from missiva.errors import DomainError
from missiva.web.deps import Caller, CallerDep, SessionDep
from missiva.web.problems import status_of

router = APIRouter(prefix="/api/v1", tags=["audience"])


def recipient_out(session: Session, recipient: Recipient) -> RecipientOut:
    """The API view of a recipient with its groups and subscriptions."""
    subs = recipients_svc.subscriptions_of(session, recipient.id)
    return RecipientOut(
        id=recipient.id,
        email=recipient.email,
        mobile=recipient.mobile,
        fields=dict(recipient.fields or {}),
        groups=recipients_svc.group_ids_of(session, recipient.id),
        subscriptions=[SubscriptionOut.model_validate(s) for s in subs if s.status != "new"],
        created_at=recipient.created_at,
        updated_at=recipient.updated_at,
    )


# -- lists ---------------------------------------------------------------------------------------


@router.get("/lists", response_model=list[ListOut])
def get_lists(caller: CallerDep, session: SessionDep):
    """The account's lists."""
    return lists_svc.list_lists(session, caller.account_id)


@router.post("/lists", response_model=ListOut, status_code=201)
def create_list(body: ListIn, caller: CallerDep, session: SessionDep):
    """Create a list."""
    lst = lists_svc.create_list(session, caller.account_id, **body.model_dump())
    session.commit()
    return lst


@router.get("/lists/{list_id}", response_model=ListOut)
def get_list(list_id: int, caller: CallerDep, session: SessionDep):
    """One list."""
    return lists_svc.get_list(session, caller.account_id, list_id)


@router.patch("/lists/{list_id}", response_model=ListOut)
def patch_list(
    list_id: int,
    body: ListPatch,
    caller: CallerDep,
    session: SessionDep,
):
    """Change a list's name, sender defaults, opt-in mode or language."""
    lst = lists_svc.update_list(session, caller.account_id, list_id, **body.model_dump(exclude_unset=True))
    session.commit()
    return lst


@router.delete("/lists/{list_id}", status_code=204)
def delete_list(list_id: int, caller: CallerDep, session: SessionDep):
    """Delete a list, its groups and subscriptions."""
    lists_svc.delete_list(session, caller.account_id, list_id)
    session.commit()
    return Response(status_code=204)


# -- groups --------------------------------------------------------------------------------------


@router.get("/lists/{list_id}/groups", response_model=list[GroupOut])
def get_groups(list_id: int, caller: CallerDep, session: SessionDep):
    """The groups of a list."""
    return lists_svc.list_groups(session, caller.account_id, list_id)


@router.post("/lists/{list_id}/groups", response_model=GroupOut, status_code=201)
def create_group(
    list_id: int,
    body: GroupIn,
    caller: CallerDep,
    session: SessionDep,
):
    """Create a group in a list."""
    group = lists_svc.create_group(session, caller.account_id, list_id, body.name, body.notes)
    session.commit()
    return group


@router.get("/groups/{group_id}", response_model=GroupOut)
def get_group(group_id: int, caller: CallerDep, session: SessionDep):
    """One group."""
    return lists_svc.get_group(session, caller.account_id, group_id)


@router.patch("/groups/{group_id}", response_model=GroupOut)
def patch_group(
    group_id: int,
    body: GroupPatch,
    caller: CallerDep,
    session: SessionDep,
):
    """Rename a group or change its notes."""
    group = lists_svc.update_group(
        session, caller.account_id, group_id, **body.model_dump(exclude_unset=True)
    )
    session.commit()
    return group


@router.delete("/groups/{group_id}", status_code=204)
def delete_group(group_id: int, caller: CallerDep, session: SessionDep):
    """Delete a group (its members stay subscribed to the list)."""
    lists_svc.delete_group(session, caller.account_id, group_id)
    session.commit()
    return Response(status_code=204)


# -- fields --------------------------------------------------------------------------------------


@router.get("/fields", response_model=list[FieldOut])
def get_fields(caller: CallerDep, session: SessionDep):
    """The account's personal-data fields (MailUp campoN) by number."""
    return lists_svc.list_fields(session, caller.account_id)


@router.put("/fields/{number}", response_model=FieldOut)
def put_field(
    number: int,
    body: FieldIn,
    caller: CallerDep,
    session: SessionDep,
):
    """Define or rename field `number` (1..40)."""
    field = lists_svc.set_field(session, caller.account_id, number, body.name)
    session.commit()
    return field


# -- subscriptions -------------------------------------------------------------------------------


def _subscribe(session: Session, caller: Caller, list_id: int, body: SubscribeIn):
    return subs_svc.subscribe(
        session,
        caller.account_id,
        list_id,
        email=body.email,
        mobile=body.mobile,
        channel=body.channel,
        fields=body.fields,
        groups=body.groups,
        replace_groups=body.replace_groups,
        double_opt_in=body.double_opt_in,
        force=body.force,
        source=Source.API,
        consent=subs_svc.Consent(method="api", ip=body.consent_ip),
    )


@router.post("/lists/{list_id}/subscribe", response_model=SubscribeOut)
def subscribe(
    list_id: int,
    body: SubscribeIn,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
):
    """Subscribe a recipient (created if new). 201 when the recipient is new, 200 otherwise."""
    result = _subscribe(session, caller, list_id, body)
    session.commit()
    response.status_code = 201 if result.created else 200
    if result.created:  # everything about a new recipient is known: answer without reading it back
        r, sub = result.recipient, result.subscription
        out = RecipientOut(
            id=r.id,
            email=r.email,
            mobile=r.mobile,
            fields=dict(r.fields or {}),
            groups=sorted(set(body.groups)),
            subscriptions=[SubscriptionOut.model_validate(sub)],
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
    else:
        out = recipient_out(session, result.recipient)
    return SubscribeOut(outcome=result.outcome.value, created=result.created, recipient=out)


@router.post("/lists/{list_id}/subscribe/batch", response_model=BatchSubscribeOut)
def subscribe_batch(
    list_id: int,
    body: BatchSubscribeIn,
    caller: CallerDep,
    session: SessionDep,
):
    """Subscribe up to 1,000 recipients in one call; each item succeeds or fails on its own."""
    lists_svc.get_list(session, caller.account_id, list_id)
    results: list[BatchItemOut] = []
    counts: dict[str, int] = {}
    for index, item in enumerate(body.items):
        savepoint = session.begin_nested()
        try:
            result = _subscribe(session, caller, list_id, item)
            savepoint.commit()
            results.append(
                BatchItemOut(index=index, outcome=result.outcome.value, recipient_id=result.recipient.id)
            )
            counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
        except DomainError as exc:
            savepoint.rollback()
            results.append(
                BatchItemOut(
                    index=index,
                    error={
                        "status": status_of(exc),
                        "title": exc.code,
                        "detail": exc.message,
                        "field": exc.field,
                    },
                )
            )
            counts["error"] = counts.get("error", 0) + 1
    session.commit()
    return BatchSubscribeOut(results=results, counts=counts)


@router.post("/lists/{list_id}/unsubscribe", response_model=SubscriptionOut)
def unsubscribe(
    list_id: int,
    body: UnsubscribeIn,
    caller: CallerDep,
    session: SessionDep,
):
    """Unsubscribe a recipient from a list with a reason; 409 if not subscribed."""
    sub = subs_svc.unsubscribe(
        session,
        caller.account_id,
        list_id,
        email=body.email,
        mobile=body.mobile,
        channel=body.channel,
        reason=body.reason,
        source=Source.API,
    )
    session.commit()
    return sub


@router.get("/lists/{list_id}/status", response_model=StatusOut)
def subscription_status(
    list_id: int,
    caller: CallerDep,
    session: SessionDep,
    email: str | None = None,
    mobile: str | None = None,
    channel: str | None = Query(default=None, pattern="^(email|sms)$"),
):
    """A recipient's status on a list: subscribed, pending, unsubscribed or unknown."""
    sub = subs_svc.status(session, caller.account_id, list_id, email=email, mobile=mobile, channel=channel)
    chan = channel or ("email" if email else "sms")
    return StatusOut(
        list_id=list_id,
        channel=chan,
        status=sub.status if sub else "unknown",
        subscription=SubscriptionOut.model_validate(sub) if sub else None,
    )


# -- recipients ----------------------------------------------------------------------------------


@router.get("/recipients", response_model=RecipientPage)
def find_recipients(
    caller: CallerDep,
    session: SessionDep,
    email: str | None = None,
    mobile: str | None = None,
    list_id: int | None = None,
    group_id: int | None = None,
    status: Status | None = None,
    channel: str | None = Query(default=None, pattern="^(email|sms)$"),
    after: int = Query(default=0, ge=0),
    limit: int = Query(default=100, ge=1, le=1000),
):
    """Search recipients by email, mobile, list, group and status; keyset-paginated by id."""
    if list_id is not None:
        lists_svc.get_list(session, caller.account_id, list_id)
    if group_id is not None:
        lists_svc.get_group(session, caller.account_id, group_id)
    found = recipients_svc.search(
        session,
        caller.account_id,
        email=email,
        mobile=mobile,
        list_id=list_id,
        group_id=group_id,
        status=status.value if status else None,
        channel=channel,
        after=after,
        limit=limit + 1,
    )
    page = found[:limit]
    return RecipientPage(
        items=[recipient_out(session, r) for r in page],
        next_after=page[-1].id if len(found) > limit else None,
    )


@router.get("/recipients/{recipient_id}", response_model=RecipientOut)
def get_recipient(recipient_id: int, caller: CallerDep, session: SessionDep):
    """One recipient with its fields, groups and subscriptions."""
    return recipient_out(session, recipients_svc.get(session, caller.account_id, recipient_id))


@router.patch("/recipients/{recipient_id}", response_model=RecipientOut)
def patch_recipient(
    recipient_id: int,
    body: RecipientPatch,
    caller: CallerDep,
    session: SessionDep,
):
    """Update fields, identities and groups (added, or replaced within the given lists)."""
    recipient = recipients_svc.get(session, caller.account_id, recipient_id)
    for list_id in body.replace_groups_in:
        lists_svc.get_list(session, caller.account_id, list_id)
    recipients_svc.update_profile(
        session,
        caller.account_id,
        recipient,
        source=Source.API,
        fields=body.fields,
        groups=body.groups,
        replace_groups_in=body.replace_groups_in,
        email=body.email,
        mobile=body.mobile,
    )
    session.commit()
    return recipient_out(session, recipient)


@router.delete("/recipients/{recipient_id}", status_code=204)
def delete_recipient(recipient_id: int, caller: CallerDep, session: SessionDep):
    """Delete a recipient: personal data erased, a `recipient.deleted` event kept."""
    recipient = recipients_svc.get(session, caller.account_id, recipient_id)
    recipients_svc.delete_recipient(session, caller.account_id, recipient, source=Source.API)
    session.commit()
    return Response(status_code=204)
