"""The request path of tracking: check the token, find the target, append one event row.

Nothing else happens per request: counters are folded in later by `missiva.reports.counters.roll_up`.
A mailing's tracking settings and link list never change once it has started, so they are cached
per process and a click costs one INSERT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.cache import TTLCache
from missiva.db import utcnow
from missiva.errors import NotFound
from missiva.reports.classify import Verdict
from missiva.reports.models import EventKind, TrackedLink, TrackedMailing, TrackingEvent
from missiva.reports.tokens import TrackingToken, signer_for


class UnknownTarget(NotFound):
    """A genuine token whose mailing or link is not (or no longer) tracked."""


@dataclass(frozen=True)
class MailingTargets:
    """What the request path needs to know about a tracked mailing."""

    account_id: int
    privacy_mode: bool
    urls: tuple[str, ...]


_INSERT_EVENT = insert(TrackingEvent.__table__)
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")
_targets: TTLCache[MailingTargets] = TTLCache(ttl=600)
_after_record: list[Callable[[], None]] = []


def on_recorded(hook: Callable[[], None]) -> None:
    """Run `hook` after each recorded event (the job module uses it to schedule a roll-up)."""
    if hook not in _after_record:
        _after_record.append(hook)


def _load(session: Session, mailing_id: int) -> MailingTargets:
    row = session.get(TrackedMailing, mailing_id)
    if row is None or not row.prepared:
        raise UnknownTarget(f"mailing {mailing_id} is not tracked")  # not cached: raised before
    urls = session.scalars(
        select(TrackedLink.url).where(TrackedLink.mailing_id == mailing_id).order_by(TrackedLink.link)
    ).all()
    return MailingTargets(row.account_id, row.privacy_mode, tuple(urls))


def targets(session: Session, mailing_id: int) -> MailingTargets:
    """The mailing's cached targets; `UnknownTarget` when it is not tracked."""
    key = (runtime.settings().database_url, mailing_id)
    return _targets.get_or_load(key, lambda: _load(session, mailing_id))


def read_token(token: str) -> TrackingToken:
    """The token's content; raises `InvalidToken`."""
    return signer_for(runtime.settings().secret_key).read(token)


def record(
    session: Session, token: TrackingToken, verdict: Verdict, *, now: datetime | None = None
) -> str | None:
    """Append the open or click `token` stands for and commit; the redirect target of a click.

    Raises `UnknownTarget` (nothing recorded) for a mailing without tracking or a link index the
    mailing does not have.
    """
    found = targets(session, token.mailing_id)
    url = None
    if not token.is_open:
        if not 0 <= token.link < len(found.urls):
            raise UnknownTarget(f"mailing {token.mailing_id} has no link {token.link}")
        url = found.urls[token.link]
    recipient_id = None if found.privacy_mode or token.recipient_id == 0 else token.recipient_id
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # An open or click is worth less than a WAL flush per request: the commit returns before the
        # flush (a crash can lose the last fraction of a second of events, never corrupt anything).
        connection.execute(_ASYNC_COMMIT)
    connection.execute(
        _INSERT_EVENT,
        {
            "mailing_id": token.mailing_id,
            "account_id": found.account_id,
            "recipient_id": recipient_id,
            "kind": EventKind.OPEN.value if token.is_open else EventKind.CLICK.value,
            "link": None if token.is_open else token.link,
            "occurred_at": now or utcnow(),
            "ua_class": verdict.ua_class,
            "is_bot": verdict.is_bot,
            "is_proxy": verdict.is_proxy,
            "counted": False,
        },
    )
    session.commit()
    for hook in _after_record:
        hook()
    return url
