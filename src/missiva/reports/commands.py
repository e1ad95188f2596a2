"""CLI commands of reports: ``missiva report mailing ID [--csv]`` and ``missiva report recipient EMAIL``
(registered by missiva.cli)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer
from sqlalchemy.orm import Session

from missiva.errors import DomainError
from missiva.reports import csv_export, service

report_app = typer.Typer(help="Reports: what happened to a mailing or to a recipient.", no_args_is_help=True)
AccountOpt = typer.Option(None, "--account", "-a", help="account id (default: the only account)")


def _for_account(account: int | None, build: Callable[[Session, int], Any]) -> Any:
    """Run `build(session, account id)`; a domain error exits with its message."""
    from missiva.cli import _account_id, _fail, _session
    from missiva.reports import wiring

    wiring.install()
    with _session() as session:
        try:
            return build(session, _account_id(session, account))
        except DomainError as exc:
            _fail(exc.message)
    return None


@report_app.command("mailing")
def mailing(
    mailing_ids: str = typer.Argument(..., help="a mailing id, or several comma-separated to compare"),
    account: int = AccountOpt,
    as_csv: bool = typer.Option(False, "--csv", help="CSV, one row per mailing, instead of JSON"),
) -> None:
    """The report of one mailing (or several side by side) as JSON, or CSV with --csv."""
    try:
        ids = [int(part) for part in mailing_ids.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"mailing ids must be numbers, got {mailing_ids!r}") from None
    reports = _for_account(
        account, lambda session, account_id: service.mailing_reports(session, account_id, ids)
    )
    if as_csv:
        typer.echo(csv_export.mailing_reports_csv(reports), nl=False)
    else:
        typer.echo(
            json.dumps(reports[0] if len(reports) == 1 else {"mailings": reports}, default=str, indent=2)
        )


@report_app.command("recipient")
def recipient(email: str, account: int = AccountOpt) -> None:
    """The report of one recipient by email address: subscriptions, mailings received, opens, clicks."""
    report = _for_account(
        account, lambda session, account_id: service.recipient_report(session, account_id, email=email)
    )
    typer.echo(json.dumps(report, default=str, indent=2))
