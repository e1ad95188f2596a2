"""What an import row does to a subscription, given its current status and the import options.

One decision table, written once in Python and compiled into the SQL CASE the batch writer runs, so the
semantics can be read (and tested) here rather than inside a query. It follows MailUp and
`audience.subscriptions`: an unforced import never re-subscribes someone who unsubscribed or is
waiting to confirm.
"""

from __future__ import annotations

from enum import StrEnum

from missiva.audience.enums import Status
from missiva.sync.importer.options import ImportOptions


class Action(StrEnum):
    """The change an import makes to one subscription."""

    CREATE_SUBSCRIBED = "create_sub"
    CREATE_PENDING = "create_pending"
    CREATE_UNSUBSCRIBED = "create_unsub"
    SUBSCRIBE = "subscribe"  # pending/unsubscribed -> subscribed (forceOptIn)
    REQUEST = "request"  # unsubscribed -> pending (forceOptIn with asPending)
    UNSUBSCRIBE = "unsubscribe"  # subscribed/pending -> unsubscribed (asOptOut)
    KEEP = "keep"  # status stays; fields and groups are still updated
    SKIP = "skip"  # status stays and, if no other channel of the row acts, the row is skipped


CREATES = (Action.CREATE_SUBSCRIBED, Action.CREATE_PENDING, Action.CREATE_UNSUBSCRIBED)


def decide(current: str | None, options: ImportOptions) -> Action:
    """The action for a subscription whose status is `current` (None: the recipient is not on the list)."""
    if current is None or current == "new":
        if options.as_opt_out:
            return Action.CREATE_UNSUBSCRIBED
        return Action.CREATE_PENDING if options.as_pending else Action.CREATE_SUBSCRIBED
    if current == Status.SUBSCRIBED:
        return Action.UNSUBSCRIBE if options.as_opt_out else Action.KEEP
    if current == Status.PENDING:
        if options.as_opt_out:
            return Action.UNSUBSCRIBE
        if options.force_opt_in and not options.as_pending:
            return Action.SUBSCRIBE
        return Action.SKIP
    if current == Status.UNSUBSCRIBED:
        if options.as_opt_out:
            return Action.KEEP
        if options.force_opt_in:
            return Action.REQUEST if options.as_pending else Action.SUBSCRIBE
        return Action.SKIP
    raise ValueError(f"unknown subscription status {current!r}")


def action_case(options: ImportOptions, column: str = "cur") -> str:
    """The decision table as a SQL CASE over the current-status `column` (values are literals we own)."""
    parts = [f"WHEN {column} IS NULL OR {column} = 'new' THEN '{decide(None, options).value}'"]
    for status in (Status.SUBSCRIBED, Status.PENDING, Status.UNSUBSCRIBED):
        parts.append(f"WHEN {column} = '{status.value}' THEN '{decide(status.value, options).value}'")
    return "CASE " + " ".join(parts) + " ELSE 'skip' END"
