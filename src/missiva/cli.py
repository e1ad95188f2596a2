"""The `missiva` command line (Typer): serve, migrate, and day-to-day administration."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.config import Settings
from missiva.errors import DomainError

app = typer.Typer(
    help="Missiva: self-hosted email and SMS marketing built for integration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
account_app = typer.Typer(help="Accounts (tenants, MailUp consoles).", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
lists_app = typer.Typer(help="Lists of an account.", invoke_without_command=True)
recipients_app = typer.Typer(help="Recipients of an account.", no_args_is_help=True)
ips_app = typer.Typer(help="Caller-IP allowlist for the MailUp frontend calls.", no_args_is_help=True)
inbound_app = typer.Typer(help="Inbound mail: bounces, complaints, unsubscribe mails.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook endpoints, delivery log, dispatcher.", no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(apikey_app, name="apikey")
app.add_typer(lists_app, name="lists")
app.add_typer(recipients_app, name="recipients")
app.add_typer(ips_app, name="allowed-ips")
app.add_typer(inbound_app, name="inbound")


def _register_sending() -> None:
    from missiva.delivery import commands

    app.command("send")(commands.send)
    app.add_typer(commands.mailings_app, name="mailings")
    app.add_typer(commands.messages_app, name="messages")
    app.add_typer(commands.suppressions_app, name="suppressions")

    from missiva.reports.commands import report_app

    app.add_typer(report_app, name="report")
    from missiva.delivery.sms import commands as sms_commands

    app.add_typer(sms_commands.sms_app, name="sms")


_register_sending()
app.add_typer(webhooks_app, name="webhooks")
console = Console()

JsonOpt = typer.Option(False, "--json", help="print the result as one JSON object")
AccountOpt = typer.Option(None, "--account", "-a", help="account id (default: the only account)")


@app.callback()
def _with_listeners() -> None:
    """Every command reacts to what it changes as the API does: webhook outbox rows, confirmation mails,
    mailings queued for the workers. Those listeners are installed by importing `missiva.jobs`."""
    import missiva.jobs  # noqa: F401


def _settings() -> Settings:
    settings = runtime.settings()
    runtime.configure(settings)
    return settings


def _session() -> Session:
    _settings()
    return runtime.database().sessionmaker()


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


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
    typer.echo(json.dumps(obj, default=str))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from missiva import migrate as migrations

    settings = _settings()
    migrations.upgrade(settings.database_url)
    console.print(f"database at {settings.database_url} is up to date")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="HTTP port"),
    workers: int = typer.Option(1, help="HTTP worker processes"),
    worker: bool = typer.Option(True, help="also run the background worker in this process"),
    sms: bool = typer.Option(True, help="also keep SMPP binds open for SMS receipts and replies"),
    bootstrap: bool = typer.Option(False, help="create a demo account on first start and print its key"),
) -> None:
    """Migrate, then serve the API, the MailUp frontend, public pages and the background worker."""
    import uvicorn

    from missiva import migrate as migrations

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
    settings = _settings()
    if not os.environ.get("MISSIVA_BASE_URL") and host not in ("0.0.0.0", "::"):  # noqa: S104
        # Links in mail (confirmation, unsubscribe) must point at where we actually listen.
        settings = dataclasses.replace(settings, base_url=f"http://{host}:{port}")
        os.environ["MISSIVA_BASE_URL"] = settings.base_url  # for worker processes
        runtime.configure(settings)
    migrations.upgrade(settings.database_url)
    if bootstrap:
        from missiva.bootstrap import ensure_demo

        base = f"http://{host}:{port}" if host not in ("0.0.0.0", "::") else settings.base_url  # noqa: S104
        _print_demo(ensure_demo(settings), base)
    receiver = None
    if settings.inbound_port:
        from missiva.inbound.receiver import Receiver
        from missiva.jobs import enqueue_inbound

        receiver = Receiver(settings, enqueue_inbound)
        ihost, iport = receiver.start()
        console.print(f"  inbound SMTP : {ihost}:{iport} (mail for @{settings.bounce_domain})")
    consumer = None
    if worker and not settings.huey_immediate:
        from missiva.jobs import huey

        consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=True)
        consumer.start()
    listener = None
    if sms:
        from missiva.delivery.sms.commands import start_in_thread

        listener = start_in_thread()
    drops = _start_drops(settings)
    try:
        if workers > 1:
            uvicorn.run(
                "missiva.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
            )
        else:
            from missiva.app import create_app

            uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        if listener is not None:
            listener.stop()
        drops.stop()
        if consumer is not None:
            consumer.stop(graceful=True)
        if receiver is not None:
            receiver.stop()


@app.command()
def worker(
    processes: int = typer.Option(2, min=1, max=64, help="worker processes (one per core for mailings)"),
) -> None:
    """Run background tasks only (no HTTP): sending, webhooks, imports, inbound, schedules.

    Start it on as many machines as needed with MISSIVA_REDIS_URL (or on one machine with the
    default SQLite queue); with MISSIVA_SEND_PARALLEL=N each mailing gets N senders sharing it.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings()
    if settings.huey_immediate:
        _fail("MISSIVA_HUEY_IMMEDIATE is set: tasks run where they are queued, there is nothing to work on")
    from missiva import migrate as migrations
    from missiva.jobs import huey

    migrations.upgrade(settings.database_url)
    console.print(f"worker: {processes} processes on the {type(huey.storage).__name__} queue")
    huey.create_consumer(workers=processes, worker_type="process", periodic=True).run()


