"""Inbound processing: spooled message -> classification -> actions, one transaction per message.

The receiver (and the IMAP poller) spool a message, then queue `process_key` for it; a periodic sweep
(`process_pending`) picks up whatever a lost task or a crash left in the spool. A message leaves the
spool only after its transaction committed, and the actions' fingerprint makes a second run of the
same message a no-op, so a crash between the two does no harm. A message that makes processing fail
for any reason other than the database is set aside (`spool.quarantine`) instead of retried forever.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from missiva.config import Settings
from missiva.db import Database
from missiva.inbound import actions, spool
from missiva.inbound.actions import Notification, Policy, Result
from missiva.inbound.classify import Classification, Kind, classify
from missiva.keys import derived_secret

log = logging.getLogger(__name__)

UNSUBSCRIBE_PREFIX = "unsubscribe+"
HEADER_SCAN = 64 * 1024  # of the header block, searched for the unsubscribe address when no envelope


@dataclass
class Summary:
    """What a run over the spool did."""

    processed: int = 0
    duplicates: int = 0
    failed: int = 0
    actions: Counter[str] = field(default_factory=Counter)

    def add(self, result: Result) -> None:
        """Count one processed message."""
        self.processed += 1
        if result.duplicate:
            self.duplicates += 1
        else:
            self.actions[result.action.value] += 1


def notification(
    raw: bytes,
    envelope_recipients: Iterable[str] = (),
    *,
    settings: Settings,
    source: str = "smtp",
    classification: Classification | None = None,
) -> Notification:
    """The notification a raw inbound message amounts to (classified here unless given)."""
    rcpts = tuple(envelope_recipients)
    found = classification or classify(
        raw, verp_secret=derived_secret("verp", settings.secret_key), envelope_recipients=rcpts
    )
    token = unsubscribe_token(raw, rcpts, settings.bounce_domain)
    kind = found.kind
    if token is not None and kind is not Kind.AUTOREPLY:
        kind = Kind.UNSUBSCRIBE  # RFC 2369: mail to the List-Unsubscribe address is the request itself
    return Notification(
        kind=kind,
        # The envelope too: two recipients' bounces are never one report, even with identical bodies.
        fingerprint=actions.fingerprint(b"mail", ",".join(sorted(r.lower() for r in rcpts)), raw),
        source=source,
        address=found.recipient,
        status=found.status,
        diagnostic=found.diagnostic,
        mailing_id=found.mailing_id,
        recipient_id=found.recipient_id,
        verified=found.verified,
        unsubscribe_token=token,
    )


def unsubscribe_token(raw: bytes, envelope_recipients: Iterable[str], bounce_domain: str) -> str | None:
    """The token of `unsubscribe+<token>@<bounce domain>` the message was sent to, if any.

    The envelope says it when the message came by SMTP; a message fetched over IMAP has only its
    headers (To, Delivered-To...), searched then.
    """
    rcpts = list(envelope_recipients)
    if not rcpts:
        head = raw[:HEADER_SCAN].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        pattern = re.compile(
            rb"unsubscribe\+([A-Za-z0-9.]{1,80})@" + re.escape(bounce_domain.encode("ascii", "replace")),
            re.IGNORECASE,
        )
        match = pattern.search(head)
        return match.group(1).decode("ascii").lower() if match else None
    for address in rcpts:
        local, _, domain = address.strip().strip("<>").rpartition("@")
        if domain.lower() == bounce_domain and local.lower().startswith(UNSUBSCRIBE_PREFIX):
            return local[len(UNSUBSCRIBE_PREFIX) :].lower() or None
    return None


def process_message(
    session: Session,
    raw: bytes,
    envelope_recipients: Iterable[str] = (),
    *,
    settings: Settings,
    source: str = "smtp",
) -> Result:
    """Classify one message and apply its actions in `session`'s transaction."""
    note = notification(raw, envelope_recipients, settings=settings, source=source)
    return actions.apply(session, note, policy=Policy.from_settings(settings))


def process_item(settings: Settings, db: Database, item: spool.Spooled) -> Result | None:
    """Process one spooled message in its own transaction, then take it out of the spool.

    Returns None when the message could not be processed and was quarantined. Database errors
    propagate (the message stays pending for the next run).
    """
    try:
        with db.session() as session:
            result = process_message(
                session, item.raw, item.envelope_recipients, settings=settings, source=item.source
            )
    except DBAPIError:
        raise
    except Exception:
        log.exception("inbound message %s could not be processed; moved to failed/", item.key)
        spool.quarantine(settings, item.key)
        return None
    spool.done(settings, item.key)
    return result


def process_key(settings: Settings, db: Database, key: str) -> Result | None:
    """Process the spooled message `key` if it is still pending (the receiver's task)."""
    item = spool.load(settings, key)
    if item is None:
        return None
    return process_item(settings, db, item)


def process_pending(settings: Settings, db: Database, *, limit: int | None = None) -> Summary:
    """Process every pending message of the spool, oldest first (the sweep, `missiva inbound process`)."""
    summary = Summary()
    for item in spool.pending(settings):
        if limit is not None and summary.processed + summary.failed >= limit:
            break
        result = process_item(settings, db, item)
        if result is None:
            summary.failed += 1
        else:
            summary.add(result)
    return summary
