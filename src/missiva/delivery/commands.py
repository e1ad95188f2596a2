"""CLI commands of the sending engine: `missiva send`, `missiva mailings`, `missiva messages`,
`missiva suppressions` (registered by missiva.cli)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from missiva import runtime
from missiva.delivery import mailings, suppression
from missiva.delivery.sender import run_mailing
from missiva.errors import DomainError
from missiva.messages import service as messages

mailings_app = typer.Typer(
    help="Mailings: status, pause, resume, cancel, resend uncertain.", no_args_is_help=True
)
messages_app = typer.Typer(help="Messages of a list.", no_args_is_help=True)
suppressions_app = typer.Typer(help="The account-wide suppression list.", no_args_is_help=True)
AccountOpt = typer.Option(None, "--account", "-a", help="account id (default: the only account)")


def _emit(obj: Any) -> None:
    typer.echo(json.dumps(obj, default=str))


def _run(action: Any) -> Any:
    """Run `action(session, account_id)` in one transaction; domain errors exit with their message."""
    from missiva.cli import _fail, _session

    with _session() as session:
        try:
            result = action(session)
            session.commit()
            return result
        except DomainError as exc:
            session.rollback()
            _fail(exc.message)
    return None


def _account(session: Any, account: int | None) -> int:
    from missiva.cli import _account_id

    return _account_id(session, account)


def _mailing_view(m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "status": m.status,
        "audience": m.audience_size,
        "queued": m.queued,
        "sent": m.sent,
        "deferred": m.deferred,
        "hard_bounced": m.hard_bounced,
        "failed": m.failed,
        "uncertain": m.uncertain,
        "suppressed": m.suppressed,
        "suppressed_by_reason": m.suppressed_by_reason,
        "soft_bounced": m.soft_bounced,
        "complaints": m.complaints,
    }


def send(
    message_id: int = typer.Argument(..., help="the message to send (its list is the audience)"),
    group: list[int] = typer.Option([], "--group", "-g", help="send to this group (repeatable)"),
    exclude_group: list[int] = typer.Option([], "--exclude-group", help="leave out this group (repeatable)"),
    at: datetime | None = typer.Option(None, "--at", help="schedule: ISO time (naive = --timezone)"),
    timezone: str = typer.Option("UTC", "--timezone"),
    per_minute: int | None = typer.Option(None, "--per-minute"),
    per_hour: int | None = typer.Option(None, "--per-hour"),
    queue: bool = typer.Option(False, "--queue", help="leave the sending to the workers instead of here"),
    account: int | None = AccountOpt,
) -> None:
    """Create a mailing of MESSAGE_ID and send it now in this process (or schedule / queue it)."""
    audience = {"groups": group, "exclude_groups": exclude_group}
    if not queue and at is None:
        mailings.set_enqueuer(lambda _mailing_id: None)  # this process sends it below

    def create(session: Any) -> Any:
        account_id = _account(session, account)
        values = {"message_id": message_id, "audience": audience, "timezone": timezone}
        values.update(per_minute=per_minute, per_hour=per_hour)
        mailing = mailings.create(session, account_id, values)
        mailings.start(session, account_id, mailing.id, at=at)
        return mailing.id, mailing.status

    mailing_id, status = _run(create)
    if status == "running" and not queue:
        outcome = run_mailing(runtime.database(), mailing_id)
        typer.echo(f"mailing {mailing_id}: {outcome.status}, {outcome.sent} sent")
    else:
        typer.echo(f"mailing {mailing_id}: {status}")


@mailings_app.command("show")
def mailings_show(mailing_id: int, account: int | None = AccountOpt) -> None:
    """Status and live counters of a mailing, as JSON."""
    _emit(_run(lambda s: _mailing_view(mailings.get(s, _account(s, account), mailing_id))))


@mailings_app.command("list")
def mailings_list(account: int | None = AccountOpt) -> None:
    """The account's mailings, newest first, one JSON object per line."""
    for view in _run(lambda s: [_mailing_view(m) for m in mailings.list_mailings(s, _account(s, account))]):
        _emit(view)


@mailings_app.command("pause")
def mailings_pause(mailing_id: int, account: int | None = AccountOpt) -> None:
    """Pause a running mailing."""
    _emit(_run(lambda s: _mailing_view(mailings.pause(s, _account(s, account), mailing_id))))


