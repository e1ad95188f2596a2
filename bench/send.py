"""A whole mailing into smtp-sink: ledger, audience resolution, render, SMTP pool; smtp-source ceiling.

Figure: messages/s of a mailing of --recipients personalised ~5 KB messages, from the moment it starts
(set-based audience resolution into the send ledger included) to the moment its last outcome is
recorded, on SQLite (default) or --database-url PostgreSQL, through the pipelining pool into
`smtp-sink`. The mailing is shared by --processes sender processes (default 2, one per core, as
`missiva mailings run ID` or several Huey workers do), started before the clock and given the mailing
when it starts; together they hold 10 SMTP sessions. Ceiling, in the same run and into the same sink:
`smtp-source -s 10 -d` sending the same number of 5,120-byte messages. Medians of --runs runs; peak
RSS is the largest of any one sender process (getrusage).

    python bench/send.py [--recipients 100000] [--runs 3] [--processes 2] [--database-url ...]
    python bench/send.py --postgres        # a throwaway PostgreSQL server (fsync on) on the same cores
    python bench/send.py --recipients 1000000 --runs 1      # the scale check (~3 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("MISSIVA_HUEY_IMMEDIATE", "1")

from sqlalchemy import insert

from missiva import migrate, runtime
from missiva.audience.lists import create_list, ensure_default_fields
from missiva.audience.models import Recipient, Subscription
from missiva.bootstrap import create_account
from missiva.config import Settings
from missiva.db import get_database, utcnow
from missiva.delivery import configuration, mailings
from missiva.delivery.sender import MailingSender
from missiva.delivery.smtp import Relay
from missiva.messages import service as messages

SESSIONS = 10
MESSAGE_SIZE = 5120
PARAGRAPH = (
    "<p>Questa settimana nel nostro negozio di [citta|Italia] trovi nuove collezioni, sconti sui "
    "prodotti più amati e consigli per la stagione. Ti aspettiamo!</p>"
)
HTML = (
    "<html><head><style>p{font-family:Arial,sans-serif;color:#333;line-height:1.4}"
    "h1{color:#c00}</style></head><body><h1>Ciao [nome|Cliente] [cognome]!</h1>"
    + PARAGRAPH * 9
    + '<p><a href="https://news.example.com/offerte?e=[email]">Scopri le offerte</a></p></body></html>'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    port = free_port()
    process = subprocess.Popen(
        [binary, "-u", "nobody", f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL
    )
    wait_for_port(port)
    return process, port


def ceiling(port: int, count: int) -> float:
    """smtp-source into the sink: 10 sessions kept open, 5,120-byte messages; messages/s."""
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    started = time.perf_counter()
    subprocess.run(
        [
            binary,
            "-s",
            str(SESSIONS),
            "-d",
            "-m",
            str(count),
            "-l",
            str(MESSAGE_SIZE),
            "-f",
            "news@example.com",
            "-t",
            "someone@example.org",
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return count / (time.perf_counter() - started)


def populate(database_url: str, recipients: int) -> tuple[int, int]:
    """An account, a list and `recipients` subscribed recipients with three fields; (account, message)."""
    db = get_database(database_url)
    with db.session() as session:
        account = create_account(session, "Bench").account.id
        ensure_default_fields(session, account)
        lst = create_list(session, account, "Bench", sender_email="news@example.com", sender_name="Negozio")
        list_id = lst.id
    now = utcnow()
    step = 10_000
    for start in range(0, recipients, step):
        with db.session() as session:
            ids = session.scalars(
                insert(Recipient).returning(Recipient.id),
                [
                    {
                        "account_id": account,
                        "email": f"user{i}@example{i % 50}.org",
                        "fields": {"1": f"Nome{i}", "2": f"Cognome{i}", "4": "Roma"},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(recipients, start + step))
                ],
            ).all()
            session.execute(
                insert(Subscription),
                [
                    {
                        "account_id": account,
                        "recipient_id": rid,
                        "list_id": list_id,
                        "channel": "email",
                        "status": "subscribed",
                        "created_at": now,
                        "updated_at": now,
                        "subscribed_at": now,
                    }
                    for rid in ids
                ],
            )
    with db.session() as session:
        message = messages.create(
            session,
            account,
            list_id,
            {"subject": "[nome|Ciao], le offerte di [citta|questa settimana]", "html": HTML},
        )
        return account, message.id


def configure(url: str, data_dir: Path, port: int, chunk: int, sessions: int, window: int) -> None:
    """Core and sending settings of a bench process: the sink as the only relay."""
    settings = dataclasses.replace(
        Settings.from_env(
            {"MISSIVA_DATA_DIR": str(data_dir), "MISSIVA_DATABASE_URL": url, "MISSIVA_SECRET_KEY": "bench"}
        ),
        base_url="https://news.example.com",
    )
    runtime.configure(settings)
    configuration.configure(
        configuration.SendingConfig(
            sending_domain="news.example.com",
            bounce_domain="bounces.example.com",
            relays=(Relay(f"smtp://127.0.0.1:{port}", max_connections=sessions),),
            chunk=chunk,
            window=window,
        )
    )


def sender_process(
    url: str,
    data_dir: Path,
    port: int,
    chunk: int,
    sessions: int,
    window: int,
    loop: str,
    inbox: multiprocessing.Queue,  # type: ignore[type-arg]
    outbox: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    """A sender worker: runs each mailing id it is given; reports (sent, peak RSS MB)."""
    if loop == "uvloop":
        import uvloop

        uvloop.install()
    configure(url, data_dir, port, chunk, sessions, window)
    db = get_database(url)
    outbox.put("ready")
    while (mailing_id := inbox.get()) is not None:
        outcome = asyncio.run(MailingSender(db, mailing_id).run())
        outbox.put((outcome.sent, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def one_run(
    database_url: str,
    account: int,
    message_id: int,
    workers: list[tuple[multiprocessing.Queue, multiprocessing.Queue]],  # type: ignore[type-arg]
) -> tuple[float, int, float]:
    """Create and run one mailing to the whole list; (messages/s, messages sent, peak RSS MB)."""
    db = get_database(database_url)
    mailings.set_enqueuer(lambda _mailing_id: None)
    with db.session() as session:
        mailing = mailings.create(session, account, {"message_id": message_id})
        mailings.start(session, account, mailing.id)
        mailing_id = mailing.id
    started = time.perf_counter()
    if not workers:
        outcome = asyncio.run(MailingSender(db, mailing_id).run())
        sent, rss = outcome.sent, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        for inbox, _ in workers:
            inbox.put(mailing_id)
        reports = [outbox.get() for _, outbox in workers]
        sent, rss = sum(n for n, _ in reports), max(r for _, r in reports)
    elapsed = time.perf_counter() - started
    with db.session() as session:
        counters = mailings.get(session, account, mailing_id)
        assert counters.status == "finished" and counters.sent == sent, (counters.status, counters.sent, sent)
    return sent / elapsed, sent, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="sender processes sharing the mailing")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL server (fsync on) and use it"
    )
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--window", type=int, default=500, help="MISSIVA_SEND_WINDOW of each sender")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()

    data_dir = Path(tempfile.mkdtemp(prefix="missiva-bench-send-"))
    server = None
    if args.postgres:
        from missiva.testing.postgres import PostgresServer

        server = PostgresServer().start(fsync=True)
        args.database_url = server.create_database("bench")
    try:
        run_bench(args, data_dir)
    finally:
        if server is not None:
            server.stop()


def run_bench(args: argparse.Namespace, data_dir: Path) -> None:
    """Populate, start the sender processes, then alternate mailings and smtp-source runs."""
    url = args.database_url or f"sqlite:///{data_dir / 'bench.db'}"
    sessions = max(1, SESSIONS // args.processes)
    sink, port = start_sink()
    configure(url, data_dir, port, args.chunk, sessions, args.window)
    migrate.upgrade(url)
    workers: list[tuple[multiprocessing.Queue, multiprocessing.Queue]] = []  # type: ignore[type-arg]
    processes = []
    try:
        t0 = time.perf_counter()
        account, message_id = populate(url, args.recipients)
        print(f"populated {args.recipients} recipients in {time.perf_counter() - t0:.1f} s", flush=True)
        if args.processes > 1:
            spawn = multiprocessing.get_context("spawn")
            for _ in range(args.processes):
                inbox, outbox = spawn.Queue(), spawn.Queue()
                process = spawn.Process(
                    target=sender_process,
                    args=(url, data_dir, port, args.chunk, sessions, args.window, args.loop, inbox, outbox),
                )
                process.start()
                processes.append(process)
                workers.append((inbox, outbox))
            for _, outbox in workers:
                assert outbox.get(timeout=60) == "ready"
        figures, ceilings, peaks = [], [], []
        for run in range(args.runs):
            rate, sent, rss = one_run(url, account, message_id, workers)
            top = ceiling(port, args.recipients)
            print(f"run {run + 1}: {sent} sent, {rate:,.0f} msg/s; smtp-source {top:,.0f} msg/s", flush=True)
            print(f"  peak RSS of a sender process so far {rss:.0f} MB", flush=True)
            figures.append(rate)
            ceilings.append(top)
            peaks.append(rss)
    finally:
        for inbox, _ in workers:
            inbox.put(None)
        for process in processes:
            process.join(30)
        sink.terminate()
        sink.wait(5)
        shutil.rmtree(data_dir, ignore_errors=True)
    figure, top = statistics.median(figures), statistics.median(ceilings)
    print(
        f"peak RSS {max(peaks):.0f} MB per sender process ({args.processes} processes, "
        f"{sessions} SMTP sessions each) for {args.recipients} recipients"
    )
    print(f"bench send: {figure:.0f} msg/s; ceiling {top:.0f} msg/s; ratio {figure / top:.2f}")


if __name__ == "__main__":
    main()
