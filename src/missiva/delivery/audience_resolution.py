"""Turn a mailing's audience definition into ledger rows, set-based and in keyset batches.

The audience is a list (all its subscriptions on the mailing's channel, email or sms), or the members
of included groups, minus the members of excluded groups, narrowed by a filter on fields and
statuses; or explicit addresses (mobile numbers for SMS). Each batch of at most `BATCH` distinct
recipient ids becomes ledger rows with one INSERT ... SELECT: queued, or suppressed with the reason
(not subscribed, unsubscribed, pending, or the suppression list's reason). A recipient reached twice
(two included groups) gets one row; the extra entries are counted as duplicates. Nothing
proportional to the audience is held in memory, and each batch commits with the mailing's
`resolved_upto`, so a crash resumes where it stopped.

Counters: audience_size = entries in the audience (duplicates included) = queued + suppressed, and
suppressed_by_reason adds up to suppressed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, distinct, func, literal, or_, select, text
from sqlalchemy.orm import Session

from missiva.audience.enums import Status
from missiva.audience.identity import normalise_email, normalise_mobile
from missiva.audience.lists import fold_name, get_group
from missiva.audience.models import GroupMember, Recipient, Subscription
from missiva.db import Database, dialect_insert
from missiva.delivery.models import LedgerEntry, LedgerState, Mailing, SuppressedBecause, Suppression
from missiva.errors import InvalidInput
from missiva.tenancy.models import Account

BATCH = 5000
MAX_EXPLICIT = 10_000
FIELD_OPS = ("eq", "ne", "contains", "starts_with", "empty", "not_empty")


def validate(
    session: Session, account_id: int, list_id: int, audience: dict[str, Any], *, channel: str = "email"
) -> dict[str, Any]:
    """Check an audience definition against the account's groups and fields; the cleaned definition.

    Explicit recipients are email addresses, or mobile numbers for an SMS mailing. Raises
    InvalidInput / NotFound naming the offending part.
    """
    known = {"groups", "exclude_groups", "filter", "recipients"}
    unknown = set(audience) - known
    if unknown:
        raise InvalidInput(f"unknown audience key(s): {', '.join(sorted(unknown))}", field="audience")
    out: dict[str, Any] = {}
    for key in ("groups", "exclude_groups"):
        ids = [int(g) for g in audience.get(key) or []]
        for gid in ids:
            get_group(session, account_id, gid, list_id=list_id)
        if ids:
            out[key] = sorted(set(ids))
    emails = audience.get("recipients") or []
    if emails:
        if out.get("groups"):
            raise InvalidInput("give either groups or explicit recipients, not both", field="audience")
        if len(emails) > MAX_EXPLICIT:
            raise InvalidInput(f"at most {MAX_EXPLICIT} explicit recipients", field="audience.recipients")
        kind = "mobile numbers" if channel == "sms" else "email addresses"
        for index, email in enumerate(emails):
            if not isinstance(email, str):
                raise InvalidInput(f"recipients must be {kind}", field=f"audience.recipients.{index}")
        out["recipients"] = list(emails)
    filt = audience.get("filter") or {}
    if filt:
        out["filter"] = _validate_filter(session, account_id, filt)
    return out


def _validate_filter(session: Session, account_id: int, filt: dict[str, Any]) -> dict[str, Any]:
    from missiva.audience.lists import field_resolver

    unknown = set(filt) - {"status", "fields"}
    if unknown:
        raise InvalidInput(f"unknown filter key(s): {', '.join(sorted(unknown))}", field="audience.filter")
    out: dict[str, Any] = {}
    statuses = filt.get("status") or []
    for status in statuses:
        if status not in {s.value for s in Status}:
            raise InvalidInput(f"unknown status {status!r}", field="audience.filter.status")
    if statuses:
        out["status"] = list(statuses)
    resolver = field_resolver(session, account_id)
    conditions = []
    for index, cond in enumerate(filt.get("fields") or []):
        where = f"audience.filter.fields.{index}"
        name = str(cond.get("field", ""))
        number = resolver.get(name) or resolver.get(fold_name(name))
        if number is None:
            raise InvalidInput(f"unknown field {name!r}", field=where)
        op = cond.get("op", "eq")
        if op not in FIELD_OPS:
            raise InvalidInput(f"unknown operator {op!r} (one of {', '.join(FIELD_OPS)})", field=where)
        value = cond.get("value")
        if op not in ("empty", "not_empty") and not isinstance(value, str | int | float):
            raise InvalidInput("a value is required for this operator", field=where)
        conditions.append({"field": number, "op": op, "value": None if value is None else str(value)})
    if conditions:
        out["fields"] = conditions
    return out


def _field_condition(cond: dict[str, Any]) -> ColumnElement[bool]:
    value = Recipient.fields[str(cond["field"])].as_string()
    op, given = cond["op"], cond.get("value")
    if op == "eq":
        return func.lower(value) == str(given).lower()
    if op == "ne":
        return or_(value.is_(None), func.lower(value) != str(given).lower())
    if op == "contains":
        return func.lower(value).contains(str(given).lower(), autoescape=True)
    if op == "starts_with":
        return func.lower(value).startswith(str(given).lower(), autoescape=True)
    if op == "empty":
        return or_(value.is_(None), value == "")
    return and_(value.is_not(None), value != "")


def candidates(mailing: Mailing, explicit_ids: Select[Any] | None = None) -> Select[Any]:
    """The audience as a SELECT of recipient ids (`rid`), with repeats for multiple group memberships."""
    audience = mailing.audience or {}
    list_id = mailing.list_id
    if explicit_ids is not None:
        stmt = explicit_ids
        rid = stmt.selected_columns[0]
    elif audience.get("groups"):
        rid = GroupMember.recipient_id
        stmt = select(rid.label("rid")).where(GroupMember.group_id.in_(audience["groups"]))
    else:
        rid = Subscription.recipient_id
        stmt = select(rid.label("rid")).where(
            Subscription.list_id == list_id,
            Subscription.channel == mailing.channel,
            Subscription.status != "new",
        )
    if audience.get("exclude_groups"):
        excluded = select(GroupMember.recipient_id).where(
            GroupMember.group_id.in_(audience["exclude_groups"])
        )
        stmt = stmt.where(rid.not_in(excluded))
    filt = audience.get("filter") or {}
    if filt.get("status"):
        stmt = stmt.where(
            rid.in_(
                select(Subscription.recipient_id).where(
                    Subscription.list_id == list_id,
                    Subscription.channel == mailing.channel,
                    Subscription.status.in_(filt["status"]),
                )
            )
        )
    if filt.get("fields"):
        stmt = stmt.where(
            rid.in_(
                select(Recipient.id).where(
                    Recipient.account_id == mailing.account_id, *[_field_condition(c) for c in filt["fields"]]
                )
            )
        )
    return stmt


def _insert_ledger(session: Session, mailing: Mailing, ids: Select[Any]) -> None:
    """One INSERT ... SELECT of ledger rows for the recipient ids `ids`, each with state and reason."""
    sub = Subscription
    sup = Suppression
    status = sub.status
    channel = mailing.channel
    address = address_column(channel)
    state = case(
        (
            or_(status.is_(None), status != Status.SUBSCRIBED, address.is_(None)),
            LedgerState.SUPPRESSED.value,
        ),
        (sup.reason.is_not(None), LedgerState.SUPPRESSED.value),
        else_=LedgerState.QUEUED.value,
    )
    reason = case(
        (
            or_(status.is_(None), status == "new", address.is_(None)),
            SuppressedBecause.NOT_SUBSCRIBED.value,
        ),
        (status == Status.UNSUBSCRIBED, SuppressedBecause.UNSUBSCRIBED.value),
        (status == Status.PENDING, SuppressedBecause.PENDING.value),
        else_=sup.reason,
    )
    ids_sub = ids.subquery()
    source = (
        select(
            literal(mailing.id),
            literal(mailing.account_id),
            Recipient.id,
            literal(channel),
            address,
            state,
            reason,
            literal(0),
        )
        .select_from(ids_sub)
        .join(Recipient, Recipient.id == ids_sub.c.rid)
        .outerjoin(
            sub,
            and_(sub.recipient_id == Recipient.id, sub.list_id == mailing.list_id, sub.channel == channel),
        )
        .outerjoin(
            sup,
            and_(sup.account_id == mailing.account_id, sup.channel == channel, sup.address == address),
        )
    )
    cols = ["mailing_id", "account_id", "recipient_id", "channel", "address", "state", "reason", "attempts"]
    stmt = dialect_insert(session)(LedgerEntry).from_select(cols, source).on_conflict_do_nothing()
    session.execute(stmt)


def _count_into(mailing: Mailing, counts: Counter[tuple[str, str | None]], extra: Counter[str]) -> None:
    """Add a batch's (state, reason) counts and extra suppression reasons to the mailing's counters."""
    by_reason = dict(mailing.suppressed_by_reason or {})
    queued = suppressed = 0
    for (state, reason), n in counts.items():
        if state == LedgerState.QUEUED:
            queued += n
        else:
            suppressed += n
            key = reason or "unknown"
            by_reason[key] = by_reason.get(key, 0) + n
    for key, n in extra.items():
        suppressed += n
        by_reason[key] = by_reason.get(key, 0) + n
    mailing.queued += queued
    mailing.suppressed += suppressed
    mailing.audience_size += queued + suppressed
    mailing.suppressed_by_reason = by_reason


def _lock_mailing(session: Session, mailing_id: int) -> Mailing:
    return session.scalars(
        select(Mailing)
        .where(Mailing.id == mailing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def address_column(channel: str) -> Any:
    """The recipient column a channel sends to: email, or the E.164 mobile number for SMS."""
    return Recipient.mobile if channel == "sms" else Recipient.email


def _explicit(session: Session, mailing: Mailing) -> tuple[list[str], Counter[str]]:
    """Normalised distinct explicit addresses, and the counts of duplicates and unusable addresses."""
    seen: dict[str, None] = {}
    extra: Counter[str] = Counter()
    country = None
    if mailing.channel == "sms":
        country = session.scalar(select(Account.default_country).where(Account.id == mailing.account_id))
    for raw in mailing.audience.get("recipients") or []:
        try:
            email = normalise_mobile(raw, country) if mailing.channel == "sms" else normalise_email(raw)
        except InvalidInput:
            extra[SuppressedBecause.NOT_SUBSCRIBED.value] += 1
            continue
        if email in seen:
            extra[SuppressedBecause.DUPLICATE.value] += 1
        else:
            seen[email] = None
    return list(seen), extra


# Tables whose statistics the resolution joins are planned from.
PLANNED_FROM = ("recipients", "subscriptions", "group_members", "suppressions")
STALE_SHARE = 0.2  # statistics older than this share of changed rows are refreshed


def _fresh_statistics(session: Session) -> None:
    """ANALYZE (PostgreSQL) the audience tables whose statistics miss a large share of their rows.

    Right after a big import, autovacuum has not analysed the tables yet; the planner then believes
    they are tiny and probes the subscription of each recipient through an index that does not lead
    with the recipient, so every batch scanned more than the one before (31 s instead of 1 s for
    50,000 recipients). Refreshing costs a sample of each table once per mailing.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    stale = session.execute(
        text(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:names)"
            " AND (last_analyze IS NULL AND last_autoanalyze IS NULL"
            " OR n_mod_since_analyze > :share * GREATEST(n_live_tup, 1000))"
        ),
        {"names": list(PLANNED_FROM), "share": STALE_SHARE},
    ).scalars()
    for name in stale:
        if name in PLANNED_FROM:  # identifiers cannot be bound; only known names get here
            session.execute(text(f'ANALYZE "{name}"'))


