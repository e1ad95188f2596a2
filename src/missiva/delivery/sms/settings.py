"""Use cases for SMS settings: the account's defaults, a list's sender id, the inbound callback token.

A message's sender id falls back to its list's, then to the account's; the opt-out text likewise.
STOP keywords are per account (a reply does not say which list it answers).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.lists import get_list
from missiva.delivery.sms.addresses import InvalidAddress, sender
from missiva.delivery.sms.keywords import DEFAULT_STOP_KEYWORDS, normalise
from missiva.delivery.sms.models import SmsAccountSettings, SmsListSettings
from missiva.errors import InvalidInput, NotFound

MAX_KEYWORDS = 50
MAX_OPT_OUT = 160


@dataclass(frozen=True)
class SenderDefaults:
    """What a message of a list uses when it names no sender id or opt-out text of its own."""

    sender_id: str | None
    opt_out_text: str | None


def check_sender_id(value: str | None, field: str = "sender_id") -> str | None:
    """A sender id as stored (stripped), or None; InvalidInput naming what SMSCs would refuse."""
    if value is None or not value.strip():
        return None
    try:
        sender(value)
    except InvalidAddress as exc:
        raise InvalidInput(str(exc), field=field) from None
    return value.strip()


def _check_opt_out(value: str | None, field: str = "opt_out_text") -> str | None:
    if value is None or not value.strip():
        return None
    if len(value.strip()) > MAX_OPT_OUT:
        raise InvalidInput(f"opt-out text is longer than {MAX_OPT_OUT} characters", field=field)
    return value.strip()


def _check_keywords(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if len(values) > MAX_KEYWORDS:
        raise InvalidInput(f"at most {MAX_KEYWORDS} stop keywords", field="stop_keywords")
    out: list[str] = []
    for index, keyword in enumerate(values):
        if not isinstance(keyword, str) or not normalise(keyword):
            raise InvalidInput(
                f"stop keyword {keyword!r} has no letters or digits", field=f"stop_keywords.{index}"
            )
        out.append(keyword.strip())
    if not out:
        raise InvalidInput("give at least one stop keyword, or null for the defaults", field="stop_keywords")
    return out


def account_settings(session: Session, account_id: int) -> SmsAccountSettings:
    """The account's SMS settings row (created empty on first use)."""
    row = session.get(SmsAccountSettings, account_id)
    if row is None:
        row = SmsAccountSettings(account_id=account_id)
        session.add(row)
        session.flush()
    return row


def update_account(session: Session, account_id: int, values: dict[str, Any]) -> SmsAccountSettings:
    """Change the account's sender id, opt-out text and/or STOP keywords (keys absent stay)."""
    row = account_settings(session, account_id)
    if "sender_id" in values:
        row.sender_id = check_sender_id(values["sender_id"])
    if "opt_out_text" in values:
        row.opt_out_text = _check_opt_out(values["opt_out_text"])
    if "stop_keywords" in values:
        row.stop_keywords = _check_keywords(values["stop_keywords"])
    session.flush()
    return row


def stop_keywords(session: Session, account_id: int) -> tuple[str, ...]:
    """The account's STOP keywords (the defaults unless it set its own)."""
    row = session.get(SmsAccountSettings, account_id)
    if row is None or not row.stop_keywords:
        return DEFAULT_STOP_KEYWORDS
    return tuple(row.stop_keywords)


def list_settings(session: Session, account_id: int, list_id: int) -> SmsListSettings:
    """A list's SMS settings (empty when never set); NotFound for another account's list."""
    get_list(session, account_id, list_id)
    row = session.get(SmsListSettings, list_id)
    return row or SmsListSettings(list_id=list_id, account_id=account_id)


def update_list(session: Session, account_id: int, list_id: int, values: dict[str, Any]) -> SmsListSettings:
    """Set a list's sender id and/or opt-out text (null: fall back to the account's)."""
    get_list(session, account_id, list_id)
    row = session.get(SmsListSettings, list_id)
    if row is None:
        row = SmsListSettings(list_id=list_id, account_id=account_id)
        session.add(row)
    if "sender_id" in values:
        row.sender_id = check_sender_id(values["sender_id"])
    if "opt_out_text" in values:
        row.opt_out_text = _check_opt_out(values["opt_out_text"])
    session.flush()
    return row


def defaults_for(session: Session, account_id: int, list_id: int | None) -> SenderDefaults:
    """Sender id and opt-out text for a list: the list's own, else the account's."""
    lst = session.get(SmsListSettings, list_id) if list_id is not None else None
    acct = session.get(SmsAccountSettings, account_id)
    return SenderDefaults(
        sender_id=(lst.sender_id if lst else None) or (acct.sender_id if acct else None),
        opt_out_text=(lst.opt_out_text if lst else None) or (acct.opt_out_text if acct else None),
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_inbound_token(session: Session, account_id: int) -> str:
    """A fresh token for the public inbound callback URL; the previous one stops working.

    Only its hash is stored: the token is shown this once.
    """
    token = secrets.token_urlsafe(24)
    account_settings(session, account_id).inbound_token_hash = _token_hash(token)
    session.flush()
    return token


def account_for_token(session: Session, token: str) -> int:
    """The account an inbound callback token belongs to; NotFound for an unknown token."""
    account_id = session.scalar(
        select(SmsAccountSettings.account_id).where(
            SmsAccountSettings.inbound_token_hash == _token_hash(token)
        )
    )
    if account_id is None:
        raise NotFound("unknown inbound token", field="token")
    return account_id
