"""The batch-sync commands of the `missiva` CLI: `import`, `export ...` and `sync ...`.

Registered on the main Typer app by `missiva.cli`; kept here so the CLI module stays a table of contents.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
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


def _output(path: Path | None) -> Any:
    return path.open("wb") if path is not None else sys.stdout.buffer


@export_app.command("unsubscribers")
def export_unsubscribers_command(
    account: int = AccountOpt,
    list_in: list[int] = typer.Option([], "--list", help="only these lists (repeatable)"),
    list_out: list[int] = typer.Option([], "--exclude-list", help="all lists but these"),
    reason_in: list[str] = typer.Option([], "--reason", help="only these reasons (console, link, ...)"),
    reason_out: list[str] = typer.Option([], "--exclude-reason", help="all reasons but these"),
    window: str = typer.Option("all", help="all, previous_day, since_last or range"),
    since: datetime = typer.Option(None, help="range start (ISO 8601 with offset)"),
    until: datetime = typer.Option(None, help="range end (ISO 8601 with offset)"),
    timezone: str = typer.Option("UTC", help="time zone of 'previous day' and of the dates written"),
    stream: str = typer.Option("cli", help="whose 'last export' since_last continues"),
    field: list[int] = typer.Option([], "--field", help="personal field number to add (repeatable)"),
    delimiter: str = typer.Option(";"),
    zipped: bool = typer.Option(False, "--zip", help="write a ZIP holding the CSV"),
    output: Path = typer.Option(None, "--output", "-o", help="file to write (default: standard output)"),
) -> None:
    """Unsubscribers by list, date window and reason, as MailUp's export columns."""
    from missiva.sync.export import UnsubscriberExport, export_unsubscribers

    with _session() as session:
        try:
            account_id = _account_id(session, account)
            spec = UnsubscriberExport(
                lists_in=tuple(list_in),
                lists_out=tuple(list_out),
                reasons_in=tuple(reason_in),
                reasons_out=tuple(reason_out),
                window=window,  # type: ignore[arg-type]
                since=since,
                until=until,
                timezone=timezone,
                stream=stream,
                fields=tuple(field),
                delimiter=delimiter,
                zipped=zipped,
            )
            out = _output(output)
            try:
                result = export_unsubscribers(session, account_id, spec, out)
            finally:
                if output is not None:
                    out.close()
            session.commit()
        except (DomainError, ValueError) as exc:
            _fail(getattr(exc, "message", str(exc)))
    console.print(f"{result.rows} unsubscribers exported")


@export_app.command("recipients")
def export_recipients_command(
    list_id: int = typer.Option(..., "--list", help="the list"),
    account: int = AccountOpt,
    status: str = typer.Option(None, help="subscribed, pending or unsubscribed"),
    channel: str = typer.Option(None, help="email or sms"),
    field: list[int] = typer.Option([], "--field", help="personal field number to add (repeatable)"),
    delimiter: str = typer.Option(";"),
    zipped: bool = typer.Option(False, "--zip"),
    output: Path = typer.Option(None, "--output", "-o"),
) -> None:
    """Every recipient of a list, optionally of one status and channel."""
    from missiva.sync.export import export_recipients

    with _session() as session:
        try:
            account_id = _account_id(session, account)
            out = _output(output)
            try:
                result = export_recipients(
                    session, account_id, out, list_id=list_id, status=status, channel=channel,
                    fields=field, delimiter=delimiter, zipped=zipped,
                )  # fmt: skip
            finally:
                if output is not None:
                    out.close()
        except (DomainError, ValueError) as exc:
            _fail(getattr(exc, "message", str(exc)))
    console.print(f"{result.rows} recipients exported")


@sync_app.command("list")
def sync_list(account: int = AccountOpt, as_json: bool = JsonOpt) -> None:
    """The account's sync jobs (secrets are never shown)."""
    from missiva.sync import sync_jobs

    key = runtime.settings().secret_key
    with _session() as session:
        rows = [
            sync_jobs.job_view(j, key) for j in sync_jobs.list_jobs(session, _account_id(session, account))
        ]
    if as_json:
        _emit({"sync_jobs": rows})
        return
    table = Table("id", "name", "direction", "where", "pattern", "schedule", "last")
    for r in rows:
        where = f"{r['kind']}://{r['host']}/{r['remote_dir']}"
        table.add_row(
            str(r["id"]),
            r["name"],
            r["direction"],
            where,
            r["pattern"],
            r["schedule"],
            r["last_status"] or "",
        )
    Console().print(table)


