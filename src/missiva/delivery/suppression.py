"""The account-wide suppression list: addresses no mailing may reach, whatever their subscriptions say.

Entries come from hard bounces, complaints, List-Unsubscribe clicks, manual additions and imported
do-not-mail lists. Audience resolution joins against it; a transactional send checks it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from missiva.audience.identity import normalise_email
from missiva.db import insert_ignore, utcnow
from missiva.delivery.models import Suppression, SuppressionReason
from missiva.errors import InvalidEmail, InvalidInput, NotFound

MAX_IMPORT_ERRORS = 100


def _reason(reason: str) -> SuppressionReason:
    try:
        return SuppressionReason(reason)
    except ValueError as exc:
        allowed = ", ".join(r.value for r in SuppressionReason)
        raise InvalidInput(
            f"unknown suppression reason {reason!r} (one of {allowed})", field="reason"
        ) from exc


def add(
    session: Session,
    account_id: int,
    address: str,
    *,
    reason: str = SuppressionReason.MANUAL,
    source: str = "api",
    mailing_id: int | None = None,
    note: str | None = None,
    channel: str = "email",
) -> bool:
    """Suppress an address; False when it was already suppressed (the first reason is kept)."""
    why = _reason(reason)
    return insert_ignore(
        session,
        Suppression,
        {
            "account_id": account_id,
            "channel": channel,
            "address": normalise_email(address),
            "reason": why.value,
            "source": source,
            "mailing_id": mailing_id,
            "note": note,
            "created_at": utcnow(),
        },
        ["account_id", "channel", "address"],
    )


def find(session: Session, account_id: int, address: str, channel: str = "email") -> Suppression | None:
    """The suppression entry of an address, if any."""
    return session.scalar(
        select(Suppression).where(
            Suppression.account_id == account_id,
            Suppression.channel == channel,
            Suppression.address == normalise_email(address),
        )
    )


def remove(session: Session, account_id: int, address: str, channel: str = "email") -> None:
    """Take an address off the list; NotFound if it is not on it."""
    done = session.execute(
        delete(Suppression).where(
            Suppression.account_id == account_id,
            Suppression.channel == channel,
            Suppression.address == normalise_email(address),
        )
    )
    if not done.rowcount:
        raise NotFound(f"{address} is not on the suppression list", field="address")


def page(
    session: Session,
    account_id: int,
    *,
    reason: str | None = None,
    after_id: int = 0,
    limit: int = 100,
    channel: str = "email",
) -> list[Suppression]:
    """Entries in id order after `after_id` (keyset paging), optionally of one reason."""
    stmt = select(Suppression).where(
        Suppression.account_id == account_id, Suppression.channel == channel, Suppression.id > after_id
    )
    if reason:
        stmt = stmt.where(Suppression.reason == _reason(reason).value)
    return list(session.scalars(stmt.order_by(Suppression.id).limit(max(1, min(limit, 1000)))))


def count(session: Session, account_id: int, channel: str = "email") -> int:
    """How many addresses the account suppresses on a channel."""
    return session.scalar(
        select(func.count())
        .select_from(Suppression)
        .where(Suppression.account_id == account_id, Suppression.channel == channel)
    )


@dataclass
class ImportResult:
    added: int = 0
    already: int = 0
    errors: list[dict[str, object]] | None = None


def import_csv(
    session: Session, account_id: int, lines: Iterable[str], *, reason: str = SuppressionReason.IMPORT
) -> ImportResult:
    """Suppress every address of a CSV (first column, or the column named email/address).

    Invalid addresses are reported with their line number (the first 100) and skipped; the rest is
    imported.
    """
    why = _reason(reason)
    result = ImportResult(errors=[])
    reader = csv.reader(lines)
    column = 0
    for number, row in enumerate(reader, start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1:
            header = [cell.strip().lower() for cell in row]
            named = [i for i, h in enumerate(header) if h in ("email", "address", "e-mail")]
            if named:
                column = named[0]
                continue
            if "@" not in row[0]:
                continue
        value = row[column].strip() if column < len(row) else ""
        try:
            added = add(session, account_id, value, reason=why, source="import")
        except InvalidEmail as exc:
            if len(result.errors) < MAX_IMPORT_ERRORS:  # type: ignore[arg-type]
                result.errors.append({"line": number, "message": exc.message})  # type: ignore[union-attr]
            continue
        if added:
            result.added += 1
        else:
            result.already += 1
    return result


def export_csv(session: Session, account_id: int, channel: str = "email") -> Iterator[str]:
    """The whole list as CSV lines (address, reason, source, mailing_id, created_at), streamed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["address", "reason", "source", "mailing_id", "created_at"])
    yield out.getvalue()
    after = 0
    while True:
        rows = page(session, account_id, after_id=after, limit=1000, channel=channel)
        if not rows:
            return
        out.seek(0)
        out.truncate()
        for row in rows:
            writer.writerow(
                [row.address, row.reason, row.source, row.mailing_id or "", row.created_at.isoformat()]
            )
        yield out.getvalue()
        after = rows[-1].id
