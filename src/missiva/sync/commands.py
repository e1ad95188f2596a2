"""The batch-sync commands of the `missiva` CLI: `import`, `export ...` and `sync ...`.

Registered on the main Typer app by `missiva.cli`; kept here so the CLI module stays a table of contents.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.errors import DomainError

console = Console(stderr=True)
export_app = typer.Typer(help="Exports: unsubscribers, recipients.", no_args_is_help=True)
sync_app = typer.Typer(help="Scheduled FTP/FTPS/SFTP transfers and drop logins.", no_args_is_help=True)

JsonOpt = typer.Option(False, "--json", help="print the result as one JSON object")
AccountOpt = typer.Option(None, "--account", "-a", help="account id (default: the only account)")


def register(app: typer.Typer) -> None:
    """Add the commands to the main app."""
    app.command("import")(import_command)
    app.add_typer(export_app, name="export")
    app.add_typer(sync_app, name="sync")


def _session() -> Session:
    runtime.configure(runtime.settings())
    return runtime.database().sessionmaker()


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _account_id(session: Session, account: int | None) -> int:
    from missiva.tenancy import service as tenancy

    if account is not None:
        tenancy.get_account(session, account)
        return account
    accounts = tenancy.list_accounts(session)
    if len(accounts) != 1:
        _fail("several accounts exist (or none): pass --account ID")
    return accounts[0].id


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o)))


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column.strip() or not target.strip():
            _fail(f"--map expects COLUMN=TARGET, not {pair!r}")
        mapping[column.strip()] = target.strip()
    return mapping


def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV, ZIP, XML or XLSX"),
    list_id: int = typer.Option(None, "--list", "-l", help="list for rows that do not name one"),
    group: list[int] = typer.Option([], "--group", "-g", help="group id for every row (repeatable)"),
    account: int = AccountOpt,
    channels: str = typer.Option("email", "--type", help="email, sms or both (MailUp importType)"),
    overwrite_empty: bool = typer.Option(False, help="empty cells clear fields (importType 4-6)"),
    pending: bool = typer.Option(False, help="new subscriptions wait for confirmation (asPending)"),
    confirm: bool = typer.Option(False, help="with --pending, mail the confirmation request"),
    opt_out: bool = typer.Option(False, help="the file lists unsubscribers (asOptOut)"),
    force_opt_in: bool = typer.Option(False, help="resubscribe pending and unsubscribed rows (forceOptIn)"),
    replace_groups: bool = typer.Option(False, help="row groups replace the recipient's (replaceGroups)"),
    delimiter: str = typer.Option(None, help="CSV delimiter (default: sniffed)"),
    encoding: str = typer.Option(None, help="text encoding (default: detected)"),
    map_: list[str] = typer.Option([], "--map", help="COLUMN=TARGET (email, a field number, campoN, ...)"),
    batch_size: int = typer.Option(5000, help="rows per committed batch"),
    as_json: bool = JsonOpt,
) -> None:
    """Import a file into a list; rerunning after an interruption resumes where it stopped."""
    import missiva.jobs  # noqa: F401  - listeners: confirmation mails and other reactions to events
    from missiva.sync.importer import (
        ImportOptions,
        create_run,
        find_resumable,
        run_errors,
        run_import,
        run_view,
    )
    from missiva.sync.importer.runs import file_digest

    path = file.resolve()
    with _session() as session:
        try:
            account_id = _account_id(session, account)
            options = ImportOptions(
                list_id=list_id,
                group_ids=tuple(group),
                channels=channels,  # type: ignore[arg-type]
                overwrite_empty=overwrite_empty,
                as_pending=pending,
                send_confirmation=confirm,
                as_opt_out=opt_out,
                force_opt_in=force_opt_in,
                replace_groups=replace_groups,
                mapping=_mapping(map_),
                delimiter=delimiter,
                encoding=encoding,
            )
            sha256, _size = file_digest(path)
            run = find_resumable(session, account_id, sha256, options, source="cli")
            resumed = run is not None and run.checkpoint > 0
            if run is None:
                run = create_run(session, account_id, path, options, source="cli")
            session.commit()
            run_id = run.id
        except (DomainError, ValueError) as exc:
            _fail(getattr(exc, "message", str(exc)))
    if resumed and not as_json:
        console.print(f"resuming import {run_id}")
    db = runtime.database()
    show = sys.stderr.isatty() and not as_json
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    ) as bar:
        task = bar.add_task("checking", total=None)

        def progress(phase: str, done: int, total: int | None) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        final = run_import(db, run_id, progress=progress, batch_size=batch_size, force=True)
    with db.session() as session:
        view = run_view(final)
        view["errors"] = run_errors(session, run_id)
    if as_json:
        _emit(view)
    else:
        _print_run(view)
    if final.status != "completed":
        raise typer.Exit(1)


def _print_run(view: dict[str, Any]) -> None:
    out = Console()
    out.print(f"import {view['id']}: {view['status']}" + (f" - {view['error']}" if view["error"] else ""))
    table = Table(*view["counters"].keys())
    table.add_row(*(str(v) for v in view["counters"].values()))
    out.print(table)
    for error in view["errors"][:20]:
        where = f"row {error['row']}" + (f" ({error['entry']})" if error["entry"] else "")
        out.print(f"  {where}, {error['column'] or '-'}: {error['reason']}")
    if len(view["errors"]) > 20:
        out.print(f"  ... {len(view['errors']) - 20} more (use --json for all)")
