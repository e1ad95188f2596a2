"""Delivery receipts onto the send ledger: store each receipt, match it to its part, settle the row.

A receipt names one part by the id the SMSC gave it at submit time. Receipts are stored first (the
SMSC is acknowledged only after that commit), then matched against ``sms_parts``; one that arrives
before its part is recorded simply waits in the inbox until the part is there. A ledger row's
``delivery`` becomes final when every part is delivered, or as soon as one part failed (expired,
undeliverable, rejected); the mailing's counter of that name moves in the same transaction.

Matching takes a per-account lock (:func:`lock`); see there why. Ids are compared in a canonical
form (lower case, no leading zeros) after converting the receipt's id to the form of the submit
response when the transport says they differ (``receipt_id_type``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from missiva.db import insert_ignore, utcnow
from missiva.delivery import outcomes
from missiva.delivery.models import LedgerEntry, LedgerState, Mailing
from missiva.delivery.sms.events import Receipt, ReceiptState
from missiva.delivery.sms.models import SmsAccountSettings, SmsPart, SmsReceipt

FAILURES = (ReceiptState.EXPIRED, ReceiptState.UNDELIVERABLE, ReceiptState.REJECTED)
FINAL = (ReceiptState.DELIVERED, *FAILURES)
#: Receipts nobody claimed after this long are set aside (their part was never recorded here).
ORPHAN_AFTER = timedelta(days=3)
_HEX = frozenset("0123456789abcdef")


class ReceiptIdError(ValueError):
    """A receipt id that cannot be read in the form the transport declares."""


def canonical_id(value: str) -> str:
    """An SMSC message id as stored and compared: trimmed, lower case, hex/decimal without leading zeros."""
    text = value.strip().lower()
    if text and set(text) <= _HEX:
        text = text.lstrip("0") or "0"
    return text


def submit_form(receipt_id: str, id_type: str) -> str:
    """The id a receipt names, written as the submit response wrote it (see the module docstring)."""
    text = receipt_id.strip()
    try:
        if id_type == "submit_hex_receipt_dec":
            return canonical_id(format(int(text, 10), "x"))
        if id_type == "submit_dec_receipt_hex":
            return canonical_id(str(int(text, 16)))
    except ValueError:
        raise ReceiptIdError(
            f"receipt id {receipt_id!r} is not a number in the declared form ({id_type})"
        ) from None
    return canonical_id(text)


def store(
    session: Session, account_id: int, receipts: Iterable[Receipt], id_type: Callable[[str], str]
) -> int:
    """Write final receipts to the inbox (intermediate ones, such as ENROUTE, are dropped); how many."""
    now = utcnow()
    rows = []
    for receipt in receipts:
        if receipt.state not in FINAL or not receipt.message_id:
            continue
        try:
            smsc_id = submit_form(receipt.message_id, id_type(receipt.transport))
        except ReceiptIdError:
            smsc_id = canonical_id(receipt.message_id)
        rows.append(
            {
                "account_id": account_id,
                "transport": receipt.transport[:40],
                "smsc_id": smsc_id[:64],
                "state": receipt.state.value,
                "raw_status": receipt.raw_status[:16],
                "err": (receipt.err or None) and str(receipt.err)[:32],
                "recipient": receipt.recipient[:20],
                "received_at": now,
            }
        )
    if rows:
        session.execute(insert(SmsReceipt.__table__), rows)
    return len(rows)


def record_parts(
    session: Session, mailing: Mailing, accepted: Sequence[tuple[int, str, Sequence[str]]]
) -> None:
    """Remember the SMSC id of every part of accepted messages: (ledger row id, transport, ids)."""
    rows = [
        {
            "account_id": mailing.account_id,
            "mailing_id": mailing.id,
            "ledger_id": ledger_id,
            "part": index,
            "transport": transport[:40],
            "smsc_id": canonical_id(smsc_id)[:64],
        }
        for ledger_id, transport, ids in accepted
        for index, smsc_id in enumerate(ids, 1)
    ]
    if rows:
        session.execute(insert(SmsPart.__table__), rows)
        session.execute(
            update(Mailing).where(Mailing.id == mailing.id).values(segments=Mailing.segments + len(rows)),
            execution_options={"synchronize_session": False},
        )


def _row_delivery(states: list[tuple[int, str | None]]) -> str | None:
    """A ledger row's final delivery from its parts' states, or None while it is not known."""
    for _, state in sorted(states):
        if state in FAILURES:
            return state
    if states and all(state == ReceiptState.DELIVERED for _, state in states):
        return ReceiptState.DELIVERED.value
    return None


def lock(session: Session, account_id: int) -> None:
    """Take the account's receipt lock until the transaction ends.

    Matching runs in senders and in receipt intakes at once; without one lock per account two
    transactions could apply the same receipt (and count it twice), or deadlock on PostgreSQL by
    locking the mailing row and the receipts in opposite orders. Whoever records outcomes and
    then matches takes this lock first.
    """
    insert_ignore(session, SmsAccountSettings, {"account_id": account_id, "updated_at": utcnow()})
    session.execute(
        select(SmsAccountSettings.account_id)
        .where(SmsAccountSettings.account_id == account_id)
        .with_for_update()
    )


def apply_pending(session: Session, account_id: int, *, limit: int = 5000) -> int:
    """Match the account's waiting receipts to their parts and settle the rows; receipts applied."""
    lock(session, account_id)
    now = utcnow()
    pending = session.execute(
        select(SmsReceipt.id, SmsReceipt.smsc_id, SmsReceipt.state, SmsReceipt.received_at)
        .where(SmsReceipt.account_id == account_id, SmsReceipt.applied_at.is_(None))
        .order_by(SmsReceipt.id)
        .limit(limit)
    ).all()
    if not pending:
        return 0
    parts: dict[str, tuple[int, int, str | None]] = {}
    for part_id, ledger_id, smsc_id, state in session.execute(
        select(SmsPart.id, SmsPart.ledger_id, SmsPart.smsc_id, SmsPart.state)
        .where(SmsPart.account_id == account_id, SmsPart.smsc_id.in_({r.smsc_id for r in pending}))
        .order_by(SmsPart.id)
    ):
        parts[smsc_id] = (part_id, ledger_id, state)  # the latest part wins if an SMSC reuses ids
    part_updates: dict[int, str] = {}
    applied: list[int] = []
    touched: set[int] = set()
    for receipt in pending:
        found = parts.get(receipt.smsc_id)
        if found is None:
            if receipt.received_at < now - ORPHAN_AFTER:
                applied.append(receipt.id)
            continue
        part_id, ledger_id, state = found
        if state is None and part_id not in part_updates:
            part_updates[part_id] = receipt.state
        applied.append(receipt.id)
        touched.add(ledger_id)
    # One UPDATE per state rather than one per row: nearly every receipt of a batch says the same.
    for state, part_ids in _by_value(part_updates).items():
        session.execute(
            update(SmsPart).where(SmsPart.id.in_(part_ids)).values(state=state, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    if applied:
        session.execute(
            update(SmsReceipt).where(SmsReceipt.id.in_(applied)).values(applied_at=now),
            execution_options={"synchronize_session": False},
        )
    if touched:
        _settle(session, touched, now)
    return len(applied)


def _by_value(mapping: dict[int, str]) -> dict[str, list[int]]:
    """Keys grouped by their value."""
    groups: dict[str, list[int]] = defaultdict(list)
    for key, value in mapping.items():
        groups[value].append(key)
    return groups


def _settle(session: Session, ledger_ids: set[int], now: datetime) -> None:
    """Set `delivery` on rows whose parts are now all known, and count it on their mailings."""
    by_row: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
    for ledger_id, part, state in session.execute(
        select(SmsPart.ledger_id, SmsPart.part, SmsPart.state).where(SmsPart.ledger_id.in_(ledger_ids))
    ):
        by_row[ledger_id].append((part, state))
    open_rows = session.execute(
        select(
            LedgerEntry.id,
            LedgerEntry.mailing_id,
            LedgerEntry.account_id,
            LedgerEntry.recipient_id,
            LedgerEntry.address,
        ).where(
            LedgerEntry.id.in_(ledger_ids),
            LedgerEntry.delivery.is_(None),
            LedgerEntry.state == LedgerState.SENT,
        )
    ).all()
    settled: dict[int, str] = {}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    events: list[outcomes.MessageEvent] = []
    for row_id, mailing_id, account_id, recipient_id, address in open_rows:
        delivery = _row_delivery(by_row.get(row_id, []))
        if delivery is None:
            continue
        settled[row_id] = delivery
        counts[mailing_id][delivery] += 1
        event = _event(session, delivery, account_id, mailing_id, recipient_id, address, now)
        if event is not None:
            events.append(event)
    for delivery, row_ids in _by_value(settled).items():
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.id.in_(row_ids))
            .values(delivery=delivery, delivered_at=now),
            execution_options={"synchronize_session": False},
        )
    for mailing_id, counter in counts.items():
        session.execute(
            update(Mailing)
            .where(Mailing.id == mailing_id)
            .values({getattr(Mailing, name): getattr(Mailing, name) + n for name, n in counter.items()}),
            execution_options={"synchronize_session": False},
        )
    outcomes.publish(session, events)