def _start_drops(settings: Settings) -> Any:
    """The FTP/SFTP drop servers, when MISSIVA_DROP_FTP_PORT / MISSIVA_DROP_SFTP_PORT are set."""
    from missiva.jobs import run_import_task
    from missiva.sync.drop_service import start_from_environment

    return start_from_environment(settings, runtime.database(), run_import_task)


def _print_demo(demo: dict[str, Any], base: str) -> None:
    console.print("[bold]Missiva is starting[/bold]")
    console.print(f"  API base URL : {base}/api/v1")
    console.print(f"  OpenAPI docs : {base}/docs")
    console.print(f"  MailUp calls : {base}/frontend/xmlSubscribe.aspx")
    console.print(f"  demo account : {demo['account_id']} (list {demo['list_id']})")
    console.print(f"  API key      : {demo['api_key']}")
    print(
        f'  try          : curl -H "Authorization: Bearer {demo["api_key"]}" {base}/api/v1/lists', flush=True
    )


# -- accounts and keys ---------------------------------------------------------------------------


@account_app.command("create")
def account_create(
    name: str,
    host: str = typer.Option(None, help="console host name MailUp clients use for this account"),
    country: str = typer.Option(None, help="default country for mobile numbers without prefix (e.g. IT)"),
    as_json: bool = JsonOpt,
) -> None:
    """Create an account with its standard fields, a web-service user and a first API key."""
    from missiva.bootstrap import create_account

    with _session() as session:
        try:
            new = create_account(session, name, host=host, default_country=country)
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
        out = {
            "id": new.account.id,
            "name": new.account.name,
            "host": new.account.host,
            "api_key": new.api_key,
            "ws_username": new.ws_username,
            "ws_password": new.ws_password,
        }
    if as_json:
        _emit(out)
    else:
        for key, value in out.items():
            console.print(f"{key:12}: {value}")


@account_app.command("list")
def account_list(as_json: bool = JsonOpt) -> None:
    """Every account."""
    from missiva.tenancy import service as tenancy

    with _session() as session:
        rows = [{"id": a.id, "name": a.name, "host": a.host} for a in tenancy.list_accounts(session)]
    if as_json:
        _emit({"accounts": rows})
    else:
        for r in rows:
            console.print(f"{r['id']:>5}  {r['name']}  {r['host'] or ''}")


