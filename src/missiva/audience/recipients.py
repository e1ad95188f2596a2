"""Use cases for recipients: find, search, update profile and groups, delete."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from missiva.audience import events
from missiva.audience.enums import EventType
from missiva.audience.identity import normalise_email, normalise_mobile
from missiva.audience.lists import field_resolver, fold_name, get_group
from missiva.audience.models import Group, GroupMember, Recipient, Subscription
from missiva.db import utcnow
from missiva.errors import Conflict, InvalidInput, NotFound
from missiva.tenancy.models import Account

# Longest value a personal-data field may hold; MailUp allows 100-200, CRMs send longer notes.
MAX_FIELD_LENGTH = 1000


@dataclass(frozen=True)
class Identity:
    """A recipient's validated identities as given by a caller."""

    email: str | None = None
    mobile: str | None = None


def identity(session: Session, account_id: int, email: str | None, mobile: str | None) -> Identity:
    """Validate and normalise the identities a caller gave; at least one is required."""
    email = email.strip() if email else None
    mobile = mobile.strip() if mobile else None
    if not email and not mobile:
        raise InvalidInput("an email address or a mobile number is required", field="email")
    country = None
    if mobile:
        country = session.scalar(select(Account.default_country).where(Account.id == account_id))
    return Identity(
        email=normalise_email(email) if email else None,
        mobile=normalise_mobile(mobile, country) if mobile else None,
    )


def resolve_fields(
    session: Session, account_id: int, values: Mapping[str | int, Any] | None
) -> dict[str, str]:
    """Field values keyed by field number, from keys given as number, `campoN` or field name.

    Raises InvalidInput naming the unknown field or the value that is too long.
    """
    if not values:
        return {}
    lookup = field_resolver(session, account_id)
    resolved: dict[str, str] = {}
    for key, value in values.items():
        skey = str(key).strip()
        number = lookup.get(skey.lower()) or lookup.get(fold_name(skey))
        if number is None:
            raise InvalidInput(f"unknown field {skey!r}", field=f"fields.{skey}")
        text = "" if value is None else str(value)
        if len(text) > MAX_FIELD_LENGTH:
            raise InvalidInput(
                f"field {skey!r} is longer than {MAX_FIELD_LENGTH} characters", field=f"fields.{skey}"
            )
        resolved[str(number)] = text
    return resolved


def find(session: Session, account_id: int, ident: Identity) -> Recipient | None:
    """The recipient with this email, else with this mobile."""
    if ident.email:
        found = session.scalar(
            select(Recipient).where(Recipient.account_id == account_id, Recipient.email == ident.email)
        )
        if found is not None or not ident.mobile:
            return found
    return session.scalar(
        select(Recipient).where(Recipient.account_id == account_id, Recipient.mobile == ident.mobile)
    )


def get(session: Session, account_id: int, recipient_id: int) -> Recipient:
    """The account's recipient; NotFound for a missing id or another account's."""
    recipient = session.get(Recipient, recipient_id)
    if recipient is None or recipient.account_id != account_id:
        raise NotFound(f"recipient {recipient_id} does not exist", field="recipient")
    return recipient