def _event(
    session: Session,
    delivery: str,
    account_id: int,
    mailing_id: int,
    recipient_id: int | None,
    address: str | None,
    now: datetime,
) -> outcomes.MessageEvent | None:
    """A settled SMS as `message.delivered` (when an endpoint wants those) or `message.bounced`."""
    if delivery == ReceiptState.DELIVERED:
        if not outcomes.wanted(session, account_id, outcomes.MESSAGE_DELIVERED):
            return None
        kind, data = outcomes.MESSAGE_DELIVERED, {"mailing_id": mailing_id, "mobile": address}
    else:
        kind = outcomes.MESSAGE_BOUNCED
        data = {"mailing_id": mailing_id, "mobile": address, "kind": delivery, "reported_by": "receipt"}
    return outcomes.MessageEvent(kind, account_id, mailing_id, recipient_id, now, data, channel="sms")


def open_parts(session: Session, mailing_id: int) -> int:
    """Parts of a mailing's sent rows still waiting for a final receipt."""
    return (
        session.scalar(
            select(func.count())
            .select_from(SmsPart)
            .join(LedgerEntry, LedgerEntry.id == SmsPart.ledger_id)
            .where(
                SmsPart.mailing_id == mailing_id,
                SmsPart.state.is_(None),
                LedgerEntry.state == LedgerState.SENT,
                LedgerEntry.delivery.is_(None),
            )
        )
        or 0
    )