@apikey_app.command("create")
def apikey_create(
    account: int = AccountOpt, name: str = typer.Option("", help="a label"), as_json: bool = JsonOpt
) -> None:
    """Create an API key; the key is shown only now."""
    from missiva.tenancy import service as tenancy

    with _session() as session:
        account_id = _account_id(session, account)
        key = tenancy.create_api_key(session, account_id, name=name)
        session.commit()
    if as_json:
        _emit({"id": key.id, "account_id": account_id, "name": key.name, "key": key.key})
    else:
        console.print(key.key)


# -- lists and recipients ------------------------------------------------------------------------


@lists_app.callback()
def lists_show(ctx: typer.Context, account: int = AccountOpt, as_json: bool = JsonOpt) -> None:
    """Show the account's lists (or run a sub-command)."""
    if ctx.invoked_subcommand is not None:
        return
    from missiva.audience import lists as lists_svc

    with _session() as session:
        account_id = _account_id(session, account)
        rows = [
            {"id": lst.id, "guid": lst.guid, "name": lst.name, "opt_in": lst.opt_in, "language": lst.language}
            for lst in lists_svc.list_lists(session, account_id)
        ]
    if as_json:
        _emit({"lists": rows})
        return
    table = Table("id", "guid", "name", "opt-in", "language")
    for r in rows:
        table.add_row(str(r["id"]), r["guid"], r["name"], r["opt_in"], r["language"])
    console.print(table)


@lists_app.command("create")
def lists_create(
    name: str,
    account: int = AccountOpt,
    opt_in: str = typer.Option("double", help="single or double"),
    language: str = typer.Option("en", help="en or it"),
    sender_email: str = typer.Option(None),
    sender_name: str = typer.Option(None),
    as_json: bool = JsonOpt,
) -> None:
    """Create a list."""
    from missiva.audience import lists as lists_svc

    with _session() as session:
        account_id = _account_id(session, account)
        try:
            lst = lists_svc.create_list(
                session,
                account_id,
                name,
                opt_in=opt_in,
                language=language,
                sender_email=sender_email,
                sender_name=sender_name,
            )
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
        out = {"id": lst.id, "guid": lst.guid, "name": lst.name, "opt_in": lst.opt_in}
    _emit(out) if as_json else console.print(f"list {out['id']} created ({out['guid']})")


@recipients_app.command("find")
def recipients_find(
    account: int = AccountOpt,
    email: str = typer.Option(None),
    mobile: str = typer.Option(None),
    list_id: int = typer.Option(None, "--list"),
    status: str = typer.Option(None),
    limit: int = typer.Option(50),
    as_json: bool = JsonOpt,
) -> None:
    """Find recipients by email, mobile, list and status."""
    from missiva.audience import recipients as recipients_svc

    with _session() as session:
        account_id = _account_id(session, account)
        found = recipients_svc.search(
            session, account_id, email=email, mobile=mobile, list_id=list_id, status=status, limit=limit
        )
        rows = []
        for r in found:
            subs = [
                {
                    "list_id": s.list_id,
                    "channel": s.channel,
                    "status": s.status,
                    "reason": s.unsubscribe_reason,
                }
                for s in recipients_svc.subscriptions_of(session, r.id)
            ]
            rows.append(
                {"id": r.id, "email": r.email, "mobile": r.mobile, "fields": r.fields, "subscriptions": subs}
            )
    if as_json:
        _emit({"recipients": rows})
        return
    table = Table("id", "email", "mobile", "subscriptions")
    for r in rows:
        subs = ", ".join(f"{s['list_id']}/{s['channel']}:{s['status']}" for s in r["subscriptions"])
        table.add_row(str(r["id"]), r["email"] or "", r["mobile"] or "", subs)
    console.print(table)


# -- allowlist -----------------------------------------------------------------------------------


@ips_app.command("list")
def ips_list(account: int = AccountOpt, as_json: bool = JsonOpt) -> None:
    """Addresses allowed to call the MailUp frontend."""
    from missiva.tenancy import service as tenancy

    with _session() as session:
        rows = [
            {"id": r.id, "network": r.network, "note": r.note}
            for r in tenancy.list_allowed_ips(session, _account_id(session, account))
        ]
    if as_json:
        _emit({"allowed_ips": rows})
    else:
        for r in rows:
            console.print(f"{r['id']:>5}  {r['network']:<20} {r['note']}")