@mailings_app.command("resume")
def mailings_resume(mailing_id: int, account: int | None = AccountOpt) -> None:
    """Resume a paused mailing (queued for the workers)."""
    _emit(_run(lambda s: _mailing_view(mailings.resume(s, _account(s, account), mailing_id))))


@mailings_app.command("cancel")
def mailings_cancel(mailing_id: int, account: int | None = AccountOpt) -> None:
    """Cancel a mailing: recipients not yet sent to never will be."""
    _emit(_run(lambda s: _mailing_view(mailings.cancel(s, _account(s, account), mailing_id))))


@mailings_app.command("resend-uncertain")
def mailings_resend_uncertain(mailing_id: int, account: int | None = AccountOpt) -> None:
    """Queue again the recipients a crash left uncertain (they may get the mailing twice)."""
    count = _run(lambda s: mailings.resend_uncertain(s, _account(s, account), mailing_id))
    typer.echo(f"{count} uncertain recipients queued again")


@mailings_app.command("run")
def mailings_run(mailing_id: int) -> None:
    """Run a sender on a running mailing in this process (another worker may share it)."""
    outcome = run_mailing(runtime.database(), mailing_id)
    typer.echo(f"mailing {mailing_id}: {outcome.status}, {outcome.sent} sent")


@messages_app.command("list")
def messages_list(list_id: int, account: int | None = AccountOpt) -> None:
    """The messages of a list, one JSON object per line."""
    rows = _run(
        lambda s: [
            {"id": m.id, "subject": m.subject, "mode": m.mode}
            for m in messages.list_for(s, _account(s, account), list_id)
        ]
    )
    for row in rows:
        _emit(row)


@messages_app.command("create")
def messages_create(
    list_id: int,
    subject: str = typer.Option(..., "--subject"),
    html: Path | None = typer.Option(None, "--html", help="file with the HTML part"),
    text: Path | None = typer.Option(None, "--text", help="file with the text part"),
    from_email: str = typer.Option("", "--from"),
    mode: str = typer.Option("merge", "--mode", help="merge (MailUp tags) or jinja"),
    account: int | None = AccountOpt,
) -> None:
    """Create a message from files; template errors are reported with line and tag."""
    values = {
        "subject": subject,
        "html": html.read_text() if html else None,
        "text": text.read_text() if text else None,
        "from_email": from_email,
        "mode": mode,
    }
    message = _run(lambda s: messages.create(s, _account(s, account), list_id, values))
    typer.echo(f"message {message.id} created")


@messages_app.command("preview")
def messages_preview(message_id: int, recipient: int | None = None, account: int | None = AccountOpt) -> None:
    """The message as a recipient would receive it (JSON: subject, html, text)."""
    _emit(_run(lambda s: messages.preview(s, _account(s, account), message_id, recipient_id=recipient)))


@suppressions_app.command("list")
def suppressions_list(reason: str | None = None, account: int | None = AccountOpt) -> None:
    """Suppressed addresses (first 1000), one JSON object per line."""
    rows = _run(lambda s: suppression.page(s, _account(s, account), reason=reason, limit=1000))
    for row in rows:
        _emit(
            {"address": row.address, "reason": row.reason, "source": row.source, "created_at": row.created_at}
        )


@suppressions_app.command("add")
def suppressions_add(address: str, reason: str = "manual", account: int | None = AccountOpt) -> None:
    """Suppress an address."""
    added = _run(lambda s: suppression.add(s, _account(s, account), address, reason=reason, source="console"))
    typer.echo("suppressed" if added else "already suppressed")


@suppressions_app.command("remove")
def suppressions_remove(address: str, account: int | None = AccountOpt) -> None:
    """Allow mail to an address again."""
    _run(lambda s: suppression.remove(s, _account(s, account), address))
    typer.echo("removed")


@suppressions_app.command("import")
def suppressions_import(path: Path, reason: str = "import", account: int | None = AccountOpt) -> None:
    """Suppress every address of a CSV file (first column or the column named email)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        result = _run(lambda s: suppression.import_csv(s, _account(s, account), fh, reason=reason))
    typer.echo(
        f"{result.added} added, {result.already} already suppressed, {len(result.errors or [])} errors"
    )
    for error in result.errors or []:
        typer.echo(f"  line {error['line']}: {error['message']}")


@suppressions_app.command("export")
def suppressions_export(account: int | None = AccountOpt) -> None:
    """The whole list as CSV on standard output."""
    from missiva.cli import _session

    with _session() as session:
        for chunk in suppression.export_csv(session, _account(session, account)):
            typer.echo(chunk, nl=False)