def resolve(db: Database, mailing_id: int, *, batch: int = BATCH) -> None:
    """Write the ledger rows of a mailing's whole audience (resumable; a no-op once resolved).

    Each batch locks the mailing row, so concurrent workers resolve disjoint ranges one at a time.
    """
    while True:
        with db.session() as session:
            mailing = _lock_mailing(session, mailing_id)
            if mailing.resolved:
                return
            if mailing.resolved_upto == 0:
                _fresh_statistics(session)
            explicit_ids = None
            extra: Counter[str] = Counter()
            if mailing.audience.get("recipients") is not None and "recipients" in mailing.audience:
                emails, prep = _explicit(session, mailing)
                address = address_column(mailing.channel)
                if mailing.resolved_upto == 0 and mailing.audience_size == 0:
                    extra = prep
                    known = set(
                        session.scalars(
                            select(address).where(
                                Recipient.account_id == mailing.account_id, address.in_(emails)
                            )
                        )
                    )
                    extra[SuppressedBecause.NOT_SUBSCRIBED.value] += len(emails) - len(known)
                explicit_ids = select(Recipient.id.label("rid")).where(
                    Recipient.account_id == mailing.account_id, address.in_(emails)
                )
            cand = candidates(mailing, explicit_ids).subquery()
            last = mailing.resolved_upto
            window = select(cand.c.rid).where(cand.c.rid > last).distinct().order_by(cand.c.rid).limit(batch)
            upto = session.scalar(select(func.max(window.subquery().c.rid)))
            if upto is None:
                _count_into(mailing, Counter(), extra)
                mailing.resolved = True
                return
            total, unique = session.execute(
                select(func.count(), func.count(distinct(cand.c.rid))).where(
                    cand.c.rid > last, cand.c.rid <= upto
                )
            ).one()
            if total > unique:
                extra[SuppressedBecause.DUPLICATE.value] += total - unique
            ids = select(cand.c.rid).where(cand.c.rid > last, cand.c.rid <= upto).distinct()
            _insert_ledger(session, mailing, ids)
            counts: Counter[tuple[str, str | None]] = Counter()
            for state, reason, n in session.execute(
                select(LedgerEntry.state, LedgerEntry.reason, func.count())
                .where(
                    LedgerEntry.mailing_id == mailing.id,
                    LedgerEntry.recipient_id > last,
                    LedgerEntry.recipient_id <= upto,
                )
                .group_by(LedgerEntry.state, LedgerEntry.reason)
            ):
                counts[(state, reason)] += n
            _count_into(mailing, counts, extra)
            mailing.resolved_upto = upto