@ips_app.command("add")
def ips_add(
    network: str, account: int = AccountOpt, note: str = typer.Option(""), as_json: bool = JsonOpt
) -> None:
    """Allow an address or CIDR network."""
    from missiva.tenancy import service as tenancy

    with _session() as session:
        try:
            row = tenancy.add_allowed_ip(session, _account_id(session, account), network, note=note)
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
        out = {"id": row.id, "network": row.network, "note": row.note}
    _emit(out) if as_json else console.print(f"allowed {out['network']} (id {out['id']})")


@ips_app.command("remove")
def ips_remove(entry_id: int, account: int = AccountOpt) -> None:
    """Remove an allowlist entry by id."""
    from missiva.tenancy import service as tenancy

    with _session() as session:
        try:
            tenancy.remove_allowed_ip(session, _account_id(session, account), entry_id)
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
    console.print(f"removed entry {entry_id}")


# -- inbound -------------------------------------------------------------------------------------


@inbound_app.command("classify")
def inbound_classify(files: list[Path] = typer.Argument(..., help="raw messages (.eml)")) -> None:
    """Classify messages: one JSON object per file and line (file, kind, status, recipient, ...)."""
    from missiva.inbound.classify import classify
    from missiva.keys import derived_secret

    secret = derived_secret("verp", _settings().secret_key)
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            _emit(
                {"file": str(path), "kind": "unknown", "status": None, "recipient": None, "error": str(exc)}
            )
            continue
        _emit({"file": str(path), **classify(raw, verp_secret=secret).to_dict()})