def search(
    session: Session,
    account_id: int,
    *,
    email: str | None = None,
    mobile: str | None = None,
    list_id: int | None = None,
    group_id: int | None = None,
    status: str | None = None,
    channel: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[Recipient]:
    """Recipients matching every given criterion, by id, keyset-paginated with `after`."""
    stmt = select(Recipient).where(Recipient.account_id == account_id, Recipient.id > after)
    if email:
        stmt = stmt.where(Recipient.email == email.strip().lower())
    if mobile:
        stmt = stmt.where(Recipient.mobile == mobile.strip())
    if list_id is not None or status is not None or channel is not None:
        sub = select(Subscription.id).where(Subscription.recipient_id == Recipient.id)
        if list_id is not None:
            sub = sub.where(Subscription.list_id == list_id)
        if status is not None:
            sub = sub.where(Subscription.status == status)
        if channel is not None:
            sub = sub.where(Subscription.channel == channel)
        stmt = stmt.where(exists(sub))
    if group_id is not None:
        stmt = stmt.where(
            exists(
                select(GroupMember.group_id).where(
                    GroupMember.recipient_id == Recipient.id, GroupMember.group_id == group_id
                )
            )
        )
    return list(session.scalars(stmt.order_by(Recipient.id).limit(max(1, min(limit, 1000)))))


def subscriptions_of(session: Session, recipient_id: int) -> list[Subscription]:
    """A recipient's subscriptions, by list and channel."""
    stmt = (
        select(Subscription)
        .where(Subscription.recipient_id == recipient_id)
        .order_by(Subscription.list_id, Subscription.channel)
    )
    return list(session.scalars(stmt))


def group_ids_of(session: Session, recipient_id: int) -> list[int]:
    """Ids of the groups a recipient belongs to."""
    stmt = (
        select(GroupMember.group_id)
        .where(GroupMember.recipient_id == recipient_id)
        .order_by(GroupMember.group_id)
    )
    return list(session.scalars(stmt))


@dataclass
class Changes:
    """What a profile update changed, for the event and the caller."""

    fields: dict[str, list[Any]] = field(default_factory=dict)
    groups_added: list[int] = field(default_factory=list)
    groups_removed: list[int] = field(default_factory=list)
    email: list[str | None] | None = None
    mobile: list[str | None] | None = None

    def __bool__(self) -> bool:
        return bool(self.fields or self.groups_added or self.groups_removed or self.email or self.mobile)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.fields:
            out["fields"] = self.fields
        if self.groups_added:
            out["groups_added"] = self.groups_added
        if self.groups_removed:
            out["groups_removed"] = self.groups_removed
        if self.email:
            out["email"] = self.email
        if self.mobile:
            out["mobile"] = self.mobile
        return out


def apply_fields(
    recipient: Recipient, fields: dict[str, str], changes: Changes, *, overwrite_empty: bool = True
) -> None:
    """Merge resolved field values into the recipient, noting what changed."""
    current = dict(recipient.fields or {})
    for number, value in fields.items():
        if not value and not overwrite_empty:
            continue
        old = current.get(number, "")
        if old != value:
            changes.fields[number] = [old, value]
            if value:
                current[number] = value
            else:
                current.pop(number, None)
    if changes.fields:
        recipient.fields = current


def apply_groups(
    session: Session,
    account_id: int,
    recipient: Recipient,
    group_ids: Iterable[int],
    changes: Changes,
    *,
    replace_in_lists: Iterable[int] = (),
) -> None:
    """Add the recipient to `group_ids`; with `replace_in_lists`, also leave other groups of those lists."""
    wanted = list(dict.fromkeys(int(g) for g in group_ids))
    replace_lists = set(replace_in_lists)
    if not wanted and not replace_lists:
        return
    groups = [get_group(session, account_id, gid) for gid in wanted]
    current = set(group_ids_of(session, recipient.id))
    for group in groups:
        if group.id not in current:
            session.add(GroupMember(group_id=group.id, recipient_id=recipient.id, account_id=account_id))
            changes.groups_added.append(group.id)
    leaving = current - set(wanted)
    if replace_lists and leaving:
        stale = session.scalars(
            select(Group.id).where(Group.id.in_(leaving), Group.list_id.in_(replace_lists))
        ).all()
        if stale:
            session.execute(
                delete(GroupMember).where(
                    GroupMember.recipient_id == recipient.id, GroupMember.group_id.in_(stale)
                )
            )
            changes.groups_removed.extend(sorted(stale))
    session.flush()


def update_profile(
    session: Session,
    account_id: int,
    recipient: Recipient,
    *,
    source: str,
    fields: Mapping[str | int, Any] | None = None,
    groups: Iterable[int] = (),
    replace_groups_in: Iterable[int] = (),
    email: str | None = None,
    mobile: str | None = None,
    list_id: int | None = None,
) -> Changes:
    """Change a recipient's fields, groups or identities; records `recipient.updated` if anything changed.

    `replace_groups_in` names lists whose group memberships become exactly `groups`.
    """
    changes = Changes()
    resolved = resolve_fields(session, account_id, fields)
    if email is not None or mobile is not None:
        _change_identities(session, account_id, recipient, email, mobile, changes)
    apply_fields(recipient, resolved, changes)
    apply_groups(session, account_id, recipient, groups, changes, replace_in_lists=replace_groups_in)
    record_changes(session, account_id, recipient, changes, source=source, list_id=list_id)
    return changes


def record_changes(
    session: Session,
    account_id: int,
    recipient: Recipient,
    changes: Changes,
    *,
    source: str,
    list_id: int | None = None,
) -> None:
    """Stamp the recipient and write one `recipient.updated` event, if anything changed."""
    if not changes:
        return
    recipient.updated_at = utcnow()
    events.record(
        session,
        account_id=account_id,
        type=EventType.RECIPIENT_UPDATED,
        recipient=recipient,
        source=source,
        list_id=list_id,
        extra={"changes": changes.as_dict()},
    )


def _change_identities(
    session: Session,
    account_id: int,
    recipient: Recipient,
    email: str | None,
    mobile: str | None,
    changes: Changes,
) -> None:
    new = identity(session, account_id, email or recipient.email, mobile or recipient.mobile)
    if new.email != recipient.email:
        other = find(session, account_id, Identity(email=new.email))
        if other is not None and other.id != recipient.id:
            raise Conflict(f"email {new.email} belongs to another recipient", field="email")
        changes.email = [recipient.email, new.email]
        recipient.email = new.email
    if new.mobile != recipient.mobile:
        other = find(session, account_id, Identity(mobile=new.mobile))
        if other is not None and other.id != recipient.id:
            raise Conflict(f"mobile {new.mobile} belongs to another recipient", field="mobile")
        changes.mobile = [recipient.mobile, new.mobile]
        recipient.mobile = new.mobile


def delete_recipient(session: Session, account_id: int, recipient: Recipient, *, source: str) -> None:
    """Cancel a recipient: personal data erased everywhere, one `recipient.deleted` event kept.

    The deletion event keeps the email and mobile so the customer's system can match whom it concerns;
    earlier events lose their snapshots.
    """
    lists = sorted({s.list_id for s in subscriptions_of(session, recipient.id)})
    events.erase_personal_data(session, account_id, recipient.id)
    # The deletion event keeps only the identities; field values are personal data too.
    events.record(
        session,
        account_id=account_id,
        type=EventType.RECIPIENT_DELETED,
        recipient=recipient,
        source=source,
        data={
            "email": recipient.email,
            "mobile": recipient.mobile,
            "fields": {},
            "groups": [],
            "lists": lists,
        },
    )
    session.delete(recipient)
    session.flush()