@sync_app.command("create")
def sync_create(
    name: str,
    kind: str = typer.Option(..., help="local, ftp, ftps or sftp"),
    account: int = AccountOpt,
    direction: str = typer.Option("import", help="import or export"),
    host: str = typer.Option(""),
    port: int = typer.Option(None),
    username: str = typer.Option(""),
    password: str = typer.Option(None, help="stored encrypted"),
    private_key_file: Path = typer.Option(
        None, exists=True, dir_okay=False, help="SFTP key, stored encrypted"
    ),
    known_host_key: str = typer.Option(None, help="the SFTP server's public key line"),
    remote_dir: str = typer.Option(""),
    pattern: str = typer.Option("*.csv", help="glob, or re:<regex>"),
    schedule: str = typer.Option("0 2 * * *", help="cron expression (UTC)"),
    options: str = typer.Option("{}", help="JSON: import options, or export filters and file_name"),
    after: str = typer.Option("archive", help="archive, rename or delete processed files"),
    folder: str = typer.Option("archive", help="archive folder"),
    as_json: bool = JsonOpt,
) -> None:
    """Create a scheduled import (or export) job."""
    from missiva.sync import sync_jobs

    key = runtime.settings().secret_key
    with _session() as session:
        try:
            job = sync_jobs.create_job(
                session, _account_id(session, account), secret_key=key, name=name, direction=direction,
                kind=kind, host=host, port=port, username=username, password=password,
                private_key=private_key_file.read_text() if private_key_file else None,
                known_host_key=known_host_key, remote_dir=remote_dir, pattern=pattern, schedule=schedule,
                options=json.loads(options), disposal={"action": after, "folder": folder},
            )  # fmt: skip
            session.commit()
            view = sync_jobs.job_view(job, key)
        except (DomainError, ValueError) as exc:
            _fail(getattr(exc, "message", str(exc)))
    _emit(view) if as_json else Console().print(
        f"sync job {view['id']} created; next run {view['next_run_at']}"
    )


@sync_app.command("run")
def sync_run(job_id: int, account: int = AccountOpt, as_json: bool = JsonOpt) -> None:
    """Run a job now, in this process."""
    from dataclasses import asdict

    from missiva.sync import sync_jobs

    settings = runtime.settings()
    with _session() as session:
        sync_jobs.get_job(session, _account_id(session, account), job_id)
    report = sync_jobs.run_job(
        runtime.database(), job_id, secret_key=settings.secret_key, work_dir=settings.data_dir / "sync"
    )
    if as_json:
        _emit(asdict(report))
    else:
        Console().print(f"job {job_id}: {report.status}" + (f" - {report.error}" if report.error else ""))
        for entry in report.imported:
            Console().print(f"  {entry['file']}: {entry['outcome']} (import {entry['run_id']})")
        if report.exported:
            Console().print(f"  pushed {report.exported['file']} ({report.exported['rows']} rows)")
    if report.status not in ("ok", "busy"):
        raise typer.Exit(1)


@sync_app.command("delete")
def sync_delete(job_id: int, account: int = AccountOpt) -> None:
    """Delete a job."""
    from missiva.sync import sync_jobs

    with _session() as session:
        try:
            sync_jobs.delete_job(session, _account_id(session, account), job_id)
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
    Console().print(f"sync job {job_id} deleted")


@sync_app.command("drop-login")
def sync_drop_login(
    username: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, help="at least 12 characters"),
    list_id: int = typer.Option(None, "--list", help="list for uploaded files"),
    account: int = AccountOpt,
) -> None:
    """Create a login to Missiva's own FTP/SFTP drop; its uploads are imported into --list."""
    from missiva.sync.drop_service import create_login
    from missiva.sync.importer import ImportOptions

    with _session() as session:
        try:
            create_login(
                session, _account_id(session, account), username, password, ImportOptions(list_id=list_id)
            )
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
    Console().print(f"drop login {username} created")