@inbound_app.command("serve")
def inbound_serve(
    host: str = typer.Option(None, help="address (default MISSIVA_INBOUND_HOST)"),
    port: int = typer.Option(None, help="port (default MISSIVA_INBOUND_PORT)"),
) -> None:
    """Run only the inbound SMTP receiver (bounces, complaints, unsubscribe mails)."""
    import signal
    import threading

    from missiva.inbound.receiver import Receiver
    from missiva.jobs import enqueue_inbound

    settings = _settings()
    if host:
        settings = dataclasses.replace(settings, inbound_host=host)
        runtime.configure(settings)
    receiver = Receiver(settings, enqueue_inbound, port=port)
    ihost, iport = receiver.start()
    console.print(f"inbound SMTP listening on {ihost}:{iport} for @{settings.bounce_domain}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()


# -- webhooks ------------------------------------------------------------------------------------


def _endpoint_dict(endpoint: Any) -> dict[str, Any]:
    from missiva.events.api import endpoint_out

    return endpoint_out(endpoint).model_dump(mode="json")


@webhooks_app.command("create")
def webhooks_create(
    url: str,
    account: int = AccountOpt,
    fmt: str = typer.Option("native", "--format", help="native or mailup"),
    event: list[str] = typer.Option([], "--event", help="event type to send (repeat; default all)"),
    source: list[str] = typer.Option([], "--source", help="api, console, recipient, import, system"),
    list_id: int = typer.Option(None, "--list", help="only events of this list"),
    description: str = typer.Option("", help="a label"),
    param: list[str] = typer.Option([], "--param", help="MailUp parameter NAME=[Placeholder] (repeat)"),
    method: str = typer.Option("POST", help="MailUp format: GET or POST"),
    encryption: str = typer.Option("none", help="MailUp format: none, magento or joomla"),
    key: str = typer.Option(None, help="MailUp format: the shared RC4 key"),
    upper: bool = typer.Option(False, help="MailUp format: write [EventType] in upper case"),
    batch_size: int = typer.Option(1, "--batch-size", help="message events per request (native format)"),
    as_json: bool = JsonOpt,
) -> None:
    """Register a webhook endpoint; prints its signing secret."""
    from missiva.events import service

    mailup = None
    if fmt == "mailup":
        pairs = [p.split("=", 1) for p in param]
        if any(len(p) != 2 for p in pairs):
            _fail("--param takes NAME=VALUE, e.g. --param customerEmail=[Email]")
        mailup = service.MailupOptions(
            params=pairs,
            method=method,
            encryption=encryption,
            key=key,
            event_type_case="upper" if upper else "title",
        )
    with _session() as session:
        try:
            endpoint, secret = service.create_endpoint(
                session,
                _account_id(session, account),
                url=url,
                format=fmt,
                description=description,
                event_types=event,
                sources=source,
                list_id=list_id,
                mailup=mailup,
                batch_size=batch_size,
            )
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
        out = {**_endpoint_dict(endpoint), "secret": secret}
    if as_json:
        _emit(out)
    else:
        console.print(f"webhook {out['id']} created; signing secret: {secret}")


@webhooks_app.command("list")
def webhooks_list(account: int = AccountOpt, as_json: bool = JsonOpt) -> None:
    """The account's endpoints with their health."""
    from missiva.events import service

    with _session() as session:
        rows = [_endpoint_dict(e) for e in service.list_endpoints(session, _account_id(session, account))]
    if as_json:
        _emit({"webhooks": rows})
        return
    table = Table("id", "format", "url", "events", "health")
    for r in rows:
        table.add_row(str(r["id"]), r["format"], r["url"], ",".join(r["event_types"]) or "all", r["health"])
    console.print(table)


@webhooks_app.command("show")
def webhooks_show(
    endpoint_id: int,
    account: int = AccountOpt,
    secret: bool = typer.Option(False, "--secret", help="also print the signing secret"),
    as_json: bool = JsonOpt,
) -> None:
    """One endpoint, its health and delivery counts."""
    from sqlalchemy import func, select

    from missiva.events import service
    from missiva.events.models import WebhookDelivery

    with _session() as session:
        account_id = _account_id(session, account)
        try:
            out = _endpoint_dict(service.get_endpoint(session, account_id, endpoint_id))
            if secret:
                out["secret"] = service.reveal_secret(session, account_id, endpoint_id)
        except DomainError as exc:
            _fail(exc.message)
        counts = session.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .group_by(WebhookDelivery.status)
        ).all()
        out["deliveries"] = {status: n for status, n in counts}
    if as_json:
        _emit(out)
    else:
        for k, v in out.items():
            console.print(f"{k:28}: {v}")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    endpoint_id: int,
    account: int = AccountOpt,
    status: str = typer.Option(None, help="pending, delivered, dead or cancelled"),
    limit: int = typer.Option(50),
    as_json: bool = JsonOpt,
) -> None:
    """The endpoint's delivery log, newest first."""
    from missiva.events import service
    from missiva.events.api import delivery_out

    with _session() as session:
        try:
            rows = [
                delivery_out(d).model_dump(mode="json")
                for d in service.list_deliveries(
                    session, _account_id(session, account), endpoint_id, status=status, limit=limit
                )
            ]
        except DomainError as exc:
            _fail(exc.message)
    if as_json:
        _emit({"deliveries": rows})
        return
    table = Table("id", "webhook-id", "status", "attempts", "code", "ms", "last error")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["webhook_id"],
            r["status"],
            str(r["attempts"]),
            str(r["response_code"] or ""),
            str(r["latency_ms"] or ""),
            (r["last_error"] or "")[:60],
        )
    console.print(table)


@webhooks_app.command("redeliver")
def webhooks_redeliver(
    endpoint_id: int,
    delivery_id: int = typer.Argument(None, help="one delivery; omit with --dead"),
    dead: bool = typer.Option(False, "--dead", help="requeue every dead delivery of the endpoint"),
    account: int = AccountOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Send a delivery again (same webhook-id), or every dead one."""
    from missiva.events import service

    if (delivery_id is None) == (not dead):
        _fail("give a DELIVERY_ID or --dead (not both)")
    with _session() as session:
        account_id = _account_id(session, account)
        try:
            if dead:
                count = service.redeliver_dead(session, account_id, endpoint_id)
            else:
                service.redeliver(session, account_id, endpoint_id, delivery_id)
                count = 1
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
    _emit({"requeued": count}) if as_json else console.print(f"requeued {count} deliveries")


@webhooks_app.command("rotate-secret")
def webhooks_rotate(
    endpoint_id: int,
    account: int = AccountOpt,
    overlap_hours: float = typer.Option(24.0, help="hours the old secret stays valid (0: at once)"),
    as_json: bool = JsonOpt,
) -> None:
    """Give the endpoint a new signing secret; both are sent during the overlap."""
    from datetime import timedelta

    from missiva.events import service

    with _session() as session:
        try:
            rotation = service.rotate_secret(
                session,
                _account_id(session, account),
                endpoint_id,
                overlap=timedelta(hours=overlap_hours),
            )
            session.commit()
        except DomainError as exc:
            _fail(exc.message)
    out = {"secret": rotation.secret, "previous_valid_until": rotation.previous_valid_until}
    _emit(out) if as_json else console.print(f"new secret: {rotation.secret}")


@webhooks_app.command("dispatch")
def webhooks_dispatch(
    until_idle: bool = typer.Option(False, help="stop when nothing is due instead of polling"),
    batch_size: int = typer.Option(200),
    concurrency: int = typer.Option(64, help="simultaneous requests"),
    timeout: float = typer.Option(10.0, help="seconds per request"),
    lease: float = typer.Option(60.0, help="seconds a claim lasts (at least twice the timeout)"),
) -> None:
    """Run a webhook dispatcher in the foreground (the worker runs one too)."""
    import threading
    from datetime import timedelta

    from missiva.events.dispatcher import DispatchConfig, Dispatcher

    settings = _settings()
    config = DispatchConfig(
        batch_size=batch_size, concurrency=concurrency, timeout=timeout, lease=timedelta(seconds=lease)
    )
    dispatcher = Dispatcher(runtime.database(), settings.secret_key, config)
    if until_idle:
        count = dispatcher.run_until_idle()
    else:
        stop = threading.Event()
        try:
            count = dispatcher.run_forever(stop)
        except KeyboardInterrupt:
            stop.set()
            count = 0
    console.print(f"{count} delivery attempts")


@inbound_app.command("process")
def inbound_process(limit: int = typer.Option(None, help="process at most this many messages")) -> None:
    """Process the messages waiting in the inbound spool now (the workers also do it every minute)."""
    from missiva.inbound.processor import process_pending

    summary = process_pending(_settings(), runtime.database(), limit=limit)
    _emit(
        {
            "processed": summary.processed,
            "duplicates": summary.duplicates,
            "failed": summary.failed,
            "actions": dict(summary.actions),
        }
    )


@inbound_app.command("poll-imap")
def inbound_poll_imap(
    url: str = typer.Option(None, help="imaps://user:pass@host/FOLDER?processed=F (MISSIVA_IMAP_URL)"),
    process: bool = typer.Option(True, help="process what was fetched right away"),
) -> None:
    """Fetch unseen bounces from an IMAP mailbox into the inbound spool once."""
    from missiva.inbound.imap_poller import ImapConfig, ImapConfigError, ImapError, poll
    from missiva.inbound.processor import process_pending

    settings = _settings()
    target = url or settings.imap_url
    if not target:
        _fail("no IMAP mailbox: pass --url or set MISSIVA_IMAP_URL")
    try:
        fetched = poll(settings, ImapConfig.from_url(target))
    except (ImapConfigError, ImapError) as exc:
        _fail(str(exc))
    result: dict[str, Any] = {"fetched": fetched}
    if process:
        summary = process_pending(settings, runtime.database())
        result["actions"] = dict(summary.actions)
    _emit(result)


def _register_sync_commands() -> None:
    from missiva.sync.commands import register

    register(app)


_register_sync_commands()


def main() -> None:
    """Entry point of the `missiva` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
